// CPU time of a process tree, from /proc (proc(5)): for the root and every live
// descendant, utime + stime (all its threads) + cutime + cstime (its children
// that have exited and been waited for). A delta over the measured interval is
// the CPU the whole endpoint spent, whatever it forked or threaded.
//
// Kernel work done on the endpoint's behalf in softirq context is charged to
// whichever task the CPU was running; with each endpoint pinned to its own core
// that is mostly the endpoint itself or the iperf3 process sharing the core.
import { readdirSync, readFileSync } from "node:fs";

/** Clock ticks per second of /proc/PID/stat times (USER_HZ; 100 on Linux). */
export const CLK_TCK = 100;

interface Stat {
  pid: number;
  ppid: number;
  ticks: number;
  /** utime + cutime: the user part of ticks (the rest is stime + cstime). */
  user: number;
}

function readStat(pid: number): Stat | null {
  let s: string;
  try {
    s = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  // comm (field 2) may hold spaces and parentheses: fields restart after the last ')'.
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
  // f[0] = state (field 3); ppid field 4; utime 14, stime 15, cutime 16, cstime 17
  const field = (n: number) => Number(f[n - 3]);
  return { pid, ppid: field(4), ticks: field(14) + field(15) + field(16) + field(17), user: field(14) + field(16) };
}

/** Every live process, by pid. */
function allStats(): Stat[] {
  const out: Stat[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    const s = readStat(Number(d));
    if (s) out.push(s);
  }
  return out;
}

/** CPU seconds used so far by each tree rooted at `roots` (0 for a root that is gone). */
export function treeCpuSeconds(roots: readonly number[]): number[] {
  return treeCpuSplit(roots).map((t) => t.user + t.system);
}

/** User and system CPU seconds used so far by each tree rooted at `roots` (zeros for a root that is gone). */
export function treeCpuSplit(roots: readonly number[]): { user: number; system: number }[] {
  const stats = allStats();
  const children = new Map<number, Stat[]>();
  for (const s of stats) {
    const l = children.get(s.ppid);
    if (l) l.push(s);
    else children.set(s.ppid, [s]);
  }
  const byPid = new Map(stats.map((s) => [s.pid, s]));
  return roots.map((root) => {
    const r = byPid.get(root);
    if (!r) return { user: 0, system: 0 };
    let ticks = 0, user = 0;
    const stack = [r];
    while (stack.length) {
      const s = stack.pop()!;
      ticks += s.ticks;
      user += s.user;
      for (const c of children.get(s.pid) ?? []) stack.push(c);
    }
    return { user: user / CLK_TCK, system: (ticks - user) / CLK_TCK };
  });
}

/** Where each CPU's time went, in seconds (proc(5) /proc/stat "cpuN" lines; guest time is inside user). */
export interface CpuTimes {
  user: number;
  system: number;
  irq: number;
  softirq: number;
  steal: number;
  idle: number;
}

/** Every CPU's times so far, by CPU number. */
export function cpuTimes(): CpuTimes[] {
  const out: CpuTimes[] = [];
  for (const line of readFileSync("/proc/stat", "utf8").split("\n")) {
    const m = /^cpu(\d+) (.*)$/.exec(line);
    if (!m) continue;
    // user nice system idle iowait irq softirq steal ...
    const f = m[2].trim().split(/\s+/).map(Number);
    out[Number(m[1])] = { user: (f[0] + f[1]) / CLK_TCK, system: f[2] / CLK_TCK, idle: (f[3] + f[4]) / CLK_TCK, irq: f[5] / CLK_TCK, softirq: f[6] / CLK_TCK, steal: (f[7] ?? 0) / CLK_TCK };
  }
  return out;
}

/** after − before for each CPU, rounded to the tick. */
export function cpuTimesDelta(before: CpuTimes[], after: CpuTimes[]): CpuTimes[] {
  return after.map((a, i) => {
    const b = before[i] ?? { user: 0, system: 0, irq: 0, softirq: 0, steal: 0, idle: 0 };
    const d = (k: keyof CpuTimes) => Math.round((a[k] - b[k]) * CLK_TCK) / CLK_TCK;
    return { user: d("user"), system: d("system"), irq: d("irq"), softirq: d("softirq"), steal: d("steal"), idle: d("idle") };
  });
}

/**
 * One line for the log: each endpoint's user/system split, then what its core
 * did beside it (softirq, steal, idle): a round whose endpoint costs more per
 * Mbit shows here whether the extra is its own code (user), the kernel on its
 * behalf, or the machine (steal).
 */
export function describeCpu(cpu: number[], user: number[], cores: CpuTimes[], pinned: readonly number[]): string {
  return cpu.map((c, i) => {
    const k = cores[pinned[i] ?? -1];
    const core = k ? `; core ${pinned[i]}: softirq ${k.softirq.toFixed(2)}, steal ${k.steal.toFixed(2)}, idle ${k.idle.toFixed(2)} s` : "";
    return `${"AB"[i] ?? String(i)}: user ${user[i].toFixed(2)} + system ${(c - user[i]).toFixed(2)} s${core}`;
  }).join(" | ");
}
