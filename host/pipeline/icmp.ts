// ICMP "fragmentation needed" (RFC 792, RFC 1191 §4) and ICMPv6 "Packet Too
// Big" (RFC 4443 §3.2, RFC 8201) for inner packets that an SA cannot carry
// within its path MTU, and RFC 791 fragmentation of IPv4 packets that allow
// it (DF clear). Host-side on purpose: it is rare, and not the fast path.
//
// The error is built in place, in front of the packet it quotes, inside the
// ring slot that held it (the core leaves a TOO_BIG packet where it was):
//
//   slot ─┬── headroom ──────────────┬─ original inner packet ──────────┬─
//         │      ┌ new IP ┬ ICMP 8 ──┤ quoted: the first `quote` bytes  │
//         │      ^ off - hdr         ^ off                              │
//
// so the answer costs no copy; `hdr` is 28 (IPv4) or 48 (IPv6) bytes and the
// headroom (128) has room for both.
//
// Source address of the error: the ORIGINAL DESTINATION. The error is
// written to the TUN, i.e. the CE's own kernel receives it from the TUN and
// forwards it to the sender; a packet arriving with one of the host's own
// addresses as its source (the TUN's address) is a martian to Linux and is
// dropped, while the original destination routes back through the TUN (so it
// passes reverse-path filtering) and is all the sender needs: it matches the
// error to its flow by the quoted header (RFC 1191 §6.3, RFC 8201 §4).

/** RFC 1191 §4: the smallest MTU an IPv4 router may report is 68; RFC 8200 §5: IPv6 links carry 1280. */
export const IPV4_MIN_MTU = 68;
export const IPV6_MIN_MTU = 1280;
/** RFC 1812 §4.3.2.3: an IPv4 ICMP error is at most 576 bytes. RFC 4443 §2.4(c): ICMPv6 at most 1280. */
const V4_MAX_ERROR = 576;
const V6_MAX_ERROR = 1280;
export const V4_ERROR_HDR = 28;
export const V6_ERROR_HDR = 48;

export type TooBigAnswer =
  | { kind: "icmp"; off: number; len: number }
  /** IPv4 with DF clear: fragment it instead (RFC 791). */
  | { kind: "fragment" }
  /** No error may be sent for it (an ICMP error, a non-first fragment, a multicast/unspecified address, …). */
  | { kind: "none" };

function sum16(b: Uint8Array, off: number, len: number, acc = 0): number {
  for (let i = 0; i + 1 < len; i += 2) acc += (b[off + i] << 8) | b[off + i + 1];
  if (len & 1) acc += b[off + len - 1] << 8;
  return acc;
}

function fold(acc: number): number {
  while (acc > 0xffff) acc = (acc & 0xffff) + Math.floor(acc / 0x10000);
  return ~acc & 0xffff;
}

function put16(b: Uint8Array, off: number, v: number): void {
  b[off] = v >> 8;
  b[off + 1] = v & 0xff;
}

/** The RFC 1071 checksum of b[off, off+len). */
export function checksum(b: Uint8Array, off: number, len: number): number {
  return fold(sum16(b, off, len));
}

function v4Unusable(b: Uint8Array, at: number): boolean {
  // 0.0.0.0/8, 127/8, multicast and class E (224/3), limited broadcast: RFC 1812 §4.3.2.7.
  const a = b[at];
  return a === 0 || a === 127 || a >= 224;
}

function v6Unusable(b: Uint8Array, at: number): boolean {
  if (b[at] === 0xff) return true; // multicast
  for (let i = 0; i < 16; i++) if (b[at + i] !== 0) return false;
  return true; // unspecified
}

/**
 * Answers an inner packet at mem[off, off+len) (off ≥ 48: it needs that much
 * headroom) that would exceed the path MTU: builds the ICMP error in place
 * and returns where it is, or says to fragment / to stay silent.
 * `innerMtu` is the largest inner packet the SA carries (usableMtu).
 */
export function tooBig(mem: Uint8Array, off: number, len: number, innerMtu: number): TooBigAnswer {
  if (len < 1) return { kind: "none" };
  const v = mem[off] >> 4;
  if (v === 4) return tooBig4(mem, off, len, innerMtu);
  if (v === 6) return tooBig6(mem, off, len, innerMtu);
  return { kind: "none" };
}

function tooBig4(mem: Uint8Array, off: number, len: number, innerMtu: number): TooBigAnswer {
  if (len < 20) return { kind: "none" };
  const ihl = (mem[off] & 15) * 4;
  if (ihl < 20 || len < ihl) return { kind: "none" };
  const fragField = (mem[off + 6] << 8) | mem[off + 7];
  if ((fragField & 0x1fff) !== 0) return { kind: "none" }; // RFC 1812 §4.3.2.7: only the first fragment
  if (v4Unusable(mem, off + 12) || v4Unusable(mem, off + 16)) return { kind: "none" };
  if (mem[off + 9] === 1 && len >= ihl + 1) {
    const t = mem[off + ihl];
    // RFC 1122 §3.2.2: never answer an ICMP error (only echo, timestamp, info, mask and router messages may be)
    if (t === 3 || t === 4 || t === 5 || t === 11 || t === 12) return { kind: "none" };
  }
  if ((fragField & 0x4000) === 0) return { kind: "fragment" };
  const quote = Math.min(len, V4_MAX_ERROR - V4_ERROR_HDR);
  const h = off - V4_ERROR_HDR;
  const total = V4_ERROR_HDR + quote;
  // Addresses first: the new header overlaps nothing of the original, but read before writing anyway.
  const src = mem.slice(off + 16, off + 20), dst = mem.slice(off + 12, off + 16);
  mem.fill(0, h, off);
  mem[h] = 0x45;
  put16(mem, h + 2, total);
  mem[h + 8] = 64; // TTL
  mem[h + 9] = 1; // ICMP
  mem.set(src, h + 12);
  mem.set(dst, h + 16);
  put16(mem, h + 10, checksum(mem, h, 20));
  const icmp = h + 20;
  mem[icmp] = 3; // destination unreachable
  mem[icmp + 1] = 4; // fragmentation needed and DF set
  put16(mem, icmp + 6, Math.max(IPV4_MIN_MTU, Math.min(innerMtu, 0xffff))); // RFC 1191 §4: next-hop MTU
  put16(mem, icmp + 2, checksum(mem, icmp, 8 + quote));
  return { kind: "icmp", off: h, len: total };
}

function tooBig6(mem: Uint8Array, off: number, len: number, innerMtu: number): TooBigAnswer {
  if (len < 40) return { kind: "none" };
  if (v6Unusable(mem, off + 8)) return { kind: "none" }; // RFC 4443 §2.4(e.6): no unspecified / multicast source
  // RFC 4443 §2.4(e.1): never answer an ICMPv6 error message (types 0..127).
  if (mem[off + 6] === 58 && len >= 41 && mem[off + 40] < 128) return { kind: "none" };
  const quote = Math.min(len, V6_MAX_ERROR - V6_ERROR_HDR);
  const h = off - V6_ERROR_HDR;
  const src = mem.slice(off + 24, off + 40), dst = mem.slice(off + 8, off + 24);
  mem.fill(0, h, off);
  mem[h] = 0x60;
  put16(mem, h + 4, 8 + quote);
  mem[h + 6] = 58; // ICMPv6
  mem[h + 7] = 64; // hop limit
  mem.set(src, h + 8);
  mem.set(dst, h + 24);
  const icmp = h + 40;
  mem[icmp] = 2; // Packet Too Big
  const mtu = Math.max(IPV6_MIN_MTU, innerMtu) >>> 0; // RFC 8201 §4: a PTB below 1280 is not acted upon
  mem[icmp + 4] = mtu >>> 24;
  mem[icmp + 5] = (mtu >>> 16) & 0xff;
  mem[icmp + 6] = (mtu >>> 8) & 0xff;
  mem[icmp + 7] = mtu & 0xff;
  // RFC 4443 §2.3 / RFC 8200 §8.1: checksum over the pseudo-header and the message.
  const plen = 8 + quote;
  let acc = sum16(mem, h + 8, 32) + plen + 58;
  acc = sum16(mem, icmp, plen, acc);
  put16(mem, icmp + 2, fold(acc));
  return { kind: "icmp", off: h, len: 40 + plen };
}

/**
 * RFC 791 §3.2 fragmentation of the IPv4 packet in `pkt` (DF clear) into
 * pieces of at most `mtu` bytes: each fragment repeats the header (options
 * included: the copy flag is not honoured, a documented simplification),
 * carries a multiple of 8 data bytes except the last, and keeps the
 * original's MF bit on its last piece. Returns fresh buffers; [] when the
 * packet cannot be fragmented within `mtu`.
 */
export function fragment4(pkt: Uint8Array, mtu: number): Uint8Array[] {
  const ihl = (pkt[0] & 15) * 4;
  const total = Math.min(pkt.length, (pkt[2] << 8) | pkt[3]);
  const step = Math.floor((mtu - ihl) / 8) * 8;
  if (step < 8 || total <= ihl) return [];
  const field = (pkt[6] << 8) | pkt[7];
  const baseOff = field & 0x1fff;
  const lastMf = field & 0x2000;
  const out: Uint8Array[] = [];
  for (let at = ihl; at < total; at += step) {
    const n = Math.min(step, total - at);
    const f = new Uint8Array(ihl + n);
    f.set(pkt.subarray(0, ihl));
    f.set(pkt.subarray(at, at + n), ihl);
    put16(f, 2, ihl + n);
    const more = at + n < total ? 0x2000 : lastMf;
    put16(f, 6, more | (baseOff + (at - ihl) / 8));
    put16(f, 10, 0);
    put16(f, 10, checksum(f, 0, ihl));
    out.push(f);
  }
  return out;
}

/**
 * Token bucket for ICMP errors (RFC 1812 §4.3.2.8, RFC 4443 §2.4(f)): at
 * most `rate` per second on average, bursts of `burst`.
 */
export class RateLimit {
  private tokens: number;
  private last = Date.now();
  constructor(private readonly rate = 100, private readonly burst = 50) {
    this.tokens = burst;
  }
  take(now = Date.now()): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.rate) / 1000);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
