// The caches of rounds 1 and 2 of AES counter mode for GCM (gcm.ts ctrBatch),
// on aes.ts's bitsliced state ST. Within a run of 256 consecutive counters
// only byte 15 of the counter block changes, so most of rounds 1 and 2 repeat
// from batch to batch (Bernstein–Schwabe, "New AES software speed records",
// INDOCRYPT 2008, §4); what changes is computed for many batches in one
// bitsliced S-box run and added to the cached rounds. Which lanes are used
// and when a cache is refreshed depend on the counters and the batch index
// only (public), never on the key or the data. The scratch here holds
// key-derived bytes: aesCtrCacheWipeScratch zeroes it (gcm.ts gcmWipeScratch).

import { AES_RK_SIZE, ISR, ST, ZERO_RK, aesCtrIn, aesRun, aesRunCtr } from "./aes";
import { permute } from "./permute";

/**
 * Round 1 of counter mode, cached (Bernstein–Schwabe, "New AES software speed
 * records", INDOCRYPT 2008, §4: the first round of a counter-mode run mostly
 * repeats). Within 256 consecutive counters only byte 15 of the counter block
 * changes, so round 1's SubBytes output is the same in every batch at state
 * positions 0..14; position 15's byte reaches round 1's output only through
 * one column of MixColumns, with coefficients 1, 1, 3, 2 (rows 0..3). The
 * round is linear after SubBytes, so
 *
 *   round1(batch) = R1C ⊕ M(d),  d = S'(position 15 of the batch)
 *
 * where R1C is round 1's output with position 15's S-box output taken as zero
 * (once per run of 256 counters, aesCtrRun) and M(d) puts d, d, 3·d, 2·d
 * into that column's four bytes. Only that column goes on, into round 2's
 * S-box (see R2C), so R1C keeps just the column's four bytes, repeated over
 * aesCtrSbox2's 16 input lanes (C2 +48 / +64). d for 16 batches comes from
 * one bitsliced S-box with batch k's position 15 in byte lane k (aesCtrSbox15).
 * In the fixsliced rounds (relaxed build) round 1's output is kept as
 * SR⁻¹(S_1) (see FX), which moves the column's bytes 0, 1, 2, 3 to 0, 5, 10, 15.
 * Position 15's input bits 0..2 are the block number inside the batch (the
 * pattern of aesCtrBase) and bits 3..7 are bits 3..7 of the batch's counter:
 * batch c uses lane (c >> 3) & 15, distinct for 16 consecutive batches.
 * Constant time: which lane and when to refresh depend on counters only (public).
 */
const R1C = memory.data(128, 64);
/** S'(position 15) of 16 batches: plane b, lane (c >> 3) & 15 (aesCtrSbox15). */
const D15 = memory.data(128, 64);
/** Counter low bytes by lane while aesCtrSbox15 runs (16 B). */
const LOW = memory.data(16, 16);
// Where round 1's output column gets d (rows 0, 1, 2: 1, 1, 3 = 1 ⊕ 2) and 2·d
// (rows 2, 3), plain (column 0: bytes 0..3) then fixsliced (bytes 0, 5, 10, 15).
const COL = memory.data<u8>([
  255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  255, 0, 0, 0, 0, 255, 0, 0, 0, 0, 255, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 0, 0, 0, 0, 255,
], 16);

/**
 * S'(position 15) — SubBytes without its constant, as the circuit computes it —
 * of the 16 batches whose first counters are c, c + 8, …, c + 120 (c ≡ 0 mod 8;
 * base from aesCtrBase) into D15, lane (counter >> 3) & 15. Clobbers the state.
 */
export function aesCtrSbox15(base: usize, c: u32): void {
  for (let t: u32 = 0; t < 128; t += 8) {
    const ct = c + t;
    store<u8>(LOW + <usize>((ct >> 3) & 15), <u8>ct);
  }
  const low = v128.load(LOW);
  for (let b: usize = 0; b < 8; b++) {
    const one: i32 = 1 << <i32>b;
    const bit = i8x16.splat(<i8>one);
    const x = v128.xor(i8x16.splat(load<i8>(base + (b << 4), 15)), i8x16.eq(v128.and(low, bit), bit));
    // aesRun's final round ends with ShiftRows: lane j is taken from byte SR[j].
    v128.store(ST + (b << 4), i8x16.swizzle(x, ISR));
  }
  aesRun(ZERO_RK - AES_RK_SIZE, 1, false, 0, 0, 0);
  memory.copy(D15, ST, 128);
}

/**
 * dst = src ⊕ (x & ma) ⊕ (2·x & mb) by plane, x = the S-box outputs at planes
 * (8 × v128) permuted by sel: the one shape of both caches' deltas (M(d) of
 * R1C, L(z) of R2C), lane by lane coefficient 1 (ma), 2 (mb) or 3 (both).
 * 2·x is xtime (see rounds): bit b ← bit b − 1, bit 7 folded into bits 0, 1, 3, 4.
 */
// @ts-ignore: decorator
@inline function addSpread(src: usize, dst: usize, planes: usize, sel: v128, ma: v128, mb: v128): void {
  const d0 = permute(v128.load(planes), sel), d1 = permute(v128.load(planes, 16), sel);
  const d2 = permute(v128.load(planes, 32), sel), d3 = permute(v128.load(planes, 48), sel);
  const d4 = permute(v128.load(planes, 64), sel), d5 = permute(v128.load(planes, 80), sel);
  const d6 = permute(v128.load(planes, 96), sel), d7 = permute(v128.load(planes, 112), sel);
  v128.store(dst, v128.xor(v128.load(src), v128.xor(v128.and(d0, ma), v128.and(d7, mb))));
  v128.store(dst, v128.xor(v128.load(src, 16), v128.xor(v128.and(d1, ma), v128.and(v128.xor(d0, d7), mb))), 16);
  v128.store(dst, v128.xor(v128.load(src, 32), v128.xor(v128.and(d2, ma), v128.and(d1, mb))), 32);
  v128.store(dst, v128.xor(v128.load(src, 48), v128.xor(v128.and(d3, ma), v128.and(v128.xor(d2, d7), mb))), 48);
  v128.store(dst, v128.xor(v128.load(src, 64), v128.xor(v128.and(d4, ma), v128.and(v128.xor(d3, d7), mb))), 64);
  v128.store(dst, v128.xor(v128.load(src, 80), v128.xor(v128.and(d5, ma), v128.and(d4, mb))), 80);
  v128.store(dst, v128.xor(v128.load(src, 96), v128.xor(v128.and(d6, ma), v128.and(d5, mb))), 96);
  v128.store(dst, v128.xor(v128.load(src, 112), v128.xor(v128.and(d7, ma), v128.and(d6, mb))), 112);
}

/** dst = src ⊕ M(d) for the batch at counter c (see R1C); fx: the fixsliced column. */
// @ts-ignore: decorator
@inline function addCol15(src: usize, dst: usize, c: u32, fx: bool): void {
  // d in every lane: lane (c >> 3) & 15 of D15 broadcast.
  addSpread(src, dst, D15, i8x16.splat(<i8>((c >> 3) & 15)), v128.load(COL + (fx ? 32 : 0)), v128.load(COL + (fx ? 48 : 16)));
}

/**
 * Round 2 of counter mode, cached the same way (Bernstein–Schwabe 2008 §4
 * carry the cache on into round 2). Within a run of 256 counters round 1's
 * output varies in one column only (R1C: bytes 0..3, fixsliced 0, 5, 10, 15),
 * so round 2's SubBytes output is the same in every batch at the other 12
 * positions. ShiftRows (FIPS-197 §5.1.2) sends row r of that column to column
 * −r mod 4, one varying byte per column, and MixColumns (§5.1.3) spreads it
 * over its column with the coefficients 2, 3, 1, 1 rotated. Linear again:
 *
 *   round2(batch) = R2C ⊕ L(z),  z = S'(round 1's four varying bytes of the batch)
 *
 * where R2C is round 2's output with those four S-box outputs taken as zero
 * (once per run of 256 counters, aesCtrRun) and L(z) gives each byte k of
 * the state coef_k · z_r(k), coef_k ∈ {1, 2, 3} (aesCtrIn2; fixsliced, round
 * 2's output is SR⁻²(S_2), see FX). The four bytes of four batches fill one
 * bitsliced S-box (aesCtrSbox2): batch slot j = batch & 3 puts row r in lane
 * 4j + r of Z2, its input R1C ⊕ M(d) at the column, d from D15. Per batch:
 * a quarter S-box and L (8 permutes, an xtime, 16 AND, 16 XOR) instead of
 * round 1's delta and a full round 2.
 *
 * Groups go by batch index, like D15's 16 batches (so a group never reaches
 * past D15's window), and are refreshed wherever R1C is too (the first batch,
 * a new run of 256): a group a wrap cuts is recomputed from that batch on,
 * and its lanes for batches past the next multiple of 4 are recomputed there
 * before they are used. Constant time: slots and refreshes depend on the
 * batch index and counters only (public).
 */
const R2C = memory.data(128, 64);
/** S' of round 1's varying column of 4 batches: plane b, lane 4·(batch & 3) + row (aesCtrSbox2). */
const Z2 = memory.data(128, 64);
// aesCtrSbox2's input lanes, by lane m (aesRun's final ShiftRows takes output
// lane 4j + r from input lane SR[4j + r], so lane m holds (j, r) = ISR[m]):
//   +0  slot j   +16 / +32  rows 0, 1, 2 (d) / 2, 3 (2·d), as COL
//   +48 / +64  where row r sits in R1C: byte r (plain) / 5r (fixsliced)
// then L, by state byte k: the row r(k) feeding it (+ 4j picks the slot) and
// its coefficient 1 or 3 (ma) / 2 or 3 (mb), plain (+80) then fixsliced (+128;
// FX's masks for i = 2). Derived from SR, ROT1/ROT2 and FX; held by
// test/unit/crypto-gcm.test.ts against OpenSSL in both builds.
const C2 = memory.data<u8>([
  0, 3, 2, 1, 1, 0, 3, 2, 2, 1, 0, 3, 3, 2, 1, 0,
  255, 255, 255, 0, 255, 255, 255, 0, 255, 255, 255, 0, 255, 255, 255, 0,
  0, 0, 255, 255, 0, 0, 255, 255, 0, 0, 255, 255, 0, 0, 255, 255,
  0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3,
  0, 5, 10, 15, 0, 5, 10, 15, 0, 5, 10, 15, 0, 5, 10, 15,
  0, 0, 0, 0, 3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1,
  0, 255, 255, 255, 255, 255, 255, 0, 255, 255, 0, 255, 255, 0, 255, 255,
  255, 0, 0, 255, 0, 0, 255, 255, 0, 255, 255, 0, 255, 255, 0, 0,
  0, 2, 0, 2, 3, 1, 3, 1, 2, 0, 2, 0, 1, 3, 1, 3,
  0, 255, 255, 255, 255, 0, 255, 255, 255, 255, 0, 255, 255, 255, 255, 0,
  255, 255, 0, 0, 0, 255, 255, 0, 0, 0, 255, 255, 255, 0, 0, 255,
], 16);

/**
 * S' of round 1's varying column for the batch at counter c (index batch)
 * and the next three, c + 8, c + 16, c + 24, into Z2, slot (batch + t) & 3.
 * R1C must be c's run and D15 cover those batches. Clobbers the state.
 */
export function aesCtrSbox2(c: u32, batch: i32): void {
  // Lane m serves batch + t, t = (slot − batch) & 3: D15 lane ((c >> 3) + t) & 15.
  const t = v128.and(i8x16.sub(v128.load(C2), i8x16.splat(<i8>batch)), i8x16.splat(3));
  const sel = v128.and(i8x16.add(t, i8x16.splat(<i8>(c >> 3))), i8x16.splat(15));
  addSpread(R1C, ST, D15, sel, v128.load(C2, 16), v128.load(C2, 32));
  aesRun(ZERO_RK - AES_RK_SIZE, 1, false, 0, 0, 0);
  memory.copy(Z2, ST, 128);
}

/** dst = src ⊕ L(z) for the batch with index batch (see R2C). */
// @ts-ignore: decorator
@inline function addRow2(src: usize, dst: usize, batch: i32): void {
  const m = C2 + (ASC_FEATURE_RELAXED_SIMD ? 128 : 80);
  const sel = i8x16.add(v128.load(m), i8x16.splat(<i8>((batch & 3) << 2)));
  addSpread(src, dst, Z2, sel, v128.load(m, 16), v128.load(m, 32));
}

/**
 * The caches for the run of 256 counters holding c (a multiple of 8; batch:
 * its index in the message), from rounds 1 and 2 of that batch done in full:
 * R1C = round1(c) ⊕ M(d_c), kept as its column (see R1C), then Z2 for this
 * batch's group (aesCtrSbox2), then R2C = round2(c) ⊕ L(z_c). D15 must cover
 * c's group (aesCtrSbox15). Leaves the state undefined.
 */
export function aesCtrRun(rk0: usize, nr: i32, base: usize, c: u32, batch: i32): void {
  aesCtrIn(base, c);
  aesRunCtr(rk0, nr, 1, 1, 0, 0, 0);
  addCol15(ST, R1C, c, ASC_FEATURE_RELAXED_SIMD);
  const gr = v128.load(C2 + (ASC_FEATURE_RELAXED_SIMD ? 64 : 48));
  for (let b: usize = 0; b < 128; b += 16) v128.store(R1C + b, permute(v128.load(R1C + b), gr));
  aesRunCtr(rk0, nr, 2, 2, 0, 0, 0);
  memory.copy(R2C, ST, 128);
  aesCtrSbox2(c, batch);
  addRow2(R2C, R2C, batch);
}

/** The state after round 2 for the batch with index batch: R2C ⊕ L(z) (aesCtrRun ran for its run). */
export function aesCtrIn2(batch: i32): void {
  addRow2(R2C, ST, batch);
}

/** Zeroes the caches (R1C, D15, R2C, Z2, LOW): after an SA's last packet they hold material derived from its key. */
export function aesCtrCacheWipeScratch(): void {
  memory.fill(R1C, 0, 128);
  memory.fill(D15, 0, 128);
  memory.fill(R2C, 0, 128);
  memory.fill(Z2, 0, 128);
  memory.fill(LOW, 0, 16);
}
