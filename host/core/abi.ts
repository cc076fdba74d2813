// The WASM data-plane ABI as numbers, mirrored from assembly/layout.ts and
// assembly/counters.ts. host/core/ is the only module that imports this file;
// test/unit/core-layout.test.ts checks every value against the module's
// layout*() exports so the two sides cannot drift apart.

// Ring
export const HEADROOM = 128;
export const MAX_PACKET = 9000;
export const SLOT_SIZE = 9472;
export const DEFAULT_SLOTS = 256;
export const MAX_SLOTS = 4096;
export const FRAG_SLOTS = 32;

// Slot descriptor (64 B): see docs/core.md
export const DESC_SIZE = 64;
export const D_OFF = 0;
export const D_LEN = 4;
export const D_KIND = 8;
export const D_VERDICT = 9;
export const D_REASON = 10;
export const D_SA = 12;
export const D_PEER = 16;
export const D_HDRLEN = 20;
export const D_MTU = 22;
export const D_FAMILY = 24;
export const D_PROTO = 25;
export const D_PORT = 26;
export const D_LPORT = 28;
export const D_ADDR = 32;
export const D_LOCAL = 48;
export const D_INNER_MTU = 30;

export const KIND_IP = 0;
export const KIND_UDP = 1;
export const KIND_PAYLOAD = 2;

export const VERDICT_DROP = 0;
export const VERDICT_TO_NETWORK = 1;
export const VERDICT_TO_TUN = 2;
export const VERDICT_TO_HOST = 3;
export const VERDICT_BYPASS = 4;
/** Outbound TOO_BIG answers (assembly/too_big.ts): an ICMP error for the TUN; an IPv4 packet for fragmentOutbound. */
export const VERDICT_ICMP = 5;
export const VERDICT_FRAGMENT = 6;
export const VERDICT_NAMES = ["DROP", "TO_NETWORK", "TO_TUN", "TO_HOST", "BYPASS", "ICMP", "FRAGMENT"] as const;
/** D_PROTO of a TO_HOST slot: IKE behind the non-ESP marker, or STUN (assembly/udp_encap.ts). */
export const HOST_IKE = 0;
export const HOST_STUN = 1;

// SA parameter block (192 B)
export const SAP_SIZE = 192;
export const SAP_DIR = 0;
export const SAP_SUITE = 1;
export const SAP_MODE = 2;
export const SAP_FLAGS = 3;
export const SAP_SPI = 4;
export const SAP_WINDOW = 8;
export const SAP_PEER = 12;
export const SAP_SEQ = 16;
export const SAP_FAMILY = 24;
export const SAP_TTL = 25;
export const SAP_TOS = 26;
export const SAP_KEYLEN = 27;
export const SAP_IPID = 28;
export const SAP_MTU = 30;
export const SAP_SPORT = 32;
export const SAP_DPORT = 34;
export const SAP_TFC = 36;
export const SAP_GREKEY = 40;
export const SAP_KEY = 48;
export const SAP_SALT = 80;
export const SAP_IVSEED = 88;
export const SAP_HMACKEY = 96;
export const SAP_LOCAL = 128;
export const SAP_REMOTE = 144;
export const SAP_SEQLIMIT = 160;

export const DIR_IN = 0;
export const DIR_OUT = 1;

export const SUITE_NONE = 0;
export const SUITE_AES_GCM_16 = 1;
export const SUITE_CHACHA20_POLY1305 = 2;
export const SUITE_AES_CBC_HMAC_SHA256 = 3;
export const SUITE_AES_CBC = 4;

export const MODE_TUNNEL = 0;
export const MODE_TRANSPORT = 1;
export const MODE_TRANSPORT_IPIP = 2;
export const MODE_TRANSPORT_GRE = 3;
export const MODE_IPIP = 4;
export const MODE_GRE = 5;
export const MODE_PAYLOAD = 6;

export const FLAG_ESN = 1;
export const FLAG_UDP = 2;
export const FLAG_GRE_KEY = 4;
export const FLAG_GRE_SEQ = 8;
export const FLAG_DF = 16;
export const FLAG_ALLOW_NO_INTEGRITY = 32;
export const FLAG_PRIOR_SEEN = 64;
export const FLAG_FIXED_REMOTE = 128;
export const FLAG_REPLAY = 256;
export const FLAG_NEEDS_REKEY = 512;

export const ERR_NAMES: Record<number, string> = {
  [-1]: "core not initialised",
  [-2]: "table full",
  [-3]: "invalid parameter",
  [-4]: "duplicate inbound SPI",
  [-5]: "encryption without integrity refused (set allowNoIntegrity)",
  [-6]: "no free large replay-window block",
  [-7]: "out of memory",
  [-8]: "already initialised",
  [-9]: "not found",
};

// SA record (2,624 B): only the fields the host reads
export const SA_SIZE = 2624;
export const SA_STATE = 2048;
export const SA_FLAGS = 2052;
export const SA_SPI = 2056;
export const SA_PEER = 2060;
export const SA_SEQ = 2064;
export const SA_REPLAY = 2240;
export const SA_COUNTERS = 2400;
export const SA_SEQLIMIT = 2160;

// Counters
export const REASON_NAMES = [
  "NONE",
  "MALFORMED",
  "BAD_SLOT",
  "NO_SA",
  "REPLAY",
  "REPLAY_OLD",
  "AUTH",
  "PADDING",
  "POLICY",
  "SEQ_EXHAUSTED",
  "TOO_BIG",
  "DISCARD",
  "NO_POLICY",
  "DUMMY",
  "KEEPALIVE",
  "NEXT_HEADER",
  "NOT_ESP",
  "GRE",
  "UNSUPPORTED",
  "SEQ_UNRESERVED",
] as const;
export type ReasonName = (typeof REASON_NAMES)[number];
export const REASON_COUNT = REASON_NAMES.length; // 20
export const CTR_WORDS = REASON_COUNT + 1;
export const CTR_BLOCK_SIZE = CTR_WORDS * 8;

// Peer table
export const PEER_SIZE = 32;

// SPD policy parameter block (64 B)
export const POLP_SIZE = 64;
export const POLP_PRIO = 0;
export const POLP_ACTION = 4;
export const POLP_FAMILY = 5;
export const POLP_PROTO = 6;
export const POLP_SRCPFX = 7;
export const POLP_DSTPFX = 8;
export const POLP_SPORTLO = 10;
export const POLP_SPORTHI = 12;
export const POLP_DPORTLO = 14;
export const POLP_DPORTHI = 16;
export const POLP_SA = 20;
export const POLP_PEER = 24;
export const POLP_SRC = 32;
export const POLP_DST = 48;
export const POL_SIZE = 96;

export const ACTION_DISCARD = 0;
export const ACTION_BYPASS = 1;
export const ACTION_PROTECT = 2;

export const FLOW_ENTRIES = 8192;
export const FLOW_SIZE = 48;
export const KAT_IV_MAX = 16;

/** Values checked one by one against the module's layoutTable() (same order as in assembly/api.ts). */
export const LAYOUT_CHECK: [string, number][] = [
  ["D_OFF", D_OFF],
  ["D_LEN", D_LEN],
  ["D_KIND", D_KIND],
  ["D_VERDICT", D_VERDICT],
  ["D_REASON", D_REASON],
  ["D_SA", D_SA],
  ["D_PEER", D_PEER],
  ["D_HDRLEN", D_HDRLEN],
  ["D_MTU", D_MTU],
  ["D_FAMILY", D_FAMILY],
  ["D_PROTO", D_PROTO],
  ["D_PORT", D_PORT],
  ["D_LPORT", D_LPORT],
  ["D_ADDR", D_ADDR],
  ["D_LOCAL", D_LOCAL],
  ["D_INNER_MTU", D_INNER_MTU],
  ["SAP_DIR", SAP_DIR],
  ["SAP_SUITE", SAP_SUITE],
  ["SAP_MODE", SAP_MODE],
  ["SAP_FLAGS", SAP_FLAGS],
  ["SAP_SPI", SAP_SPI],
  ["SAP_WINDOW", SAP_WINDOW],
  ["SAP_PEER", SAP_PEER],
  ["SAP_SEQ", SAP_SEQ],
  ["SAP_FAMILY", SAP_FAMILY],
  ["SAP_TTL", SAP_TTL],
  ["SAP_TOS", SAP_TOS],
  ["SAP_KEYLEN", SAP_KEYLEN],
  ["SAP_IPID", SAP_IPID],
  ["SAP_MTU", SAP_MTU],
  ["SAP_SPORT", SAP_SPORT],
  ["SAP_DPORT", SAP_DPORT],
  ["SAP_TFC", SAP_TFC],
  ["SAP_GREKEY", SAP_GREKEY],
  ["SAP_KEY", SAP_KEY],
  ["SAP_SALT", SAP_SALT],
  ["SAP_IVSEED", SAP_IVSEED],
  ["SAP_HMACKEY", SAP_HMACKEY],
  ["SAP_LOCAL", SAP_LOCAL],
  ["SAP_REMOTE", SAP_REMOTE],
  ["SAP_SEQLIMIT", SAP_SEQLIMIT],
  ["SA_STATE", SA_STATE],
  ["SA_FLAGS", SA_FLAGS],
  ["SA_SPI", SA_SPI],
  ["SA_PEER", SA_PEER],
  ["SA_SEQ", SA_SEQ],
  ["SA_REPLAY", SA_REPLAY],
  ["SA_COUNTERS", SA_COUNTERS],
  ["SA_SEQLIMIT", SA_SEQLIMIT],
  ["POLP_PRIO", POLP_PRIO],
  ["POLP_ACTION", POLP_ACTION],
  ["POLP_FAMILY", POLP_FAMILY],
  ["POLP_PROTO", POLP_PROTO],
  ["POLP_SRCPFX", POLP_SRCPFX],
  ["POLP_DSTPFX", POLP_DSTPFX],
  ["POLP_SPORTLO", POLP_SPORTLO],
  ["POLP_SPORTHI", POLP_SPORTHI],
  ["POLP_DPORTLO", POLP_DPORTLO],
  ["POLP_DPORTHI", POLP_DPORTHI],
  ["POLP_SA", POLP_SA],
  ["POLP_PEER", POLP_PEER],
  ["POLP_SRC", POLP_SRC],
  ["POLP_DST", POLP_DST],
  ["KIND_IP", KIND_IP],
  ["KIND_UDP", KIND_UDP],
  ["KIND_PAYLOAD", KIND_PAYLOAD],
  ["VERDICT_DROP", VERDICT_DROP],
  ["VERDICT_TO_NETWORK", VERDICT_TO_NETWORK],
  ["VERDICT_TO_TUN", VERDICT_TO_TUN],
  ["VERDICT_TO_HOST", VERDICT_TO_HOST],
  ["VERDICT_BYPASS", VERDICT_BYPASS],
  ["VERDICT_ICMP", VERDICT_ICMP],
  ["VERDICT_FRAGMENT", VERDICT_FRAGMENT],
  ["DIR_IN", DIR_IN],
  ["DIR_OUT", DIR_OUT],
  ["SUITE_NONE", SUITE_NONE],
  ["SUITE_AES_GCM_16", SUITE_AES_GCM_16],
  ["SUITE_CHACHA20_POLY1305", SUITE_CHACHA20_POLY1305],
  ["SUITE_AES_CBC_HMAC_SHA256", SUITE_AES_CBC_HMAC_SHA256],
  ["SUITE_AES_CBC", SUITE_AES_CBC],
  ["MODE_TUNNEL", MODE_TUNNEL],
  ["MODE_TRANSPORT", MODE_TRANSPORT],
  ["MODE_TRANSPORT_IPIP", MODE_TRANSPORT_IPIP],
  ["MODE_TRANSPORT_GRE", MODE_TRANSPORT_GRE],
  ["MODE_IPIP", MODE_IPIP],
  ["MODE_GRE", MODE_GRE],
  ["MODE_PAYLOAD", MODE_PAYLOAD],
  ["FLAG_ESN", FLAG_ESN],
  ["FLAG_UDP", FLAG_UDP],
  ["FLAG_GRE_KEY", FLAG_GRE_KEY],
  ["FLAG_GRE_SEQ", FLAG_GRE_SEQ],
  ["FLAG_DF", FLAG_DF],
  ["FLAG_ALLOW_NO_INTEGRITY", FLAG_ALLOW_NO_INTEGRITY],
  ["FLAG_PRIOR_SEEN", FLAG_PRIOR_SEEN],
  ["FLAG_FIXED_REMOTE", FLAG_FIXED_REMOTE],
  ["FLAG_REPLAY", FLAG_REPLAY],
  ["FLAG_NEEDS_REKEY", FLAG_NEEDS_REKEY],
  ["ACTION_DISCARD", ACTION_DISCARD],
  ["ACTION_BYPASS", ACTION_BYPASS],
  ["ACTION_PROTECT", ACTION_PROTECT],
  ["KAT_IV_MAX", KAT_IV_MAX],
  ["HOST_IKE", HOST_IKE],
  ["HOST_STUN", HOST_STUN],
  ["FRAG_SLOTS", FRAG_SLOTS],
];
