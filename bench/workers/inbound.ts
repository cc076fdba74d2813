// `node --import tsx bench/workers/inbound.ts [--seconds S] [--rounds R] [--size B] [--workers 1,2] [--rate PPS] [--json]`
// (root): the forwarder alone, inbound, one worker against two (issue 9 item 2:
// "two workers on two cores: ≥ 1.7× one worker"; docs/performance.md "Workers").
//
//   lab namespaces wbench-<pid>-<n>-{src,fw} (bench/lab.ts), one veth between
//   ┌──────────────────────────────────────────────────────────────────────┐
//   │ src: esp_source.ts (the peer, 192.0.2.2:4500)                        │
//   │   ESP in UDP, pre-sealed, UDP_SEGMENT trains of 64 ──► 192.0.2.1:4500│
//   │ fw: wesp up (node.workers = N): the kernel steers each train by SPI  │
//   │   to the worker owning the SA; it opens, checks policy, and writes   │
//   │   the inner packets to its TUN, whose kernel drops them on arrival   │
//   │   (10.1.200.1: not this host, forwarding off)                        │
//   └──────────────────────────────────────────────────────────────────────┘
//
// The outbound bench (index.ts) must push every packet through the kernel
// into the TUN, which costs its generator most of a core; here the source
// costs one sendmmsg per 64 packets, so on a 2-core machine two workers get
// nearly two cores. The SA has replay_window 0 (RFC 4303 §3.4.3 lets a
// receiver turn anti-replay off), so the source can resend one pool of
// sealed packets; everything else is the real inbound path.
// Per N: warm up 2 s, then count for S seconds the packets wesp opened
// (`wesp status`), wesp's CPU and the source's (/proc/PID/stat).
import { writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { requestStatus } from "../../host/control/client.ts";
import type { Lab } from "../../host/lab/lab.ts";
import { benchLab } from "../lab.ts";
import { treeCpuSeconds } from "../tunnel/cpu.ts";

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const SECONDS = Number(opt("--seconds", "8"));
const SIZE = Number(opt("--size", "1300"));
const WORKERS = opt("--workers", "1,2").split(",").map(Number);
const ROUNDS = Number(opt("--rounds", "3"));
/** Datagrams per second the source offers: above what two workers open here, so wesp is the bottleneck. */
const RATE = Number(opt("--rate", "400000"));
const JSON_OUT = args.includes("--json");
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const WESP = join(ROOT, "bin", "wesp.js");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function config(dir: string, workers: number): string {
  const k = () => randomBytes(36).toString("hex");
  const cfg = {
    version: 1,
    node: {
      name: "bench", wan: [{ name: "wan", address: "192.0.2.1", port: 4500, encap: "udp" }],
      tun: { name: "wesp0", mtu: 1400, addresses: ["10.1.0.1/24"] }, local_prefixes: ["10.1.0.0/16"],
      control: { socket: join(dir, `c${workers}.sock`) }, state_dir: join(dir, `state${workers}`), workers,
    },
    peers: [{
      name: "source", address: "192.0.2.2", port: 4500, nat_t: true, prefixes: ["10.2.0.0/16"], mode: "tunnel",
      sas: [{ spi_in: 0x1000, spi_out: 0x2000, suite: "aes-256-gcm", key_in: k(), key_out: k(), replay_window: 0 }],
    }],
  };
  const path = join(dir, `w${workers}.json`);
  writeFileSync(path, JSON.stringify(cfg), { mode: 0o600 });
  return path;
}

interface Row { workers: number; pps: number; gbps: number; cpu: number; ppsPerCpu: number; sourceCpu: number }

const opened = async (sock: string) => (await requestStatus(sock)).global.inbound.packets;

async function one(lab: Lab, workers: number): Promise<Row> {
  const fw = lab.at("fw");
  const path = config(lab.dir, workers);
  const sock = join(lab.dir, `c${workers}.sock`);
  const up = fw.spawn([process.execPath, WESP, "up", path]);
  try {
    for (let i = 0; i < 300 && up.running && !/forwarding on/.test(up.output); i++) await sleep(100);
    if (!/forwarding on/.test(up.output)) throw new Error(`wesp up did not start: ${up.output.trim()}`);
    const src = lab.at("src").spawn([process.execPath, "--import", "tsx", join(ROOT, "bench", "workers", "esp_source.ts"), path, String(workers), String(SIZE), "3600", String(RATE)], { cwd: ROOT });
    try {
      for (let i = 0; i < 600 && src.running && (await opened(sock)) < 10_000; i++) await sleep(100);
      if (!src.running) throw new Error(`the ESP source ended: ${src.output.trim()}`);
      await sleep(2000); // warm-up: JIT, WASM tier-up
      const p0 = await opened(sock), t0 = process.hrtime.bigint();
      const [c0, s0] = treeCpuSeconds([up.pid, src.pid]);
      await sleep(SECONDS * 1000);
      const p1 = await opened(sock), t1 = process.hrtime.bigint();
      const [c1, s1] = treeCpuSeconds([up.pid, src.pid]);
      const secs = Number(t1 - t0) / 1e9, pkts = p1 - p0, cpu = c1 - c0;
      if (pkts <= 0) throw new Error(`wesp opened nothing in ${SECONDS} s`);
      return { workers, pps: pkts / secs, gbps: (pkts * SIZE * 8) / secs / 1e9, cpu: cpu / secs, ppsPerCpu: cpu > 0 ? pkts / cpu : 0, sourceCpu: (s1 - s0) / secs };
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
    await src.addr("wan", "192.0.2.2/24");
    await fw.addr("wan", "192.0.2.1/24");
    // Rounds interleave the worker counts, so load from elsewhere hits them alike; medians per count.
    const runs = new Map<number, Row[]>(WORKERS.map((w) => [w, []]));
    for (let r = 0; r < ROUNDS; r++) for (const w of WORKERS) runs.get(w)!.push(await one(lab, w));
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const rows: Row[] = WORKERS.map((w) => {
      const rs = runs.get(w)!;
      const m = (f: (r: Row) => number) => median(rs.map(f));
      return { workers: w, pps: m((r) => r.pps), gbps: m((r) => r.gbps), cpu: m((r) => r.cpu), ppsPerCpu: m((r) => r.ppsPerCpu), sourceCpu: m((r) => r.sourceCpu) };
    });
    const base = rows.find((r) => r.workers === 1);
    if (JSON_OUT) {
      console.log(JSON.stringify({ direction: "in", size: SIZE, seconds: SECONDS, rounds: ROUNDS, load: loadavg(), runs: Object.fromEntries(runs), rows }, null, 1));
      return;
    }
    console.log(`forwarder alone, inbound: ${SIZE}-byte inner packets, aes-256-gcm in UDP, ${RATE} packets/s offered, ${SECONDS} s per run, median of ${ROUNDS}; ESP source on the same machine`);
    console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? "?"}, load average ${loadavg().map((l) => l.toFixed(1)).join(" ")} at the end`);
    console.log("workers   packets/s   Gbit/s   wesp CPU (cores)   packets per wesp CPU-s   source CPU (cores)   ratio to 1");
    for (const r of rows) {
      const ratio = base ? (r.pps / base.pps).toFixed(2) + "×" : "-";
      console.log(`${String(r.workers).padStart(7)} ${Math.round(r.pps).toString().padStart(11)} ${r.gbps.toFixed(3).padStart(8)} ${r.cpu.toFixed(2).padStart(18)} ${Math.round(r.ppsPerCpu).toString().padStart(24)} ${r.sourceCpu.toFixed(2).padStart(20)}   ${ratio}`);
    }
  } finally {
    await lab.teardown();
  }
}

main().catch((e) => {
  console.error(e.message);
  process.exitCode = 1;
});
