// `wesp bench ike` end to end, tiny: 10 tunnels, one round, wesp ↔ wesp and
// charon ↔ charon in both modes. The JSON must hold a number for every measure of both rows,
// every tunnel must have come up, and no namespace may be left. No figure is
// judged: speed is for the benchmark, never a test (docs/bench.md).
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { requireTools } from "../helpers/require.ts";

const WESP = fileURLToPath(new URL("../../bin/wesp.js", import.meta.url));

describe("wesp bench ike", { skip: requireTools(["netns", "charon", "kernel-libipsec", "swanctl"], { why: "the IKE benchmark" }) }, () => {
  const dir = mkdtempSync(join(tmpdir(), "wesp-bench-ike-test-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("sets up 10 tunnels with wesp and with charon (both modes) and writes rates, CPU and the ratios as JSON", () => {
    const json = join(dir, "ike.json");
    const r = spawnSync(process.execPath, [WESP, "bench", "ike", "--tunnels", "10", "--runs", "1", "--json", json], { encoding: "utf8", timeout: 300_000 });
    assert.equal(r.status, 0, `exit ${r.status}\n${r.stdout}\n${r.stderr}`);
    const res = JSON.parse(readFileSync(json, "utf8"));
    assert.deepEqual(res.samples.map((s: any) => [s.contender, s.established]), [["wesp", 10], ["charon", 10], ["charon-all", 10]]);
    for (const c of ["wesp", "charon", "charon-all"]) {
      const row = res.rows.find((x: any) => x.contender === c);
      assert.ok(row, `row ${c}`);
      for (const k of ["perSecond", "perCpuSecond"]) assert.ok(Number.isFinite(row[k].median) && row[k].median > 0, `${c} ${k}: ${row[k].median}`);
      for (const k of ["cpuInitiatorS", "cpuResponderS", "wallS"]) assert.ok(Number.isFinite(row[k]) && row[k] >= 0, `${c} ${k}`);
    }
    assert.deepEqual(res.ratios.map((x: any) => x.peer), ["charon", "charon-all"]);
    for (const x of res.ratios) assert.ok(Number.isFinite(x.perSecond) && Number.isFinite(x.perCpuSecond), `wesp ÷ ${x.peer}`);
    assert.ok(typeof res.machine.cpu === "string" && res.machine.cores >= 1);
    assert.match(r.stdout, /wesp ÷ charon-all: [\d.]+ × per second, [\d.]+ × per CPU-second/);
    const left = execFileSync("ip", ["netns", "list"], { encoding: "utf8" }).split("\n").filter((l) => l.startsWith(`wicbench-${r.pid}-`));
    assert.deepEqual(left, [], "no namespace left");
  });

  it("refuses a bad option with exit 2", () => {
    const r = spawnSync(process.execPath, [WESP, "bench", "ike", "--only", "nosuch"], { encoding: "utf8" });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /--only: unknown nosuch/);
  });
});
