// Anti-replay window (RFC 4303 §3.4.3, bitmap as in RFC 6479): numbered tables in the
// style of wireguard-go's replay_test.go (rows applied in order; a row that is
// acceptable is then advanced, as if its ICV verified), and a property test against a
// naive model (a set of accepted numbers and their maximum).
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { loadCore, Scratch } from "../../host/core/raw_exports.ts";

const ex = loadCore();
const s = new Scratch(ex, 4 << 20);
const OK = 0, DUP = 1, OLD = 2;
const NAME = ["OK", "DUPLICATE", "TOO_OLD"];
const HDR = ex.REPLAY_HDR_SIZE.value as number;

/** A fresh window of W packets with its bitmap inline after the 32-byte header. */
function newWindow(W: number): number {
  s.reset();
  const words = ex.replayWords(W) >>> 0;
  const st = s.alloc(HDR + words * 8);
  s.u8().fill(0xa5, st, st + HDR + words * 8); // init must not rely on zeroed memory
  ex.replayInit(st, W, st + HDR);
  return st;
}
const top = (st: number) => new DataView(ex.memory.buffer).getBigUint64(st, true);

type Row = [seq: bigint | number, verdict: number];
/** Applies rows in order: check, and advance the acceptable ones. Row numbers start at 1. */
function runTable(W: number, rows: Row[], st = newWindow(W)): number {
  rows.forEach(([seq, want], i) => {
    const q = BigInt(seq);
    const got = ex.replayCheck(st, q);
    assert.equal(NAME[got], NAME[want], `W=${W} row ${i + 1}: seq ${q}`);
    if (got === OK) ex.replayAdvance(st, q);
  });
  return st;
}

test("header is 32 bytes and replayWords gives ⌈W/64⌉+1 words rounded to a power of two", () => {
  assert.equal(HDR, 32);
  const cases: [number, number][] = [
    [32, 2], [64, 2], [65, 4], [128, 4], [129, 4], [192, 4], [193, 8], [1024, 32], [65536, 2048],
    [0, 2], [1, 2], [31, 2], [65537, 2048], [0xffffffff, 2048], // clamped to 32..65536
  ];
  for (const [W, words] of cases) assert.equal(ex.replayWords(W) >>> 0, words, `W=${W}`);
});

test("replayInit lays out top, window, wordsMask and bitmap as documented", () => {
  const st = newWindow(1024);
  const dv = new DataView(ex.memory.buffer);
  assert.equal(dv.getBigUint64(st, true), 0n);
  assert.equal(dv.getUint32(st + 8, true), 1024);
  assert.equal(dv.getUint32(st + 12, true), 31);
  assert.equal(dv.getUint32(st + 16, true), st + 32);
  assert.ok(s.get(st + 32, 32 * 8).every((b) => b === 0));
  const st2 = newWindow(5);
  assert.equal(new DataView(ex.memory.buffer).getUint32(st2 + 8, true), 32, "window clamped up to 32");
});

// W = 64 (2 ring words, 128 bits), hand-written numbers.
test("numbered table, W = 64", () => {
  runTable(64, [
    /*  1 */ [0, OLD], // seq 0 is never sent (RFC 4303 §3.3.3)
    /*  2 */ [1, OK],
    /*  3 */ [1, DUP],
    /*  4 */ [2, OK],
    /*  5 */ [4, OK],
    /*  6 */ [3, OK],
    /*  7 */ [3, DUP],
    /*  8 */ [10, OK],
    /*  9 */ [64, OK], // window [1, 64]
    /* 10 */ [1, DUP],
    /* 11 */ [5, OK],
    /* 12 */ [65, OK], // window [2, 65]
    /* 13 */ [1, OLD],
    /* 14 */ [2, DUP],
    /* 15 */ [70, OK], // window [7, 70]
    /* 16 */ [7, OK], // left edge
    /* 17 */ [6, OLD], // one past the left edge
    /* 18 */ [100, OK], // window [37, 100]
    /* 19 */ [140, OK], // block 2 reuses ring word 0 (block 0): cleared
    /* 20 */ [129, OK], // same bit as seq 1 in ring word 0: must not be a stale duplicate
    /* 21 */ [130, OK], // seq 2's bit
    /* 22 */ [138, OK], // seq 10's bit
    /* 23 */ [138, DUP],
    /* 24 */ [77, OK], // window [77, 140]
    /* 25 */ [76, OLD],
    /* 26 */ [100, DUP], // block 1 (ring word 1) survived the slide
    /* 27 */ [191, OK], // same block as 140: nothing cleared
    /* 28 */ [128, OK], // left edge of [128, 191]
    /* 29 */ [127, OLD],
    /* 30 */ [192, OK], // block 3 reuses ring word 1: cleared
    /* 31 */ [129, DUP],
    /* 32 */ [135, OK],
    /* 33 */ [1000, OK], // far jump (13 blocks): the whole ring is cleared
    /* 34 */ [936, OLD],
    /* 35 */ [937, OK],
    /* 36 */ [959, OK], // block 14 (ring word 0)
    /* 37 */ [960, OK], // block 15 (ring word 1)
    /* 38 */ [1000, DUP],
    /* 39 */ [1001, OK],
    /* 40 */ [0xffffffff, OK], // highest 32-bit number
    /* 41 */ [0xffffffff - 63, OK], // left edge
    /* 42 */ [0xffffffff - 64, OLD],
    /* 43 */ [1, OLD],
    /* 44 */ [0, OLD],
  ]);
});

// The same scenario for every window size, rows written in terms of W and the ring
// span R = 64 · replayWords(W) bits.
for (const W of [32, 64, 128, 1024, 65536]) {
  test(`numbered table, W = ${W}`, () => {
    const R = 64 * (ex.replayWords(W) >>> 0);
    const J = 2 * W + R + 1 + 10 * R; // far beyond the ring
    const st = runTable(W, [
      /*  1 */ [0, OLD],
      /*  2 */ [1, OK],
      /*  3 */ [1, DUP],
      /*  4 */ [W, OK], // window [1, W]
      /*  5 */ [1, DUP], // left edge, seen
      /*  6 */ [2, OK],
      /*  7 */ [W + 1, OK], // window [2, W+1]
      /*  8 */ [1, OLD],
      /*  9 */ [2, DUP],
      /* 10 */ [3, OK],
      /* 11 */ [W, DUP],
      /* 12 */ [W + 1, DUP],
      /* 13 */ [2 * W, OK], // window [W+1, 2W]
      /* 14 */ [W, OLD],
      /* 15 */ [W + 1, DUP],
      /* 16 */ [W + 2, OK],
      /* 17 */ [2 * W - 1, OK],
      /* 18 */ [2 * W - 1, DUP],
      /* 19 */ [2 * W + R - 64, OK], // slides words−1 blocks: clears all ring words but 2W's
      /* 20 */ [2 * W + R + 1, OK], // slides one more block: 2W's ring word is cleared too
      /* 21 */ [2 * W + R, OK], // same word and bit as 2W (marked in row 13): must read as new
      /* 22 */ [2 * W + R, DUP],
      /* 23 */ [2 * W + R + 1, DUP],
      /* 24 */ [J, OK], // jump past the whole ring
      /* 25 */ [J - W, OLD],
      /* 26 */ [J - W + 1, OK], // left edge
      /* 27 */ [J - W + 1, DUP],
      /* 28 */ [J - 1, OK],
      /* 29 */ [J, DUP],
      /* 30 */ [J - R, OLD], // same ring word and bit as J
      /* 31 */ [J + W - 1, OK], // J is now the left edge
      /* 32 */ [J, DUP],
      /* 33 */ [J - 1, OLD],
    ]);
    // After the rows, exactly J, J+W−1 are marked in the window [J, J+W−1].
    const t = BigInt(J + W - 1);
    assert.equal(top(st), t);
    for (let q = t - BigInt(W) + 1n; q <= t; q++) {
      const want = q === BigInt(J) || q === t ? DUP : OK;
      assert.equal(ex.replayCheck(st, q), want, `sweep seq ${q}`);
    }
  });
}

test("in-order delivery of 3W packets, then every number in the window is a duplicate", () => {
  for (const W of [32, 64, 128, 1024]) {
    const st = newWindow(W);
    for (let q = 1n; q <= BigInt(3 * W); q++) {
      assert.equal(ex.replayCheck(st, q), OK);
      ex.replayAdvance(st, q);
    }
    for (let q = BigInt(2 * W + 1); q <= BigInt(3 * W); q++) assert.equal(ex.replayCheck(st, q), DUP);
    assert.equal(ex.replayCheck(st, BigInt(2 * W)), OLD);
  }
});

test("replayCheck is pure; replayAdvance ignores 0 and numbers left of the window", () => {
  const W = 64;
  const st = newWindow(W);
  const len = HDR + 8 * (ex.replayWords(W) >>> 0);
  for (const q of [5n, 9n, 300n]) ex.replayAdvance(st, q);
  const snap = s.get(st, len);
  for (const q of [0n, 1n, 5n, 200n, 236n, 237n, 300n, 301n, 1n << 40n]) ex.replayCheck(st, q);
  assert.deepEqual(s.get(st, len), snap);
  ex.replayAdvance(st, 0n);
  ex.replayAdvance(st, 236n); // top − W: too old
  assert.deepEqual(s.get(st, len), snap);
});

// Naive model: accept iff seq ≠ 0, seq > max − W and seq not accepted before.
class Model {
  seen = new Set<bigint>();
  max = 0n;
  constructor(readonly W: bigint) {}
  verdict(q: bigint): number {
    if (q === 0n) return OLD;
    if (q > this.max) return OK;
    if (this.max - q >= this.W) return OLD;
    return this.seen.has(q) ? DUP : OK;
  }
  accept(q: bigint): void {
    this.seen.add(q);
    if (q > this.max) this.max = q;
  }
}

const op = fc.tuple(fc.integer({ min: 0, max: 5 }), fc.nat({ max: 1 << 24 }), fc.integer({ min: 0, max: 9 }));

for (const W of [32, 64, 100, 128, 1024, 65536]) {
  test(`property: check/advance agree with a set model, W = ${W}`, () => {
    const w = BigInt(W);
    fc.assert(
      fc.property(
        fc.constantFrom(0n, (1n << 32n) - 300n, 1n << 40n, (1n << 63n) + 12345n),
        fc.array(op, { maxLength: 400 }),
        (base, ops) => {
          const st = newWindow(W);
          const m = new Model(w);
          if (base > 0n) {
            ex.replayAdvance(st, base);
            m.accept(base);
          }
          for (const [kind, n, f] of ops) {
            const a = BigInt(n);
            let q: bigint;
            switch (kind) {
              case 0: q = m.max - (a % (w + 130n)); break; // around and left of the window
              case 1: q = m.max + 1n + (a % 70n); break; // just ahead
              case 2: q = m.max + w + (a % (w * 40n)); break; // jumps, many past the ring
              case 3: q = base + (a % 300n); break; // early numbers
              case 4: q = m.max - w + (a % 3n); break; // the left edge ±1
              default: q = m.max - (a % 5n); break; // recent: mostly duplicates
            }
            if (q < 0n) q = 0n;
            const want = m.verdict(q);
            assert.equal(ex.replayCheck(st, q), want, `seq ${q} max ${m.max}`);
            // One packet in ten fails authentication: checked, never advanced.
            if (want === OK && f !== 0) {
              ex.replayAdvance(st, q);
              m.accept(q);
            }
            assert.equal(top(st), m.max);
          }
        },
      ),
      { numRuns: W === 65536 ? 60 : 150 },
    );
  });
}
