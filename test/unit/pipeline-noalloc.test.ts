// No allocation per packet in the Pipeline itself (host/pipeline/pipeline.ts):
// two real cores provisioned from the two sides' configs, each behind a real
// Pipeline whose TUN and UDP socket are in-memory fakes (they copy bytes into
// preallocated arrays and allocate nothing). Batches of 256 packets go A → B
// and B → A through outboundBatch, the fakes' "wire", and the readiness
// callback Pipeline.start registered (inboundBatch); after a warm-up (JIT
// tier-up), not one scavenge (minor GC: what allocation triggers) may run
// and heapUsed may not grow by more than HEAP_BOUND over the measured
// batches. Major GCs are reported, not failed: V8's memory reducer starts
// one on a timer whether or not anything is allocated. Measured in a child process
// (this file again, with WESP_PIPELINE_NOALLOC_CHILD set to the case), so the test runner's
// own allocations do not count. test/fuzz/no-alloc.test.ts covers the core
// calls alone over a fuzz corpus; this covers the host's loops around them.
// Three cases: packets that fit; packets over a 1000-byte path MTU with DF
// clear (the core fragments them behind the ring, the far TUN gets both
// pieces); and with DF set (the core's ICMP errors, the host's rate limit).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const BATCH = 256;
const WARMUP = 300;
const MEASURED = 800;
/** heapUsed growth allowed: 256 KiB over 2 × 800 × 256 packets, < 0.7 byte per packet. */
const HEAP_BOUND = 256 << 10;

type Case = "through" | "fragment" | "icmp";
interface Report { packets: number; delivered: number; fragmented: number; answered: number; minorGcs: number; majorGcs: number; heapDelta: number; windows: number }
/** Measured windows at most, looking for one without a major GC (below). */
const MAX_WINDOWS = 4;

async function child(kind: Case): Promise<void> {
  const { PerformanceObserver, constants } = await import("node:perf_hooks");
  const { Core } = await import("../../host/core/core.ts");
  const { parseConfig } = await import("../../host/config/load.ts");
  const { coreSizing, provision } = await import("../../host/pipeline/provision.ts");
  const { Pipeline } = await import("../../host/pipeline/pipeline.ts");
  const { configs } = await import("../e2e/forwarder-util.ts");

  /** The "wire" between the two fake sockets: datagrams and their sender. */
  class Wire {
    n = 0;
    /** Next datagram to receive (a batch of fragments is more than one receive). */
    r = 0;
    readonly bytes = new Uint8Array(2 * BATCH * 2048);
    readonly lens = new Uint32Array(2 * BATCH);
  }
  class FakeUdp {
    readonly family = 4 as const;
    readonly fd = -1;
    cb: ((err: Error | null) => void) | null = null;
    constructor(readonly out: Wire, readonly inp: Wire, readonly peer: Uint8Array) {}
    onReadable(cb: (err: Error | null) => void) { this.cb = cb; }
    holding() { return false; }
    recvBatch(mem: Uint8Array, offs: Uint32Array, lens: Uint32Array, addrs: Uint8Array, ports: Uint16Array, max: number, _cap: number, locals: Uint8Array): number {
      const w = this.inp, n = Math.min(w.n - w.r, max);
      for (let i = 0; i < n; i++) {
        const len = w.lens[w.r + i], from = (w.r + i) * 2048, to = offs[i];
        for (let b = 0; b < len; b++) mem[to + b] = w.bytes[from + b]; // no subarray: the fake must not allocate either
        lens[i] = len;
        for (let b = 0; b < 16; b++) { addrs[i * 16 + b] = this.peer[b]; locals[i * 16 + b] = 0; }
        ports[i] = 4500;
      }
      w.r += n;
      if (w.r === w.n) w.n = w.r = 0;
      return n;
    }
    sendBatch(mem: Uint8Array, offs: Uint32Array, lens: Uint32Array, _a: Uint8Array, _p: Uint16Array, _f: Uint8Array, n: number): number {
      const w = this.out;
      for (let i = 0; i < n; i++) {
        const len = lens[i], from = offs[i], to = w.n * 2048;
        for (let b = 0; b < len; b++) w.bytes[to + b] = mem[from + b];
        w.lens[w.n++] = len;
      }
      return n;
    }
    counters() { return { failed: 0, lastErrno: 0, unsent: 0, truncated: 0 }; }
    close() {}
  }
  class FakeTun {
    readonly name = "fake0";
    written = 0;
    constructor(readonly pkt: Uint8Array) {}
    onReadable() {}
    holding() { return false; }
    readBatch(mem: Uint8Array, offs: Uint32Array, lens: Uint32Array, max: number): number {
      for (let i = 0; i < max; i++) { mem.set(this.pkt, offs[i]); lens[i] = this.pkt.length; }
      return max;
    }
    writeBatch(_m: Uint8Array, _o: Uint32Array, _l: Uint32Array, n: number): number { this.written += n; return n; }
    counters() { return { failed: 0, lastErrno: 0, unsent: 0, truncated: 0 }; }
    close() {}
  }
  /** IPv4 UDP packet src → dst with 1000 payload bytes (checksum 0: the core does not check it); DF clear only to be fragmented. */
  const df = kind === "fragment" ? 0 : 0x40;
  const inner = (src: number[], dst: number[]) => {
    const p = new Uint8Array(1028);
    p.set([0x45, 0, 1028 >> 8, 1028 & 0xff, 0, 0, df, 0, 64, 17, 0, 0, ...src, ...dst, 0x30, 0x39, 0x1a, 0x85, 1008 >> 8, 1008 & 0xff]);
    return p;
  };
  const docs = configs({ name: "noalloc", mode: "tunnel", outer: 4, encap: "udp", suite: "aes-128-gcm", ...(kind === "through" ? {} : { mtu: 1000 }) }, "/tmp");
  if (kind !== "through") {
    // IPv4 prefixes only: a 1000-byte path leaves IPv6 less than its 1280 (refused by the config check)
    for (const d of [docs.a, docs.b] as any[]) {
      d.node.local_prefixes = d.node.local_prefixes.filter((x: string) => !x.includes(":"));
      d.peers[0].prefixes = d.peers[0].prefixes.filter((x: string) => !x.includes(":"));
    }
  }
  const addr = (s: string) => { const a = new Uint8Array(16); a.set(s.split(".").map(Number)); return a; };
  const ab = new Wire(), ba = new Wire();
  const side = async (doc: object, tunPkt: Uint8Array, out: Wire, inp: Wire, peer: string) => {
    const config = parseConfig(JSON.stringify(doc), { baseDir: "/tmp", source: "<noalloc>" }).config;
    const core = await Core.create({ slots: BATCH, ...coreSizing(config) });
    const prov = provision(core, config);
    const udp = new FakeUdp(out, inp, addr(peer));
    const tun = new FakeTun(tunPkt);
    const pipe = new Pipeline(core, tun as never, [{ name: "wan", udp: udp as never, raw: new Map() }], prov);
    pipe.start((where, e) => { throw new Error(`${where}: ${e.message}`); });
    return { pipe, udp, tun };
  };
  const A = await side(docs.a, inner([10, 1, 0, 5], [10, 2, 0, 7]), ab, ba, "192.0.2.2");
  const B = await side(docs.b, inner([10, 2, 0, 7], [10, 1, 0, 5]), ba, ab, "192.0.2.1");
  const round = () => {
    A.pipe.outboundBatch();
    while (ab.n > 0) B.udp.cb!(null);
    B.pipe.outboundBatch();
    while (ba.n > 0) A.udp.cb!(null);
  };
  const host = () => {
    const a = A.pipe.counters, b = B.pipe.counters;
    return { fragmented: a.fragmented + b.fragmented, answered: a.icmpTooBig + a.icmpRateLimited + b.icmpTooBig + b.icmpRateLimited };
  };
  for (let i = 0; i < WARMUP; i++) round();
  let minorGcs = 0, majorGcs = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (((e as PerformanceEntry & { detail?: { kind: number } }).detail)?.kind === constants.NODE_PERFORMANCE_GC_MINOR) minorGcs++;
      else majorGcs++;
    }
  });
  obs.observe({ entryTypes: ["gc"] });
  // A major GC in the window (V8's memory reducer, on a timer) moves heapUsed by up to
  // ~270 KB whatever the loop does (seen with no scavenge at all): the window is measured
  // again, up to MAX_WINDOWS times, until one passes without; every scavenge of every window counts.
  let report: Report | undefined;
  let scavenges = 0;
  for (let w = 0; w < MAX_WINDOWS && (report === undefined || report.majorGcs > 0); w++) {
    minorGcs = 0;
    majorGcs = 0;
    const before = process.memoryUsage().heapUsed;
    const delivered0 = A.tun.written + B.tun.written;
    const host0 = host();
    for (let i = 0; i < MEASURED; i++) round();
    const heapDelta = process.memoryUsage().heapUsed - before;
    const delivered = A.tun.written + B.tun.written - delivered0;
    const host1 = host();
    await new Promise((r) => setTimeout(r, 100)); // let gc entries reach the observer
    scavenges += minorGcs;
    report = {
      packets: 2 * MEASURED * BATCH, delivered, fragmented: host1.fragmented - host0.fragmented, answered: host1.answered - host0.answered,
      minorGcs: scavenges, majorGcs, heapDelta, windows: w + 1,
    };
  }
  obs.disconnect();
  process.stdout.write(JSON.stringify(report) + "\n");
}

const CHILD = process.env.WESP_PIPELINE_NOALLOC_CHILD;
if (CHILD) {
  await child(CHILD as Case);
} else {
  const run = (kind: Case): Report => {
    const r = spawnSync(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url)], {
      env: { ...process.env, WESP_PIPELINE_NOALLOC_CHILD: kind },
      encoding: "utf8",
      timeout: 280_000,
    });
    assert.equal(r.status, 0, r.stderr);
    const rep = JSON.parse(r.stdout.trim().split("\n").pop()!) as Report;
    assert.equal(rep.minorGcs, 0, `scavenges during ${rep.windows} × ${rep.packets} packets: ${JSON.stringify(rep)}`);
    // heapUsed says something only over a window without a major GC (the child tried MAX_WINDOWS)
    if (rep.majorGcs === 0) assert.ok(rep.heapDelta < HEAP_BOUND, `heapUsed grew ${rep.heapDelta} bytes over ${rep.packets} packets`);
    return rep;
  };
  test("Pipeline batches allocate nothing per packet (outbound, socket → inbound, both ways)", { timeout: 300_000 }, () => {
    const rep = run("through");
    assert.equal(rep.delivered, rep.packets, "every packet crossed both pipelines to the far TUN");
  });
  test("too big, DF clear: the core's fragments cross, nothing allocated", { timeout: 300_000 }, () => {
    const rep = run("fragment");
    assert.equal(rep.fragmented, rep.packets, "every packet was fragmented");
    assert.equal(rep.delivered, 2 * rep.packets, "both pieces of every packet reached the far TUN");
  });
  test("too big, DF set: the core's ICMP errors, under the rate limit, nothing allocated", { timeout: 300_000 }, () => {
    const rep = run("icmp");
    assert.equal(rep.answered, rep.packets, "every packet was answered or rate-limited");
    assert.equal(rep.fragmented, 0);
  });
}
