// ESN (RFC 4303 §2.2.1, Appendix A2.2): rebuilding the high 32 bits from the window.
// Table rows for cases A and B (incl. the late packet from the previous subspace),
// a property test against the equivalent formulation "the unique number ≡ Seql
// (mod 2^32) in [B, B + 2^32), B = T − W + 1", and a numbered replay table that
// crosses 2^32.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { loadCore, Scratch } from "../../host/core/raw_exports.ts";

const ex = loadCore();
const s = new Scratch(ex, 1 << 20);
const OK = 0, DUP = 1;
const NAME = ["OK", "DUPLICATE", "TOO_OLD"];
const P32 = 1n << 32n;
const u64 = (x: bigint) => BigInt.asUintN(64, x);
const infer = (T: bigint, W: number, lo: number | bigint): bigint => u64(ex.esnInfer(T, W, Number(lo)));

test("esnInfer: Appendix A2.2 case A (window inside one subspace)", () => {
  const rows: [bigint, number, bigint, bigint][] = [
    // [T, W, Seql, expected Seq]
    [1000n, 64, 1000n, 1000n], // at top
    [1000n, 64, 937n, 937n], // Bl = Tl − W + 1
    [1000n, 64, 5000n, 5000n], // ahead in the same subspace
    [1000n, 64, 936n, P32 + 936n], // below Bl: the sender has wrapped into subspace 1
    [P32 - 10n, 64, 5n, P32 + 5n], // top just below 2^32, receive low 5 → 2^32 + 5
    [P32 - 10n, 64, P32 - 20n, P32 - 20n], // in the window
    [P32 - 10n, 64, P32 - 73n, P32 - 73n], // Bl
    [P32 - 10n, 64, P32 - 74n, 2n * P32 - 74n], // Bl − 1: next subspace
    [63n, 64, 0n, 0n], // Tl = W − 1 is case A with Bl = 0 (seq 0 is then rejected by replay)
    [P32 + 63n, 64, 0n, P32], // same, subspace 1: 2^32 itself is a valid number
    [P32 + 63n, 64, 0xffffffffn, 2n * P32 - 1n],
    [7n * P32 + 70000n, 65536, 70000n - 65535n, 7n * P32 + 4465n],
    [7n * P32 + 70000n, 65536, 4464n, 8n * P32 + 4464n],
  ];
  rows.forEach(([T, W, lo, want], i) => assert.equal(infer(T, W, lo), want, `row ${i + 1}`));
});

test("esnInfer: Appendix A2.2 case B (window spans two subspaces)", () => {
  const rows: [bigint, number, bigint, bigint][] = [
    [P32 + 5n, 64, P32 - 10n, P32 - 10n], // late packet from the previous subspace
    [P32 + 5n, 64, P32 - 58n, P32 - 58n], // Bl = 5 − 63 mod 2^32
    [P32 + 5n, 64, P32 - 59n, 2n * P32 - 59n], // below Bl: current subspace, far ahead
    [P32 + 5n, 64, 3n, P32 + 3n], // in the window, current subspace
    [P32 + 5n, 64, 100n, P32 + 100n], // ahead
    [P32 + 62n, 64, 0xffffffffn, P32 - 1n], // Tl = W − 2: still case B
    [3n * P32 + 10n, 1024, P32 - 1000n, 3n * P32 - 1000n],
    [3n * P32 + 10n, 1024, P32 - 1014n, 4n * P32 - 1014n],
    // Th = 0: there is no subspace below 0, so the high bits stay 0 (documented choice).
    [0n, 64, 1n, 1n],
    [5n, 64, 0xfffffff0n, 0xfffffff0n],
  ];
  rows.forEach(([T, W, lo, want], i) => assert.equal(infer(T, W, lo), want, `row ${i + 1}`));
});

test("esnInfer: Th = 2^32 − 1 cannot move up a subspace and wraps to 0 (then too old)", () => {
  assert.equal(infer(u64(-1n) - 100n, 64, 5), 5n);
});

test("property: esnInfer returns the number ≡ Seql (mod 2^32) in [max(T − W + 1, 0), … + 2^32)", () => {
  const near = fc.oneof(
    fc.bigInt({ min: 0n, max: (1n << 62n) }),
    fc.tuple(fc.bigInt({ min: 0n, max: 1n << 30n }), fc.bigInt({ min: -70000n, max: 70000n }))
      .map(([h, d]) => { const t = h * P32 + d; return t < 0n ? 0n : t; }),
  );
  fc.assert(
    fc.property(near, fc.integer({ min: 1, max: 65536 }), fc.oneof(fc.nat({ max: 0xffffffff }), fc.integer({ min: 0, max: 200 })),
      (T, W, lo) => {
        let B = T - BigInt(W) + 1n;
        if (B < 0n) B = 0n;
        const want = B + ((BigInt(lo) - B) % P32 + P32) % P32;
        assert.equal(infer(T, W, lo), want);
      }),
    { numRuns: 3000 },
  );
});

// ESN and the replay window together, W = 64: each row is (wire Seql, the 64-bit
// number the receiver must assume, verdict, ICV valid?). Acceptable rows whose ICV is
// valid are advanced; a row with a forged packet (the sender never sent that number)
// passes the replay check but must not move the window.
test("numbered table: ESN receive path across 2^32, W = 64", () => {
  const W = 64;
  const words = ex.replayWords(W) >>> 0;
  const st = s.alloc(32 + 8 * words);
  ex.replayInit(st, W, st + 32);
  const top = () => new DataView(ex.memory.buffer).getBigUint64(st, true);
  const rows: [number | bigint, bigint, number, boolean][] = [
    /*  1 */ [P32 - 10n, P32 - 10n, OK, true], // top = 2^32 − 10
    /*  2 */ [P32 - 10n, P32 - 10n, DUP, true],
    /*  3 */ [P32 - 40n, P32 - 40n, OK, true],
    /*  4 */ [5, P32 + 5n, OK, true], // crosses into subspace 1: top = 2^32 + 5
    /*  5 */ [P32 - 10n, P32 - 10n, DUP, true], // late from subspace 0, already seen
    /*  6 */ [P32 - 20n, P32 - 20n, OK, true], // late from subspace 0, new
    /*  7 */ [P32 - 58n, P32 - 58n, OK, true], // left edge, subspace 0
    /*  8 */ [P32 - 59n, 2n * P32 - 59n, OK, false], // read as far ahead in subspace 1; forged: ICV fails
    /*  9 */ [5, P32 + 5n, DUP, true],
    /* 10 */ [0, P32, OK, true], // low bits 0 are valid with ESN
    /* 11 */ [0, P32, DUP, true],
    /* 12 */ [100, P32 + 100n, OK, true], // window now [2^32 + 37, 2^32 + 100], case A
    /* 13 */ [P32 - 20n, 2n * P32 - 20n, OK, false], // case A: below Bl means subspace 2; forged
    /* 14 */ [36, 2n * P32 + 36n, OK, false], // just left of the window: read as subspace 2; forged
    /* 15 */ [37, P32 + 37n, OK, true], // left edge
    /* 16 */ [37, P32 + 37n, DUP, true],
  ];
  rows.forEach(([lo, full, verdict, authentic], i) => {
    const q = infer(top(), W, lo);
    assert.equal(q, full, `row ${i + 1}: inferred number`);
    const got = ex.replayCheck(st, q);
    assert.equal(NAME[got], NAME[verdict], `row ${i + 1}: verdict`);
    if (got === OK && authentic) ex.replayAdvance(st, q);
  });
  assert.equal(top(), P32 + 100n);
});
