// An inner packet an outbound SA cannot carry within its path MTU: the
// largest inner packet the SA does carry (one definition, used by the check
// in esp_outbound.ts and by both answers), then either an ICMP error for the
// sender or, for IPv4 with DF clear, RFC 791 fragmentation. Rare, not the
// fast path; still no allocation: everything is written in ring slots.
//
// ICMP "fragmentation needed" (RFC 792, RFC 1191 §4) / ICMPv6 "Packet Too
// Big" (RFC 4443 §3.2, RFC 8201) is built in place, in front of the packet it
// quotes, inside the slot that held it (the packet stays where it was):
//
//   slot ─┬── headroom ──────────────┬─ original inner packet ──────────┬─
//         │      ┌ new IP ┬ ICMP 8 ──┤ quoted: the first `quote` bytes  │
//         │      ^ off - hdr         ^ off                              │
//
// so the answer costs no copy; `hdr` is 28 (IPv4) or 48 (IPv6) bytes and the
// headroom (128) has room for both. The slot leaves with VERDICT_ICMP: the
// host writes it to the TUN (under its rate limit, RFC 1812 §4.3.2.8 /
// RFC 4443 §2.4(f)).
//
// Source address of the error: the ORIGINAL DESTINATION. The CE's own kernel
// receives the error from the TUN and forwards it to the sender; a packet
// arriving with one of the host's own addresses as its source (the TUN's
// address) is a martian to Linux and is dropped, while the original
// destination routes back through the TUN (so it passes reverse-path
// filtering) and is all the sender needs: it matches the error to its flow by
// the quoted header (RFC 1191 §6.3, RFC 8201 §4).
//
// Fragments (VERDICT_FRAGMENT) are cut by fragmentOutbound() after the batch,
// into the FRAG_SLOTS slots behind the ring, and sealed there like any packet.
import { greHeaderLen } from "./gre";
import { IPV4_HDR, IPV6_HDR, IP4_FRAG, IP4_LEN, IP4_PROTO, IP4_SRC, IP4_DST, IP6_NH, IP6_SRC, IP6_DST, PROTO_ICMP, csumAdd, csumFinish, csumWord, ipv4SetChecksum } from "./ip";
import {
  D_INNER_MTU, D_KIND, D_LEN, D_OFF, D_PROTO, D_REASON, D_SA, D_VERDICT, FRAG_SLOTS, HEADROOM, MAX_PACKET, MODE_GRE, MODE_IPIP, MODE_TRANSPORT_GRE,
  SA_ICVLEN, SA_IVLEN, SA_ALIGN, SA_TMPLLEN, VERDICT_DROP, VERDICT_FRAGMENT, VERDICT_ICMP,
} from "./layout";
import { descInBounds, descPtr, ringCount, slotPtr } from "./ring";

/** RFC 1191 §4: the smallest MTU an IPv4 router may report is 68; RFC 8200 §5: IPv6 links carry 1280. */
const IPV4_MIN_MTU: i32 = 68;
const IPV6_MIN_MTU: i32 = 1280;
/** RFC 1812 §4.3.2.3: an IPv4 ICMP error is at most 576 bytes. RFC 4443 §2.4(c): ICMPv6 at most 1280. */
const V4_MAX_ERROR: i32 = 576;
const V6_MAX_ERROR: i32 = 1280;
const V4_ERROR_HDR: i32 = IPV4_HDR + 8;
const V6_ERROR_HDR: i32 = IPV6_HDR + 8;

/**
 * The usable-MTU arithmetic, defined once. The most bytes an SA protects
 * within `mtu` outer bytes: ESP (RFC 4303 §2.4) pads the protected data + pad
 * length + next header (2) to the suite's alignment, and adds the outer
 * template (IP, + UDP), SPI + sequence number (8), IV and ICV around it;
 * `kept` is the inner IP header transport mode moves in front instead of
 * protecting. Plain IP-in-IP / GRE add the template and the GRE header
 * (`gre`) only, and protect nothing: their room is the inner packet's.
 */
export function roomFor(mode: u8, tmpl: i32, gre: i32, ivLen: i32, icvLen: i32, align: i32, mtu: i32, kept: i32): i32 {
  if (mode == MODE_IPIP || mode == MODE_GRE) return mtu - tmpl - gre;
  const block = mtu - kept - tmpl - 8 - ivLen - icvLen;
  return (block >= 0 ? block / align * align : block) - 2;
}

/** The largest inner packet for a room: less what the mode adds inside ESP (transport-gre: GRE), plus what it keeps out. */
export function innerOf(mode: u8, room: i32, gre: i32, kept: i32): i32 {
  return room - (mode == MODE_TRANSPORT_GRE ? gre : 0) + kept;
}

/** roomFor an SA record. */
export function protectedRoom(sa: usize, mode: u8, mtu: i32, kept: i32): i32 {
  const gre = mode == MODE_GRE ? greHeaderLen(sa) : 0;
  return roomFor(mode, <i32>load<u16>(sa + SA_TMPLLEN), gre, <i32>load<u8>(sa + SA_IVLEN), <i32>load<u8>(sa + SA_ICVLEN), <i32>load<u8>(sa + SA_ALIGN), mtu, kept);
}

@inline function v4Unusable(a: usize): bool {
  // 0.0.0.0/8, 127/8, multicast and class E (224/3), limited broadcast: RFC 1812 §4.3.2.7.
  const b = load<u8>(a);
  return b == 0 || b == 127 || b >= 224;
}

@inline function v6Unusable(a: usize): bool {
  // multicast or unspecified
  return load<u8>(a) == 0xff || (load<u64>(a) == 0 && load<u64>(a + 8) == 0);
}

/** Bytes each fragment carries of an IPv4 packet with an `ihl`-byte header: a multiple of 8 (RFC 791 §3.2). */
@inline function fragmentStep(inner: i32, ihl: i32): i32 {
  const s = inner > ihl ? (inner - ihl) & ~7 : 0;
  return min(s, (MAX_PACKET - ihl) & ~7);
}

/**
 * Slot descriptor `d` was just dropped TOO_BIG: its packet (at `pkt`, slot
 * offset `off`, `len` bytes) exceeds the SA's path MTU, and `inner` is the
 * largest inner packet the SA carries (kept in D_INNER_MTU). Turns the
 * verdict into ICMP (the error built in place, off/len rewritten) or
 * FRAGMENT, or leaves the silent drop where no error may be sent.
 */
export function answerTooBig(d: usize, pkt: usize, off: i32, len: i32, inner: i32): void {
  store<u16>(d + D_INNER_MTU, <u16>max(0, min(inner, 0xffff)));
  if (len < 1) return;
  const v = load<u8>(pkt) >> 4;
  if (v == 4) answer4(d, pkt, off, len, inner);
  else if (v == 6) answer6(d, pkt, off, len, inner);
}

function answer4(d: usize, pkt: usize, off: i32, len: i32, inner: i32): void {
  if (len < IPV4_HDR) return;
  const ihl = <i32>(load<u8>(pkt) & 15) << 2;
  if (ihl < IPV4_HDR || len < ihl) return;
  const field = bswap<u16>(load<u16>(pkt + IP4_FRAG));
  if ((field & 0x4000) == 0) {
    // RFC 791 §2.3: DF clear, so it may be fragmented (a fragment again too).
    const total = min(len, <i32>bswap<u16>(load<u16>(pkt + IP4_LEN)));
    if (fragmentStep(inner, ihl) >= 8 && total > ihl) store<u8>(d + D_VERDICT, VERDICT_FRAGMENT);
    return;
  }
  if ((field & 0x1fff) != 0) return; // RFC 1812 §4.3.2.7: only the first fragment is answered
  if (v4Unusable(pkt + IP4_SRC) || v4Unusable(pkt + IP4_DST)) return;
  if (load<u8>(pkt + IP4_PROTO) == PROTO_ICMP && len >= ihl + 1) {
    const t = load<u8>(pkt + <usize>ihl);
    // RFC 1122 §3.2.2: never answer an ICMP error (only echo, timestamp, info, mask and router messages may be)
    if (t == 3 || t == 4 || t == 5 || t == 11 || t == 12) return;
  }
  if (off < V4_ERROR_HDR) return;
  const quote = min(len, V4_MAX_ERROR - V4_ERROR_HDR);
  const h = pkt - <usize>V4_ERROR_HDR;
  const total = V4_ERROR_HDR + quote;
  memory.fill(h, 0, <usize>V4_ERROR_HDR); // [off - 28, off): overlaps nothing of the original
  store<u8>(h, 0x45);
  store<u16>(h + IP4_LEN, bswap<u16>(<u16>total));
  store<u8>(h + 8, 64); // TTL
  store<u8>(h + IP4_PROTO, PROTO_ICMP);
  store<u32>(h + IP4_SRC, load<u32>(pkt + IP4_DST));
  store<u32>(h + IP4_DST, load<u32>(pkt + IP4_SRC));
  ipv4SetChecksum(h, IPV4_HDR);
  const icmp = h + IPV4_HDR;
  store<u8>(icmp, 3); // destination unreachable
  store<u8>(icmp + 1, 4); // fragmentation needed and DF set
  store<u16>(icmp + 6, bswap<u16>(<u16>max(IPV4_MIN_MTU, min(inner, 0xffff)))); // RFC 1191 §4: next-hop MTU
  store<u16>(icmp + 2, csumFinish(csumAdd(icmp, 8 + quote, 0)));
  toTunIcmp(d, off - V4_ERROR_HDR, total);
}

function answer6(d: usize, pkt: usize, off: i32, len: i32, inner: i32): void {
  if (len < IPV6_HDR) return;
  if (v6Unusable(pkt + IP6_SRC)) return; // RFC 4443 §2.4(e.6): no unspecified / multicast source
  // RFC 4443 §2.4(e.1): never answer an ICMPv6 error message (types 0..127).
  if (load<u8>(pkt + IP6_NH) == 58 && len >= IPV6_HDR + 1 && load<u8>(pkt + IPV6_HDR) < 128) return;
  if (off < V6_ERROR_HDR) return;
  const quote = min(len, V6_MAX_ERROR - V6_ERROR_HDR);
  const h = pkt - <usize>V6_ERROR_HDR;
  const plen = 8 + quote;
  memory.fill(h, 0, <usize>V6_ERROR_HDR);
  store<u8>(h, 0x60);
  store<u16>(h + 4, bswap<u16>(<u16>plen));
  store<u8>(h + IP6_NH, 58); // ICMPv6
  store<u8>(h + 7, 64); // hop limit
  v128.store(h + IP6_SRC, v128.load(pkt + IP6_DST));
  v128.store(h + IP6_DST, v128.load(pkt + IP6_SRC));
  const icmp = h + IPV6_HDR;
  store<u8>(icmp, 2); // Packet Too Big
  store<u32>(icmp + 4, bswap<u32>(<u32>max(IPV6_MIN_MTU, inner))); // RFC 8201 §4: a PTB below 1280 is not acted upon
  // RFC 4443 §2.3 / RFC 8200 §8.1: checksum over the pseudo-header and the message.
  let acc = csumAdd(h + IP6_SRC, 32, 0) + csumWord(<u32>plen) + csumWord(58);
  acc = csumAdd(icmp, plen, acc);
  store<u16>(icmp + 2, csumFinish(acc));
  toTunIcmp(d, off - V6_ERROR_HDR, V6_ERROR_HDR + quote);
}

function toTunIcmp(d: usize, off: i32, len: i32): void {
  store<u32>(d + D_OFF, <u32>off);
  store<u32>(d + D_LEN, <u32>len);
  store<u8>(d + D_VERDICT, VERDICT_ICMP);
}

// Where fragmentOutbound stopped: the source slot, and the next data byte of
// its packet (0 = not started). processOutbound resets both.
let fragSrc: i32 = 0;
let fragAt: i32 = 0;

export function fragmentReset(): void {
  fragSrc = 0;
  fragAt = 0;
}

/**
 * RFC 791 §3.2 fragmentation of the FRAGMENT slots among 0..n-1, in order,
 * into fragment slots ringCount() .. ringCount() + k - 1 (at most
 * min(FRAG_SLOTS, ringCount()) per call), each described for its source's SA;
 * returns k, continuing where the last call stopped; 0 when all are cut.
 * Each fragment repeats the header (options included: the copy flag is not
 * honoured, a documented simplification), carries a multiple of 8 data bytes
 * except the last, and keeps the original's MF bit on its last piece.
 */
export function fragmentCut(n: i32): i32 {
  const cap = min(FRAG_SLOTS, ringCount());
  const m = min(n, ringCount());
  let k = 0;
  while (fragSrc < m && k < cap) {
    const d = descPtr(fragSrc);
    if (load<u8>(d + D_VERDICT) != VERDICT_FRAGMENT || !descInBounds(d)) {
      fragSrc++;
      fragAt = 0;
      continue;
    }
    const pkt = slotPtr(fragSrc) + <usize>load<u32>(d + D_OFF);
    const len = <i32>load<u32>(d + D_LEN);
    const ihl = len >= IPV4_HDR ? <i32>(load<u8>(pkt) & 15) << 2 : len;
    const total = min(len, <i32>bswap<u16>(load<u16>(pkt + IP4_LEN)));
    const step = fragmentStep(<i32>load<u16>(d + D_INNER_MTU), ihl);
    if (fragAt == 0) fragAt = ihl;
    if (ihl < IPV4_HDR || step < 8) fragAt = total; // not fragmentable after all: skip it
    const field = bswap<u16>(load<u16>(pkt + IP4_FRAG));
    const saId = load<i32>(d + D_SA);
    while (fragAt < total && k < cap) {
      const piece = min(step, total - fragAt);
      const more: u16 = fragAt + piece < total ? 0x2000 : field & 0x2000;
      const f = slotPtr(ringCount() + k) + <usize>HEADROOM;
      memory.copy(f, pkt, <usize>ihl);
      memory.copy(f + <usize>ihl, pkt + <usize>fragAt, <usize>piece);
      store<u16>(f + IP4_FRAG, bswap<u16>(more | <u16>((field & 0x1fff) + <u16>((fragAt - ihl) >> 3))));
      store<u16>(f + IP4_LEN, bswap<u16>(<u16>(ihl + piece)));
      ipv4SetChecksum(f, ihl);
      describe(descPtr(ringCount() + k), ihl + piece, saId);
      fragAt += piece;
      k++;
    }
    if (fragAt >= total) {
      fragSrc++;
      fragAt = 0;
    }
  }
  return k;
}

/** An outbound input descriptor: the packet at HEADROOM for SA `saId` (no SPD lookup: its source matched already). */
function describe(d: usize, len: i32, saId: i32): void {
  store<u32>(d + D_OFF, <u32>HEADROOM);
  store<u32>(d + D_LEN, <u32>len);
  store<u8>(d + D_KIND, 0);
  store<u8>(d + D_VERDICT, VERDICT_DROP);
  store<u16>(d + D_REASON, 0);
  store<i32>(d + D_SA, saId);
  store<u8>(d + D_PROTO, 0);
}
