// A reference ESP (RFC 4303) for tests: plain, slow and readable, built only on
// @noble/ciphers and @noble/hashes so it shares no code with the WASM core.
// It is the oracle the differential tests hold the core to; it is itself held
// to the published vectors by test/unit/ref-esp-vectors.test.ts.
//
// The ESP packet this file seals and opens (RFC 4303 §2):
//
//   0        4        8             8+iv                         end-icv    end
//   +--------+--------+--------------+--------------------------------+------+
//   |  SPI   | seq lo |  IV (8|16)   | payload | pad | padlen | nh   | ICV  |
//   +--------+--------+--------------+--------------------------------+------+
//                                    |<-------- encrypted ----------->|
//   |<---------- HMAC input (+ seq hi when ESN, §2.2.1) ------------->|
//
// For the AEAD suites the AAD is SPI || [seq hi ||] seq lo (RFC 4106 §5,
// RFC 7634 §2.1) and the nonce is salt || IV (RFC 4106 §4, RFC 7634 §2).
import { gcm, cbc, ecb } from "@noble/ciphers/aes.js";
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";

export type RefSuite = "aes-gcm-16" | "chacha20-poly1305" | "aes-cbc-hmac-sha256-128" | "aes-cbc";
export const REF_SUITES: readonly RefSuite[] = ["aes-gcm-16", "chacha20-poly1305", "aes-cbc-hmac-sha256-128", "aes-cbc"];

export interface RefSa {
  suite: RefSuite;
  /** u32 */
  spi: number;
  /** AES: 16, 24 or 32 bytes; ChaCha20: 32 bytes. */
  key: Uint8Array;
  /** 4 bytes; AEAD suites only (the nonce's fixed part). */
  salt?: Uint8Array;
  /** 32 bytes; aes-cbc-hmac-sha256-128 only (RFC 4868 §2.1.1: key length = hash length). */
  authKey?: Uint8Array;
  /** Extended sequence numbers (RFC 4303 §2.2.1). */
  esn: boolean;
}

export interface SuiteSizes {
  /** explicit IV carried on the wire */
  ivLen: number;
  icvLen: number;
  /** what (payload + pad + 2) must be a multiple of: lcm(cipher block, 4) (§2.4) */
  align: number;
}

export function suiteSizes(suite: RefSuite): SuiteSizes {
  switch (suite) {
    case "aes-gcm-16": return { ivLen: 8, icvLen: 16, align: 4 };
    case "chacha20-poly1305": return { ivLen: 8, icvLen: 16, align: 4 };
    case "aes-cbc-hmac-sha256-128": return { ivLen: 16, icvLen: 16, align: 16 };
    case "aes-cbc": return { ivLen: 16, icvLen: 0, align: 16 };
  }
}

const isAead = (s: RefSuite) => s === "aes-gcm-16" || s === "chacha20-poly1305";

export const u32be = (v: number): Uint8Array => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0);
  return b;
};
export const concat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
};
const rd32 = (b: Uint8Array, o: number) => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(o);

/** The 64-bit sequence number as the high and low 32-bit halves. */
export function seqHalves(seq: bigint): { hi: number; lo: number } {
  return { hi: Number((seq >> 32n) & 0xffffffffn), lo: Number(seq & 0xffffffffn) };
}

/** AEAD AAD: SPI || seq lo, or SPI || seq hi || seq lo with ESN (RFC 4106 §5, RFC 7634 §2.1). */
export function espAad(sa: RefSa, seqLo: number, seqHi: number): Uint8Array {
  return sa.esn ? concat(u32be(sa.spi), u32be(seqHi), u32be(seqLo)) : concat(u32be(sa.spi), u32be(seqLo));
}

function aead(sa: RefSa, iv: Uint8Array, aad: Uint8Array) {
  if (!sa.salt || sa.salt.length !== 4) throw new Error("AEAD SA needs a 4-byte salt");
  const nonce = concat(sa.salt, iv);
  return sa.suite === "aes-gcm-16" ? gcm(sa.key, nonce, aad) : chacha20poly1305(sa.key, nonce, aad);
}

/** HMAC-SHA-256-128 over SPI..ciphertext, then seq hi when ESN (RFC 4303 §2.2.1, RFC 4868 §2.3). */
function icvHmac(sa: RefSa, authed: Uint8Array, seqHi: number): Uint8Array {
  if (!sa.authKey) throw new Error("HMAC SA needs an auth key");
  const input = sa.esn ? concat(authed, u32be(seqHi)) : authed;
  return hmac(sha256, sa.authKey, input).subarray(0, 16);
}

/** Monotonic padding 1, 2, 3, … (RFC 4303 §2.4 default). */
export function monotonicPad(n: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => i + 1);
}

/** The minimum pad length for a payload of `len` bytes under `suite` (§2.4). */
export function minPadLen(suite: RefSuite, len: number): number {
  const { align } = suiteSizes(suite);
  return (align - ((len + 2) % align)) % align;
}

export interface SealArgs {
  /** 64-bit sequence number; the low half goes on the wire, the high half only into AAD/ICV with ESN. */
  seq: bigint;
  /** explicit IV: 8 bytes for AEADs, 16 for CBC */
  iv: Uint8Array;
  /** the data protected (the inner packet in tunnel mode) */
  payload: Uint8Array;
  nextHeader: number;
  /** extra padding beyond the minimum, a multiple of the suite's alignment; pad length stays ≤ 255 */
  extraPad?: number;
  /** negative tests only: these padding bytes instead of 1, 2, 3, … (the caller keeps the alignment) */
  padding?: Uint8Array;
  /** negative tests only: this value in the pad length byte instead of the padding's length */
  padLenByte?: number;
}

/** Seals one ESP packet: returns SPI || seq || IV || ciphertext || ICV. */
export function sealEsp(sa: RefSa, a: SealArgs): Uint8Array {
  const { ivLen, align } = suiteSizes(sa.suite);
  if (a.iv.length !== ivLen) throw new Error(`IV must be ${ivLen} bytes`);
  const extra = a.extraPad ?? 0;
  if (extra % align !== 0) throw new Error(`extraPad must be a multiple of ${align}`);
  const padLen = minPadLen(sa.suite, a.payload.length) + extra;
  if (padLen > 255) throw new Error("pad length over 255");
  const padding = a.padding ?? monotonicPad(padLen);
  const plain = concat(a.payload, padding, Uint8Array.of(a.padLenByte ?? padding.length, a.nextHeader));
  if ((plain.length % align) !== 0) throw new Error("padding breaks the alignment");
  const { hi, lo } = seqHalves(a.seq);
  const head = concat(u32be(sa.spi), u32be(lo), a.iv);
  if (isAead(sa.suite)) return concat(head, aead(sa, a.iv, espAad(sa, lo, hi)).encrypt(plain));
  const ct = cbc(sa.key, a.iv, { disablePadding: true }).encrypt(plain);
  if (sa.suite === "aes-cbc") return concat(head, ct);
  const authed = concat(head, ct);
  return concat(authed, icvHmac(sa, authed, hi));
}

export type OpenResult =
  | { ok: true; spi: number; seqLo: number; iv: Uint8Array; payload: Uint8Array; nextHeader: number; padding: Uint8Array }
  | { ok: false; reason: "malformed" | "auth" | "padding" };

/**
 * Opens one ESP packet (SPI..ICV). `seqHi` is the high half the receiver infers
 * (RFC 4303 Appendix A); the reference does no replay tracking of its own.
 * Checks, in order: length → ICV (before any decryption) → padding (§2.4).
 */
export function openEsp(sa: RefSa, esp: Uint8Array, seqHi = 0): OpenResult {
  const { ivLen, icvLen, align } = suiteSizes(sa.suite);
  const ctLen = esp.length - 8 - ivLen - icvLen;
  // AEAD: at least pad length + next header; CBC: whole blocks, at least one.
  if (ctLen < 2 || (align === 16 && (ctLen === 0 || ctLen % 16 !== 0))) return { ok: false, reason: "malformed" };
  const spi = rd32(esp, 0), seqLo = rd32(esp, 4);
  if (spi !== sa.spi >>> 0) return { ok: false, reason: "malformed" };
  const iv = esp.slice(8, 8 + ivLen);
  const ct = esp.subarray(8 + ivLen, 8 + ivLen + ctLen);
  let plain: Uint8Array;
  if (isAead(sa.suite)) {
    try {
      plain = aead(sa, iv, espAad(sa, seqLo, seqHi)).decrypt(esp.subarray(8 + ivLen));
    } catch {
      return { ok: false, reason: "auth" };
    }
  } else {
    if (sa.suite === "aes-cbc-hmac-sha256-128") {
      const want = icvHmac(sa, esp.subarray(0, esp.length - icvLen), seqHi);
      const got = esp.subarray(esp.length - icvLen);
      let diff = 0;
      for (let i = 0; i < 16; i++) diff |= want[i] ^ got[i];
      if (diff !== 0) return { ok: false, reason: "auth" };
    }
    plain = cbc(sa.key, iv, { disablePadding: true }).decrypt(ct);
  }
  const padLen = plain[plain.length - 2], nextHeader = plain[plain.length - 1];
  if (padLen + 2 > plain.length) return { ok: false, reason: "padding" };
  const padding = plain.slice(plain.length - 2 - padLen, plain.length - 2);
  for (let i = 0; i < padLen; i++) if (padding[i] !== i + 1) return { ok: false, reason: "padding" };
  return { ok: true, spi, seqLo, iv, payload: plain.slice(0, plain.length - 2 - padLen), nextHeader, padding };
}

// ---------------------------------------------------------------------------
// Framing: outer IPv4/IPv6 header, optional UDP (RFC 3948), GRE (RFC 2784/2890).
// ---------------------------------------------------------------------------

export const PROTO = { IPIP: 4, TCP: 6, UDP: 17, IPV6: 41, GRE: 47, ESP: 50, ICMP: 1, ICMPV6: 58, NONE: 59 } as const;

/** RFC 1071 Internet checksum of `b`, optionally continuing a partial sum. */
export function inetChecksum(b: Uint8Array, sum = 0): number {
  for (let i = 0; i + 1 < b.length; i += 2) sum += (b[i] << 8) | b[i + 1];
  if (b.length & 1) sum += b[b.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** Dotted or colon text form of a 4- or 16-byte address (as scapy and the SPD take it). */
export function addrText(a: Uint8Array): string {
  if (a.length === 4) return Array.from(a).join(".");
  const w: string[] = [];
  for (let i = 0; i < 16; i += 2) w.push(((a[i] << 8) | a[i + 1]).toString(16));
  return w.join(":");
}

export interface Outer {
  /** 4 bytes (IPv4) or 16 bytes (IPv6); src and dst the same family */
  src: Uint8Array;
  dst: Uint8Array;
  ttl?: number;
  tos?: number;
  /** IPv4 identification */
  id?: number;
  /** IPv4 don't-fragment flag */
  df?: boolean;
  flowLabel?: number;
  /** RFC 3948 UDP encapsulation */
  udp?: { sport: number; dport: number };
}

/** An IPv4 header (no options) with checksum (RFC 791 §3.1), total length `20 + payloadLen`. */
export function ipv4Header(o: Outer, proto: number, payloadLen: number): Uint8Array {
  const h = new Uint8Array(20);
  const v = new DataView(h.buffer);
  h[0] = 0x45; h[1] = o.tos ?? 0;
  v.setUint16(2, 20 + payloadLen); v.setUint16(4, o.id ?? 0);
  v.setUint16(6, o.df ? 0x4000 : 0);
  h[8] = o.ttl ?? 64; h[9] = proto;
  h.set(o.src, 12); h.set(o.dst, 16);
  v.setUint16(10, inetChecksum(h));
  return h;
}

/** An IPv6 fixed header (RFC 8200 §3), payload length `payloadLen`. */
export function ipv6Header(o: Outer, nh: number, payloadLen: number): Uint8Array {
  const h = new Uint8Array(40);
  const v = new DataView(h.buffer);
  v.setUint32(0, (6 << 28) | ((o.tos ?? 0) << 20) | ((o.flowLabel ?? 0) & 0xfffff));
  v.setUint16(4, payloadLen); h[6] = nh; h[7] = o.ttl ?? 64;
  h.set(o.src, 8); h.set(o.dst, 24);
  return h;
}

/** UDP checksum over the IPv6 pseudo-header (RFC 8200 §8.1); IPv4 sends zero (RFC 3948 §2.1). */
function udpChecksum6(src: Uint8Array, dst: Uint8Array, udp: Uint8Array): number {
  const pseudo = concat(src, dst, u32be(udp.length), u32be(PROTO.UDP));
  const c = inetChecksum(concat(pseudo, udp));
  return c === 0 ? 0xffff : c;
}

/** Wraps `payload` (protocol `proto`) in the outer header(s): IP [/ UDP]. */
export function frame(o: Outer, proto: number, payload: Uint8Array): Uint8Array {
  let body = payload, p = proto;
  if (o.udp) {
    const udp = concat(new Uint8Array(8), payload);
    const v = new DataView(udp.buffer);
    v.setUint16(0, o.udp.sport); v.setUint16(2, o.udp.dport); v.setUint16(4, udp.length);
    if (o.src.length === 16) v.setUint16(6, udpChecksum6(o.src, o.dst, udp));
    body = udp; p = PROTO.UDP;
  }
  const ip = o.src.length === 4 ? ipv4Header(o, p, body.length) : ipv6Header(o, p, body.length);
  return concat(ip, body);
}

export interface Unframed {
  v: 4 | 6;
  src: Uint8Array;
  dst: Uint8Array;
  ttl: number;
  tos: number;
  /** the protocol after IP (and after UDP when encapsulated): 50 for ESP */
  proto: number;
  udp?: { sport: number; dport: number; checksum: number };
  /** what follows the outer header(s) */
  payload: Uint8Array;
}

/**
 * Parses an outer IP [/ UDP] header and checks it strictly: version, IHL 5,
 * total/payload length equal to the buffer, IPv4 header checksum, UDP length,
 * IPv6 UDP checksum. Throws with the field at fault.
 */
export function unframe(pkt: Uint8Array): Unframed {
  const v = new DataView(pkt.buffer, pkt.byteOffset, pkt.byteLength);
  const ver = pkt[0] >> 4;
  let r: Unframed;
  if (ver === 4) {
    if (pkt[0] !== 0x45) throw new Error("outer IPv4: IHL is not 5");
    if (v.getUint16(2) !== pkt.length) throw new Error(`outer IPv4: total length ${v.getUint16(2)} != ${pkt.length}`);
    if (inetChecksum(pkt.subarray(0, 20)) !== 0) throw new Error("outer IPv4: bad header checksum");
    r = { v: 4, src: pkt.slice(12, 16), dst: pkt.slice(16, 20), ttl: pkt[8], tos: pkt[1], proto: pkt[9], payload: pkt.subarray(20) };
  } else if (ver === 6) {
    if (v.getUint16(4) !== pkt.length - 40) throw new Error(`outer IPv6: payload length ${v.getUint16(4)} != ${pkt.length - 40}`);
    r = { v: 6, src: pkt.slice(8, 24), dst: pkt.slice(24, 40), ttl: pkt[7], tos: (v.getUint32(0) >>> 20) & 0xff, proto: pkt[6], payload: pkt.subarray(40) };
  } else throw new Error(`outer: IP version ${ver}`);
  if (r.proto === PROTO.UDP) {
    const u = r.payload;
    const uv = new DataView(u.buffer, u.byteOffset, u.byteLength);
    if (u.length < 8 || uv.getUint16(4) !== u.length) throw new Error("outer UDP: bad length");
    const checksum = uv.getUint16(6);
    if (r.v === 6) {
      const z = u.slice(); z[6] = 0; z[7] = 0;
      if (checksum !== udpChecksum6(r.src, r.dst, z)) throw new Error("outer UDP/IPv6: bad checksum");
    }
    r.udp = { sport: uv.getUint16(0), dport: uv.getUint16(2), checksum };
    r.proto = PROTO.ESP;
    r.payload = u.subarray(8);
  }
  return r;
}

/** The ESP next header for an inner packet: IPv4-in → 4, IPv6-in → 41. */
export const innerProto = (inner: Uint8Array): number => (inner[0] >> 4 === 6 ? PROTO.IPV6 : PROTO.IPIP);

/**
 * Tunnel mode (and IP-in-IP transport, whose bytes are the same, RFC 2003):
 * outer IP [/ UDP] / ESP(inner). The ESP header goes where the outer protocol says.
 */
export function sealTunnel(sa: RefSa, o: Outer, inner: Uint8Array, seq: bigint, iv: Uint8Array, extraPad = 0): Uint8Array {
  return frame(o, PROTO.ESP, sealEsp(sa, { seq, iv, payload: inner, nextHeader: innerProto(inner), extraPad }));
}

export interface GreOpts {
  /** RFC 2890 §2.1 key, u32 */
  key?: number;
  /** RFC 2890 §2.2 sequence number, u32 */
  seq?: number;
}

/** A GRE header (RFC 2784 §2, RFC 2890): C=0, K and S as asked, version 0; protocol = the inner's EtherType. */
export function greHeader(inner: Uint8Array, g: GreOpts): Uint8Array {
  const h = new Uint8Array(4 + (g.key !== undefined ? 4 : 0) + (g.seq !== undefined ? 4 : 0));
  const v = new DataView(h.buffer);
  v.setUint16(0, (g.key !== undefined ? 0x2000 : 0) | (g.seq !== undefined ? 0x1000 : 0));
  v.setUint16(2, inner[0] >> 4 === 6 ? 0x86dd : 0x0800);
  let o = 4;
  if (g.key !== undefined) { v.setUint32(o, g.key >>> 0); o += 4; }
  if (g.seq !== undefined) v.setUint32(o, g.seq >>> 0);
  return h;
}

/** Transport mode over GRE: outer IP [/ UDP] / ESP(GRE / inner), next header 47. */
export function sealGre(sa: RefSa, o: Outer, inner: Uint8Array, g: GreOpts, seq: bigint, iv: Uint8Array): Uint8Array {
  const payload = concat(greHeader(inner, g), inner);
  return frame(o, PROTO.ESP, sealEsp(sa, { seq, iv, payload, nextHeader: PROTO.GRE }));
}

/** Strips a GRE header (RFC 2784/2890, no checksum, version 0); throws if it is not one. */
export function greStrip(b: Uint8Array): { proto: number; key?: number; seq?: number; inner: Uint8Array } {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const flags = v.getUint16(0);
  if ((flags & 0x8000) !== 0 || (flags & 7) !== 0) throw new Error("GRE: checksum or version set");
  let o = 4;
  const r: { proto: number; key?: number; seq?: number; inner: Uint8Array } = { proto: v.getUint16(2), inner: b };
  if (flags & 0x2000) { r.key = v.getUint32(o); o += 4; }
  if (flags & 0x1000) { r.seq = v.getUint32(o); o += 4; }
  r.inner = b.subarray(o);
  return r;
}

/**
 * Classic transport mode on a whole IPv4 (no options) or IPv6 (no extension
 * headers) packet (RFC 4303 §3.1.1): the IP header stays, its protocol becomes
 * 50 (17 with RFC 3948 UDP, §2.1 of that RFC) and its length (and IPv4
 * checksum) is redone; the old protocol goes into the ESP next header.
 */
export function sealTransport(
  sa: RefSa, ip: Uint8Array, seq: bigint, iv: Uint8Array, udp?: { sport: number; dport: number }, extraPad = 0,
): Uint8Array {
  const six = ip[0] >> 4 === 6;
  if (!six && ip[0] !== 0x45) throw new Error("sealTransport: IPv4 without options only");
  const hl = six ? 40 : 20;
  const esp = sealEsp(sa, { seq, iv, payload: ip.subarray(hl), nextHeader: ip[six ? 6 : 9], extraPad });
  const h = ip.slice(0, hl);
  const v = new DataView(h.buffer);
  const src = six ? h.slice(8, 24) : h.slice(12, 16), dst = six ? h.slice(24, 40) : h.slice(16, 20);
  let body = esp;
  if (udp) {
    body = concat(new Uint8Array(8), esp);
    const u = new DataView(body.buffer);
    u.setUint16(0, udp.sport); u.setUint16(2, udp.dport); u.setUint16(4, body.length);
    if (six) u.setUint16(6, udpChecksum6(src, dst, body));
  }
  const proto = udp ? PROTO.UDP : PROTO.ESP;
  if (six) {
    v.setUint16(4, body.length); h[6] = proto;
  } else {
    v.setUint16(2, 20 + body.length); h[9] = proto; v.setUint16(10, 0);
    v.setUint16(10, inetChecksum(h));
  }
  return concat(h, body);
}

/** The 64-bit sequence number as the 8-byte big-endian explicit IV (RFC 4106 §3.1, RFC 7634 §2). */
export function seqIv(seq: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, seq);
  return b;
}

/**
 * The CBC IV the core derives: AES_K(ivSeed || seq64), the encryption of a
 * per-packet nonce under the SA's key (NIST SP 800-38A Appendix C).
 */
export function cbcIvFromSeed(key: Uint8Array, ivSeed: Uint8Array, seq: bigint): Uint8Array {
  return ecb(key, { disablePadding: true }).encrypt(concat(ivSeed, seqIv(seq)));
}
