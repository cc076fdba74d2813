// Start-up phases in the log ("loaded config … in 1.23 s"): an operator of a
// hub with 100,000 SAs sees where its minute went (docs/bench.md).

/** Seconds since `start` (a performance.now() reading), two decimals. */
export function secondsSince(start: number): string {
  return ((performance.now() - start) / 1000).toFixed(2);
}

/** A phase's start: wall clock and the process's CPU time. */
export interface PhaseStart {
  wall: number;
  cpu: NodeJS.CpuUsage;
}

export function phaseStart(): PhaseStart {
  return { wall: performance.now(), cpu: process.cpuUsage() };
}

/**
 * "1.23 s, 1.10 CPU s": wall and CPU seconds since `start`. The CPU is the
 * process's, every thread (V8's GC helpers too): the main thread's own while
 * no worker runs, which is when the phases that use this run.
 */
export function phaseTime(start: PhaseStart): string {
  const c = process.cpuUsage(start.cpu);
  return `${secondsSince(start.wall)} s, ${((c.user + c.system) / 1e6).toFixed(2)} CPU s`;
}

/** "1 peer", "2 peers". */
export function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}
