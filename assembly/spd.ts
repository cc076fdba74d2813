// Security Policy Database (RFC 4301 §4.4.1): ordered selectors with
// PROTECT / BYPASS / DISCARD, and a flow cache in front of them.
//
// Match order: entries are kept sorted by priority (lower first); entries of
// equal priority keep their insertion order. A packet takes the FIRST entry
// whose selectors all match (RFC 4301 §4.4.1: the SPD is ordered and the
// first match wins, so overlapping entries are allowed and decorrelation is
// not needed). No match means DISCARD (reason NO_POLICY). Selectors, in the
// outbound view (src = local side, dst = remote side):
//   family 4|6 · src prefix · dst prefix · protocol (0 = any)
//   · src port range · dst port range (TCP, UDP, SCTP; other protocols and
//     non-first IPv4 fragments have ports 0, which only "any"-like ranges
//     containing 0 match — RFC 4301 §4.4.1.1 OPAQUE).
//
// Flow cache: scanning 10,000s of entries per packet would cost tens of
// microseconds, so each 5-tuple's result is remembered in a direct-mapped
// table of FLOW_ENTRIES entries. Any change to the SPD bumps a generation
// counter, which invalidates every cached entry at once (no sweep).
//
//  flow entry / lookup key (FLOW_SIZE = 48 B)
//   0 gen u32 · 4 family u8 · 5 proto u8 · 6 sport u16 · 8 dport u16
//  10 (pad) · 12 result i32 (policy index, -1 none) · 16 src[16] · 32 dst[16]
import { arenaAlloc } from "./arena";
import {
  ACTION_PROTECT, ERR_FULL, ERR_NOT_FOUND, ERR_PARAM, FLOW_ENTRIES, FLOW_SIZE,
  POL_ACTION, POL_DPORTHI, POL_DPORTLO, POL_DST, POL_DSTMASK, POL_FAMILY, POL_ID, POL_PEER, POL_PRIO, POL_PROTO,
  POL_SA, POL_SIZE, POL_SPORTHI, POL_SPORTLO, POL_SRC, POL_SRCMASK,
  POLP_ACTION, POLP_DPORTHI, POLP_DPORTLO, POLP_DST, POLP_DSTPFX, POLP_FAMILY, POLP_PEER, POLP_PRIO, POLP_PROTO,
  POLP_SA, POLP_SIZE, POLP_SPORTHI, POLP_SPORTLO, POLP_SRC, POLP_SRCPFX,
} from "./layout";
import { PROTO_SCTP, PROTO_TCP, PROTO_UDP, addrCopy, ipDst, ipFamily, ipFragment, ipHl, ipParse, ipProto, ipSrc, ipTotal } from "./ip";

const K_GEN: usize = 0;
const K_FAMILY: usize = 4;
const K_PROTO: usize = 5;
const K_SPORT: usize = 6;
const K_DPORT: usize = 8;
const K_RESULT: usize = 12;
const K_SRC: usize = 16;
const K_DST: usize = 32;

/** Offsets of the key's family, protocol and destination (remote side), for the outbound BYPASS descriptor. */
export const FK_FAMILY: usize = K_FAMILY;
export const FK_PROTO: usize = K_PROTO;
export const FK_DST: usize = K_DST;

/** The lookup key of the packet being processed (FLOW_SIZE bytes). */
export const FLOW_KEY: usize = memory.data(FLOW_SIZE, 16);

let table: usize = 0;
let maxEntries: i32 = 0;
let count: i32 = 0;
let nextId: u32 = 0;
let gen: u32 = 1;
let flows: usize = 0;
let polParams: usize = 0;

export function spdInit(maxPolicies: i32): bool {
  table = arenaAlloc(<usize>maxPolicies * <usize>POL_SIZE, 64);
  flows = arenaAlloc(<usize>FLOW_ENTRIES * <usize>FLOW_SIZE, 64);
  polParams = arenaAlloc(<usize>POLP_SIZE, 64);
  if (table == 0 || flows == 0 || polParams == 0) return false;
  maxEntries = maxPolicies;
  return true;
}

export function spdParamBlock(): usize {
  return polParams;
}

export function spdCount(): i32 {
  return count;
}

// @ts-ignore: decorator
@inline export function polRec(i: i32): usize {
  return table + <usize>i * <usize>POL_SIZE;
}

function changed(): void {
  gen++;
  if (gen == 0) { // after 2^32 changes: really forget, then start over
    memory.fill(flows, 0, <usize>FLOW_ENTRIES * <usize>FLOW_SIZE);
    gen = 1;
  }
}

/** 16-byte mask of a prefix length (IPv4 prefixes use the first 4 bytes). */
function writeMask(m: usize, len: i32): void {
  for (let i = 0; i < 16; i++) {
    const bitsHere = min(max(len - i * 8, 0), 8);
    store<u8>(m + i, <u8>(0xff00 >> bitsHere));
  }
}

/** Adds the entry in the parameter block; returns its id (≥ 0) or ERR_*. */
export function spdAddFromParams(): i32 {
  const p = polParams;
  const family = <i32>load<u8>(p + POLP_FAMILY);
  const sp = <i32>load<u8>(p + POLP_SRCPFX), dp = <i32>load<u8>(p + POLP_DSTPFX);
  const maxLen = family == 4 ? 32 : 128;
  if ((family != 4 && family != 6) || sp > maxLen || dp > maxLen || load<u8>(p + POLP_ACTION) > ACTION_PROTECT) return ERR_PARAM;
  if (load<u16>(p + POLP_SPORTLO) > load<u16>(p + POLP_SPORTHI) || load<u16>(p + POLP_DPORTLO) > load<u16>(p + POLP_DPORTHI)) return ERR_PARAM;
  if (count >= maxEntries) return ERR_FULL;
  const prio = load<u32>(p + POLP_PRIO);
  // Insert after every entry of the same or lower priority number (stable order).
  let at = count;
  while (at > 0 && load<u32>(polRec(at - 1) + POL_PRIO) > prio) at--;
  if (at < count) memory.copy(polRec(at + 1), polRec(at), <usize>(count - at) * <usize>POL_SIZE);
  const r = polRec(at);
  memory.fill(r, 0, <usize>POL_SIZE);
  const id = nextId++;
  store<u32>(r + POL_ID, id);
  store<u32>(r + POL_PRIO, prio);
  store<u8>(r + POL_ACTION, load<u8>(p + POLP_ACTION));
  store<u8>(r + POL_FAMILY, <u8>family);
  store<u8>(r + POL_PROTO, load<u8>(p + POLP_PROTO));
  store<u16>(r + POL_SPORTLO, load<u16>(p + POLP_SPORTLO));
  store<u16>(r + POL_SPORTHI, load<u16>(p + POLP_SPORTHI));
  store<u16>(r + POL_DPORTLO, load<u16>(p + POLP_DPORTLO));
  store<u16>(r + POL_DPORTHI, load<u16>(p + POLP_DPORTHI));
  store<i32>(r + POL_SA, load<i32>(p + POLP_SA));
  store<u32>(r + POL_PEER, load<u32>(p + POLP_PEER));
  writeMask(r + POL_SRCMASK, sp);
  writeMask(r + POL_DSTMASK, dp);
  v128.store(r + POL_SRC, v128.and(v128.load(p + POLP_SRC), v128.load(r + POL_SRCMASK)));
  v128.store(r + POL_DST, v128.and(v128.load(p + POLP_DST), v128.load(r + POL_DSTMASK)));
  count++;
  changed();
  return <i32>id;
}

export function spdRemove(id: u32): i32 {
  for (let i = 0; i < count; i++) {
    if (load<u32>(polRec(i) + POL_ID) == id) {
      if (i + 1 < count) memory.copy(polRec(i), polRec(i + 1), <usize>(count - i - 1) * <usize>POL_SIZE);
      count--;
      changed();
      return 0;
    }
  }
  return ERR_NOT_FOUND;
}

export function spdClear(): void {
  count = 0;
  changed();
}

// @ts-ignore: decorator
@inline function matches(r: usize, k: usize): bool {
  const proto = load<u8>(r + POL_PROTO);
  const sport = load<u16>(k + K_SPORT), dport = load<u16>(k + K_DPORT);
  return (
    load<u8>(r + POL_FAMILY) == load<u8>(k + K_FAMILY) &&
    (proto == 0 || proto == load<u8>(k + K_PROTO)) &&
    sport >= load<u16>(r + POL_SPORTLO) && sport <= load<u16>(r + POL_SPORTHI) &&
    dport >= load<u16>(r + POL_DPORTLO) && dport <= load<u16>(r + POL_DPORTHI) &&
    !v128.any_true(v128.xor(v128.and(v128.load(k + K_SRC), v128.load(r + POL_SRCMASK)), v128.load(r + POL_SRC))) &&
    !v128.any_true(v128.xor(v128.and(v128.load(k + K_DST), v128.load(r + POL_DSTMASK)), v128.load(r + POL_DST)))
  );
}

/** First matching entry for the key at `k` by scanning in order: index or -1. */
export function spdScan(k: usize): i32 {
  for (let i = 0; i < count; i++) if (matches(polRec(i), k)) return i;
  return -1;
}

// @ts-ignore: decorator
@inline function flowSlot(k: usize): usize {
  const s = v128.load(k + K_SRC), d = v128.load(k + K_DST);
  const x = v128.xor(s, i32x4.shl(d, 1));
  let h = <u32>(i32x4.extract_lane(x, 0) ^ i32x4.extract_lane(x, 1) ^ i32x4.extract_lane(x, 2) ^ i32x4.extract_lane(x, 3));
  h ^= (load<u32>(k + K_SPORT) /* sport | dport<<16 */) * 0x85ebca6b;
  h ^= <u32>load<u8>(k + K_PROTO) << 8;
  h *= 0x9e3779b1;
  return flows + <usize>(h >> (32 - 13)) * <usize>FLOW_SIZE; // 13 bits = FLOW_ENTRIES
}

/**
 * The SPD entry (index) the key at `k` matches, through the flow cache:
 * O(1) for a flow seen since the last SPD change, one ordered scan otherwise.
 */
export function spdLookup(k: usize): i32 {
  const e = flowSlot(k);
  if (
    load<u32>(e + K_GEN) == gen &&
    load<u32>(e + K_FAMILY) == load<u32>(k + K_FAMILY) && // family, proto, sport
    load<u16>(e + K_DPORT) == load<u16>(k + K_DPORT) &&
    !v128.any_true(v128.or(v128.xor(v128.load(e + K_SRC), v128.load(k + K_SRC)), v128.xor(v128.load(e + K_DST), v128.load(k + K_DST))))
  ) return load<i32>(e + K_RESULT);
  const idx = spdScan(k);
  memory.copy(e, k, <usize>FLOW_SIZE);
  store<u32>(e + K_GEN, gen);
  store<i32>(e + K_RESULT, idx);
  return idx;
}

/**
 * Fills FLOW_KEY from the IP packet at `p` (`len` bytes). `reverse` swaps the
 * sides (inbound: the packet's destination is our local side). Returns false
 * when the packet is not a well-formed IP packet.
 */
export function flowKeyFromPacket(p: usize, len: i32, reverse: bool): bool {
  if (!ipParse(p, len)) return false;
  const k = FLOW_KEY;
  const family = ipFamily, proto = ipProto;
  store<u32>(k + K_FAMILY, 0);
  store<u32>(k + K_DPORT, 0);
  store<u8>(k + K_FAMILY, <u8>family);
  store<u8>(k + K_PROTO, <u8>proto);
  let sport: u16 = 0, dport: u16 = 0;
  if ((proto == PROTO_TCP || proto == PROTO_UDP || proto == PROTO_SCTP) && !ipFragment && ipTotal >= ipHl + 4) {
    sport = bswap<u16>(load<u16>(p + <usize>ipHl));
    dport = bswap<u16>(load<u16>(p + <usize>ipHl + 2));
  }
  if (reverse) {
    addrCopy(k + K_SRC, ipDst(p, family), family);
    addrCopy(k + K_DST, ipSrc(p, family), family);
    store<u16>(k + K_SPORT, dport);
    store<u16>(k + K_DPORT, sport);
  } else {
    addrCopy(k + K_SRC, ipSrc(p, family), family);
    addrCopy(k + K_DST, ipDst(p, family), family);
    store<u16>(k + K_SPORT, sport);
    store<u16>(k + K_DPORT, dport);
  }
  return true;
}

/** Fills FLOW_KEY from numbers (the host's lookupPolicy and the tests). src/dst: 16 bytes. */
export function flowKeySet(family: i32, proto: i32, src: usize, dst: usize, sport: i32, dport: i32): void {
  const k = FLOW_KEY;
  store<u32>(k + K_FAMILY, 0);
  store<u32>(k + K_DPORT, 0);
  store<u8>(k + K_FAMILY, <u8>family);
  store<u8>(k + K_PROTO, <u8>proto);
  store<u16>(k + K_SPORT, <u16>sport);
  store<u16>(k + K_DPORT, <u16>dport);
  addrCopy(k + K_SRC, src, family);
  addrCopy(k + K_DST, dst, family);
}

/** Id of the entry at index `i` (-1 for -1). */
export function spdIdAt(i: i32): i32 {
  return i < 0 ? -1 : <i32>load<u32>(polRec(i) + POL_ID);
}

// Accessors the datapath uses on a lookup result.
// @ts-ignore: decorator
@inline export function polAction(i: i32): u8 { return load<u8>(polRec(i) + POL_ACTION); }
// @ts-ignore: decorator
@inline export function polSa(i: i32): i32 { return load<i32>(polRec(i) + POL_SA); }
// @ts-ignore: decorator
@inline export function polPeer(i: i32): u32 { return load<u32>(polRec(i) + POL_PEER); }
