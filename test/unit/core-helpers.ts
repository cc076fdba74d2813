// Packet builders and an independent ESP opener (node:crypto) for the core's
// unit tests (test/unit/core-*.test.ts).
import { createDecipheriv, randomBytes } from "node:crypto";
import { coreAddr } from "../../host/config/addr.ts";
import { Core, type SaParams } from "../../host/core/core.ts";

export const hexOf = (b: Uint8Array): string => Buffer.from(b).toString("hex");

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

export interface Keys { key: Uint8Array; salt: Uint8Array; hmacKey?: Uint8Array }

export function keysFor(suite: SaParams["suite"], keyLen = 16): Keys {
  return {
    key: randomBytes(suite === "chacha20-poly1305" ? 32 : keyLen),
    salt: randomBytes(4),
    hmacKey: suite === "aes-cbc-hmac-sha256" ? randomBytes(32) : undefined,
  };
}

/**
 * Opens an ESP packet (SPI .. ICV) with node:crypto, independently of the
 * core: returns the decrypted ESP payload INCLUDING padding, pad length and
 * next header, or throws on a bad tag. AEAD suites only.
 */
export function nodeOpenEsp(esp: Uint8Array, suite: "aes-gcm-16" | "chacha20-poly1305", k: Keys, seqHi?: number): Uint8Array {
  const iv = esp.subarray(8, 16);
  const ct = esp.subarray(16, esp.length - 16);
  const tag = esp.subarray(esp.length - 16);
  const nonce = Buffer.concat([k.salt, iv]);
  const aad = seqHi === undefined ? esp.subarray(0, 8) : Buffer.concat([esp.subarray(0, 4), u32(seqHi), esp.subarray(4, 8)]);
  const alg = suite === "chacha20-poly1305" ? "chacha20-poly1305" : `aes-${k.key.length * 8}-gcm`;
  const d = createDecipheriv(alg as any, k.key, nonce, { authTagLength: 16 } as any) as any;
  d.setAAD(aad, { plaintextLength: ct.length });
  d.setAuthTag(tag);
  return Uint8Array.from(Buffer.concat([d.update(ct), d.final()]));
}

export function u32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0);
  return b;
}

/** A core with a given size; the .wasm comes from $WESP_WASM or build/wesp.wasm. */
export function makeCore(opts: Parameters<typeof Core.create>[0] = {}): Promise<Core> {
  return Core.create({ slots: 16, maxSas: 64, maxPolicies: 64, largeWindowBlocks: 2, ...opts });
}

/** Sum of a counter block's drops. */
export function dropSum(c: { drops: Record<string, bigint> }): bigint {
  return Object.values(c.drops).reduce((a, b) => a + b, 0n);
}
