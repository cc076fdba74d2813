// No allocation per packet on the offloaded path (issue 9): the JS heap stays
// flat while a million inner packets cross two real Pipelines whose TUNs have
// IFF_VNET_HDR with TSO and whose UDP sockets send UDP_SEGMENT trains and
// receive with UDP_GRO — super-packets segmented on read, trains sent and
// received, TCP runs and (with USO) UDP runs coalesced on TUN write.
//
// One child process (started with --expose-gc, so the test runner's own
// allocations do not count) opens ceA's TUN and socket inside namespace ceA
// and ceB's inside ceB (Tun/UdpSocket netns option), and runs both Pipelines
// on its event loop, exactly as a worker does. iperf3 pushes TCP from hostA
// to hostB and back (-R) through them, and every third round UDP (1,372-byte
// datagrams, unlimited rate) from hostA to hostB. After a warm-up of WARMUP packets,
// the child samples heapUsed after global.gc() every SAMPLE packets; the
// spread of the samples over PACKETS packets must stay under BOUND (one byte
// per packet would be 1 MB), and not one scavenge may run in between (the
// collections the child forces are major ones). Measured: 0 scavenges, 44 KB
// spread over 1,000,991 packets, 39 s.
// The counters must show the offloads carried the traffic.
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const PACKETS = Number(process.env.WESP_NOALLOC_PACKETS ?? 1_000_000);
const WARMUP = 50_000;
const SAMPLE = 100_000;
/** Spread allowed of heapUsed-after-gc over PACKETS packets: 512 KiB (< 0.6 byte per packet). */
const BOUND = 512 << 10;

interface Report {
  packets: number;
  heap: number[];
  scavenges: number;
  superPackets: number;
  /** UDP_SEGMENT trains sent plus UDP_GRO trains received, both sides. */
  trains: number;
  coalesced: number;
  /** UDP runs coalesced on TUN write (USO), both sides. */
  udpCoalesced: number;
}

async function child(): Promise<void> {
  const { PerformanceObserver, constants } = await import("node:perf_hooks");
  const { Core } = await import("../../host/core/core.ts");
  const { parseConfig } = await import("../../host/config/load.ts");
  const { coreSizing, provision } = await import("../../host/pipeline/provision.ts");
  const { Pipeline } = await import("../../host/pipeline/pipeline.ts");
  const { Tun } = await import("../../host/tun/tun_linux.ts");
  const { UdpSocket } = await import("../../host/net/udp_linux.ts");
  const [cfgA, cfgB, nsA, nsB] = process.argv.slice(2);
  const { readFileSync } = await import("node:fs");
  const side = async (file: string, ns: string, address: string) => {
    const config = parseConfig(readFileSync(file, "utf8"), { baseDir: "/tmp", source: file }).config;
    const core = await Core.create({ slots: 256, ...coreSizing(config) });
    const prov = provision(core, config);
    const tun = Tun.open({ name: "wesp0", netns: ns, offload: true });
    const udp = UdpSocket.bind({ family: 4, address, port: 4500, netns: ns, pktinfo: true, gso: true, gro: true, rcvbuf: 4 << 20, sndbuf: 4 << 20 });
    const pipe = new Pipeline(core, tun, [{ name: "wan", udp, raw: new Map() }], prov);
    pipe.start((where, e) => {
      process.stderr.write(`${where}: ${e.message}\n`);
      process.exit(3);
    });
    return { pipe, tun, udp };
  };
  const A = await side(cfgA, nsA, "192.0.2.1");
  const B = await side(cfgB, nsB, "192.0.2.2");
  // Inner packets either way: what each TUN read (segments) plus what each socket received (datagrams).
  const count = () => A.pipe.counters.tunRead + B.pipe.counters.tunRead + A.pipe.counters.received + B.pipe.counters.received;
  let scavenges = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if ((e as PerformanceEntry & { detail?: { kind: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) scavenges++;
    }
  });
  process.stdout.write("ready\n");
  const heap: number[] = [];
  let start = -1, next = 0;
  const gc = (globalThis as { gc?: () => void }).gc!;
  await new Promise<void>((resolve) => {
    const t = setInterval(() => {
      const n = count();
      if (start < 0) {
        if (n < WARMUP) return;
        start = n;
        next = n;
        obs.observe({ entryTypes: ["gc"] });
      }
      if (n >= next) {
        gc();
        heap.push(process.memoryUsage().heapUsed);
        next += SAMPLE;
      }
      if (n - start >= PACKETS) {
        clearInterval(t);
        resolve();
      }
    }, 5);
  });
  obs.disconnect();
  const sa = A.udp.trainCounters(), sb = B.udp.trainCounters();
  const rep: Report = {
    packets: count() - start, heap, scavenges,
    superPackets: A.tun.tsoCounters().superPackets + B.tun.tsoCounters().superPackets,
    trains: sa.trains + sb.trains,
    coalesced: A.tun.tsoCounters().coalesced + B.tun.tsoCounters().coalesced,
    udpCoalesced: A.tun.tsoCounters().udpCoalesced + B.tun.tsoCounters().udpCoalesced,
  };
  A.pipe.close();
  B.pipe.close();
  process.stdout.write(JSON.stringify(rep) + "\n");
  process.exit(0);
}

if (process.env.WESP_OFFLOAD_NOALLOC_CHILD === "1") {
  await child();
} else {
  const { requireTools } = await import("../helpers/require.ts");
  const { Lab } = await import("../helpers/netns.ts");
  const { buildSites, configs, ADDR } = await import("../e2e/forwarder-util.ts");
  const { assertNoNamespacesLeft } = await import("../e2e/io-util.ts");
  test("offloaded trains allocate nothing per packet: heap flat over a million packets", {
    timeout: 240_000, skip: requireTools(["netns", "iperf3"], { why: "no-alloc over offloaded trains" }),
  }, async () => {
    const lab = new Lab();
    try {
      const s = await buildSites(lab);
      const docs = configs({ name: "noalloc-offload", mode: "tunnel", outer: 4, encap: "udp", suite: "chacha20-poly1305" }, lab.dir);
      const cfgA = join(lab.dir, "a.json"), cfgB = join(lab.dir, "b.json");
      writeFileSync(cfgA, JSON.stringify(docs.a), { mode: 0o600 });
      writeFileSync(cfgB, JSON.stringify(docs.b), { mode: 0o600 });
      const kid = lab.track([process.execPath, "--expose-gc", "--import", "tsx", fileURLToPath(import.meta.url), cfgA, cfgB, s.ceA.name, s.ceB.name], {
        env: { ...process.env, WESP_OFFLOAD_NOALLOC_CHILD: "1" },
      });
      const { waitFor } = await import("../helpers/netns.ts");
      await waitFor(() => /ready/.test(kid.stdout) || !kid.running, "child ready", 60_000);
      assert.ok(kid.running, `child: ${kid.stderr}`);
      for (const [ns, net] of [[s.ceA, "10.2.0.0/24"], [s.ceB, "10.1.0.0/24"]] as const) {
        await ns.ip("link", "set", "dev", "wesp0", "mtu", "1400", "up");
        await ns.ip("route", "replace", net, "dev", "wesp0");
      }
      const srv = s.hostB.spawn(["iperf3", "-s", "-B", ADDR.hostB.v4]);
      await waitFor(async () => (await s.hostA.exec(["iperf3", "-c", ADDR.hostB.v4, "-t", "1"])).code === 0 || !srv.running, "iperf3 server", 30_000);
      // UDP every third round, first (on a quiet machine two TCP rounds alone reach the
      // child's count), TCP both directions in turn, until the child has counted its packets.
      for (let i = 0; kid.running && i < 40; i++) {
        const udp = i % 3 === 0 ? ["-u", "-b", "0", "-l", "1372"] : i % 2 ? ["-R"] : [];
        await s.hostA.exec(["iperf3", "-c", ADDR.hostB.v4, "-t", "4", ...udp], { timeoutMs: 30_000 });
      }
      await kid.exited;
      assert.equal(kid.exitCode, 0, kid.stderr);
      const rep = JSON.parse(kid.stdout.trim().split("\n").pop()!) as Report;
      assert.ok(rep.packets >= PACKETS, `packets ${rep.packets}`);
      assert.ok(rep.superPackets > 0 && rep.trains > 0 && rep.coalesced > 0 && rep.udpCoalesced > 0, `offloads carried the traffic: ${JSON.stringify(rep)}`);
      const spread = Math.max(...rep.heap) - Math.min(...rep.heap);
      assert.equal(rep.scavenges, 0, `scavenges (what allocation triggers) over ${rep.packets} packets`);
      assert.ok(spread < BOUND, `heapUsed after gc spread ${spread} bytes over ${rep.packets} packets: ${JSON.stringify(rep)}`);
      process.stdout.write(`# ${JSON.stringify({ ...rep, spread })}\n`);
    } finally {
      await lab.teardown();
      assertNoNamespacesLeft(lab);
    }
  });
}
