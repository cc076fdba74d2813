// `node --import tsx bench/workers/index.ts [--seconds S] [--rounds R] [--size B] [--flows F] [--workers 1,2] [--encap udp|raw] [--json]`
// (root): the forwarder alone, one worker against two (issue 9 item 2: "two
// workers on two cores: ≥ 1.7× one worker"). docs/performance.md "Workers".
//
//   namespace (one)
//   ┌──────────────────────────────────────────────────────────────────────┐
//   │ generator.ts ──UDP, F flows──► kernel route 10.2/16 ──► TUN wesp0   │
//   │   (sendmmsg)                                        (one queue per  │
//   │                                                      worker)        │
//   │                               wesp up (node.workers = N) ◄──────────┘
//   │                                 seals with worker i's SA            │
//   │                                 ──► ESP out of "wan", a veth whose  │
//   │                                     other end is the sink: frames   │
//   │                                     to a MAC nobody has, dropped on │
//   │                                     arrival; wan counts tx_packets  │
//   └──────────────────────────────────────────────────────────────────────┘
//
// Per N: warm up 2 s, then for S seconds count the ESP packets wesp sealed
// and sent (`wesp status`: the veth's tx_packets counts a UDP GSO train as
// one) and the CPU seconds wesp used (/proc/PID/stat).
// Prints packets/s and Gbit/s of inner payload, packets per wesp CPU-second,
// and the ratio N=2 : N=1. The generator runs on the same cores: on a 2-core
// machine it competes with the workers, so say so beside the numbers.
//
// The namespace is a lab of host/lab/ (bench/lab.ts): `wbench-<pid>-<n>-wk`,
// with wesp and the generator as its processes; it is removed at the end, on
// failure, on Ctrl-C and SIGTERM, and by the next run after a SIGKILL.
import { readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { requestStatus } from "../../host/control/client.ts";
import type { Lab } from "../../host/lab/lab.ts";
import type { Netns } from "../../host/lab/namespace.ts";
import { waitFor } from "../../host/util/proc.ts";
import { benchLab } from "../lab.ts";

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const SECONDS = Number(opt("--seconds", "8"));
const SIZE = Number(opt("--size", "1300"));
const FLOWS = Number(opt("--flows", "64"));
const WORKERS = opt("--workers", "1,2").split(",").map(Number);
const ENCAP = opt("--encap", "udp") as "udp" | "raw";
const ROUNDS = Number(opt("--rounds", "3"));
const JSON_OUT = args.includes("--json");
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const WESP = join(ROOT, "bin", "wesp.js");

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The one namespace of the diagram. */
async function setup(lab: Lab): Promise<Netns> {
  const ns = await lab.ns("wk");
  // The sink: a veth whose other end takes every frame and drops it at once (addressed to
  // a MAC nobody has: PACKET_OTHERHOST); the wan end counts what wesp sent.
  await lab.veth(ns, "wan", ns, "sink");
  await ns.addr("wan", "192.0.2.1/24");
  await ns.ip("neigh", "replace", "192.0.2.2", "lladdr", "02:00:00:00:00:99", "dev", "wan", "nud", "permanent");
  return ns;
}

function config(dir: string, workers: number): string {
  const k = () => randomBytes(36).toString("hex");
  const cfg = {
    version: 1,
    node: {
      name: "bench", wan: [{ name: "wan", address: "192.0.2.1", port: 4500, encap: ENCAP }],
      tun: { name: "wesp0", mtu: 1400, addresses: ["10.1.0.1/24"] }, local_prefixes: ["10.1.0.0/16"],
      control: { socket: join(dir, "c.sock") }, state_dir: join(dir, "state"), workers,
    },
    peers: [{
      name: "sink", address: "192.0.2.2", port: 4500, ...(ENCAP === "udp" ? { nat_t: true } : {}), prefixes: ["10.2.0.0/16"], mode: "tunnel",
      sas: [{ spi_in: 0x1000, spi_out: 0x2000, suite: "aes-256-gcm", key_in: k(), key_out: k() }],
    }],
  };
  const path = join(dir, `w${workers}.json`);
  writeFileSync(path, JSON.stringify(cfg), { mode: 0o600 });
  return path;
}

/** ESP packets wesp sealed and sent so far (`wesp status`; the veth's tx_packets counts GSO trains as one). */
const sealed = async (sock: string) => (await requestStatus(sock)).global.outbound.packets;
function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in clock ticks (USER_HZ 100)
}

interface Row { workers: number; pps: number; gbps: number; ppsPerCpu: number; cpu: number }

async function one(ns: Netns, workers: number): Promise<Row> {
  const dir = ns.lab.dir;
  const up = ns.spawn([process.execPath, WESP, "up", config(dir, workers)]);
  try {
    await waitFor(() => !up.running || /forwarding on/.test(up.output), `wesp up (${workers} workers)`, 30_000);
    if (!up.running) throw new Error(`wesp up did not start: ${up.output.trim()}`);
    // `ip netns exec` execs the command: the lab's process is wesp itself
    const pid = up.pid;
    if (!readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("wesp.js")) throw new Error(`process ${pid} is not wesp`);
    // The generator runs until stopped; its start-up (tsx) is slow on a loaded machine, so wait for its first batch.
    const gen = ns.spawn([process.execPath, "--import", "tsx", join(ROOT, "bench", "workers", "generator.ts"), "10.2.0.2", String(SIZE), String(FLOWS), "3600"], { cwd: ROOT });
    try {
      const sock = join(dir, "c.sock");
      await waitFor(async () => !gen.running || (await sealed(sock)) >= 1000, "the generator's first packets", 60_000, 100);
      if (!gen.running) throw new Error(`the generator exited: ${gen.output.trim()}`);
      await sleep(2000); // warm-up: JIT, WASM tier-up, TUN queues
      const p0 = await sealed(sock), t0 = process.hrtime.bigint(), c0 = cpuSeconds(pid);
      await sleep(SECONDS * 1000);
      const p1 = await sealed(sock), t1 = process.hrtime.bigint(), c1 = cpuSeconds(pid);
      const secs = Number(t1 - t0) / 1e9, pkts = p1 - p0, cpu = c1 - c0;
      return { workers, pps: pkts / secs, gbps: (pkts * SIZE * 8) / secs / 1e9, ppsPerCpu: cpu > 0 ? pkts / cpu : 0, cpu: cpu / secs };
    } finally {
      await gen.stop("SIGTERM");
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
    // Rounds interleave the worker counts, so load from elsewhere hits them alike; medians per count.
    const runs = new Map<number, Row[]>(WORKERS.map((w) => [w, []]));
    for (let r = 0; r < ROUNDS; r++) for (const w of WORKERS) runs.get(w)!.push(await one(ns, w));
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const rows: Row[] = WORKERS.map((w) => {
      const rs = runs.get(w)!;
      return { workers: w, pps: median(rs.map((r) => r.pps)), gbps: median(rs.map((r) => r.gbps)), ppsPerCpu: median(rs.map((r) => r.ppsPerCpu)), cpu: median(rs.map((r) => r.cpu)) };
    });
    const base = rows.find((r) => r.workers === 1);
    if (JSON_OUT) {
      console.log(JSON.stringify({ size: SIZE, flows: FLOWS, seconds: SECONDS, rounds: ROUNDS, encap: ENCAP, load: loadavg(), rows }, null, 1));
      return;
    }
    console.log(`forwarder alone: ${SIZE}-byte UDP, ${FLOWS} flows, aes-256-gcm, ESP ${ENCAP}, ${SECONDS} s per run, median of ${ROUNDS}; generator on the same machine`);
    console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? "?"}, load average ${loadavg().map((l) => l.toFixed(1)).join(" ")} at the end`);
    console.log("workers   packets/s   Gbit/s   wesp CPU (cores)   packets per wesp CPU-s   ratio to 1");
    for (const r of rows) {
      const ratio = base ? (r.pps / base.pps).toFixed(2) + "×" : "-";
      console.log(`${String(r.workers).padStart(7)} ${Math.round(r.pps).toString().padStart(11)} ${r.gbps.toFixed(3).padStart(8)} ${r.cpu.toFixed(2).padStart(18)} ${Math.round(r.ppsPerCpu).toString().padStart(24)}   ${ratio}`);
    }
  } finally {
    await lab.teardown();
  }
}

main().catch((e) => {
  console.error(e.message);
  process.exitCode = 1;
});
