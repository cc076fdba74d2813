// AES-128/192/256 (FIPS-197), bitsliced: eight blocks at a time in eight v128.
//
// Constant time by construction: SubBytes is the Boyar–Peralta boolean circuit
// (113 gates, "A new combinational logic minimization technique with
// applications to cryptology", 2010), ShiftRows/MixColumns are byte
// permutations with constant masks (i8x16.swizzle = one pshufb) and XORs, and
// the key schedule runs its SubWord through the same circuit. Nothing indexes
// memory with secret data and nothing branches on it.
//
// Bitsliced layout (Käsper–Schwabe, "Faster and timing-attack resistant
// AES-GCM", CHES 2009): the 8 blocks × 16 bytes × 8 bits = 1024 state bits
// live in q0..q7, where
//
//   qb byte k, bit i  =  bit b of byte k of block i      (b, i = 0..7, k = 0..15)
//
//        byte:  0    1    2   ...  15        byte k is state position k of
//   q0  [ ........ ........ ... ........ ]   FIPS-197 §3.4 (column-major:
//   ...   ^ one bit per block (bit i = block i)  k = 4·column + row)
//   q7  [ ........ ........ ... ........ ]
//
// so each gate of the S-box circuit runs all 128 S-boxes at once, ShiftRows is
// the same byte permutation on every qb, and MixColumns rotates bytes within
// each column. `ortho` converts eight plain blocks to this layout and back (it
// is an 8×8 bit transpose per byte position, its own inverse).
//
// Context layout (AES_CTX_SIZE bytes, caller-allocated, 64-byte aligned):
//
//   0     ┌──────────────────────────────────────────────┐
//         │ round key 0, bitsliced: 8 × v128 (q0..q7)      │ 128 B each; a round key
//   128   │ round key 1 ⊕ 0x63…63 (see aesRun)             │ is the same for all 8
//   ...   │ ...                                            │ blocks, so each of its
//   1792  │ round key 14 (AES-256; unused for 128/192)     │ bytes is 0x00 or 0xFF
//   1920  ├──────────────────────────────────────────────┤
//         │ u32 Nr (10, 12 or 14)  │ 12 B reserved (zero)  │
//   1936  └──────────────────────────────────────────────┘
//
// Decryption uses the same round keys in reverse with the inverse cipher
// (FIPS-197 §5.3), so one schedule serves both directions.
//
// GCM uses the building blocks aesCtrBase / aesCtrIn / aesRunCtr /
// aesStateOut on the module's static state, so that aesRunCtr can GHASH
// ciphertext between rounds (fixsliced in the relaxed-SIMD build, see FX),
// with rounds 1 and 2 cached by aes_ctr_cache.ts (gcm.ts ctrBatch);
// aesEncrypt8 / aesDecrypt8 are the plain paths.

import { ghashBlockInline } from "./ghash";
import { permute } from "./permute";

/** Bytes of an AES context: 15 bitsliced round keys + Nr. */
export const AES_CTX_SIZE: i32 = 1936;
/** Offset of the u32 round count in the context. */
const CTX_NR: usize = 1920;
/** Bytes of one bitsliced round key. */
export const AES_RK_SIZE: usize = 128;

// Round kinds inside aesRun: final round (no (Inv)MixColumns).
const AES_LAST: i32 = 2;

/** The bitsliced state q0..q7 (128 B). Every call below works on it. */
export const ST = memory.data(128, 64);
/** Plain FIPS-197 key schedule words while aesInit runs (240 B); wiped after. */
const KW = memory.data(240, 16);
/** An all-zero bitsliced round key (SubWord via aesRun). Never written. */
export const ZERO_RK = memory.data(128, 16);
/** One block in, one block out, for aesEncryptBlock (8 blocks wide). */
const ONE = memory.data(128, 16);

// FIPS-197 §5.1.2 ShiftRows: new[4c+r] = old[4((c+r) mod 4)+r]; its inverse (§5.3.1).
const SR: v128 = i8x16(0, 5, 10, 15, 4, 9, 14, 3, 8, 13, 2, 7, 12, 1, 6, 11);
export const ISR: v128 = i8x16(0, 13, 10, 7, 4, 1, 14, 11, 8, 5, 2, 15, 12, 9, 6, 3);
// Rotations of each column by one and two rows: rot1(x)[4c+r] = x[4c+(r+1) mod 4].
const ROT1: v128 = i8x16(1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12);
const ROT2: v128 = i8x16(2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
// ROT1 after SR in one permutation: SR_ROT1[k] = SR[ROT1[k]].
const SR_ROT1: v128 = i8x16(5, 10, 15, 0, 9, 14, 3, 4, 13, 2, 7, 8, 1, 6, 11, 12);

// Fixslicing (Adomnicai & Peyrin, "Fixslicing AES-like ciphers", TCHES 2021)
// for the cipher inside GCM (aesRunCtr): the state after round r is
// kept as T_r = SR⁻ʳ(S_r), which makes round r
//   T_r = SR⁻ʳ·MC·SRʳ (SubBytes(T_(r−1))) ⊕ SR⁻ʳ(K_r)
// (SubBytes commutes with byte permutations): no ShiftRows, and MixColumns
// with its column rotations conjugated by SRʳ — still one byte permutation
// each, so a plane costs two swizzles instead of three. The final round has
// no permutation at all, and one SR^Nr (SR⁴ = id) turns T_Nr back into the
// cipher's state. Masks by r mod 4, 16 B each:
//   +0    R1_r = SR⁻ʳ∘ROT1∘SRʳ   +64   R2_r = SR⁻ʳ∘ROT2∘SRʳ
//   +128  SR⁻ʳ (round keys, aesFixsliceKeys)   +192  SRʳ (the final fix)
// Still constant time: the masks are picked by the round number (public) and
// a permute's timing does not depend on its mask. Used by the relaxed-SIMD
// build only (aesRunCtr), where it measured 1,400 B seal 327 → 332 MB/s,
// open 319 → 326 (same process, 2026-12-06 20:42 UTC, load 1.9–2.3;
// docs/performance.md "The core's AES-GCM").
const FX = memory.data<u8>([
  1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12,
  5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12, 1, 2, 3, 0,
  9, 10, 11, 8, 13, 14, 15, 12, 1, 2, 3, 0, 5, 6, 7, 4,
  13, 14, 15, 12, 1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8,
  2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13,
  10, 11, 8, 9, 14, 15, 12, 13, 2, 3, 0, 1, 6, 7, 4, 5,
  2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13,
  10, 11, 8, 9, 14, 15, 12, 13, 2, 3, 0, 1, 6, 7, 4, 5,
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
  0, 13, 10, 7, 4, 1, 14, 11, 8, 5, 2, 15, 12, 9, 6, 3,
  0, 9, 2, 11, 4, 13, 6, 15, 8, 1, 10, 3, 12, 5, 14, 7,
  0, 5, 10, 15, 4, 9, 14, 3, 8, 13, 2, 7, 12, 1, 6, 11,
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
  0, 5, 10, 15, 4, 9, 14, 3, 8, 13, 2, 7, 12, 1, 6, 11,
  0, 9, 2, 11, 4, 13, 6, 15, 8, 1, 10, 3, 12, 5, 14, 7,
  0, 13, 10, 7, 4, 1, 14, 11, 8, 5, 2, 15, 12, 9, 6, 3,
], 16);

// ortho's swap masks: exchange bit 1/2/4 of the register index with the same
// bit of the position inside each byte.
const M55: v128 = i8x16(0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55);
const M33: v128 = i8x16(0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33);
const M0F: v128 = i8x16(0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f);

/**
 * 8×8 bit transpose at every byte position of the 8 v128 at src (128 B) into
 * dst (128 B; may be src): register i bit b ↔ register b bit i. Plain blocks
 * ↔ bitsliced state. XORs the 128 B at key into the result unless key is 0:
 * AddRoundKey 0 rides along for free.
 */
// @ts-ignore: decorator
@inline function ortho(src: usize, dst: usize, key: usize): void {
  const p = src;
  let q0 = v128.load(p), q1 = v128.load(p, 16), q2 = v128.load(p, 32), q3 = v128.load(p, 48);
  let q4 = v128.load(p, 64), q5 = v128.load(p, 80), q6 = v128.load(p, 96), q7 = v128.load(p, 112);
  let t: v128;
  // swap(lo, hi, n, m): t = ((lo >> n) ^ hi) & m; hi ^= t; lo ^= t << n
  t = v128.and(v128.xor(i64x2.shr_u(q0, 1), q1), M55); q1 = v128.xor(q1, t); q0 = v128.xor(q0, i64x2.shl(t, 1));
  t = v128.and(v128.xor(i64x2.shr_u(q2, 1), q3), M55); q3 = v128.xor(q3, t); q2 = v128.xor(q2, i64x2.shl(t, 1));
  t = v128.and(v128.xor(i64x2.shr_u(q4, 1), q5), M55); q5 = v128.xor(q5, t); q4 = v128.xor(q4, i64x2.shl(t, 1));
  t = v128.and(v128.xor(i64x2.shr_u(q6, 1), q7), M55); q7 = v128.xor(q7, t); q6 = v128.xor(q6, i64x2.shl(t, 1));
  t = v128.and(v128.xor(i64x2.shr_u(q0, 2), q2), M33); q2 = v128.xor(q2, t); q0 = v128.xor(q0, i64x2.shl(t, 2));
  t = v128.and(v128.xor(i64x2.shr_u(q1, 2), q3), M33); q3 = v128.xor(q3, t); q1 = v128.xor(q1, i64x2.shl(t, 2));
  t = v128.and(v128.xor(i64x2.shr_u(q4, 2), q6), M33); q6 = v128.xor(q6, t); q4 = v128.xor(q4, i64x2.shl(t, 2));
  t = v128.and(v128.xor(i64x2.shr_u(q5, 2), q7), M33); q7 = v128.xor(q7, t); q5 = v128.xor(q5, i64x2.shl(t, 2));
  t = v128.and(v128.xor(i64x2.shr_u(q0, 4), q4), M0F); q4 = v128.xor(q4, t); q0 = v128.xor(q0, i64x2.shl(t, 4));
  t = v128.and(v128.xor(i64x2.shr_u(q1, 4), q5), M0F); q5 = v128.xor(q5, t); q1 = v128.xor(q1, i64x2.shl(t, 4));
  t = v128.and(v128.xor(i64x2.shr_u(q2, 4), q6), M0F); q6 = v128.xor(q6, t); q2 = v128.xor(q2, i64x2.shl(t, 4));
  t = v128.and(v128.xor(i64x2.shr_u(q3, 4), q7), M0F); q7 = v128.xor(q7, t); q3 = v128.xor(q3, i64x2.shl(t, 4));
  if (key) {
    q0 = v128.xor(q0, v128.load(key)); q1 = v128.xor(q1, v128.load(key, 16));
    q2 = v128.xor(q2, v128.load(key, 32)); q3 = v128.xor(q3, v128.load(key, 48));
    q4 = v128.xor(q4, v128.load(key, 64)); q5 = v128.xor(q5, v128.load(key, 80));
    q6 = v128.xor(q6, v128.load(key, 96)); q7 = v128.xor(q7, v128.load(key, 112));
  }
  v128.store(dst, q0); v128.store(dst, q1, 16); v128.store(dst, q2, 32); v128.store(dst, q3, 48);
  v128.store(dst, q4, 64); v128.store(dst, q5, 80); v128.store(dst, q6, 96); v128.store(dst, q7, 112);
}

/**
 * Loads 8 blocks (128 B at src, any alignment) into the bitsliced state and
 * applies AddRoundKey (FIPS-197 §5.1.4) with the bitsliced round key at rk.
 */
export function aesStateIn(src: usize, rk: usize): void {
  ortho(src, ST, rk);
}

/** Writes the bitsliced state back as 8 plain blocks (128 B at dst, any alignment). */
export function aesStateOut(dst: usize): void {
  ortho(ST, dst, 0);
}

/**
 * Counter mode without the input transpose. Eight counter blocks
 * prefix ‖ c, prefix ‖ c+1, …, prefix ‖ c+7 with c ≡ 0 (mod 8) differ only in
 * the three low bits of byte 15, and those bits are the block number i: bit b
 * of byte 15 across the blocks is the fixed pattern 0xaa, 0xcc, 0xf0 for
 * b = 0, 1, 2. Everything else is the same in all eight blocks, so its
 * bitsliced form is a broadcast (0x00/0xff bytes) — no transpose needed.
 *
 * aesCtrBase builds, once per message, the bitsliced prefix with that pattern
 * and round key 0 already added (base: 128 B; j0: 16 B, bytes 0..11 used);
 * aesCtrIn then loads the state for the batch whose first counter is c
 * (a multiple of 8, big-endian in bytes 12..15) by adding c's broadcast bits.
 */
export function aesCtrBase(rk0: usize, j0: usize, base: usize): void {
  v128.store(ONE, i32x4.replace_lane(v128.load(j0), 3, 0));
  spreadKey(ONE, base);
  for (let b: usize = 0; b < 8; b++) {
    let v = v128.xor(v128.load(base + (b << 4)), v128.load(rk0 + (b << 4)));
    if (b < 3) v = v128.xor(v, i32x4.replace_lane(i64x2.splat(0), 3, b == 0 ? <i32>0xaa000000 : b == 1 ? <i32>0xcc000000 : <i32>0xf0000000));
    v128.store(base + (b << 4), v);
  }
}

/** State = base ⊕ bitsliced broadcast of the counter c (c ≡ 0 mod 8) in bytes 12..15. */
export function aesCtrIn(base: usize, c: u32): void {
  // Byte k of plane b is 0xff when bit b of counter byte k is set.
  const v = i32x4.replace_lane(i64x2.splat(0), 3, bswap<u32>(c));
  for (let b: usize = 0; b < 8; b++) {
    const one: i32 = 1 << <i32>b;
    const bit = i8x16.splat(<i8>one);
    v128.store(ST + (b << 4), v128.xor(v128.load(base + (b << 4)), i8x16.eq(v128.and(v, bit), bit)));
  }
}

/**
 * Rounds 1..nr of the cipher (FIPS-197 §5.1), or of the inverse cipher
 * (§5.3) when dec, on the state (AddRoundKey 0 already applied):
 *   cipher round r:          SubBytes, ShiftRows, MixColumns*, AddRoundKey(r)
 *   inverse round nr−i:      InvSubBytes, InvShiftRows, AddRoundKey(nr−i), InvMixColumns*
 *   (* not in the final round; InvShiftRows and InvSubBytes commute.)
 * rk0: bitsliced round key 0, the others follow every AES_RK_SIZE bytes.
 *
 * SubBytes' affine constant 0x63 is not in the circuit: S(x) = S'(x) ⊕ C with
 * C = 0x63 in every byte, and since ShiftRows and MixColumns map C to itself
 * (each column of MixColumns sums to 2⊕3⊕1⊕1 = 1), C is folded into round
 * keys 1..Nr at aesInit. The inverse cipher keeps its state ⊕ C instead (the
 * initial AddRoundKey uses the folded key Nr): then both L maps lose their
 * constant too — L(y ⊕ C) = L_lin(y), since L_lin(0x63) = 0x05 — the folded
 * keys 1..Nr keep the ⊕ C through every round (InvMixColumns also fixes C),
 * and the plain key 0 removes it in the final round. No NOT is left.
 *
 * The state stays in registers across rounds. Between rounds it GHASHes one
 * block at gp + 16·g while g < gEnd and returns the new g (GCM, see gcm.ts;
 * pass gEnd = 0 for plain AES): no call in between, so the two independent
 * dependency chains overlap. dec, nr and g are public, so are the branches.
 */
export function aesRun(rk0: usize, nr: i32, dec: bool, gp: usize, g: i32, gEnd: i32): i32 {
  return rounds(rk0, nr, 1, nr, dec, gp, g, gEnd, false);
}

/**
 * Rounds from..to of the cipher for GCM's counter mode (encryption only):
 * fixsliced (FX, round keys from aesFixsliceKeys) in the relaxed-SIMD build,
 * plain in the baseline one. from = 1 starts from aesCtrIn's state, 2 and 3
 * continue after round 1 (aesCtrRun) or 2 (aesCtrIn2); to < nr stops before
 * the last round (and before the fixslice fix).
 */
export function aesRunCtr(rk0: usize, nr: i32, from: i32, to: i32, gp: usize, g: i32, gEnd: i32): i32 {
  return rounds(rk0, nr, from, to, false, gp, g, gEnd, ASC_FEATURE_RELAXED_SIMD);
}

/**
 * aesRun's body; fx: the fixsliced rounds (FX), encryption only. fx is a
 * constant at both calls, so each compiles without the other's branch.
 * Runs rounds from..to of nr (round nr is the final one).
 */
// @ts-ignore: decorator
@inline function rounds(rk0: usize, nr: i32, from: i32, to: i32, dec: bool, gp: usize, g: i32, gEnd: i32, fx: bool): i32 {
  let q0 = v128.load(ST), q1 = v128.load(ST, 16), q2 = v128.load(ST, 32), q3 = v128.load(ST, 48);
  let q4 = v128.load(ST, 64), q5 = v128.load(ST, 80), q6 = v128.load(ST, 96), q7 = v128.load(ST, 112);
  for (let i = from; i <= to; i++) {
  const rk = rk0 + <usize>(dec ? nr - i : i) * AES_RK_SIZE;
  const mode = i == nr ? AES_LAST : 0;
  if (dec) {
    // InvSubBytes(y) = L(SubBytes(L(y))) with L(y) = A⁻¹·y ⊕ 0x05, the inverse
    // affine map of §5.3.2: S(x) = A·x⁻¹ ⊕ 0x63 gives L(S(L(y))) = (A⁻¹·y ⊕ 0x05)⁻¹.
    // L_lin: bit i = y(i+2) ^ y(i+5) ^ y(i+7); the state carries ⊕ C (see above).
    const a0 = v128.xor(v128.xor(q2, q5), q7), a1 = v128.xor(v128.xor(q3, q6), q0);
    const a2 = v128.xor(v128.xor(q4, q7), q1), a3 = v128.xor(v128.xor(q5, q0), q2);
    const a4 = v128.xor(v128.xor(q6, q1), q3), a5 = v128.xor(v128.xor(q7, q2), q4);
    const a6 = v128.xor(v128.xor(q0, q3), q5), a7 = v128.xor(v128.xor(q1, q4), q6);
    q0 = a0; q1 = a1; q2 = a2; q3 = a3; q4 = a4; q5 = a5; q6 = a6; q7 = a7;
  }

  // SubBytes: the Boyar–Peralta circuit; x0 is the most significant bit.
  const x0 = q7, x1 = q6, x2 = q5, x3 = q4, x4 = q3, x5 = q2, x6 = q1, x7 = q0;
  // Top linear layer.
  const y14 = v128.xor(x3, x5), y13 = v128.xor(x0, x6), y9 = v128.xor(x0, x3), y8 = v128.xor(x0, x5);
  const t0 = v128.xor(x1, x2), y1 = v128.xor(t0, x7), y4 = v128.xor(y1, x3), y12 = v128.xor(y13, y14);
  const y2 = v128.xor(y1, x0), y5 = v128.xor(y1, x6), y3 = v128.xor(y5, y8), t1 = v128.xor(x4, y12);
  const y15 = v128.xor(t1, x5), y20 = v128.xor(t1, x1), y6 = v128.xor(y15, x7), y10 = v128.xor(y15, t0);
  const y11 = v128.xor(y20, y9), y7 = v128.xor(x7, y11), y17 = v128.xor(y10, y11), y19 = v128.xor(y10, y8);
  const y16 = v128.xor(t0, y11), y21 = v128.xor(y13, y16), y18 = v128.xor(x0, y16);
  // Non-linear middle: inversion in GF(2^8) through GF(2^4).
  const t2 = v128.and(y12, y15), t3 = v128.and(y3, y6), t4 = v128.xor(t3, t2), t5 = v128.and(y4, x7);
  const t6 = v128.xor(t5, t2), t7 = v128.and(y13, y16), t8 = v128.and(y5, y1), t9 = v128.xor(t8, t7);
  const t10 = v128.and(y2, y7), t11 = v128.xor(t10, t7), t12 = v128.and(y9, y11), t13 = v128.and(y14, y17);
  const t14 = v128.xor(t13, t12), t15 = v128.and(y8, y10), t16 = v128.xor(t15, t12), t17 = v128.xor(t4, t14);
  const t18 = v128.xor(t6, t16), t19 = v128.xor(t9, t14), t20 = v128.xor(t11, t16), t21 = v128.xor(t17, y20);
  const t22 = v128.xor(t18, y19), t23 = v128.xor(t19, y21), t24 = v128.xor(t20, y18);
  const t25 = v128.xor(t21, t22), t26 = v128.and(t21, t23), t27 = v128.xor(t24, t26), t28 = v128.and(t25, t27);
  const t29 = v128.xor(t28, t22), t30 = v128.xor(t23, t24), t31 = v128.xor(t22, t26), t32 = v128.and(t31, t30);
  const t33 = v128.xor(t32, t24), t34 = v128.xor(t23, t33), t35 = v128.xor(t27, t33), t36 = v128.and(t24, t35);
  const t37 = v128.xor(t36, t34), t38 = v128.xor(t27, t36), t39 = v128.and(t29, t38), t40 = v128.xor(t25, t39);
  const t41 = v128.xor(t40, t37), t42 = v128.xor(t29, t33), t43 = v128.xor(t29, t40), t44 = v128.xor(t33, t37);
  const t45 = v128.xor(t42, t41);
  const z0 = v128.and(t44, y15), z1 = v128.and(t37, y6), z2 = v128.and(t33, x7), z3 = v128.and(t43, y16);
  const z4 = v128.and(t40, y1), z5 = v128.and(t29, y7), z6 = v128.and(t42, y11), z7 = v128.and(t45, y17);
  const z8 = v128.and(t41, y10), z9 = v128.and(t44, y12), z10 = v128.and(t37, y3), z11 = v128.and(t33, y4);
  const z12 = v128.and(t43, y13), z13 = v128.and(t40, y5), z14 = v128.and(t29, y2), z15 = v128.and(t42, y9);
  const z16 = v128.and(t45, y14), z17 = v128.and(t41, y8);
  // Bottom linear layer (its four NOTs, the affine constant 0x63, are in the round keys).
  const t46 = v128.xor(z15, z16), t47 = v128.xor(z10, z11), t48 = v128.xor(z5, z13), t49 = v128.xor(z9, z10);
  const t50 = v128.xor(z2, z12), t51 = v128.xor(z2, z5), t52 = v128.xor(z7, z8), t53 = v128.xor(z0, z3);
  const t54 = v128.xor(z6, z7), t55 = v128.xor(z16, z17), t56 = v128.xor(z12, t48), t57 = v128.xor(t50, t53);
  const t58 = v128.xor(z4, t46), t59 = v128.xor(z3, t54), t60 = v128.xor(t46, t57), t61 = v128.xor(z14, t57);
  const t62 = v128.xor(t52, t58), t63 = v128.xor(t49, t58), t64 = v128.xor(z4, t59), t65 = v128.xor(t61, t62);
  const t66 = v128.xor(z1, t63), t67 = v128.xor(t64, t65);
  const s3 = v128.xor(t53, t66);
  q7 = v128.xor(t59, t63);
  q6 = v128.xor(t64, s3);
  q5 = v128.xor(t55, t67);
  q4 = s3;
  q3 = v128.xor(t51, t66);
  q2 = v128.xor(t47, t65);
  q1 = v128.xor(t56, t62);
  q0 = v128.xor(t48, t60);

  if (!dec) {
    // ShiftRows (§5.1.2), then MixColumns (§5.1.3) except in the final round,
    // per column with a = SR(q):
    //   out_r = 2·a_r ⊕ 3·a_(r+1) ⊕ a_(r+2) ⊕ a_(r+3) = 2·t ⊕ rot1(a) ⊕ rot2(t), t = a ⊕ rot1(a).
    // Multiplying by 2 (xtime) moves bit b to b+1 and folds bit 7 into bits 0,1,3,4 (x^8 = x^4+x^3+x+1).
    if (fx) {
      // Fixsliced (see FX): round i's rotations, no ShiftRows, nothing in the final round.
      if (!(mode & AES_LAST)) {
        const m1 = v128.load(FX + (<usize>(i & 3) << 4)), m2 = v128.load(FX + (<usize>(i & 3) << 4), 64);
        const r7 = permute(q7, m1), u7 = v128.xor(q7, r7);
        let r = permute(q0, m1), u = v128.xor(q0, r), prev = u;
        q0 = v128.xor(v128.xor(u7, r), permute(u, m2));
        r = permute(q1, m1); u = v128.xor(q1, r);
        q1 = v128.xor(v128.xor(v128.xor(prev, u7), r), permute(u, m2)); prev = u;
        r = permute(q2, m1); u = v128.xor(q2, r);
        q2 = v128.xor(v128.xor(prev, r), permute(u, m2)); prev = u;
        r = permute(q3, m1); u = v128.xor(q3, r);
        q3 = v128.xor(v128.xor(v128.xor(prev, u7), r), permute(u, m2)); prev = u;
        r = permute(q4, m1); u = v128.xor(q4, r);
        q4 = v128.xor(v128.xor(v128.xor(prev, u7), r), permute(u, m2)); prev = u;
        r = permute(q5, m1); u = v128.xor(q5, r);
        q5 = v128.xor(v128.xor(prev, r), permute(u, m2)); prev = u;
        r = permute(q6, m1); u = v128.xor(q6, r);
        q6 = v128.xor(v128.xor(prev, r), permute(u, m2)); prev = u;
        q7 = v128.xor(v128.xor(prev, r7), permute(u7, m2));
      }
    } else if (mode & AES_LAST) {
      q0 = i8x16.swizzle(q0, SR); q1 = i8x16.swizzle(q1, SR); q2 = i8x16.swizzle(q2, SR); q3 = i8x16.swizzle(q3, SR);
      q4 = i8x16.swizzle(q4, SR); q5 = i8x16.swizzle(q5, SR); q6 = i8x16.swizzle(q6, SR); q7 = i8x16.swizzle(q7, SR);
    } else {
      const r7 = i8x16.swizzle(q7, SR_ROT1), u7 = v128.xor(i8x16.swizzle(q7, SR), r7);
      let r = i8x16.swizzle(q0, SR_ROT1), u = v128.xor(i8x16.swizzle(q0, SR), r), prev = u;
      q0 = v128.xor(v128.xor(u7, r), i8x16.swizzle(u, ROT2));
      r = i8x16.swizzle(q1, SR_ROT1); u = v128.xor(i8x16.swizzle(q1, SR), r);
      q1 = v128.xor(v128.xor(v128.xor(prev, u7), r), i8x16.swizzle(u, ROT2)); prev = u;
      r = i8x16.swizzle(q2, SR_ROT1); u = v128.xor(i8x16.swizzle(q2, SR), r);
      q2 = v128.xor(v128.xor(prev, r), i8x16.swizzle(u, ROT2)); prev = u;
      r = i8x16.swizzle(q3, SR_ROT1); u = v128.xor(i8x16.swizzle(q3, SR), r);
      q3 = v128.xor(v128.xor(v128.xor(prev, u7), r), i8x16.swizzle(u, ROT2)); prev = u;
      r = i8x16.swizzle(q4, SR_ROT1); u = v128.xor(i8x16.swizzle(q4, SR), r);
      q4 = v128.xor(v128.xor(v128.xor(prev, u7), r), i8x16.swizzle(u, ROT2)); prev = u;
      r = i8x16.swizzle(q5, SR_ROT1); u = v128.xor(i8x16.swizzle(q5, SR), r);
      q5 = v128.xor(v128.xor(prev, r), i8x16.swizzle(u, ROT2)); prev = u;
      r = i8x16.swizzle(q6, SR_ROT1); u = v128.xor(i8x16.swizzle(q6, SR), r);
      q6 = v128.xor(v128.xor(prev, r), i8x16.swizzle(u, ROT2)); prev = u;
      q7 = v128.xor(v128.xor(prev, r7), i8x16.swizzle(u7, ROT2));
    }
    q0 = v128.xor(q0, v128.load(rk)); q1 = v128.xor(q1, v128.load(rk, 16));
    q2 = v128.xor(q2, v128.load(rk, 32)); q3 = v128.xor(q3, v128.load(rk, 48));
    q4 = v128.xor(q4, v128.load(rk, 64)); q5 = v128.xor(q5, v128.load(rk, 80));
    q6 = v128.xor(q6, v128.load(rk, 96)); q7 = v128.xor(q7, v128.load(rk, 112));
  } else {
    // L_lin again, then InvShiftRows and AddRoundKey.
    const b0 = v128.xor(v128.xor(q2, q5), q7), b1 = v128.xor(v128.xor(q3, q6), q0);
    const b2 = v128.xor(v128.xor(q4, q7), q1), b3 = v128.xor(v128.xor(q5, q0), q2);
    const b4 = v128.xor(v128.xor(q6, q1), q3), b5 = v128.xor(v128.xor(q7, q2), q4);
    const b6 = v128.xor(v128.xor(q0, q3), q5), b7 = v128.xor(v128.xor(q1, q4), q6);
    q0 = v128.xor(i8x16.swizzle(b0, ISR), v128.load(rk)); q1 = v128.xor(i8x16.swizzle(b1, ISR), v128.load(rk, 16));
    q2 = v128.xor(i8x16.swizzle(b2, ISR), v128.load(rk, 32)); q3 = v128.xor(i8x16.swizzle(b3, ISR), v128.load(rk, 48));
    q4 = v128.xor(i8x16.swizzle(b4, ISR), v128.load(rk, 64)); q5 = v128.xor(i8x16.swizzle(b5, ISR), v128.load(rk, 80));
    q6 = v128.xor(i8x16.swizzle(b6, ISR), v128.load(rk, 96)); q7 = v128.xor(i8x16.swizzle(b7, ISR), v128.load(rk, 112));
    if (!(mode & AES_LAST)) {
      // InvMixColumns (§5.3.3) = MixColumns ∘ P with P(u) = u ⊕ 4·(u ⊕ rot2(u)):
      // {0b,0d,09,0e} = {03,01,01,02}·{00,04,00,05} as polynomials mod x^4+1.
      // 4·w by bit: [w6, w6^w7, w0^w7, w1^w6, w2^w6^w7, w3^w7, w4, w5].
      const w0 = v128.xor(q0, i8x16.swizzle(q0, ROT2)), w1 = v128.xor(q1, i8x16.swizzle(q1, ROT2));
      const w2 = v128.xor(q2, i8x16.swizzle(q2, ROT2)), w3 = v128.xor(q3, i8x16.swizzle(q3, ROT2));
      const w4 = v128.xor(q4, i8x16.swizzle(q4, ROT2)), w5 = v128.xor(q5, i8x16.swizzle(q5, ROT2));
      const w6 = v128.xor(q6, i8x16.swizzle(q6, ROT2)), w7 = v128.xor(q7, i8x16.swizzle(q7, ROT2));
      const w67 = v128.xor(w6, w7);
      const a0 = v128.xor(q0, w6), a1 = v128.xor(q1, w67), a2 = v128.xor(q2, v128.xor(w0, w7));
      const a3 = v128.xor(q3, v128.xor(w1, w6)), a4 = v128.xor(q4, v128.xor(w2, w67));
      const a5 = v128.xor(q5, v128.xor(w3, w7)), a6 = v128.xor(q6, w4), a7 = v128.xor(q7, w5);
      const r0 = i8x16.swizzle(a0, ROT1), u0 = v128.xor(a0, r0), r1 = i8x16.swizzle(a1, ROT1), u1 = v128.xor(a1, r1);
      const r2 = i8x16.swizzle(a2, ROT1), u2 = v128.xor(a2, r2), r3 = i8x16.swizzle(a3, ROT1), u3 = v128.xor(a3, r3);
      const r4 = i8x16.swizzle(a4, ROT1), u4 = v128.xor(a4, r4), r5 = i8x16.swizzle(a5, ROT1), u5 = v128.xor(a5, r5);
      const r6 = i8x16.swizzle(a6, ROT1), u6 = v128.xor(a6, r6), r7 = i8x16.swizzle(a7, ROT1), u7 = v128.xor(a7, r7);
      q0 = v128.xor(v128.xor(u7, r0), i8x16.swizzle(u0, ROT2));
      q1 = v128.xor(v128.xor(v128.xor(u0, u7), r1), i8x16.swizzle(u1, ROT2));
      q2 = v128.xor(v128.xor(u1, r2), i8x16.swizzle(u2, ROT2));
      q3 = v128.xor(v128.xor(v128.xor(u2, u7), r3), i8x16.swizzle(u3, ROT2));
      q4 = v128.xor(v128.xor(v128.xor(u3, u7), r4), i8x16.swizzle(u4, ROT2));
      q5 = v128.xor(v128.xor(u4, r5), i8x16.swizzle(u5, ROT2));
      q6 = v128.xor(v128.xor(u5, r6), i8x16.swizzle(u6, ROT2));
      q7 = v128.xor(v128.xor(u6, r7), i8x16.swizzle(u7, ROT2));
    }
  }
  if (g < gEnd) {
    ghashBlockInline(gp + (<usize>g << 4));
    g++;
  }
  }
  if (fx && to == nr && (nr & 3)) {
    const m = v128.load(FX + (<usize>(nr & 3) << 4), 192);
    q0 = permute(q0, m); q1 = permute(q1, m); q2 = permute(q2, m); q3 = permute(q3, m);
    q4 = permute(q4, m); q5 = permute(q5, m); q6 = permute(q6, m); q7 = permute(q7, m);
  }
  v128.store(ST, q0); v128.store(ST, q1, 16); v128.store(ST, q2, 32); v128.store(ST, q3, 48);
  v128.store(ST, q4, 64); v128.store(ST, q5, 80); v128.store(ST, q6, 96); v128.store(ST, q7, 112);
  return g;
}

/**
 * Turns ctx's round keys into the fixsliced ones (see FX): K_r ← SR⁻ʳ(K_r),
 * r = 1..Nr. After it, ctx serves aesRun with fx = true only (GCM's CTR).
 */
export function aesFixsliceKeys(ctx: usize): void {
  const nr = aesRounds(ctx);
  for (let r = 1; r <= nr; r++) {
    const k = ctx + <usize>r * AES_RK_SIZE, m = v128.load(FX + (<usize>(r & 3) << 4), 128);
    for (let b: usize = 0; b < 128; b += 16) v128.store(k + b, i8x16.swizzle(v128.load(k + b), m));
  }
}

/** Round count Nr of an initialised context (10, 12 or 14). */
// @ts-ignore: decorator
@inline export function aesRounds(ctx: usize): i32 {
  return load<i32>(ctx + CTX_NR);
}

/**
 * Bitsliced form of a round key that is the same for all 8 blocks: byte k of
 * qb is 0xFF when bit b of key byte k is set. rk16: 16 B; out: 128 B.
 */
function spreadKey(rk16: usize, out: usize): void {
  const k = v128.load(rk16);
  // Shift bit b up to bit 7, then arithmetic-shift it over the whole byte.
  v128.store(out, i8x16.shr_s(i8x16.shl(k, 7), 7));
  v128.store(out, i8x16.shr_s(i8x16.shl(k, 6), 7), 16);
  v128.store(out, i8x16.shr_s(i8x16.shl(k, 5), 7), 32);
  v128.store(out, i8x16.shr_s(i8x16.shl(k, 4), 7), 48);
  v128.store(out, i8x16.shr_s(i8x16.shl(k, 3), 7), 64);
  v128.store(out, i8x16.shr_s(i8x16.shl(k, 2), 7), 80);
  v128.store(out, i8x16.shr_s(i8x16.shl(k, 1), 7), 96);
  v128.store(out, i8x16.shr_s(k, 7), 112);
}

/**
 * SubWord (FIPS-197 §5.2) through the circuit: the word fills all four
 * columns, so ShiftRows leaves it in place and a final round with a zero key
 * is exactly SubBytes. Word bytes are in memory order (byte 0 = low byte).
 */
function subWord(w: u32): u32 {
  store<u32>(ONE, w); store<u32>(ONE, w, 4); store<u32>(ONE, w, 8); store<u32>(ONE, w, 12);
  spreadKey(ONE, ST);
  aesRun(ZERO_RK - AES_RK_SIZE, 1, false, 0, 0, 0);
  // Gather bit b of each byte from qb (every block holds the same value).
  let r = v128.and(v128.load(ST), i8x16.splat(1));
  for (let b = 1; b < 8; b++) {
    const bit: i32 = 0x0101 << b;
    r = v128.or(r, v128.and(v128.load(ST + (<usize>b << 4)), i16x8.splat(<i16>bit)));
  }
  return i32x4.extract_lane(r, 0) ^ 0x63636363; // the circuit leaves out the affine constant
}

/**
 * Expands an AES key (FIPS-197 §5.2) into ctx (AES_CTX_SIZE bytes).
 * key: keyLen bytes; keyLen: 16, 24 or 32 (anything else is treated as 16).
 */
export function aesInit(ctx: usize, key: usize, keyLen: i32): void {
  const nk = keyLen == 24 ? 6 : keyLen == 32 ? 8 : 4;
  const nr = nk + 6;
  const nw = 4 * (nr + 1);
  for (let i = 0; i < nk; i++) store<u32>(KW + (<usize>i << 2), load<u32>(key + (<usize>i << 2)));
  let rcon: u32 = 1;
  for (let i = nk; i < nw; i++) {
    let t = load<u32>(KW + (<usize>(i - 1) << 2));
    // i, nk and rcon are public: these branches reveal nothing about the key.
    if (i % nk == 0) {
      t = subWord(rotr<u32>(t, 8)) ^ rcon; // RotWord: bytes [b1 b2 b3 b0]
      rcon = ((rcon << 1) ^ (0x11b & (0 - (rcon >> 7)))) & 0xff;
    } else if (nk > 6 && i % nk == 4) {
      t = subWord(t);
    }
    store<u32>(KW + (<usize>i << 2), load<u32>(KW + (<usize>(i - nk) << 2)) ^ t);
  }
  for (let r = 0; r <= nr; r++) spreadKey(KW + (<usize>r << 4), ctx + <usize>r * AES_RK_SIZE);
  // Round keys 1..Nr also carry SubBytes' affine constant 0x63 (see aesRun).
  for (let r = 1; r <= nr; r++) {
    const k = ctx + <usize>r * AES_RK_SIZE;
    v128.store(k, v128.not(v128.load(k))); v128.store(k, v128.not(v128.load(k, 16)), 16);
    v128.store(k, v128.not(v128.load(k, 80)), 80); v128.store(k, v128.not(v128.load(k, 96)), 96);
  }
  for (let r = nr + 1; r <= 14; r++) memory.fill(ctx + <usize>r * AES_RK_SIZE, 0, AES_RK_SIZE);
  store<i32>(ctx + CTX_NR, nr);
  memory.fill(ctx + CTX_NR + 4, 0, 12);
  memory.fill(KW, 0, 240);
  memory.fill(ST, 0, 128);
  memory.fill(ONE, 0, 128);
}

/** Encrypts 8 blocks: src and dst 128 B each (may be the same, any alignment). */
export function aesEncrypt8(ctx: usize, src: usize, dst: usize): void {
  const nr = aesRounds(ctx);
  aesStateIn(src, ctx);
  aesRun(ctx, nr, false, 0, 0, 0);
  aesStateOut(dst);
}

/** Decrypts 8 blocks with the inverse cipher: src and dst 128 B each (may be the same). */
export function aesDecrypt8(ctx: usize, src: usize, dst: usize): void {
  const nr = aesRounds(ctx);
  aesStateIn(src, ctx + <usize>nr * AES_RK_SIZE);
  aesRun(ctx, nr, true, 0, 0, 0);
  aesStateOut(dst);
}

/**
 * Encrypts one block (16 B at inp → 16 B at out; may be the same). Costs as
 * much as eight: bitslicing has no cheaper one-block form.
 */
export function aesEncryptBlock(ctx: usize, inp: usize, out: usize): void {
  v128.store(ONE, v128.load(inp));
  aesEncrypt8(ctx, ONE, ONE);
  v128.store(out, v128.load(ONE));
}

/** Decrypts one block (16 B at inp → 16 B at out; may be the same). */
export function aesDecryptBlock(ctx: usize, inp: usize, out: usize): void {
  v128.store(ONE, v128.load(inp));
  aesDecrypt8(ctx, ONE, ONE);
  v128.store(out, v128.load(ONE));
}

/**
 * Zeroes this module's scratch (the state, the key schedule words, the
 * one-block buffer): after the last packet of an SA they still hold material
 * derived from its key. Call with the contexts' own wipe when SAs are removed.
 */
export function aesWipeScratch(): void {
  memory.fill(ST, 0, 128);
  memory.fill(KW, 0, 240);
  memory.fill(ONE, 0, 128);
}
