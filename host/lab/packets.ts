// Packet builders for tests and benchmarks (test/unit/core-*.test.ts,
// test/e2e/io-*.test.ts, bench/workers, bench/io): whole IPv4/IPv6/UDP
// packets from addresses as text, and an IPv4 header alone. Not the data
// path: the core builds and parses packets itself (assembly/); these only
// feed it and the TUN. Kept out of test/ so that benchmarks do not depend on
// the test tree.
import { randomBytes } from "node:crypto";
import { coreAddr } from "../config/addr.ts";

/** RFC 1071 checksum of `b` (with an optional initial sum). */
export function inetChecksum(b: Uint8Array, init = 0): number {
  let s = init;
  for (let i = 0; i + 1 < b.length; i += 2) s += (b[i] << 8) | b[i + 1];
  if (b.length & 1) s += b[b.length - 1] << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

export interface Ip4Opts { src: string; dst: string; proto: number; payload: Uint8Array; ttl?: number; id?: number; tos?: number; df?: boolean }

export function ipv4(o: Ip4Opts): Uint8Array {
  const p = new Uint8Array(20 + o.payload.length);
  const dv = new DataView(p.buffer);
  p[0] = 0x45;
  p[1] = o.tos ?? 0;
  dv.setUint16(2, p.length);
  dv.setUint16(4, o.id ?? 0x1234);
  dv.setUint16(6, o.df ? 0x4000 : 0);
  p[8] = o.ttl ?? 64;
  p[9] = o.proto;
  p.set(coreAddr(o.src).bytes.subarray(0, 4), 12);
  p.set(coreAddr(o.dst).bytes.subarray(0, 4), 16);
  dv.setUint16(10, inetChecksum(p.subarray(0, 20)));
  p.set(o.payload, 20);
  return p;
}

export function ipv6(o: { src: string; dst: string; proto: number; payload: Uint8Array; hop?: number }): Uint8Array {
  const p = new Uint8Array(40 + o.payload.length);
  const dv = new DataView(p.buffer);
  dv.setUint32(0, 0x60000000);
  dv.setUint16(4, o.payload.length);
  p[6] = o.proto;
  p[7] = o.hop ?? 64;
  p.set(coreAddr(o.src).bytes, 8);
  p.set(coreAddr(o.dst).bytes, 24);
  p.set(o.payload, 40);
  return p;
}

/** A UDP header + payload (checksum 0). */
export function udp(sport: number, dport: number, payload: Uint8Array): Uint8Array {
  const u = new Uint8Array(8 + payload.length);
  const dv = new DataView(u.buffer);
  dv.setUint16(0, sport);
  dv.setUint16(2, dport);
  dv.setUint16(4, u.length);
  u.set(payload, 8);
  return u;
}

/** An inner packet: IPv4 or IPv6 UDP between the two addresses with `n` payload bytes. */
export function innerUdp(src: string, dst: string, n: number, sport = 1000, dport = 2000): Uint8Array {
  const body = udp(sport, dport, randomBytes(n));
  return src.includes(":") ? ipv6({ src, dst, proto: 17, payload: body }) : ipv4({ src, dst, proto: 17, payload: body });
}

/** An IPv4 header (RFC 791, IHL 5, DF clear) for `payloadLen` bytes of `proto`. */
export function ipv4Header(src: Uint8Array, dst: Uint8Array, proto: number, payloadLen: number, ttl = 64): Uint8Array {
  const h = new Uint8Array(20);
  const dv = new DataView(h.buffer);
  h[0] = 0x45;
  dv.setUint16(2, 20 + payloadLen);
  dv.setUint16(4, 0x1234);
  h[8] = ttl;
  h[9] = proto;
  h.set(src, 12);
  h.set(dst, 16);
  dv.setUint16(10, inetChecksum(h));
  return h;
}
