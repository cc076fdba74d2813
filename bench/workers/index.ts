// `node --import tsx bench/workers/index.ts [--seconds S] [--rounds R] [--size B] [--flows F] [--peers 1,8]
//   [--workers 1,2] [--encap udp|raw] [--gen trains|datagrams] [--rate PPS] [--wesp PATH] [--json]`
// (root): the forwarder alone, outbound, one worker against two (issue 9
// item 2: "two workers on two cores: ≥ 1.7× one worker"). docs/performance.md "Workers".
//
//   namespace (one)
//   ┌──────────────────────────────────────────────────────────────────────┐
//   │ generator.ts ──UDP, F flows over P peers' prefixes──► TUN wesp0     │
//   │   (UDP_SEGMENT trains, paced)                        (one queue per │
//   │                                                       worker)       │
//   │                               wesp up (node.workers = N) ◄──────────┘
//   │                                 seals with worker i's SA of the     │
//   │                                 flow's peer                         │
//   │                                 ──► ESP out of "wan", a veth whose  │
//   │                                     other end is the sink: frames   │
//   │                                     to a MAC nobody has, dropped on │
//   │                                     arrival (one skb per GSO train) │
//   └──────────────────────────────────────────────────────────────────────┘
//
// Per (P, N): warm up 2 s, then for S seconds count the ESP packets wesp sealed
// (`wesp status`), wesp's CPU and the generator's (/proc), and where the CPU
// went (sched_sample.ts). Prints packets/s, Gbit/s of inner payload, packets
// per wesp CPU-second, the ratio N : 1 of both, the generator's CPU and the
// load average. The generator runs on the same cores; with trains (the
// default, generator.ts) it needs a few hundredths of a core, with
// `--gen datagrams` (one datagram per message) most of one.
//
// The namespace is a lab of host/lab/ (bench/lab.ts): `<prefix><pid>-<n>-wk`,
// with wesp and the generator as its processes; it is removed at the end, on
// failure, on Ctrl-C and SIGTERM, and by the next run after a SIGKILL.
import { loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { requestStatus } from "../../host/control/client.ts";
import type { Lab } from "../../host/lab/lab.ts";
import type { Netns } from "../../host/lab/namespace.ts";
import { waitFor } from "../../host/util/proc.ts";
import { benchLab } from "../lab.ts";
import { benchPeer, measure, medians, opt, printTable, rounds, sleep, writeBenchConfig, type Run } from "./measure.ts";

const args = process.argv.slice(2);
const SECONDS = Number(opt(args, "--seconds", "8"));
const SIZE = Number(opt(args, "--size", "1300"));
const FLOWS = Number(opt(args, "--flows", "64"));
const PEERS = opt(args, "--peers", "1").split(",").map(Number);
const WORKERS = opt(args, "--workers", "1,2").split(",").map(Number);
const ENCAP = opt(args, "--encap", "udp") as "udp" | "raw";
const GEN = opt(args, "--gen", "trains");
/** Datagrams per second offered: above what two workers seal here, so wesp is the bottleneck (the TUN drops the rest). */
const RATE = Number(opt(args, "--rate", "400000"));
const ROUNDS = Number(opt(args, "--rounds", "3"));
const JSON_OUT = args.includes("--json");
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** The wesp under test: this tree's, or another's (`--wesp /other/tree/bin/wesp.js`: its code, same bench and generator). */
const WESP = opt(args, "--wesp", join(ROOT, "bin", "wesp.js"));

/** The one namespace of the diagram. */
async function setup(lab: Lab): Promise<Netns> {
  const ns = await lab.ns("wk");
  // The sink: a veth whose other end takes every frame and drops it at once (addressed to
  // a MAC nobody has: PACKET_OTHERHOST, the first check of IP input), one skb per UDP GSO
  // train. (A dummy device would cost less, but this kernel has no dummy driver.)
  await ns.lab.veth(ns, "wan", ns, "sink");
  await ns.addr("wan", "192.0.2.1/24");
  for (let i = 0; i < Math.max(...PEERS); i++) {
    await ns.ip("neigh", "replace", benchPeer(i).address, "lladdr", "02:00:00:00:00:99", "dev", "wan", "nud", "permanent");
  }
  return ns;
}

/** ESP packets wesp sealed and sent so far (`wesp status`). */
const sealed = async (sock: string) => (await requestStatus(sock)).global.outbound.packets;

async function one(ns: Netns, workers: number, peers: number): Promise<Run> {
  const dir = ns.lab.dir;
  const cfg = writeBenchConfig(dir, { workers, peers, encap: ENCAP });
  const up = ns.spawn([process.execPath, WESP, "up", cfg.path]);
  try {
    await waitFor(() => !up.running || /forwarding on/.test(up.output), `wesp up (${workers} workers)`, 30_000);
    if (!up.running) throw new Error(`wesp up did not start: ${up.output.trim()}`);
    // `ip netns exec` execs the command: the lab's process is wesp itself
    const dsts = Array.from({ length: peers }, (_, i) => benchPeer(i).host).join(",");
    // The generator runs until stopped; its start-up (tsx) is slow on a loaded machine, so wait for its first batch.
    const gen = ns.spawn([process.execPath, "--import", "tsx", join(ROOT, "bench", "workers", "generator.ts"), dsts, String(SIZE), String(FLOWS), "3600", String(RATE), GEN], { cwd: ROOT });
    try {
      const sock = cfg.socket;
      await waitFor(async () => !gen.running || (await sealed(sock)) >= 1000, "the generator's first packets", 60_000, 100);
      if (!gen.running) throw new Error(`the generator exited: ${gen.output.trim()}`);
      await sleep(2000); // warm-up: JIT, WASM tier-up, TUN queues
      return await measure({ workers, peers, size: SIZE, seconds: SECONDS, wesp: up.pid, source: gen.pid, count: () => sealed(sock) });
    } finally {
      await gen.stop("SIGTERM", 3000);
    }
  } finally {
    await up.stop("SIGTERM", 10_000);
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("needs root (network namespace, TUN)");
  const lab = benchLab((l) => console.error(l));
  try {
    const ns = await setup(lab);
    const runs = await rounds({ rounds: ROUNDS, peers: PEERS, workers: WORKERS, one: (w, p) => one(ns, w, p) });
    const rows = medians(runs);
    if (JSON_OUT) {
      console.log(JSON.stringify({ direction: "out", wesp: WESP, size: SIZE, flows: FLOWS, seconds: SECONDS, rounds: ROUNDS, encap: ENCAP, gen: GEN, rate: RATE, load: loadavg(), runs, rows }, null, 1));
      return;
    }
    printTable(`forwarder alone, outbound: ${SIZE}-byte UDP, ${FLOWS} flows, aes-256-gcm, ESP ${ENCAP}, generator ${GEN} at ${RATE} datagrams/s offered on the same machine, ${SECONDS} s per run${args.includes("--wesp") ? `, wesp ${WESP}` : ""}`, rows, ROUNDS, runs);
  } finally {
    await lab.teardown();
  }
}

main().catch((e) => {
  console.error(e.message);
  process.exitCode = 1;
});
