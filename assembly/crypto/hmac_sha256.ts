// HMAC-SHA-256 (RFC 2104 with SHA-256), for ESP's AUTH_HMAC_SHA2_256_128 (RFC 4868:
// 256-bit key, ICV = the first 128 bits of the MAC; the caller truncates).
//
// HMAC(K, m) = H((K0 ⊕ opad) ‖ H((K0 ⊕ ipad) ‖ m)), K0 = K zero-padded to the 64-byte
// block, or H(K) zero-padded when K is longer than a block (RFC 2104 §2).
// K0 ⊕ ipad and K0 ⊕ opad are each exactly one block, so they are compressed once
// per SA (hmacSha256Init) and every packet starts from those two chaining states:
// a packet costs ⌈(len + 9) / 64⌉ inner blocks plus one outer block.
//
// Context layout (HMAC_CTX_SIZE = 64 bytes, any 4-byte alignment; part of the SA's
// key material, so it must be wiped with the SA):
//   +0  ┌──────────────────────────────────┐
//       │ inner state: SHA-256 chaining     │ 8 × u32 after compressing K0 ⊕ ipad
//   +32 ├──────────────────────────────────┤
//       │ outer state: SHA-256 chaining     │ 8 × u32 after compressing K0 ⊕ opad
//   +64 └──────────────────────────────────┘
// (chaining state word order: see sha256.ts)

import { sha256, sha256Blocks, sha256Finish, sha256InitState, sha256WipeSchedule, sha256WipeScratch } from "./sha256";
import { wipe } from "./ct";

export const HMAC_CTX_SIZE: i32 = 64;

// Static scratch (single-threaded core): the padded key block, the running state,
// the tail block(s) of the inner hash and the inner digest.
const KBLOCK: usize = memory.data(64, 16);
const ST: usize = memory.data(32, 16);
const BUF: usize = memory.data(128, 16);
const INNER: usize = memory.data(32, 16);

/**
 * Precomputes the HMAC context at `ctx` (HMAC_CTX_SIZE = 64 bytes) for the `keyLen`-byte
 * key at `key`. Any length is accepted; keys over 64 bytes are hashed first (RFC 2104 §2).
 * ESP with AUTH_HMAC_SHA2_256_128 uses 32-byte keys (RFC 4868 §2.1.1).
 */
export function hmacSha256Init(ctx: usize, key: usize, keyLen: i32): void {
  memory.fill(KBLOCK, 0, 64);
  if (keyLen > 64) sha256(key, keyLen, KBLOCK);
  else memory.copy(KBLOCK, key, <usize>keyLen);
  for (let i: usize = 0; i < 64; i += 8) store<u64>(KBLOCK + i, load<u64>(KBLOCK + i) ^ 0x3636363636363636);
  sha256InitState(ctx);
  sha256Blocks(ctx, KBLOCK, 1);
  // ipad ⊕ opad = 0x36 ⊕ 0x5c = 0x6a turns K0 ⊕ ipad into K0 ⊕ opad.
  for (let i: usize = 0; i < 64; i += 8) store<u64>(KBLOCK + i, load<u64>(KBLOCK + i) ^ 0x6a6a6a6a6a6a6a6a);
  sha256InitState(ctx + 32);
  sha256Blocks(ctx + 32, KBLOCK, 1);
  wipe(KBLOCK, 64);
  sha256WipeSchedule(); // it held K0 ⊕ opad
}

/** Zeroes an HMAC context (HMAC_CTX_SIZE bytes at `ctx`), e.g. when its SA is removed. */
export function hmacSha256Wipe(ctx: usize): void {
  wipe(ctx, HMAC_CTX_SIZE);
}

/**
 * MAC over p1[0..len1) ‖ p2[0..len2) with the context at `ctx` (64 bytes, from
 * hmacSha256Init); writes the full 32-byte HMAC to `out` (32 bytes; may overlap
 * neither input). ESP passes p1 = SPI … end of ciphertext and, for ESN SAs, p2 = the
 * 4 high-order sequence-number bytes, which are authenticated but never sent
 * (RFC 4303 §2.2.1, §3.3.2.1); otherwise len2 = 0. The ICV is out[0..16) (RFC 4868).
 */
export function hmacSha256(ctx: usize, p1: usize, len1: i32, p2: usize, len2: i32, out: usize): void {
  memory.copy(ST, ctx, 32);
  const n1 = len1 >> 6;
  sha256Blocks(ST, p1, n1);
  let r = len1 & 63;
  memory.copy(BUF, p1 + (<usize>n1 << 6), <usize>r);
  if (len2 > 0) {
    // Top the partial block up from p2; only when it fills do p2's own full blocks
    // get compressed in place, the rest joins the tail.
    const take = min(64 - r, len2);
    memory.copy(BUF + r, p2, <usize>take);
    r += take;
    if (r == 64) {
      sha256Blocks(ST, BUF, 1);
      const rest = len2 - take;
      const n2 = rest >> 6;
      const q = p2 + <usize>take;
      sha256Blocks(ST, q, n2);
      r = rest & 63;
      memory.copy(BUF, q + (<usize>n2 << 6), <usize>r);
    }
  }
  // The inner hash covers the 64-byte K0 ⊕ ipad block too.
  sha256Finish(ST, BUF, r, 64 + <u64>len1 + <u64>len2, INNER);
  memory.copy(BUF, INNER, 32);
  memory.copy(ST, ctx + 32, 32);
  sha256Finish(ST, BUF, 32, 64 + 32, out);
}

/** Zeroes the module's static buffers (key block, chaining states): called when an SA is removed. */
export function hmacSha256WipeScratch(): void {
  memory.fill(KBLOCK, 0, 64);
  memory.fill(ST, 0, 32);
  memory.fill(BUF, 0, 128);
  memory.fill(INNER, 0, 32);
  sha256WipeScratch();
}
