// The two builds of the core (host/core/core_build.ts): which one runs, and
// that the relaxed-SIMD build computes exactly what the baseline does — the
// AES/GCM/CBC tests (published vectors, node:crypto and @noble/ciphers
// differentials, property tests) and the ESP differential test run again in a
// child process against build/wesp.relaxed.wasm.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { packagePath } from "../../host/util/package_root.ts";
import { BASELINE_BUILD, RELAXED_BUILD, defaultCoreBuild, describeCoreBuild, relaxedSimdValidates } from "../../host/core/core_build.ts";
import { Core } from "../../host/core/core.ts";

const BIN = fileURLToPath(new URL("../../bin/wesp.js", import.meta.url));
/** Node 20 validates relaxed SIMD only under this V8 flag (as bin/wesp.ts sets it); Node ≥ 22 needs none. */
const RELAXED_ARGS = Number(process.versions.node.split(".")[0]) < 22 ? ["--experimental-wasm-relaxed-simd"] : [];

test("npm run build:wasm made both builds", () => {
  assert.ok(existsSync(packagePath(BASELINE_BUILD)), BASELINE_BUILD);
  assert.ok(existsSync(packagePath(RELAXED_BUILD)), RELAXED_BUILD);
});

test("the default build: relaxed only when V8 accepts it and WESP_RELAXED_SIMD is not 0", () => {
  assert.equal(defaultCoreBuild({}, () => true), RELAXED_BUILD);
  assert.equal(defaultCoreBuild({ WESP_RELAXED_SIMD: "1" }, () => true), RELAXED_BUILD);
  assert.equal(defaultCoreBuild({}, () => false), BASELINE_BUILD);
  assert.equal(defaultCoreBuild({ WESP_RELAXED_SIMD: "0" }, () => true), BASELINE_BUILD);
  assert.equal(describeCoreBuild(RELAXED_BUILD), "build/wesp.relaxed.wasm (relaxed SIMD)");
  assert.equal(describeCoreBuild(BASELINE_BUILD), "build/wesp.wasm (baseline SIMD)");
});

test("a Core in a process without the V8 flag runs what this V8 validates, and says which", async () => {
  const saved = process.env.WESP_WASM;
  delete process.env.WESP_WASM;
  try {
    const core = await Core.create({ slots: 1, maxSas: 4, maxPolicies: 4, largeWindowBlocks: 0 });
    assert.equal(core.build, describeCoreBuild(relaxedSimdValidates() ? RELAXED_BUILD : BASELINE_BUILD));
  } finally {
    if (saved !== undefined) process.env.WESP_WASM = saved;
  }
});

/** `wesp selftest` as a user runs it (no V8 flag on the command line): its first line names the build. */
function selftestFirstLine(env: NodeJS.ProcessEnv): string {
  const { WESP_WASM: _, ...rest } = env;
  const r = spawnSync(process.execPath, [BIN, "selftest"], { encoding: "utf8", env: rest });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^21 passed, 0 failed$/m);
  return r.stdout.split("\n")[0];
}

test("the wesp entry switches relaxed SIMD on (Node 20: V8 flag) and the core runs the relaxed build", () => {
  assert.equal(selftestFirstLine(process.env), "core build/wesp.relaxed.wasm (relaxed SIMD)");
});

test("WESP_RELAXED_SIMD=0: the wesp entry runs the baseline build", () => {
  assert.equal(selftestFirstLine({ ...process.env, WESP_RELAXED_SIMD: "0" }), "core build/wesp.wasm (baseline SIMD)");
});

test("the relaxed build passes the crypto vectors, differential and property tests, and the ESP differential test", () => {
  const files = ["crypto-aes", "crypto-gcm", "crypto-cbc", "diff-noble"].map((f) => fileURLToPath(new URL(`./${f}.test.ts`, import.meta.url)));
  // NODE_TEST_CONTEXT would make the child report to this runner instead of printing.
  const { NODE_TEST_CONTEXT: _, ...env } = process.env;
  const r = spawnSync(process.execPath, [...RELAXED_ARGS, "--import", "tsx", "--test", "--test-reporter=tap", ...files], {
    encoding: "utf8",
    env: { ...env, WESP_WASM: packagePath(RELAXED_BUILD) },
  });
  assert.equal(r.status, 0, r.stdout.split("\n").filter((l) => /^\s*not ok|fail|Error/.test(l)).join("\n") + r.stderr);
  assert.match(r.stdout, /^# fail 0$/m);
  assert.doesNotMatch(r.stdout, /^# pass 0$/m);
});
