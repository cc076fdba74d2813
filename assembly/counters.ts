// Drop reasons and counters: count, don't throw (STYLE.md §7).
//
// One enumeration of every reason a packet can be dropped. Each reason has a
// u64 counter globally (per direction) and per SA, so the host can always
// explain where a packet went: for every block, packets + Σ drops = packets
// processed. Counter blocks live in linear memory and the host reads them
// directly (layout in layout.ts).
import { CTR_BLOCK_SIZE, CTR_BYTES, CTR_PACKETS, REASON_COUNT, SA_COUNTERS } from "./layout";
import { arenaAlloc } from "./arena";

// Keep in step with REASON_NAMES in host/core/abi.ts (checked by a test).
export namespace Reason {
  export const NONE: u16 = 0;
  export const MALFORMED: u16 = 1; // short or inconsistent header, bad length field, fragment
  export const BAD_SLOT: u16 = 2; // descriptor offset/length outside the slot, unknown kind
  export const NO_SA: u16 = 3; // unknown SPI / SA id, wrong direction, no plain-tunnel SA
  export const REPLAY: u16 = 4; // duplicate inside the window (RFC 4303 §3.4.3)
  export const REPLAY_OLD: u16 = 5; // left of the window
  export const AUTH: u16 = 6; // ICV mismatch (RFC 4303 §3.4.4)
  export const PADDING: u16 = 7; // pad length too long or padding not 1,2,3,… (§2.4)
  export const POLICY: u16 = 8; // inner packet not within the SA's selectors (RFC 4301 §5.2)
  export const SEQ_EXHAUSTED: u16 = 9; // outbound sequence would wrap (§3.3.3): rekey
  export const TOO_BIG: u16 = 10; // over the SA's path MTU or the slot
  export const DISCARD: u16 = 11; // SPD action DISCARD
  export const NO_POLICY: u16 = 12; // no SPD entry matches (RFC 4301 default: discard)
  export const DUMMY: u16 = 13; // next header 59, dummy packet (§2.6)
  export const KEEPALIVE: u16 = 14; // NAT-keepalive 0xFF (RFC 3948 §2.3)
  export const NEXT_HEADER: u16 = 15; // next header the SA's mode does not carry
  export const NOT_ESP: u16 = 16; // neither ESP, NAT-T UDP nor a plain tunnel
  export const GRE: u16 = 17; // bad GRE header, checksum or key (RFC 2784/2890)
  export const UNSUPPORTED: u16 = 18; // SA mode/suite not usable on this path
  export const SEQ_UNRESERVED: u16 = 19; // sequence number past the durable reservation (SA_SEQLIMIT)
}

let globalBase: usize = 0; // two blocks: inbound, outbound

export function countersInit(): bool {
  globalBase = arenaAlloc(<usize>(2 * CTR_BLOCK_SIZE), 64);
  return globalBase != 0;
}

/** Global counter block of a direction (0 inbound, 1 outbound), CTR_BLOCK_SIZE bytes. */
export function globalCounters(dir: i32): usize {
  return globalBase + <usize>(dir * CTR_BLOCK_SIZE);
}

@inline function bump(block: usize, word: i32, by: u64): void {
  const p = block + <usize>(word << 3);
  store<u64>(p, load<u64>(p) + by);
}

/** Counts a drop globally and, when `sa` is not 0, on that SA. */
export function countDrop(dir: i32, sa: usize, reason: u16): void {
  const r = <i32>reason < REASON_COUNT ? <i32>reason : <i32>Reason.MALFORMED;
  bump(globalCounters(dir), 1 + r, 1);
  if (sa != 0) bump(sa + SA_COUNTERS, 1 + r, 1);
}

/** Counts a packet that left with a non-DROP verdict; `bytes` is its inner length. */
export function countOk(dir: i32, sa: usize, bytes: i32): void {
  const g = globalCounters(dir);
  bump(g, CTR_PACKETS, 1);
  bump(g, CTR_BYTES, <u64>bytes);
  if (sa != 0) {
    bump(sa + SA_COUNTERS, CTR_PACKETS, 1);
    bump(sa + SA_COUNTERS, CTR_BYTES, <u64>bytes);
  }
}
