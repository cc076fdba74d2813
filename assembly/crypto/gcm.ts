// AES-GCM (NIST SP 800-38D) as ESP uses it (RFC 4106): 12-byte nonce =
// 4-byte salt ‖ 8-byte explicit IV (§4), 16-byte ICV (§6, ENCR_AES_GCM_16).
//
// Eight counter blocks are encrypted per batch by the bitsliced AES (aes.ts),
// and one GHASH block (ghash.ts) runs between consecutive AES rounds, inline
// in the same loop: the two are independent chains of vector work, so the
// CPU's out-of-order window overlaps them (measured a few per cent better
// than GHASHing each batch afterwards). Rounds 1 and 2 of each batch are
// mostly cached (aes_ctr_cache.ts R1C, R2C), so the GHASH blocks run between rounds
// 3..Nr (8 slots for a batch's 8 blocks with AES-128); a message of fewer
// than CACHE_MIN batches runs all rounds, uncached (see ctrBatch).
//
// Keystream numbering: keystream block j is E(K, J0 + j) with J0 = nonce ‖
// 0x00000001 (§7.1 step 2, 96-bit IV), inc32 on the last four bytes. Block 0
// masks the tag (§7.1 step 6), block j ≥ 1 encrypts data block j − 1.
//
// Batches are aligned on the counter, not on j, so that the eight counter
// blocks can be bitsliced without a transpose (aesCtrIn): with off = J0's
// counter mod 8, lane i of batch k holds keystream block j = 8k + i − off
// (lanes with j < 0 or j > the last block are computed and dropped).
//
//   gcmSeal: each batch encrypts the data its keystream covers, and GHASHes
//            the previous batch's ciphertext between its rounds.
//   gcmOpen: GHASHes the ciphertext between the rounds while the keystream
//            goes to scratch (KSALL); only when the tag matches (ctEqual) is
//            the keystream XORed into the data, so a forgery leaves the
//            buffer untouched (authenticate before decrypting, RFC 4303 §3.4.4).
//
// Context layout (GCM_CTX_SIZE bytes, caller-allocated, 64-byte aligned):
//   0     AES context (aes.ts, AES_CTX_SIZE bytes: bitsliced round keys + Nr;
//         in the relaxed-SIMD build fixsliced, aesFixsliceKeys: see ctrBatch)
//   1936  H = E(K, 0^128), 16 B (the GHASH key, §6.4)
//   1952  end

import { AES_CTX_SIZE, aesInit, aesEncryptBlock, aesFixsliceKeys, aesRounds, aesCtrBase, aesCtrIn, aesStateOut, aesRunCtr, aesWipeScratch } from "./aes";
import { aesCtrSbox15, aesCtrRun, aesCtrSbox2, aesCtrIn2, aesCtrCacheWipeScratch } from "./aes_ctr_cache";
import { ghashStart, ghashBlock, ghashBytes, ghashLengths, ghashFinish, ghashWipeScratch } from "./ghash";
import { ctEqual } from "./ct";

/** Bytes of a GCM context: the AES schedule and H. */
export const GCM_CTX_SIZE: i32 = AES_CTX_SIZE + 16;
const CTX_H: usize = <usize>AES_CTX_SIZE;

/**
 * Largest payload gcmOpen accepts (the keystream scratch is sized for it):
 * 9,472 bytes, the size of a packet slot (layout.ts SLOT_SIZE), so that any
 * ESP packet the ring can hold is opened, never refused as if forged.
 * test/unit/crypto-gcm.test.ts holds it ≥ the slot size.
 */
export const GCM_MAX_LEN: i32 = 9472;

/** The message's bitsliced counter prefix ⊕ round key 0 (aesCtrBase, 128 B). */
const BASE = memory.data(128, 64);
/** Keystream of one batch (seal, 128 B). */
const KS = memory.data(128, 64);
/**
 * Keystream of a whole packet for gcmOpen: blocks 0..⌈GCM_MAX_LEN/16⌉ (592
 * for 9,472 bytes), made in batches of 8 aligned on the counter, the last
 * batch starting at a block ≤ 592 → up to 600 blocks = 9,600 B, and up to 7
 * blocks before block 0 (the counters below J0 in the first batch).
 */
const KSALL_BYTES: i32 = (((GCM_MAX_LEN + 15) >> 4) + 8) << 4;
const KSALL_FRAME = memory.data(128 + KSALL_BYTES, 64);
const KSALL = KSALL_FRAME + 128;
/** E(K, J0), the tag mask (seal), and the computed tag (open). */
const MASK = memory.data(16, 16);
const TAG = memory.data(16, 16);
const ZERO16 = memory.data(16, 16);
/** The pre-counter block J0 built from a nonce (16 B). */
const J0 = memory.data(16, 16);

/**
 * Expands the key and derives H into ctx (GCM_CTX_SIZE bytes).
 * key: keyLen bytes, keyLen 16 | 24 | 32 (the salt is not part of it).
 */
export function gcmInit(ctx: usize, key: usize, keyLen: i32): void {
  aesInit(ctx, key, keyLen);
  aesEncryptBlock(ctx, ZERO16, ctx + CTX_H);
  if (ASC_FEATURE_RELAXED_SIMD) aesFixsliceKeys(ctx);
}

/**
 * The AES rounds of the counter batch whose first counter is c (a multiple
 * of 8; batch: its index in the message), GHASHing ciphertext blocks
 * g.. < gEnd at data between them (aesRunCtr). Rounds 1 and 2 come from the
 * caches of aes_ctr_cache.ts R1C and R2C: position 15's S-boxes every 16 batches, round
 * 2's varying column of 4 batches every 4, and rounds 1 and 2 in full (with
 * that group, aes_ctr_cache.ts aesCtrRun) at the message's first batch and wherever c's
 * low byte wraps to 0 (a new run of 256 counters: c >> 8 changed), in that
 * order: each cache is built from the ones before it (Bernstein–Schwabe
 * 2008 §4). The relaxed-SIMD build runs the rounds fixsliced
 * (aes.ts FX: two byte permutations per plane and round instead of three,
 * by masks that change with the round and so are loaded, which relaxed_swizzle
 * takes as a bare pshufb): measured 0.3–3 % faster at 1,400 B there
 * (docs/performance.md "The core's AES-GCM"). In the baseline build a swizzle
 * by a loaded mask costs a paddusb more, two per plane and round, more than
 * the ShiftRows it saves, so that build keeps the plain rounds.
 * cached false (a message of fewer than CACHE_MIN batches): all rounds in
 * full, the caches' set-up costing more than they would save.
 */
// @ts-ignore: decorator
@inline function ctrBatch(ctx: usize, nr: i32, c: u32, batch: i32, cached: bool, data: usize, g: i32, gEnd: i32): i32 {
  if (!cached) {
    aesCtrIn(BASE, c);
    return aesRunCtr(ctx, nr, 1, nr, data, g, gEnd);
  }
  if (!(batch & 15)) aesCtrSbox15(BASE, c);
  if (batch == 0 || !(c & 0xff)) aesCtrRun(ctx, nr, BASE, c, batch);
  else if (!(batch & 3)) aesCtrSbox2(c, batch);
  aesCtrIn2(batch);
  return aesRunCtr(ctx, nr, 3, nr, data, g, gEnd);
}

/**
 * Fewest batches for which a message uses the counter-mode caches (ctrBatch).
 * Setting them up — position 15's S-boxes, rounds 1 and 2 in full, the first
 * round-2 group — costs about two rounds more than a batch's rounds 1 and 2
 * in full, and each batch then saves about 1.3 rounds: a loss below 4
 * batches (64 B packets measured 11–20 % faster with no cache than with
 * round 1's alone), a gain from there (docs/performance.md "Round 2 of
 * counter mode cached"). Up to 352 B for ESP (J0's counter is 1). The count
 * depends on the message length only, which is public.
 */
const CACHE_MIN: i32 = 4;

/** J0 = nonce ‖ 0x00000001 for a 12-byte nonce (§7.1 step 2), into J0. */
// @ts-ignore: decorator
@inline function nonceJ0(nonce: usize): void {
  store<u64>(J0, load<u64>(nonce));
  store<u32>(J0, load<u32>(nonce, 8), 8);
  store<u32>(J0, 0x01000000, 12);
}

/** dst[0..n) ^= ks[0..n), n ≤ 16 (the last, possibly partial, block). */
// @ts-ignore: decorator
@inline function xorBlock(dst: usize, ks: usize, n: i32): void {
  if (n == 16) {
    v128.store(dst, v128.xor(v128.load(dst), v128.load(ks)));
  } else {
    for (let i = 0; i < n; i++) store<u8>(dst + <usize>i, load<u8>(dst + <usize>i) ^ load<u8>(ks + <usize>i));
  }
}

/**
 * Encrypts len bytes at data in place and writes the 16-byte ICV to tag.
 * nonce: 12 B (salt ‖ IV); aad: aadLen bytes (ESP: SPI ‖ [ESN high ‖] seq, RFC 4106 §5);
 * data: len bytes, any alignment; tag: 16 B.
 */
export function gcmSeal(ctx: usize, nonce: usize, aad: usize, aadLen: i32, data: usize, len: i32, tag: usize): void {
  nonceJ0(nonce);
  gcmSealJ0(ctx, J0, aad, aadLen, data, len, tag);
}

/**
 * Verifies the 16-byte ICV at tag over aad and the ciphertext, then decrypts
 * len bytes at data in place. Returns false, with data untouched, when the tag
 * does not match or len is outside 0..GCM_MAX_LEN.
 * nonce: 12 B; aad: aadLen bytes; data: len bytes, any alignment; tag: 16 B.
 */
export function gcmOpen(ctx: usize, nonce: usize, aad: usize, aadLen: i32, data: usize, len: i32, tag: usize): bool {
  nonceJ0(nonce);
  return gcmOpenJ0(ctx, J0, aad, aadLen, data, len, tag);
}

/**
 * J0 for an IV of any length ≥ 1 (§7.1 step 2): GHASH(IV ‖ 0-pad ‖ 0^64 ‖
 * [len(IV)]_64) when it is not 96 bits. ESP never needs this; the GCM
 * specification's test cases 5, 6, 11, 12, 17, 18 do. iv: ivLen bytes; j0: 16 B out.
 */
export function gcmIvToJ0(ctx: usize, iv: usize, ivLen: i32, j0: usize): void {
  if (ivLen == 12) {
    nonceJ0(iv);
    v128.store(j0, v128.load(J0));
    return;
  }
  ghashStart(ctx + CTX_H);
  ghashBytes(iv, ivLen);
  ghashLengths(0, ivLen);
  ghashFinish(ZERO16, j0);
}

/** gcmSeal from a pre-counter block J0 (j0: 16 B) instead of a nonce. */
export function gcmSealJ0(ctx: usize, j0: usize, aad: usize, aadLen: i32, data: usize, len: i32, tag: usize): void {
  ghashStart(ctx + CTX_H);
  ghashBytes(aad, aadLen);
  const nr = aesRounds(ctx);
  const nblk = (len + 15) >> 4, nfull = len >> 4;
  // Batches are aligned on the counter (aesCtrIn): lane i of batch k holds
  // keystream block j = 8k + i − off, off = J0's counter mod 8.
  const c0 = bswap<u32>(load<u32>(j0, 12)), off = <i32>(c0 & 7);
  aesCtrBase(ctx, j0, BASE);
  const cached = ((nblk + off) >> 3) + 1 >= CACHE_MIN;
  let g = 0;     // next ciphertext block to GHASH
  let ready = 0; // ciphertext blocks written so far
  let batch = 0;
  for (let first = -off; first <= nblk; first += 8) {
    g = ctrBatch(ctx, nr, (c0 & ~7) + <u32>(first + off), batch, cached, data, g, min(ready, nfull));
    batch++;
    aesStateOut(KS);
    let i = max(0, -first);
    if (first + i == 0) { v128.store(MASK, v128.load(KS + (<usize>i << 4))); i++; }
    const end = min(8, nblk + 1 - first);
    for (; i < end; i++) {
      const at = (first + i - 1) << 4;
      xorBlock(data + <usize>at, KS + (<usize>i << 4), min(16, len - at));
    }
    ready = first + end - 1;
  }
  for (; g < nfull; g++) ghashBlock(data + (<usize>g << 4));
  ghashBytes(data + (<usize>nfull << 4), len - (nfull << 4));
  ghashLengths(aadLen, len);
  ghashFinish(MASK, tag);
}

/** gcmOpen from a pre-counter block J0 (j0: 16 B) instead of a nonce. */
export function gcmOpenJ0(ctx: usize, j0: usize, aad: usize, aadLen: i32, data: usize, len: i32, tag: usize): bool {
  if (len < 0 || len > GCM_MAX_LEN) return false;
  ghashStart(ctx + CTX_H);
  ghashBytes(aad, aadLen);
  const nr = aesRounds(ctx);
  const nblk = (len + 15) >> 4, nfull = len >> 4;
  const c0 = bswap<u32>(load<u32>(j0, 12)), off = <i32>(c0 & 7);
  aesCtrBase(ctx, j0, BASE);
  const cached = ((nblk + off) >> 3) + 1 >= CACHE_MIN;
  let g = 0;
  let batch = 0;
  for (let first = -off; first <= nblk; first += 8) {
    g = ctrBatch(ctx, nr, (c0 & ~7) + <u32>(first + off), batch, cached, data, g, nfull);
    batch++;
    aesStateOut(KSALL + (<isize>first << 4));
  }
  for (; g < nfull; g++) ghashBlock(data + (<usize>g << 4));
  ghashBytes(data + (<usize>nfull << 4), len - (nfull << 4));
  ghashLengths(aadLen, len);
  ghashFinish(KSALL, TAG);
  // SP 800-38D §7.2 step 8: release the plaintext only when the tags agree.
  if (!ctEqual(TAG, tag, 16)) return false;
  const ks = KSALL + 16;
  let i = 0;
  for (; i + 16 <= len; i += 16) {
    v128.store(data + <usize>i, v128.xor(v128.load(data + <usize>i), v128.load(ks + <usize>i)));
  }
  xorBlock(data + <usize>i, ks + <usize>i, len - i);
  return true;
}

/**
 * Zeroes every scratch buffer AES-GCM uses — keystream, counter base (it
 * contains round key 0), tag mask, GHASH tables — so nothing derived from a
 * removed SA's key stays in linear memory. Not needed between packets.
 */
export function gcmWipeScratch(): void {
  aesWipeScratch();
  aesCtrCacheWipeScratch();
  ghashWipeScratch();
  memory.fill(BASE, 0, 128);
  memory.fill(KS, 0, 128);
  memory.fill(KSALL_FRAME, 0, <usize>(128 + KSALL_BYTES));
  memory.fill(MASK, 0, 16);
  memory.fill(TAG, 0, 16);
  memory.fill(J0, 0, 16);
}
