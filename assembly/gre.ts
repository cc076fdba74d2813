// GRE (RFC 2784) with the key and sequence number extensions (RFC 2890).
//
//   0                   1                   2                   3
//   |C|R|K|S|s|Recur|  Reserved0  | Ver |        Protocol Type          |
//   |      Checksum (optional)          |       Reserved1 (optional)    |
//   |                         Key (optional)                            |
//   |                  Sequence Number (optional)                       |
//
// wesp sends C = 0, K and S as the SA says, protocol 0x0800 / 0x86DD. On
// receipt it discards what RFC 2784 §2.5.1 says a receiver that does not
// implement RFC 1701 must discard (R, s or Recur set; version ≠ 0), checks
// the checksum when present, and leaves the key match to the caller. Out of
// order sequence numbers are accepted (RFC 2890 §2.2 lets a receiver buffer
// or drop them; ESP's own replay window already protects ESP-carried GRE).
import { csumAdd, csumFinish } from "./ip";
import { FLAG_GRE_KEY, FLAG_GRE_SEQ, SA_FLAGS, SA_GREKEY, SA_GRESEQ } from "./layout";

const GRE_C: u16 = 0x8000;
const GRE_K: u16 = 0x2000;
const GRE_S: u16 = 0x1000;
const GRE_MUST_BE_ZERO: u16 = 0x4000 | 0x0800 | 0x0700 | 0x0007; // R, s, Recur, Ver

export const ETHERTYPE_IPV4: u16 = 0x0800;
export const ETHERTYPE_IPV6: u16 = 0x86dd;

// Results of greParse.
export let greLen: i32 = 0; // header bytes
export let greFamily: i32 = 0; // inner family from the protocol type: 4 | 6 | 0 other
export let greHasKey: bool = false;
export let greKey: u32 = 0;

/** Header bytes an SA's GRE header takes: 4, + 4 key, + 4 sequence number. */
export function greHeaderLen(sa: usize): i32 {
  return greBytes(load<u16>(sa + SA_FLAGS));
}

/** The same from the SA flags: RFC 2784 §2.1 base header, + RFC 2890 §2 key and sequence number. */
export function greBytes(f: u16): i32 {
  return 4 + ((f & FLAG_GRE_KEY) != 0 ? 4 : 0) + ((f & FLAG_GRE_SEQ) != 0 ? 4 : 0);
}

/**
 * Writes the SA's GRE header at `h` (greHeaderLen bytes) for an inner packet
 * of `family`, taking the next sequence number when sequencing is on.
 */
export function greWrite(h: usize, sa: usize, family: i32): void {
  const f = load<u16>(sa + SA_FLAGS);
  let bits: u16 = 0;
  let p = h + 4;
  if ((f & FLAG_GRE_KEY) != 0) {
    bits |= GRE_K;
    store<u32>(p, bswap<u32>(load<u32>(sa + SA_GREKEY)));
    p += 4;
  }
  if ((f & FLAG_GRE_SEQ) != 0) {
    bits |= GRE_S;
    const seq = load<u32>(sa + SA_GRESEQ);
    store<u32>(p, bswap<u32>(seq));
    store<u32>(sa + SA_GRESEQ, seq + 1); // RFC 2890 §2.2: starts at 0, wraps
  }
  store<u16>(h, bswap<u16>(bits));
  store<u16>(h + 2, bswap<u16>(family == 4 ? ETHERTYPE_IPV4 : ETHERTYPE_IPV6));
}

/** Parses the GRE header of the `len`-byte GRE packet at `p`; false when it must be dropped. */
export function greParse(p: usize, len: i32): bool {
  if (len < 4) return false;
  const bits = bswap<u16>(load<u16>(p));
  if ((bits & GRE_MUST_BE_ZERO) != 0) return false;
  let hl = 4;
  if ((bits & GRE_C) != 0) hl += 4;
  greHasKey = (bits & GRE_K) != 0;
  if (greHasKey) hl += 4;
  if ((bits & GRE_S) != 0) hl += 4;
  if (len < hl) return false;
  // RFC 2784 §2.2: the checksum covers the GRE header and the payload.
  if ((bits & GRE_C) != 0 && csumFinish(csumAdd(p, len, 0)) != 0) return false;
  greKey = greHasKey ? bswap<u32>(load<u32>(p + ((bits & GRE_C) != 0 ? 8 : 4))) : 0;
  const proto = bswap<u16>(load<u16>(p + 2));
  greFamily = proto == ETHERTYPE_IPV4 ? 4 : proto == ETHERTYPE_IPV6 ? 6 : 0;
  greLen = hl;
  return true;
}
