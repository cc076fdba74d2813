// SHA-256 (FIPS 180-4 §6.2), the hash under HMAC-SHA-256-128 (RFC 4868).
//
// Compression, per 64-byte block:
//  - Message schedule (§6.2.2 step 1) in SIMD, four words per v128:
//      W[t..t+3] = σ1(W[t-2..t+1]) + W[t-7..t-4] + σ0(W[t-15..t-12]) + W[t-16..t-13]
//    The σ1 term needs W[t] and W[t+1], which this very step produces, so it is added in
//    two halves (lanes 0–1 from the previous vector's lanes 2–3, then lanes 2–3 from the
//    new lanes 0–1). W[t] + K[t] is stored to a 256-byte static array WK.
//  - The 64 rounds (§6.2.2 step 3) fully unrolled with the working variables in locals;
//    instead of shifting a..h each round the names rotate (round t uses a..h rotated
//    right by t mod 8), so the round lines all follow one pattern:
//      h += W[t] + K[t];  h += Σ1(e) + Ch(e,f,g);  d += h;  h += Σ0(a) + Maj(a,b,c)
//    with Maj(a,b,c) = b ⊕ ((a ⊕ b) ∧ (b ⊕ c)), where b ⊕ c is the previous round's a ⊕ b
//    (kept alternately in m0 and m1). The twelve schedule steps are spread one per four
//    rounds, each well ahead of its first use, so the CPU overlaps vector and scalar work.
// The 64 round lines and 48 schedule lines are mechanical; the test against
// @noble/hashes at every length 0..300 and random lengths to 3,000
// (test/unit/crypto-sha256.test.ts) is the independent reference.
//
// Constant time: only 32-bit adds, rotates, shifts and boolean ops on the data;
// no table is indexed by data and no branch depends on it.
//
// Chaining state layout (hmac_sha256.ts stores two of them per SA):
//   ┌────┬────┬────┬────┬────┬────┬────┬────┐
//   │ H0 │ H1 │ H2 │ H3 │ H4 │ H5 │ H6 │ H7 │  8 × u32 in host (little-endian) order,
//   └────┴────┴────┴────┴────┴────┴────┴────┘  32 bytes; the digest is the same words big-endian.

import { wipe } from "./ct";

/** Size in bytes of a chaining state (8 × u32). */
export const SHA256_STATE_SIZE: i32 = 32;
/** Size in bytes of one message block. */
export const SHA256_BLOCK_SIZE: i32 = 64;

// FIPS 180-4 §5.3.3: the initial hash value.
const IV: usize = memory.data<u32>([
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
]);

// Static scratch for one-shot hashing: the chaining state and two blocks for the
// padded tail. The core is single-threaded per instance, so one copy suffices.
const ST: usize = memory.data(32, 16);
const TAIL: usize = memory.data(128, 16);

// FIPS 180-4 §4.2.2: the round constants.
const K: usize = memory.data<u32>([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

// W[t] + K[t] for the 64 rounds of the block being compressed.
const WK: usize = memory.data(256, 16);

// FIPS 180-4 §4.1.2 functions (4.4, 4.5), scalar.
// @ts-ignore: decorator
@inline function S0(x: u32): u32 { return rotr<u32>(x, 2) ^ rotr<u32>(x, 13) ^ rotr<u32>(x, 22); }
// @ts-ignore: decorator
@inline function S1(x: u32): u32 { return rotr<u32>(x, 6) ^ rotr<u32>(x, 11) ^ rotr<u32>(x, 25); }
// Ch (4.2) in its three-operation form z ⊕ (x ∧ (y ⊕ z)).
// @ts-ignore: decorator
@inline function ch(x: u32, y: u32, z: u32): u32 { return z ^ (x & (y ^ z)); }

// σ0, σ1 (4.6, 4.7) on four words; a rotate is two shifts (WASM SIMD has no rotate).
// @ts-ignore: decorator
@inline function vs0(x: v128): v128 {
  return v128.xor(v128.xor(i32x4.shr_u(x, 3), v128.xor(i32x4.shr_u(x, 7), i32x4.shl(x, 25))),
    v128.xor(i32x4.shr_u(x, 18), i32x4.shl(x, 14)));
}
// @ts-ignore: decorator
@inline function vs1(x: v128): v128 {
  return v128.xor(v128.xor(i32x4.shr_u(x, 10), v128.xor(i32x4.shr_u(x, 17), i32x4.shl(x, 15))),
    v128.xor(i32x4.shr_u(x, 19), i32x4.shl(x, 13)));
}
// Words 1..4 of the eight-word concatenation x ‖ y (one palignr).
// @ts-ignore: decorator
@inline function mid(x: v128, y: v128): v128 {
  return i8x16.shuffle(x, y, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19);
}
// (x2, x3, 0, 0) and (0, 0, x0, x1).
// @ts-ignore: decorator
@inline function hiToLo(x: v128): v128 {
  return i8x16.shuffle(x, i32x4.splat(0), 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23);
}
// @ts-ignore: decorator
@inline function loToHi(x: v128): v128 {
  return i8x16.shuffle(i32x4.splat(0), x, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23);
}
// Loads four big-endian message words (FIPS 180-4 §3.1) from `p + off`.
// @ts-ignore: decorator
@inline function be32x4(p: usize, off: usize): v128 {
  return i8x16.swizzle(v128.load(p + off), i8x16(3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12));
}

/**
 * Compresses `nBlocks` consecutive 64-byte blocks at `p` (64·nBlocks bytes, any
 * alignment) into the chaining state at `st` (32 bytes, layout above).
 */
export function sha256Blocks(st: usize, p: usize, nBlocks: i32): void {
  for (let n = 0; n < nBlocks; n++, p += 64) {
    let x0 = be32x4(p, 0), x1 = be32x4(p, 16), x2 = be32x4(p, 32), x3 = be32x4(p, 48);
    v128.store(WK, i32x4.add(x0, v128.load(K, 0)), 0);
    v128.store(WK, i32x4.add(x1, v128.load(K, 16)), 16);
    v128.store(WK, i32x4.add(x2, v128.load(K, 32)), 32);
    v128.store(WK, i32x4.add(x3, v128.load(K, 48)), 48);
    let a = load<u32>(st, 0), b = load<u32>(st, 4), c = load<u32>(st, 8), d = load<u32>(st, 12);
    let e = load<u32>(st, 16), f = load<u32>(st, 20), g = load<u32>(st, 24), h = load<u32>(st, 28);
    let m0 = b ^ c, m1: u32 = 0; // the previous round's a ⊕ b, for Maj (alternating)
    x0 = i32x4.add(i32x4.add(x0, vs0(mid(x0, x1))), mid(x2, x3));
    x0 = i32x4.add(x0, hiToLo(vs1(x3)));
    x0 = i32x4.add(x0, loToHi(vs1(x0)));
    v128.store(WK, i32x4.add(x0, v128.load(K, 64)), 64);
    h += load<u32>(WK, 0); h += S1(e) + ch(e, f, g); d += h; m1 = a ^ b; h += S0(a) + (b ^ (m1 & m0));
    g += load<u32>(WK, 4); g += S1(d) + ch(d, e, f); c += g; m0 = h ^ a; g += S0(h) + (a ^ (m0 & m1));
    f += load<u32>(WK, 8); f += S1(c) + ch(c, d, e); b += f; m1 = g ^ h; f += S0(g) + (h ^ (m1 & m0));
    e += load<u32>(WK, 12); e += S1(b) + ch(b, c, d); a += e; m0 = f ^ g; e += S0(f) + (g ^ (m0 & m1));
    x1 = i32x4.add(i32x4.add(x1, vs0(mid(x1, x2))), mid(x3, x0));
    x1 = i32x4.add(x1, hiToLo(vs1(x0)));
    x1 = i32x4.add(x1, loToHi(vs1(x1)));
    v128.store(WK, i32x4.add(x1, v128.load(K, 80)), 80);
    d += load<u32>(WK, 16); d += S1(a) + ch(a, b, c); h += d; m1 = e ^ f; d += S0(e) + (f ^ (m1 & m0));
    c += load<u32>(WK, 20); c += S1(h) + ch(h, a, b); g += c; m0 = d ^ e; c += S0(d) + (e ^ (m0 & m1));
    b += load<u32>(WK, 24); b += S1(g) + ch(g, h, a); f += b; m1 = c ^ d; b += S0(c) + (d ^ (m1 & m0));
    a += load<u32>(WK, 28); a += S1(f) + ch(f, g, h); e += a; m0 = b ^ c; a += S0(b) + (c ^ (m0 & m1));
    x2 = i32x4.add(i32x4.add(x2, vs0(mid(x2, x3))), mid(x0, x1));
    x2 = i32x4.add(x2, hiToLo(vs1(x1)));
    x2 = i32x4.add(x2, loToHi(vs1(x2)));
    v128.store(WK, i32x4.add(x2, v128.load(K, 96)), 96);
    h += load<u32>(WK, 32); h += S1(e) + ch(e, f, g); d += h; m1 = a ^ b; h += S0(a) + (b ^ (m1 & m0));
    g += load<u32>(WK, 36); g += S1(d) + ch(d, e, f); c += g; m0 = h ^ a; g += S0(h) + (a ^ (m0 & m1));
    f += load<u32>(WK, 40); f += S1(c) + ch(c, d, e); b += f; m1 = g ^ h; f += S0(g) + (h ^ (m1 & m0));
    e += load<u32>(WK, 44); e += S1(b) + ch(b, c, d); a += e; m0 = f ^ g; e += S0(f) + (g ^ (m0 & m1));
    x3 = i32x4.add(i32x4.add(x3, vs0(mid(x3, x0))), mid(x1, x2));
    x3 = i32x4.add(x3, hiToLo(vs1(x2)));
    x3 = i32x4.add(x3, loToHi(vs1(x3)));
    v128.store(WK, i32x4.add(x3, v128.load(K, 112)), 112);
    d += load<u32>(WK, 48); d += S1(a) + ch(a, b, c); h += d; m1 = e ^ f; d += S0(e) + (f ^ (m1 & m0));
    c += load<u32>(WK, 52); c += S1(h) + ch(h, a, b); g += c; m0 = d ^ e; c += S0(d) + (e ^ (m0 & m1));
    b += load<u32>(WK, 56); b += S1(g) + ch(g, h, a); f += b; m1 = c ^ d; b += S0(c) + (d ^ (m1 & m0));
    a += load<u32>(WK, 60); a += S1(f) + ch(f, g, h); e += a; m0 = b ^ c; a += S0(b) + (c ^ (m0 & m1));
    x0 = i32x4.add(i32x4.add(x0, vs0(mid(x0, x1))), mid(x2, x3));
    x0 = i32x4.add(x0, hiToLo(vs1(x3)));
    x0 = i32x4.add(x0, loToHi(vs1(x0)));
    v128.store(WK, i32x4.add(x0, v128.load(K, 128)), 128);
    h += load<u32>(WK, 64); h += S1(e) + ch(e, f, g); d += h; m1 = a ^ b; h += S0(a) + (b ^ (m1 & m0));
    g += load<u32>(WK, 68); g += S1(d) + ch(d, e, f); c += g; m0 = h ^ a; g += S0(h) + (a ^ (m0 & m1));
    f += load<u32>(WK, 72); f += S1(c) + ch(c, d, e); b += f; m1 = g ^ h; f += S0(g) + (h ^ (m1 & m0));
    e += load<u32>(WK, 76); e += S1(b) + ch(b, c, d); a += e; m0 = f ^ g; e += S0(f) + (g ^ (m0 & m1));
    x1 = i32x4.add(i32x4.add(x1, vs0(mid(x1, x2))), mid(x3, x0));
    x1 = i32x4.add(x1, hiToLo(vs1(x0)));
    x1 = i32x4.add(x1, loToHi(vs1(x1)));
    v128.store(WK, i32x4.add(x1, v128.load(K, 144)), 144);
    d += load<u32>(WK, 80); d += S1(a) + ch(a, b, c); h += d; m1 = e ^ f; d += S0(e) + (f ^ (m1 & m0));
    c += load<u32>(WK, 84); c += S1(h) + ch(h, a, b); g += c; m0 = d ^ e; c += S0(d) + (e ^ (m0 & m1));
    b += load<u32>(WK, 88); b += S1(g) + ch(g, h, a); f += b; m1 = c ^ d; b += S0(c) + (d ^ (m1 & m0));
    a += load<u32>(WK, 92); a += S1(f) + ch(f, g, h); e += a; m0 = b ^ c; a += S0(b) + (c ^ (m0 & m1));
    x2 = i32x4.add(i32x4.add(x2, vs0(mid(x2, x3))), mid(x0, x1));
    x2 = i32x4.add(x2, hiToLo(vs1(x1)));
    x2 = i32x4.add(x2, loToHi(vs1(x2)));
    v128.store(WK, i32x4.add(x2, v128.load(K, 160)), 160);
    h += load<u32>(WK, 96); h += S1(e) + ch(e, f, g); d += h; m1 = a ^ b; h += S0(a) + (b ^ (m1 & m0));
    g += load<u32>(WK, 100); g += S1(d) + ch(d, e, f); c += g; m0 = h ^ a; g += S0(h) + (a ^ (m0 & m1));
    f += load<u32>(WK, 104); f += S1(c) + ch(c, d, e); b += f; m1 = g ^ h; f += S0(g) + (h ^ (m1 & m0));
    e += load<u32>(WK, 108); e += S1(b) + ch(b, c, d); a += e; m0 = f ^ g; e += S0(f) + (g ^ (m0 & m1));
    x3 = i32x4.add(i32x4.add(x3, vs0(mid(x3, x0))), mid(x1, x2));
    x3 = i32x4.add(x3, hiToLo(vs1(x2)));
    x3 = i32x4.add(x3, loToHi(vs1(x3)));
    v128.store(WK, i32x4.add(x3, v128.load(K, 176)), 176);
    d += load<u32>(WK, 112); d += S1(a) + ch(a, b, c); h += d; m1 = e ^ f; d += S0(e) + (f ^ (m1 & m0));
    c += load<u32>(WK, 116); c += S1(h) + ch(h, a, b); g += c; m0 = d ^ e; c += S0(d) + (e ^ (m0 & m1));
    b += load<u32>(WK, 120); b += S1(g) + ch(g, h, a); f += b; m1 = c ^ d; b += S0(c) + (d ^ (m1 & m0));
    a += load<u32>(WK, 124); a += S1(f) + ch(f, g, h); e += a; m0 = b ^ c; a += S0(b) + (c ^ (m0 & m1));
    x0 = i32x4.add(i32x4.add(x0, vs0(mid(x0, x1))), mid(x2, x3));
    x0 = i32x4.add(x0, hiToLo(vs1(x3)));
    x0 = i32x4.add(x0, loToHi(vs1(x0)));
    v128.store(WK, i32x4.add(x0, v128.load(K, 192)), 192);
    h += load<u32>(WK, 128); h += S1(e) + ch(e, f, g); d += h; m1 = a ^ b; h += S0(a) + (b ^ (m1 & m0));
    g += load<u32>(WK, 132); g += S1(d) + ch(d, e, f); c += g; m0 = h ^ a; g += S0(h) + (a ^ (m0 & m1));
    f += load<u32>(WK, 136); f += S1(c) + ch(c, d, e); b += f; m1 = g ^ h; f += S0(g) + (h ^ (m1 & m0));
    e += load<u32>(WK, 140); e += S1(b) + ch(b, c, d); a += e; m0 = f ^ g; e += S0(f) + (g ^ (m0 & m1));
    x1 = i32x4.add(i32x4.add(x1, vs0(mid(x1, x2))), mid(x3, x0));
    x1 = i32x4.add(x1, hiToLo(vs1(x0)));
    x1 = i32x4.add(x1, loToHi(vs1(x1)));
    v128.store(WK, i32x4.add(x1, v128.load(K, 208)), 208);
    d += load<u32>(WK, 144); d += S1(a) + ch(a, b, c); h += d; m1 = e ^ f; d += S0(e) + (f ^ (m1 & m0));
    c += load<u32>(WK, 148); c += S1(h) + ch(h, a, b); g += c; m0 = d ^ e; c += S0(d) + (e ^ (m0 & m1));
    b += load<u32>(WK, 152); b += S1(g) + ch(g, h, a); f += b; m1 = c ^ d; b += S0(c) + (d ^ (m1 & m0));
    a += load<u32>(WK, 156); a += S1(f) + ch(f, g, h); e += a; m0 = b ^ c; a += S0(b) + (c ^ (m0 & m1));
    x2 = i32x4.add(i32x4.add(x2, vs0(mid(x2, x3))), mid(x0, x1));
    x2 = i32x4.add(x2, hiToLo(vs1(x1)));
    x2 = i32x4.add(x2, loToHi(vs1(x2)));
    v128.store(WK, i32x4.add(x2, v128.load(K, 224)), 224);
    h += load<u32>(WK, 160); h += S1(e) + ch(e, f, g); d += h; m1 = a ^ b; h += S0(a) + (b ^ (m1 & m0));
    g += load<u32>(WK, 164); g += S1(d) + ch(d, e, f); c += g; m0 = h ^ a; g += S0(h) + (a ^ (m0 & m1));
    f += load<u32>(WK, 168); f += S1(c) + ch(c, d, e); b += f; m1 = g ^ h; f += S0(g) + (h ^ (m1 & m0));
    e += load<u32>(WK, 172); e += S1(b) + ch(b, c, d); a += e; m0 = f ^ g; e += S0(f) + (g ^ (m0 & m1));
    x3 = i32x4.add(i32x4.add(x3, vs0(mid(x3, x0))), mid(x1, x2));
    x3 = i32x4.add(x3, hiToLo(vs1(x2)));
    x3 = i32x4.add(x3, loToHi(vs1(x3)));
    v128.store(WK, i32x4.add(x3, v128.load(K, 240)), 240);
    d += load<u32>(WK, 176); d += S1(a) + ch(a, b, c); h += d; m1 = e ^ f; d += S0(e) + (f ^ (m1 & m0));
    c += load<u32>(WK, 180); c += S1(h) + ch(h, a, b); g += c; m0 = d ^ e; c += S0(d) + (e ^ (m0 & m1));
    b += load<u32>(WK, 184); b += S1(g) + ch(g, h, a); f += b; m1 = c ^ d; b += S0(c) + (d ^ (m1 & m0));
    a += load<u32>(WK, 188); a += S1(f) + ch(f, g, h); e += a; m0 = b ^ c; a += S0(b) + (c ^ (m0 & m1));
    h += load<u32>(WK, 192); h += S1(e) + ch(e, f, g); d += h; m1 = a ^ b; h += S0(a) + (b ^ (m1 & m0));
    g += load<u32>(WK, 196); g += S1(d) + ch(d, e, f); c += g; m0 = h ^ a; g += S0(h) + (a ^ (m0 & m1));
    f += load<u32>(WK, 200); f += S1(c) + ch(c, d, e); b += f; m1 = g ^ h; f += S0(g) + (h ^ (m1 & m0));
    e += load<u32>(WK, 204); e += S1(b) + ch(b, c, d); a += e; m0 = f ^ g; e += S0(f) + (g ^ (m0 & m1));
    d += load<u32>(WK, 208); d += S1(a) + ch(a, b, c); h += d; m1 = e ^ f; d += S0(e) + (f ^ (m1 & m0));
    c += load<u32>(WK, 212); c += S1(h) + ch(h, a, b); g += c; m0 = d ^ e; c += S0(d) + (e ^ (m0 & m1));
    b += load<u32>(WK, 216); b += S1(g) + ch(g, h, a); f += b; m1 = c ^ d; b += S0(c) + (d ^ (m1 & m0));
    a += load<u32>(WK, 220); a += S1(f) + ch(f, g, h); e += a; m0 = b ^ c; a += S0(b) + (c ^ (m0 & m1));
    h += load<u32>(WK, 224); h += S1(e) + ch(e, f, g); d += h; m1 = a ^ b; h += S0(a) + (b ^ (m1 & m0));
    g += load<u32>(WK, 228); g += S1(d) + ch(d, e, f); c += g; m0 = h ^ a; g += S0(h) + (a ^ (m0 & m1));
    f += load<u32>(WK, 232); f += S1(c) + ch(c, d, e); b += f; m1 = g ^ h; f += S0(g) + (h ^ (m1 & m0));
    e += load<u32>(WK, 236); e += S1(b) + ch(b, c, d); a += e; m0 = f ^ g; e += S0(f) + (g ^ (m0 & m1));
    d += load<u32>(WK, 240); d += S1(a) + ch(a, b, c); h += d; m1 = e ^ f; d += S0(e) + (f ^ (m1 & m0));
    c += load<u32>(WK, 244); c += S1(h) + ch(h, a, b); g += c; m0 = d ^ e; c += S0(d) + (e ^ (m0 & m1));
    b += load<u32>(WK, 248); b += S1(g) + ch(g, h, a); f += b; m1 = c ^ d; b += S0(c) + (d ^ (m1 & m0));
    a += load<u32>(WK, 252); a += S1(f) + ch(f, g, h); e += a; m0 = b ^ c; a += S0(b) + (c ^ (m0 & m1));
    // §6.2.2 step 4: H(i) = H(i-1) + working variables.
    store<u32>(st, a + load<u32>(st, 0), 0); store<u32>(st, b + load<u32>(st, 4), 4);
    store<u32>(st, c + load<u32>(st, 8), 8); store<u32>(st, d + load<u32>(st, 12), 12);
    store<u32>(st, e + load<u32>(st, 16), 16); store<u32>(st, f + load<u32>(st, 20), 20);
    store<u32>(st, g + load<u32>(st, 24), 24); store<u32>(st, h + load<u32>(st, 28), 28);
  }
}

/** Sets the chaining state at `st` (32 bytes) to the initial hash value H(0). */
export function sha256InitState(st: usize): void {
  memory.copy(st, IV, 32);
}

/**
 * Finishes a hash whose first `totalLen − tailLen` bytes are already in `st`:
 * appends the last `tailLen` (< 64) bytes found at `tail`, pads (FIPS 180-4 §5.1.1:
 * 0x80, zeros, 64-bit big-endian bit length) and writes the 32-byte digest to `out`.
 * `tail` must have 128 writable bytes (the padding may need a second block) and may be
 * `TAIL` itself or any caller scratch; `out` may overlap `st` but not `tail`.
 */
export function sha256Finish(st: usize, tail: usize, tailLen: i32, totalLen: u64, out: usize): void {
  store<u8>(tail + tailLen, 0x80);
  const blocks = tailLen < 56 ? 1 : 2;
  const end = blocks << 6;
  memory.fill(tail + <usize>tailLen + 1, 0, <usize>(end - 8 - tailLen - 1));
  store<u64>(tail + end - 8, bswap<u64>(totalLen << 3));
  sha256Blocks(st, tail, blocks);
  for (let i = 0; i < 32; i += 4) store<u32>(out + i, bswap<u32>(load<u32>(st + i)));
}

/**
 * One-shot SHA-256: hashes the `len` bytes at `p` and writes the 32-byte digest to `out`
 * (may overlap the input). Control path (it hashes over-long HMAC keys), so it wipes
 * its static scratch and schedule, which would otherwise keep the key's last bytes.
 */
export function sha256(p: usize, len: i32, out: usize): void {
  sha256InitState(ST);
  const full = len >> 6;
  sha256Blocks(ST, p, full);
  const rest = len & 63;
  memory.copy(TAIL, p + (<usize>full << 6), <usize>rest);
  sha256Finish(ST, TAIL, rest, <u64>len, out);
  wipe(TAIL, 128);
  wipe(ST, 32);
  sha256WipeSchedule();
}

/**
 * Zeroes the static message schedule, which holds the last block's words (plus the
 * round constants) after a compression. Call after compressing key material
 * (hmacSha256Init does) so no copy of a key outlives its SA.
 */
export function sha256WipeSchedule(): void {
  wipe(WK, 256);
}

/** Zeroes the chaining state, tail block and schedule (control path: the last hashed data may be key-derived). */
export function sha256WipeScratch(): void {
  wipe(ST, 32);
  wipe(TAIL, 128);
  wipe(WK, 256);
}
