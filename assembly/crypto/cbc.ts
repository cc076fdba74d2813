// AES-CBC for ESP (RFC 3602): the caller supplies a fresh unpredictable
// 16-byte IV per packet (§2.4) and a payload already padded to a multiple of
// 16 bytes (RFC 4303 §2.4 padding); ciphertext replaces plaintext in place.
//
// Encryption is a chain — block i needs ciphertext i−1 — so it runs one block
// per AES call (8× the work of a block in a full bitsliced batch). Decryption
// has no chain on its input, so it runs 8 blocks per call and XORs each
// result with the ciphertext block before it, saved first because the
// buffer is overwritten in place.
//
// ctx is an aesInit context (aes.ts). CBC gives no integrity: ESP pairs it
// with HMAC-SHA-256-128 (RFC 4868), checked before cbcDecrypt is called.

import { aesEncrypt8, aesDecrypt8, aesWipeScratch } from "./aes";

/** Batch buffer: 8 blocks going through the cipher (128 B). */
const BUF = memory.data(128, 64);
/** The batch's ciphertext, kept for chaining while data is overwritten (128 B). */
const CT = memory.data(128, 64);

/**
 * CBC-encrypts len bytes at data in place (§2.3).
 * iv: 16 B; data: len bytes, any alignment; len: a multiple of 16 (a
 * trailing partial block is left as is).
 */
export function cbcEncrypt(ctx: usize, iv: usize, data: usize, len: i32): void {
  let prev = v128.load(iv);
  for (let off = 0; off + 16 <= len; off += 16) {
    v128.store(BUF, v128.xor(v128.load(data + <usize>off), prev));
    aesEncrypt8(ctx, BUF, BUF);
    prev = v128.load(BUF);
    v128.store(data + <usize>off, prev);
  }
}

/**
 * CBC-decrypts len bytes at data in place.
 * iv: 16 B; data: len bytes, any alignment; len: a multiple of 16 (a
 * trailing partial block is left as is).
 */
export function cbcDecrypt(ctx: usize, iv: usize, data: usize, len: i32): void {
  const n = len >> 4;
  let prev = v128.load(iv);
  for (let i = 0; i < n; i += 8) {
    const k = min(8, n - i);
    const p = data + (<usize>i << 4);
    memory.copy(CT, p, <usize>k << 4);
    aesDecrypt8(ctx, CT, BUF);
    for (let b = 0; b < k; b++) {
      const o = <usize>b << 4;
      v128.store(p + o, v128.xor(v128.load(BUF + o), prev));
      prev = v128.load(CT + o);
    }
  }
}

/**
 * ESP's CBC IVs (esp_outbound.ts): IV(seq) = E_K(ivSeed ‖ seq64), the
 * encryption of a never-repeating nonce, unpredictable without K (RFC 3602
 * §2.4). One block costs a whole 8-block pass, so the pass computes the IVs
 * of the 8 sequence numbers seq & ~7 … (seq & ~7) + 7 at once and keeps them
 * here with the context, seed and base they belong to; the next packets of
 * the same SA take theirs from the cache.
 *
 *   IVC_TAG   0 ctx (usize, as u64) │ 8 ivSeed │ 16 base seq │ 24 (zero)
 *   IVC       8 × 16 B: lane i = IV(base + i)
 *
 * All zero at start and after cbcWipeScratch (called when an SA is added or
 * removed), and ctx 0 never matches a live context, so a new SA never sees
 * an old key's IVs.
 */
const IVC_TAG = memory.data(32, 16);
const IVC = memory.data(128, 64);

/**
 * Writes IV(seq) = E_K(seed ‖ seq as 64-bit big-endian) to iv (16 B).
 * ctx: aesInit context; seed: 8 B.
 */
export function cbcEspIv(ctx: usize, seed: usize, seq: u64, iv: usize): void {
  const base = seq & ~(<u64>7);
  // ctx, the SA's seed and seq are public (which SA, which packet): so is the branch.
  if (load<u64>(IVC_TAG) != <u64>ctx || load<u64>(IVC_TAG, 8) != load<u64>(seed) || load<u64>(IVC_TAG, 16) != base) {
    const s = load<u64>(seed);
    for (let i: u64 = 0; i < 8; i++) {
      const p = IVC + (<usize>i << 4);
      store<u64>(p, s);
      store<u64>(p, bswap<u64>(base + i), 8);
    }
    aesEncrypt8(ctx, IVC, IVC);
    store<u64>(IVC_TAG, <u64>ctx);
    store<u64>(IVC_TAG, s, 8);
    store<u64>(IVC_TAG, base, 16);
  }
  v128.store(iv, v128.load(IVC + (<usize>(seq & 7) << 4)));
}

/** Zeroes the CBC and AES scratch, including the IV cache (see aesWipeScratch). */
export function cbcWipeScratch(): void {
  aesWipeScratch();
  memory.fill(BUF, 0, 128);
  memory.fill(CT, 0, 128);
  memory.fill(IVC_TAG, 0, 32);
  memory.fill(IVC, 0, 128);
}
