// The timing harness the crypto micro-benchmarks share (aes_micro.ts, chacha_micro.ts).
//
// New WASM runs in V8's baseline tier at about a third of its speed for the
// first 20–30 ms, so every case is warmed up before it is timed, and each
// figure is the median of several timed rounds. Rounds are measured in this
// process's CPU time (user + system), which on a shared 2-core VM moves far
// less than wall time when other jobs run; CLOCK=wall switches to wall time.
//
//   SIZES=64,1400 CLOCK=wall node --import tsx bench/core/<name>_micro.ts

export const ROUNDS = 9;
export const ROUND_MS = 60;
const WARM_MS = 150;
/** Payload sizes to time, from env SIZES (comma-separated bytes). */
export const SIZES = (process.env.SIZES ?? "64,1400,8192").split(",").map(Number);
export const WALL = process.env.CLOCK === "wall";

import { median } from "../stats.ts";
export { median };

/**
 * Calls per second of each function: all are warmed up, then timed in turn,
 * round-robin, ROUNDS rounds of ROUND_MS each, and each gets its median. Taking
 * turns means load from other jobs on the machine hits every peer alike.
 * `batch` calls run between clock reads, so the clock's own cost stays small.
 */
export function rates(fns: (() => void)[], batch = 50): number[] {
  for (const fn of fns) {
    const warmUntil = performance.now() + WARM_MS;
    while (performance.now() < warmUntil) for (let i = 0; i < batch; i++) fn();
  }
  const runs: number[][] = fns.map(() => []);
  for (let r = 0; r < ROUNDS; r++) {
    fns.forEach((fn, k) => {
      let n = 0;
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      let t = t0;
      while (t - t0 < ROUND_MS) {
        for (let i = 0; i < batch; i++) fn();
        n += batch;
        t = performance.now();
      }
      const c = process.cpuUsage(c0);
      runs[k].push(n / (WALL ? (t - t0) / 1000 : (c.user + c.system) / 1e6));
    });
  }
  return runs.map(median);
}

/** Calls per second of one function alone (see `rates`). */
export function rate(fn: () => void, batch = 50): number {
  return rates([fn], batch)[0];
}
