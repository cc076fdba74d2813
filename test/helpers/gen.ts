// Seeded random inputs for the differential and fuzz tests: a failure prints
// its seed, and WESP_SEED=<n> replays it.
import { concat, inetChecksum, PROTO, type RefSa, type RefSuite } from "./ref_esp.ts";

/** xoshiro128** (Blackman & Vigna): small, fast, good enough for test inputs. */
export class Rng {
  private s = new Uint32Array(4);
  constructor(readonly seed: number) {
    // splitmix32 to spread the seed over the state
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
  }
  u32(): number {
    const s = this.s;
    const r = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 11);
    return r;
  }
  /** uniform integer in [lo, hi] */
  int(lo: number, hi: number): number {
    return lo + Math.floor((this.u32() / 0x100000000) * (hi - lo + 1));
  }
  bool(p = 0.5): boolean { return this.u32() / 0x100000000 < p; }
  pick<T>(xs: readonly T[]): T { return xs[this.int(0, xs.length - 1)]; }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i += 4) {
      const v = this.u32();
      for (let j = 0; j < 4 && i + j < n; j++) b[i + j] = v >>> (8 * j);
    }
    return b;
  }
  fill(b: Uint8Array): void {
    for (let i = 0; i < b.length; i++) b[i] = this.u32() & 0xff;
  }
}
const rotl = (x: number, k: number) => ((x << k) | (x >>> (32 - k))) >>> 0;

export function seedFromEnv(fallback = Date.now()): number {
  return process.env.WESP_SEED ? Number(process.env.WESP_SEED) : fallback >>> 0;
}

/** Every suite the core offers, with each AES key size (RFC 4106 §8.1 allows 128/192/256). */
export interface SuiteCase { suite: RefSuite; keyLen: number; name: string }
export const SUITE_CASES: readonly SuiteCase[] = [
  { suite: "aes-gcm-16", keyLen: 16, name: "aes-128-gcm" },
  { suite: "aes-gcm-16", keyLen: 24, name: "aes-192-gcm" },
  { suite: "aes-gcm-16", keyLen: 32, name: "aes-256-gcm" },
  { suite: "chacha20-poly1305", keyLen: 32, name: "chacha20-poly1305" },
  { suite: "aes-cbc-hmac-sha256-128", keyLen: 16, name: "aes-128-cbc-hmac-sha256" },
  { suite: "aes-cbc-hmac-sha256-128", keyLen: 32, name: "aes-256-cbc-hmac-sha256" },
  { suite: "aes-cbc", keyLen: 16, name: "aes-128-cbc (no integrity)" },
];

/**
 * A random reference SA for `c`: random SPI (never 0..255, RFC 4303 §2.1
 * reserves them, and never a single set bit, so no one-bit change makes it the
 * RFC 3948 non-ESP marker 0), keys, salt.
 */
export function randomSa(r: Rng, c: SuiteCase, esn: boolean): RefSa {
  let spi = r.int(256, 0xffffffff);
  while ((spi & (spi - 1)) === 0) spi = r.int(256, 0xffffffff);
  return {
    suite: c.suite,
    spi,
    key: r.bytes(c.keyLen),
    salt: c.suite === "aes-gcm-16" || c.suite === "chacha20-poly1305" ? r.bytes(4) : undefined,
    authKey: c.suite === "aes-cbc-hmac-sha256-128" ? r.bytes(32) : undefined,
    esn,
  };
}

/** A 64-bit sequence number: with ESN any high half, often near the 2^32 edges. */
export function randomSeq(r: Rng, esn: boolean): bigint {
  const lo = r.pick([() => r.int(1, 1000), () => r.u32() || 1, () => 0xffffffff - r.int(0, 1000), () => 0xffffffff - r.int(0, 6)])();
  if (!esn) return BigInt(lo);
  const hi = r.pick([() => 0, () => r.int(1, 4), () => r.u32(), () => 0xffffffff])();
  return (BigInt(hi) << 32n) | BigInt(lo);
}

export const v4 = (a: number, b: number, c: number, d: number) => Uint8Array.of(a, b, c, d);
export function v6(r: Rng, prefix = 0x2001_0db8): Uint8Array {
  const a = r.bytes(16);
  new DataView(a.buffer).setUint32(0, prefix);
  return a;
}

/**
 * A well-formed inner IP packet of `len` bytes in total (≥ 28 for IPv4, ≥ 48 for
 * IPv6): a UDP datagram with a random body, or an opaque protocol-253 payload.
 */
export function innerPacket(r: Rng, src: Uint8Array, dst: Uint8Array, len: number): Uint8Array {
  const six = src.length === 16;
  const hl = six ? 40 : 20;
  const udp = r.bool(0.7) && len >= hl + 8;
  const body = r.bytes(len - hl);
  if (udp) {
    const v = new DataView(body.buffer);
    v.setUint16(0, r.int(1024, 65535)); v.setUint16(2, r.int(1, 65535)); v.setUint16(4, body.length); v.setUint16(6, 0);
  }
  const proto = udp ? PROTO.UDP : 253;
  const h = new Uint8Array(hl);
  const v = new DataView(h.buffer);
  if (six) {
    v.setUint32(0, (6 << 28) | r.int(0, 0xfffff)); v.setUint16(4, body.length); h[6] = proto; h[7] = r.int(1, 255);
    h.set(src, 8); h.set(dst, 24);
  } else {
    h[0] = 0x45; v.setUint16(2, len); v.setUint16(4, r.int(0, 65535)); h[8] = r.int(1, 255); h[9] = proto;
    h.set(src, 12); h.set(dst, 16);
    v.setUint16(10, inetChecksum(h));
  }
  return concat(h, body);
}
