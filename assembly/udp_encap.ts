// UDP encapsulation of ESP (RFC 3948).
//
//  NAT-T datagram payloads, told apart by their first bytes (§2.1-2.3):
//    0xFF (1 byte)          NAT-keepalive: counted and dropped
//    00 00 00 00 …          non-ESP marker: IKE on port 4500 → host, untouched
//    STUN (below)           a STUN message (RFC 8489) → host, untouched
//    SPI ≠ 0 …              ESP
//
// STUN shares the port because a WAN port must learn the public address and
// port its NAT-T socket is mapped to (net2cloud §5.2): the Binding request
// leaves from this socket and its response arrives here. Told apart as
// RFC 7983 §7 and RFC 8489 §5 do: the first two bits zero, the magic cookie
// 0x2112A442 in bytes 4-7, and a Message Length that is a multiple of 4 and
// equals the payload's length minus the 20-byte header. An ESP datagram can
// match only with an SPI below 0x40000000 whose low 16 bits equal its length
// minus 20, carrying the sequence number 0x2112A442: at most one datagram in
// 2^32 of such an SA, which the host then discards (its transaction ID
// matches no request) — lost like any dropped packet. A STUN response tried
// as ESP instead would never reach the host, so STUN is checked first.
//
// Outbound the UDP header sits in the SA's template; the length is patched
// per packet and the checksum is 0 over IPv4 (§2.1: SHOULD be zero, the ESP
// ICV protects the payload) but computed over IPv6 (RFC 8200 §8.1: zero is
// not allowed there). Inbound the UDP checksum is not verified: ESP's ICV
// covers everything a corrupted datagram could change (§3.1.2 lets the
// receiver skip it), and kernels have verified NAT-T socket datagrams.
import { IP6_DST, IP6_SRC, PROTO_UDP, csumAdd, csumFinish, csumWord } from "./ip";

export const UDP_HDR: i32 = 8;

export const NATT_ESP: i32 = 0;
export const NATT_IKE: i32 = 1;
export const NATT_KEEPALIVE: i32 = 2;
export const NATT_MALFORMED: i32 = 3;
export const NATT_STUN: i32 = 4;

const STUN_HEADER: i32 = 20;
const STUN_COOKIE_LE: u32 = 0x42a41221; // 0x2112A442 as load<u32> reads it (little-endian)

/** Classifies the `len`-byte NAT-T payload at `p`. */
export function nattClassify(p: usize, len: i32): i32 {
  if (len == 1 && load<u8>(p) == 0xff) return NATT_KEEPALIVE;
  if (len >= 4 && load<u32>(p) == 0) return NATT_IKE;
  if (
    len >= STUN_HEADER && (len & 3) == 0 && (load<u8>(p) & 0xc0) == 0 && load<u32>(p + 4) == STUN_COOKIE_LE &&
    <i32>bswap<u16>(load<u16>(p + 2)) + STUN_HEADER == len
  ) return NATT_STUN;
  if (len < 8) return NATT_MALFORMED; // not even SPI + sequence number
  return NATT_ESP;
}

/** Sets the UDP length (header + payload = `udpLen`) of the header at `u`, checksum 0. */
export function udpSetLength(u: usize, udpLen: i32): void {
  store<u16>(u + 4, bswap<u16>(<u16>udpLen));
  store<u16>(u + 6, 0);
}

/** Computes the UDP checksum over IPv6 (pseudo-header, RFC 8200 §8.1) for the datagram at `u` after the IPv6 header `ip6`. */
export function udpChecksumV6(ip6: usize, u: usize, udpLen: i32): void {
  store<u16>(u + 6, 0);
  let acc = csumAdd(ip6 + IP6_SRC, 32, 0);
  acc += csumWord(<u32>udpLen >> 16) + csumWord(<u32>udpLen & 0xffff) + csumWord(PROTO_UDP);
  acc = csumAdd(u, udpLen, acc);
  let c = csumFinish(acc);
  if (c == 0) c = 0xffff; // RFC 768: a computed 0 is sent as all ones
  store<u16>(u + 6, c);
}
