// Every size and offset of the data-plane ABI, in one place.
//
// host/core/abi.ts mirrors these numbers; test/unit/core-layout.test.ts reads
// them back through the layout*() exports of api.ts and fails on any drift.
// Multi-byte fields of descriptors, parameter blocks and records are
// little-endian (WASM's own order); addresses are stored as on the wire
// (network order), an IPv4 address in the first 4 of 16 bytes, the rest zero.

// ─── Packet ring ────────────────────────────────────────────────────────────
//
//  one slot (SLOT_SIZE = 9,472 bytes, 64-byte aligned)
//  ┌──────────────┬──────────────────────────────────────┬──────────────────┐
//  │ HEADROOM 128 │ packet as written by the host         │ TAILROOM ≥ 288   │
//  └──────────────┴──────────────────────────────────────┴──────────────────┘
//  0             off                               off+len             SLOT_SIZE
//
// Headroom covers the largest front the core ever prepends in place:
// outer IPv6 40 + UDP 8 + ESP 8 + IV 16 + GRE with key and sequence 12 = 84,
// plus 40 for a second (delivery) IP header = 124, rounded up to 128.
// Tailroom covers TFC/block padding (≤ 255) + pad length + next header (2)
// + ICV 16 + 4 spare bytes, rounded to 288; TFC padding beyond that is only
// added while the packet still fits MAX_PACKET.
export const HEADROOM: i32 = 128;
export const MAX_PACKET: i32 = 9000;
export const TAILROOM: i32 = 344; // SLOT_SIZE - HEADROOM - MAX_PACKET (≥ 288)
export const SLOT_SIZE: i32 = 9472;
export const DEFAULT_SLOTS: i32 = 256;
export const MAX_SLOTS: i32 = 4096;
// Behind the ring's `slots` slots (and their descriptors), FRAG_SLOTS more
// that only the core writes: the fragments of fragmentOutbound (too_big.ts).
export const FRAG_SLOTS: i32 = 32;

// ─── Slot descriptor (64 bytes, one per slot) ───────────────────────────────
//
//   0 ┌───────────┬───────────┬─────┬───────┬──────────┐
//     │ off   u32 │ len   u32 │kind │verdict│ reason16 │  in: packet; out: rewritten
//  12 ├───────────┼───────────┼─────┴───────┴──────────┤
//     │ saId  i32 │ peerId u32│ hdrLen u16 │  mtu u16  │
//  24 ├─────┬─────┬───────────┬───────────┬───────────┤
//     │fam  │proto│ port  u16 │ lport u16 │innerMtu16 │
//  32 ├─────┴─────┴───────────┴───────────┴───────────┤
//     │ addr[16]   in: remote address (kinds 1, 2)     │
//     │            out: destination for TO_NETWORK     │
//  48 ├───────────────────────────────────────────────┤
//     │ local[16]  in: local address (kinds 1, 2)      │
//     │            out: source (SA local) for TO_NETWORK│
//  64 └───────────────────────────────────────────────┘
export const DESC_SIZE: i32 = 64;
export const D_OFF: i32 = 0; // u32 packet offset inside the slot
export const D_LEN: i32 = 4; // u32 packet length
export const D_KIND: i32 = 8; // u8 inbound input kind (KIND_*)
export const D_VERDICT: i32 = 9; // u8 VERDICT_*
export const D_REASON: i32 = 10; // u16 drop reason (counters.ts Reason)
export const D_SA: i32 = 12; // i32 in (outbound): -1 = SPD lookup, else the SA to use; out: SA used / matched, -1 none
export const D_PEER: i32 = 16; // u32 out: the SA's peer id
export const D_HDRLEN: i32 = 20; // u16 out (TO_NETWORK): outer IP (+ UDP) bytes a socket would add itself
export const D_MTU: i32 = 22; // u16 out (TOO_BIG): the SA's path MTU
export const D_FAMILY: i32 = 24; // u8 4 | 6: family of addr/local
export const D_PROTO: i32 = 25; // u8 in: outbound payload mode = next header; inbound kind 2 = IP protocol (0 = ESP). out: outer IP protocol (TO_NETWORK), the packet's (BYPASS); inbound payload mode next header, HOST_* (TO_HOST)
export const D_PORT: i32 = 26; // u16 in: kind 1 remote UDP port; out: TO_NETWORK destination UDP port (0 = raw IP)
export const D_LPORT: i32 = 28; // u16 out: TO_NETWORK source UDP port (0 = raw IP)
export const D_INNER_MTU: i32 = 30; // u16 out (TOO_BIG with mtu): the largest inner packet the SA carries (too_big.ts)
export const D_ADDR: i32 = 32; // 16 bytes
export const D_LOCAL: i32 = 48; // 16 bytes

// Inbound input kinds (D_KIND).
export const KIND_IP: u8 = 0; // full outer IP packet (raw socket / packet socket)
export const KIND_UDP: u8 = 1; // UDP payload from the NAT-T socket (RFC 3948)
export const KIND_PAYLOAD: u8 = 2; // IP payload without its header (ESP unless D_PROTO says 4/41/47)

// Verdicts (D_VERDICT). DROP is 0 so an untouched descriptor is never sent.
export const VERDICT_DROP: u8 = 0;
export const VERDICT_TO_NETWORK: u8 = 1;
export const VERDICT_TO_TUN: u8 = 2;
export const VERDICT_TO_HOST: u8 = 3; // IKE after a non-ESP marker, or STUN: untouched (D_PROTO says which)
export const VERDICT_BYPASS: u8 = 4; // SPD said BYPASS: send as is
// Outbound, over the SA's path MTU (reason TOO_BIG, counted as that drop):
export const VERDICT_ICMP: u8 = 5; // off/len: the ICMP error built in place, for the TUN (too_big.ts)
export const VERDICT_FRAGMENT: u8 = 6; // IPv4, DF clear: fragmentOutbound cuts it (RFC 791)

// What a TO_HOST slot holds (D_PROTO, out), so the host need not look at its bytes.
export const HOST_IKE: u8 = 0; // behind the RFC 3948 §2.2 non-ESP marker
export const HOST_STUN: u8 = 1; // a STUN message (RFC 8489), udp_encap.ts

// ─── SA parameter block (host writes, then calls saAdd) ─────────────────────
//
//   0 dir u8 · suite u8 · mode u8 · flags u8 · spi u32 · window u32 · peerId u32
//  16 initialSeq u64 · family u8 · ttl u8 · tos u8 · keyLen u8 · ipId u16 · mtu u16
//  32 sport u16 · dport u16 · tfcTarget u16 · (spare) u16 · greKey u32 · (spare) u32
//  48 key[32] · 80 salt[4] · 84 (spare) · 88 ivSeed[8] · 96 hmacKey[32]
// 128 local[16] · 144 remote[16] · 160 seqLimit u64 · 168..192 spare
export const SAP_SIZE: i32 = 192;
export const SAP_DIR: i32 = 0;
export const SAP_SUITE: i32 = 1;
export const SAP_MODE: i32 = 2;
export const SAP_FLAGS: i32 = 3;
export const SAP_SPI: i32 = 4;
export const SAP_WINDOW: i32 = 8;
export const SAP_PEER: i32 = 12;
export const SAP_SEQ: i32 = 16;
export const SAP_FAMILY: i32 = 24;
export const SAP_TTL: i32 = 25;
export const SAP_TOS: i32 = 26;
export const SAP_KEYLEN: i32 = 27;
export const SAP_IPID: i32 = 28;
export const SAP_MTU: i32 = 30;
export const SAP_SPORT: i32 = 32;
export const SAP_DPORT: i32 = 34;
export const SAP_TFC: i32 = 36;
export const SAP_GREKEY: i32 = 40;
export const SAP_KEY: i32 = 48;
export const SAP_SALT: i32 = 80;
export const SAP_IVSEED: i32 = 88;
export const SAP_HMACKEY: i32 = 96;
export const SAP_LOCAL: i32 = 128;
export const SAP_REMOTE: i32 = 144;
export const SAP_SEQLIMIT: i32 = 160; // u64, 0 = no limit (see SA_SEQLIMIT)

export const DIR_IN: u8 = 0;
export const DIR_OUT: u8 = 1;

export const SUITE_NONE: u8 = 0; // plain ipip / gre only
export const SUITE_AES_GCM_16: u8 = 1; // RFC 4106, 128/192/256-bit keys
export const SUITE_CHACHA20_POLY1305: u8 = 2; // RFC 7634
export const SUITE_AES_CBC_HMAC_SHA256: u8 = 3; // RFC 3602 + RFC 4868 (ICV 16)
export const SUITE_AES_CBC: u8 = 4; // RFC 3602 without integrity: KATs only, needs FLAG_ALLOW_NO_INTEGRITY

export const MODE_TUNNEL: u8 = 0;
export const MODE_TRANSPORT: u8 = 1;
export const MODE_TRANSPORT_IPIP: u8 = 2; // ESP transport over an RFC 2003 delivery header CE→CE
export const MODE_TRANSPORT_GRE: u8 = 3; // ESP transport over GRE (RFC 2784/2890) CE→CE
export const MODE_IPIP: u8 = 4; // plain IP-in-IP, no ESP (trusted ports)
export const MODE_GRE: u8 = 5; // plain GRE, no ESP (trusted ports)
export const MODE_PAYLOAD: u8 = 6; // the slot holds the ESP payload itself (known-answer tests)

// Parameter flags (SAP_FLAGS) — also the low byte of the record's flags.
export const FLAG_ESN: u16 = 1;
export const FLAG_UDP: u16 = 2; // RFC 3948 UDP encapsulation
export const FLAG_GRE_KEY: u16 = 4;
export const FLAG_GRE_SEQ: u16 = 8;
export const FLAG_DF: u16 = 16; // outer IPv4 don't-fragment
export const FLAG_ALLOW_NO_INTEGRITY: u16 = 32;
// Inbound, parameter only: every number below initialSeq counts as already
// received (a restart resumes past a durable reservation: docs/replay.md).
export const FLAG_PRIOR_SEEN: u16 = 64;
// The peer's outer address and port are as configured, never learned from
// inbound packets (a UDP-encapsulated SA with nat_t: false — no NAT between).
export const FLAG_FIXED_REMOTE: u16 = 128;
// Record-only flags.
export const FLAG_REPLAY: u16 = 256; // anti-replay check on (window > 0)
export const FLAG_NEEDS_REKEY: u16 = 512; // outbound sequence exhausted (RFC 4303 §3.3.3)
export const FLAG_PEER_LEARNED: u16 = 1024; // (peer table) address learned from NAT-T

// saAdd / policyAdd / init error codes (negative).
export const ERR_NOT_INIT: i32 = -1;
export const ERR_FULL: i32 = -2;
export const ERR_PARAM: i32 = -3;
export const ERR_DUP_SPI: i32 = -4;
export const ERR_NO_INTEGRITY: i32 = -5;
export const ERR_NO_LARGE_WINDOW: i32 = -6;
export const ERR_NO_MEMORY: i32 = -7;
export const ERR_ALREADY_INIT: i32 = -8;
export const ERR_NOT_FOUND: i32 = -9;

// ─── SA runtime record (SA_SIZE = 2,624 bytes, 64-byte aligned) ────────────
//
//    0 ┌──────────────────────────────────────────────────────────────┐
//      │ crypto context, 2,048 B:                                      │
//      │   AES-GCM: gcm ctx (≤ 2,048)                                  │
//      │   AES-CBC(+HMAC): aes ctx (≤ 1,984) │ 1,984: HMAC ctx (64)    │
//      │   ChaCha20-Poly1305: key (32)                                 │
// 2048 ├──────────────────────────────────────────────────────────────┤
//      │ hot fields, 128 B (SA_* offsets below)                        │
// 2176 ├──────────────────────────────────────────────────────────────┤
//      │ outer header template, 64 B: IPv4 20 | IPv6 40, + UDP 8       │
// 2240 ├──────────────────────────────────────────────────────────────┤
//      │ replay state: header 32 (replay.ts) + inline bitmap 128       │
//      │ (16 words → windows ≤ 960; larger ones point into the pool)   │
// 2400 ├──────────────────────────────────────────────────────────────┤
//      │ counters 21 × u64: packets, bytes, drops by reason 1..19      │
// 2568 ├──────────────────────────────────────────────────────────────┤
//      │ (spare, to the 64-byte alignment)                             │
// 2624 └──────────────────────────────────────────────────────────────┘
export const SA_SIZE: i32 = 2624;
export const SA_CTX: i32 = 0;
export const SA_CTX_SIZE: i32 = 2048;
export const SA_HMAC_CTX: i32 = 1984;
export const SA_STATE: i32 = 2048; // u8 0 free, 1 live
export const SA_DIR: i32 = 2049;
export const SA_SUITE: i32 = 2050;
export const SA_MODE: i32 = 2051;
export const SA_FLAGS: i32 = 2052; // u16
export const SA_IVLEN: i32 = 2054; // u8
export const SA_ICVLEN: i32 = 2055; // u8
export const SA_SPI: i32 = 2056; // u32 (host order)
export const SA_PEER: i32 = 2060; // u32
export const SA_SEQ: i32 = 2064; // u64 outbound: next sequence number to send
export const SA_ALIGN: i32 = 2072; // u8 4 | 16: what the ESP payload is padded to
export const SA_FAMILY: i32 = 2073; // u8 outer family 4 | 6
export const SA_TTL: i32 = 2074;
export const SA_TOS: i32 = 2075;
export const SA_IPID: i32 = 2076; // u16 next outer IPv4 id
export const SA_MTU: i32 = 2078; // u16 0 = unlimited
export const SA_TFC: i32 = 2080; // u16
export const SA_TMPLLEN: i32 = 2082; // u16 IP (+ UDP) bytes in the template
export const SA_SPORT: i32 = 2084; // u16
export const SA_DPORT: i32 = 2086; // u16
export const SA_GREKEY: i32 = 2088; // u32
export const SA_GRESEQ: i32 = 2092; // u32 next GRE sequence number
export const SA_NEXT: i32 = 2096; // i32 SAD chain / free list
export const SA_LARGE: i32 = 2100; // i32 large-window block, -1 none
export const SA_SALT: i32 = 2104; // 4 bytes
export const SA_PEERVER: i32 = 2108; // u32 peer-table version the template was built from
export const SA_LOCAL: i32 = 2112; // 16 bytes
export const SA_REMOTE: i32 = 2128; // 16 bytes
export const SA_IVSEED: i32 = 2144; // 8 bytes
export const SA_WINDOW: i32 = 2152; // u32
// u64 reservation limit, 0 = none. Outbound: the last sequence number that
// may be sent; inbound: the last that may be accepted. The host raises it
// only after the reservation is durable (host/sa/seq_store.ts), so no number
// beyond what is on disk is ever used — the (key, nonce) guarantee across a
// crash (RFC 4106 §3.1, RFC 7634 §2: an IV must never repeat under a key).
export const SA_SEQLIMIT: i32 = 2160;
export const SA_TMPL: i32 = 2176;
export const SA_TMPL_SIZE: i32 = 64;
export const SA_REPLAY: i32 = 2240;
export const SA_REPLAY_INLINE_BYTES: i32 = 128;
export const SA_COUNTERS: i32 = 2400;

// ─── Counters (u64 each) ────────────────────────────────────────────────────
// A block is [packets, bytes, drops[reason 1 .. REASON_COUNT-1]]. Per SA the
// block sits in the record; globally there are two blocks, inbound then
// outbound. packets/bytes count packets that left with a non-DROP verdict
// (bytes = inner/plaintext length), so per block: sum(drops) + packets =
// packets processed.
export const REASON_COUNT: i32 = 20; // including 0 = none
export const CTR_PACKETS: i32 = 0;
export const CTR_BYTES: i32 = 1;
export const CTR_WORDS: i32 = REASON_COUNT + 1; // 21
export const CTR_BLOCK_SIZE: i32 = CTR_WORDS * 8; // 168

// ─── Peer table (32 bytes per peer id; peer ids are < maxSas) ──────────────
//   0 addr[16] · 16 port u16 · 18 family u8 · 19 learned u8 · 20 version u32
export const PEER_SIZE: i32 = 32;
export const PEER_ADDR: i32 = 0;
export const PEER_PORT: i32 = 16;
export const PEER_FAMILY: i32 = 18;
export const PEER_LEARNED: i32 = 19;
export const PEER_VERSION: i32 = 20;

// ─── SPD: policy parameter block and policy record ─────────────────────────
//   param (64 B):  0 priority u32 · 4 action u8 · 5 family u8 · 6 proto u8 (0 any)
//                  7 srcPrefix u8 · 8 dstPrefix u8 · 10 sportLo · 12 sportHi
//                  14 dportLo · 16 dportHi (u16) · 20 saId i32 · 24 peerId u32
//                  32 src[16] · 48 dst[16]
//   src/sport are the LOCAL side, dst/dport the REMOTE side (outbound view).
export const POLP_SIZE: i32 = 64;
export const POLP_PRIO: i32 = 0;
export const POLP_ACTION: i32 = 4;
export const POLP_FAMILY: i32 = 5;
export const POLP_PROTO: i32 = 6;
export const POLP_SRCPFX: i32 = 7;
export const POLP_DSTPFX: i32 = 8;
export const POLP_SPORTLO: i32 = 10;
export const POLP_SPORTHI: i32 = 12;
export const POLP_DPORTLO: i32 = 14;
export const POLP_DPORTHI: i32 = 16;
export const POLP_SA: i32 = 20;
export const POLP_PEER: i32 = 24;
export const POLP_SRC: i32 = 32;
export const POLP_DST: i32 = 48;

export const ACTION_DISCARD: u8 = 0;
export const ACTION_BYPASS: u8 = 1;
export const ACTION_PROTECT: u8 = 2;

//   record (96 B): 0 id u32 · 4 priority u32 · 8 action · 9 family · 10 proto
//                  12 sportLo · 14 sportHi · 16 dportLo · 18 dportHi
//                  20 saId i32 · 24 peerId u32 · 32 src · 48 srcMask · 64 dst · 80 dstMask
export const POL_SIZE: i32 = 96;
export const POL_ID: i32 = 0;
export const POL_PRIO: i32 = 4;
export const POL_ACTION: i32 = 8;
export const POL_FAMILY: i32 = 9;
export const POL_PROTO: i32 = 10;
export const POL_SPORTLO: i32 = 12;
export const POL_SPORTHI: i32 = 14;
export const POL_DPORTLO: i32 = 16;
export const POL_DPORTHI: i32 = 18;
export const POL_SA: i32 = 20;
export const POL_PEER: i32 = 24;
export const POL_SRC: i32 = 32;
export const POL_SRCMASK: i32 = 48;
export const POL_DST: i32 = 64;
export const POL_DSTMASK: i32 = 80;

// Flow cache: direct-mapped, FLOW_ENTRIES × 48 B, keyed by the 5-tuple.
export const FLOW_ENTRIES: i32 = 8192;
export const FLOW_SIZE: i32 = 48;

// Known-answer IV override buffer (katSetIv): up to 16 bytes.
export const KAT_IV_MAX: i32 = 16;
