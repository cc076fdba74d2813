// Anti-replay window (RFC 4303 §3.4.3) over a ring of 64-bit words (RFC 6479).
//
// The receiver remembers the highest authenticated sequence number `top` and, for
// the W numbers ending at it, whether each was seen. A packet is acceptable when it
// is right of the window (seq > top) or inside it and not yet marked; everything at
// or left of top − W is "too old". The check runs BEFORE the ICV is verified (RFC 4303
// §3.4.3: it should be the first check after the SA lookup, to reject duplicates
// cheaply); the window moves only AFTER the ICV verified (§3.4.3: the receive window
// is updated only on successful integrity verification), so a forged packet can
// never slide it.
//
// Sequence numbers are full 64-bit values: for ESN SAs the caller first rebuilds the
// high half with esnInfer (esn.ts, RFC 4303 Appendix A); without ESN it passes the
// 32 wire bits, so top stays below 2^32 and the same code applies.
//
// Sequence number 0 is never acceptable: the sender's counter starts at 0 and is
// incremented before use, so the first packet on an SA carries 1 (RFC 4303 §3.3.3),
// and the sender must not let the counter cycle back to 0 (§3.3.3; it rekeys
// instead) — for 32-bit and extended numbers alike. replayCheck reports it
// as REPLAY_TOO_OLD (counted with the other replays); replayAdvance ignores it.
//
// RFC 6479 bitmap: bit b of ring word i stands for the sequence number whose block
// (seq >> 6) maps to i = block & wordsMask, at bit seq & 63. The ring has one more
// word than the window needs, so sliding the window right only ever CLEARS whole
// words (those between the old and the new top block) — no bit shifting — and the
// in-window check reads exactly one word. Example, W = 128, 4 words (256 bits):
//
//   seq   0       64      128     192     256     320    (blocks of 64 numbers)
//         ├───────┼───────┼───────┼───────┼───────┤
//   word  │  w0   │  w1   │  w2   │  w3   │  w0   │ …  ring word = (seq >> 6) & 3
//                        ├═══ W = 128 ═══┤
//                        123             250 = top
//   Authenticated 300 (block 4): clear only ring word 0 (it held block 0, now left of
//   the window), set bit 300 & 63 = 44 in it, top = 300. A new top 4 or more blocks
//   past the old one's block (a jump over the whole ring): clear every word.
//
// State record (REPLAY_HDR_SIZE = 32 bytes, lives inside the SA runtime record;
// keep it 8-byte aligned, the SA record is 64-byte aligned):
//   +0  ┌─────────────────────────────┐
//       │ top        u64              │ highest authenticated seq (0 = none yet)
//   +8  ├──────────────┬──────────────┤
//       │ window  u32  │ wordsMask u32│ W in packets (32..65536) │ ring words − 1
//   +16 ├──────────────┼──────────────┤
//       │ bitmap usize │ reserved u32 │ → replayWords(W) × u64, 8-byte aligned
//   +24 ├──────────────┴──────────────┤
//       │ reserved u64 (zero)         │
//   +32 └─────────────────────────────┘  (an inline bitmap may start here)
//
// Bitmap size: W/64 rounded up, plus one word for the partially filled block at
// either edge, rounded up to a power of two so the ring index is a mask:
//   W = 32 → 2 words (16 B), 64 → 2, 128 → 4, 1024 → 32 (256 B), 65536 → 2048 (16 KiB).
//
// Batching note: replayCheck is pure, so if the datapath checks a whole batch before
// it advances any packet, two copies of one packet in the same batch both pass the
// check. Check each packet again right before its replayAdvance (what Linux's
// xfrm_replay_recheck does after asynchronous crypto) or process check → verify →
// advance one packet at a time.

export const REPLAY_HDR_SIZE: i32 = 32;

/** Verdicts of replayCheck. */
export const REPLAY_OK: i32 = 0;
export const REPLAY_DUPLICATE: i32 = 1;
export const REPLAY_TOO_OLD: i32 = 2;

export const REPLAY_WINDOW_MIN: u32 = 32;
export const REPLAY_WINDOW_MAX: u32 = 65536;

const OFF_TOP: usize = 0;
const OFF_WINDOW: usize = 8;
const OFF_MASK: usize = 12;
const OFF_BITMAP: usize = 16;

// @ts-ignore: decorator
@inline function clampWindow(window: u32): u32 {
  return min(max(window, REPLAY_WINDOW_MIN), REPLAY_WINDOW_MAX);
}

/**
 * Number of u64 bitmap words (a power of two) for a window of `window` packets,
 * clamped to 32..65536. The caller reserves replayWords(W) × 8 bytes, 8-byte aligned.
 */
export function replayWords(window: u32): u32 {
  const need = ((clampWindow(window) + 63) >> 6) + 1;
  return <u32>1 << (32 - clz<u32>(need - 1));
}

/**
 * Sets up the replay state at `state` (REPLAY_HDR_SIZE bytes) for a window of `window`
 * packets (clamped to 32..65536) whose bitmap is at `bitmap` (replayWords(window) × 8
 * bytes, 8-byte aligned; may be state + REPLAY_HDR_SIZE). Zeroes the bitmap; top = 0.
 */
export function replayInit(state: usize, window: u32, bitmap: usize): void {
  const w = clampWindow(window);
  const words = replayWords(w);
  store<u64>(state, 0, OFF_TOP);
  store<u32>(state, w, OFF_WINDOW);
  store<u32>(state, words - 1, OFF_MASK);
  store<usize>(state, bitmap, OFF_BITMAP);
  store<u32>(state, 0, 20);
  store<u64>(state, 0, 24);
  memory.fill(bitmap, 0, <usize>words << 3);
}

/**
 * Marks every number ≤ `top` as received (top must equal the state's top):
 * a window resumed after a restart, where each number up to the durable
 * reservation may have been accepted before the crash. Numbers above top in
 * top's own word stay clear, so a reordered packet just past it still passes.
 */
export function replayMarkBelow(state: usize, top: u64): void {
  const words = <usize>load<u32>(state, OFF_MASK) + 1;
  const bitmap = load<usize>(state, OFF_BITMAP);
  memory.fill(bitmap, 0xff, words << 3);
  const bit = top & 63;
  store<u64>(wordAddr(state, top >> 6), bit == 63 ? 0xffffffffffffffff : (<u64>1 << (bit + 1)) - 1);
}

// @ts-ignore: decorator
@inline function wordAddr(state: usize, block: u64): usize {
  return load<usize>(state, OFF_BITMAP) + ((<usize>(<u32>block & load<u32>(state, OFF_MASK))) << 3);
}

/**
 * Checks the full 64-bit sequence number `seq` against the window at `state` before
 * the ICV is verified. Pure: does not modify the state.
 * Returns REPLAY_OK (0), REPLAY_DUPLICATE (1) or REPLAY_TOO_OLD (2, also for seq 0).
 */
export function replayCheck(state: usize, seq: u64): i32 {
  if (seq == 0) return REPLAY_TOO_OLD;
  const top = load<u64>(state, OFF_TOP);
  if (seq > top) return REPLAY_OK;
  if (top - seq >= <u64>load<u32>(state, OFF_WINDOW)) return REPLAY_TOO_OLD;
  // RFC 6479 fast path: inside the window the verdict is one bit of one word.
  const word = load<u64>(wordAddr(state, seq >> 6));
  return <i32>((word >> (seq & 63)) & 1);
}

/**
 * Records the authenticated sequence number `seq` (call only after the ICV verified).
 * Right of the window it slides: the ring words of the blocks passed over are cleared
 * (all of them after a jump of a whole ring or more) and top = seq. Inside the window
 * it marks the bit. seq 0 and numbers left of the window change nothing.
 */
export function replayAdvance(state: usize, seq: u64): void {
  if (seq == 0) return;
  const top = load<u64>(state, OFF_TOP);
  if (seq > top) {
    const mask = load<u32>(state, OFF_MASK);
    const oldBlock = top >> 6;
    const steps = (seq >> 6) - oldBlock;
    if (steps > <u64>mask) {
      memory.fill(load<usize>(state, OFF_BITMAP), 0, (<usize>mask + 1) << 3);
    } else {
      for (let i: u64 = 1; i <= steps; i++) store<u64>(wordAddr(state, oldBlock + i), 0);
    }
    store<u64>(state, seq, OFF_TOP);
  } else if (top - seq >= <u64>load<u32>(state, OFF_WINDOW)) {
    return;
  }
  const p = wordAddr(state, seq >> 6);
  store<u64>(p, load<u64>(p) | (<u64>1 << (seq & 63)));
}
