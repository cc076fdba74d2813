// IP addresses and CIDR prefixes, the one module for them in the host (the
// config, the core's 16-byte form, IKE, STUN, the controller, the CLI):
// parsing to network-order bytes, canonical text, endpoints, and the overlap
// test used to refuse ambiguous SPDs. Errors are plain strings (the caller
// adds the field path).

import { isIPv4, isIPv6 } from "node:net";
import type { Address, Family, InterfaceAddress, Prefix } from "./model.ts";

export type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };

/** Parse an IPv4 or IPv6 address (no prefix, no zone index). */
export function parseAddress(text: string): Parsed<Address> {
  const bytes = addressBytes(text);
  if (!bytes) return { ok: false, message: `"${text}" is not an IPv4 or IPv6 address` };
  return { ok: true, value: { text: formatAddress(bytes), family: bytes.length === 4 ? 4 : 6, bytes } };
}

/** The network-order bytes (4 or 16) of an IPv4 or IPv6 address (no prefix, no zone index), null if it is none. */
function addressBytes(text: string): Uint8Array | null {
  const v4 = new Uint8Array(4);
  if (ipv4Into(text, v4, 0)) return v4;
  if (isIPv6(text) && !text.includes("%")) return parseIPv6(text);
  return null;
}

/**
 * The dotted quad `text` (its first `end` characters) into `out[at..at+4)`, network order, and true; false,
 * writing nothing, for any text net.isIPv4 refuses (four decimal parts 0–255,
 * no leading zeros, nothing around them). By hand, one pass over the
 * characters: isIPv4's regular expression, the split and a number per part
 * cost about 3 µs an address, and an install of 100,000 SAs parses every
 * peer's address and prefix (issue 9). Held equal to isIPv4 by a property test.
 */
export function ipv4Into(text: string, out: Uint8Array, at: number, end = text.length): boolean {
  const n = end;
  if (n < 7 || n > 15 || n > text.length) return false;
  let value = 0, parts = 0, digits = 0, packed = 0;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? text.charCodeAt(i) : 0x2e; // a '.' after the last part closes it
    if (c >= 0x30 && c <= 0x39) {
      if (digits === 1 && value === 0) return false; // a leading zero
      value = value * 10 + (c - 0x30);
      if (++digits > 3 || value > 255) return false;
    } else if (c === 0x2e) {
      if (digits === 0 || parts === 4) return false;
      packed = (packed << 8) | value; // parts === 4 after the last: 32 bits, read unsigned below
      parts++, (value = 0), (digits = 0);
    } else return false;
  }
  if (parts !== 4) return false;
  out[at] = packed >>> 24;
  out[at + 1] = (packed >>> 16) & 0xff;
  out[at + 2] = (packed >>> 8) & 0xff;
  out[at + 3] = packed & 0xff;
  return true;
}

/**
 * An IPv4-mapped IPv6 address (RFC 4291 §2.5.5.2), as a dual-stack socket
 * reports an IPv4 peer ("::ffff:192.0.2.1"), as its IPv4 text; any other text
 * unchanged.
 */
export function unmapV4(text: string): string {
  return /^::ffff:/i.test(text) && isIPv4(text.slice(7)) ? text.slice(7) : text;
}

/**
 * RFC 5952 text of an address as a socket or a user gives it (IPv4-mapped as
 * IPv4), so "2001:DB8::1" and "2001:db8:0::1" compare equal; text that is no
 * address comes back unchanged.
 */
export function canonicalAddress(text: string): string {
  const p = parseAddress(unmapV4(text));
  return p.ok ? p.value.text : text;
}

/** An address as the host part of an endpoint or URL: IPv6 in brackets (RFC 3986 §3.2.2, RFC 5952 §6). */
export function hostText(address: string): string {
  return address.includes(":") ? `[${address}]` : address;
}

/** "192.0.2.1:4500" or "[2001:db8::1]:4500" (RFC 5952 §6). */
export function formatEndpoint(address: string, port: number): string {
  return `${hostText(address)}:${port}`;
}

/** Parse "a.b.c.d/n" or "x::/n"; host bits must be zero. */
export function parsePrefix(text: string): Parsed<Prefix> {
  const split = splitCidr(text);
  if (!split.ok) return split;
  const { address, length } = split.value;
  const masked = maskBytes(address.bytes, length);
  if (!bytesEqual(masked, address.bytes)) {
    const fixed = `${formatAddress(masked)}/${length}`;
    return { ok: false, message: `"${text}" has host bits set (did you mean ${fixed}?)` };
  }
  return { ok: true, value: { text: `${address.text}/${length}`, family: address.family, bytes: masked, length } };
}

/** Parse an interface address "10.1.0.1/16" (host bits expected). */
export function parseInterfaceAddress(text: string): Parsed<InterfaceAddress> {
  const split = splitCidr(text);
  if (!split.ok) return split;
  const { address, length } = split.value;
  return { ok: true, value: { text: `${address.text}/${length}`, address, length } };
}

function splitCidr(text: string): Parsed<{ address: Address; length: number }> {
  const slash = text.indexOf("/");
  if (slash < 0) return { ok: false, message: `"${text}" is not a CIDR prefix (missing "/length")` };
  const a = parseAddress(text.slice(0, slash));
  if (!a.ok) return { ok: false, message: `"${text}" is not a CIDR prefix (bad address)` };
  const lenText = text.slice(slash + 1);
  const max = a.value.family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > max) {
    return { ok: false, message: `"${text}" has a bad prefix length (IPv${a.value.family}: 0..${max})` };
  }
  return { ok: true, value: { address: a.value, length: Number(lenText) } };
}

/** Two prefixes overlap when one contains the other's network address. */
export function prefixesOverlap(a: Prefix, b: Prefix): boolean {
  if (a.family !== b.family) return false;
  const len = Math.min(a.length, b.length);
  return bytesEqual(maskBytes(a.bytes, len), maskBytes(b.bytes, len));
}

/** True when `addr` lies inside `p`. */
export function prefixContains(p: Prefix, addr: Address): boolean {
  if (p.family !== addr.family) return false;
  return bytesEqual(maskBytes(addr.bytes, p.length), p.bytes);
}

export function isUnspecified(a: Address): boolean {
  return a.bytes.every((b) => b === 0);
}

/** Multicast (224/4, ff00::/8) or IPv4 limited broadcast: never a unicast peer. */
export function isMulticastOrBroadcast(a: Address): boolean {
  if (a.family === 4) return (a.bytes[0] & 0xf0) === 0xe0 || a.bytes.every((b) => b === 255);
  return a.bytes[0] === 0xff;
}

export function familyName(f: Family): string {
  return f === 4 ? "IPv4" : "IPv6";
}

/** `bytes` with all but the first `length` bits zeroed (a new array). */
export function maskBytes(bytes: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.max(0, Math.min(8, length - i * 8));
    out[i] = bytes[i] & ((0xff00 >> bits) & 0xff);
  }
  return out;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// Input already passed net.isIPv6, so only the shapes it accepts need handling:
// "::" compression and an embedded dotted IPv4 tail (RFC 4291 §2.2).
function parseIPv6(text: string): Uint8Array {
  let s = text.toLowerCase();
  const lastColon = s.lastIndexOf(":");
  if (s.slice(lastColon + 1).includes(".")) {
    const v4 = s.slice(lastColon + 1).split(".").map(Number);
    s = `${s.slice(0, lastColon + 1)}${((v4[0] << 8) | v4[1]).toString(16)}:${((v4[2] << 8) | v4[3]).toString(16)}`;
  }
  const parse = (part: string) => (part === "" ? [] : part.split(":").map((x) => parseInt(x, 16)));
  let groups: number[];
  if (s.includes("::")) {
    const [head, rest] = s.split("::");
    const h = parse(head), r = parse(rest);
    groups = [...h, ...new Array<number>(8 - h.length - r.length).fill(0), ...r];
  } else {
    groups = parse(s);
  }
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[i * 2] = groups[i] >> 8;
    out[i * 2 + 1] = groups[i] & 0xff;
  }
  return out;
}

/** Canonical text: dotted quad, or RFC 5952 compressed IPv6. */
export function formatAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join(".");
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((bytes[i] << 8) | bytes[i + 1]);
  // RFC 5952 §4.2: compress the longest run (≥ 2) of zero groups, the first if tied.
  let bestAt = -1, bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { bestAt = i; bestLen = j - i; }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestAt < 0) return hex.join(":");
  return `${hex.slice(0, bestAt).join(":")}::${hex.slice(bestAt + bestLen).join(":")}`;
}

// --- the core's form --------------------------------------------------------
// The core stores every address in 16 bytes, network order, an IPv4 address in
// the first 4 and zeros after (docs/core.md); these convert to and from it.

/** An address in the core's 16-byte form. */
export interface CoreAddr {
  family: Family;
  /** 16 bytes; IPv4 uses the first 4. */
  bytes: Uint8Array;
}

/** A prefix in the core's form; host bits are kept as given (the core masks). */
export interface CorePrefix extends CoreAddr {
  len: number;
}

/** "192.0.2.1", "2001:db8::1", or 4 / 16 raw bytes, in the core's form; throws RangeError otherwise. */
export function coreAddr(a: string | Uint8Array): CoreAddr {
  const bytes = new Uint8Array(16);
  if (a instanceof Uint8Array) {
    if (a.length !== 4 && a.length !== 16) throw new RangeError(`address must be 4 or 16 bytes, got ${a.length}`);
    bytes.set(a);
    return { family: a.length === 4 ? 4 : 6, bytes };
  }
  // a zone index ("fe80::1%eth0") names an interface, not part of the address;
  // no canonical text (parseAddress's): an install of 100,000 SAs parses 50,000 addresses and prefixes
  const p = addressBytes(a.split("%")[0]);
  if (!p) throw new RangeError(`not an IP address: ${a}`);
  bytes.set(p);
  return { family: p.length === 4 ? 4 : 6, bytes };
}

/**
 * An IPv4 prefix "a.b.c.d/n" or bare address (a host prefix, /32): its
 * address into `out[at..at+4)` and its length returned; -1, writing nothing,
 * for any other text (an IPv6 prefix, or none: corePrefix says which). The
 * allocation-free twin of corePrefix for IPv4, held equal to it by a test.
 */
export function ipv4PrefixInto(text: string, out: Uint8Array, at: number): number {
  const slash = text.indexOf("/");
  if (slash < 0) return ipv4Into(text, out, at) ? 32 : -1;
  const n = text.length - slash - 1;
  if (n < 1 || n > 3) return -1;
  let len = 0;
  for (let i = slash + 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return -1;
    len = len * 10 + (c - 0x30);
  }
  if (len > 32) return -1;
  return ipv4Into(text, out, at, slash) ? len : -1;
}

/** "10.0.0.0/8", "2001:db8::/32" or a bare address (a host prefix), in the core's form; throws RangeError. */
export function corePrefix(text: string): CorePrefix {
  const slash = text.indexOf("/");
  const addr = coreAddr(slash < 0 ? text : text.slice(0, slash));
  const max = addr.family === 4 ? 32 : 128;
  const lenText = slash < 0 ? String(max) : text.slice(slash + 1);
  const len = Number(lenText);
  if (!/^\d{1,3}$/.test(lenText) || len > max) throw new RangeError(`bad prefix length in ${text}`);
  return { ...addr, len };
}

/** Canonical text of an address in the core's 16-byte form. */
export function formatCoreAddr(family: number, b: Uint8Array): string {
  return formatAddress(b.subarray(0, family === 4 ? 4 : 16));
}
