// Extended Sequence Numbers: rebuilding the 64-bit number from its 32 wire bits
// (RFC 4303 §2.2.1 and Appendix A).
//
// With ESN only the low 32 bits (Seql) travel in the ESP header; the high 32 (Seqh)
// are implied by the receiver's window and authenticated through the ICV (or AEAD
// AAD), so a wrong guess fails authentication instead of being accepted. The guess
// follows Appendix A2.2 (cases A/B as defined in A2): Tl, Th = low and high halves of the highest authenticated
// number `top`, W = window size, the window's bottom is Tl − W + 1 (mod 2^32).
//
//   Case A — window within one subspace (Tl ≥ W − 1):
//        0 ──────────── bottom ═════ Tl ───────────── 2^32
//        Seql ≥ bottom  → Seqh = Th      (in the window or ahead of it)
//        Seql < bottom  → Seqh = Th + 1  (the sender wrapped into the next subspace)
//
//   Case B — window spans two subspaces (Tl < W − 1):
//        0 ═════ Tl ──────────────────── bottom ═════ 2^32
//        Seql ≥ bottom  → Seqh = Th − 1  (a late packet from the previous subspace)
//        Seql < bottom  → Seqh = Th      (in the window's upper part or ahead)
//
// Edges the RFC leaves open, decided here:
//  - Case B with Th = 0 has no previous subspace (nothing was sent below 0), so
//    Seqh stays 0: the number is simply ahead of top in subspace 0.
//  - Case A with Th = 2^32 − 1 would need Seqh = 2^32: it wraps to 0, which lands far
//    left of the window and is dropped as too old. A sender never gets there: it
//    must rekey before its 64-bit counter cycles (RFC 4303 §3.3.3).

/**
 * The full 64-bit sequence number to assume for a packet carrying `seqLo` when the
 * highest authenticated number is `top` and the replay window is `window` packets
 * (the SA's configured W; 0 is treated as 1). Pure.
 */
export function esnInfer(top: u64, window: u32, seqLo: u32): u64 {
  const w = max(window, 1);
  const tl = <u32>top;
  const th = <u32>(top >>> 32);
  const bottom = tl - w + 1; // mod 2^32
  let hi: u32;
  if (tl >= w - 1) {
    hi = seqLo >= bottom ? th : th + 1; // Case A
  } else {
    hi = seqLo >= bottom && th != 0 ? th - 1 : th; // Case B
  }
  return (<u64>hi << 32) | <u64>seqLo;
}
