// No allocation on the packet path, on either side of the boundary.
//
// The measurement runs in a child process started with --expose-gc (the test
// runner's own process has no global.gc); the parent asserts on its report.
//  1. Host hot path, strict: 1,000,000 packets each way (a replayed corpus of
//     mutated ESP/UDP/GRE/IP-in-IP packets) through exactly what a pipeline
//     does per packet — copy into the slot view, setPacket, processInbound /
//     processOutbound, read verdict/reason/offset/length/hdrLen/destPort.
//     With no collection forced in between, not one garbage collection may
//     run and heapUsed may not grow by more than STRICT_BOUND: any allocation
//     of even one byte per packet would exceed it or trigger a scavenge.
//  2. Fuzz mix: 1,000,000 freshly mutated packets each way (the fuzz test's
//     generator, which itself allocates garbage); heapUsed after global.gc()
//     sampled every 100,000 packets stays within MIX_BOUND.
// In both, WASM memory.buffer.byteLength never changes.
//  3. setRemoteBytes, which the receive path calls per datagram for input
//     kinds 1 and 2, measured like (1) over as many calls.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { PerformanceObserver } from "node:perf_hooks";
import { HEADROOM, MAX_PACKET } from "../../host/core/core.ts";
import { seedFromEnv } from "../helpers/gen.ts";
import { buildHarness, fillBatch, type Harness } from "../helpers/fuzz_harness.ts";

const PACKETS = Number(process.env.WESP_NOALLOC_PACKETS ?? 1_000_000);
const BATCH = 256;
/** heapUsed growth allowed over the strict run: 1 MiB, i.e. < 0.6 byte per packet over 2 × 10^6 packets. */
const STRICT_BOUND = 1 << 20;
/** spread of heapUsed-after-gc samples allowed over the fuzz-mix run. */
const MIX_BOUND = 2 << 20;

interface Report {
  seed: number;
  packets: number;
  memoryBefore: number;
  strict: { gcs: number; heapDelta: number; memoryAfter: number };
  mix: { heap: number[]; memory: number[] };
  setRemote: { calls: number; gcs: number; heapDelta: number };
}

/** One recorded batch: each slot's bytes and descriptor, replayed without generating anything. */
interface Recorded { bytes: Uint8Array[]; off: Int32Array; len: Int32Array; kind: Uint8Array; sa: Int32Array; proto: Uint8Array }

function record(h: Harness, dir: "in" | "out"): Recorded {
  const { core } = h;
  fillBatch(h, dir, BATCH);
  const rec: Recorded = { bytes: [], off: new Int32Array(BATCH), len: new Int32Array(BATCH), kind: new Uint8Array(BATCH), sa: new Int32Array(BATCH), proto: new Uint8Array(BATCH) };
  const dv = new DataView(core.ex.memory.buffer);
  for (let i = 0; i < BATCH; i++) {
    // The descriptor as fillBatch left it (raw, so lying offsets/lengths survive).
    const d = core.ex.descBase() + i * 64;
    rec.off[i] = dv.getUint32(d, true);
    rec.len[i] = dv.getUint32(d + 4, true);
    rec.kind[i] = dv.getUint8(d + 8);
    rec.sa[i] = dv.getInt32(d + 12, true);
    rec.proto[i] = dv.getUint8(d + 25);
    rec.bytes.push(core.slot(i).slice(HEADROOM, HEADROOM + Math.min(rec.len[i], MAX_PACKET)));
  }
  return rec;
}

/** What a pipeline does per batch; returns a checksum of what it read so nothing is optimised away. */
function pass(h: Harness, rec: Recorded, inbound: boolean): number {
  const { core } = h;
  for (let i = 0; i < BATCH; i++) {
    core.slot(i).set(rec.bytes[i], HEADROOM);
    core.setPacket(i, rec.off[i], rec.len[i], rec.kind[i], rec.sa[i], rec.proto[i]);
  }
  let sum = inbound ? core.processInbound(BATCH) : core.processOutbound(BATCH);
  for (let i = 0; i < BATCH; i++) {
    sum = (sum + core.verdict(i) + core.reason(i) + core.offset(i) + core.length(i) + core.hdrLen(i) + core.destPort(i)) | 0;
  }
  // Kept to int32: a sum past the small-integer range would be boxed as a
  // heap number on every return — the test's own allocation, not the host's.
  return sum;
}

function replay(h: Harness, ins: Recorded[], outs: Recorded[], packets: number): number {
  let sum = 0;
  for (let done = 0, b = 0; done < packets; done += BATCH, b = (b + 1) % ins.length) {
    sum = (sum + pass(h, ins[b], true) + pass(h, outs[b], false)) | 0;
  }
  return sum;
}

async function measure(): Promise<Report> {
  const gc = (globalThis as { gc?: () => void }).gc!;
  // GC entries reach the observer asynchronously: give them time to arrive
  // before zeroing the count, even on a loaded machine.
  const settle = () => new Promise((r) => setTimeout(r, 150));
  let gcs = 0;
  new PerformanceObserver((l) => { gcs += l.getEntries().length; }).observe({ entryTypes: ["gc"] });
  const seed = seedFromEnv();
  const h = await buildHarness(seed, 16);
  const { core } = h;
  const memoryBefore = core.memoryBytes();
  const ins = Array.from({ length: 64 }, () => record(h, "in"));
  const outs = Array.from({ length: 64 }, () => record(h, "out"));

  replay(h, ins, outs, 200_000); // warm-up: every function tiered up, every inline cache settled
  gc(); await settle(); gcs = 0;
  const h0 = process.memoryUsage().heapUsed;
  replay(h, ins, outs, PACKETS);
  const h1 = process.memoryUsage().heapUsed;
  await settle();
  const strict = { gcs, heapDelta: h1 - h0, memoryAfter: core.memoryBytes() };

  const mix = { heap: [] as number[], memory: [] as number[] };
  for (let done = 0; done < PACKETS; done += BATCH) {
    fillBatch(h, "in", BATCH);
    core.processInbound(BATCH);
    fillBatch(h, "out", BATCH);
    core.processOutbound(BATCH);
    if (done % 100_096 === 0) {
      gc();
      mix.heap.push(process.memoryUsage().heapUsed);
      mix.memory.push(core.memoryBytes());
    }
  }
  gc();
  mix.heap.push(process.memoryUsage().heapUsed);
  mix.memory.push(core.memoryBytes());

  // The receive path's per-datagram call for NAT-T and IPv6 raw-socket input
  // (kinds 1 and 2): where the packet came from, as 16-byte address views.
  const remote = new Uint8Array(16), local = new Uint8Array(16), calls = PACKETS;
  remote.set(h.scenarios[0].remote);
  local.set(h.scenarios[0].local);
  for (let k = 0; k < 300_000; k++) core.setRemoteBytes(k % BATCH, 4, remote, 4500, local); // tier up first
  gc(); await settle(); gcs = 0;
  const r0 = process.memoryUsage().heapUsed;
  for (let k = 0; k < calls; k++) core.setRemoteBytes(k % BATCH, 4, remote, 4500, local);
  const r1 = process.memoryUsage().heapUsed;
  await settle();
  return { seed, packets: PACKETS, memoryBefore, strict, mix, setRemote: { calls, gcs, heapDelta: r1 - r0 } };
}

if (process.env.WESP_NOALLOC_CHILD === "1") {
  const report = await measure();
  process.stdout.write("REPORT " + JSON.stringify(report) + "\n");
} else {
  let report: Report | undefined;
  const get = (): Report => {
    if (report) return report;
    const self = fileURLToPath(import.meta.url);
    const r = spawnSync(process.execPath, ["--expose-gc", "--import", "tsx", self], {
      env: { ...process.env, WESP_NOALLOC_CHILD: "1" }, encoding: "utf8", maxBuffer: 1 << 24,
    });
    const line = r.stdout.split("\n").find((l) => l.startsWith("REPORT "));
    assert.ok(line, `child failed (${r.status}): ${r.stderr}`);
    report = JSON.parse(line.slice(7)) as Report;
    console.log(JSON.stringify(report));
    return report;
  };

  test(`no allocation in the host hot path: ${PACKETS} packets each way, no GC, heap +< ${STRICT_BOUND} B`, { timeout: 600_000 }, () => {
    const rep = get();
    assert.equal(rep.strict.memoryAfter, rep.memoryBefore, `seed ${rep.seed}: WASM memory grew`);
    assert.equal(rep.strict.gcs, 0, `seed ${rep.seed}: ${rep.strict.gcs} garbage collections ran during the run`);
    assert.ok(rep.strict.heapDelta < STRICT_BOUND, `seed ${rep.seed}: heapUsed grew ${rep.strict.heapDelta} B`);
  });

  test(`fuzz mix: ${PACKETS} mutated packets each way, WASM memory constant, heap after gc flat within ${MIX_BOUND} B`, { timeout: 600_000 }, () => {
    const rep = get();
    assert.ok(rep.mix.heap.length >= 10, "sampled every 100,000 packets");
    for (const m of rep.mix.memory) assert.equal(m, rep.memoryBefore, `seed ${rep.seed}: WASM memory grew`);
    const spread = Math.max(...rep.mix.heap) - Math.min(...rep.mix.heap);
    assert.ok(spread < MIX_BOUND, `seed ${rep.seed}: heapUsed after gc varied by ${spread} B: ${rep.mix.heap}`);
  });

  test(`setRemoteBytes (per received datagram, input kinds 1/2): ${PACKETS} calls, no GC, heap +< ${STRICT_BOUND} B`, () => {
    const rep = get();
    assert.equal(rep.setRemote.gcs, 0, `${rep.setRemote.calls} calls ran ${rep.setRemote.gcs} garbage collections (heap +${rep.setRemote.heapDelta} B)`);
    assert.ok(rep.setRemote.heapDelta < STRICT_BOUND, `${rep.setRemote.calls} calls: heap +${rep.setRemote.heapDelta} B`);
  });
}
