// Which build of the WASM core runs. `npm run build:wasm` compiles the same
// sources twice (asconfig.json):
//
//   build/wesp.wasm          WebAssembly SIMD: runs on every Node ≥ 20
//   build/wesp.relaxed.wasm  also relaxed SIMD (ASC_FEATURE_RELAXED_SIMD): GHASH's
//                            34 nibble lookups per block are i8x16.relaxed_swizzle
//                            (assembly/crypto/ghash.ts) and GCM's AES rounds are
//                            fixsliced (assembly/crypto/aes.ts aesRunCtr): AES-128-GCM
//                            seal/open of 1,400 B 5.5–8 % faster (docs/performance.md)
//
// The two compute the same bits: relaxed_swizzle differs from swizzle only
// for indices ≥ 16, and every index here is below 16. test/unit/core-build.test.ts
// runs the crypto tests (published vectors, differential, property) against
// the relaxed build too.
//
// The relaxed build is taken when this V8 validates a relaxed-SIMD probe
// (Node ≥ 22 does by default; Node 20, V8 11.3, only under the V8 flag
// --experimental-wasm-relaxed-simd, which the `wesp` entry sets: see
// enableRelaxedSimd) and the file is there; else the baseline. WESP_RELAXED_SIMD=0
// keeps the baseline; WESP_WASM (or CoreOptions.wasmPath) names a file outright.
import { existsSync } from "node:fs";
import { setFlagsFromString } from "node:v8";
import { packagePath } from "../util/package_root.ts";

export const BASELINE_BUILD = "build/wesp.wasm";
export const RELAXED_BUILD = "build/wesp.relaxed.wasm";

/**
 * The smallest module that uses relaxed SIMD: one function
 * `v128.const 0; v128.const 0; i8x16.relaxed_swizzle; drop` (opcode 0xfd 0x100).
 */
const RELAXED_PROBE = Uint8Array.from(Buffer.from(
  "0061736d01000000" + "010401600000" + "03020100" + "0a2c012a00" +
  "fd0c" + "00".repeat(16) + "fd0c" + "00".repeat(16) + "fd8002" + "1a0b", "hex"));

/** Whether this V8 accepts relaxed-SIMD modules now. */
export function relaxedSimdValidates(): boolean {
  return WebAssembly.validate(RELAXED_PROBE);
}

/** WESP_RELAXED_SIMD=0 turns the relaxed build (and the flag) off. */
function relaxedSimdAllowed(env: NodeJS.ProcessEnv): boolean {
  return env.WESP_RELAXED_SIMD !== "0";
}

/**
 * On Node < 22 (V8 < 12), switches on V8's relaxed SIMD, unless
 * WESP_RELAXED_SIMD=0. For the `wesp` entry only (bin/wesp.ts): a V8 flag is
 * process-wide, and it is read when a module is validated or compiled, so it
 * must be set before the first WASM compile; worker threads started afterwards
 * inherit it. Relaxed SIMD is a finished WebAssembly proposal (phase 4); V8
 * 11.3 implements it behind this flag and ships it unflagged from 11.4
 * (Chrome 114), so Node 22 (V8 12.4) needs nothing. Returns whether the
 * relaxed build can now be used.
 */
export function enableRelaxedSimd(env: NodeJS.ProcessEnv = process.env, nodeMajor = Number(process.versions.node.split(".")[0])): boolean {
  if (!relaxedSimdAllowed(env)) return false;
  if (nodeMajor < 22 && !relaxedSimdValidates()) setFlagsFromString("--experimental-wasm-relaxed-simd");
  return relaxedSimdValidates();
}

/**
 * The core file to load when none is named: the relaxed build when allowed,
 * accepted by this V8 and built, else the baseline (package-relative path).
 */
export function defaultCoreBuild(env: NodeJS.ProcessEnv = process.env, validates = relaxedSimdValidates): string {
  if (relaxedSimdAllowed(env) && validates() && existsSync(packagePath(RELAXED_BUILD))) return RELAXED_BUILD;
  return BASELINE_BUILD;
}

/** The core file to load when the caller names none: $WESP_WASM, else defaultCoreBuild. */
export function coreFileFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  return env.WESP_WASM ?? defaultCoreBuild(env);
}

/** How logs name a core file: "build/wesp.relaxed.wasm (relaxed SIMD)". */
export function describeCoreBuild(file: string): string {
  return file.endsWith("wesp.relaxed.wasm") ? `${file} (relaxed SIMD)` : file.endsWith("wesp.wasm") ? `${file} (baseline SIMD)` : file;
}
