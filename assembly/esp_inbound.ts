// Inbound: outer packet → SA → ESP processing (RFC 4303 §3.4) → inner
// packet, in place in its slot; plain IP-in-IP / GRE for trusted ports.
//
// The order is the RFC's and the kernel's, and it is what keeps a forged or
// replayed packet from having any effect:
//   parse (per input kind) → SPI lookup (O(1), sad.ts) → replay check
//   (§3.4.3, before decryption) → ESN high bits (Appendix A) → verify ICV and
//   decrypt (§3.4.4; AAD/ICV include the high bits) → replay advance (only
//   now, and only with an ICV) → padding check (§2.4) → next header: 4/41
//   inner packet, 47 GRE, 59 dummy (§2.6) → inner policy check (RFC 4301
//   §5.2) → TO_TUN.
// Every read is bounded by the packet's length; every failure is a DROP
// with a reason, counted globally and on the SA once one is known.
import { cbcDecrypt } from "./crypto/cbc";
import { chachaPolyOpen } from "./crypto/chacha20poly1305";
import { ctEqual } from "./crypto/ct";
import { gcmOpen } from "./crypto/gcm";
import { hmacSha256 } from "./crypto/hmac_sha256";
import { Reason, countDrop, countOk } from "./counters";
import { espAad, espAadLen, espNonce } from "./esp_aead";
import { esnInfer } from "./esn";
import { greFamily, greHasKey, greKey, greLen, greParse } from "./gre";
import {
  IPV4_HDR, IPV6_HDR, PROTO_ESP, PROTO_GRE, PROTO_IPIP, PROTO_IPV6, PROTO_NONE, PROTO_UDP,
  addrCopy, addrEq, ipDst, ipFamily, ipFragment, ipHl, ipParse, ipProto, ipSetLength, ipSetProto, ipSrc, ipTotal, ipv4Build, ipv4ChecksumOk, ipv6Build,
} from "./ip";
import { innerLength, innerLengthFamily } from "./ipip";
import {
  D_ADDR, D_FAMILY, D_KIND, D_LEN, D_LOCAL, D_OFF, D_PEER, D_PORT, D_PROTO, D_REASON, D_SA, D_VERDICT,
  FLAG_ESN, FLAG_FIXED_REMOTE, FLAG_GRE_KEY, FLAG_REPLAY, FLAG_UDP, KIND_IP, KIND_PAYLOAD, KIND_UDP,
  MODE_GRE, MODE_IPIP, MODE_PAYLOAD, MODE_TRANSPORT, MODE_TRANSPORT_GRE, MODE_TRANSPORT_IPIP, MODE_TUNNEL,
  SA_ALIGN, SA_CTX, SA_FAMILY, SA_FLAGS, SA_GREKEY, SA_HMAC_CTX, SA_ICVLEN, SA_IVLEN, SA_LOCAL, SA_MODE, SA_PEER,
  SA_REMOTE, SA_REPLAY, SA_SALT, SA_SEQLIMIT, SA_SUITE,
  SUITE_AES_CBC, SUITE_AES_CBC_HMAC_SHA256, SUITE_AES_GCM_16, SUITE_CHACHA20_POLY1305,
  VERDICT_DROP, VERDICT_TO_HOST, VERDICT_TO_TUN, HOST_IKE, HOST_STUN,
} from "./layout";
import { inboundPolicyOk } from "./policy";
import { replayAdvance, replayCheck } from "./replay";
import { descInBounds, descPtr, slotPtr } from "./ring";
import { peerLearn, saRec } from "./sa";
import { sadFindSpi, sadFindTunnel } from "./sad";
import { NATT_ESP, NATT_IKE, NATT_KEEPALIVE, NATT_STUN, UDP_HDR, nattClassify } from "./udp_encap";

const DIR: i32 = 0; // counters: inbound block

const HI = memory.data(4, 4);
const MAC = memory.data(32, 16);
const CBC_IV = memory.data(16, 16);
const ADDR16 = memory.data(16, 16);

// The outer context of the packet being processed.
let oFamily: i32 = 0;
let oHdr: usize = 0; // outer IP header (kind 0) or 0
let oHl: i32 = 0;
let oSrc: usize = 0; // remote address (packet bytes or the descriptor's 16)
let oDst: usize = 0; // local address
let oUdp: bool = false; // arrived UDP-encapsulated
let oPort: u16 = 0; // its UDP source port

function drop(d: usize, sa: usize, reason: u16): bool {
  store<u8>(d + D_VERDICT, VERDICT_DROP);
  store<u16>(d + D_REASON, reason);
  countDrop(DIR, sa, reason);
  return false;
}

/** Processes slot i inbound; true when it leaves with a non-DROP verdict. */
export function inboundOne(i: i32): bool {
  const d = descPtr(i);
  store<u8>(d + D_VERDICT, VERDICT_DROP);
  store<u16>(d + D_REASON, 0);
  store<i32>(d + D_SA, -1);
  if (!descInBounds(d)) return drop(d, 0, Reason.BAD_SLOT);
  const slot = slotPtr(i);
  const pkt = slot + <usize>load<u32>(d + D_OFF);
  const len = <i32>load<u32>(d + D_LEN);
  const kind = load<u8>(d + D_KIND);
  oHdr = 0;
  oHl = 0;
  oUdp = false;
  oPort = 0;
  if (kind == KIND_IP) {
    // Outer header: well formed, not a fragment (reassembly is the host's
    // kernel's job), and for IPv4 a header checksum that verifies.
    if (!ipParse(pkt, len) || ipFragment) return drop(d, 0, Reason.MALFORMED);
    if (ipFamily == 4 && !ipv4ChecksumOk(pkt, ipHl)) return drop(d, 0, Reason.MALFORMED);
    oFamily = ipFamily;
    oHdr = pkt;
    oHl = ipHl;
    oSrc = ipSrc(pkt, ipFamily);
    oDst = ipDst(pkt, ipFamily);
    const proto = ipProto;
    const p = pkt + <usize>ipHl;
    const plen = ipTotal - ipHl;
    if (proto == PROTO_UDP) {
      if (plen < UDP_HDR) return drop(d, 0, Reason.MALFORMED);
      const ulen = <i32>bswap<u16>(load<u16>(p + 4));
      if (ulen < UDP_HDR || ulen > plen) return drop(d, 0, Reason.MALFORMED);
      return natt(d, slot, p + UDP_HDR, ulen - UDP_HDR, bswap<u16>(load<u16>(p)));
    }
    return byProto(d, slot, proto, p, plen);
  }
  const family = <i32>load<u8>(d + D_FAMILY);
  if (family != 4 && family != 6) return drop(d, 0, Reason.BAD_SLOT);
  oFamily = family;
  oSrc = d + D_ADDR;
  oDst = d + D_LOCAL;
  if (kind == KIND_UDP) return natt(d, slot, pkt, len, load<u16>(d + D_PORT));
  if (kind == KIND_PAYLOAD) {
    const proto = <i32>load<u8>(d + D_PROTO);
    return byProto(d, slot, proto == 0 ? PROTO_ESP : proto, pkt, len);
  }
  return drop(d, 0, Reason.BAD_SLOT);
}

/** RFC 3948 §2: what a NAT-T datagram's payload is. */
function natt(d: usize, slot: usize, p: usize, len: i32, sport: u16): bool {
  const c = nattClassify(p, len);
  if (c == NATT_KEEPALIVE) return drop(d, 0, Reason.KEEPALIVE);
  if (c == NATT_IKE || c == NATT_STUN) {
    store<u8>(d + D_VERDICT, VERDICT_TO_HOST); // untouched: off/len as given
    store<u8>(d + D_PROTO, c == NATT_STUN ? HOST_STUN : HOST_IKE);
    countOk(DIR, 0, len);
    return true;
  }
  if (c != NATT_ESP) return drop(d, 0, Reason.MALFORMED);
  oUdp = true;
  oPort = sport;
  return espIn(d, slot, p, len);
}

function byProto(d: usize, slot: usize, proto: i32, p: usize, len: i32): bool {
  if (proto == PROTO_ESP) return espIn(d, slot, p, len);
  if (proto == PROTO_IPIP || proto == PROTO_IPV6 || proto == PROTO_GRE) return plainIn(d, slot, proto, p, len);
  return drop(d, 0, Reason.NOT_ESP);
}

/** Plain IP-in-IP / GRE on a trusted port: the SA is found by outer addresses (+ GRE key). */
function plainIn(d: usize, slot: usize, proto: i32, p: usize, len: i32): bool {
  let id: i32;
  let inner = p;
  let n: i32;
  if (proto == PROTO_GRE) {
    if (!greParse(p, len)) return drop(d, 0, Reason.GRE);
    id = sadFindTunnel(MODE_GRE, oFamily, oSrc, oDst, greHasKey, greKey);
    if (id < 0) return drop(d, 0, Reason.NO_SA);
    inner = p + <usize>greLen;
    n = innerLengthFamily(inner, len - greLen, greFamily);
  } else {
    id = sadFindTunnel(MODE_IPIP, oFamily, oSrc, oDst, false, 0);
    if (id < 0) return drop(d, 0, Reason.NO_SA);
    n = innerLength(p, len, proto);
  }
  const sa = saRec(id);
  store<i32>(d + D_SA, id);
  store<u32>(d + D_PEER, load<u32>(sa + SA_PEER));
  if (n < 0) return drop(d, sa, Reason.MALFORMED);
  return deliver(d, slot, sa, inner, n);
}

/** Inner policy check, then TO_TUN with the descriptor pointing at the inner packet. */
function deliver(d: usize, slot: usize, sa: usize, p: usize, n: i32): bool {
  if (!inboundPolicyOk(sa, p, n)) return drop(d, sa, Reason.POLICY);
  store<u32>(d + D_OFF, <u32>(p - slot));
  store<u32>(d + D_LEN, <u32>n);
  store<u8>(d + D_VERDICT, VERDICT_TO_TUN);
  countOk(DIR, sa, n);
  return true;
}

function espIn(d: usize, slot: usize, p: usize, len: i32): bool {
  if (len < 8) return drop(d, 0, Reason.MALFORMED);
  const id = sadFindSpi(bswap<u32>(load<u32>(p)));
  if (id < 0) return drop(d, 0, Reason.NO_SA);
  const sa = saRec(id);
  store<i32>(d + D_SA, id);
  store<u32>(d + D_PEER, load<u32>(sa + SA_PEER));
  const flags = load<u16>(sa + SA_FLAGS);
  const ivLen = <i32>load<u8>(sa + SA_IVLEN);
  const icvLen = <i32>load<u8>(sa + SA_ICVLEN);
  const ctLen = len - 8 - ivLen - icvLen;
  if (ctLen < 2 || (ctLen & (<i32>load<u8>(sa + SA_ALIGN) - 1)) != 0) return drop(d, sa, Reason.MALFORMED);

  // §3.4.3 before decryption; the high ESN bits come from the window (App. A).
  // Without an ICV (suite aes-cbc) nothing vouches for the sequence number or
  // the sender: anti-replay "MUST NOT be enabled unless integrity service
  // also is enabled" (§3.4.3), and a NAT mapping is only followed on a packet
  // that authenticates (as IKE does, RFC 7296 §2.23). Such an SA neither
  // checks nor advances the window, nor learns an address: else one forged
  // datagram carrying its SPI would redirect the peer's traffic or shut
  // the window on every genuine packet.
  const icv = icvLen != 0;
  const st = sa + SA_REPLAY;
  const top = load<u64>(st);
  const esn = (flags & FLAG_ESN) != 0;
  const seqLo = bswap<u32>(load<u32>(p + 4));
  const seq: u64 = esn ? esnInfer(top, load<u32>(st + 8), seqLo) : <u64>seqLo;
  if (icv && (flags & FLAG_REPLAY) != 0) {
    const r = replayCheck(st, seq);
    if (r == 1) return drop(d, sa, Reason.REPLAY);
    if (r != 0) return drop(d, sa, Reason.REPLAY_OLD);
  }
  const data = p + 8 + <usize>ivLen;
  if (!open(sa, p, ivLen, data, ctLen, seq, esn)) return drop(d, sa, Reason.AUTH);
  if (!icv) return trailer(d, slot, sa, data, ctLen, flags); // unauthenticated: no window, no learning
  // A number past the durable reservation is not accepted: after a crash the
  // window restarts at the reservation, and everything this run accepted
  // must count as a replay then (docs/replay.md, "Across restarts").
  const limit = load<u64>(sa + SA_SEQLIMIT);
  if (limit != 0 && seq > limit) return drop(d, sa, Reason.SEQ_UNRESERVED);
  replayAdvance(st, seq); // only after authentication (§3.4.3)
  if (oUdp && seq > top && (flags & (FLAG_UDP | FLAG_FIXED_REMOTE)) == FLAG_UDP) {
    addrCopy(ADDR16, oSrc, oFamily);
    peerLearn(load<u32>(sa + SA_PEER), oFamily, ADDR16, oPort);
  }
  return trailer(d, slot, sa, data, ctLen, flags);
}

/** The decrypted ESP payload and trailer (`ctLen` bytes at `data`): padding check, then decap. */
function trailer(d: usize, slot: usize, sa: usize, data: usize, ctLen: i32, flags: u16): bool {
  // §2.4: pad length, then the padding must be 1, 2, 3, …
  const padLen = <i32>load<u8>(data + <usize>(ctLen - 2));
  const nh = <i32>load<u8>(data + <usize>(ctLen - 1));
  if (padLen + 2 > ctLen) return drop(d, sa, Reason.PADDING);
  const payLen = ctLen - 2 - padLen;
  const padAt = data + <usize>payLen;
  for (let k = 0; k < padLen; k++) {
    if (<i32>load<u8>(padAt + <usize>k) != k + 1) return drop(d, sa, Reason.PADDING);
  }
  if (nh == PROTO_NONE) return drop(d, sa, Reason.DUMMY); // §2.6
  return decap(d, slot, sa, data, payLen, nh, flags);
}

/** The ESP payload (`payLen` bytes at `data`, next header `nh`) per the SA's mode → TO_TUN or DROP. */
function decap(d: usize, slot: usize, sa: usize, data: usize, payLen: i32, nh: i32, flags: u16): bool {
  const mode = load<u8>(sa + SA_MODE);
  switch (mode) {
    case MODE_PAYLOAD: {
      store<u8>(d + D_PROTO, <u8>nh);
      store<u32>(d + D_OFF, <u32>(data - slot));
      store<u32>(d + D_LEN, <u32>payLen);
      store<u8>(d + D_VERDICT, VERDICT_TO_TUN);
      countOk(DIR, sa, payLen);
      return true;
    }
    case MODE_TUNNEL:
    case MODE_TRANSPORT_IPIP: {
      if (nh != PROTO_IPIP && nh != PROTO_IPV6) return drop(d, sa, Reason.NEXT_HEADER);
      if (mode == MODE_TRANSPORT_IPIP && !deliveryOk(sa)) return drop(d, sa, Reason.POLICY);
      const n = innerLength(data, payLen, nh);
      if (n < 0) return drop(d, sa, Reason.MALFORMED);
      return deliver(d, slot, sa, data, n);
    }
    case MODE_TRANSPORT_GRE: {
      if (nh != PROTO_GRE) return drop(d, sa, Reason.NEXT_HEADER);
      if (!deliveryOk(sa)) return drop(d, sa, Reason.POLICY);
      if (!greParse(data, payLen)) return drop(d, sa, Reason.GRE);
      const saHasKey = (flags & FLAG_GRE_KEY) != 0;
      if (saHasKey != greHasKey || (saHasKey && greKey != load<u32>(sa + SA_GREKEY))) return drop(d, sa, Reason.GRE);
      const inner = data + <usize>greLen;
      const n = innerLengthFamily(inner, payLen - greLen, greFamily);
      if (n < 0) return drop(d, sa, Reason.MALFORMED);
      return deliver(d, slot, sa, inner, n);
    }
    case MODE_TRANSPORT:
      return transportIn(d, slot, sa, data, payLen, <u8>nh);
    default:
      return drop(d, sa, Reason.UNSUPPORTED);
  }
}

/**
 * The delivery header of transport-ipip / transport-gre must run between
 * the SA's outer addresses (remote → local). Not checkable when the packet
 * came without its IP header or through a NAT (UDP): then the SA, found by
 * an SPI only this peer knows and authenticated, vouches for it.
 */
function deliveryOk(sa: usize): bool {
  if (oHdr == 0 || oUdp) return true;
  return oFamily == <i32>load<u8>(sa + SA_FAMILY) && addrEq(oSrc, sa + SA_REMOTE, oFamily) && addrEq(oDst, sa + SA_LOCAL, oFamily);
}

/**
 * Transport mode: put the IP header back in front of the payload with the
 * protocol from the ESP trailer (RFC 4303 §3.4.4 last step), or, when the
 * packet came without one, build it from the descriptor's addresses.
 */
function transportIn(d: usize, slot: usize, sa: usize, data: usize, payLen: i32, nh: u8): bool {
  let h: usize;
  let hl: i32;
  if (oHdr != 0) {
    hl = oHl;
    h = data - <usize>hl;
    memory.copy(h, oHdr, <usize>hl);
    ipSetProto(h, oFamily, nh);
    ipSetLength(h, oFamily, hl, hl + payLen);
  } else {
    hl = oFamily == 4 ? IPV4_HDR : IPV6_HDR;
    if (<i32>(data - slot) < hl) return drop(d, sa, Reason.BAD_SLOT);
    h = data - <usize>hl;
    if (oFamily == 4) ipv4Build(h, 0, hl + payLen, 0, false, 64, nh, oSrc, oDst);
    else ipv6Build(h, 0, payLen, nh, 64, oSrc, oDst);
  }
  return deliver(d, slot, sa, h, hl + payLen);
}

/** Verifies the ICV and decrypts in place (RFC 4303 §3.4.4); false = forged, data untouched. */
function open(sa: usize, esp: usize, ivLen: i32, data: usize, ctLen: i32, seq: u64, esn: bool): bool {
  const suite = load<u8>(sa + SA_SUITE);
  const iv = esp + 8;
  const tag = data + <usize>ctLen;
  const aad = espAad(esp, seq, esn);
  const aadLen = espAadLen(esn);
  switch (suite) {
    case SUITE_AES_GCM_16: {
      return gcmOpen(sa + SA_CTX, espNonce(sa, iv), aad, aadLen, data, ctLen, tag);
    }
    case SUITE_CHACHA20_POLY1305: {
      return chachaPolyOpen(sa + SA_CTX, espNonce(sa, iv), aad, aadLen, data, ctLen, tag);
    }
    case SUITE_AES_CBC_HMAC_SHA256: {
      store<u32>(HI, bswap<u32>(<u32>(seq >> 32)));
      hmacSha256(sa + SA_HMAC_CTX, esp, 8 + ivLen + ctLen, HI, esn ? 4 : 0, MAC);
      const good = ctEqual(MAC, tag, 16);
      v128.store(MAC + 16, i64x2.splat(0)); // the truncated half (RFC 4868) is never sent: leave none behind
      if (!good) return false;
      v128.store(CBC_IV, v128.load(iv));
      cbcDecrypt(sa + SA_CTX, CBC_IV, data, ctLen);
      return true;
    }
    case SUITE_AES_CBC: {
      v128.store(CBC_IV, v128.load(iv));
      cbcDecrypt(sa + SA_CTX, CBC_IV, data, ctLen);
      return true;
    }
    default:
      return false;
  }
}
