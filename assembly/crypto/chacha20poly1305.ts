// AEAD_CHACHA20_POLY1305 (RFC 8439 §2.8) as ESP uses it (RFC 7634).
//
// Speed comes from running the two primitives at once: ChaCha20 keeps the
// vector units busy (4 blocks in v128 lanes, see chacha20.ts) while Poly1305
// keeps the scalar 64-bit multiplier busy, so chunk4Mac() absorbs up to two
// Poly1305 blocks per ChaCha20 double round. It carries a copy of the round
// code of chacha20Blocks4() and of the block arithmetic of poly1305Blocks();
// the reference twins are chacha20_ref.ts and poly1305.ts, and the AEAD is
// tested against RFC 8439 and @noble/ciphers.
//
// Seal: chunk 0 (blocks 0..3) gives the one-time Poly1305 key (block 0,
// §2.6) and the keystream for data[0, 192); every later chunk encrypts 256
// bytes in place while absorbing the ciphertext the previous chunk made:
//
//   data:    [0 ─── 192)[192 ──── 448)[448 ──── 704) … [off ── len)
//   chunk:    0 (via KS)  1              2                last (via KS)
//   MACs:     —           data[0,192)    data[192,448)    data[…)   then the rest
//
// Open authenticates before it decrypts (RFC 4303 §3.4.4, RFC 8439 §4): the
// chunks write keystream into the static KS buffer while absorbing the
// ciphertext; only when ctEqual() accepts the tag is the keystream XORed into
// data. On a bad tag data is untouched and the keystream is wiped.
//
// Scratch (static, single-threaded per instance):
//   KS     KS_SIZE bytes   keystream; blocks 0..3 at [0, 256), block i at 64·i
//   STATE  POLY_STATE_SIZE Poly1305 state (layout in poly1305.ts)
//   TAIL   16 bytes        length block, then the computed tag on open

import { ctEqual, wipe } from "./ct";
import { COUNTER_LANES, ZEROS256, chacha20Xor, rotl12, rotl16, rotl7, rotl8, xorBytes, xorRows4 } from "./chacha20";
import { HIBIT, POLY_STATE_SIZE, P_H, P_R, P_S, poly1305Blocks, poly1305Finish, poly1305Init, poly1305Padded } from "./poly1305";

/** Largest payload whose whole keystream fits KS (a jumbo frame, 9,216 bytes, with room to spare). */
export const CHACHA_OPEN_MAX: i32 = 9216;
const KS_SIZE: i32 = (((CHACHA_OPEN_MAX + 64 + 255) >> 8) << 8);
const KS = memory.data(KS_SIZE, 16);
const STATE = memory.data(POLY_STATE_SIZE, 16);
const TAIL = memory.data(16, 16);

/** Two Poly1305 blocks per double round; 16 per chunk keep pace with the data, 20 let a lag catch up. */
const MAC_PER_CHUNK: i32 = 20;
const M26: u64 = 0x3ffffff;

/**
 * Four ChaCha20 blocks from `counter` (dst = src ^ keystream, 256 bytes, like
 * chacha20Blocks4) while absorbing `nmac` (0..20) full 16-byte Poly1305 blocks
 * at `mac` into the state at `st`. key: 32 bytes; nonce: 12 bytes; src, dst:
 * 256 bytes (may be equal); mac: 16·nmac bytes, must not overlap dst.
 */
function chunk4Mac(key: usize, nonce: usize, counter: u32, src: usize, dst: usize, st: usize, mac: usize, nmac: i32): void {
  const r0 = <u64>load<u32>(st, P_R), r1 = <u64>load<u32>(st, P_R + 4), r2 = <u64>load<u32>(st, P_R + 8);
  const r3 = <u64>load<u32>(st, P_R + 12), r4 = <u64>load<u32>(st, P_R + 16);
  const s1 = <u64>load<u32>(st, P_S), s2 = <u64>load<u32>(st, P_S + 4);
  const s3 = <u64>load<u32>(st, P_S + 8), s4 = <u64>load<u32>(st, P_S + 12);
  let h0 = <u64>load<u32>(st, P_H), h1 = <u64>load<u32>(st, P_H + 4), h2 = <u64>load<u32>(st, P_H + 8);
  let h3 = <u64>load<u32>(st, P_H + 12), h4 = <u64>load<u32>(st, P_H + 16);
  let macEnd = mac + (<usize>nmac << 4);

  const k0 = i32x4.splat(load<i32>(key)), k1 = i32x4.splat(load<i32>(key, 4));
  const k2 = i32x4.splat(load<i32>(key, 8)), k3 = i32x4.splat(load<i32>(key, 12));
  const k4 = i32x4.splat(load<i32>(key, 16)), k5 = i32x4.splat(load<i32>(key, 20));
  const k6 = i32x4.splat(load<i32>(key, 24)), k7 = i32x4.splat(load<i32>(key, 28));
  const ctr = i32x4.add(i32x4.splat(<i32>counter), COUNTER_LANES);
  const n0 = i32x4.splat(load<i32>(nonce)), n1 = i32x4.splat(load<i32>(nonce, 4));
  const n2 = i32x4.splat(load<i32>(nonce, 8));
  let x0 = i32x4.splat(0x61707865), x1 = i32x4.splat(0x3320646e);
  let x2 = i32x4.splat(0x79622d32), x3 = i32x4.splat(0x6b206574);
  let x4 = k0, x5 = k1, x6 = k2, x7 = k3, x8 = k4, x9 = k5, x10 = k6, x11 = k7;
  let x12 = ctr, x13 = n0, x14 = n1, x15 = n2;

  for (let i = 0; i < 10; i++) {
    // Column round (as in chacha20Blocks4).
    x0 = i32x4.add(x0, x4); x1 = i32x4.add(x1, x5); x2 = i32x4.add(x2, x6); x3 = i32x4.add(x3, x7);
    x12 = rotl16(v128.xor(x12, x0)); x13 = rotl16(v128.xor(x13, x1)); x14 = rotl16(v128.xor(x14, x2)); x15 = rotl16(v128.xor(x15, x3));
    x8 = i32x4.add(x8, x12); x9 = i32x4.add(x9, x13); x10 = i32x4.add(x10, x14); x11 = i32x4.add(x11, x15);
    x4 = rotl12(v128.xor(x4, x8)); x5 = rotl12(v128.xor(x5, x9)); x6 = rotl12(v128.xor(x6, x10)); x7 = rotl12(v128.xor(x7, x11));
    x0 = i32x4.add(x0, x4); x1 = i32x4.add(x1, x5); x2 = i32x4.add(x2, x6); x3 = i32x4.add(x3, x7);
    x12 = rotl8(v128.xor(x12, x0)); x13 = rotl8(v128.xor(x13, x1)); x14 = rotl8(v128.xor(x14, x2)); x15 = rotl8(v128.xor(x15, x3));
    x8 = i32x4.add(x8, x12); x9 = i32x4.add(x9, x13); x10 = i32x4.add(x10, x14); x11 = i32x4.add(x11, x15);
    x4 = rotl7(v128.xor(x4, x8)); x5 = rotl7(v128.xor(x5, x9)); x6 = rotl7(v128.xor(x6, x10)); x7 = rotl7(v128.xor(x7, x11));
    // Diagonal round.
    x0 = i32x4.add(x0, x5); x1 = i32x4.add(x1, x6); x2 = i32x4.add(x2, x7); x3 = i32x4.add(x3, x4);
    x15 = rotl16(v128.xor(x15, x0)); x12 = rotl16(v128.xor(x12, x1)); x13 = rotl16(v128.xor(x13, x2)); x14 = rotl16(v128.xor(x14, x3));
    x10 = i32x4.add(x10, x15); x11 = i32x4.add(x11, x12); x8 = i32x4.add(x8, x13); x9 = i32x4.add(x9, x14);
    x5 = rotl12(v128.xor(x5, x10)); x6 = rotl12(v128.xor(x6, x11)); x7 = rotl12(v128.xor(x7, x8)); x4 = rotl12(v128.xor(x4, x9));
    x0 = i32x4.add(x0, x5); x1 = i32x4.add(x1, x6); x2 = i32x4.add(x2, x7); x3 = i32x4.add(x3, x4);
    x15 = rotl8(v128.xor(x15, x0)); x12 = rotl8(v128.xor(x12, x1)); x13 = rotl8(v128.xor(x13, x2)); x14 = rotl8(v128.xor(x14, x3));
    x10 = i32x4.add(x10, x15); x11 = i32x4.add(x11, x12); x8 = i32x4.add(x8, x13); x9 = i32x4.add(x9, x14);
    x5 = rotl7(v128.xor(x5, x10)); x6 = rotl7(v128.xor(x6, x11)); x7 = rotl7(v128.xor(x7, x8)); x4 = rotl7(v128.xor(x4, x9));

    // Up to two Poly1305 blocks (as in poly1305Blocks, hibit set: AEAD blocks are always full, §2.8).
    // The count is public (a function of the lengths), so the branch leaks nothing.
    for (let j = 0; j < 2 && mac < macEnd; j++, mac += 16) {
      h0 += <u64>load<u32>(mac) & M26;
      h1 += (<u64>load<u32>(mac, 3) >> 2) & M26;
      h2 += (<u64>load<u32>(mac, 6) >> 4) & M26;
      h3 += (<u64>load<u32>(mac, 9) >> 6) & M26;
      h4 += (<u64>load<u32>(mac, 12) >> 8) | HIBIT;
      const d0 = h0 * r0 + h1 * s4 + h2 * s3 + h3 * s2 + h4 * s1;
      let d1 = h0 * r1 + h1 * r0 + h2 * s4 + h3 * s3 + h4 * s2;
      let d2 = h0 * r2 + h1 * r1 + h2 * r0 + h3 * s4 + h4 * s3;
      let d3 = h0 * r3 + h1 * r2 + h2 * r1 + h3 * r0 + h4 * s4;
      let d4 = h0 * r4 + h1 * r3 + h2 * r2 + h3 * r1 + h4 * r0;
      d1 += d0 >> 26; h0 = d0 & M26;
      d2 += d1 >> 26; h1 = d1 & M26;
      d3 += d2 >> 26; h2 = d2 & M26;
      d4 += d3 >> 26; h3 = d3 & M26;
      h0 += (d4 >> 26) * 5; h4 = d4 & M26;
      h1 += h0 >> 26; h0 &= M26;
    }
  }

  store<u32>(st, <u32>h0, P_H); store<u32>(st, <u32>h1, P_H + 4); store<u32>(st, <u32>h2, P_H + 8);
  store<u32>(st, <u32>h3, P_H + 12); store<u32>(st, <u32>h4, P_H + 16);
  xorRows4(i32x4.add(x0, i32x4.splat(0x61707865)), i32x4.add(x1, i32x4.splat(0x3320646e)),
           i32x4.add(x2, i32x4.splat(0x79622d32)), i32x4.add(x3, i32x4.splat(0x6b206574)), src, dst);
  xorRows4(i32x4.add(x4, k0), i32x4.add(x5, k1), i32x4.add(x6, k2), i32x4.add(x7, k3), src + 16, dst + 16);
  xorRows4(i32x4.add(x8, k4), i32x4.add(x9, k5), i32x4.add(x10, k6), i32x4.add(x11, k7), src + 32, dst + 32);
  xorRows4(i32x4.add(x12, ctr), i32x4.add(x13, n0), i32x4.add(x14, n1), i32x4.add(x15, n2), src + 48, dst + 48);
}

/** Chunk 0: keystream blocks 0..3 into KS[0, 256); the one-time key (§2.6) starts the MAC, which then absorbs pad16(aad). */
function begin(key: usize, nonce: usize, aad: usize, aadLen: i32): void {
  chunk4Mac(key, nonce, 0, ZEROS256, KS, STATE, 0, 0);
  poly1305Init(STATE, KS);
  poly1305Padded(STATE, aad, aadLen);
}

/** Absorbs pad16 of the unabsorbed ciphertext data[from, len), then the lengths block (§2.8), and writes the tag. out: 16 bytes. */
function finish(aadLen: i32, data: usize, from: i32, len: i32, out: usize): void {
  poly1305Padded(STATE, data + from, len - from);
  store<u64>(TAIL, <u64>aadLen);
  store<u64>(TAIL, <u64>len, 8);
  poly1305Blocks(STATE, TAIL, 1, HIBIT);
  poly1305Finish(STATE, out);
}

/**
 * AEAD_CHACHA20_POLY1305 encryption (RFC 8439 §2.8), in place.
 * key: 32 bytes; nonce: 12 bytes (ESP: 4-byte salt ‖ 8-byte IV, RFC 7634 §2);
 * aad: aadLen bytes (ESP: SPI ‖ seq or SPI ‖ seqHi ‖ seqLo, RFC 7634 §2.1);
 * data: len bytes, plaintext in, ciphertext out; tag: 16 bytes out.
 * key, nonce and aad must not overlap data.
 */
export function chachaPolySeal(key: usize, nonce: usize, aad: usize, aadLen: i32, data: usize, len: i32, tag: usize): void {
  begin(key, nonce, aad, aadLen);
  let off = min(len, 192);      // bytes encrypted so far
  xorBytes(data, KS + 64, off);
  let macked = 0;               // bytes of ciphertext absorbed so far
  let counter: u32 = 4;
  while (off + 256 <= len) {
    const n = min(MAC_PER_CHUNK, (off - macked) >> 4);
    chunk4Mac(key, nonce, counter, data + off, data + off, STATE, data + macked, n);
    macked += n << 4;
    off += 256;
    counter += 4;
  }
  if (off < len) {
    const n = min(MAC_PER_CHUNK, (off - macked) >> 4);
    chunk4Mac(key, nonce, counter, ZEROS256, KS, STATE, data + macked, n);
    macked += n << 4;
    xorBytes(data + off, KS, len - off);
  }
  finish(aadLen, data, macked, len, tag);
}

/**
 * AEAD_CHACHA20_POLY1305 decryption (RFC 8439 §2.8), in place. Computes the
 * tag over aad and ciphertext first, compares it with ctEqual, and only if it
 * matches decrypts data. Returns false, with data untouched, on a bad tag.
 * Buffers as for chachaPolySeal; tag: 16 bytes in.
 */
export function chachaPolyOpen(key: usize, nonce: usize, aad: usize, aadLen: i32, data: usize, len: i32, tag: usize): bool {
  if (len > CHACHA_OPEN_MAX) return openTwoPass(key, nonce, aad, aadLen, data, len, tag);
  begin(key, nonce, aad, aadLen);
  // Keystream blocks 4.. into KS[256, …) while absorbing the ciphertext,
  // spread evenly over the chunks (all of it is there already).
  const chunks = ((len + 64 + 255) >> 8) - 1;
  let blocksLeft = len >> 4;
  let macked = 0;
  let ks = 256;
  for (let c = chunks; c > 0; c--) {
    const n = min(MAC_PER_CHUNK, (blocksLeft + c - 1) / c);
    chunk4Mac(key, nonce, <u32>ks >> 6, ZEROS256, KS + ks, STATE, data + macked, n);
    macked += n << 4;
    blocksLeft -= n;
    ks += 256;
  }
  finish(aadLen, data, macked, len, TAIL);
  const ok = ctEqual(TAIL, tag, 16);
  if (ok) xorBytes(data, KS + 64, len);
  else wipe(KS, len + 64);
  return ok;
}

/** Open for payloads larger than KS: one Poly1305 pass, compare, then one ChaCha20 pass. */
function openTwoPass(key: usize, nonce: usize, aad: usize, aadLen: i32, data: usize, len: i32, tag: usize): bool {
  begin(key, nonce, aad, aadLen);
  finish(aadLen, data, 0, len, TAIL);
  const ok = ctEqual(TAIL, tag, 16);
  if (ok) chacha20Xor(key, nonce, 1, data, len);
  return ok;
}
