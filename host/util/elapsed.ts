// Start-up phases in the log ("loaded config … in 1.23 s"): an operator of a
// hub with 100,000 SAs sees where its minute went (docs/bench.md).

/** Seconds since `start` (a performance.now() reading), two decimals. */
export function secondsSince(start: number): string {
  return ((performance.now() - start) / 1000).toFixed(2);
}

/** "1 peer", "2 peers". */
export function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}
