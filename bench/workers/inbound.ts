// `node --import tsx bench/workers/inbound.ts [--seconds S] [--rounds R] [--size B] [--peers 1,8] [--workers 1,2]
//   [--rate PPS] [--tick-ms MS] [--flows distinct|same] [--sink forward|route|nft] [--wesp PATH] [--json]`
// (root): the forwarder alone, inbound, one worker against two (issue 9 item 2:
// "two workers on two cores: ≥ 1.7× one worker"; docs/performance.md "Workers").
//
//   lab namespaces <prefix><pid>-<n>-{src,fw} (bench/lab.ts), one veth between
//   ┌──────────────────────────────────────────────────────────────────────┐
//   │ src: esp_source.ts (the P peers, 192.0.2.2.. :4500)                  │
//   │   ESP in UDP, pre-sealed, UDP_SEGMENT trains of 64 ──► 192.0.2.1:4500│
//   │ fw: wesp up (node.workers = N): the kernel steers each train by SPI  │
//   │   to the worker owning the SA; it opens, checks policy, and writes   │
//   │   the inner packets to its TUN; its kernel forwards them into a veth │
//   │   whose other end drops them (10.1.200.1; `--sink route`: no route,  │
//   │   forwarding off; `--sink nft`: an nftables netdev ingress chain on  │
//   │   the TUN drops them before IP)                                      │
//   └──────────────────────────────────────────────────────────────────────┘
//
// The source costs one sendmmsg per 64 packets, so on a 2-core machine two
// workers get nearly two cores (the outbound bench, index.ts, feeds the TUN
// with UDP_SEGMENT trains for the same reason). The SA has replay_window 0
// (RFC 4303 §3.4.3 lets a receiver turn anti-replay off), so the source can
// resend one pool of sealed packets; everything else is the real inbound path.
// Per (P, N): warm up 2 s, then count for S seconds the packets wesp opened
// (`wesp status`), wesp's CPU and the source's, where the CPU went
// (measure.ts, sched_sample.ts), and what the source offered: the datagrams
// it sent and those the kernel dropped at wesp's full sockets (a run where
// nothing was dropped did not keep wesp busy). `--wesp PATH` runs another
// tree's bin/wesp.js under the same bench and source (before/after).
import { loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { requestStatus } from "../../host/control/client.ts";
import type { Lab } from "../../host/lab/lab.ts";
import type { LabProcess } from "../../host/lab/process.ts";
import { benchLab } from "../lab.ts";
import { tunWritten, udpKernelDrops } from "./status_rows.ts";
import { benchPeer, measure, medians, opt, printTable, rounds, sleep, writeBenchConfig, type Run } from "./measure.ts";

const args = process.argv.slice(2);
const SECONDS = Number(opt(args, "--seconds", "8"));
const SIZE = Number(opt(args, "--size", "1300"));
const PEERS = opt(args, "--peers", "1").split(",").map(Number);
const WORKERS = opt(args, "--workers", "1,2").split(",").map(Number);
const ROUNDS = Number(opt(args, "--rounds", "3"));
/** Datagrams per second the source offers: above what two workers open here, so wesp is the bottleneck. */
const RATE = Number(opt(args, "--rate", "400000"));
/**
 * Where the kernel drops what wesp writes to its TUN (it runs that in the
 * writing thread, so it is charged to wesp):
 * - `forward` (the default since 2026-12-06 20:45): the namespace forwards, and
 *   10.1.200.0/24 is on a veth whose other end drops every frame (a MAC nobody
 *   has, as the outbound bench's sink). What a gateway's kernel does with a
 *   tunnel's traffic: IP input finds the nexthop's cached input route and
 *   forwards.
 * - `route`, the default before: IP input with forwarding off and no route.
 *   The kernel's path for an unroutable packet caches nothing: it allocates a
 *   route (dst) per packet, frees it through RCU and counts an error
 *   (ip_route_input_slow → rt_dst_alloc, ip_error): the kernel's error path,
 *   not what a gateway does with a tunnel's traffic. With two workers it cost
 *   −0.1 to +0.7 µs a packet more than with one (docs/performance.md "Workers",
 *   20:30–21:02).
 * - `nft`, an nftables netdev ingress chain on the TUN with policy drop, before
 *   IP (this kernel has no tc drop action; XDP would need a compiled program).
 */
const SINK = opt(args, "--sink", "forward");
if (SINK !== "forward" && SINK !== "route" && SINK !== "nft") throw new Error(`--sink: forward, route or nft, not ${SINK}`);
/** Inner flows of the workers' pools: each its own (the default), or all the same 256 (esp_source.ts). */
const FLOWS = opt(args, "--flows", "distinct");
/**
 * How long the source sleeps when it is ahead of its rate (ms, esp_source.ts):
 * each wake-up on core 0 preempts the worker that shares that core (two
 * workers). 5 (since 2026-12-07 01:40; 1 before): that worker's involuntary
 * switches fell from 500–870 to 150–300 a second, the trains leaving in bursts
 * of ~2,000 datagrams (docs/performance.md "Workers", "The source's wake-ups").
 */
const TICK_MS = opt(args, "--tick-ms", "5");
const JSON_OUT = args.includes("--json");
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** The wesp under test: this tree's, or another's (`--wesp /other/tree/bin/wesp.js`: its code, same bench and source). */
const WESP = opt(args, "--wesp", join(ROOT, "bin", "wesp.js"));

const opened = async (sock: string) => (await requestStatus(sock)).global.inbound.packets;

/**
 * What a run counts: packets wesp wrote to its TUN (every worker's queue),
 * i.e. forwarded, not only opened (the core's inbound counter, which also
 * counts a packet that then fails its policy check or its TUN write). On the
 * bench's clean traffic the two are equal; `one` says when they are not.
 */
async function counts(sock: string): Promise<{ forwarded: number; opened: number }> {
  const st = await requestStatus(sock);
  return { forwarded: tunWritten(st.sockets), opened: st.global.inbound.packets };
}

/** Datagrams the kernel dropped at wesp's UDP sockets so far, every worker's (their receive buffers full; `wesp status`). */
const droppedAt = async (sock: string) => udpKernelDrops((await requestStatus(sock)).sockets);

/** Datagrams the ESP source has sent so far: asked with SIGUSR2, read from its next "sent N" line. */
async function sourceSent(src: LabProcess): Promise<number> {
  const from = src.stdout.length;
  process.kill(src.pid, "SIGUSR2");
  for (let i = 0; i < 200; i++) {
    const m = /sent (\d+)\n/.exec(src.stdout.slice(from));
    if (m) return Number(m[1]);
    await sleep(5);
  }
  throw new Error("the ESP source did not say what it sent");
}

async function one(lab: Lab, workers: number, peers: number): Promise<Run> {
  const fw = lab.at("fw");
  const { path, socket: sock } = writeBenchConfig(lab.dir, { workers, peers, encap: "udp", replayWindow: 0 });
  const up = fw.spawn([process.execPath, WESP, "up", path]);
  try {
    for (let i = 0; i < 300 && up.running && !/forwarding on/.test(up.output); i++) await sleep(100);
    if (!/forwarding on/.test(up.output)) throw new Error(`wesp up did not start: ${up.output.trim()}`);
    if (SINK === "nft") {
      // The TUN is new with every wesp up: the table is made anew for it (the first line
      // makes sure there is one to delete).
      const ruleset = [
        "table netdev sink {}", "delete table netdev sink",
        "table netdev sink {", "  chain ingress_drop {", "    type filter hook ingress device wesp0 priority 0; policy drop;", "  }", "}", "",
      ].join("\n");
      await fw.run(["nft", "-f", "-"], { input: ruleset });
    }
    const src = lab.at("src").spawn([process.execPath, "--import", "tsx", join(ROOT, "bench", "workers", "esp_source.ts"), path, String(workers), String(SIZE), "3600", String(RATE), FLOWS, TICK_MS], { cwd: ROOT });
    try {
      for (let i = 0; i < 600 && src.running && (await opened(sock)) < 10_000; i++) await sleep(100);
      if (!src.running) throw new Error(`the ESP source ended: ${src.output.trim()}`);
      await sleep(2000); // warm-up: JIT, WASM tier-up
      const offer = async () => ({ sent: await sourceSent(src), dropped: await droppedAt(sock) });
      // The forward sink must see what wesp wrote (else the kernel dropped it on the way, e.g. rp_filter).
      const sunk = async () => (SINK === "forward" ? Number(await fw.run(["cat", "/sys/class/net/sink0/statistics/tx_packets"])) : 0);
      const k0 = await sunk();
      const c0 = await counts(sock);
      const run = await measure({ workers, peers, size: SIZE, seconds: SECONDS, wesp: up.pid, source: src.pid, count: async () => (await counts(sock)).forwarded, offer });
      const c1 = await counts(sock);
      const fwd = c1.forwarded - c0.forwarded, opn = c1.opened - c0.opened;
      if (Math.abs(fwd - opn) > 0.001 * opn) console.error(`note: wesp opened ${opn} packets and wrote ${fwd} to its TUN in the run`);
      const k = (await sunk()) - k0;
      if (SINK === "forward" && k < 0.99 * fwd) console.error(`note: wesp wrote ${fwd} packets to its TUN and the kernel forwarded ${k} to the sink`);
      return run;
    } finally {
      await src.stop("SIGTERM", 3000);
    }
  } finally {
    await up.stop("SIGTERM", 10_000);
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("needs root (network namespace, TUN)");
  const lab = benchLab((line) => console.error(line));
  try {
    const fw = await lab.ns("fw");
    const src = await lab.ns("src");
    // A veth carries a UDP_SEGMENT train whole (no segmentation on the way), and wesp's
    // UDP_GRO socket takes it whole: the source's kernel work is one skb per train.
    await lab.veth(src, "wan", fw, "wan");
    for (let i = 0; i < Math.max(...PEERS); i++) await src.addr("wan", `${benchPeer(i).address}/24`);
    await fw.addr("wan", "192.0.2.1/24");
    if (SINK === "forward") {
      // The outbound bench's sink (index.ts): a veth whose other end takes every frame and drops
      // it at once, addressed to a MAC nobody has (PACKET_OTHERHOST, the first check of IP
      // input). This kernel has no dummy driver. It stays for every run of the lab.
      await lab.veth(fw, "sink0", fw, "sink1");
      await fw.addr("sink0", "10.1.200.2/24");
      await fw.ip("neigh", "replace", "10.1.200.1", "lladdr", "02:00:00:00:00:99", "dev", "sink0", "nud", "permanent");
      await fw.run(["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    }
    const runs = await rounds({ rounds: ROUNDS, peers: PEERS, workers: WORKERS, one: (w, p) => one(lab, w, p) });
    const rows = medians(runs);
    if (JSON_OUT) {
      console.log(JSON.stringify({ direction: "in", wesp: WESP, size: SIZE, seconds: SECONDS, rounds: ROUNDS, rate: RATE, flows: FLOWS, tickMs: Number(TICK_MS), sink: SINK, load: loadavg(), runs, rows }, null, 1));
      return;
    }
    printTable(`forwarder alone, inbound: ${SIZE}-byte inner packets, aes-256-gcm in UDP, ${RATE} packets/s offered by an ESP source on the same machine (${FLOWS} inner flows per worker), sink ${SINK}, ${SECONDS} s per run${args.includes("--wesp") ? `, wesp ${WESP}` : ""}`, rows, ROUNDS, runs);
  } finally {
    await lab.teardown();
  }
}

main().catch((e) => {
  console.error(e.message);
  process.exitCode = 1;
});
