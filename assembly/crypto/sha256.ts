// SHA-256 (FIPS 180-4 §6.2), the hash under HMAC-SHA-256-128 (RFC 4868).
//
// The compression function is fully unrolled: the eight working variables and
// the sixteen-word message schedule stay in WASM locals (registers), the round
// constants are immediates, and each round renames the variables instead of
// shifting them (round t uses a..h rotated right by t mod 8). The 112 round
// lines below follow one pattern, FIPS 180-4 §6.2.2 step 3:
//     T1 = h + Σ1(e) + Ch(e,f,g) + K[t] + W[t];  d += T1;  h = T1 + Σ0(a) + Maj(a,b,c)
// with W[t] for t ≥ 16 computed in place in a 16-word ring (§6.2.2 step 1):
//     W[t mod 16] += σ1(W[t-2]) + W[t-7] + σ0(W[t-15])
// The cross-test against @noble/hashes (test/unit/crypto-sha256.test.ts) is the
// independent reference for every length 0..3000.
//
// Constant time: only 32-bit adds, rotates, shifts and boolean ops on the data;
// no table is indexed by data and no branch depends on it.
//
// Chaining state layout (used by hmac_sha256.ts, which stores two of them):
//   ┌────┬────┬────┬────┬────┬────┬────┬────┐
//   │ H0 │ H1 │ H2 │ H3 │ H4 │ H5 │ H6 │ H7 │  8 × u32, host (little-endian) order,
//   └────┴────┴────┴────┴────┴────┴────┴────┘  32 bytes; the digest is the same words big-endian.

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

// FIPS 180-4 §4.1.2 functions (4.2 – 4.7).
// @ts-ignore: decorator
@inline function S0(x: u32): u32 { return rotr<u32>(x, 2) ^ rotr<u32>(x, 13) ^ rotr<u32>(x, 22); }
// @ts-ignore: decorator
@inline function S1(x: u32): u32 { return rotr<u32>(x, 6) ^ rotr<u32>(x, 11) ^ rotr<u32>(x, 25); }
// @ts-ignore: decorator
@inline function s0(x: u32): u32 { return rotr<u32>(x, 7) ^ rotr<u32>(x, 18) ^ (x >>> 3); }
// @ts-ignore: decorator
@inline function s1(x: u32): u32 { return rotr<u32>(x, 17) ^ rotr<u32>(x, 19) ^ (x >>> 10); }
// Ch and Maj in their three-operation forms (equal to §4.1.2's definitions).
// @ts-ignore: decorator
@inline function ch(x: u32, y: u32, z: u32): u32 { return z ^ (x & (y ^ z)); }
// @ts-ignore: decorator
@inline function maj(x: u32, y: u32, z: u32): u32 { return (x & y) | (z & (x | y)); }
// Message words are big-endian (FIPS 180-4 §3.1).
// @ts-ignore: decorator
@inline function be32(p: usize, off: usize): u32 { return bswap<u32>(load<u32>(p + off)); }

/**
 * Compresses `nBlocks` consecutive 64-byte blocks at `p` (64·nBlocks bytes) into the
 * chaining state at `st` (32 bytes, layout above). `p` needs no alignment.
 */
export function sha256Blocks(st: usize, p: usize, nBlocks: i32): void {
  let a = load<u32>(st, 0), b = load<u32>(st, 4), c = load<u32>(st, 8), d = load<u32>(st, 12);
  let e = load<u32>(st, 16), f = load<u32>(st, 20), g = load<u32>(st, 24), h = load<u32>(st, 28);
  for (let n = 0; n < nBlocks; n++, p += 64) {
    const a0 = a, b0 = b, c0 = c, d0 = d, e0 = e, f0 = f, g0 = g, h0 = h;
    let w0 = be32(p, 0), w1 = be32(p, 4), w2 = be32(p, 8), w3 = be32(p, 12);
    let w4 = be32(p, 16), w5 = be32(p, 20), w6 = be32(p, 24), w7 = be32(p, 28);
    let w8 = be32(p, 32), w9 = be32(p, 36), w10 = be32(p, 40), w11 = be32(p, 44);
    let w12 = be32(p, 48), w13 = be32(p, 52), w14 = be32(p, 56), w15 = be32(p, 60);
    h += S1(e) + ch(e, f, g) + 0x428a2f98 + w0; d += h; h += S0(a) + maj(a, b, c);
    g += S1(d) + ch(d, e, f) + 0x71374491 + w1; c += g; g += S0(h) + maj(h, a, b);
    f += S1(c) + ch(c, d, e) + 0xb5c0fbcf + w2; b += f; f += S0(g) + maj(g, h, a);
    e += S1(b) + ch(b, c, d) + 0xe9b5dba5 + w3; a += e; e += S0(f) + maj(f, g, h);
    d += S1(a) + ch(a, b, c) + 0x3956c25b + w4; h += d; d += S0(e) + maj(e, f, g);
    c += S1(h) + ch(h, a, b) + 0x59f111f1 + w5; g += c; c += S0(d) + maj(d, e, f);
    b += S1(g) + ch(g, h, a) + 0x923f82a4 + w6; f += b; b += S0(c) + maj(c, d, e);
    a += S1(f) + ch(f, g, h) + 0xab1c5ed5 + w7; e += a; a += S0(b) + maj(b, c, d);
    h += S1(e) + ch(e, f, g) + 0xd807aa98 + w8; d += h; h += S0(a) + maj(a, b, c);
    g += S1(d) + ch(d, e, f) + 0x12835b01 + w9; c += g; g += S0(h) + maj(h, a, b);
    f += S1(c) + ch(c, d, e) + 0x243185be + w10; b += f; f += S0(g) + maj(g, h, a);
    e += S1(b) + ch(b, c, d) + 0x550c7dc3 + w11; a += e; e += S0(f) + maj(f, g, h);
    d += S1(a) + ch(a, b, c) + 0x72be5d74 + w12; h += d; d += S0(e) + maj(e, f, g);
    c += S1(h) + ch(h, a, b) + 0x80deb1fe + w13; g += c; c += S0(d) + maj(d, e, f);
    b += S1(g) + ch(g, h, a) + 0x9bdc06a7 + w14; f += b; b += S0(c) + maj(c, d, e);
    a += S1(f) + ch(f, g, h) + 0xc19bf174 + w15; e += a; a += S0(b) + maj(b, c, d);
    w0 += s1(w14) + w9 + s0(w1);
    h += S1(e) + ch(e, f, g) + 0xe49b69c1 + w0; d += h; h += S0(a) + maj(a, b, c);
    w1 += s1(w15) + w10 + s0(w2);
    g += S1(d) + ch(d, e, f) + 0xefbe4786 + w1; c += g; g += S0(h) + maj(h, a, b);
    w2 += s1(w0) + w11 + s0(w3);
    f += S1(c) + ch(c, d, e) + 0x0fc19dc6 + w2; b += f; f += S0(g) + maj(g, h, a);
    w3 += s1(w1) + w12 + s0(w4);
    e += S1(b) + ch(b, c, d) + 0x240ca1cc + w3; a += e; e += S0(f) + maj(f, g, h);
    w4 += s1(w2) + w13 + s0(w5);
    d += S1(a) + ch(a, b, c) + 0x2de92c6f + w4; h += d; d += S0(e) + maj(e, f, g);
    w5 += s1(w3) + w14 + s0(w6);
    c += S1(h) + ch(h, a, b) + 0x4a7484aa + w5; g += c; c += S0(d) + maj(d, e, f);
    w6 += s1(w4) + w15 + s0(w7);
    b += S1(g) + ch(g, h, a) + 0x5cb0a9dc + w6; f += b; b += S0(c) + maj(c, d, e);
    w7 += s1(w5) + w0 + s0(w8);
    a += S1(f) + ch(f, g, h) + 0x76f988da + w7; e += a; a += S0(b) + maj(b, c, d);
    w8 += s1(w6) + w1 + s0(w9);
    h += S1(e) + ch(e, f, g) + 0x983e5152 + w8; d += h; h += S0(a) + maj(a, b, c);
    w9 += s1(w7) + w2 + s0(w10);
    g += S1(d) + ch(d, e, f) + 0xa831c66d + w9; c += g; g += S0(h) + maj(h, a, b);
    w10 += s1(w8) + w3 + s0(w11);
    f += S1(c) + ch(c, d, e) + 0xb00327c8 + w10; b += f; f += S0(g) + maj(g, h, a);
    w11 += s1(w9) + w4 + s0(w12);
    e += S1(b) + ch(b, c, d) + 0xbf597fc7 + w11; a += e; e += S0(f) + maj(f, g, h);
    w12 += s1(w10) + w5 + s0(w13);
    d += S1(a) + ch(a, b, c) + 0xc6e00bf3 + w12; h += d; d += S0(e) + maj(e, f, g);
    w13 += s1(w11) + w6 + s0(w14);
    c += S1(h) + ch(h, a, b) + 0xd5a79147 + w13; g += c; c += S0(d) + maj(d, e, f);
    w14 += s1(w12) + w7 + s0(w15);
    b += S1(g) + ch(g, h, a) + 0x06ca6351 + w14; f += b; b += S0(c) + maj(c, d, e);
    w15 += s1(w13) + w8 + s0(w0);
    a += S1(f) + ch(f, g, h) + 0x14292967 + w15; e += a; a += S0(b) + maj(b, c, d);
    w0 += s1(w14) + w9 + s0(w1);
    h += S1(e) + ch(e, f, g) + 0x27b70a85 + w0; d += h; h += S0(a) + maj(a, b, c);
    w1 += s1(w15) + w10 + s0(w2);
    g += S1(d) + ch(d, e, f) + 0x2e1b2138 + w1; c += g; g += S0(h) + maj(h, a, b);
    w2 += s1(w0) + w11 + s0(w3);
    f += S1(c) + ch(c, d, e) + 0x4d2c6dfc + w2; b += f; f += S0(g) + maj(g, h, a);
    w3 += s1(w1) + w12 + s0(w4);
    e += S1(b) + ch(b, c, d) + 0x53380d13 + w3; a += e; e += S0(f) + maj(f, g, h);
    w4 += s1(w2) + w13 + s0(w5);
    d += S1(a) + ch(a, b, c) + 0x650a7354 + w4; h += d; d += S0(e) + maj(e, f, g);
    w5 += s1(w3) + w14 + s0(w6);
    c += S1(h) + ch(h, a, b) + 0x766a0abb + w5; g += c; c += S0(d) + maj(d, e, f);
    w6 += s1(w4) + w15 + s0(w7);
    b += S1(g) + ch(g, h, a) + 0x81c2c92e + w6; f += b; b += S0(c) + maj(c, d, e);
    w7 += s1(w5) + w0 + s0(w8);
    a += S1(f) + ch(f, g, h) + 0x92722c85 + w7; e += a; a += S0(b) + maj(b, c, d);
    w8 += s1(w6) + w1 + s0(w9);
    h += S1(e) + ch(e, f, g) + 0xa2bfe8a1 + w8; d += h; h += S0(a) + maj(a, b, c);
    w9 += s1(w7) + w2 + s0(w10);
    g += S1(d) + ch(d, e, f) + 0xa81a664b + w9; c += g; g += S0(h) + maj(h, a, b);
    w10 += s1(w8) + w3 + s0(w11);
    f += S1(c) + ch(c, d, e) + 0xc24b8b70 + w10; b += f; f += S0(g) + maj(g, h, a);
    w11 += s1(w9) + w4 + s0(w12);
    e += S1(b) + ch(b, c, d) + 0xc76c51a3 + w11; a += e; e += S0(f) + maj(f, g, h);
    w12 += s1(w10) + w5 + s0(w13);
    d += S1(a) + ch(a, b, c) + 0xd192e819 + w12; h += d; d += S0(e) + maj(e, f, g);
    w13 += s1(w11) + w6 + s0(w14);
    c += S1(h) + ch(h, a, b) + 0xd6990624 + w13; g += c; c += S0(d) + maj(d, e, f);
    w14 += s1(w12) + w7 + s0(w15);
    b += S1(g) + ch(g, h, a) + 0xf40e3585 + w14; f += b; b += S0(c) + maj(c, d, e);
    w15 += s1(w13) + w8 + s0(w0);
    a += S1(f) + ch(f, g, h) + 0x106aa070 + w15; e += a; a += S0(b) + maj(b, c, d);
    w0 += s1(w14) + w9 + s0(w1);
    h += S1(e) + ch(e, f, g) + 0x19a4c116 + w0; d += h; h += S0(a) + maj(a, b, c);
    w1 += s1(w15) + w10 + s0(w2);
    g += S1(d) + ch(d, e, f) + 0x1e376c08 + w1; c += g; g += S0(h) + maj(h, a, b);
    w2 += s1(w0) + w11 + s0(w3);
    f += S1(c) + ch(c, d, e) + 0x2748774c + w2; b += f; f += S0(g) + maj(g, h, a);
    w3 += s1(w1) + w12 + s0(w4);
    e += S1(b) + ch(b, c, d) + 0x34b0bcb5 + w3; a += e; e += S0(f) + maj(f, g, h);
    w4 += s1(w2) + w13 + s0(w5);
    d += S1(a) + ch(a, b, c) + 0x391c0cb3 + w4; h += d; d += S0(e) + maj(e, f, g);
    w5 += s1(w3) + w14 + s0(w6);
    c += S1(h) + ch(h, a, b) + 0x4ed8aa4a + w5; g += c; c += S0(d) + maj(d, e, f);
    w6 += s1(w4) + w15 + s0(w7);
    b += S1(g) + ch(g, h, a) + 0x5b9cca4f + w6; f += b; b += S0(c) + maj(c, d, e);
    w7 += s1(w5) + w0 + s0(w8);
    a += S1(f) + ch(f, g, h) + 0x682e6ff3 + w7; e += a; a += S0(b) + maj(b, c, d);
    w8 += s1(w6) + w1 + s0(w9);
    h += S1(e) + ch(e, f, g) + 0x748f82ee + w8; d += h; h += S0(a) + maj(a, b, c);
    w9 += s1(w7) + w2 + s0(w10);
    g += S1(d) + ch(d, e, f) + 0x78a5636f + w9; c += g; g += S0(h) + maj(h, a, b);
    w10 += s1(w8) + w3 + s0(w11);
    f += S1(c) + ch(c, d, e) + 0x84c87814 + w10; b += f; f += S0(g) + maj(g, h, a);
    w11 += s1(w9) + w4 + s0(w12);
    e += S1(b) + ch(b, c, d) + 0x8cc70208 + w11; a += e; e += S0(f) + maj(f, g, h);
    w12 += s1(w10) + w5 + s0(w13);
    d += S1(a) + ch(a, b, c) + 0x90befffa + w12; h += d; d += S0(e) + maj(e, f, g);
    w13 += s1(w11) + w6 + s0(w14);
    c += S1(h) + ch(h, a, b) + 0xa4506ceb + w13; g += c; c += S0(d) + maj(d, e, f);
    w14 += s1(w12) + w7 + s0(w15);
    b += S1(g) + ch(g, h, a) + 0xbef9a3f7 + w14; f += b; b += S0(c) + maj(c, d, e);
    w15 += s1(w13) + w8 + s0(w0);
    a += S1(f) + ch(f, g, h) + 0xc67178f2 + w15; e += a; a += S0(b) + maj(b, c, d);
    a += a0; b += b0; c += c0; d += d0; e += e0; f += f0; g += g0; h += h0;
  }
  store<u32>(st, a, 0); store<u32>(st, b, 4); store<u32>(st, c, 8); store<u32>(st, d, 12);
  store<u32>(st, e, 16); store<u32>(st, f, 20); store<u32>(st, g, 24); store<u32>(st, h, 28);
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

/** One-shot SHA-256: hashes the `len` bytes at `p` and writes the 32-byte digest to `out`. */
export function sha256(p: usize, len: i32, out: usize): void {
  sha256InitState(ST);
  const full = len >> 6;
  sha256Blocks(ST, p, full);
  const rest = len & 63;
  memory.copy(TAIL, p + (<usize>full << 6), <usize>rest);
  sha256Finish(ST, TAIL, rest, <u64>len, out);
}
