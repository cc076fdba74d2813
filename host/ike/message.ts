// An IKEv2 message: the fixed header (RFC 7296 §3.1) and the chain of payloads
// behind it (§3.2), each linked to the next by its Next Payload field.
//
//   ┌──────────────────────── IKE SA Initiator's SPI (8) ─────────────────────┐
//   ├──────────────────────── IKE SA Responder's SPI (8) ─────────────────────┤
//   │ Next Payload │ MjVer|MnVer │ Exchange Type │ Flags (I, V, R)            │
//   ├──────────────────────────── Message ID (4) ─────────────────────────────┤
//   ├──────────────────────────── Length (4) ─────────────────────────────────┤
//   └ payloads: [Next Payload | C | RESERVED | Payload Length (2)] body …     ┘
//
// The Encrypted payload (§3.14) is the last one when present; its Next Payload
// names the first payload inside the ciphertext. It is decoded here as sealed
// bytes; sk.ts opens it and hands the plaintext back to `decodePayloads`.
import { Flag, GENERIC_HEADER_BYTES, HEADER_BYTES, PayloadType, SPI_BYTES, VERSION } from "./constants.ts";
import { decodeBody, encodeBody, payloadType, type Payload } from "./payloads.ts";
import { concatBytes, fail, ok, put16, put32, u16, u32, type Result } from "./result.ts";

export interface Header {
  spiI: Uint8Array;
  spiR: Uint8Array;
  /** MjVer ‖ MnVer; 0x20 when sending. Receivers ignore the minor version (§3.1). */
  version: number;
  exchange: number;
  /** I (0x08), V (0x10), R (0x20); the other bits are ignored on receipt (§3.1). */
  flags: number;
  messageId: number;
}

export interface Message {
  header: Header;
  payloads: Payload[];
}

/** True if `h` is a response (R flag, §3.1). */
export const isResponse = (h: Header): boolean => (h.flags & Flag.RESPONSE) !== 0;
/** True if the sender is the original initiator of the IKE SA (I flag, §3.1). */
export const fromInitiator = (h: Header): boolean => (h.flags & Flag.INITIATOR) !== 0;

/**
 * Reads only the header, so a responder can find the IKE SA by SPI (or answer
 * INVALID_MAJOR_VERSION, §2.5) before it looks further.
 */
export function decodeHeader(b: Uint8Array): Result<Header & { nextPayload: number; length: number }> {
  if (b.length < HEADER_BYTES) return fail("short-header", `${b.length} bytes, a header is ${HEADER_BYTES}`, 0);
  const version = b[17];
  if (version >> 4 !== 2) return fail("bad-major-version", `major version ${version >> 4}`, 17);
  const length = u32(b, 24);
  if (length !== b.length) return fail("length-mismatch", `header says ${length} bytes, datagram has ${b.length}`, 24);
  return ok({
    spiI: b.slice(0, 8),
    spiR: b.slice(8, 16),
    nextPayload: b[16],
    version,
    exchange: b[18],
    flags: b[19],
    messageId: u32(b, 20),
    length,
  });
}

/** Decodes a whole datagram (no non-ESP marker: the transport strips it, RFC 3948 §2.2). */
export function decodeMessage(b: Uint8Array): Result<Message> {
  const h = decodeHeader(b);
  if (!h.ok) return h;
  const { nextPayload, length: _len, ...header } = h.value;
  const payloads = decodePayloads(b.subarray(HEADER_BYTES), nextPayload, HEADER_BYTES);
  return payloads.ok ? ok({ header, payloads: payloads.value }) : payloads;
}

/**
 * Decodes a payload chain starting with a payload of type `first` (0 = empty).
 * `base` is the chain's offset in the message, for error offsets.
 */
export function decodePayloads(b: Uint8Array, first: number, base: number): Result<Payload[]> {
  const out: Payload[] = [];
  let type = first;
  let o = 0;
  while (type !== PayloadType.NONE) {
    if (b.length - o < GENERIC_HEADER_BYTES) return fail("payload-truncated", `payload ${type} header at ${base + o} truncated`, base + o);
    const next = b[o];
    // §3.2: the critical bit is the top bit of the second octet; the rest is RESERVED (ignored on receipt).
    const critical = (b[o + 1] & 0x80) !== 0;
    const len = u16(b, o + 2);
    if (len < GENERIC_HEADER_BYTES || len > b.length - o) {
      return fail("payload-length", `payload ${type} at ${base + o} claims ${len} bytes, ${b.length - o} left`, base + o + 2);
    }
    const body = b.subarray(o + GENERIC_HEADER_BYTES, o + len);
    if (type === PayloadType.SK || type === PayloadType.SKF) {
      // §3.14: "the Encrypted payload, if present in a message, MUST be the last payload"
      if (o + len !== b.length) return fail("sk-not-last", `${b.length - o - len} bytes after the Encrypted payload`, base + o + len);
      out.push({ kind: "sk", type, firstPayload: next, body: body.slice() });
      return ok(out);
    }
    const p = decodeBody(type, critical, body, base + o + GENERIC_HEADER_BYTES);
    if (!p.ok) return p;
    out.push(p.value);
    o += len;
    type = next;
  }
  if (o !== b.length) return fail("trailing-bytes", `${b.length - o} bytes after the last payload`, base + o);
  return ok(out);
}

/** The generic header (§3.2) of `p`, followed by its body. */
function frame(p: Payload, next: number): Uint8Array {
  const body = encodeBody(p);
  const out = new Uint8Array(GENERIC_HEADER_BYTES + body.length);
  out[0] = next;
  // §2.5: the critical bit is set only for payloads the sender knows the receiver may not understand
  out[1] = p.kind === "opaque" && p.critical ? 0x80 : 0;
  put16(out, 2, out.length);
  out.set(body, GENERIC_HEADER_BYTES);
  return out;
}

/** Encodes a payload chain; returns the type of its first payload and the bytes. */
export function encodePayloads(payloads: readonly Payload[]): { first: number; bytes: Uint8Array } {
  const parts = payloads.map((p, i) => {
    // an Encrypted payload's Next Payload names its first inner payload (§3.14)
    const next = p.kind === "sk" ? p.firstPayload : i + 1 < payloads.length ? payloadType(payloads[i + 1]) : PayloadType.NONE;
    return frame(p, next);
  });
  return { first: payloads.length ? payloadType(payloads[0]) : PayloadType.NONE, bytes: concatBytes(...parts) };
}

/** Encodes the 28-byte header for a message of `length` bytes. */
export function encodeHeader(h: Header, nextPayload: number, length: number): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES);
  if (h.spiI.length !== SPI_BYTES || h.spiR.length !== SPI_BYTES) throw new RangeError("IKE SPIs are 8 bytes (RFC 7296 §3.1)");
  out.set(h.spiI, 0);
  out.set(h.spiR, 8);
  out[16] = nextPayload;
  out[17] = h.version ?? VERSION;
  out[18] = h.exchange;
  out[19] = h.flags;
  put32(out, 20, h.messageId);
  put32(out, 24, length);
  return out;
}

/** Encodes a whole message (an Encrypted payload, if any, must already be sealed: see sk.ts). */
export function encodeMessage(m: Message): Uint8Array {
  const { first, bytes } = encodePayloads(m.payloads);
  return concatBytes(encodeHeader(m.header, first, HEADER_BYTES + bytes.length), bytes);
}

/** The first notification of `type` among `payloads`, if any. */
export function findNotify(payloads: readonly Payload[], type: number) {
  for (const p of payloads) if (p.kind === "notify" && p.notifyType === type) return p;
  return undefined;
}
