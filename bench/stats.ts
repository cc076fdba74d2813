// Summaries the benchmarks print: the median of a set of runs and its spread.

/** The median of xs (the upper one of an even count). */
export function median(xs: number[]): number {
  const v = [...xs].sort((a, b) => a - b);
  return v[v.length >> 1];
}

/** "median (min–max)" with d decimals, as the benchmarks' tables give a column. */
export function medianRange(xs: number[], d: number): string {
  return `${median(xs).toFixed(d)} (${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)})`;
}
