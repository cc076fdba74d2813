// The soak relay's replay prediction (test/soak/relay.ts, ReplaySim) is the
// receiver's window: for random streams of sequence numbers — in order, late by
// up to twice the window, repeated — it gives the verdict the core's
// replayCheck gives, and both advance alike. The soak's "no false replay drop"
// check compares wesp's counters with these predictions, so they must agree.
// Also: the relay's PRNG is deterministic per seed.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { loadCore, Scratch } from "../../host/core/raw_exports.ts";
import { prng, ReplaySim } from "../soak/relay.ts";

const ex = loadCore();
const s = new Scratch(ex, 1 << 20);
const HDR = ex.REPLAY_HDR_SIZE.value as number;
const NAME = ["OK", "REPLAY", "REPLAY_OLD"];

test("ReplaySim gives the core's verdicts", () => {
  fc.assert(
    fc.property(
      fc.constantFrom(32, 64, 128, 1000, 1024),
      fc.array(fc.tuple(fc.nat(3), fc.nat(2100)), { minLength: 1, maxLength: 400 }),
      (W, steps) => {
        s.reset();
        const words = ex.replayWords(W) >>> 0;
        const st = s.alloc(HDR + words * 8);
        ex.replayInit(st, W, st + HDR);
        const sim = new ReplaySim(W);
        let next = 1;
        for (const [kind, n] of steps) {
          // 0: the next number; 1: a late one up to 2W back; 2: a repeat of a recent one; 3: a jump ahead
          const seq = kind === 0 ? next++ : kind === 1 ? Math.max(0, next - 1 - (n % (2 * W))) : kind === 2 ? Math.max(0, next - 1 - (n % 8)) : (next += n % 300);
          const want = NAME[ex.replayCheck(st, BigInt(seq))];
          const got = sim.accept(seq);
          assert.equal(got, want, `W=${W} seq ${seq} top ${sim.top}`);
          if (want === "OK") ex.replayAdvance(st, BigInt(seq));
          assert.equal(BigInt(sim.top), new DataView(ex.memory.buffer).getBigUint64(st, true));
        }
      },
    ),
    { numRuns: 300 },
  );
});

test("the relay's PRNG repeats itself for a seed and differs between seeds", () => {
  const take = (seed: number) => {
    const r = prng(seed);
    return Array.from({ length: 1000 }, r);
  };
  assert.deepEqual(take(7), take(7));
  assert.notDeepEqual(take(7), take(8));
  const xs = take(1);
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  assert.ok(Math.abs(mean - 0.5) < 0.05, `mean ${mean}`);
});
