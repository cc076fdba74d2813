// Packet mutations for the fuzz tests. Each writes straight into a
// destination view (a ring slot in WASM memory) so the fuzz loop allocates
// nothing per packet on the JS side either.
import type { Rng } from "./gen.ts";

export const MUTATIONS = [
  "none", "bitflip", "bytes", "truncate", "extend", "ip-length", "ihl", "udp-length",
  "spi", "proto", "gre-flags", "zero-length", "huge-length", "garbage", "nat-t-marker", "keepalive",
] as const;
export type Mutation = (typeof MUTATIONS)[number];

/** Offsets of the fields worth lying about, found by a shallow parse of a valid packet. */
interface Fields { ipLen: number; ihl: number; udpLen: number; spi: number; proto: number; gre: number }

function fields(p: Uint8Array, n: number): Fields {
  const f: Fields = { ipLen: -1, ihl: -1, udpLen: -1, spi: -1, proto: -1, gre: -1 };
  if (n < 1) return f;
  const ver = p[0] >> 4;
  let off: number, proto: number;
  if (ver === 4 && n >= 20) { f.ipLen = 2; f.ihl = 0; f.proto = 9; off = (p[0] & 15) * 4; proto = p[9]; }
  else if (ver === 6 && n >= 40) { f.ipLen = 4; f.proto = 6; off = 40; proto = p[6]; }
  else return f;
  if (proto === 17 && n >= off + 8) { f.udpLen = off + 4; off += 8; proto = 50; }
  if (proto === 50 && n >= off + 8) f.spi = off;
  if (proto === 47 && n >= off + 4) f.gre = off;
  return f;
}

const put16 = (b: Uint8Array, o: number, v: number) => { b[o] = v >>> 8; b[o + 1] = v; };

/**
 * Copies `src` into `dst` (dst.length ≥ max), applies mutation `m` and returns
 * the new length (0 ≤ length ≤ max). `spis` are SPIs the core knows, so a
 * "bogus" SPI is sometimes a live one of another SA.
 */
export function mutateInto(r: Rng, m: Mutation, src: Uint8Array, dst: Uint8Array, max: number, spis: readonly number[]): number {
  let n = Math.min(src.length, max);
  dst.set(src.subarray(0, n));
  const f = fields(dst, n);
  switch (m) {
    case "none": break;
    case "bitflip": {
      for (let k = r.int(1, 4); k > 0 && n > 0; k--) dst[r.int(0, n - 1)] ^= 1 << r.int(0, 7);
      break;
    }
    case "bytes": {
      for (let k = r.int(1, 8); k > 0 && n > 0; k--) dst[r.int(0, n - 1)] = r.u32() & 0xff;
      break;
    }
    case "truncate": n = r.int(0, n); break;
    case "extend": {
      const add = Math.min(max - n, r.pick([1, 2, 3, 4, 15, 16, 17, r.int(1, 2000)]));
      for (let i = 0; i < add; i++) dst[n + i] = r.u32() & 0xff;
      n += add;
      break;
    }
    case "ip-length": if (f.ipLen >= 0) put16(dst, f.ipLen, r.pick([0, 1, 19, 20, 39, 40, n - 1, n + 1, n + 100, r.int(0, 0xffff)])); break;
    case "ihl": if (f.ihl >= 0) dst[0] = 0x40 | r.int(0, 15); break;
    case "udp-length": if (f.udpLen >= 0) put16(dst, f.udpLen, r.pick([0, 7, 8, 9, r.int(0, 0xffff)])); break;
    case "spi": {
      if (f.spi < 0) break;
      const spi = r.pick([0, 1, 255, 256, 0xffffffff, r.u32(), spis.length ? r.pick(spis) : 0]);
      dst[f.spi] = spi >>> 24; dst[f.spi + 1] = spi >>> 16; dst[f.spi + 2] = spi >>> 8; dst[f.spi + 3] = spi;
      break;
    }
    case "proto": if (f.proto >= 0) dst[f.proto] = r.pick([4, 41, 47, 50, 17, 6, 1, 59, 0, 255]); break;
    case "gre-flags": if (f.gre >= 0) { dst[f.gre] = r.u32() & 0xff; dst[f.gre + 1] = r.u32() & 0xff; } break;
    case "zero-length": {
      if (f.ipLen >= 0) put16(dst, f.ipLen, 0);
      if (f.udpLen >= 0) put16(dst, f.udpLen, 0);
      break;
    }
    case "huge-length": {
      if (f.ipLen >= 0) put16(dst, f.ipLen, 0xffff);
      if (f.udpLen >= 0) put16(dst, f.udpLen, 0xffff);
      break;
    }
    case "garbage": {
      n = r.pick([0, 1, 4, 8, 20, 40, 60, r.int(0, 200), r.int(0, max)]);
      for (let i = 0; i < n; i++) dst[i] = r.u32() & 0xff;
      if (n > 0 && r.bool()) dst[0] = r.pick([0x45, 0x46, 0x4f, 0x60, 0x00, 0xff]);
      break;
    }
    case "nat-t-marker": {
      // RFC 3948 §2.2: four zero bytes where the SPI would be = IKE, not ESP
      if (f.spi >= 0) { dst[f.spi] = 0; dst[f.spi + 1] = 0; dst[f.spi + 2] = 0; dst[f.spi + 3] = 0; }
      break;
    }
    case "keepalive": {
      // RFC 3948 §2.3: a single 0xFF byte as the UDP payload
      if (f.spi >= 0 && f.udpLen >= 0) {
        dst[f.spi] = 0xff; n = f.spi + 1;
        put16(dst, f.udpLen, 9);
        if (f.ipLen === 2) put16(dst, 2, n);
        else if (f.ipLen === 4) put16(dst, 4, n - 40);
      }
      break;
    }
  }
  return n;
}
