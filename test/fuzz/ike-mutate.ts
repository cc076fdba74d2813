// Mutations of IKEv2 messages for the fuzz tests: each keeps most of a valid
// message and lies in one place, usually re-fixing the header Length so the
// decoder gets past RFC 7296 §3.1 and into the payload chain.
import type { Rng } from "../helpers/gen.ts";

/** Offsets of every generic payload header in a valid message (walking the chain). */
export function payloadOffsets(b: Uint8Array): number[] {
  const out: number[] = [];
  let type = b[16];
  let o = 28;
  while (type !== 0 && o + 4 <= b.length) {
    out.push(o);
    if (type === 46 || type === 53) break;
    type = b[o];
    o += (b[o + 2] << 8) | b[o + 3];
  }
  return out;
}

export const MUTATIONS = ["bitflip", "bytes", "truncate", "extend", "payload-length", "next-payload", "splice", "sub-length", "count"] as const;

export function mutate(r: Rng, src: Uint8Array, offs: number[], other: Uint8Array): Uint8Array {
  let b = src.slice();
  const m = r.pick(MUTATIONS);
  const at = () => (offs.length ? r.pick(offs) : 28);
  switch (m) {
    case "bitflip":
      for (let k = r.int(1, 4); k > 0; k--) b[r.int(0, b.length - 1)] ^= 1 << r.int(0, 7);
      break;
    case "bytes":
      for (let k = r.int(1, 8); k > 0; k--) b[r.int(0, b.length - 1)] = r.u32() & 0xff;
      break;
    case "truncate":
      b = b.slice(0, r.int(0, b.length));
      break;
    case "extend": {
      const x = new Uint8Array(b.length + r.int(1, 64));
      x.set(b);
      for (let i = b.length; i < x.length; i++) x[i] = r.u32() & 0xff;
      b = x;
      break;
    }
    case "payload-length": {
      const o = at();
      const len = r.pick([0, 1, 3, 4, 5, 0xffff, r.int(0, 0xffff), ((b[o + 2] << 8) | b[o + 3]) + r.pick([-1, 1, -4, 4])]);
      if (o + 3 < b.length) { b[o + 2] = len >> 8; b[o + 3] = len; }
      break;
    }
    case "next-payload": {
      const o = r.bool(0.3) ? 16 : at();
      if (o < b.length) b[o] = r.pick([0, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 53, r.int(0, 255)]);
      break;
    }
    case "splice": {
      // the tail of another valid message after a cut in this one
      const cut = r.int(28, b.length);
      const from = r.int(28, other.length);
      const x = new Uint8Array(cut + other.length - from);
      x.set(b.subarray(0, cut));
      x.set(other.subarray(from), cut);
      b = x;
      break;
    }
    case "sub-length": {
      // lie in a 16-bit field inside a payload body (proposal/transform/attribute/selector lengths, counts)
      const o = at() + 4 + r.int(0, 16);
      if (o + 1 < b.length) { b[o] = r.u32() & 0xff; b[o + 1] = r.pick([0, 1, 4, 7, 8, 16, 40, 0xff, r.u32() & 0xff]); }
      break;
    }
    case "count": {
      const o = at() + 4 + r.int(0, 8);
      if (o < b.length) b[o] = r.pick([0, 1, 2, 3, 4, 0xff, b[o] + 1, b[o] - 1]);
      break;
    }
  }
  // usually keep the header Length honest so the chain is reached (§3.1)
  if (b.length >= 28 && r.bool(0.85)) new DataView(b.buffer, b.byteOffset).setUint32(24, b.length);
  return b;
}
