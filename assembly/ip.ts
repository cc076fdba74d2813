// IPv4 (RFC 791) and IPv6 (RFC 8200) headers: parse, build, checksums.
//
//  IPv4 (20 B without options)              IPv6 (40 B)
//   0 ver/ihl · tos · total length           0 ver/tc/flow label (4 B)
//   4 id · flags/fragment offset             4 payload length · next header · hop limit
//   8 ttl · protocol · header checksum       8 source (16 B)
//  12 source                                24 destination (16 B)
//  16 destination
//
// Internet checksums (RFC 1071) are summed over little-endian words and
// stored little-endian: the one's complement sum is byte-order independent
// (RFC 1071 §2(B)), so no byte swap is needed except for values given as
// numbers (lengths, protocol) in pseudo-headers.

export const IPV4_HDR: i32 = 20;
export const IPV6_HDR: i32 = 40;
export const IP4_TOS: usize = 1;
export const IP4_LEN: usize = 2;
export const IP4_ID: usize = 4;
export const IP4_FRAG: usize = 6;
export const IP4_TTL: usize = 8;
export const IP4_PROTO: usize = 9;
export const IP4_CSUM: usize = 10;
export const IP4_SRC: usize = 12;
export const IP4_DST: usize = 16;
export const IP6_PLEN: usize = 4;
export const IP6_NH: usize = 6;
export const IP6_HOP: usize = 7;
export const IP6_SRC: usize = 8;
export const IP6_DST: usize = 24;

export const PROTO_ICMP: u8 = 1;
export const PROTO_IPIP: u8 = 4;
export const PROTO_TCP: u8 = 6;
export const PROTO_UDP: u8 = 17;
export const PROTO_IPV6: u8 = 41;
export const PROTO_GRE: u8 = 47;
export const PROTO_ESP: u8 = 50;
export const PROTO_NONE: u8 = 59; // IPv6 "no next header": ESP dummy packet (RFC 4303 §2.6)
export const PROTO_SCTP: u8 = 132;

// Results of ipParse (single-threaded core: module state, no allocation).
export let ipFamily: i32 = 0; // 4 | 6
export let ipHl: i32 = 0; // header bytes
export let ipTotal: i32 = 0; // header + payload as the header states
export let ipProto: i32 = 0; // protocol / next header
export let ipFragment: bool = false; // IPv4 MF set or offset ≠ 0

/**
 * Parses the IP header at `p`, `len` bytes available. On success sets the
 * ip* results and returns true; false for anything short or inconsistent.
 * IPv6 extension headers are not walked: ipProto is the base header's.
 */
export function ipParse(p: usize, len: i32): bool {
  if (len < 1) return false;
  const v = load<u8>(p) >> 4;
  if (v == 4) {
    if (len < IPV4_HDR) return false;
    const hl = <i32>(load<u8>(p) & 15) << 2;
    const total = <i32>bswap<u16>(load<u16>(p + IP4_LEN));
    if (hl < IPV4_HDR || hl > len || total < hl || total > len) return false;
    const frag = bswap<u16>(load<u16>(p + IP4_FRAG));
    ipFamily = 4;
    ipHl = hl;
    ipTotal = total;
    ipProto = load<u8>(p + IP4_PROTO);
    ipFragment = (frag & 0x3fff) != 0;
    return true;
  }
  if (v == 6) {
    if (len < IPV6_HDR) return false;
    const total = IPV6_HDR + <i32>bswap<u16>(load<u16>(p + IP6_PLEN));
    if (total > len) return false;
    ipFamily = 6;
    ipHl = IPV6_HDR;
    ipTotal = total;
    ipProto = load<u8>(p + IP6_NH);
    ipFragment = false;
    return true;
  }
  return false;
}

/** Address of the source / destination bytes of a parsed header (4 or 16 bytes). */
// @ts-ignore: decorator
@inline export function ipSrc(p: usize, family: i32): usize {
  return p + (family == 4 ? IP4_SRC : IP6_SRC);
}
// @ts-ignore: decorator
@inline export function ipDst(p: usize, family: i32): usize {
  return p + (family == 4 ? IP4_DST : IP6_DST);
}

/** Adds `len` bytes at `p` to a running little-endian one's complement sum. */
export function csumAdd(p: usize, len: i32, acc: u64): u64 {
  let i = 0;
  for (; i + 8 <= len; i += 8) {
    const w = load<u64>(p + i);
    acc += (w & 0xffffffff) + (w >> 32);
  }
  if (i + 4 <= len) {
    acc += <u64>load<u32>(p + i);
    i += 4;
  }
  if (i + 2 <= len) {
    acc += <u64>load<u16>(p + i);
    i += 2;
  }
  if (i < len) acc += <u64>load<u8>(p + i);
  return acc;
}

/** Folds a sum to 16 bits and complements it: store the result with store<u16>. */
export function csumFinish(acc: u64): u16 {
  acc = (acc & 0xffffffff) + (acc >> 32);
  acc = (acc & 0xffff) + (acc >> 16);
  acc = (acc & 0xffff) + (acc >> 16);
  acc = (acc & 0xffff) + (acc >> 16);
  return ~<u16>acc;
}

/** A host-order 16-bit value as it enters a little-endian sum. */
// @ts-ignore: decorator
@inline export function csumWord(v: u32): u64 {
  return <u64>bswap<u16>(<u16>v);
}

/** Recomputes the IPv4 header checksum of the `hl`-byte header at `h`. */
export function ipv4SetChecksum(h: usize, hl: i32): void {
  store<u16>(h + IP4_CSUM, 0);
  store<u16>(h + IP4_CSUM, csumFinish(csumAdd(h, hl, 0)));
}

/** True when the IPv4 header checksum of the `hl` bytes at `h` verifies. */
export function ipv4ChecksumOk(h: usize, hl: i32): bool {
  return csumFinish(csumAdd(h, hl, 0)) == 0;
}

/**
 * Writes a 20-byte IPv4 header at `h` (no options) for a packet of `total`
 * bytes; `src`/`dst` point at 4 address bytes. The checksum is computed.
 */
export function ipv4Build(h: usize, tos: u8, total: i32, id: u16, df: bool, ttl: u8, proto: u8, src: usize, dst: usize): void {
  store<u8>(h, 0x45);
  store<u8>(h + IP4_TOS, tos);
  store<u16>(h + IP4_LEN, bswap<u16>(<u16>total));
  store<u16>(h + IP4_ID, bswap<u16>(id));
  store<u16>(h + IP4_FRAG, df ? bswap<u16>(0x4000) : 0);
  store<u8>(h + IP4_TTL, ttl);
  store<u8>(h + IP4_PROTO, proto);
  store<u32>(h + IP4_SRC, load<u32>(src));
  store<u32>(h + IP4_DST, load<u32>(dst));
  ipv4SetChecksum(h, IPV4_HDR);
}

/** Writes a 40-byte IPv6 header at `h` for `payloadLen` bytes after it; src/dst: 16 bytes. */
export function ipv6Build(h: usize, tclass: u8, payloadLen: i32, nh: u8, hop: u8, src: usize, dst: usize): void {
  store<u32>(h, bswap<u32>(0x60000000 | (<u32>tclass << 20)));
  store<u16>(h + IP6_PLEN, bswap<u16>(<u16>payloadLen));
  store<u8>(h + IP6_NH, nh);
  store<u8>(h + IP6_HOP, hop);
  v128.store(h + IP6_SRC, v128.load(src));
  v128.store(h + IP6_DST, v128.load(dst));
}

/** Sets the length fields of the IP header at `h` for a packet of `total` bytes (IPv4: checksum too). */
export function ipSetLength(h: usize, family: i32, hl: i32, total: i32): void {
  if (family == 4) {
    store<u16>(h + IP4_LEN, bswap<u16>(<u16>total));
    ipv4SetChecksum(h, hl);
  } else {
    store<u16>(h + IP6_PLEN, bswap<u16>(<u16>(total - IPV6_HDR)));
  }
}

/** Sets the protocol / next header of the IP header at `h` (IPv4: fix the checksum after). */
// @ts-ignore: decorator
@inline export function ipSetProto(h: usize, family: i32, proto: u8): void {
  store<u8>(h + (family == 4 ? IP4_PROTO : IP6_NH), proto);
}

/** True when the 16-byte address blocks at a and b (IPv4: first 4 bytes) are equal. */
export function addrEq(a: usize, b: usize, family: i32): bool {
  if (family == 4) return load<u32>(a) == load<u32>(b);
  return load<u64>(a) == load<u64>(b) && load<u64>(a + 8) == load<u64>(b + 8);
}

/** Copies an address of `family` from the packet (`src`) into a zero-padded 16-byte block. */
export function addrCopy(dst: usize, src: usize, family: i32): void {
  if (family == 4) {
    store<u32>(dst, load<u32>(src));
    store<u32>(dst + 4, 0);
    store<u64>(dst + 8, 0);
  } else {
    v128.store(dst, v128.load(src));
  }
}
