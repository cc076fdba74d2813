// The data-plane ABI: what host/core/ calls. Numbers in, numbers out; no
// optional parameters (raw bindings trap on them). docs/core.md describes
// each call; layout.ts every offset and size.
//
// Memory map after init (all from the arena, in this order, never grown again):
//
//  __heap_base ─► ┌─────────────────────────────┐
//                 │ global counters 2 × 168 B    │
//                 │ ring: slots × 9,472 B        │
//                 │ descriptors: slots × 64 B    │
//                 │ SA records: maxSas × 2,624 B │
//                 │ peer table: maxSas × 32 B    │
//                 │ SA parameter block 192 B     │
//                 │ large replay bitmaps         │
//                 │   largeWindowBlocks × 16 KiB │
//                 │ SAD buckets: 2^⌈log2 maxSas⌉ × 4 B │
//                 │ SPD: maxPolicies × 96 B      │
//                 │ flow cache: 8,192 × 48 B     │
//                 │ policy parameter block 64 B  │
//  arenaTop() ──► └─────────────────────────────┘
import { arenaTop } from "./arena";
import { AES_CTX_SIZE } from "./crypto/aes";
import { GCM_CTX_SIZE } from "./crypto/gcm";
import { HMAC_CTX_SIZE } from "./crypto/hmac_sha256";
import { countersInit, globalCounters } from "./counters";
import { inboundOne } from "./esp_inbound";
import { katArm, katDisarm, katIvBuffer, outboundOne } from "./esp_outbound";
import { fragmentCut, fragmentReset, innerOf, roomFor } from "./too_big";
import { greBytes } from "./gre";
import {
  CTR_BLOCK_SIZE, DEFAULT_SLOTS, DESC_SIZE, ERR_ALREADY_INIT, ERR_NO_MEMORY, ERR_NOT_FOUND, ERR_NOT_INIT, ERR_PARAM, HEADROOM,
  KAT_IV_MAX, MAX_PACKET, MAX_SLOTS, POL_SIZE, POLP_SIZE, REASON_COUNT, SA_COUNTERS, SA_FLAGS, SA_REPLAY, SA_SEQ, SA_SEQLIMIT,
  SA_SIZE, SAP_SIZE, SLOT_SIZE, TAILROOM, PEER_SIZE, FLOW_ENTRIES, FLOW_SIZE,
} from "./layout";
import * as L from "./layout";
import { ringCount, ringDescBase, ringInit, ringSlotsBase } from "./ring";
import { peerForget, saAddFromParams, saRecordsPtr, saCapacity, saInit, saLargeFree, saLive, saMoveRemote, saParamBlock, saRemoteInto, saRemoveId, suiteAlign, suiteIcvLen, suiteIvLen, templateLen } from "./sa";
import { sadFindSpi, sadFindSpiLinear, sadInit } from "./sad";
import { FLOW_KEY, flowKeySet, spdAddFromParams, spdClear, spdCount, spdIdAt, spdInit, spdLookup, spdParamBlock, spdRemove, spdScan } from "./spd";

let ready = false;
const SCRATCH = memory.data(64, 16);

/**
 * Sizes all memory once: `slots` ring slots (0 = 256), `maxSas` SA records,
 * `maxPolicies` SPD entries, `largeWindowBlocks` replay bitmaps for windows
 * above 960. Returns 0, or ERR_PARAM / ERR_NO_MEMORY / ERR_ALREADY_INIT.
 */
export function init(slots: i32, maxSas: i32, maxPolicies: i32, largeWindowBlocks: i32): i32 {
  if (ready) return ERR_ALREADY_INIT;
  if (slots == 0) slots = DEFAULT_SLOTS;
  if (slots < 1 || slots > MAX_SLOTS || maxSas < 1 || maxSas > 1000000 || maxPolicies < 1 || maxPolicies > 1000000) return ERR_PARAM;
  if (largeWindowBlocks < 0 || largeWindowBlocks > 65536) return ERR_PARAM;
  if (!countersInit() || !ringInit(slots) || !saInit(maxSas, largeWindowBlocks) || !sadInit(maxSas) || !spdInit(maxPolicies)) return ERR_NO_MEMORY;
  ready = true;
  return 0;
}

export function ringBase(): usize { return ringSlotsBase(); }
export function descBase(): usize { return ringDescBase(); }

/** Processes slots 0..n-1 outbound; returns how many were not dropped. */
export function processOutbound(n: i32): i32 {
  if (!ready) return ERR_NOT_INIT;
  const m = min(max(n, 0), ringCount());
  let ok = 0;
  fragmentReset();
  for (let i = 0; i < m; i++) if (outboundOne(i)) ok++;
  katDisarm(); // the KAT IV never outlives the call it was armed for, sealed or dropped
  return ok;
}

/**
 * After processOutbound(n): cuts the FRAGMENT slots among 0..n-1 (RFC 791)
 * into the fragment slots behind the ring and processes those outbound.
 * Returns how many fragment slots (from index `slots` on) carry a verdict;
 * call again until 0 — each call continues where the last stopped.
 */
export function fragmentOutbound(n: i32): i32 {
  if (!ready) return ERR_NOT_INIT;
  const k = fragmentCut(n);
  const first = ringCount();
  for (let j = 0; j < k; j++) outboundOne(first + j);
  katDisarm();
  return k;
}

/** Processes slots 0..n-1 inbound; returns how many were not dropped. */
export function processInbound(n: i32): i32 {
  if (!ready) return ERR_NOT_INIT;
  const m = min(max(n, 0), ringCount());
  let ok = 0;
  for (let i = 0; i < m; i++) if (inboundOne(i)) ok++;
  return ok;
}

/**
 * The largest inner packet an outbound SA of `suite` and `mode` over an
 * outer `family` (flags: FLAG_UDP, FLAG_GRE_KEY, FLAG_GRE_SEQ) carries within
 * `mtu` outer bytes, for inner packets with an `innerHdr`-byte IP header:
 * the arithmetic the SA's own size check and its ICMP answers use
 * (too_big.ts), for the host's config check. Pure: needs no init.
 */
export function innerMtu(suite: i32, mode: i32, family: i32, flags: i32, mtu: i32, innerHdr: i32): i32 {
  const m = <u8>mode, s = <u8>suite;
  const kept = m == L.MODE_TRANSPORT ? innerHdr : 0;
  const gre = greBytes(<u16>flags);
  const room = roomFor(m, templateLen(m, family, (flags & L.FLAG_UDP) != 0), m == L.MODE_GRE ? gre : 0, suiteIvLen(s), suiteIcvLen(s), suiteAlign(s), mtu, kept);
  return innerOf(m, room, gre, kept);
}

// SAs
export function saParamPtr(): usize { return saParamBlock(); }
export function saAdd(): i32 { return ready ? saAddFromParams() : ERR_NOT_INIT; }
export function saRemove(id: i32): i32 { return ready ? saRemoveId(id) : ERR_NOT_INIT; }
/** Record of a live SA (for the host's reads of state and counters), 0 if none. */
export function saRecord(id: i32): usize { return ready ? saLive(id) : 0; }
/**
 * Where the SA records start (maxSas × SA_SIZE bytes, contiguous), 0 before
 * init: the host asks the kernel to back them with huge pages (an install of
 * 100,000 SAs first touches 262 MB of them; host/core/memory_linux.ts).
 */
export function saRecordsBase(): usize { return ready ? saRecordsPtr() : 0; }
/**
 * SA `id`'s current remote address (NAT-T learned, else configured) into
 * scratchPtr() (16 B); returns port | family << 16 | learned << 24, or
 * ERR_NOT_FOUND / ERR_NOT_INIT.
 */
export function saRemote(id: i32): i32 {
  if (!ready) return ERR_NOT_INIT;
  const r = saLive(id);
  return r == 0 ? ERR_NOT_FOUND : saRemoteInto(r, SCRATCH);
}
/**
 * Moves SA `id` to the remote address in scratchPtr() (16 B, `family` 4 or
 * 6, the SA's own) and, when UDP-encapsulated, destination `port`: template
 * rebuilt, inbound plain tunnels re-keyed in the SAD, all state kept.
 * Returns 0, ERR_PARAM, ERR_NOT_FOUND or ERR_NOT_INIT. Safe between batches.
 */
export function saSetRemote(id: i32, family: i32, port: i32): i32 {
  return ready ? saMoveRemote(id, family, SCRATCH, port) : ERR_NOT_INIT;
}
/**
 * Sets SA `id`'s reservation limit (SA_SEQLIMIT): outbound the last sequence
 * number it may send, inbound the last it may accept; 0 = none. The host
 * calls it only once the reservation is on disk. Safe between batches.
 */
export function saSetSeqLimit(id: i32, limit: u64): i32 {
  if (!ready) return ERR_NOT_INIT;
  const r = saLive(id);
  if (r == 0) return ERR_NOT_FOUND;
  store<u64>(r + SA_SEQLIMIT, limit);
  return 0;
}
export function saMax(): i32 { return saCapacity(); }
export function saLargeBlocksFree(): i32 { return saLargeFree(); }
export function peerReset(peerId: u32): i32 { return ready ? peerForget(peerId) : ERR_NOT_INIT; }
/** SAD lookup by SPI (O(1)) and the same by linear scan: the property test compares them. */
export function sadLookup(spi: u32): i32 { return sadFindSpi(spi); }
export function sadLookupLinear(spi: u32): i32 { return sadFindSpiLinear(spi); }

// SPD
export function policyParamPtr(): usize { return spdParamBlock(); }
export function policyAdd(): i32 { return ready ? spdAddFromParams() : ERR_NOT_INIT; }
export function policyRemove(id: i32): i32 { return ready ? (id < 0 ? ERR_PARAM : spdRemove(<u32>id)) : ERR_NOT_INIT; }
export function policyClear(): void { if (ready) spdClear(); }
export function policyCount(): i32 { return spdCount(); }
/** Policy id an outbound 5-tuple matches (through the flow cache), -1 none. src/dst: 16 bytes each. */
export function spdQuery(family: i32, proto: i32, src: usize, dst: usize, sport: i32, dport: i32): i32 {
  flowKeySet(family, proto, src, dst, sport, dport);
  return spdIdAt(spdLookup(FLOW_KEY));
}
/** The same by ordered scan, bypassing the cache. */
export function spdQueryLinear(family: i32, proto: i32, src: usize, dst: usize, sport: i32, dport: i32): i32 {
  flowKeySet(family, proto, src, dst, sport, dport);
  return spdIdAt(spdScan(FLOW_KEY));
}

// Counters, KAT, scratch
export function globalCountersPtr(): usize { return globalCounters(0); }
export function katIvPtr(): usize { return katIvBuffer(); }
/**
 * Known-answer tests only: in the next processOutbound call, the next seal on
 * outbound SA `saId` uses the `len` bytes at katIvPtr() as its IV (len = the
 * SA's IV length). That call disarms it whatever happens to its packets.
 * Returns 0, ERR_PARAM (len) or ERR_NOT_FOUND (no live outbound SA `saId`).
 */
export function katArmIv(saId: i32, len: i32): i32 {
  katDisarm();
  if (!ready) return ERR_NOT_INIT;
  if (len < 1 || len > KAT_IV_MAX) return ERR_PARAM;
  const r = saLive(saId);
  if (r == 0 || load<u8>(r + L.SA_DIR) != L.DIR_OUT) return ERR_NOT_FOUND;
  katArm(r, len);
  return 0;
}
/** 64 bytes the host may use to pass addresses to spdQuery. */
export function scratchPtr(): usize { return SCRATCH; }
export function memoryTop(): usize { return arenaTop(); }

// Layout, read back by host/core and checked against host/core/abi.ts.
export function layoutHeadroom(): i32 { return HEADROOM; }
export function layoutTailroom(): i32 { return TAILROOM; }
export function layoutMaxPacket(): i32 { return MAX_PACKET; }
export function layoutSlotSize(): i32 { return SLOT_SIZE; }
export function layoutSlotDescSize(): i32 { return DESC_SIZE; }
export function layoutSaRecordSize(): i32 { return SA_SIZE; }
export function layoutSaParamSize(): i32 { return SAP_SIZE; }
export function layoutPolicyParamSize(): i32 { return POLP_SIZE; }
export function layoutPolicyRecordSize(): i32 { return POL_SIZE; }
export function layoutReasonCount(): i32 { return REASON_COUNT; }
export function layoutCounterBlockSize(): i32 { return CTR_BLOCK_SIZE; }
export function layoutSaCounters(): i32 { return SA_COUNTERS; }
export function layoutSaSeq(): i32 { return SA_SEQ; }
export function layoutSaFlags(): i32 { return SA_FLAGS; }
export function layoutSaReplay(): i32 { return SA_REPLAY; }
export function layoutPeerSize(): i32 { return PEER_SIZE; }
export function layoutFlowEntries(): i32 { return FLOW_ENTRIES; }
export function layoutFlowSize(): i32 { return FLOW_SIZE; }
export function layoutAesCtxSize(): i32 { return AES_CTX_SIZE; }
export function layoutGcmCtxSize(): i32 { return GCM_CTX_SIZE; }
export function layoutHmacCtxSize(): i32 { return HMAC_CTX_SIZE; }

// Every offset and enumeration value the host mirrors, in the order of
// LAYOUT_CHECK in host/core/abi.ts (test/unit/core-layout.test.ts compares them).
const LAYOUT_TABLE = memory.data<i32>([
  <i32>L.D_OFF,
  <i32>L.D_LEN,
  <i32>L.D_KIND,
  <i32>L.D_VERDICT,
  <i32>L.D_REASON,
  <i32>L.D_SA,
  <i32>L.D_PEER,
  <i32>L.D_HDRLEN,
  <i32>L.D_MTU,
  <i32>L.D_FAMILY,
  <i32>L.D_PROTO,
  <i32>L.D_PORT,
  <i32>L.D_LPORT,
  <i32>L.D_ADDR,
  <i32>L.D_LOCAL,
  <i32>L.D_INNER_MTU,
  <i32>L.SAP_DIR,
  <i32>L.SAP_SUITE,
  <i32>L.SAP_MODE,
  <i32>L.SAP_FLAGS,
  <i32>L.SAP_SPI,
  <i32>L.SAP_WINDOW,
  <i32>L.SAP_PEER,
  <i32>L.SAP_SEQ,
  <i32>L.SAP_FAMILY,
  <i32>L.SAP_TTL,
  <i32>L.SAP_TOS,
  <i32>L.SAP_KEYLEN,
  <i32>L.SAP_IPID,
  <i32>L.SAP_MTU,
  <i32>L.SAP_SPORT,
  <i32>L.SAP_DPORT,
  <i32>L.SAP_TFC,
  <i32>L.SAP_GREKEY,
  <i32>L.SAP_KEY,
  <i32>L.SAP_SALT,
  <i32>L.SAP_IVSEED,
  <i32>L.SAP_HMACKEY,
  <i32>L.SAP_LOCAL,
  <i32>L.SAP_REMOTE,
  <i32>L.SAP_SEQLIMIT,
  <i32>L.SA_STATE,
  <i32>L.SA_FLAGS,
  <i32>L.SA_SPI,
  <i32>L.SA_PEER,
  <i32>L.SA_SEQ,
  <i32>L.SA_REPLAY,
  <i32>L.SA_COUNTERS,
  <i32>L.SA_SEQLIMIT,
  <i32>L.POLP_PRIO,
  <i32>L.POLP_ACTION,
  <i32>L.POLP_FAMILY,
  <i32>L.POLP_PROTO,
  <i32>L.POLP_SRCPFX,
  <i32>L.POLP_DSTPFX,
  <i32>L.POLP_SPORTLO,
  <i32>L.POLP_SPORTHI,
  <i32>L.POLP_DPORTLO,
  <i32>L.POLP_DPORTHI,
  <i32>L.POLP_SA,
  <i32>L.POLP_PEER,
  <i32>L.POLP_SRC,
  <i32>L.POLP_DST,
  <i32>L.KIND_IP,
  <i32>L.KIND_UDP,
  <i32>L.KIND_PAYLOAD,
  <i32>L.VERDICT_DROP,
  <i32>L.VERDICT_TO_NETWORK,
  <i32>L.VERDICT_TO_TUN,
  <i32>L.VERDICT_TO_HOST,
  <i32>L.VERDICT_BYPASS,
  <i32>L.VERDICT_ICMP,
  <i32>L.VERDICT_FRAGMENT,
  <i32>L.DIR_IN,
  <i32>L.DIR_OUT,
  <i32>L.SUITE_NONE,
  <i32>L.SUITE_AES_GCM_16,
  <i32>L.SUITE_CHACHA20_POLY1305,
  <i32>L.SUITE_AES_CBC_HMAC_SHA256,
  <i32>L.SUITE_AES_CBC,
  <i32>L.MODE_TUNNEL,
  <i32>L.MODE_TRANSPORT,
  <i32>L.MODE_TRANSPORT_IPIP,
  <i32>L.MODE_TRANSPORT_GRE,
  <i32>L.MODE_IPIP,
  <i32>L.MODE_GRE,
  <i32>L.MODE_PAYLOAD,
  <i32>L.FLAG_ESN,
  <i32>L.FLAG_UDP,
  <i32>L.FLAG_GRE_KEY,
  <i32>L.FLAG_GRE_SEQ,
  <i32>L.FLAG_DF,
  <i32>L.FLAG_ALLOW_NO_INTEGRITY,
  <i32>L.FLAG_PRIOR_SEEN,
  <i32>L.FLAG_FIXED_REMOTE,
  <i32>L.FLAG_REPLAY,
  <i32>L.FLAG_NEEDS_REKEY,
  <i32>L.ACTION_DISCARD,
  <i32>L.ACTION_BYPASS,
  <i32>L.ACTION_PROTECT,
  <i32>L.KAT_IV_MAX,
  <i32>L.HOST_IKE,
  <i32>L.HOST_STUN,
  <i32>L.FRAG_SLOTS,
]);
export function layoutTable(): usize { return LAYOUT_TABLE; }
export function layoutTableLength(): i32 { return 104; }
