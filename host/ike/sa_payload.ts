// The Security Association payload, RFC 7296 §3.3: a list of proposals, each a
// protocol with an SPI and a list of transforms, each transform with optional
// attributes. Three nested length-prefixed structures: each length is checked
// against its parent's before anything inside is read.
//
//   Proposal (§3.3.1)                      Transform (§3.3.2)
//   ┌────────┬────────┬──────────────┐     ┌────────┬────────┬──────────────┐
//   │ Last 0/2│ RESERVED│ Proposal Len │     │ Last 0/3│ RESERVED│ Transform Len│
//   ├────────┼────────┼───────┬──────┤     ├────────┼────────┼──────────────┤
//   │ Num    │ Proto  │SPISize│#Trans│     │ Type   │ RESERVED│ Transform ID │
//   ├────────┴────────┴───────┴──────┤     ├────────┴────────┴──────────────┤
//   │ SPI (SPISize) … Transforms …   │     │ Attributes (§3.3.5) …          │
//   └────────────────────────────────┘     └────────────────────────────────┘
import { Attribute, Protocol } from "./constants.ts";
import { concatBytes, fail, ok, put16, u16, type Result } from "./result.ts";

/** A transform attribute (§3.3.5): TV (2-byte value, AF = 1) or TLV (AF = 0). */
export interface TransformAttribute {
  type: number;
  /** A number for the TV format, bytes for TLV. */
  value: number | Uint8Array;
}

export interface Transform {
  type: number;
  id: number;
  attributes: TransformAttribute[];
}

export interface Proposal {
  /** Proposal Num: 1 for the first, then equal (AND) or one more (OR), §3.3.1. */
  num: number;
  protocol: number;
  /** Empty in IKE_SA_INIT (§3.3.1: "For an initial IKE SA negotiation, this field MUST be zero"), 4 bytes for ESP/AH, 8 for an IKE rekey. */
  spi: Uint8Array;
  transforms: Transform[];
}

const PROPOSAL_HEADER = 8;
const TRANSFORM_HEADER = 8;
const LAST_PROPOSAL = 0;
const MORE_PROPOSALS = 2;
const LAST_TRANSFORM = 0;
const MORE_TRANSFORMS = 3;
const AF_TV = 0x8000;

/** The Key Length attribute of a transform (§3.3.5), or undefined. */
export function keyLength(t: Transform): number | undefined {
  for (const a of t.attributes) if (a.type === Attribute.KEY_LENGTH && typeof a.value === "number") return a.value;
  return undefined;
}

/** Decodes an SA payload body; `base` is the body's offset in the message, for error offsets. */
export function decodeSa(b: Uint8Array, base = 0): Result<Proposal[]> {
  const proposals: Proposal[] = [];
  let o = 0;
  let last = -1;
  while (o < b.length) {
    if (last === LAST_PROPOSAL) return fail("proposal-last", "proposal after one marked last", base + o);
    if (b.length - o < PROPOSAL_HEADER) return fail("proposal-length", "proposal header truncated", base + o);
    last = b[o];
    if (last !== LAST_PROPOSAL && last !== MORE_PROPOSALS) return fail("proposal-last", `Last Substruc ${last} in a proposal`, base + o);
    const len = u16(b, o + 2);
    if (len < PROPOSAL_HEADER || len > b.length - o) return fail("proposal-length", `proposal length ${len}, ${b.length - o} left`, base + o);
    const num = b[o + 4];
    const prev = proposals.length ? proposals[proposals.length - 1].num : 0;
    // §3.3.1: "The first Proposal MUST have a Proposal Num of one"; each next one is the same or one more.
    if (proposals.length === 0 ? num !== 1 : num !== prev && num !== prev + 1) {
      return fail("proposal-number", `proposal number ${num} after ${prev}`, base + o);
    }
    const protocol = b[o + 5];
    const spiSize = b[o + 6];
    const count = b[o + 7];
    if (!spiSizeAllowed(protocol, spiSize)) return fail("spi-size", `SPI size ${spiSize} for protocol ${protocol}`, base + o + 6);
    if (PROPOSAL_HEADER + spiSize > len) return fail("proposal-length", `SPI of ${spiSize} bytes in a ${len}-byte proposal`, base + o);
    const spi = b.slice(o + PROPOSAL_HEADER, o + PROPOSAL_HEADER + spiSize);
    const tr = decodeTransforms(b.subarray(o + PROPOSAL_HEADER + spiSize, o + len), base + o + PROPOSAL_HEADER + spiSize);
    if (!tr.ok) return tr;
    if (tr.value.length !== count) return fail("transform-count", `Num Transforms ${count}, found ${tr.value.length}`, base + o + 7);
    proposals.push({ num, protocol, spi, transforms: tr.value });
    o += len;
  }
  if (proposals.length === 0) return fail("body-short", "SA payload without a proposal", base);
  if (last !== LAST_PROPOSAL) return fail("proposal-last", "last proposal not marked last", base);
  return ok(proposals);
}

/** §3.3.1: SPI sizes are 0 or 8 for IKE (8 only when rekeying), 4 for ESP/AH; other protocols are only read. */
function spiSizeAllowed(protocol: number, size: number): boolean {
  if (protocol === Protocol.IKE) return size === 0 || size === 8;
  if (protocol === Protocol.ESP || protocol === Protocol.AH) return size === 4;
  return true;
}

function decodeTransforms(b: Uint8Array, base: number): Result<Transform[]> {
  const out: Transform[] = [];
  let o = 0;
  let last = -1;
  while (o < b.length) {
    if (last === LAST_TRANSFORM) return fail("proposal-last", "transform after one marked last", base + o);
    if (b.length - o < TRANSFORM_HEADER) return fail("proposal-length", "transform header truncated", base + o);
    last = b[o];
    if (last !== LAST_TRANSFORM && last !== MORE_TRANSFORMS) return fail("proposal-last", `Last Substruc ${last} in a transform`, base + o);
    const len = u16(b, o + 2);
    if (len < TRANSFORM_HEADER || len > b.length - o) return fail("proposal-length", `transform length ${len}, ${b.length - o} left`, base + o);
    const attrs = decodeAttributes(b.subarray(o + TRANSFORM_HEADER, o + len), base + o + TRANSFORM_HEADER);
    if (!attrs.ok) return attrs;
    out.push({ type: b[o + 4], id: u16(b, o + 6), attributes: attrs.value });
    o += len;
  }
  if (out.length && last !== LAST_TRANSFORM) return fail("proposal-last", "last transform not marked last", base);
  return ok(out);
}

function decodeAttributes(b: Uint8Array, base: number): Result<TransformAttribute[]> {
  const out: TransformAttribute[] = [];
  let o = 0;
  while (o < b.length) {
    if (b.length - o < 4) return fail("proposal-length", "attribute truncated", base + o);
    const word = u16(b, o);
    if (word & AF_TV) {
      out.push({ type: word & ~AF_TV, value: u16(b, o + 2) });
      o += 4;
    } else {
      const len = u16(b, o + 2);
      if (len > b.length - o - 4) return fail("proposal-length", `attribute length ${len}, ${b.length - o - 4} left`, base + o);
      out.push({ type: word, value: b.slice(o + 4, o + 4 + len) });
      o += 4 + len;
    }
  }
  return ok(out);
}

/** Encodes an SA payload body. Proposal numbers are written as given (the caller numbers them, §3.3.1). */
export function encodeSa(proposals: readonly Proposal[]): Uint8Array {
  const parts: Uint8Array[] = [];
  proposals.forEach((p, i) => {
    const ts = p.transforms.map((t, j) => encodeTransform(t, j === p.transforms.length - 1));
    const len = PROPOSAL_HEADER + p.spi.length + ts.reduce((n, t) => n + t.length, 0);
    const h = new Uint8Array(PROPOSAL_HEADER + p.spi.length);
    h[0] = i === proposals.length - 1 ? LAST_PROPOSAL : MORE_PROPOSALS;
    put16(h, 2, len);
    h[4] = p.num;
    h[5] = p.protocol;
    h[6] = p.spi.length;
    h[7] = p.transforms.length;
    h.set(p.spi, PROPOSAL_HEADER);
    parts.push(h, ...ts);
  });
  return join(parts);
}

function encodeTransform(t: Transform, isLast: boolean): Uint8Array {
  const attrs = t.attributes.map((a) => {
    if (typeof a.value === "number") {
      const x = new Uint8Array(4);
      put16(x, 0, AF_TV | a.type);
      put16(x, 2, a.value);
      return x;
    }
    const x = new Uint8Array(4 + a.value.length);
    put16(x, 0, a.type & 0x7fff);
    put16(x, 2, a.value.length);
    x.set(a.value, 4);
    return x;
  });
  const h = new Uint8Array(TRANSFORM_HEADER);
  h[0] = isLast ? LAST_TRANSFORM : MORE_TRANSFORMS;
  put16(h, 2, TRANSFORM_HEADER + attrs.reduce((n, a) => n + a.length, 0));
  h[4] = t.type;
  put16(h, 6, t.id);
  return join([h, ...attrs]);
}

const join = (parts: Uint8Array[]): Uint8Array => concatBytes(...parts);
