// GHASH (NIST SP 800-38D §6.4), constant time.
//
// A multiplication Y·H in GF(2^128) is a carry-less 128×128 product followed
// by a reduction. WebAssembly has no carry-less multiply, so the product is
// built from 4-bit pieces with i8x16.swizzle (pshufb) used as a 16-entry
// lookup inside a register:
//
//   Y = Σ_m byte_m · 2^(8m)   ⇒   Y ⊗ H = Σ_m (lo_m ⊗ H ⊕ (hi_m ⊗ H) << 4) << 8m
//
// where lo_m, hi_m are the nibbles of byte m. For each H (once per SA while
// its packets come one after another, see HC) we tabulate T[n] = n ⊗ H and T[n] << 4 for n = 0..15 — 17 bytes each — and
// store them as byte planes: plane j holds byte j of all 16 entries. One
// swizzle of plane j by the vector of low nibbles then gives, in lane m, byte
// j of lo_m ⊗ H for all 16 bytes of Y at once; shifting that vector up j lanes
// lines it up with product byte m + j (Horner's rule: one byte shift of the
// running 256-bit sum per plane). 17 planes × 2 nibbles = 34 swizzles per
// block and no multiplies. (V8 adds a paddusb to every swizzle whose index
// is not a constant, to zero lanes ≥ 16: these 34 cost two instructions each
// — except in the relaxed-SIMD build, see permute.ts, where AES-128-GCM of
// 1,400 B measured 298 → 320 MB/s seal, 301 → 320 open: 2026-12-06 20:21 UTC,
// load 2.5–4.1, docs/performance.md "The core's AES-GCM".)
//
// Constant time: a swizzle is a register permutation whose timing does not
// depend on the index values; the planes are loaded from fixed addresses, so
// no memory address and no branch depends on Y or H. (This is the
// vector-permute technique of Hamburg's vpaes, applied to GHASH.)
//
// Bit order: GHASH reads a block as a polynomial whose x^0 coefficient is the
// most significant bit of byte 0 (SP 800-38D §6.3). Taking the block as a
// big-endian 128-bit integer, the carry-less product of two such integers is
// the reflected product shifted right by one, hence a `<< 1` before the
// reduction by x^128 + x^7 + x^2 + x + 1 — done once per H by tabulating
// multiples of H << 1 instead of H (off the per-block dependency chain).
// Inside a v128 the integer is kept little-endian: lane m = byte m of the
// integer = byte 15 − m of the block.
//
// State (static, one GHASH at a time per instance):
//   Y    v128               the accumulator (little-endian integer)
//   TP   17 × v128          plane j: byte j of n ⊗ (H << 1), lane n = 0..15
//   TQ   17 × v128          plane j: byte j of (n ⊗ (H << 1)) << 4
//   HC   v128               the H that TP and TQ belong to

import { permute } from "./permute";

const Y = memory.data(16, 16);
const TP = memory.data(17 * 16, 16);
const TQ = memory.data(17 * 16, 16);
const PAD = memory.data(16, 16);
/**
 * The H the planes were last built for (16 B, as given to ghashStart). The
 * planes are a function of H alone, so when the next message has the same H
 * — consecutive packets of one SA — they are reused as they are. All zero at
 * start and after a wipe, which matches the all-zero planes of H = 0.
 */
const HC = memory.data(16, 16);
/** H << s for s = 1..8 as 17-byte little-endian integers, 24 bytes apart (table build). */
const HS = memory.data(8 * 24, 16);

// Constants live in memory rather than as v128.const where V8 would rebuild
// them from immediates at every use (3–4 instructions); a load from here
// folds into the instruction that uses it.
//   +0   NIB   0x0f in every byte
//   +16  LM0..LM3  lane n is 0xff when bit 0..3 of n is set
const K = memory.data<u8>([
  15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,
  0, 255, 0, 255, 0, 255, 0, 255, 0, 255, 0, 255, 0, 255, 0, 255,
  0, 0, 255, 255, 0, 0, 255, 255, 0, 0, 255, 255, 0, 0, 255, 255,
  0, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 0, 255, 255, 255, 255,
  0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255,
], 16);

// Byte reversal of a block: big-endian bytes ↔ little-endian integer.
const REV16: v128 = i8x16(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);

/**
 * Starts a GHASH with hash key H (16 B at h, the block E(K, 0^128)):
 * tabulates the planes (unless they already hold this H's) and zeroes the
 * accumulator.
 */
export function ghashStart(h: usize): void {
  v128.store(Y, i64x2.splat(0));
  // Whether this message uses the previous message's H is public (it is
  // whether it belongs to the same SA), so this branch reveals nothing secret;
  // the comparison itself is a whole-vector compare without early exit.
  const hb = v128.load(h);
  if (i8x16.all_true(i8x16.eq(hb, v128.load(HC)))) return;
  v128.store(HC, hb);
  const hv = i8x16.swizzle(hb, REV16);
  const l0 = <u64>i64x2.extract_lane(hv, 0), l1 = <u64>i64x2.extract_lane(hv, 1);
  // Entry s holds H << (s + 1): the product's `<< 1` (see the top) is built
  // into the tables, 129 + 7 bits still fit in 17 bytes.
  for (let s: u64 = 1; s <= 8; s++) {
    const p = HS + <usize>(s - 1) * 24;
    store<u64>(p, l0 << s);
    store<u64>(p, (l1 << s) | (l0 >> (64 - s)), 8);
    store<u64>(p, l1 >> (64 - s), 16);
  }
  // n ⊗ H = ⊕ over the set bits b of n of H << b; plane j picks byte j of each.
  const m0 = v128.load(K, 16), m1 = v128.load(K, 32), m2 = v128.load(K, 48), m3 = v128.load(K, 64);
  for (let j: usize = 0; j < 17; j++) {
    v128.store(TP + (j << 4), v128.xor(
      v128.xor(v128.and(m0, i8x16.splat(load<i8>(HS + j))), v128.and(m1, i8x16.splat(load<i8>(HS + 24 + j)))),
      v128.xor(v128.and(m2, i8x16.splat(load<i8>(HS + 48 + j))), v128.and(m3, i8x16.splat(load<i8>(HS + 72 + j))))));
    v128.store(TQ + (j << 4), v128.xor(
      v128.xor(v128.and(m0, i8x16.splat(load<i8>(HS + 96 + j))), v128.and(m1, i8x16.splat(load<i8>(HS + 120 + j)))),
      v128.xor(v128.and(m2, i8x16.splat(load<i8>(HS + 144 + j))), v128.and(m3, i8x16.splat(load<i8>(HS + 168 + j))))));
  }
}

/** Y = (Y ⊕ X)·H for the 16-byte block X at p (any alignment). */
export function ghashBlock(p: usize): void {
  ghashBlockInline(p);
}

/** ghashBlock's body, for aesRun to interleave with the AES rounds. */
// @ts-ignore: decorator
@inline export function ghashBlockInline(p: usize): void {
  const x = v128.xor(i8x16.swizzle(v128.load(p), REV16), v128.load(Y));
  const nib = v128.load(K);
  const lo = v128.and(x, nib), hi = v128.and(i16x8.shr_u(x, 4), nib);
  const ZERO = i64x2.splat(0);
  // Product bytes 0..15 in zl, 16..31 in zh, by Horner's rule over the planes:
  // from plane 16 down, shift the 256-bit sum up one byte (two palignr) and
  // add plane j's lookups into the low half — plane j ends up j bytes up.
  let zl = v128.xor(permute(v128.load(TP, 256), lo), permute(v128.load(TQ, 256), hi));
  let zh = ZERO;
  zh = i8x16.shuffle(zl, zh, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  zl = i8x16.shuffle(ZERO, zl, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  zl = v128.xor(zl, v128.xor(permute(v128.load(TP, 240), lo), permute(v128.load(TQ, 240), hi)));
  zh = i8x16.shuffle(zl, zh, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  zl = i8x16.shuffle(ZERO, zl, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  zl = v128.xor(zl, v128.xor(permute(v128.load(TP, 224), lo), permute(v128.load(TQ, 224), hi)));
  zh = i8x16.shuffle(zl, zh, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  zl = i8x16.shuffle(ZERO, zl, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  zl = v128.xor(zl, v128.xor(permute(v128.load(TP, 208), lo), permute(v128.load(TQ, 208), hi)));
  zh = i8x16.shuffle(zl, zh, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  zl = i8x16.shuffle(ZERO, zl, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  zl = v128.xor(zl, v128.xor(permute(v128.load(TP, 192), lo), permute(v128.load(TQ, 192), hi)));
  zh = i8x16.shuffle(zl, zh, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  zl = i8x16.shuffle(ZERO, zl, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  zl = v128.xor(zl, v128.xor(permute(v128.load(TP, 176), lo), permute(v128.load(TQ, 176), hi)));
  zh = i8x16.shuffle(zl, zh, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  zl = i8x16.shuffle(ZERO, zl, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  zl = v128.xor(zl, v128.xor(permute(v128.load(TP, 160), lo), permute(v128.load(TQ, 160), hi)));
  zh = i8x16.shuffle(zl, zh, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  zl = i8x16.shuffle(ZERO, zl, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  zl = v128.xor(zl, v128.xor(permute(v128.load(TP, 144), lo), permute(v128.load(TQ, 144), hi)));
  zh = i8x16.shuffle(zl, zh, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  zl = i8x16.shuffle(ZERO, zl, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  zl = v128.xor(zl, v128.xor(permute(v128.load(TP, 128), lo), permute(v128.load(TQ, 128), hi)));
  zh = i8x16.shuffle(zl, zh, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  zl = i8x16.shuffle(ZERO, zl, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  zl = v128.xor(zl, v128.xor(permute(v128.load(TP, 112), lo), permute(v128.load(TQ, 112), hi)));
  zh = i8x16.shuffle(zl, zh, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  zl = i8x16.shuffle(ZERO, zl, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  zl = v128.xor(zl, v128.xor(permute(v128.load(TP, 96), lo), permute(v128.load(TQ, 96), hi)));
  zh = i8x16.shuffle(zl, zh, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  zl = i8x16.shuffle(ZERO, zl, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  zl = v128.xor(zl, v128.xor(permute(v128.load(TP, 80), lo), permute(v128.load(TQ, 80), hi)));
  zh = i8x16.shuffle(zl, zh, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  zl = i8x16.shuffle(ZERO, zl, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  zl = v128.xor(zl, v128.xor(permute(v128.load(TP, 64), lo), permute(v128.load(TQ, 64), hi)));
  zh = i8x16.shuffle(zl, zh, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  zl = i8x16.shuffle(ZERO, zl, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  zl = v128.xor(zl, v128.xor(permute(v128.load(TP, 48), lo), permute(v128.load(TQ, 48), hi)));
  zh = i8x16.shuffle(zl, zh, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  zl = i8x16.shuffle(ZERO, zl, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  zl = v128.xor(zl, v128.xor(permute(v128.load(TP, 32), lo), permute(v128.load(TQ, 32), hi)));
  zh = i8x16.shuffle(zl, zh, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  zl = i8x16.shuffle(ZERO, zl, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  zl = v128.xor(zl, v128.xor(permute(v128.load(TP, 16), lo), permute(v128.load(TQ, 16), hi)));
  zh = i8x16.shuffle(zl, zh, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  zl = i8x16.shuffle(ZERO, zl, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  zl = v128.xor(zl, v128.xor(permute(v128.load(TP), lo), permute(v128.load(TQ), hi)));

  // The 256-bit product v3:v2:v1:v0 (v3 most significant; zl = v1:v0,
  // zh = v3:v2), already shifted left by one (the tables hold multiples of
  // H << 1). Reduce: in reflected order x^128 = x^7 + x^2 + x + 1 folds each
  // low word w into the word two above as f(w) = w ⊕ w>>1 ⊕ w>>2 ⊕ w>>7 and
  // into the word one above as g(w) = w<<63 ⊕ w<<62 ⊕ w<<57. v0's g lands in
  // v1 before v1 is folded; g(g(v0)) = 0, so g of both words is taken at once.
  const gw = v128.xor(v128.xor(i64x2.shl(zl, 63), i64x2.shl(zl, 62)), i64x2.shl(zl, 57));
  const w = v128.xor(zl, i8x16.shuffle(ZERO, gw, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23));
  const f = v128.xor(v128.xor(w, i64x2.shr_u(w, 1)), v128.xor(i64x2.shr_u(w, 2), i64x2.shr_u(w, 7)));
  v128.store(Y, v128.xor(v128.xor(zh, f), i8x16.shuffle(gw, ZERO, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23)));
}

/** GHASHes len bytes at p (any length), zero-padding the last partial block (§6.4, §7.1 step 5). */
export function ghashBytes(p: usize, len: i32): void {
  let i = 0;
  for (; i + 16 <= len; i += 16) ghashBlock(p + <usize>i);
  if (i < len) {
    v128.store(PAD, i64x2.splat(0));
    memory.copy(PAD, p + <usize>i, <usize>(len - i));
    ghashBlock(PAD);
  }
}

/** The closing block len(A)‖len(C), both as 64-bit big-endian bit counts (§7.1 step 5). */
export function ghashLengths(aadLen: i32, len: i32): void {
  // As a little-endian integer: len(C) in the low 64 bits, len(A) in the high.
  const v = i64x2.replace_lane(i64x2.splat(<i64>len << 3), 1, <i64>aadLen << 3);
  v128.store(PAD, i8x16.swizzle(v, REV16));
  ghashBlock(PAD);
}

/** Writes the GHASH output (16 B at out) XORed with the 16 B at mask: the GCM tag E(K, J0) ⊕ S. */
export function ghashFinish(mask: usize, out: usize): void {
  v128.store(out, v128.xor(i8x16.swizzle(v128.load(Y), REV16), v128.load(mask)));
  v128.store(Y, i64x2.splat(0));
}

/** Zeroes the H-derived tables and the accumulator (see aesWipeScratch). */
export function ghashWipeScratch(): void {
  memory.fill(Y, 0, 16);
  memory.fill(TP, 0, 17 * 16);
  memory.fill(TQ, 0, 17 * 16);
  memory.fill(PAD, 0, 16);
  memory.fill(HS, 0, 8 * 24);
  memory.fill(HC, 0, 16);
}
