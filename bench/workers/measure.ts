// What bench/workers/index.ts (outbound) and inbound.ts measure, the same way
// for both: the peers of the config under test, one measured interval (wesp's
// packets, wesp's CPU, the traffic source's CPU, where the CPU went), and the
// medians over rounds with their ratio to one worker.
import { writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { treeCpuSeconds } from "../tunnel/cpu.ts";
import { describe, sample, schedDelta, type SchedDelta } from "./sched_sample.ts";
import { formatRoundRatios, roundRatios } from "./round_ratios.ts";
import { median } from "../stats.ts";

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `--name value` from argv, else `dflt`. */
export function opt(args: string[], name: string, dflt: string): string {
  return args.includes(name) ? args[args.indexOf(name) + 1] : dflt;
}

/**
 * Peer k of a benchmark config: its outer address on 192.0.2.0/24, its inner
 * prefix 10.(2+k).0.0/16, and SPIs 16 apart (multiples of any worker count
 * up to 16, as `wesp check` requires: SPI mod N steers, worker_sas.ts).
 */
export function benchPeer(k: number): { name: string; address: string; prefix: string; host: string; spiIn: number; spiOut: number } {
  if (k > 200) throw new Error("at most 200 peers (one /24 of outer addresses)");
  return { name: `p${k}`, address: `192.0.2.${2 + k}`, prefix: `10.${2 + k}.0.0/16`, host: `10.${2 + k}.0.2`, spiIn: 0x1000 + 16 * k, spiOut: 0x2000 + 16 * k };
}

/**
 * Writes the config under test into `dir`: node 192.0.2.1:4500 on "wan", TUN
 * wesp0 (10.1.0.1/24, local prefix 10.1.0.0/16), `workers` packet workers,
 * and `peers` static peers (benchPeer), each one AES-256-GCM SA pair with
 * random keys. `replayWindow` 0 turns anti-replay off (RFC 4303 §3.4.3: the
 * inbound bench resends one pool). Returns its path and control socket.
 */
export function writeBenchConfig(dir: string, o: { workers: number; peers: number; encap: "udp" | "raw"; replayWindow?: number }): { path: string; socket: string } {
  const k = () => randomBytes(36).toString("hex");
  const socket = join(dir, `c${o.workers}.sock`);
  const cfg = {
    version: 1,
    node: {
      name: "bench", wan: [{ name: "wan", address: "192.0.2.1", port: 4500, encap: o.encap }],
      tun: { name: "wesp0", mtu: 1400, addresses: ["10.1.0.1/24"] }, local_prefixes: ["10.1.0.0/16"],
      control: { socket }, state_dir: join(dir, `state${o.workers}`), workers: o.workers,
    },
    peers: Array.from({ length: o.peers }, (_, i) => {
      const p = benchPeer(i);
      return {
        name: p.name, address: p.address, port: 4500, ...(o.encap === "udp" ? { nat_t: true } : {}), prefixes: [p.prefix], mode: "tunnel",
        sas: [{ spi_in: p.spiIn, spi_out: p.spiOut, suite: "aes-256-gcm", key_in: k(), key_out: k(), ...(o.replayWindow === undefined ? {} : { replay_window: o.replayWindow }) }],
      };
    }),
  };
  const path = join(dir, `w${o.workers}.json`);
  writeFileSync(path, JSON.stringify(cfg), { mode: 0o600 });
  return { path, socket };
}

export interface Run {
  /** Which round it ran in, from 0 (set by `rounds`). */
  round?: number;
  workers: number;
  peers: number;
  pps: number;
  gbps: number;
  /** wesp's CPU, in cores. */
  cpu: number;
  ppsPerCpu: number;
  /** The traffic source's CPU (generator or ESP source), in cores. */
  sourceCpu: number;
  /** 1-minute load average at the end of the interval. */
  load: number;
  /**
   * Inbound only: datagrams per second the source got into the kernel, and
   * receive-buffer drops per second at wesp's full sockets (UdpRcvbufErrors;
   * the kernel counts a dropped UDP_SEGMENT train once, however many
   * datagrams it held): a run without drops did not keep wesp busy, and then
   * measures the source.
   */
  offered?: number;
  dropped?: number;
  sched: SchedDelta;
}

/** Running totals a source can report (inbound.ts): datagrams sent, and dropped at wesp's sockets. */
export interface Offer { sent: number; dropped: number }

/**
 * Counts for `seconds`: `count()` (wesp's packet counter) before and after, the
 * CPU of wesp's and the source's process trees, and wesp's threads and the CPUs
 * (sched_sample.ts). Throws when no packet moved.
 */
export async function measure(o: { workers: number; peers: number; size: number; seconds: number; wesp: number; source: number; count: () => Promise<number>; offer?: () => Promise<Offer> }): Promise<Run> {
  const f0 = await o.offer?.();
  const p0 = await o.count(), t0 = process.hrtime.bigint();
  const [c0, s0] = treeCpuSeconds([o.wesp, o.source]);
  const sc0 = sample(o.wesp);
  await sleep(o.seconds * 1000);
  const p1 = await o.count(), t1 = process.hrtime.bigint();
  const [c1, s1] = treeCpuSeconds([o.wesp, o.source]);
  const sc1 = sample(o.wesp);
  const f1 = await o.offer?.();
  const secs = Number(t1 - t0) / 1e9, pkts = p1 - p0, cpu = c1 - c0;
  if (pkts <= 0) throw new Error(`wesp moved nothing in ${o.seconds} s`);
  return {
    workers: o.workers, peers: o.peers, pps: pkts / secs, gbps: (pkts * o.size * 8) / secs / 1e9, cpu: cpu / secs,
    ppsPerCpu: cpu > 0 ? pkts / cpu : 0, sourceCpu: (s1 - s0) / secs, load: loadavg()[0],
    ...(f0 && f1 ? { offered: (f1.sent - f0.sent) / secs, dropped: (f1.dropped - f0.dropped) / secs } : {}),
    sched: schedDelta(sc0, sc1),
  };
}

/** One line per run on stderr, as it ends: the figures and where the CPU went. */
export function logRun(r: Run, round: number): void {
  const offer = r.offered === undefined ? "" : `, offered ${Math.round(r.offered)}/s, drops at wesp's sockets ${Math.round(r.dropped ?? 0)}/s (trains)`;
  console.error(`round ${round + 1}, ${r.peers} peer(s), ${r.workers} worker(s): ${Math.round(r.pps)} packets/s, wesp ${r.cpu.toFixed(2)} cores, ${Math.round(r.ppsPerCpu)} per CPU-s, source ${r.sourceCpu.toFixed(2)}${offer}, load ${r.load.toFixed(1)}`);
  console.error(describe(r.sched));
}

/**
 * Every (peers, workers) pair once per round, rounds interleaved so that load
 * from elsewhere hits them alike; each run logged as it ends (logRun).
 */
export async function rounds(o: { rounds: number; peers: number[]; workers: number[]; one: (workers: number, peers: number) => Promise<Run> }): Promise<Run[]> {
  const runs: Run[] = [];
  for (let r = 0; r < o.rounds; r++) {
    for (const p of o.peers) {
      for (const w of o.workers) {
        const run = { ...(await o.one(w, p)), round: r };
        logRun(run, r);
        runs.push(run);
      }
    }
  }
  return runs;
}

export type Row = Omit<Run, "sched" | "round">;

/** Per (peers, workers): the median of each figure over its rounds. */
export function medians(runs: Run[]): Row[] {
  const keys = [...new Set(runs.map((r) => `${r.peers}/${r.workers}`))];
  return keys.map((key) => {
    const rs = runs.filter((r) => `${r.peers}/${r.workers}` === key);
    const m = (f: (r: Run) => number) => median(rs.map(f));
    const offer = rs.every((r) => r.offered !== undefined) ? { offered: m((r) => r.offered!), dropped: m((r) => r.dropped ?? 0) } : {};
    return { workers: rs[0].workers, peers: rs[0].peers, pps: m((r) => r.pps), gbps: m((r) => r.gbps), cpu: m((r) => r.cpu), ppsPerCpu: m((r) => r.ppsPerCpu), sourceCpu: m((r) => r.sourceCpu), load: m((r) => r.load), ...offer };
  });
}

/**
 * The table: each row's packets/s and packets per wesp CPU-s against one worker
 * with the same peers; then, given the runs, the same ratios round by round
 * (round_ratios.ts: which rounds were quiet).
 */
export function printTable(title: string, rows: Row[], rounds: number, runs: Run[] = []): void {
  console.log(`${title}, median of ${rounds}`);
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? "?"}, load average ${loadavg().map((l) => l.toFixed(1)).join(" ")} at the end`);
  const offers = rows.every((r) => r.offered !== undefined);
  console.log(`peers workers   packets/s   Gbit/s   wesp CPU   per wesp CPU-s   source CPU   load   ratio to 1   per-CPU-s ratio${offers ? "   offered/s   drops/s (trains)" : ""}`);
  for (const r of rows) {
    const base = rows.find((b) => b.peers === r.peers && b.workers === 1);
    const ratio = base ? (r.pps / base.pps).toFixed(2) + "×" : "-";
    const perCpu = base ? (r.ppsPerCpu / base.ppsPerCpu).toFixed(2) : "-";
    console.log(`${String(r.peers).padStart(5)} ${String(r.workers).padStart(7)} ${Math.round(r.pps).toString().padStart(11)} ${r.gbps.toFixed(3).padStart(8)} ${r.cpu.toFixed(2).padStart(10)} ${Math.round(r.ppsPerCpu).toString().padStart(16)} ${r.sourceCpu.toFixed(2).padStart(12)} ${r.load.toFixed(1).padStart(6)} ${ratio.padStart(12)} ${perCpu.padStart(17)}${offers ? ` ${Math.round(r.offered!).toString().padStart(11)} ${Math.round(r.dropped!).toString().padStart(11)}` : ""}`);
  }
  const pairs = roundRatios(runs.map((r) => ({ ...r, round: r.round ?? 0 })));
  if (pairs.length) console.log(["paired by round (one worker and more, same round):", ...formatRoundRatios(pairs).map((l) => `  ${l}`)].join("\n"));
}
