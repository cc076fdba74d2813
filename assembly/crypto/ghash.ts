// GHASH (NIST SP 800-38D §6.4), constant time, without tables.
//
// WebAssembly has no carry-less multiply, so the 64×64 products are done with
// ordinary integer multiplies on operands that keep only every fourth bit
// ("holes", as in BearSSL's ghash_ctmul64): x & 0x1111… times y & 0x1111…
// puts each partial-product count in its own 4-bit slot, so carries never
// reach the next bit of the same class and the class bit is the XOR we want.
// 16 multiplies give the low 64 bits of the 128-bit carry-less product; the
// high 64 bits are the low bits of the product of the bit-reversed operands,
// reversed again. Karatsuba makes a 128×128 product out of three 64×64 ones:
// 6 × 16 = 96 multiplies per block, no memory access depending on data.
//
// Bit order: GHASH reads a block as a polynomial whose x^0 coefficient is the
// most significant bit of byte 0 (SP 800-38D §6.3). Taking the block as a
// big-endian 128-bit integer, the carry-less product of two such integers is
// the reflected product shifted right by one, hence the `<< 1` before the
// reduction by x^128 + x^7 + x^2 + x + 1.
//
// State (static, one GHASH at a time per instance):
//   Y   v128 [y1 | y0]  the accumulator, lane 0 = bytes 0..7 as a big-endian u64
//   HK  24 × u64        H's three Karatsuba operands (h0, h1, h0^h1) and their
//                       bit-reversals, each split into the four hole classes

const Y = memory.data(16, 16);
const HK = memory.data(24 * 8, 16);
const PAD = memory.data(16, 16);
const FENCE = memory.data(8, 8);

// HK offsets of the six operands (4 × u64 each: classes 0..3).
const H0: usize = 0, H1: usize = 32, H2: usize = 64, H0R: usize = 96, H1R: usize = 128, H2R: usize = 160;

const M0: u64 = 0x1111111111111111, M1: u64 = 0x2222222222222222;
const M2: u64 = 0x4444444444444444, M3: u64 = 0x8888888888888888;

// Constants live in memory rather than as v128.const: V8 rebuilds a v128
// constant from two 64-bit immediates at every use (3–4 instructions), while
// a load from here folds into the instruction that uses it.
//   +0   BSWAP64()    byte order swap inside each 64-bit lane (big-endian ↔ native)
//   +16  REVNIB_HI()  bit reversal of nibble n, placed in the high nibble
//   +32  REVNIB_LO()  … in the low nibble
//   +48  NIB()        0x0f in every byte
const K = memory.data<u8>([
  7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8,
  0x00, 0x80, 0x40, 0xc0, 0x20, 0xa0, 0x60, 0xe0, 0x10, 0x90, 0x50, 0xd0, 0x30, 0xb0, 0x70, 0xf0,
  0x0, 0x8, 0x4, 0xc, 0x2, 0xa, 0x6, 0xe, 0x1, 0x9, 0x5, 0xd, 0x3, 0xb, 0x7, 0xf,
  15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,
], 16);
// @ts-ignore: decorator
@inline function BSWAP64(): v128 { return v128.load(K); }
// @ts-ignore: decorator
@inline function REVNIB_HI(): v128 { return v128.load(K, 16); }
// @ts-ignore: decorator
@inline function REVNIB_LO(): v128 { return v128.load(K, 32); }
// @ts-ignore: decorator
@inline function NIB(): v128 { return v128.load(K, 48); }

/**
 * Reverses the bits of each 64-bit lane. The nibble lookups are swizzles of a
 * constant register (pshufb), not memory reads, so they take the same time
 * whatever the data.
 */
// @ts-ignore: decorator
@inline function rev64x2(v: v128): v128 {
  const b = i8x16.swizzle(v, BSWAP64());
  return v128.or(
    i8x16.swizzle(REVNIB_HI(), v128.and(b, NIB())),
    i8x16.swizzle(REVNIB_LO(), v128.and(i16x8.shr_u(b, 4), NIB())),
  );
}

/** Low 64 bits of the carry-less product x·y; y is pre-split into classes at hp (4 × u64). */
// @ts-ignore: decorator
@inline function bmul64(x: u64, hp: usize): u64 {
  const x0 = x & M0, x1 = x & M1, x2 = x & M2, x3 = x & M3;
  const y0 = load<u64>(hp), y1 = load<u64>(hp, 8), y2 = load<u64>(hp, 16), y3 = load<u64>(hp, 24);
  const z0 = (x0 * y0) ^ (x1 * y3) ^ (x2 * y2) ^ (x3 * y1);
  const z1 = (x0 * y1) ^ (x1 * y0) ^ (x2 * y3) ^ (x3 * y2);
  const z2 = (x0 * y2) ^ (x1 * y1) ^ (x2 * y0) ^ (x3 * y3);
  const z3 = (x0 * y3) ^ (x1 * y2) ^ (x2 * y1) ^ (x3 * y0);
  const z = (z0 & M0) | (z1 & M1) | (z2 & M2) | (z3 & M3);
  // A store here keeps V8 from hoisting the next product's loads above this
  // one (loads only order against stores), which would spill half of them.
  store<u64>(FENCE, z);
  return z;
}

// @ts-ignore: decorator
@inline function splitClasses(h: u64, p: usize): void {
  store<u64>(p, h & M0); store<u64>(p, h & M1, 8); store<u64>(p, h & M2, 16); store<u64>(p, h & M3, 24);
}

/**
 * Starts a GHASH with hash key H (16 B at h, the block E(K, 0^128)):
 * derives the operand table and zeroes the accumulator.
 */
export function ghashStart(h: usize): void {
  const hv = i8x16.swizzle(v128.load(h), BSWAP64());
  const hr = rev64x2(hv);
  const h1 = i64x2.extract_lane(hv, 0), h0 = i64x2.extract_lane(hv, 1);
  const h1r = i64x2.extract_lane(hr, 0), h0r = i64x2.extract_lane(hr, 1);
  splitClasses(h0, HK + H0); splitClasses(h1, HK + H1); splitClasses(h0 ^ h1, HK + H2);
  splitClasses(h0r, HK + H0R); splitClasses(h1r, HK + H1R); splitClasses(h0r ^ h1r, HK + H2R);
  v128.store(Y, i64x2.splat(0));
}

/** Y = (Y ⊕ X)·H for the 16-byte block X at p (any alignment). */
export function ghashBlock(p: usize): void {
  ghashBlockInline(p);
}

/** ghashBlock's body, for aesRun to interleave with the AES rounds. */
// @ts-ignore: decorator
@inline export function ghashBlockInline(p: usize): void {
  const v = v128.xor(i8x16.swizzle(v128.load(p), BSWAP64()), v128.load(Y));
  const vr = rev64x2(v);
  const y1 = i64x2.extract_lane(v, 0), y0 = i64x2.extract_lane(v, 1);
  const y1r = i64x2.extract_lane(vr, 0), y0r = i64x2.extract_lane(vr, 1);

  // Karatsuba: (y1·X^64 + y0)(h1·X^64 + h0) with the middle term from (y0^y1)(h0^h1).
  const z0 = bmul64(y0, HK + H0), z1 = bmul64(y1, HK + H1);
  let z2 = bmul64(y0 ^ y1, HK + H2);
  const z0h = bmul64(y0r, HK + H0R), z1h = bmul64(y1r, HK + H1R);
  let z2h = bmul64(y0r ^ y1r, HK + H2R);
  z2 ^= z0 ^ z1;
  z2h ^= z0h ^ z1h;
  // High halves: reverse back; the reversed product has 127 bits, hence >> 1.
  const ra = rev64x2(i64x2.replace_lane(i64x2.splat(z0h), 1, z1h));
  const rb = rev64x2(i64x2.splat(z2h));
  const w0h = <u64>i64x2.extract_lane(ra, 0) >> 1, w1h = <u64>i64x2.extract_lane(ra, 1) >> 1;
  const w2h = <u64>i64x2.extract_lane(rb, 0) >> 1;

  // The 256-bit product v3:v2:v1:v0 (v3 most significant), shifted left by one.
  let v0 = z0, v1 = w0h ^ z2, v2 = z1 ^ w2h, v3 = w1h;
  v3 = (v3 << 1) | (v2 >> 63);
  v2 = (v2 << 1) | (v1 >> 63);
  v1 = (v1 << 1) | (v0 >> 63);
  v0 = v0 << 1;
  // Reduce: in reflected order x^128 = x^7 + x^2 + x + 1 is a right shift by
  // 0, 1, 2 and 7 of the low half into the high half; v0's spill lands in v1
  // first, then v1 (with it) is folded.
  v2 ^= v0 ^ (v0 >> 1) ^ (v0 >> 2) ^ (v0 >> 7);
  v1 ^= (v0 << 63) ^ (v0 << 62) ^ (v0 << 57);
  v3 ^= v1 ^ (v1 >> 1) ^ (v1 >> 2) ^ (v1 >> 7);
  v2 ^= (v1 << 63) ^ (v1 << 62) ^ (v1 << 57);
  v128.store(Y, i64x2.replace_lane(i64x2.splat(v3), 1, v2));
}

/** GHASHes len bytes at p (any length), zero-padding the last partial block (§6.4, §7.1 step 5). */
export function ghashBytes(p: usize, len: i32): void {
  let i = 0;
  for (; i + 16 <= len; i += 16) ghashBlock(p + <usize>i);
  if (i < len) {
    v128.store(PAD, i64x2.splat(0));
    memory.copy(PAD, p + <usize>i, <usize>(len - i));
    ghashBlock(PAD);
  }
}

/** The closing block len(A)‖len(C), both as 64-bit big-endian bit counts (§7.1 step 5). */
export function ghashLengths(aadLen: i32, len: i32): void {
  const v = i64x2.replace_lane(i64x2.splat(<i64>aadLen << 3), 1, <i64>len << 3);
  v128.store(PAD, i8x16.swizzle(v, BSWAP64()));
  ghashBlock(PAD);
}

/** Writes the GHASH output (16 B at out) XORed with the 16 B at mask: the GCM tag E(K, J0) ⊕ S. */
export function ghashFinish(mask: usize, out: usize): void {
  v128.store(out, v128.xor(i8x16.swizzle(v128.load(Y), BSWAP64()), v128.load(mask)));
  v128.store(Y, i64x2.splat(0));
}
