// ChaCha20 (RFC 8439 §2.3–§2.4), four blocks at a time in v128 lanes.
//
// Unrolled and vectorised; the plain one-block-at-a-time twin is
// chacha20_ref.ts, and test/unit/crypto-chacha20.test.ts holds them equal.
//
// Lane layout: vector xi holds state word i of four consecutive blocks, so a
// quarter round on (x0, x4, x8, x12) runs the column round of all four blocks
// at once (the "vertical" layout of Goll & Gueron / the OpenSSL SIMD code):
//
//   x0  = [ w0(n)  w0(n+1)  w0(n+2)  w0(n+3) ]      n = block counter
//   ...
//   x12 = [ n      n+1      n+2      n+3     ]      the counters differ
//   x15 = [ w15(n) w15(n+1) w15(n+2) w15(n+3)]
//
// After the rounds a 4×4 transpose of each group (x0..x3), (x4..x7), … turns
// the lanes back into the byte order of each block.
//
// Constant time: only adds, XORs and fixed rotations; no data-dependent
// branch or index.

// Rotations of each 32-bit lane. By 16 and 8 they are byte permutations, and
// i8x16.swizzle with a constant mask is one pshufb in V8 (≈0.4 cycle), cheaper
// than shift+shift+or (which measured 8–18 % slower overall here); 12 and 7
// need the shifts.
const ROT16: v128 = i8x16(2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
const ROT8: v128 = i8x16(3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14);

// @ts-ignore: decorator
@inline function rotl16(x: v128): v128 { return i8x16.swizzle(x, ROT16); }
// @ts-ignore: decorator
@inline function rotl8(x: v128): v128 { return i8x16.swizzle(x, ROT8); }
// @ts-ignore: decorator
@inline function rotl12(x: v128): v128 { return v128.or(i32x4.shl(x, 12), i32x4.shr_u(x, 20)); }
// @ts-ignore: decorator
@inline function rotl7(x: v128): v128 { return v128.or(i32x4.shl(x, 7), i32x4.shr_u(x, 25)); }

/** Lane offsets added to the splatted block counter: blocks n, n+1, n+2, n+3. */
const COUNTER_LANES: v128 = i32x4(0, 1, 2, 3);

/** 256 zero bytes: XORing them with the keystream yields the keystream itself. Never written. */
export const ZEROS256 = memory.data(256, 16);

/**
 * Four ChaCha20 blocks with counters counter..counter+3 (wrapping modulo 2^32):
 * dst[i] = src[i] ^ keystream[i] for i < 256. key: 32 bytes; nonce: 12 bytes;
 * src, dst: 256 bytes each, may be the same buffer, need not be aligned.
 */
export function chacha20Blocks4(key: usize, nonce: usize, counter: u32, src: usize, dst: usize): void {
  // RFC 8439 §2.3: constants | key | counter | nonce, each word splat over the lanes.
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

  for (let i = 0; i < 10; i += 2) {
    // Column round: QR(0,4,8,12) QR(1,5,9,13) QR(2,6,10,14) QR(3,7,11,15), the four interleaved.
    x0 = i32x4.add(x0, x4); x1 = i32x4.add(x1, x5); x2 = i32x4.add(x2, x6); x3 = i32x4.add(x3, x7);
    x12 = rotl16(v128.xor(x12, x0)); x13 = rotl16(v128.xor(x13, x1)); x14 = rotl16(v128.xor(x14, x2)); x15 = rotl16(v128.xor(x15, x3));
    x8 = i32x4.add(x8, x12); x9 = i32x4.add(x9, x13); x10 = i32x4.add(x10, x14); x11 = i32x4.add(x11, x15);
    x4 = rotl12(v128.xor(x4, x8)); x5 = rotl12(v128.xor(x5, x9)); x6 = rotl12(v128.xor(x6, x10)); x7 = rotl12(v128.xor(x7, x11));
    x0 = i32x4.add(x0, x4); x1 = i32x4.add(x1, x5); x2 = i32x4.add(x2, x6); x3 = i32x4.add(x3, x7);
    x12 = rotl8(v128.xor(x12, x0)); x13 = rotl8(v128.xor(x13, x1)); x14 = rotl8(v128.xor(x14, x2)); x15 = rotl8(v128.xor(x15, x3));
    x8 = i32x4.add(x8, x12); x9 = i32x4.add(x9, x13); x10 = i32x4.add(x10, x14); x11 = i32x4.add(x11, x15);
    x4 = rotl7(v128.xor(x4, x8)); x5 = rotl7(v128.xor(x5, x9)); x6 = rotl7(v128.xor(x6, x10)); x7 = rotl7(v128.xor(x7, x11));
    // Diagonal round: QR(0,5,10,15) QR(1,6,11,12) QR(2,7,8,13) QR(3,4,9,14).
    x0 = i32x4.add(x0, x5); x1 = i32x4.add(x1, x6); x2 = i32x4.add(x2, x7); x3 = i32x4.add(x3, x4);
    x15 = rotl16(v128.xor(x15, x0)); x12 = rotl16(v128.xor(x12, x1)); x13 = rotl16(v128.xor(x13, x2)); x14 = rotl16(v128.xor(x14, x3));
    x10 = i32x4.add(x10, x15); x11 = i32x4.add(x11, x12); x8 = i32x4.add(x8, x13); x9 = i32x4.add(x9, x14);
    x5 = rotl12(v128.xor(x5, x10)); x6 = rotl12(v128.xor(x6, x11)); x7 = rotl12(v128.xor(x7, x8)); x4 = rotl12(v128.xor(x4, x9));
    x0 = i32x4.add(x0, x5); x1 = i32x4.add(x1, x6); x2 = i32x4.add(x2, x7); x3 = i32x4.add(x3, x4);
    x15 = rotl8(v128.xor(x15, x0)); x12 = rotl8(v128.xor(x12, x1)); x13 = rotl8(v128.xor(x13, x2)); x14 = rotl8(v128.xor(x14, x3));
    x10 = i32x4.add(x10, x15); x11 = i32x4.add(x11, x12); x8 = i32x4.add(x8, x13); x9 = i32x4.add(x9, x14);
    x5 = rotl7(v128.xor(x5, x10)); x6 = rotl7(v128.xor(x6, x11)); x7 = rotl7(v128.xor(x7, x8)); x4 = rotl7(v128.xor(x4, x9));
    // The same double round again (unrolled by two: fewer register moves at the loop edge, measured ~3 %).
    x0 = i32x4.add(x0, x4); x1 = i32x4.add(x1, x5); x2 = i32x4.add(x2, x6); x3 = i32x4.add(x3, x7);
    x12 = rotl16(v128.xor(x12, x0)); x13 = rotl16(v128.xor(x13, x1)); x14 = rotl16(v128.xor(x14, x2)); x15 = rotl16(v128.xor(x15, x3));
    x8 = i32x4.add(x8, x12); x9 = i32x4.add(x9, x13); x10 = i32x4.add(x10, x14); x11 = i32x4.add(x11, x15);
    x4 = rotl12(v128.xor(x4, x8)); x5 = rotl12(v128.xor(x5, x9)); x6 = rotl12(v128.xor(x6, x10)); x7 = rotl12(v128.xor(x7, x11));
    x0 = i32x4.add(x0, x4); x1 = i32x4.add(x1, x5); x2 = i32x4.add(x2, x6); x3 = i32x4.add(x3, x7);
    x12 = rotl8(v128.xor(x12, x0)); x13 = rotl8(v128.xor(x13, x1)); x14 = rotl8(v128.xor(x14, x2)); x15 = rotl8(v128.xor(x15, x3));
    x8 = i32x4.add(x8, x12); x9 = i32x4.add(x9, x13); x10 = i32x4.add(x10, x14); x11 = i32x4.add(x11, x15);
    x4 = rotl7(v128.xor(x4, x8)); x5 = rotl7(v128.xor(x5, x9)); x6 = rotl7(v128.xor(x6, x10)); x7 = rotl7(v128.xor(x7, x11));
    x0 = i32x4.add(x0, x5); x1 = i32x4.add(x1, x6); x2 = i32x4.add(x2, x7); x3 = i32x4.add(x3, x4);
    x15 = rotl16(v128.xor(x15, x0)); x12 = rotl16(v128.xor(x12, x1)); x13 = rotl16(v128.xor(x13, x2)); x14 = rotl16(v128.xor(x14, x3));
    x10 = i32x4.add(x10, x15); x11 = i32x4.add(x11, x12); x8 = i32x4.add(x8, x13); x9 = i32x4.add(x9, x14);
    x5 = rotl12(v128.xor(x5, x10)); x6 = rotl12(v128.xor(x6, x11)); x7 = rotl12(v128.xor(x7, x8)); x4 = rotl12(v128.xor(x4, x9));
    x0 = i32x4.add(x0, x5); x1 = i32x4.add(x1, x6); x2 = i32x4.add(x2, x7); x3 = i32x4.add(x3, x4);
    x15 = rotl8(v128.xor(x15, x0)); x12 = rotl8(v128.xor(x12, x1)); x13 = rotl8(v128.xor(x13, x2)); x14 = rotl8(v128.xor(x14, x3));
    x10 = i32x4.add(x10, x15); x11 = i32x4.add(x11, x12); x8 = i32x4.add(x8, x13); x9 = i32x4.add(x9, x14);
    x5 = rotl7(v128.xor(x5, x10)); x6 = rotl7(v128.xor(x6, x11)); x7 = rotl7(v128.xor(x7, x8)); x4 = rotl7(v128.xor(x4, x9));
  }

  // Feed-forward (§2.3), then XOR into the output one 16-byte row at a time.
  xorRows4(i32x4.add(x0, i32x4.splat(0x61707865)), i32x4.add(x1, i32x4.splat(0x3320646e)),
           i32x4.add(x2, i32x4.splat(0x79622d32)), i32x4.add(x3, i32x4.splat(0x6b206574)), src, dst);
  xorRows4(i32x4.add(x4, k0), i32x4.add(x5, k1), i32x4.add(x6, k2), i32x4.add(x7, k3), src + 16, dst + 16);
  xorRows4(i32x4.add(x8, k4), i32x4.add(x9, k5), i32x4.add(x10, k6), i32x4.add(x11, k7), src + 32, dst + 32);
  xorRows4(i32x4.add(x12, ctr), i32x4.add(x13, n0), i32x4.add(x14, n1), i32x4.add(x15, n2), src + 48, dst + 48);
}

/**
 * Transposes words (a, b, c, d) — lane j belonging to block j — into one
 * 16-byte row per block and XORs row j into bytes [64j, 64j+16) of src → dst.
 * src, dst: 4 rows spaced 64 bytes apart (the caller adds the row offset).
 */
// @ts-ignore: decorator
@inline function xorRows4(a: v128, b: v128, c: v128, d: v128, src: usize, dst: usize): void {
  const ab01 = i32x4.shuffle(a, b, 0, 4, 1, 5); // a0 b0 a1 b1
  const cd01 = i32x4.shuffle(c, d, 0, 4, 1, 5); // c0 d0 c1 d1
  const ab23 = i32x4.shuffle(a, b, 2, 6, 3, 7); // a2 b2 a3 b3
  const cd23 = i32x4.shuffle(c, d, 2, 6, 3, 7); // c2 d2 c3 d3
  v128.store(dst, v128.xor(v128.load(src), i64x2.shuffle(ab01, cd01, 0, 2)));
  v128.store(dst, v128.xor(v128.load(src, 64), i64x2.shuffle(ab01, cd01, 1, 3)), 64);
  v128.store(dst, v128.xor(v128.load(src, 128), i64x2.shuffle(ab23, cd23, 0, 2)), 128);
  v128.store(dst, v128.xor(v128.load(src, 192), i64x2.shuffle(ab23, cd23, 1, 3)), 192);
}

/** XORs `len` bytes at `data` in place with the `len` bytes at `ks`. */
// @ts-ignore: decorator
@inline export function xorBytes(data: usize, ks: usize, len: i32): void {
  let i = 0;
  for (; i + 16 <= len; i += 16) v128.store(data + i, v128.xor(v128.load(data + i), v128.load(ks + i)));
  for (; i + 8 <= len; i += 8) store<u64>(data + i, load<u64>(data + i) ^ load<u64>(ks + i));
  for (; i < len; i++) store<u8>(data + i, load<u8>(data + i) ^ load<u8>(ks + i));
}

const KEYSTREAM = memory.data(256, 16);

/**
 * ChaCha20 encryption (RFC 8439 §2.4): XORs `len` (≥ 0) bytes at `data` in place
 * with the keystream starting at block `counter`; the counter wraps modulo 2^32
 * (callers never get near: ESP packets use blocks 1..145). key: 32 bytes;
 * nonce: 12 bytes.
 */
export function chacha20Xor(key: usize, nonce: usize, counter: u32, data: usize, len: i32): void {
  let off = 0;
  for (; off + 256 <= len; off += 256) {
    chacha20Blocks4(key, nonce, counter, data + off, data + off);
    counter += 4;
  }
  if (off < len) {
    chacha20Blocks4(key, nonce, counter, ZEROS256, KEYSTREAM);
    xorBytes(data + off, KEYSTREAM, len - off);
  }
}

/** One keystream block (RFC 8439 §2.3). key: 32 bytes; nonce: 12 bytes; out: 64 bytes. */
export function chacha20Block(key: usize, nonce: usize, counter: u32, out: usize): void {
  chacha20Blocks4(key, nonce, counter, ZEROS256, KEYSTREAM);
  memory.copy(out, KEYSTREAM, 64);
}

/** Zeroes the keystream scratch (control path: an SA using this module went away). */
export function chacha20WipeScratch(): void {
  memory.fill(KEYSTREAM, 0, 256);
}
