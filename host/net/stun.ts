// STUN messages (RFC 8489): the Binding method, its header, and the handful
// of attributes a WAN port needs to learn its public address and port
// (net2cloud §3, §5.2), plus RFC 5780's three for NAT behaviour discovery
// (CHANGE-REQUEST, RESPONSE-ORIGIN, OTHER-ADDRESS).
//
// Written here, not taken from npm: the one STUN package there ("stun",
// nodertc/stun) has had no release since 2.1.0 (2020), pulls in its own
// buffer and CRC dependencies, and throws on malformed input; the part we
// need is small (one method, eight attributes) and must treat every byte as
// hostile — decodeStun never throws, it returns a reason.
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |0 0|     STUN Message Type     |         Message Length        |  §5
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                   Magic Cookie 0x2112A442                     |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                  Transaction ID (96 bits)                     |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  | attributes: Type(16) Length(16) Value, padded to 4 bytes (§14)|
//
// Message type bits (§5): M11..M0 method, C1 C0 class, interleaved as
// M11-M7 C1 M6-M4 C0 M3-M0.
//
// Attribute order (§14.5, §14.6, §14.7): FINGERPRINT is last, nothing may
// follow it (refused: "after-fingerprint"); after MESSAGE-INTEGRITY only
// MESSAGE-INTEGRITY-SHA256 and FINGERPRINT count, anything else there is
// ignored, as is everything but FINGERPRINT after MESSAGE-INTEGRITY-SHA256.
// Of an attribute that repeats only the first is read (§14). Unknown
// comprehension-required types (0x0000–0x7FFF) are listed in
// `unknownRequired`, for a server's 420 (§6.3.1.1); unknown optional ones are
// skipped.
import { createHmac, timingSafeEqual } from "node:crypto";
import { crc32 } from "node:zlib";
import { put16, put32, u16, u32 } from "../ike/result.ts";

export const STUN_HEADER = 20;
export const MAGIC_COOKIE = 0x2112a442;
export const METHOD_BINDING = 0x001;
/** §14.7: the CRC-32 of the message is XORed with this ("STUN"). */
export const FINGERPRINT_XOR = 0x5354554e;

export const ATTR = {
  MAPPED_ADDRESS: 0x0001,
  CHANGE_REQUEST: 0x0003, // RFC 5780 §7.2
  USERNAME: 0x0006,
  MESSAGE_INTEGRITY: 0x0008,
  ERROR_CODE: 0x0009,
  UNKNOWN_ATTRIBUTES: 0x000a,
  MESSAGE_INTEGRITY_SHA256: 0x001c,
  XOR_MAPPED_ADDRESS: 0x0020,
  SOFTWARE: 0x8022,
  FINGERPRINT: 0x8028,
  RESPONSE_ORIGIN: 0x802b, // RFC 5780 §7.3
  OTHER_ADDRESS: 0x802c, // RFC 5780 §7.4
} as const;
const KNOWN = new Set<number>(Object.values(ATTR));

export type StunClass = "request" | "indication" | "success" | "error";
const CLASSES: readonly StunClass[] = ["request", "indication", "success", "error"];

export interface StunAddress {
  family: 4 | 6;
  /** 4 or 16 bytes. */
  address: Uint8Array;
  port: number;
}

export interface StunMessage {
  cls: StunClass;
  /** 12-bit method (0x001 Binding). */
  method: number;
  /** 12 bytes. */
  transactionId: Uint8Array;
  xorMappedAddress?: StunAddress;
  mappedAddress?: StunAddress;
  /** §14.14: UTF-8, fewer than 128 characters. */
  software?: string;
  /** §14.3: short-term credential user name (UTF-8, < 513 bytes). */
  username?: string;
  /** §14.8: class·100 + number, 300..699; the reason phrase is UTF-8, < 128 characters. */
  errorCode?: { code: number; reason: string };
  /** §14.9: the attribute types a request carried that the responder did not understand. */
  unknownAttributes?: number[];
  /** RFC 5780 §7.2: ask for the response from the other address and/or port. */
  changeRequest?: { ip: boolean; port: boolean };
  /** RFC 5780 §7.3: where the response was sent from. */
  responseOrigin?: StunAddress;
  /** RFC 5780 §7.4: the server's other address and port (behaviour discovery). */
  otherAddress?: StunAddress;
}

export const STUN_DECODE_REASONS = [
  "short", // fewer than 20 bytes
  "not-stun", // first two bits not zero, or no magic cookie (§5)
  "length", // Message Length not a multiple of 4 or not the datagram's (§5, §6.3)
  "attr-truncated", // an attribute header or value runs past the end (§14)
  "after-fingerprint", // an attribute after FINGERPRINT (§14.7)
  "fingerprint", // FINGERPRINT wrong length or CRC (§14.7)
  "bad-address", // (XOR-)MAPPED-ADDRESS: unknown family or wrong length (§14.1, §14.2)
  "bad-error-code", // ERROR-CODE: short, class not 3..6, number ≥ 100 (§14.8)
  "bad-unknown-attributes", // UNKNOWN-ATTRIBUTES: odd length (§14.9)
  "bad-text", // SOFTWARE/USERNAME/reason: not UTF-8 or too long
  "bad-integrity", // MESSAGE-INTEGRITY(-SHA256) of the wrong length (§14.5, §14.6)
  "bad-change-request", // CHANGE-REQUEST not 4 bytes (RFC 5780 §7.2)
] as const;
export type StunDecodeReason = (typeof STUN_DECODE_REASONS)[number];

/** Where a message's integrity attribute sits, for verifyIntegrity. */
export interface IntegrityRef {
  kind: "sha1" | "sha256";
  /** Offset of the attribute's header in the message. */
  offset: number;
  /** Length of its value (20 for SHA-1; 16..32 for SHA-256, §14.6). */
  length: number;
}

export interface DecodedStun {
  message: StunMessage;
  /** Comprehension-required attribute types this codec does not know, in order, once each. */
  unknownRequired: number[];
  /** A FINGERPRINT was present (and, since the message was accepted, correct). */
  fingerprint: boolean;
  /** The first integrity attribute that counts (SHA-256 preferred, §9.1.3), if any. */
  integrity?: IntegrityRef;
}

export type StunDecodeResult =
  | { ok: true; value: DecodedStun }
  | { ok: false; reason: StunDecodeReason; detail: string };

const fail = (reason: StunDecodeReason, detail: string): StunDecodeResult => ({ ok: false, reason, detail });
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const enc = new TextEncoder();

/** True when `b` looks like a STUN message: top two bits zero, magic cookie, length consistent (RFC 7983 §7 style demux). */
export function isStun(b: Uint8Array): boolean {
  return b.length >= STUN_HEADER && (b[0] & 0xc0) === 0 && u32(b, 4) === MAGIC_COOKIE &&
    u16(b, 2) + STUN_HEADER === b.length && (b.length & 3) === 0;
}

/** The 16-bit message type of (method, class) (§5). */
export function messageType(method: number, cls: StunClass): number {
  const c = CLASSES.indexOf(cls);
  return (method & 0xf) | ((method & 0x70) << 1) | ((method & 0xf80) << 2) | ((c & 1) << 4) | ((c & 2) << 7);
}

function splitType(t: number): { method: number; cls: StunClass } {
  const method = (t & 0xf) | ((t >> 1) & 0x70) | ((t >> 2) & 0xf80);
  return { method, cls: CLASSES[((t >> 4) & 1) | ((t >> 7) & 2)] };
}

function text(b: Uint8Array, maxBytes: number, maxChars: number): string | undefined {
  if (b.length > maxBytes) return undefined;
  let s: string;
  try {
    s = utf8.decode(b);
  } catch {
    return undefined;
  }
  return [...s].length < maxChars ? s : undefined;
}

/** §14.1/§14.2: family, port, address; XORed with the cookie (and transaction ID for IPv6) when `xor`. */
function readAddress(v: Uint8Array, xor: boolean, head: Uint8Array): StunAddress | undefined {
  if (v.length < 4) return undefined;
  const fam = v[1];
  const n = fam === 1 ? 4 : fam === 2 ? 16 : 0;
  if (n === 0 || v.length !== 4 + n) return undefined;
  const address = v.slice(4, 4 + n);
  let port = u16(v, 2);
  if (xor) {
    port ^= MAGIC_COOKIE >>> 16;
    for (let i = 0; i < n; i++) address[i] ^= head[4 + i];
  }
  return { family: fam === 1 ? 4 : 6, address, port };
}

/** Reads one STUN message from a whole UDP datagram. Never throws. */
export function decodeStun(b: Uint8Array): StunDecodeResult {
  if (b.length < STUN_HEADER) return fail("short", `${b.length} bytes, a header is 20`);
  if ((b[0] & 0xc0) !== 0 || u32(b, 4) !== MAGIC_COOKIE) return fail("not-stun", "first two bits or magic cookie wrong");
  const len = u16(b, 2);
  if ((len & 3) !== 0 || len + STUN_HEADER !== b.length) return fail("length", `Message Length ${len}, datagram ${b.length}`);
  const { method, cls } = splitType(u16(b, 0));
  const message: StunMessage = { cls, method, transactionId: b.slice(8, 20) };
  const out: DecodedStun = { message, unknownRequired: [], fingerprint: false };
  const seen = new Set<number>();
  // 0: reading everything; 1: after MESSAGE-INTEGRITY; 2: after MESSAGE-INTEGRITY-SHA256.
  let stage = 0;
  for (let o = STUN_HEADER; o < b.length; ) {
    if (out.fingerprint) return fail("after-fingerprint", `attribute at ${o}`);
    if (o + 4 > b.length) return fail("attr-truncated", `attribute header at ${o}`);
    const type = u16(b, o), alen = u16(b, o + 2);
    const next = o + 4 + ((alen + 3) & ~3);
    if (next > b.length) return fail("attr-truncated", `attribute 0x${type.toString(16)} at ${o} claims ${alen} bytes`);
    const v = b.subarray(o + 4, o + 4 + alen);
    const counts = stage === 0 || type === ATTR.FINGERPRINT || (stage === 1 && type === ATTR.MESSAGE_INTEGRITY_SHA256);
    if (counts) {
      const bad = readAttribute(b, o, type, v, out, seen);
      if (bad) return bad;
      if (type === ATTR.MESSAGE_INTEGRITY && stage === 0) stage = 1;
      if (type === ATTR.MESSAGE_INTEGRITY_SHA256) stage = 2;
    }
    o = next;
  }
  return { ok: true, value: out };
}

/** One attribute into `out`; returns a refusal or undefined. */
function readAttribute(
  b: Uint8Array, o: number, type: number, v: Uint8Array, out: DecodedStun, seen: Set<number>,
): StunDecodeResult | undefined {
  const m = out.message;
  if (type === ATTR.FINGERPRINT) {
    if (v.length !== 4) return fail("fingerprint", `length ${v.length}`);
    if ((fingerprintOf(b, o) ^ u32(v, 0)) !== 0) return fail("fingerprint", "CRC-32 does not match");
    out.fingerprint = true;
    return undefined;
  }
  const first = !seen.has(type);
  seen.add(type);
  if (!first) return undefined; // §14: only the first occurrence is processed
  switch (type) {
    case ATTR.XOR_MAPPED_ADDRESS:
    case ATTR.MAPPED_ADDRESS:
    case ATTR.RESPONSE_ORIGIN:
    case ATTR.OTHER_ADDRESS: {
      const a = readAddress(v, type === ATTR.XOR_MAPPED_ADDRESS, b);
      if (!a) return fail("bad-address", `attribute 0x${type.toString(16)} at ${o}`);
      if (type === ATTR.XOR_MAPPED_ADDRESS) m.xorMappedAddress = a;
      else if (type === ATTR.MAPPED_ADDRESS) m.mappedAddress = a;
      else if (type === ATTR.RESPONSE_ORIGIN) m.responseOrigin = a;
      else m.otherAddress = a;
      return undefined;
    }
    case ATTR.CHANGE_REQUEST: {
      // Flags A (0x4: change IP) and B (0x2: change port) in the last byte; the rest is ignored.
      if (v.length !== 4) return fail("bad-change-request", `length ${v.length}`);
      m.changeRequest = { ip: (v[3] & 4) !== 0, port: (v[3] & 2) !== 0 };
      return undefined;
    }
    case ATTR.SOFTWARE:
    case ATTR.USERNAME: {
      const s = type === ATTR.SOFTWARE ? text(v, 763, 128) : text(v, 512, Infinity);
      if (s === undefined) return fail("bad-text", `attribute 0x${type.toString(16)} at ${o}`);
      if (type === ATTR.SOFTWARE) m.software = s;
      else m.username = s;
      return undefined;
    }
    case ATTR.ERROR_CODE: {
      if (v.length < 4) return fail("bad-error-code", `length ${v.length}`);
      const cls = v[2] & 7, num = v[3];
      if (cls < 3 || cls > 6 || num > 99) return fail("bad-error-code", `class ${cls} number ${num}`);
      const reason = text(v.subarray(4), 763, 128);
      if (reason === undefined) return fail("bad-text", "ERROR-CODE reason phrase");
      m.errorCode = { code: cls * 100 + num, reason };
      return undefined;
    }
    case ATTR.UNKNOWN_ATTRIBUTES: {
      if (v.length & 1) return fail("bad-unknown-attributes", `length ${v.length}`);
      m.unknownAttributes = [];
      for (let i = 0; i < v.length; i += 2) m.unknownAttributes.push(u16(v, i));
      return undefined;
    }
    case ATTR.MESSAGE_INTEGRITY:
    case ATTR.MESSAGE_INTEGRITY_SHA256: {
      const sha1 = type === ATTR.MESSAGE_INTEGRITY;
      if (sha1 ? v.length !== 20 : v.length < 16 || v.length > 32 || (v.length & 3) !== 0) {
        return fail("bad-integrity", `attribute 0x${type.toString(16)} length ${v.length}`);
      }
      // §9.1.3: with both present, the SHA-256 one is the one to check.
      if (!out.integrity || !sha1) out.integrity = { kind: sha1 ? "sha1" : "sha256", offset: o, length: v.length };
      return undefined;
    }
    default:
      if (type < 0x8000 && !KNOWN.has(type)) out.unknownRequired.push(type);
      return undefined;
  }
}

/**
 * §14.7: CRC-32 of the message up to the FINGERPRINT attribute at `at`, the
 * header's length already counting that attribute, XORed with 0x5354554e.
 */
function fingerprintOf(b: Uint8Array, at: number): number {
  const head = b.slice(0, at);
  put16(head, 2, at + 8 - STUN_HEADER);
  return (crc32(head) ^ FINGERPRINT_XOR) >>> 0;
}

/** §14.5/§14.6: the HMAC over the message up to the integrity attribute at `at`, length counting up to its end. */
function integrityOf(b: Uint8Array, at: number, kind: "sha1" | "sha256", valueLen: number, key: Uint8Array): Uint8Array {
  const head = b.slice(0, at);
  put16(head, 2, at + 4 + valueLen - STUN_HEADER);
  return createHmac(kind === "sha1" ? "sha1" : "sha256", key).update(head).digest().subarray(0, valueLen);
}

/**
 * Checks the integrity attribute a decode found, with the short-term
 * credential `key` (§9.1.1: the password, OpaqueString-processed — here taken
 * as given). Constant-time compare. False when there is none.
 */
export function verifyIntegrity(b: Uint8Array, d: DecodedStun, key: Uint8Array): boolean {
  const i = d.integrity;
  if (!i || i.offset + 4 + i.length > b.length) return false;
  const want = integrityOf(b, i.offset, i.kind, i.length, key);
  return timingSafeEqual(want, b.subarray(i.offset + 4, i.offset + 4 + i.length));
}

export interface EncodeOptions {
  /** Short-term credential (§9.1): adds MESSAGE-INTEGRITY (sha1) or MESSAGE-INTEGRITY-SHA256. */
  integrity?: { key: Uint8Array; kind: "sha1" | "sha256" };
  /** Adds FINGERPRINT (§14.7), last. */
  fingerprint?: boolean;
}

function attr(type: number, v: Uint8Array): Uint8Array {
  const a = new Uint8Array(4 + ((v.length + 3) & ~3));
  put16(a, 0, type);
  put16(a, 2, v.length);
  a.set(v, 4);
  return a;
}

function addressValue(a: StunAddress, xor: boolean, tid: Uint8Array): Uint8Array {
  const n = a.family === 4 ? 4 : 16;
  const v = new Uint8Array(4 + n);
  v[1] = a.family === 4 ? 1 : 2;
  put16(v, 2, xor ? a.port ^ (MAGIC_COOKIE >>> 16) : a.port);
  v.set(a.address.subarray(0, n), 4);
  if (xor) {
    const mask = new Uint8Array(16);
    put32(mask, 0, MAGIC_COOKIE);
    mask.set(tid, 4);
    for (let i = 0; i < n; i++) v[4 + i] ^= mask[i];
  }
  return v;
}

/** The wire form of `m`. The caller keeps the texts within their limits (§14.3, §14.8, §14.14). */
export function encodeStun(m: StunMessage, opts: EncodeOptions = {}): Uint8Array {
  const parts: Uint8Array[] = [];
  const tid = m.transactionId;
  // SOFTWARE first, as in RFC 5769's samples, so they can be compared byte for byte.
  if (m.software !== undefined) parts.push(attr(ATTR.SOFTWARE, enc.encode(m.software)));
  if (m.mappedAddress) parts.push(attr(ATTR.MAPPED_ADDRESS, addressValue(m.mappedAddress, false, tid)));
  if (m.xorMappedAddress) parts.push(attr(ATTR.XOR_MAPPED_ADDRESS, addressValue(m.xorMappedAddress, true, tid)));
  if (m.changeRequest) parts.push(attr(ATTR.CHANGE_REQUEST, Uint8Array.of(0, 0, 0, (m.changeRequest.ip ? 4 : 0) | (m.changeRequest.port ? 2 : 0))));
  if (m.responseOrigin) parts.push(attr(ATTR.RESPONSE_ORIGIN, addressValue(m.responseOrigin, false, tid)));
  if (m.otherAddress) parts.push(attr(ATTR.OTHER_ADDRESS, addressValue(m.otherAddress, false, tid)));
  if (m.username !== undefined) parts.push(attr(ATTR.USERNAME, enc.encode(m.username)));
  if (m.errorCode) {
    const r = enc.encode(m.errorCode.reason);
    const v = new Uint8Array(4 + r.length);
    v[2] = Math.floor(m.errorCode.code / 100) & 7;
    v[3] = m.errorCode.code % 100;
    v.set(r, 4);
    parts.push(attr(ATTR.ERROR_CODE, v));
  }
  if (m.unknownAttributes) {
    const v = new Uint8Array(2 * m.unknownAttributes.length);
    m.unknownAttributes.forEach((t, i) => put16(v, 2 * i, t));
    parts.push(attr(ATTR.UNKNOWN_ATTRIBUTES, v));
  }
  const body = parts.reduce((n, p) => n + p.length, 0);
  const miLen = opts.integrity ? (opts.integrity.kind === "sha1" ? 20 : 32) : 0;
  const total = STUN_HEADER + body + (miLen ? 4 + miLen : 0) + (opts.fingerprint ? 8 : 0);
  const b = new Uint8Array(total);
  put16(b, 0, messageType(m.method, m.cls));
  put16(b, 2, total - STUN_HEADER);
  put32(b, 4, MAGIC_COOKIE);
  b.set(tid.subarray(0, 12), 8);
  let o = STUN_HEADER;
  for (const p of parts) {
    b.set(p, o);
    o += p.length;
  }
  if (opts.integrity) {
    const type = opts.integrity.kind === "sha1" ? ATTR.MESSAGE_INTEGRITY : ATTR.MESSAGE_INTEGRITY_SHA256;
    b.set(attr(type, integrityOf(b, o, opts.integrity.kind, miLen, opts.integrity.key)), o);
    o += 4 + miLen;
  }
  if (opts.fingerprint) {
    put16(b, o, ATTR.FINGERPRINT);
    put16(b, o + 2, 4);
    put32(b, o + 4, fingerprintOf(b, o));
  }
  return b;
}
