// Ratios of the runs of one round: each (peers, N workers) run against the
// one-worker run with the same peers in the same round, which ran minutes or
// seconds apart (rounds interleave the pairs, measure.ts `rounds`). On a shared
// machine a disturbance hits a round, not a column: another job takes the idle
// core of a one-worker run but the cores of a two-worker run, so the medians
// of the columns can pair a quiet one-worker run with a disturbed two-worker
// one. The pairs, with the cores wesp got, show which rounds were quiet
// (docs/performance.md "Workers", 2026-12-06 20:39).

/** What a pair needs of a run (measure.ts `Run`). */
export interface RoundRun { round: number; workers: number; peers: number; pps: number; ppsPerCpu: number; cpu: number }

export interface RoundRatio {
  round: number;
  peers: number;
  workers: number;
  /** packets/s against the one-worker run of the round. */
  ratio: number;
  /** packets per wesp CPU-second against the one-worker run's. */
  perCpu: number;
  /** wesp's cores, one worker and this run. */
  cores: [number, number];
}

/** Every run with more than one worker that has a one-worker run of its round and peers, in run order. */
export function roundRatios(runs: RoundRun[]): RoundRatio[] {
  const out: RoundRatio[] = [];
  for (const r of runs) {
    if (r.workers === 1) continue;
    const base = runs.find((b) => b.round === r.round && b.peers === r.peers && b.workers === 1);
    if (!base || base.pps <= 0 || base.ppsPerCpu <= 0) continue;
    out.push({ round: r.round, peers: r.peers, workers: r.workers, ratio: r.pps / base.pps, perCpu: r.ppsPerCpu / base.ppsPerCpu, cores: [base.cpu, r.cpu] });
  }
  return out;
}

/** One line per pair, after the table of medians. */
export function formatRoundRatios(ratios: RoundRatio[]): string[] {
  return ratios.map((x) =>
    `round ${x.round + 1}, ${x.peers} peer(s), ${x.workers} workers: ${x.ratio.toFixed(2)}× one worker, per CPU-s ${x.perCpu.toFixed(2)} (wesp ${x.cores[0].toFixed(2)} → ${x.cores[1].toFixed(2)} cores)`);
}
