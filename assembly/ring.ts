// The packet ring: `slots` fixed-size slots and one descriptor per slot,
// carved out of the arena once by init() (layout.ts draws both).
//
// The host writes a packet into slot i after HEADROOM, fills descriptor i and
// calls processOutbound/processInbound(n) once for slots 0..n-1 (STYLE.md §2,
// wireguard-go's batch-with-offset model). The core rewrites off/len in place
// as it adds or strips headers, so nothing is ever copied between slots.
import { arenaAlloc } from "./arena";
import { D_LEN, D_OFF, DESC_SIZE, FRAG_SLOTS, SLOT_SIZE } from "./layout";

let ringSlots: i32 = 0;
let slotBase: usize = 0;
let descTable: usize = 0;

/** Reserves the slots and their descriptors; false when memory cannot grow. */
export function ringInit(slots: i32): bool {
  // + FRAG_SLOTS behind them: only the core fills those (too_big.ts)
  const all = <usize>(slots + FRAG_SLOTS);
  slotBase = arenaAlloc(all * <usize>SLOT_SIZE, 64);
  descTable = arenaAlloc(all * <usize>DESC_SIZE, 64);
  if (slotBase == 0 || descTable == 0) return false;
  ringSlots = slots;
  return true;
}

export function ringCount(): i32 {
  return ringSlots;
}

export function ringSlotsBase(): usize {
  return slotBase;
}

export function ringDescBase(): usize {
  return descTable;
}

/** First byte of slot i (SLOT_SIZE bytes). */
// @ts-ignore: decorator
@inline export function slotPtr(i: i32): usize {
  return slotBase + <usize>i * <usize>SLOT_SIZE;
}

/** Descriptor of slot i (DESC_SIZE bytes). */
// @ts-ignore: decorator
@inline export function descPtr(i: i32): usize {
  return descTable + <usize>(i * DESC_SIZE);
}

/**
 * True when the descriptor's [off, off+len) lies inside the slot: every read
 * the core makes is bounded by this, so a lying descriptor can never reach
 * outside its slot, let alone trap.
 */
export function descInBounds(d: usize): bool {
  const off = load<u32>(d + D_OFF);
  const len = load<u32>(d + D_LEN);
  return off <= <u32>SLOT_SIZE && len <= <u32>SLOT_SIZE - off;
}
