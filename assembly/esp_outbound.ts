// Outbound: inner packet → SPD → SA → ESP (RFC 4303 §3.3) → outer headers,
// in place in the packet's slot.
//
// Head and tail, as Linux's esp_output does it: first everything that can
// fail is decided (SA, sizes, MTU, room, sequence number) so a dropped packet
// never consumes a sequence number; then the trailer (TFC padding, padding,
// pad length, next header), the ESP header and IV, the seal in place, and
// last the headers in front of ESP.
//
//  tunnel / transport-ipip:      transport:                  transport-gre:
//  [IP][UDP][ESP][IV][inner ][pad][pl][nh][ICV]     [IP'][UDP][ESP][IV][payload]…   […][ESP][IV][GRE][inner]…
//  outer from the SA template      IP' = inner header moved     template + GRE header
//
// The explicit IV of AES-GCM and ChaCha20-Poly1305 is the 64-bit sequence
// number (RFC 4106 §3.1 "MUST NOT repeat for a given key"; RFC 7634 §2), so
// a (key, nonce) pair is never reused while sequence numbers never wrap
// (§3.3.3, enforced below). AES-CBC needs an unpredictable IV (RFC 3602
// §2.4): IV = AES_K(ivSeed ‖ seq64), i.e. the encryption of a nonce under the
// SA's own key — the method of NIST SP 800-38A Appendix C — unique per packet
// and unpredictable without the key.
import { cbcEncrypt, cbcEspIv } from "./crypto/cbc";
import { chachaPolySeal } from "./crypto/chacha20poly1305";
import { gcmSeal } from "./crypto/gcm";
import { hmacSha256 } from "./crypto/hmac_sha256";
import { Reason, countDrop, countOk } from "./counters";
import { espAad, espAadLen, espNonce } from "./esp_aead";
import { greHeaderLen, greWrite } from "./gre";
import { IPV4_HDR, IPV6_HDR, IP4_DST, IP4_ID, IP6_DST, PROTO_ESP, PROTO_GRE, PROTO_IPIP, PROTO_IPV6, PROTO_UDP, ipFamily, ipHl, ipParse, ipProto, ipSetLength, ipSetProto, ipTotal, ipv4SetChecksum, addrCopy } from "./ip";
import { innerLength, ipipProtoOf } from "./ipip";
import {
  ACTION_BYPASS, ACTION_DISCARD, DIR_OUT, D_ADDR, D_FAMILY, D_HDRLEN, D_INNER_MTU, D_LEN, D_LOCAL, D_LPORT, D_MTU, D_OFF, D_PEER, D_PORT,
  D_PROTO, D_REASON, D_SA, D_VERDICT, FLAG_ESN, FLAG_NEEDS_REKEY, FLAG_UDP, KAT_IV_MAX,
  MODE_GRE, MODE_IPIP, MODE_PAYLOAD, MODE_TRANSPORT, MODE_TRANSPORT_GRE, MODE_TRANSPORT_IPIP, MODE_TUNNEL,
  SA_ALIGN, SA_CTX, SA_DIR, SA_DPORT, SA_FAMILY, SA_FLAGS, SA_HMAC_CTX, SA_ICVLEN, SA_IPID, SA_IVLEN, SA_IVSEED,
  SA_LOCAL, SA_MODE, SA_MTU, SA_PEER, SA_REMOTE, SA_SALT, SA_SEQ, SA_SEQLIMIT, SA_SPI, SA_SPORT, SA_SUITE, SA_TFC, SA_TMPL,
  SA_TMPLLEN, SLOT_SIZE, MAX_PACKET, SUITE_AES_CBC, SUITE_AES_CBC_HMAC_SHA256, SUITE_AES_GCM_16, SUITE_CHACHA20_POLY1305,
  VERDICT_BYPASS, VERDICT_DROP, VERDICT_TO_NETWORK,
} from "./layout";
import { descInBounds, descPtr, slotPtr } from "./ring";
import { answerTooBig, innerOf, protectedRoom } from "./too_big";
import { saLive, saRefreshFromPeer } from "./sa";
import { FK_DST, FK_FAMILY, FK_PROTO, FLOW_KEY, flowKeyFromPacket, polAction, polSa, spdLookup } from "./spd";
import { udpChecksumV6, udpSetLength } from "./udp_encap";

const DIR: i32 = 1; // counters: outbound block

// Scratch (single-threaded instance).
const HI = memory.data(4, 4); // seqHi, big-endian, appended to the HMAC input (RFC 4303 §2.2.1)
const MAC = memory.data(32, 16);
const CBC_IV = memory.data(16, 16); // chaining copy: the IV on the wire stays as sent
const KAT_IV = memory.data(KAT_IV_MAX, 16);
let katIvLen: i32 = 0;
let katRec: usize = 0; // the one SA record the override is for; 0 = disarmed

/**
 * Known-answer tests only: the next ESP seal on the SA whose record is `rec`
 * uses the KAT_IV_MAX-byte buffer at katIvBuffer() as its IV instead of the
 * one derived from the sequence number (if `len` equals the SA's IV length).
 * It exists so the published vectors, whose IVs are arbitrary, can be
 * reproduced bit for bit by the self-test, which `wesp up` runs on the release
 * build. Bound to one SA and, through katDisarm() at the end of every
 * processOutbound call, to one call: a fixed IV that outlived a dropped
 * packet would seal real traffic under a repeated (key, nonce) — RFC 4106
 * §3.1, RFC 7634 §2 — or a predictable CBC IV (RFC 3602 §2.4).
 */
export function katIvBuffer(): usize {
  return KAT_IV;
}
export function katArm(rec: usize, len: i32): void {
  katRec = rec;
  katIvLen = len;
}
export function katDisarm(): void {
  katRec = 0;
  katIvLen = 0;
}

function drop(d: usize, sa: usize, reason: u16): bool {
  store<u8>(d + D_VERDICT, VERDICT_DROP);
  store<u16>(d + D_REASON, reason);
  countDrop(DIR, sa, reason);
  return false;
}

/**
 * Over the SA's path MTU `mtu`: counted as a TOO_BIG drop, then answered
 * (too_big.ts) for an inner MTU of `inner` bytes.
 */
function tooBig(d: usize, pkt: usize, off: i32, len: i32, sa: usize, mtu: i32, inner: i32): bool {
  store<u16>(d + D_MTU, <u16>mtu);
  drop(d, sa, Reason.TOO_BIG);
  answerTooBig(d, pkt, off, len, inner);
  return false;
}

/** Processes slot i outbound; true when it leaves with a non-DROP verdict. */
export function outboundOne(i: i32): bool {
  const d = descPtr(i);
  store<u8>(d + D_VERDICT, VERDICT_DROP);
  store<u16>(d + D_REASON, 0);
  store<u32>(d + D_HDRLEN, 0); // hdrLen and mtu
  store<u16>(d + D_INNER_MTU, 0);
  if (!descInBounds(d)) return drop(d, 0, Reason.BAD_SLOT);
  const off = <i32>load<u32>(d + D_OFF);
  const len = <i32>load<u32>(d + D_LEN);
  if (len > MAX_PACKET) return drop(d, 0, Reason.TOO_BIG); // inner packets are at most 9,000 bytes
  const slot = slotPtr(i);
  let saId = load<i32>(d + D_SA);
  if (saId < 0) {
    // RFC 4301 §5.1: every outbound packet is matched against the SPD.
    if (!flowKeyFromPacket(slot + <usize>off, len, false)) return drop(d, 0, Reason.MALFORMED);
    const pi = spdLookup(FLOW_KEY);
    if (pi < 0) return drop(d, 0, Reason.NO_POLICY);
    const action = polAction(pi);
    if (action == ACTION_DISCARD) return drop(d, 0, Reason.DISCARD);
    if (action == ACTION_BYPASS) {
      // The packet leaves as it is, by a raw socket of its own family to its
      // own destination: both go into the descriptor so the host need not
      // read the packet (FLOW_KEY holds them, outbound view: dst = remote).
      const family = <i32>load<u8>(FLOW_KEY + FK_FAMILY);
      store<u8>(d + D_FAMILY, <u8>family);
      store<u8>(d + D_PROTO, load<u8>(FLOW_KEY + FK_PROTO));
      store<u16>(d + D_PORT, 0);
      addrCopy(d + D_ADDR, FLOW_KEY + FK_DST, family);
      store<u8>(d + D_VERDICT, VERDICT_BYPASS);
      countOk(DIR, 0, len);
      return true;
    }
    saId = polSa(pi);
  }
  const sa = saLive(saId);
  if (sa == 0 || load<u8>(sa + SA_DIR) != DIR_OUT) {
    store<i32>(d + D_SA, -1);
    return drop(d, 0, Reason.NO_SA);
  }
  store<i32>(d + D_SA, saId);
  store<u32>(d + D_PEER, load<u32>(sa + SA_PEER));
  saRefreshFromPeer(sa);
  const mode = load<u8>(sa + SA_MODE);
  if (mode == MODE_IPIP || mode == MODE_GRE) return plainOut(d, slot, off, len, sa, mode);
  return espOut(d, slot, off, len, sa, mode);
}

/**
 * Fills the TO_NETWORK part of the descriptor. `proto` is the outer IP
 * protocol (50 ESP, 17 UDP, 4/41 IP-in-IP, 47 GRE): the host picks the raw
 * socket of a plain tunnel by it without reading the header.
 */
function toNetwork(d: usize, slot: usize, start: usize, total: i32, hdrLen: i32, sa: usize, dst: usize, family: i32, proto: u8): void {
  const udp = (load<u16>(sa + SA_FLAGS) & FLAG_UDP) != 0;
  store<u32>(d + D_OFF, <u32>(start - slot));
  store<u32>(d + D_LEN, <u32>total);
  store<u16>(d + D_HDRLEN, <u16>hdrLen);
  store<u8>(d + D_FAMILY, <u8>family);
  store<u8>(d + D_PROTO, proto);
  store<u16>(d + D_PORT, udp ? load<u16>(sa + SA_DPORT) : 0);
  store<u16>(d + D_LPORT, udp ? load<u16>(sa + SA_SPORT) : 0);
  addrCopy(d + D_ADDR, dst, family);
  addrCopy(d + D_LOCAL, sa + SA_LOCAL, family);
  store<u8>(d + D_VERDICT, VERDICT_TO_NETWORK);
}

/** Copies the SA's outer IP template to `h` and sets its id/length/checksum (IPv4) or payload length (IPv6). */
function outerIp(h: usize, sa: usize, total: i32, proto: u8): i32 {
  const family = <i32>load<u8>(sa + SA_FAMILY);
  const t = sa + SA_TMPL;
  if (family == 4) {
    v128.store(h, v128.load(t));
    store<u32>(h + 16, load<u32>(t + 16));
    if (proto != 0) ipSetProto(h, 4, proto);
    const id = load<u16>(sa + SA_IPID);
    store<u16>(sa + SA_IPID, id + 1);
    store<u16>(h + IP4_ID, bswap<u16>(id));
    ipSetLength(h, 4, IPV4_HDR, total);
    return IPV4_HDR;
  }
  v128.store(h, v128.load(t));
  v128.store(h + 16, v128.load(t + 16));
  store<u64>(h + 32, load<u64>(t + 32));
  if (proto != 0) ipSetProto(h, 6, proto);
  ipSetLength(h, 6, IPV6_HDR, total);
  return IPV6_HDR;
}

/** Plain IP-in-IP (RFC 2003/2473) or GRE (RFC 2784) without ESP, for trusted ports. */
function plainOut(d: usize, slot: usize, off: i32, len: i32, sa: usize, mode: u8): bool {
  const pkt = slot + <usize>off;
  const nh = ipipProtoOf(load<u8>(pkt));
  if (len < 1 || nh == 0) return drop(d, sa, Reason.MALFORMED);
  const n = innerLength(pkt, len, nh);
  if (n < 0) return drop(d, sa, Reason.MALFORMED);
  const g = mode == MODE_GRE ? greHeaderLen(sa) : 0;
  const ipLen = <i32>load<u16>(sa + SA_TMPLLEN);
  const total = ipLen + g + n;
  const mtu = <i32>load<u16>(sa + SA_MTU);
  if (mtu != 0) {
    const room = protectedRoom(sa, mode, mtu, 0);
    if (n > room) return tooBig(d, pkt, off, len, sa, mtu, room);
  }
  if (off < ipLen + g) return drop(d, sa, Reason.BAD_SLOT);
  const start = pkt - <usize>(ipLen + g);
  if (mode == MODE_GRE) greWrite(pkt - <usize>g, sa, nh == PROTO_IPIP ? 4 : 6);
  const proto = mode == MODE_GRE ? PROTO_GRE : nh;
  outerIp(start, sa, total, proto);
  toNetwork(d, slot, start, total, ipLen, sa, sa + SA_REMOTE, <i32>load<u8>(sa + SA_FAMILY), proto);
  countOk(DIR, sa, n);
  return true;
}

// What ESP protects, decided by espPayload (module state: no allocation).
let pOff: i32 = 0; // slot offset of the protected data
let pLen: i32 = 0; // its length
let pNh: u8 = 0; // next header for the trailer
let pIpHdr: i32 = 0; // transport: bytes of the packet's own IP header
let pFamily: i32 = 0; // transport / transport-gre: family of the inner packet

/** Per mode, what ESP will protect; false when the inner packet is unusable. */
function espPayload(d: usize, pkt: usize, off: i32, len: i32, sa: usize, mode: u8): bool {
  pOff = off;
  pLen = len;
  pIpHdr = 0;
  switch (mode) {
    case MODE_TUNNEL:
    case MODE_TRANSPORT_IPIP: {
      // transport-ipip is tunnel mode byte for byte: the RFC 2003 delivery
      // header CE→CE is the outer header, ESP sits between it and the inner
      // packet with next header 4/41; only the SA's selectors differ.
      pNh = len > 0 ? ipipProtoOf(load<u8>(pkt)) : 0;
      pLen = pNh == 0 ? -1 : innerLength(pkt, len, pNh);
      return pLen >= 0;
    }
    case MODE_TRANSPORT: {
      if (!ipParse(pkt, len)) return false;
      pIpHdr = ipHl;
      pFamily = ipFamily;
      pNh = <u8>ipProto;
      pOff = off + ipHl;
      pLen = ipTotal - ipHl;
      return true;
    }
    case MODE_TRANSPORT_GRE: {
      const v = len > 0 ? ipipProtoOf(load<u8>(pkt)) : 0;
      const n = v == 0 ? -1 : innerLength(pkt, len, v);
      if (n < 0) return false;
      const g = greHeaderLen(sa);
      pFamily = v == PROTO_IPIP ? 4 : 6;
      pOff = off - g;
      pLen = n + g;
      pNh = PROTO_GRE;
      return true;
    }
    default: // MODE_PAYLOAD
      pNh = load<u8>(d + D_PROTO);
      return true;
  }
}

function espOut(d: usize, slot: usize, off: i32, len: i32, sa: usize, mode: u8): bool {
  const flags = load<u16>(sa + SA_FLAGS);
  if ((flags & FLAG_NEEDS_REKEY) != 0) return drop(d, sa, Reason.SEQ_EXHAUSTED);
  const pkt = slot + <usize>off;
  if (!espPayload(d, pkt, off, len, sa, mode)) return drop(d, sa, Reason.MALFORMED);

  // Sizes, decided before anything is written: RFC 4303 §2.4 padding to the
  // block size and 4-byte alignment; §2.7 TFC padding only where the
  // receiver can find the real end (an inner IP length: next header 4, 41,
  // or GRE carrying IP).
  const ivLen = <i32>load<u8>(sa + SA_IVLEN);
  const icvLen = <i32>load<u8>(sa + SA_ICVLEN);
  const align = <i32>load<u8>(sa + SA_ALIGN);
  const tfcTarget = <i32>load<u16>(sa + SA_TFC);
  const tfc = tfcTarget > pLen && (pNh == PROTO_IPIP || pNh == PROTO_IPV6 || pNh == PROTO_GRE) ? tfcTarget - pLen : 0;
  const pad = (align - ((pLen + tfc + 2) & (align - 1))) & (align - 1);
  const ctLen = pLen + tfc + pad + 2;
  const front = pIpHdr + <i32>load<u16>(sa + SA_TMPLLEN) + 8 + ivLen; // template: IP + UDP (transport: UDP or nothing)
  const startOff = pOff - front;
  const endOff = pOff + ctLen + icvLen;
  const total = endOff - startOff;
  const mtu = <i32>load<u16>(sa + SA_MTU);
  if (mtu != 0) {
    // total ≤ mtu exactly when the protected bytes fit the room; the inner
    // packet is pLen less what the mode adds to it (transport-gre: GRE) plus
    // what it keeps out of ESP (transport: its IP header).
    const room = protectedRoom(sa, mode, mtu, pIpHdr);
    if (pLen + tfc > room) return tooBig(d, pkt, off, len, sa, mtu, innerOf(mode, room, greHeaderLen(sa), pIpHdr));
  }
  if (startOff < 0 || endOff > SLOT_SIZE) return drop(d, sa, Reason.TOO_BIG);

  // RFC 4303 §3.3.3: the counter must not cycle. The last number an SA may
  // send is 2^32 - 1 (2^64 - 1 with ESN); after it the SA needs a rekey.
  const esn = (flags & FLAG_ESN) != 0;
  const seq = load<u64>(sa + SA_SEQ);
  if (!esn && seq > 0xffffffff) {
    store<u16>(sa + SA_FLAGS, flags | FLAG_NEEDS_REKEY);
    return drop(d, sa, Reason.SEQ_EXHAUSTED);
  }
  // Past the durable reservation: not sent, so the number (and its nonce)
  // stays unused until the host has made a new reservation durable.
  const limit = load<u64>(sa + SA_SEQLIMIT);
  if (limit != 0 && seq > limit) return drop(d, sa, Reason.SEQ_UNRESERVED);
  store<u64>(sa + SA_SEQ, seq + 1);
  if (esn ? seq == 0xffffffffffffffff : seq == 0xffffffff) store<u16>(sa + SA_FLAGS, flags | FLAG_NEEDS_REKEY);

  const start = slot + <usize>startOff;
  const data = slot + <usize>pOff;
  const esp = data - <usize>(8 + ivLen);
  // Transport: move the packet's IP header to the front before ESP overwrites it.
  if (pIpHdr != 0) memory.copy(start, pkt, <usize>pIpHdr);
  if (mode == MODE_TRANSPORT_GRE) greWrite(data, sa, pFamily);
  writeTrailer(data + <usize>pLen, tfc, pad, pNh);
  store<u32>(esp, bswap<u32>(load<u32>(sa + SA_SPI)));
  store<u32>(esp + 4, bswap<u32>(<u32>seq));
  seal(sa, esp, ivLen, data, ctLen, seq, esn);
  frontHeaders(d, slot, start, total, sa, mode);
  countOk(DIR, sa, len);
  return true;
}

/** Trailer at `t`: TFC zeros, padding 1, 2, 3, … (RFC 4303 §2.4), pad length, next header. */
function writeTrailer(t: usize, tfc: i32, pad: i32, nh: u8): void {
  if (tfc > 0) memory.fill(t, 0, <usize>tfc);
  t += <usize>tfc;
  for (let k = 0; k < pad; k++) store<u8>(t + <usize>k, <u8>(k + 1));
  t += <usize>pad;
  store<u8>(t, <u8>pad);
  store<u8>(t + 1, nh);
}

/** The headers in front of ESP (IP from the template or the moved transport header, UDP), then the descriptor. */
function frontHeaders(d: usize, slot: usize, start: usize, total: i32, sa: usize, mode: u8): void {
  const udp = (load<u16>(sa + SA_FLAGS) & FLAG_UDP) != 0 && mode != MODE_PAYLOAD;
  let ipLen = 0;
  let dst: usize = sa + SA_REMOTE;
  let family = <i32>load<u8>(sa + SA_FAMILY);
  if (mode == MODE_TRANSPORT) {
    ipLen = pIpHdr;
    family = pFamily;
    dst = start + (family == 4 ? IP4_DST : IP6_DST);
    if (udp) memory.copy(start + <usize>ipLen, sa + SA_TMPL, 8);
    ipSetProto(start, family, udp ? PROTO_UDP : PROTO_ESP);
    ipSetLength(start, family, ipLen, total);
  } else if (mode != MODE_PAYLOAD) {
    ipLen = outerIp(start, sa, total, 0);
    if (udp) store<u64>(start + <usize>ipLen, load<u64>(sa + SA_TMPL + <usize>ipLen));
  }
  if (udp) {
    const u = start + <usize>ipLen;
    udpSetLength(u, total - ipLen);
    if (family == 6) udpChecksumV6(start, u, total - ipLen);
  }
  toNetwork(d, slot, start, total, ipLen + (udp ? 8 : 0), sa, dst, family, udp ? PROTO_UDP : PROTO_ESP);
}

/** IV, then encryption and ICV in place (RFC 4303 §3.3.2). */
function seal(sa: usize, esp: usize, ivLen: i32, data: usize, ctLen: i32, seq: u64, esn: bool): void {
  const suite = load<u8>(sa + SA_SUITE);
  const iv = esp + 8;
  const tag = data + <usize>ctLen;
  const kat = katRec == sa && katIvLen == ivLen;
  if (katRec == sa) katDisarm(); // once
  if (kat) {
    memory.copy(iv, KAT_IV, <usize>ivLen);
  } else if (ivLen == 8) {
    store<u64>(iv, bswap<u64>(seq));
  } else {
    cbcEspIv(sa + SA_CTX, sa + SA_IVSEED, seq, iv); // 8 IVs per AES pass, cached
  }
  const aad = espAad(esp, seq, esn);
  const aadLen = espAadLen(esn);
  switch (suite) {
    case SUITE_AES_GCM_16: {
      gcmSeal(sa + SA_CTX, espNonce(sa, iv), aad, aadLen, data, ctLen, tag);
      break;
    }
    case SUITE_CHACHA20_POLY1305: {
      chachaPolySeal(sa + SA_CTX, espNonce(sa, iv), aad, aadLen, data, ctLen, tag);
      break;
    }
    case SUITE_AES_CBC_HMAC_SHA256: {
      v128.store(CBC_IV, v128.load(iv));
      cbcEncrypt(sa + SA_CTX, CBC_IV, data, ctLen);
      // RFC 4303 §2.2.1 / §3.3.2.1: with ESN the high 32 bits are appended
      // to the ICV input (never sent); RFC 4868: ICV = first 128 bits.
      store<u32>(HI, bswap<u32>(<u32>(seq >> 32)));
      hmacSha256(sa + SA_HMAC_CTX, esp, 8 + ivLen + ctLen, HI, esn ? 4 : 0, MAC);
      v128.store(tag, v128.load(MAC));
      v128.store(MAC + 16, i64x2.splat(0)); // the truncated half (RFC 4868) is never sent: leave none behind
      break;
    }
    case SUITE_AES_CBC: {
      v128.store(CBC_IV, v128.load(iv));
      cbcEncrypt(sa + SA_CTX, CBC_IV, data, ctLen);
      break;
    }
    default:
      break;
  }
}
