// AEAD_CHACHA20_POLY1305 (RFC 8439 §2.8) as ESP uses it (RFC 7634).
//
// Two passes over the payload, each the fastest form of its primitive here:
// ChaCha20 four blocks at a time in v128 lanes (chacha20.ts) and Poly1305 two
// blocks at a time in i64x2 lanes (poly1305.ts). Running Poly1305 as scalar
// code inside the ChaCha20 round loop instead was measured and gained nothing
// on this project's Intel hosts (the scalar multiplies and the vector ops
// compete for the same execution ports), and a vector Poly1305 cannot join
// that loop: the sixteen ChaCha20 state vectors already fill the registers.
//
// The one-time Poly1305 key is block 0 of the keystream (§2.6); it comes out
// of the same 4-block call that encrypts the first 192 bytes, so a small
// packet costs one ChaCha20 call:
//
//   KS:    [block 0: r ‖ s ‖ unused][block 1][block 2][block 3]
//   data:                           [0 ──────────────────── 192)[192 … len)
//                                    XORed from KS               chacha20Xor from block 4
//
// Open authenticates before it decrypts (RFC 4303 §3.4.4, RFC 8439 §4): the
// tag is computed over aad and ciphertext and checked with ctEqual before a
// single byte of data is written; on a bad tag data is untouched.
//
// Scratch (static, single-threaded per instance):
//   KS     256 bytes        keystream blocks 0..3; block 0 (the one-time key) is
//                           wiped after use, blocks 1..3 are plaintext ⊕ ciphertext
//   STATE  POLY_STATE_SIZE  Poly1305 state (layout in poly1305.ts)
//   TAIL   16 bytes         the length block, then the computed tag on open

import { ctEqual, wipe } from "./ct";
import { ZEROS256, chacha20Blocks4, chacha20WipeScratch, chacha20Xor, xorBytes } from "./chacha20";
import { HIBIT, POLY_STATE_SIZE, poly1305Blocks, poly1305Finish, poly1305Init, poly1305Padded, poly1305WipeScratch } from "./poly1305";

const KS = memory.data(256, 16);
const STATE = memory.data(POLY_STATE_SIZE, 16);
const TAIL = memory.data(16, 16);

/** Keystream blocks 0..3 into KS; the one-time key (§2.6) starts the MAC. */
function begin(key: usize, nonce: usize): void {
  chacha20Blocks4(key, nonce, 0, ZEROS256, KS);
  poly1305Init(STATE, KS);
}

/** MAC over aad ‖ pad16 ‖ ciphertext ‖ pad16 ‖ le64(aadLen) ‖ le64(len) (§2.8); the tag goes to out (16 bytes). */
function mac(aad: usize, aadLen: i32, data: usize, len: i32, out: usize): void {
  poly1305Padded(STATE, aad, aadLen);
  poly1305Padded(STATE, data, len);
  store<u64>(TAIL, <u64>aadLen);
  store<u64>(TAIL, <u64>len, 8);
  poly1305Blocks(STATE, TAIL, 1, HIBIT);
  poly1305Finish(STATE, out);
}

/** ChaCha20 from block 1 (§2.8) over data: 192 bytes from KS, the rest from block 4 on. */
function crypt(key: usize, nonce: usize, data: usize, len: i32): void {
  const head = min(len, 192);
  xorBytes(data, KS + 64, head);
  if (len > 192) chacha20Xor(key, nonce, 4, data + 192, len - 192);
  wipe(KS, 64);
}

/**
 * AEAD_CHACHA20_POLY1305 encryption (RFC 8439 §2.8), in place.
 * key: 32 bytes; nonce: 12 bytes (ESP: 4-byte salt ‖ 8-byte IV, RFC 7634 §2);
 * aad: aadLen bytes (ESP: SPI ‖ seq or SPI ‖ seqHi ‖ seqLo, RFC 7634 §2.1);
 * data: len bytes, plaintext in, ciphertext out; tag: 16 bytes out.
 * key, nonce and aad must not overlap data; pointers need no alignment.
 */
export function chachaPolySeal(key: usize, nonce: usize, aad: usize, aadLen: i32, data: usize, len: i32, tag: usize): void {
  begin(key, nonce);
  crypt(key, nonce, data, len);
  mac(aad, aadLen, data, len, tag);
}

/**
 * AEAD_CHACHA20_POLY1305 decryption (RFC 8439 §2.8), in place. Computes the
 * tag over aad and ciphertext first, compares it with ctEqual, and only if it
 * matches decrypts data. Returns false, with data untouched, on a bad tag.
 * Buffers as for chachaPolySeal; tag: 16 bytes in.
 */
export function chachaPolyOpen(key: usize, nonce: usize, aad: usize, aadLen: i32, data: usize, len: i32, tag: usize): bool {
  begin(key, nonce);
  mac(aad, aadLen, data, len, TAIL);
  if (!ctEqual(TAIL, tag, 16)) {
    wipe(KS, 64);
    return false;
  }
  crypt(key, nonce, data, len);
  return true;
}

/**
 * Zeroes every static buffer of the AEAD and of the ChaCha20 and Poly1305
 * modules under it (keystream, Poly1305 key-derived state): called when an
 * SA is removed so no key-derived bytes outlive it.
 */
export function chachaPolyWipeScratch(): void {
  memory.fill(KS, 0, 256);
  memory.fill(STATE, 0, POLY_STATE_SIZE);
  memory.fill(TAIL, 0, 16);
  chacha20WipeScratch();
  poly1305WipeScratch();
}
