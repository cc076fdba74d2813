// Where a workers benchmark's CPU went, from /proc (proc(5)): the figures
// that tell "a packet costs more with two workers" apart by cause.
//
//   per thread of wesp   /proc/PID/task/TID/stat    utime + stime (clock ticks), the kernel's share
//                        /proc/PID/task/TID/status  voluntary / nonvoluntary context switches
//                                                   (a worker that sleeps on an empty socket
//                                                   vs. one the scheduler takes the core from)
//   per CPU              /proc/stat                 user, system, softirq, idle, steal
//                                                   (steal: the hypervisor ran someone else)
//                        /proc/softirqs             NET_RX raised on each CPU (where the
//                                                   receive work of both directions lands)
//
// `sample()` before and after the measured interval, `schedDelta(a, b)` the
// difference: threads using ≥ 1 % of a core, each by name and share of a core,
// and each CPU's split. Nothing here is asserted; it is printed beside the
// benchmark's figures.
import { readdirSync, readFileSync } from "node:fs";
import { CLK_TCK } from "../tunnel/cpu.ts";

interface ThreadStat { tid: number; comm: string; ticks: number; sys: number; vcsw: number; ivcsw: number }
interface CpuStat { user: number; system: number; softirq: number; idle: number; steal: number; netRx: number }
export interface SchedSample { at: bigint; threads: ThreadStat[]; cpus: CpuStat[] }

function read(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

function threads(pid: number): ThreadStat[] {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const out: ThreadStat[] = [];
  for (const t of tids) {
    const stat = read(`/proc/${pid}/task/${t}/stat`), status = read(`/proc/${pid}/task/${t}/status`);
    if (!stat || !status) continue;
    const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const num = (key: string) => Number(/^(\S+):\s+(\d+)/m.exec(status.split("\n").find((l) => l.startsWith(key)) ?? "")?.[2] ?? 0);
    out.push({ tid: Number(t), comm, ticks: Number(f[11]) + Number(f[12]), sys: Number(f[12]), vcsw: num("voluntary_ctxt_switches"), ivcsw: num("nonvoluntary_ctxt_switches") });
  }
  return out;
}

function cpuStats(): CpuStat[] {
  const stat = read("/proc/stat") ?? "";
  const softirqs = (read("/proc/softirqs") ?? "").split("\n").find((l) => l.trim().startsWith("NET_RX:"))?.trim().split(/\s+/).slice(1).map(Number) ?? [];
  const out: CpuStat[] = [];
  for (const line of stat.split("\n")) {
    const m = /^cpu(\d+) (.*)$/.exec(line);
    if (!m) continue;
    // user nice system idle iowait irq softirq steal (proc(5))
    const v = m[2].trim().split(/\s+/).map(Number);
    out.push({ user: v[0] + v[1], system: v[2] + v[5], softirq: v[6], idle: v[3] + v[4], steal: v[7], netRx: softirqs[Number(m[1])] ?? 0 });
  }
  return out;
}

/** A snapshot of wesp's threads (process `pid`) and of every CPU. */
export function sample(pid: number): SchedSample {
  return { at: process.hrtime.bigint(), threads: threads(pid), cpus: cpuStats() };
}

export interface ThreadRow { tid: number; comm: string; cores: number; sysShare: number; vcswPerS: number; ivcswPerS: number }
export interface CpuRow { cpu: number; user: number; system: number; softirq: number; idle: number; steal: number; netRxPerS: number }
export interface SchedDelta { threads: ThreadRow[]; cpus: CpuRow[] }

/** What happened between `a` and `b`: threads that used ≥ 1 % of a core, busiest first; each CPU's split (shares of its time). */
export function schedDelta(a: SchedSample, b: SchedSample): SchedDelta {
  const secs = Number(b.at - a.at) / 1e9;
  const before = new Map(a.threads.map((t) => [t.tid, t]));
  const rows: ThreadRow[] = [];
  for (const t of b.threads) {
    const p = before.get(t.tid) ?? { ticks: 0, sys: 0, vcsw: 0, ivcsw: 0 };
    const cores = (t.ticks - p.ticks) / CLK_TCK / secs;
    if (cores < 0.01) continue;
    rows.push({ tid: t.tid, comm: t.comm, cores, sysShare: (t.sys - p.sys) / Math.max(1, t.ticks - p.ticks), vcswPerS: (t.vcsw - p.vcsw) / secs, ivcswPerS: (t.ivcsw - p.ivcsw) / secs });
  }
  rows.sort((x, y) => y.cores - x.cores);
  const cpus = b.cpus.map((c, i) => {
    const p = a.cpus[i];
    const d = { user: c.user - p.user, system: c.system - p.system, softirq: c.softirq - p.softirq, idle: c.idle - p.idle, steal: c.steal - p.steal };
    const all = d.user + d.system + d.softirq + d.idle + d.steal || 1;
    return { cpu: i, user: d.user / all, system: d.system / all, softirq: d.softirq / all, idle: d.idle / all, steal: d.steal / all, netRxPerS: (c.netRx - p.netRx) / secs };
  });
  return { threads: rows, cpus };
}

/** Two lines for a run: wesp's busy threads, and each CPU's split. */
export function describe(d: SchedDelta): string {
  const pct = (x: number) => `${Math.round(x * 100)}%`;
  const t = d.threads.map((r) => `${r.comm}/${r.tid} ${r.cores.toFixed(2)} (sys ${pct(r.sysShare)}, csw ${Math.round(r.vcswPerS)}/s vol, ${Math.round(r.ivcswPerS)}/s invol)`).join("; ");
  const c = d.cpus.map((r) => `cpu${r.cpu} usr ${pct(r.user)} sys ${pct(r.system)} si ${pct(r.softirq)} idle ${pct(r.idle)} steal ${pct(r.steal)} NET_RX ${Math.round(r.netRxPerS)}/s`).join("; ");
  return `  threads: ${t}\n  cpus: ${c}`;
}
