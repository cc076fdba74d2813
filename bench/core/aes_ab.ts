// A/B of AES-128-GCM seal/open between builds of the core, in one process:
// every .wasm named on the command line is instantiated side by side and the
// cases are timed round-robin (micro.ts `rates`), so a busy machine slows all
// builds alike. Between processes this VM swings ±10–20 %, more than the
// changes it is meant to judge (docs/performance.md "The core's AES-GCM").
//
//   SIZES=1400 node --experimental-wasm-relaxed-simd --import tsx bench/core/aes_ab.ts \
//     /work/main/build/wesp.wasm build/wesp.wasm build/wesp.relaxed.wasm
//
// (Node 20 compiles a relaxed-SIMD build only under that V8 flag.) Prints one
// line per size: MB/s of each build, seal then open, in argument order.
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { rates, SIZES } from "./micro.ts";
import type { Exports } from "../../host/core/raw_exports.ts";

interface Build { name: string; ex: Exports; ctx: number; nonce: number; aad: number; tag: number; data: number; pristine: number; good: number }

function load(file: string): Build {
  const ex = new WebAssembly.Instance(new WebAssembly.Module(readFileSync(file)), {
    env: { abort() { throw new Error(`${file}: wasm abort`); }, seed: () => 0 },
  }).exports as Exports;
  const ctx = ex.arenaAlloc(1 << 16, 64);
  // after the context (GCM_CTX_SIZE < 4,096): key, nonce, AAD, tags, then two packet buffers
  const key = ctx + 4096, nonce = key + 64, aad = nonce + 64, tag = aad + 64, good = tag + 64, data = good + 64, pristine = data + 9472;
  const u8 = new Uint8Array(ex.memory.buffer);
  for (let i = 0; i < 16; i++) u8[key + i] = 0x40 + i;
  for (let i = 0; i < 12; i++) u8[nonce + i] = 0xa0 + i;
  for (let i = 0; i < 9216; i++) u8[data + i] = (i * 7) & 255;
  ex.gcmInit(ctx, key, 16);
  return { name: file, ex, ctx, nonce, aad, tag, data, pristine, good };
}

const builds = process.argv.slice(2).map(load);
if (builds.length === 0) throw new Error("name the .wasm files to compare");
for (const size of SIZES) {
  const seal = builds.map((b) => () => b.ex.gcmSeal(b.ctx, b.nonce, b.aad, 8, b.data, size, b.tag));
  const open = builds.map((b) => {
    // a sealed packet to open; open decrypts in place, so each call restores the ciphertext first
    const u8 = new Uint8Array(b.ex.memory.buffer);
    b.ex.gcmSeal(b.ctx, b.nonce, b.aad, 8, b.data, size, b.good);
    u8.copyWithin(b.pristine, b.data, b.data + size);
    return () => {
      u8.copyWithin(b.data, b.pristine, b.pristine + size);
      if (!b.ex.gcmOpen(b.ctx, b.nonce, b.aad, 8, b.data, size, b.good)) throw new Error(`${b.name}: gcmOpen rejected a good packet`);
    };
  });
  const r = rates([...seal, ...open]).map((x) => (x * size / 1e6).toFixed(0));
  const n = builds.length;
  console.log(`${size} B, load ${loadavg()[0].toFixed(1)}: seal ${r.slice(0, n).join(" / ")}, open ${r.slice(n).join(" / ")} MB/s (${builds.map((b) => b.name).join(" / ")})`);
}
