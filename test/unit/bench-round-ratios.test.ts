// bench/workers/round_ratios.ts: each many-worker run against the one-worker
// run of its own round and peers, not against the column's median.
import { test } from "node:test";
import assert from "node:assert/strict";
import { formatRoundRatios, roundRatios } from "../../bench/workers/round_ratios.ts";

const run = (round: number, peers: number, workers: number, pps: number, cpu: number) => ({ round, peers, workers, pps, cpu, ppsPerCpu: pps / cpu });

test("pairs each two-worker run with the one-worker run of its round and peers", () => {
  const runs = [
    run(0, 1, 1, 100, 1), run(0, 1, 2, 176, 1.8), run(0, 8, 1, 110, 1), run(0, 8, 2, 110, 1),
    run(1, 1, 1, 50, 0.5), run(1, 1, 2, 160, 1.6),
  ];
  const pairs = roundRatios(runs);
  assert.deepEqual(pairs.map((p) => [p.round, p.peers, p.workers, Number(p.ratio.toFixed(2)), Number(p.perCpu.toFixed(2))]), [
    [0, 1, 2, 1.76, 0.98], [0, 8, 2, 1, 1], [1, 1, 2, 3.2, 1],
  ]);
  assert.deepEqual(pairs[0].cores, [1, 1.8]);
  assert.equal(formatRoundRatios(pairs)[0], "round 1, 1 peer(s), 2 workers: 1.76× one worker, per CPU-s 0.98 (wesp 1.00 → 1.80 cores)");
});

test("a run without a one-worker run in its round is left out", () => {
  assert.deepEqual(roundRatios([run(0, 1, 2, 100, 1), run(1, 1, 1, 100, 1)]), []);
});
