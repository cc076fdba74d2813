// Poly1305 (RFC 8439 §2.5): acc = ((acc + block) · r) mod 2^130−5, tag = acc + s mod 2^128.
//
// Numbers mod 2^130−5 are kept in five 26-bit limbs (the poly1305-donna-32
// representation): a 26×26-bit product fits a 64-bit multiply with room to
// add five of them, and WASM has 64-bit multiplies but no 64×64→128 one, so
// the 44-bit-limb variant is out of reach. Since 2^130 ≡ 5 (mod p), the limb
// products that land at 2^130 and above are folded back in multiplied by 5
// (hence s_i = 5·r_i below).
//
// Two block loops compute the same thing:
//   poly1305Blocks      one block at a time, scalar i64 — the reference, and
//                       the path for short inputs;
//   poly1305BlocksWide  two blocks at a time in the i64x2 lanes of a v128,
//                       about 1.5× faster (V8 gives two 32×32→64 products per
//                       i64x2.extmul_low_i32x4_u). Lane A takes blocks 0, 2,
//                       4, …, lane B blocks 1, 3, 5, …, both multiplying by r²;
//                       only lane B's last step multiplies by r, so that
//                       A + B equals the one-lane Horner sum:
//         h·r^2k + m1·r^2k + m2·r^(2k−1) + … + m(2k−1)·r² + m(2k)·r.
// test/unit/crypto-poly1305.test.ts holds them equal and checks both against
// the RFC and @noble/ciphers.
//
// Constant time: no branch or index depends on key or message bytes (loop
// counts and the odd-block split depend only on lengths), and the final
// reduction picks between h and h−p with a mask.
//
// State block (POLY_STATE_SIZE bytes, caller-provided):
//   offset  0  r0 r1 r2 r3 r4   u32 ×5   clamped r, 26-bit limbs
//          20  s1 s2 s3 s4      u32 ×4   5·r1 .. 5·r4
//          36  h0 h1 h2 h3 h4   u32 ×5   accumulator, 26-bit limbs, partly reduced
//          56  pad              16 bytes the key's second half, "s" in the RFC
//          72  q0 q1 q2 q3 q4   u32 ×5   r² mod p, 26-bit limbs, set by the wide loop
//          92  (end)

export const POLY_STATE_SIZE: i32 = 92;
const P_R: usize = 0;
const P_S: usize = 20;
const P_H: usize = 36;
const P_PAD: usize = 56;
const P_R2: usize = 72;

/** Added to limb 4 of every full 16-byte block: the 2^128 bit of RFC 8439 §2.5's "add one bit beyond the number of octets". */
export const HIBIT: u64 = 1 << 24;
const M26: u64 = 0x3ffffff;

/** Below this many blocks the wide loop's setup costs more than it saves. */
const WIDE_MIN_BLOCKS: i32 = 6;

/** Starts a MAC: clamps r (§2.5: r &= 0x0ffffffc0ffffffc0ffffffc0fffffff), keeps s, zeroes the accumulator. st: POLY_STATE_SIZE bytes; key: 32 bytes. */
export function poly1305Init(st: usize, key: usize): void {
  // Each limb read at its own byte offset, shifted into place; the masks clamp too.
  const r0 = load<u32>(key) & 0x3ffffff;
  const r1 = (load<u32>(key, 3) >> 2) & 0x3ffff03;
  const r2 = (load<u32>(key, 6) >> 4) & 0x3ffc0ff;
  const r3 = (load<u32>(key, 9) >> 6) & 0x3f03fff;
  const r4 = (load<u32>(key, 12) >> 8) & 0x00fffff;
  store<u32>(st, r0, P_R); store<u32>(st, r1, P_R + 4); store<u32>(st, r2, P_R + 8);
  store<u32>(st, r3, P_R + 12); store<u32>(st, r4, P_R + 16);
  store<u32>(st, r1 * 5, P_S); store<u32>(st, r2 * 5, P_S + 4);
  store<u32>(st, r3 * 5, P_S + 8); store<u32>(st, r4 * 5, P_S + 12);
  memory.copy(st + P_PAD, key + 16, 16);
  memory.fill(st + P_H, 0, 20);
}

const ZERO_BLOCK = memory.data(16, 16);
const SAVED_H = memory.data(20, 16);

/** q = r² mod p (partly reduced limbs) at P_R2: one block step on an empty block with h = r. Only the wide loop needs it, so short inputs never pay for it. */
function square(st: usize): void {
  memory.copy(SAVED_H, st + P_H, 20);
  memory.copy(st + P_H, st + P_R, 20);
  poly1305Blocks(st, ZERO_BLOCK, 1, 0);
  memory.copy(st + P_R2, st + P_H, 20);
  memory.copy(st + P_H, SAVED_H, 20);
}

/**
 * Absorbs `nblocks` 16-byte blocks at `m`, each read as a little-endian number
 * plus `hibit` at 2^128 (HIBIT for full blocks, 0 for a final block that the
 * caller already padded with 0x01). st: POLY_STATE_SIZE bytes; m: 16·nblocks bytes.
 */
export function poly1305Blocks(st: usize, m: usize, nblocks: i32, hibit: u64): void {
  const r0 = <u64>load<u32>(st, P_R), r1 = <u64>load<u32>(st, P_R + 4), r2 = <u64>load<u32>(st, P_R + 8);
  const r3 = <u64>load<u32>(st, P_R + 12), r4 = <u64>load<u32>(st, P_R + 16);
  const s1 = <u64>load<u32>(st, P_S), s2 = <u64>load<u32>(st, P_S + 4);
  const s3 = <u64>load<u32>(st, P_S + 8), s4 = <u64>load<u32>(st, P_S + 12);
  let h0 = <u64>load<u32>(st, P_H), h1 = <u64>load<u32>(st, P_H + 4), h2 = <u64>load<u32>(st, P_H + 8);
  let h3 = <u64>load<u32>(st, P_H + 12), h4 = <u64>load<u32>(st, P_H + 16);
  for (let i = 0; i < nblocks; i++, m += 16) {
    // acc += block: limbs of 26 bits, read at byte offsets 0, 3, 6, 9, 12.
    h0 += <u64>load<u32>(m) & M26;
    h1 += (<u64>load<u32>(m, 3) >> 2) & M26;
    h2 += (<u64>load<u32>(m, 6) >> 4) & M26;
    h3 += (<u64>load<u32>(m, 9) >> 6) & M26;
    h4 += (<u64>load<u32>(m, 12) >> 8) | hibit;
    // acc *= r: schoolbook with the wrap-around terms times 5. Each limb is
    // < 2^28 and each s_i < 2^29, so a sum of five products stays < 2^60.
    const d0 = h0 * r0 + h1 * s4 + h2 * s3 + h3 * s2 + h4 * s1;
    let d1 = h0 * r1 + h1 * r0 + h2 * s4 + h3 * s3 + h4 * s2;
    let d2 = h0 * r2 + h1 * r1 + h2 * r0 + h3 * s4 + h4 * s3;
    let d3 = h0 * r3 + h1 * r2 + h2 * r1 + h3 * r0 + h4 * s4;
    let d4 = h0 * r4 + h1 * r3 + h2 * r2 + h3 * r1 + h4 * r0;
    // Partial carry: limbs back to ~26 bits; the top carry wraps times 5.
    d1 += d0 >> 26; h0 = d0 & M26;
    d2 += d1 >> 26; h1 = d1 & M26;
    d3 += d2 >> 26; h2 = d2 & M26;
    d4 += d3 >> 26; h3 = d3 & M26;
    h0 += (d4 >> 26) * 5; h4 = d4 & M26;
    h1 += h0 >> 26; h0 &= M26;
  }
  store<u32>(st, <u32>h0, P_H); store<u32>(st, <u32>h1, P_H + 4); store<u32>(st, <u32>h2, P_H + 8);
  store<u32>(st, <u32>h3, P_H + 12); store<u32>(st, <u32>h4, P_H + 16);
}

/** i32 lanes [a, b, a, b]: the multiplier for lane A (a) and lane B (b) as i64x2.extmul_low_i32x4_u reads it. */
// @ts-ignore: decorator
@inline function lanes(a: u32, b: u32): v128 { return i32x4.replace_lane(i32x4.splat(<i32>a), 1, <i32>b); }
/** i32 lanes [low32(x.A), low32(x.B), …] of an i64x2, ready for extmul. */
// @ts-ignore: decorator
@inline function narrow(x: v128): v128 { return i32x4.shuffle(x, x, 0, 2, 0, 2); }
// @ts-ignore: decorator
@inline function mul(a: v128, b: v128): v128 { return i64x2.extmul_low_i32x4_u(a, b); }

/**
 * Same result as poly1305Blocks(st, m, nblocks, HIBIT) — full blocks only —
 * two blocks at a time (see the header). st: POLY_STATE_SIZE bytes; m: 16·nblocks bytes.
 */
export function poly1305BlocksWide(st: usize, m: usize, nblocks: i32): void {
  if (nblocks < WIDE_MIN_BLOCKS) { poly1305Blocks(st, m, nblocks, HIBIT); return; }
  if (nblocks & 1) { poly1305Blocks(st, m, 1, HIBIT); m += 16; nblocks--; }
  square(st);
  const q0 = load<u32>(st, P_R2), q1 = load<u32>(st, P_R2 + 4), q2 = load<u32>(st, P_R2 + 8);
  const q3 = load<u32>(st, P_R2 + 12), q4 = load<u32>(st, P_R2 + 16);
  // Every step but the last: both lanes times r².
  let R0 = lanes(q0, q0), R1 = lanes(q1, q1), R2 = lanes(q2, q2), R3 = lanes(q3, q3), R4 = lanes(q4, q4);
  let S1 = lanes(q1 * 5, q1 * 5), S2 = lanes(q2 * 5, q2 * 5), S3 = lanes(q3 * 5, q3 * 5), S4 = lanes(q4 * 5, q4 * 5);
  const MASK = i64x2.splat(<i64>M26), HI = i64x2.splat(<i64>HIBIT);
  // Lane A starts from the accumulator so far, lane B from zero.
  let h0 = i64x2.replace_lane(i64x2.splat(0), 0, <i64>load<u32>(st, P_H));
  let h1 = i64x2.replace_lane(i64x2.splat(0), 0, <i64>load<u32>(st, P_H + 4));
  let h2 = i64x2.replace_lane(i64x2.splat(0), 0, <i64>load<u32>(st, P_H + 8));
  let h3 = i64x2.replace_lane(i64x2.splat(0), 0, <i64>load<u32>(st, P_H + 12));
  let h4 = i64x2.replace_lane(i64x2.splat(0), 0, <i64>load<u32>(st, P_H + 16));
  const pairs = nblocks >> 1;
  for (let i = 1; i <= pairs; i++, m += 32) {
    if (i == pairs) {
      // Last step: lane B times r instead of r² (a public, length-only branch).
      R0 = i32x4.replace_lane(R0, 1, <i32>load<u32>(st, P_R)); R1 = i32x4.replace_lane(R1, 1, <i32>load<u32>(st, P_R + 4));
      R2 = i32x4.replace_lane(R2, 1, <i32>load<u32>(st, P_R + 8)); R3 = i32x4.replace_lane(R3, 1, <i32>load<u32>(st, P_R + 12));
      R4 = i32x4.replace_lane(R4, 1, <i32>load<u32>(st, P_R + 16));
      S1 = i32x4.replace_lane(S1, 1, <i32>load<u32>(st, P_S)); S2 = i32x4.replace_lane(S2, 1, <i32>load<u32>(st, P_S + 4));
      S3 = i32x4.replace_lane(S3, 1, <i32>load<u32>(st, P_S + 8)); S4 = i32x4.replace_lane(S4, 1, <i32>load<u32>(st, P_S + 12));
    }
    // Lane A's block is m[0, 16), lane B's m[16, 32); split each into 26-bit limbs in 64-bit lanes.
    const a = v128.load(m), b = v128.load(m, 16);
    const lo = i64x2.shuffle(a, b, 0, 2), hi = i64x2.shuffle(a, b, 1, 3);
    const g0 = narrow(i64x2.add(h0, v128.and(lo, MASK)));
    const g1 = narrow(i64x2.add(h1, v128.and(i64x2.shr_u(lo, 26), MASK)));
    const g2 = narrow(i64x2.add(h2, v128.and(v128.or(i64x2.shr_u(lo, 52), i64x2.shl(hi, 12)), MASK)));
    const g3 = narrow(i64x2.add(h3, v128.and(i64x2.shr_u(hi, 14), MASK)));
    const g4 = narrow(i64x2.add(h4, v128.or(i64x2.shr_u(hi, 40), HI)));
    // The same schoolbook product and partial carry as poly1305Blocks, per lane.
    const d0 = i64x2.add(i64x2.add(i64x2.add(i64x2.add(mul(g0, R0), mul(g1, S4)), mul(g2, S3)), mul(g3, S2)), mul(g4, S1));
    let d1 = i64x2.add(i64x2.add(i64x2.add(i64x2.add(mul(g0, R1), mul(g1, R0)), mul(g2, S4)), mul(g3, S3)), mul(g4, S2));
    let d2 = i64x2.add(i64x2.add(i64x2.add(i64x2.add(mul(g0, R2), mul(g1, R1)), mul(g2, R0)), mul(g3, S4)), mul(g4, S3));
    let d3 = i64x2.add(i64x2.add(i64x2.add(i64x2.add(mul(g0, R3), mul(g1, R2)), mul(g2, R1)), mul(g3, R0)), mul(g4, S4));
    let d4 = i64x2.add(i64x2.add(i64x2.add(i64x2.add(mul(g0, R4), mul(g1, R3)), mul(g2, R2)), mul(g3, R1)), mul(g4, R0));
    d1 = i64x2.add(d1, i64x2.shr_u(d0, 26)); h0 = v128.and(d0, MASK);
    d2 = i64x2.add(d2, i64x2.shr_u(d1, 26)); h1 = v128.and(d1, MASK);
    d3 = i64x2.add(d3, i64x2.shr_u(d2, 26)); h2 = v128.and(d2, MASK);
    d4 = i64x2.add(d4, i64x2.shr_u(d3, 26)); h3 = v128.and(d3, MASK);
    const c = i64x2.shr_u(d4, 26); h4 = v128.and(d4, MASK);
    h0 = i64x2.add(h0, i64x2.add(c, i64x2.shl(c, 2)));
    h1 = i64x2.add(h1, i64x2.shr_u(h0, 26)); h0 = v128.and(h0, MASK);
  }
  // A + B, then one carry pass so the limbs are ~26 bits again.
  let t0 = <u64>i64x2.extract_lane(h0, 0) + <u64>i64x2.extract_lane(h0, 1);
  let t1 = <u64>i64x2.extract_lane(h1, 0) + <u64>i64x2.extract_lane(h1, 1);
  let t2 = <u64>i64x2.extract_lane(h2, 0) + <u64>i64x2.extract_lane(h2, 1);
  let t3 = <u64>i64x2.extract_lane(h3, 0) + <u64>i64x2.extract_lane(h3, 1);
  let t4 = <u64>i64x2.extract_lane(h4, 0) + <u64>i64x2.extract_lane(h4, 1);
  t1 += t0 >> 26; t0 &= M26;
  t2 += t1 >> 26; t1 &= M26;
  t3 += t2 >> 26; t2 &= M26;
  t4 += t3 >> 26; t3 &= M26;
  t0 += (t4 >> 26) * 5; t4 &= M26;
  t1 += t0 >> 26; t0 &= M26;
  store<u32>(st, <u32>t0, P_H); store<u32>(st, <u32>t1, P_H + 4); store<u32>(st, <u32>t2, P_H + 8);
  store<u32>(st, <u32>t3, P_H + 12); store<u32>(st, <u32>t4, P_H + 16);
}

const PAD_BLOCK = memory.data(16, 16);

/**
 * Absorbs `len` bytes as RFC 8439 §2.8 does for AAD and ciphertext: full blocks,
 * then the rest zero-padded to 16 bytes (pad16) and still counted as a full
 * block. st: POLY_STATE_SIZE bytes; m: len bytes.
 */
export function poly1305Padded(st: usize, m: usize, len: i32): void {
  const full = len >> 4;
  if (full > 0) poly1305BlocksWide(st, m, full);
  const rest = len & 15;
  if (rest != 0) {
    memory.fill(PAD_BLOCK, 0, 16);
    memory.copy(PAD_BLOCK, m + (<usize>full << 4), rest);
    poly1305Blocks(st, PAD_BLOCK, 1, HIBIT);
  }
}

/** Finishes a MAC: full reduction mod 2^130−5, adds s mod 2^128, writes the 16-byte tag to `out`, wipes the state. */
export function poly1305Finish(st: usize, out: usize): void {
  let h0 = load<u32>(st, P_H), h1 = load<u32>(st, P_H + 4), h2 = load<u32>(st, P_H + 8);
  let h3 = load<u32>(st, P_H + 12), h4 = load<u32>(st, P_H + 16);
  const m = <u32>M26;
  // Full carry propagation: every limb < 2^26 (h1 at most 2^26), h < 2^130 + small.
  h2 += h1 >> 26; h1 &= m;
  h3 += h2 >> 26; h2 &= m;
  h4 += h3 >> 26; h3 &= m;
  h0 += (h4 >> 26) * 5; h4 &= m;
  h1 += h0 >> 26; h0 &= m;
  // g = h + 5 − 2^130; if that did not borrow, h ≥ p and g is the reduced value.
  let g0 = h0 + 5; let c = g0 >> 26; g0 &= m;
  let g1 = h1 + c; c = g1 >> 26; g1 &= m;
  let g2 = h2 + c; c = g2 >> 26; g2 &= m;
  let g3 = h3 + c; c = g3 >> 26; g3 &= m;
  const g4 = h4 + c - (1 << 26);
  const useG = (g4 >> 31) - 1; // all ones when g4 did not go negative
  const useH = ~useG;
  h0 = (h0 & useH) | (g0 & useG);
  h1 = (h1 & useH) | (g1 & useG);
  h2 = (h2 & useH) | (g2 & useG);
  h3 = (h3 & useH) | (g3 & useG);
  h4 = (h4 & useH) | (g4 & useG);
  // Repack into 32-bit words (mod 2^128) with adds rather than ORs, so a limb
  // left at exactly 2^26 by the last fold still carries; then add s.
  let f = <u64>h0 + (<u64>h1 << 26);
  let t = (f & 0xffffffff) + load<u32>(st, P_PAD);
  store<u32>(out, <u32>t);
  f = (f >> 32) + (<u64>h2 << 20);
  t = (f & 0xffffffff) + load<u32>(st, P_PAD + 4) + (t >> 32);
  store<u32>(out, <u32>t, 4);
  f = (f >> 32) + (<u64>h3 << 14);
  t = (f & 0xffffffff) + load<u32>(st, P_PAD + 8) + (t >> 32);
  store<u32>(out, <u32>t, 8);
  f = (f >> 32) + (<u64>h4 << 8);
  t = (f & 0xffffffff) + load<u32>(st, P_PAD + 12) + (t >> 32);
  store<u32>(out, <u32>t, 12);
  memory.fill(st, 0, <usize>POLY_STATE_SIZE);
}

const MAC_STATE = memory.data(POLY_STATE_SIZE, 16);

/** Poly1305 of `len` bytes (RFC 8439 §2.5.1), full blocks through `wide` or the scalar loop; the final partial block gets 0x01 appended. */
function mac(key: usize, msg: usize, len: i32, out: usize, wide: bool): void {
  poly1305Init(MAC_STATE, key);
  const full = len >> 4;
  if (wide) poly1305BlocksWide(MAC_STATE, msg, full);
  else poly1305Blocks(MAC_STATE, msg, full, HIBIT);
  const rest = len & 15;
  if (rest != 0) {
    memory.fill(PAD_BLOCK, 0, 16);
    memory.copy(PAD_BLOCK, msg + (<usize>full << 4), rest);
    store<u8>(PAD_BLOCK + rest, 1);
    poly1305Blocks(MAC_STATE, PAD_BLOCK, 1, 0);
  }
  poly1305Finish(MAC_STATE, out);
}

/** One-shot Poly1305 (RFC 8439 §2.5.1). key: 32 bytes (one-time, r‖s); msg: len bytes; out: 16 bytes. */
export function poly1305Mac(key: usize, msg: usize, len: i32, out: usize): void {
  mac(key, msg, len, out, true);
}

/** poly1305Mac on the scalar loop only: the reference the wide loop is tested against. */
export function poly1305MacRef(key: usize, msg: usize, len: i32, out: usize): void {
  mac(key, msg, len, out, false);
}

/** Zeroes the saved accumulator and MAC state (control path: an SA using this module went away). */
export function poly1305WipeScratch(): void {
  memory.fill(SAVED_H, 0, 20);
  memory.fill(PAD_BLOCK, 0, 16);
  memory.fill(MAC_STATE, 0, POLY_STATE_SIZE);
}
