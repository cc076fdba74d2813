// Poly1305 (RFC 8439 §2.5): acc = ((acc + block) · r) mod 2^130−5, tag = acc + s mod 2^128.
//
// Numbers mod 2^130−5 are kept in five 26-bit limbs (the poly1305-donna-32
// representation): a 26×26-bit product fits a 64-bit multiply with room to
// add five of them, and WASM has 64-bit multiplies but no 64×64→128 one, so
// the 44-bit-limb variant is out of reach. Since 2^130 ≡ 5 (mod p), the limb
// products that land at 2^130 and above are folded back in multiplied by 5
// (hence s_i = 5·r_i below).
//
// The one copy of the block arithmetic outside this file is the fused
// ChaCha20-Poly1305 loop in chacha20poly1305.ts; both are tested against
// @noble/ciphers (test/unit/crypto-poly1305.test.ts, crypto-chacha20poly1305.test.ts).
//
// Constant time: the limb arithmetic has no branches on secret data, and the
// final reduction picks between h and h−p with a mask, not a branch.
//
// State block (POLY_STATE_SIZE bytes, caller-provided so a fused loop can share it):
//   offset  0  r0 r1 r2 r3 r4   u32 ×5   clamped r, 26-bit limbs
//          20  s1 s2 s3 s4      u32 ×4   5·r1 .. 5·r4
//          36  h0 h1 h2 h3 h4   u32 ×5   accumulator, 26-bit limbs, partly reduced
//          56  pad              16 bytes the key's second half, "s" in the RFC
//          72  (end)

export const POLY_STATE_SIZE: i32 = 72;
export const P_R: usize = 0;
export const P_S: usize = 20;
export const P_H: usize = 36;
export const P_PAD: usize = 56;

/** Added to limb 4 of every full 16-byte block: the 2^128 bit of RFC 8439 §2.5's "add one bit beyond the number of octets". */
export const HIBIT: u64 = 1 << 24;
const M26: u64 = 0x3ffffff;

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
  memory.fill(st + P_H, 0, 20);
  memory.copy(st + P_PAD, key + 16, 16);
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
    // < 2^27 and each s_i < 2^29, so a sum of five products stays < 2^59.
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

const PAD_BLOCK = memory.data(16, 16);

/**
 * Absorbs `len` bytes as RFC 8439 §2.8 does for AAD and ciphertext: full blocks,
 * then the rest zero-padded to 16 bytes (pad16) and still counted as a full
 * block. st: POLY_STATE_SIZE bytes; m: len bytes.
 */
export function poly1305Padded(st: usize, m: usize, len: i32): void {
  const full = len >> 4;
  if (full > 0) poly1305Blocks(st, m, full, HIBIT);
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
  // Full carry propagation: every limb < 2^26, h < 2^130 + small.
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

/**
 * One-shot Poly1305 (RFC 8439 §2.5.1) over `len` bytes at `msg`; the final
 * partial block gets the 0x01 byte appended. key: 32 bytes (one-time, r‖s);
 * out: 16 bytes.
 */
export function poly1305Mac(key: usize, msg: usize, len: i32, out: usize): void {
  poly1305Init(MAC_STATE, key);
  const full = len >> 4;
  if (full > 0) poly1305Blocks(MAC_STATE, msg, full, HIBIT);
  const rest = len & 15;
  if (rest != 0) {
    memory.fill(PAD_BLOCK, 0, 16);
    memory.copy(PAD_BLOCK, msg + (<usize>full << 4), rest);
    store<u8>(PAD_BLOCK + rest, 1);
    poly1305Blocks(MAC_STATE, PAD_BLOCK, 1, 0);
  }
  poly1305Finish(MAC_STATE, out);
}
