// `wesp bench tunnel` end to end, short: one round of 2 s per workload with wesp
// (both suites, offloads on; the offloads-off variants are left out for time) and the bare veth. The JSON must hold a number for every
// measure of every row and wesp's CPU figures; no namespace may be left. No
// figure is judged: speed is for the benchmark, never a test (docs/bench.md).
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { requireTools } from "../helpers/require.ts";

const WESP = fileURLToPath(new URL("../../bin/wesp.js", import.meta.url));
const WORKLOADS = ["tcp1", "tcp4", "udp1400", "udp64"];
const ceilings = () => ["rmem_max", "wmem_max"].map((k) => readFileSync(`/proc/sys/net/core/${k}`, "utf8").trim());

describe("wesp bench tunnel", { skip: requireTools(["netns", "iperf3"], { why: "the tunnel benchmark" }) }, () => {
  const dir = mkdtempSync(join(tmpdir(), "wesp-bench-tunnel-test-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("measures wesp and the veth and writes JSON with numbers for each row, and an SVG", () => {
    const json = join(dir, "t.json");
    const before = ceilings();
    const r = spawnSync(process.execPath, [WESP, "bench", "tunnel", "--runs", "1", "--seconds", "2", "--only", "wesp-aes128gcm,wesp-chacha20,veth", "--no-install", "--json", json],
      { encoding: "utf8", timeout: 300_000 });
    assert.equal(r.status, 0, `exit ${r.status}\n${r.stdout}\n${r.stderr}`);
    const res = JSON.parse(readFileSync(json, "utf8"));
    const ids = ["wesp-aes128gcm", "wesp-chacha20", "veth"];
    for (const id of ids) assert.ok(res.contenders.find((c: any) => c.id === id)?.ran, `${id} ran`);
    for (const id of ids) {
      for (const w of WORKLOADS) {
        const row = res.rows.find((x: any) => x.contender === id && x.workload === w);
        assert.ok(row, `row ${id} ${w}`);
        for (const k of ["mbps", "kpps"]) {
          for (const f of ["median", "min", "max"]) assert.ok(Number.isFinite(row[k][f]) && row[k][f] >= 0, `${id} ${w} ${k}.${f}: ${row[k][f]}`);
        }
        if (w.startsWith("udp")) assert.ok(Number.isFinite(row.lossPercent.median), `${id} ${w} loss`);
        if (id === "veth") {
          assert.equal(row.mbitPerCpuS, null, "the veth has no endpoint process");
        } else {
          for (const k of ["cpuA", "cpuB", "mbitPerCpuS", "kppsPerCpuS"]) assert.ok(Number.isFinite(row[k].median), `${id} ${w} ${k}`);
        }
      }
    }
    // TCP packets are inner packets (bytes over the MSS), not the super-packets
    // hB's InSegs counts with offloads: each sample's kpps must match its goodput.
    for (const smp of res.samples.filter((x: any) => x.workload.startsWith("tcp") && x.mbps > 0)) {
      const bitsPerPacket = (smp.mbps * 1e6) / (smp.kpps * 1e3);
      assert.ok(bitsPerPacket > 1000 * 8 && bitsPerPacket <= 1400 * 8, `${smp.contender} ${smp.workload}: ${bitsPerPacket / 8} bytes per counted packet`);
    }
    // Each wesp sample records what its endpoints' TUN reads, writes and trains
    // carried (bench/tunnel/endpoint_counters.ts): with TCP through the offloads,
    // A read super-packets of several segments and B wrote coalesced ones; the
    // veth has no status to ask.
    for (const smp of res.samples) {
      if (smp.contender === "veth") { assert.equal(smp.endpoints, undefined, "veth: no endpoint counters"); continue; }
      assert.equal(smp.endpoints?.length, 2, `${smp.contender} ${smp.workload}: counters of A and B`);
      for (const c of smp.endpoints) for (const [k, v] of Object.entries(c)) assert.ok(Number.isInteger(v) && (v as number) >= 0, `${smp.contender} ${smp.workload} ${k}: ${v}`);
      const [a, b] = smp.endpoints;
      assert.ok(a.tunRead > 0 && a.sent > 0 && b.received > 0 && b.tunWritten > 0, `${smp.contender} ${smp.workload}: traffic A→B counted`);
      if (smp.workload === "tcp1") {
        assert.ok(a.superPackets > 0 && a.segments > a.superPackets, `${smp.contender} tcp1: A segmented super-packets (${a.segments}/${a.superPackets})`);
        assert.ok(b.coalesced > 0 && b.coalescedSegments > b.coalesced, `${smp.contender} tcp1: B coalesced (${b.coalescedSegments}/${b.coalesced})`);
      }
    }
    // The bench may raise the kernel's socket-buffer ceiling for its UDP runs; it puts it back.
    assert.deepEqual(ceilings(), before, "net.core.rmem_max/wmem_max as they were");
    assert.ok(res.ratios.some((x: any) => x.peer === "veth" && Number.isFinite(x.throughput)), "ratios against the veth");
    assert.ok(typeof res.machine.cpu === "string" && res.machine.cores >= 1);
    assert.match(readFileSync(json.replace(/\.json$/, ".svg"), "utf8"), /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    const left = execFileSync("ip", ["netns", "list"], { encoding: "utf8" }).split("\n").filter((l) => l.startsWith(`${process.env.WESP_NS_PREFIX ?? "wbench-"}${r.pid}-`));
    assert.deepEqual(left, [], "no namespace left");
    assert.equal(existsSync(json), true);
  });

  it("refuses a bad option with exit 2", () => {
    const r = spawnSync(process.execPath, [WESP, "bench", "tunnel", "--only", "nosuch"], { encoding: "utf8" });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /--only: unknown nosuch/);
  });
});
