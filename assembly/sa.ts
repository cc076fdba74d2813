// Security Associations: the fixed-size runtime record, the parameter block
// the host fills, install and removal, the peer table and the pool of large
// replay bitmaps. (Record and parameter layouts are drawn in layout.ts.)
//
// Everything an SA needs on the packet path is precomputed here, once: the
// key schedule (no per-packet key expansion), IV/ICV lengths and padding
// alignment, and the outer IP (+ UDP) header template that outbound copies in
// front of each packet (VPP's split between config and runtime record).
//
// Memory: maxSas records are reserved by init(), so installing or removing
// an SA never grows memory; both are safe between batches, never inside one.
import { arenaAlloc } from "./arena";
import { wipe } from "./crypto/ct";
import { AES_CTX_SIZE, aesInit } from "./crypto/aes";
import { GCM_CTX_SIZE, gcmInit, gcmWipeScratch } from "./crypto/gcm";
import { cbcWipeScratch } from "./crypto/cbc";
import { chachaPolyWipeScratch } from "./crypto/chacha20poly1305";
import { hmacSha256Init, hmacSha256WipeScratch } from "./crypto/hmac_sha256";
import { espAeadWipe } from "./esp_aead";
import { replayInit, replayMarkBelow, replayWords, REPLAY_HDR_SIZE } from "./replay";
import { IPV4_HDR, IPV6_HDR, PROTO_ESP, PROTO_GRE, PROTO_IPIP, PROTO_UDP, ipv4Build, ipv6Build } from "./ip";
import { sadFindSpi, sadInsert, sadRemove, tunnelKey } from "./sad";
import {
  DIR_IN, DIR_OUT, ERR_DUP_SPI, ERR_FULL, ERR_NO_INTEGRITY, ERR_NO_LARGE_WINDOW, ERR_NOT_FOUND, ERR_PARAM,
  FLAG_ALLOW_NO_INTEGRITY, FLAG_DF, FLAG_PRIOR_SEEN, FLAG_ESN, FLAG_REPLAY, FLAG_UDP,
  MODE_GRE, MODE_IPIP, MODE_PAYLOAD, MODE_TRANSPORT,
  PEER_ADDR, PEER_FAMILY, PEER_LEARNED, PEER_PORT, PEER_SIZE, PEER_VERSION,
  SAP_DIR, SAP_DPORT, SAP_FAMILY, SAP_FLAGS, SAP_GREKEY, SAP_HMACKEY, SAP_IPID, SAP_IVSEED, SAP_KEY, SAP_KEYLEN,
  SAP_LOCAL, SAP_MODE, SAP_MTU, SAP_PEER, SAP_REMOTE, SAP_SALT, SAP_SEQ, SAP_SEQLIMIT, SAP_SIZE, SAP_SPI, SAP_SPORT, SAP_SUITE,
  SAP_TFC, SAP_TOS, SAP_TTL, SAP_WINDOW,
  SA_ALIGN, SA_CTX, SA_CTX_SIZE, SA_DIR, SA_DPORT, SA_FAMILY, SA_FLAGS, SA_GREKEY, SA_HMAC_CTX, SA_ICVLEN, SA_IPID,
  SA_IVLEN, SA_IVSEED, SA_LARGE, SA_LOCAL, SA_MODE, SA_MTU, SA_NEXT, SA_PEER, SA_PEERVER, SA_REMOTE, SA_REPLAY,
  SA_REPLAY_INLINE_BYTES, SA_SALT, SA_SEQ, SA_SEQLIMIT, SA_SIZE, SA_SPI, SA_SPORT, SA_STATE, SA_SUITE, SA_TFC, SA_TMPL,
  SA_TMPLLEN, SA_TOS, SA_TTL, SA_WINDOW, MAX_PACKET,
  SUITE_AES_CBC, SUITE_AES_CBC_HMAC_SHA256, SUITE_AES_GCM_16, SUITE_CHACHA20_POLY1305, SUITE_NONE,
} from "./layout";

let records: usize = 0;
let capacity: i32 = 0;
let highWater: i32 = 0; // ids below this have been handed out at least once
let freeHead: i32 = -1; // free list threaded through SA_NEXT
let peers: usize = 0;
let params: usize = 0;
let largePool: usize = 0;
let largeBlockBytes: usize = 0;
let largeFree: i32 = -1; // free list: first u32 of a free block = next free index
let largeCount: i32 = 0;

/**
 * Reserves `maxSas` records (SA_SIZE each), the peer table (PEER_SIZE per
 * peer id < maxSas), the parameter block and `largeBlocks` replay bitmaps for
 * windows too big to sit inline (replayWords(65536) × 8 bytes each).
 */
export function saInit(maxSas: i32, largeBlocks: i32): bool {
  if (AES_CTX_SIZE > SA_HMAC_CTX || GCM_CTX_SIZE > SA_CTX_SIZE) return false; // contexts must fit the record
  records = arenaAlloc(<usize>maxSas * <usize>SA_SIZE, 64);
  peers = arenaAlloc(<usize>maxSas * <usize>PEER_SIZE, 64);
  params = arenaAlloc(<usize>SAP_SIZE, 64);
  largeBlockBytes = <usize>replayWords(65536) << 3;
  largePool = largeBlocks > 0 ? arenaAlloc(<usize>largeBlocks * largeBlockBytes, 64) : 1;
  if (records == 0 || peers == 0 || params == 0 || largePool == 0) return false;
  capacity = maxSas;
  largeCount = largeBlocks;
  for (let i = 0; i < largeBlocks; i++) store<i32>(largeBlock(i), i + 1 < largeBlocks ? i + 1 : -1);
  largeFree = largeBlocks > 0 ? 0 : -1;
  return true;
}

/** First SA record (saRec(0)): the records are one block of capacity × SA_SIZE bytes. */
export function saRecordsPtr(): usize {
  return records;
}

export function saParamBlock(): usize {
  return params;
}

/** Record of SA `id`; the caller has checked 0 ≤ id < saCapacity(). */
// @ts-ignore: decorator
@inline export function saRec(id: i32): usize {
  return records + <usize>id * <usize>SA_SIZE;
}

/** Ids handed out so far (every live SA id is below this). */
export function saCount(): i32 {
  return highWater;
}

export function saCapacity(): i32 {
  return capacity;
}

/** Record of a live SA, or 0 for any id that is not one. */
export function saLive(id: i32): usize {
  if (id < 0 || id >= highWater) return 0;
  const r = saRec(id);
  return load<u8>(r + SA_STATE) == 1 ? r : 0;
}

// @ts-ignore: decorator
@inline export function peerRec(peerId: u32): usize {
  return peers + <usize>peerId * <usize>PEER_SIZE;
}

function largeBlock(i: i32): usize {
  return largePool + <usize>i * largeBlockBytes;
}

function isEsp(suite: u8): bool {
  return suite != SUITE_NONE;
}

/** Checks the parameter block; 0 when it describes a valid SA, else an ERR_* code. */
function validate(p: usize): i32 {
  const dir = load<u8>(p + SAP_DIR), suite = load<u8>(p + SAP_SUITE), mode = load<u8>(p + SAP_MODE);
  const flags = <u16>load<u8>(p + SAP_FLAGS), keyLen = <i32>load<u8>(p + SAP_KEYLEN);
  const family = load<u8>(p + SAP_FAMILY), window = load<u32>(p + SAP_WINDOW);
  const seq = load<u64>(p + SAP_SEQ);
  if (dir > DIR_OUT || suite > SUITE_AES_CBC || mode > MODE_PAYLOAD) return ERR_PARAM;
  if (family != 4 && family != 6) return ERR_PARAM;
  if (load<u32>(p + SAP_PEER) >= <u32>capacity) return ERR_PARAM;
  const plain = mode == MODE_IPIP || mode == MODE_GRE;
  if (plain != (suite == SUITE_NONE)) return ERR_PARAM; // ESP modes need a suite, plain tunnels none
  if (plain && (flags & FLAG_UDP) != 0) return ERR_PARAM;
  if (suite == SUITE_AES_CBC && (flags & FLAG_ALLOW_NO_INTEGRITY) == 0) return ERR_NO_INTEGRITY;
  if (suite == SUITE_CHACHA20_POLY1305 && keyLen != 32) return ERR_PARAM;
  if (suite != SUITE_CHACHA20_POLY1305 && suite != SUITE_NONE && keyLen != 16 && keyLen != 24 && keyLen != 32) return ERR_PARAM;
  if (window != 0 && (window < 32 || window > 65536)) return ERR_PARAM;
  if (isEsp(suite)) {
    // RFC 4303 §3.3.3: sequence number 0 is never sent (the first packet carries 1).
    if (seq == 0) return ERR_PARAM;
    if ((flags & FLAG_ESN) == 0 && seq > 0xffffffff) return ERR_PARAM;
    // RFC 4303 §2.1: SPI 0 is reserved and never sent; only the KAT-only
    // payload mode accepts it (one published vector uses it).
    if (mode != MODE_PAYLOAD && load<u32>(p + SAP_SPI) == 0) return ERR_PARAM;
  }
  if (<i32>load<u16>(p + SAP_TFC) > MAX_PACKET) return ERR_PARAM;
  return 0;
}

/**
 * Installs the SA described by the parameter block. Returns its id (≥ 0) or
 * a negative ERR_* code. Inbound ESP SAs are entered in the SAD by SPI,
 * inbound plain tunnels by remote address.
 */
export function saAddFromParams(): i32 {
  const p = params;
  const err = validate(p);
  if (err != 0) return err;
  const dir = load<u8>(p + SAP_DIR), suite = load<u8>(p + SAP_SUITE), mode = load<u8>(p + SAP_MODE);
  const spi = load<u32>(p + SAP_SPI);
  if (dir == DIR_IN && isEsp(suite) && sadFindSpi(spi) >= 0) return ERR_DUP_SPI;

  // Large replay windows take a pool block; reserve it before the record.
  const window = load<u32>(p + SAP_WINDOW);
  let large: i32 = -1;
  if (dir == DIR_IN && window != 0 && (<usize>replayWords(window) << 3) > <usize>SA_REPLAY_INLINE_BYTES) {
    if (largeFree < 0) return ERR_NO_LARGE_WINDOW;
    large = largeFree;
    largeFree = load<i32>(largeBlock(large));
  }
  let id: i32;
  if (freeHead >= 0) {
    id = freeHead;
    freeHead = load<i32>(saRec(id) + SA_NEXT);
    memory.fill(saRec(id), 0, <usize>SA_SIZE);
  } else if (highWater < capacity) {
    // Never handed out: still the zeroed bytes arenaAlloc gave saInit (nothing
    // writes a record above highWater). Not clearing it again spares an
    // install of 100,000 SAs a pass over 262 MB of fresh memory (issue 9).
    id = highWater++;
  } else {
    if (large >= 0) { store<i32>(largeBlock(large), largeFree); largeFree = large; }
    return ERR_FULL;
  }
  const r = saRec(id);
  fillRecord(r, p, large);
  if (dir == DIR_IN) {
    if (isEsp(suite)) sadInsert(id, spi);
    else sadInsert(id, tunnelKey(r + SA_REMOTE, <i32>load<u8>(r + SA_FAMILY), mode));
  } else {
    store<i32>(r + SA_NEXT, -1);
  }
  store<u8>(r + SA_STATE, 1);
  return id;
}

// The sizes a suite and a mode give an SA record (also asked without a
// record by api.ts innerMtu, for the host's config check).

/** RFC 4106 §3.1 / RFC 7634 §2: 8-byte explicit IV; RFC 3602 §2.1: 16-byte IV. */
export function suiteIvLen(suite: u8): i32 {
  return suite == SUITE_NONE ? 0 : suite == SUITE_AES_CBC || suite == SUITE_AES_CBC_HMAC_SHA256 ? 16 : 8;
}

/** 16-byte ICV (RFC 4106, RFC 7634, RFC 4868 HMAC-SHA-256-128); none for plain tunnels and AES-CBC alone. */
export function suiteIcvLen(suite: u8): i32 {
  return suite == SUITE_NONE || suite == SUITE_AES_CBC ? 0 : 16;
}

/** RFC 4303 §2.4: pad to the cipher block size (CBC) and to 4 bytes in any case. */
export function suiteAlign(suite: u8): i32 {
  return suite == SUITE_AES_CBC || suite == SUITE_AES_CBC_HMAC_SHA256 ? 16 : 4;
}

/**
 * Bytes of the outer header template: IPv4 (20) or IPv6 (40), + UDP (8,
 * RFC 3948 §2.1). Transport modes carry their own IP header: only what
 * follows it.
 */
export function templateLen(mode: u8, family: i32, udp: bool): i32 {
  const ip = mode == MODE_TRANSPORT || mode == MODE_PAYLOAD ? 0 : family == 4 ? IPV4_HDR : IPV6_HDR;
  return ip + (udp && mode != MODE_PAYLOAD ? 8 : 0);
}

function fillRecord(r: usize, p: usize, large: i32): void {
  const dir = load<u8>(p + SAP_DIR), suite = load<u8>(p + SAP_SUITE), mode = load<u8>(p + SAP_MODE);
  const pflags = <u16>load<u8>(p + SAP_FLAGS);
  let flags = pflags & ~(FLAG_ALLOW_NO_INTEGRITY | FLAG_PRIOR_SEEN);
  const window = load<u32>(p + SAP_WINDOW);
  if (dir == DIR_IN && window != 0) flags |= FLAG_REPLAY;
  store<u8>(r + SA_DIR, dir);
  store<u8>(r + SA_SUITE, suite);
  store<u8>(r + SA_MODE, mode);
  store<u16>(r + SA_FLAGS, flags);
  store<u8>(r + SA_IVLEN, <u8>suiteIvLen(suite));
  store<u8>(r + SA_ICVLEN, <u8>suiteIcvLen(suite));
  store<u8>(r + SA_ALIGN, <u8>suiteAlign(suite));
  store<u32>(r + SA_SPI, load<u32>(p + SAP_SPI));
  store<u32>(r + SA_PEER, load<u32>(p + SAP_PEER));
  store<u64>(r + SA_SEQ, load<u64>(p + SAP_SEQ));
  store<u64>(r + SA_SEQLIMIT, load<u64>(p + SAP_SEQLIMIT));
  store<u8>(r + SA_FAMILY, load<u8>(p + SAP_FAMILY));
  store<u8>(r + SA_TTL, load<u8>(p + SAP_TTL));
  store<u8>(r + SA_TOS, load<u8>(p + SAP_TOS));
  store<u16>(r + SA_IPID, load<u16>(p + SAP_IPID));
  store<u16>(r + SA_MTU, load<u16>(p + SAP_MTU));
  store<u16>(r + SA_TFC, load<u16>(p + SAP_TFC));
  store<u16>(r + SA_SPORT, load<u16>(p + SAP_SPORT));
  store<u16>(r + SA_DPORT, load<u16>(p + SAP_DPORT));
  store<u32>(r + SA_GREKEY, load<u32>(p + SAP_GREKEY));
  store<i32>(r + SA_LARGE, large);
  memory.copy(r + SA_SALT, p + SAP_SALT, 4);
  memory.copy(r + SA_LOCAL, p + SAP_LOCAL, 16);
  memory.copy(r + SA_REMOTE, p + SAP_REMOTE, 16);
  memory.copy(r + SA_IVSEED, p + SAP_IVSEED, 8);
  store<u32>(r + SA_WINDOW, window);

  const key = p + SAP_KEY, keyLen = <i32>load<u8>(p + SAP_KEYLEN);
  switch (suite) {
    case SUITE_AES_GCM_16: gcmInit(r + SA_CTX, key, keyLen); break;
    case SUITE_CHACHA20_POLY1305: memory.copy(r + SA_CTX, key, 32); break;
    case SUITE_AES_CBC_HMAC_SHA256:
      aesInit(r + SA_CTX, key, keyLen);
      hmacSha256Init(r + SA_HMAC_CTX, p + SAP_HMACKEY, 32); // RFC 4868 §2.1.1: 256-bit key
      break;
    case SUITE_AES_CBC: aesInit(r + SA_CTX, key, keyLen); break;
    default: break;
  }
  wipeCipherScratch(suite); // the key expansion ran through the AES module's scratch

  // Replay window (inbound). With the check off the state still tracks the
  // highest authenticated number, which ESN inference needs (RFC 4303 §2.2.1).
  if (dir == DIR_IN && isEsp(suite)) {
    const st = r + SA_REPLAY;
    const bitmap = large >= 0 ? largeBlock(large) : st + REPLAY_HDR_SIZE;
    replayInit(st, window != 0 ? window : 32, bitmap);
    const first = load<u64>(p + SAP_SEQ);
    store<u64>(st, first - 1); // top: the window starts just below the first expected number
    if ((pflags & FLAG_PRIOR_SEEN) != 0) replayMarkBelow(st, first - 1);
  }
  buildTemplate(r);
}

/**
 * Writes the outer header template: IPv4 (20) or IPv6 (40) local → remote,
 * then the UDP header when UDP-encapsulated (RFC 3948 §2.1). Lengths, ids
 * and checksums are patched per packet. Transport modes carry their own IP
 * header, so their template holds only what follows it (UDP or nothing).
 */
export function buildTemplate(r: usize): void {
  const t = r + SA_TMPL;
  const mode = load<u8>(r + SA_MODE);
  const flags = load<u16>(r + SA_FLAGS);
  const udp = (flags & FLAG_UDP) != 0;
  const family = <i32>load<u8>(r + SA_FAMILY);
  const ipLen = templateLen(mode, family, false);
  if (ipLen != 0) {
    const proto = udp ? PROTO_UDP : mode == MODE_IPIP ? PROTO_IPIP : mode == MODE_GRE ? PROTO_GRE : PROTO_ESP;
    if (family == 4) ipv4Build(t, load<u8>(r + SA_TOS), 0, 0, (flags & FLAG_DF) != 0, load<u8>(r + SA_TTL), proto, r + SA_LOCAL, r + SA_REMOTE);
    else ipv6Build(t, load<u8>(r + SA_TOS), 0, proto, load<u8>(r + SA_TTL), r + SA_LOCAL, r + SA_REMOTE);
  }
  if (udp && mode != MODE_PAYLOAD) {
    const u = t + <usize>ipLen;
    store<u16>(u, bswap<u16>(load<u16>(r + SA_SPORT)));
    store<u16>(u + 2, bswap<u16>(load<u16>(r + SA_DPORT)));
    store<u32>(u + 4, 0);
  }
  store<u16>(r + SA_TMPLLEN, <u16>templateLen(mode, family, udp));
}

/**
 * NAT-T (RFC 3948 §3.5-style): an authenticated, newest packet of an inbound
 * SA arrived from `addr`:`port`. Record it for the peer so its outbound SAs
 * send there from now on. Returns nothing; cheap when nothing changed.
 */
export function peerLearn(peerId: u32, family: i32, addr: usize, port: u16): void {
  const pr = peerRec(peerId);
  if (
    load<u8>(pr + PEER_LEARNED) != 0 &&
    <i32>load<u8>(pr + PEER_FAMILY) == family &&
    load<u16>(pr + PEER_PORT) == port &&
    load<u64>(pr + PEER_ADDR) == load<u64>(addr) &&
    load<u64>(pr + PEER_ADDR + 8) == load<u64>(addr + 8)
  ) return;
  memory.copy(pr + PEER_ADDR, addr, 16);
  store<u16>(pr + PEER_PORT, port);
  store<u8>(pr + PEER_FAMILY, <u8>family);
  store<u8>(pr + PEER_LEARNED, 1);
  store<u32>(pr + PEER_VERSION, load<u32>(pr + PEER_VERSION) + 1);
}

/** Outbound: if the peer's learned address changed since the template was built, rebuild it. */
export function saRefreshFromPeer(r: usize): void {
  const pr = peerRec(load<u32>(r + SA_PEER));
  const version = load<u32>(pr + PEER_VERSION);
  if (version == load<u32>(r + SA_PEERVER)) return;
  store<u32>(r + SA_PEERVER, version);
  if ((load<u16>(r + SA_FLAGS) & FLAG_UDP) == 0 || load<u8>(pr + PEER_LEARNED) == 0) return;
  if (load<u8>(pr + PEER_FAMILY) != load<u8>(r + SA_FAMILY)) return;
  memory.copy(r + SA_REMOTE, pr + PEER_ADDR, 16);
  store<u16>(r + SA_DPORT, load<u16>(pr + PEER_PORT));
  buildTemplate(r);
}

/**
 * The remote outer address and UDP port SA record `r` sends to now: for a
 * UDP-encapsulated SA whose peer NAT-T has learned (RFC 3948 §3.5: from an
 * authenticated, newest inbound packet) the learned pair, even before the
 * next outbound packet refreshes the template; otherwise the configured one.
 * Copies the address to `dst` (16 bytes; IPv4 in the first 4, rest zero) and
 * returns port | family << 16 | learned << 24. Control path (status).
 */
export function saRemoteInto(r: usize, dst: usize): i32 {
  const pr = peerRec(load<u32>(r + SA_PEER));
  const family = load<u8>(r + SA_FAMILY);
  const learned = (load<u16>(r + SA_FLAGS) & FLAG_UDP) != 0 && load<u8>(pr + PEER_LEARNED) != 0 &&
    load<u8>(pr + PEER_FAMILY) == family;
  memory.copy(dst, learned ? pr + PEER_ADDR : r + SA_REMOTE, 16);
  const port = learned ? load<u16>(pr + PEER_PORT) : load<u16>(r + SA_DPORT);
  return <i32>port | (<i32>family << 16) | (learned ? 1 << 24 : 0);
}

/**
 * Moves SA `id` to a new configured remote: the outer address (16 bytes at
 * `addr`; IPv4 in the first 4) of the record's own family and, for a
 * UDP-encapsulated SA, the destination port (RFC 3948 §2.1; must be ≥ 1).
 * Everything else stays: keys, sequence number, replay window, counters.
 * The outer header template is rebuilt; an inbound plain tunnel (IPIP/GRE,
 * found by its remote address) is re-keyed in the SAD, so packets from the
 * new address match it and packets from the old one no longer do. Writes
 * into the record only (no allocation); between batches, never inside one.
 * A NAT-T address learned for the peer is not touched here: the host resets
 * it with peerForget (docs/core.md, "Moving a peer").
 */
export function saMoveRemote(id: i32, family: i32, addr: usize, port: i32): i32 {
  const r = saLive(id);
  if (r == 0) return ERR_NOT_FOUND;
  if (family != <i32>load<u8>(r + SA_FAMILY)) return ERR_PARAM;
  const udp = (load<u16>(r + SA_FLAGS) & FLAG_UDP) != 0;
  if (port < 0 || port > 0xffff || (udp && port == 0)) return ERR_PARAM;
  const mode = load<u8>(r + SA_MODE);
  const keyed = load<u8>(r + SA_DIR) == DIR_IN && !isEsp(load<u8>(r + SA_SUITE));
  if (keyed) sadRemove(id, tunnelKey(r + SA_REMOTE, family, mode));
  memory.fill(r + SA_REMOTE, 0, 16);
  memory.copy(r + SA_REMOTE, addr, family == 4 ? 4 : 16);
  if (udp) store<u16>(r + SA_DPORT, <u16>port);
  if (keyed) sadInsert(id, tunnelKey(r + SA_REMOTE, family, mode));
  buildTemplate(r);
  return 0;
}

/** Forgets what NAT-T learned about a peer (the host reuses the peer id). */
export function peerForget(peerId: u32): i32 {
  if (peerId >= <u32>capacity) return ERR_PARAM;
  const pr = peerRec(peerId);
  const version = load<u32>(pr + PEER_VERSION);
  memory.fill(pr, 0, <usize>PEER_SIZE);
  store<u32>(pr + PEER_VERSION, version + 1);
  return 0;
}

/**
 * Zeroes the static scratch of the suite's cipher modules: after a key
 * expansion or the last packet of an SA it still holds key-derived data
 * (AES state and schedule words, GHASH tables, GCM keystream and tag mask).
 * Control path only (~10 KB of stores); the packet path never needs it
 * zeroed. The ESP nonce/AAD scratch (salt, IV) is cleared for every suite.
 */
function wipeCipherScratch(suite: u8): void {
  espAeadWipe();
  switch (suite) {
    case SUITE_AES_GCM_16: gcmWipeScratch(); break;
    case SUITE_CHACHA20_POLY1305: chachaPolyWipeScratch(); break;
    case SUITE_AES_CBC_HMAC_SHA256: cbcWipeScratch(); hmacSha256WipeScratch(); break;
    case SUITE_AES_CBC: cbcWipeScratch(); break;
    default: break;
  }
}

/** Removes SA `id`: out of the SAD, keys and state wiped, large block returned. */
export function saRemoveId(id: i32): i32 {
  const r = saLive(id);
  if (r == 0) return ERR_NOT_FOUND;
  const suite = load<u8>(r + SA_SUITE), mode = load<u8>(r + SA_MODE);
  if (load<u8>(r + SA_DIR) == DIR_IN) {
    if (isEsp(suite)) sadRemove(id, load<u32>(r + SA_SPI));
    else sadRemove(id, tunnelKey(r + SA_REMOTE, <i32>load<u8>(r + SA_FAMILY), mode));
  }
  const large = load<i32>(r + SA_LARGE);
  if (large >= 0) {
    wipe(largeBlock(large), <i32>largeBlockBytes);
    store<i32>(largeBlock(large), largeFree);
    largeFree = large;
  }
  wipe(r, SA_SIZE); // keys, salt, IV seed, HMAC pads (issue 2 §6: keys zeroed on removal)
  wipeCipherScratch(suite);
  store<i32>(r + SA_NEXT, freeHead);
  freeHead = id;
  return 0;
}

/** Free large-window blocks (for tests of the pool). */
export function saLargeFree(): i32 {
  let n = 0;
  let i = largeFree;
  while (i >= 0 && n <= largeCount) { n++; i = load<i32>(largeBlock(i)); }
  return n;
}
