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
  return { pid, ppid: field(4), ticks: field(14) + field(15) + field(16) + field(17) };
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
    if (!r) return 0;
    let ticks = 0;
    const stack = [r];
    while (stack.length) {
      const s = stack.pop()!;
      ticks += s.ticks;
      for (const c of children.get(s.pid) ?? []) stack.push(c);
    }
    return ticks / CLK_TCK;
  });
}
