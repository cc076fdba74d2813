// The known-answer self-test over all 21 shared vectors, through the core's
// real ESP path, and the `wesp selftest` command around it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { SHARED_VECTOR_FILE } from "../helpers/vectors.ts";
import { requireTools } from "../helpers/require.ts";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_VECTORS, selftest } from "../../host/core/selftest.ts";
import { main } from "../../host/cli/selftest.ts";

// ../shared beside the repository: present in the workspace and in CI.
const SHARED = SHARED_VECTOR_FILE;
const skipShared = requireTools([{ name: "../shared beside this checkout", present: () => existsSync(SHARED), install: "check out the shared repository beside this one" }],
  { why: "unit shipped vectors = shared ones" });

test("all shipped vectors pass (seal reproduces expected_esp/expected_packet, open gives the plaintext)", async () => {
  const lines: string[] = [];
  const r = await selftest(DEFAULT_VECTORS, (l) => lines.push(l));
  const n = JSON.parse(readFileSync(DEFAULT_VECTORS, "utf8")).vectors.length;
  assert.equal(n, 21);
  assert.deepEqual(r, { passed: 21, failed: 0 }, lines.filter((l) => !l.startsWith("ok")).join("\n"));
  assert.equal(lines.length, 22);
  assert.equal(lines.at(-1), "21 passed, 0 failed");
});

test("the shipped vectors are the shared ones", { skip: skipShared }, () => {
  assert.equal(readFileSync(DEFAULT_VECTORS, "utf8"), readFileSync(SHARED, "utf8"));
});

test("wesp selftest --vectors ../shared/vectors/esp-vectors.json: 21 passed, 0 failed", { skip: skipShared }, () => {
  // The command itself, as a user runs it.
  const bin = fileURLToPath(new URL("../../bin/wesp.js", import.meta.url));
  const r = spawnSync(process.execPath, [bin, "selftest", "--vectors", SHARED], { encoding: "utf8" });
  const lines = r.stdout.trimEnd().split("\n");
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.equal(lines.filter((l) => l.startsWith("ok")).length, 21);
  assert.equal(lines.at(-1), "21 passed, 0 failed");
});

test("a corrupted vector fails, and so does an unsupported suite", async () => {
  const doc = JSON.parse(readFileSync(DEFAULT_VECTORS, "utf8"));
  const v0 = doc.vectors[0];
  const flipped = { ...v0, id: "flipped", expected_esp: v0.expected_esp.slice(0, -2) + (v0.expected_esp.endsWith("00") ? "01" : "00") };
  const sha384 = { ...doc.vectors[15], id: "sha384", integrity: "hmac-sha384-192", auth_key: "00".repeat(48) };
  const dir = mkdtempSync(join(tmpdir(), "wesp-selftest-"));
  const file = join(dir, "v.json");
  writeFileSync(file, JSON.stringify({ ...doc, vectors: [v0, flipped, sha384] }));
  const lines: string[] = [];
  const r = await selftest(file, (l) => lines.push(l));
  assert.deepEqual(r, { passed: 1, failed: 2 });
  assert.match(lines[1], /^FAIL  flipped .*seal: ESP differs/);
  assert.match(lines[2], /^FAIL  sha384 .*unsupported suite aes-cbc \+ hmac-sha384-192/);
  assert.equal(lines.at(-1), "1 passed, 2 failed");

  // The command: exit 1 on failures, 0 when all pass.
  const write = process.stdout.write;
  const out: string[] = [];
  process.stdout.write = ((s: string) => (out.push(String(s)), true)) as typeof process.stdout.write;
  try {
    assert.equal(await main(["--vectors", file]), 1);
    assert.equal(await main([]), 0);
    assert.equal(await main(["--vectors", SHARED]), 0);
  } finally {
    process.stdout.write = write;
    rmSync(dir, { recursive: true, force: true });
  }
  assert.ok(out.join("").includes("1 passed, 2 failed"));
  assert.ok(out.join("").includes("21 passed, 0 failed"));
});
