// IP-in-IP (RFC 2003 for IPv4 payloads, protocol 4; RFC 2473 for IPv6,
// protocol 41) and the checks every decapsulated inner packet goes through.
//
// Outbound the outer ("delivery") header comes from the SA's template; only
// its protocol depends on the inner packet's version. Inbound the inner
// packet must be a well-formed IP packet of the version the outer protocol
// (or ESP next header) announced, and is trimmed to its own length field,
// which drops TFC padding (RFC 4303 §2.7) and any trailing bytes.
import { PROTO_IPIP, PROTO_IPV6, ipFamily, ipParse, ipTotal } from "./ip";

/** ESP next header / outer protocol for an inner packet starting with byte `b0` (0 when not IP). */
export function ipipProtoOf(b0: u8): u8 {
  const v = b0 >> 4;
  return v == 4 ? PROTO_IPIP : v == 6 ? PROTO_IPV6 : 0;
}

/**
 * Validates the inner packet at `p` (`len` bytes available) announced as
 * protocol `proto` (4 or 41) and returns its length, or -1 to drop it.
 */
export function innerLength(p: usize, len: i32, proto: i32): i32 {
  if (!ipParse(p, len)) return -1;
  const want = proto == PROTO_IPIP ? 4 : proto == PROTO_IPV6 ? 6 : 0;
  return ipFamily == want ? ipTotal : -1;
}

/** innerLength for a GRE payload whose protocol type gave `family` (4 | 6). */
export function innerLengthFamily(p: usize, len: i32, family: i32): i32 {
  return innerLength(p, len, family == 4 ? PROTO_IPIP : family == 6 ? PROTO_IPV6 : 0);
}
