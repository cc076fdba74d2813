// Data and tag placed in wasm memory between guard bands, so an AEAD test can
// tell whether a seal or open wrote outside the bytes it was given.
//
//   region: [ guard 64 B | shift B | data len B | tag 16 B | guard 64 B | spare ]
//                                  ^ d          ^ t
//
// `shift` (0..15) misaligns data and tag on purpose; the spare 16 bytes make
// room for it. Every guard byte holds GUARD before the call.
import type { Scratch } from "../../host/core/raw_exports.ts";

const GUARD = 0xa5;
const BAND = 64;

/** Where data (`d`) and its 16-byte tag (`t`, right after the data) sit. */
export interface Guarded { d: number; t: number }

/** Copies data ‖ tag (16 bytes) into `s` between guard bands, `shift` (0..15) bytes off alignment. */
export function placeGuarded(s: Scratch, data: Uint8Array, tag: Uint8Array, shift: number): Guarded {
  const size = BAND + data.length + 16 + BAND + 16;
  const region = s.alloc(size);
  const u8 = s.u8();
  u8.fill(GUARD, region, region + size);
  const d = region + BAND + shift;
  u8.set(data, d);
  u8.set(tag, d + data.length);
  return { d, t: d + data.length };
}

/** True when both guard bands around p's data and tag still hold GUARD. */
export function guardsIntact(s: Scratch, p: Guarded): boolean {
  const u8 = s.u8();
  for (let i = p.d - BAND; i < p.d; i++) if (u8[i] !== GUARD) return false;
  for (let i = p.t + 16; i < p.t + 16 + BAND; i++) if (u8[i] !== GUARD) return false;
  return true;
}
