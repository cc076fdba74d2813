// IKE fragmentation, RFC 7383: a message too big for the path goes as several
// messages, each with one Encrypted Fragment payload (SKF, type 53) protected on
// its own, so a lost or forged fragment costs only itself (§1, §2.5).
//
//   ┌ IKE header (same Message ID) ┬ SKF generic header ┬ Fragment Number (2) ┬ Total Fragments (2) ┬ IV ┬ ciphertext ┬ ICV ┐
//   └──────────────────────────────── AAD / HMAC input (as for SK, §2.5) ─────────────────────────────┘
//
// The plaintext of the original Encrypted payload is cut into chunks; each chunk
// is padded and encrypted like an SK payload's content. Fragment 1 carries the
// type of the first inner payload in Next Payload, the others 0 (§2.5). Only
// messages that would need an SK payload are fragmented, never IKE_SA_INIT (§2.5.3).
//
// Reassembly (§2.6): each fragment is authenticated before it is kept; numbers
// outside 1..Total, a changed Total (smaller: ignored; larger: start over, the
// sender re-fragmented with a smaller size, §2.6) and duplicates are counted
// drops; memory is bounded by MAX_FRAGMENTS and MAX_MESSAGE_BYTES per buffer and
// a buffer older than REASSEMBLY_MS is discarded. The message is processed only
// when every fragment has arrived and authenticated.
import { GENERIC_HEADER_BYTES, HEADER_BYTES, PayloadType } from "./constants.ts";
import { decodePayloads, encodeHeader, encodePayloads, type Header } from "./message.ts";
import type { Payload, SkPayload } from "./payloads.ts";
import { concatBytes, put16, u16 } from "./result.ts";
import { padded, protect, protectedBytes, sealMessage, unprotect, type SkKeys } from "./sk.ts";

/** strongSwan's fragment_size default: the whole IP datagram. */
export const DEFAULT_FRAGMENT_SIZE = 1280;
/** IP and UDP headers in front of an IKE message; the non-ESP marker on the NAT-T port (RFC 3948 §2.2). */
const UDP_BYTES = 8;
const MARKER_BYTES = 4;
/** Fragment Number and Total Fragments (§2.5). */
const SKF_FIELDS = 4;
/** Bounds on one reassembly buffer: fragments, plaintext bytes, age. */
export const MAX_FRAGMENTS = 64;
export const MAX_MESSAGE_BYTES = 64 * 1024;
export const REASSEMBLY_MS = 30_000;
/** RFC 7383 §2.5.1: a fragment below this is not worth the overhead; the smallest IPv4 MTU leaves about this much. */
const MIN_CHUNK = 64;

/** The largest IKE message (no IP/UDP header) that fits `fragmentSize` on a path to `remoteAddress`. */
export function maxMessageBytes(fragmentSize: number, remoteAddress: string, natt: boolean): number {
  const ip = remoteAddress.includes(":") ? 40 : 20;
  return fragmentSize - ip - UDP_BYTES - (natt ? MARKER_BYTES : 0);
}

/**
 * The datagrams for one message: the plain SK message if it fits in `maxBytes`,
 * else its SKF fragments, each at most `maxBytes` (§2.5).
 */
export function sealFragmented(header: Header, inner: readonly Payload[], k: SkKeys, maxBytes: number): Uint8Array[] {
  const whole = sealMessage(header, inner, k);
  if (whole.length <= maxBytes) return [whole];
  const { first, bytes } = encodePayloads(inner);
  const fixed = HEADER_BYTES + GENERIC_HEADER_BYTES + SKF_FIELDS;
  // the largest chunk whose protected form still fits: protectedBytes grows with padding to the block
  let chunk = maxBytes - fixed - protectedBytes(k, 0) + 1;
  while (chunk > MIN_CHUNK && fixed + protectedBytes(k, chunk) > maxBytes) chunk--;
  chunk = Math.max(chunk, MIN_CHUNK);
  const total = Math.ceil(bytes.length / chunk);
  if (total > MAX_FRAGMENTS) throw new RangeError(`a ${bytes.length}-byte message needs ${total} fragments (at most ${MAX_FRAGMENTS})`);
  const out: Uint8Array[] = [];
  for (let n = 1; n <= total; n++) {
    const plain = padded(k, bytes.subarray((n - 1) * chunk, n * chunk));
    const bodyLen = SKF_FIELDS + protectedBytes(k, plain.length - 1 - plain[plain.length - 1]);
    const msg = new Uint8Array(HEADER_BYTES + GENERIC_HEADER_BYTES + bodyLen);
    msg.set(encodeHeader(header, PayloadType.SKF, msg.length));
    const o = HEADER_BYTES;
    msg[o] = n === 1 ? first : PayloadType.NONE;
    put16(msg, o + 2, GENERIC_HEADER_BYTES + bodyLen);
    put16(msg, o + 4, n);
    put16(msg, o + 6, total);
    protect(msg, o + GENERIC_HEADER_BYTES + SKF_FIELDS, plain, k);
    out.push(msg);
  }
  return out;
}

/** Fragment Number and Total Fragments of a received SKF payload; undefined when its body cannot hold them. */
export function fragmentNumbers(sk: SkPayload): { number: number; total: number } | undefined {
  if (sk.type !== PayloadType.SKF || sk.body.length < SKF_FIELDS) return undefined;
  return { number: u16(sk.body, 0), total: u16(sk.body, 2) };
}

export type FragmentOutcome =
  | { kind: "complete"; payloads: Payload[] }
  | { kind: "stored" }
  | { kind: "drop"; reason: string; detail: string };

/** One reassembly buffer: the fragments of one message ID, in one direction (requests or responses). */
export class Reassembly {
  private id = -1;
  private total = 0;
  private first = PayloadType.NONE as number;
  private bytes = 0;
  private startedAt = 0;
  private readonly parts = new Map<number, Uint8Array>();

  /** Fragments held now (for tests and status). */
  get held(): number { return this.parts.size; }

  /** Discards what is held (a message completed, or the SA moved on). */
  clear(): void {
    this.parts.clear();
    this.id = -1;
    this.total = 0;
    this.bytes = 0;
  }

  /**
   * One SKF message with Message ID `id` (the caller has checked it is one it expects):
   * authenticated with `k`, then kept; the reassembled payloads once all are in.
   */
  add(id: number, raw: Uint8Array, sk: SkPayload, k: SkKeys, now: number): FragmentOutcome {
    const f = fragmentNumbers(sk);
    if (!f) return drop("fragment-short", `SKF body of ${sk.body.length} bytes`);
    // §2.6: Fragment Number 0, above Total, or Total above what we keep: not a fragment we take
    if (f.number < 1 || f.total < 1 || f.number > f.total) return drop("fragment-number", `fragment ${f.number} of ${f.total}`);
    if (f.total > MAX_FRAGMENTS) return drop("fragment-number", `${f.total} fragments, at most ${MAX_FRAGMENTS} are kept`);
    const ivOff = raw.length - sk.body.length + SKF_FIELDS;
    const plain = unprotect(raw, ivOff, k);
    if (!plain.ok) return drop(`fragment-${plain.error.reason}`, plain.error.detail);
    if (this.id !== id || now - this.startedAt > REASSEMBLY_MS) {
      this.clear();
      this.id = id;
      this.startedAt = now;
    }
    if (this.total && f.total !== this.total) {
      // §2.6: a smaller Total is an old fragmentation, ignored; a larger one starts over
      if (f.total < this.total) return drop("fragment-total", `Total Fragments ${f.total}, collecting ${this.total}`);
      this.clear();
      this.id = id;
      this.startedAt = now;
    }
    this.total = f.total;
    if (this.parts.has(f.number)) return drop("fragment-duplicate", `fragment ${f.number} of ${f.total} again`);
    if (this.bytes + plain.value.length > MAX_MESSAGE_BYTES) {
      this.clear();
      return drop("fragment-too-big", `reassembly would pass ${MAX_MESSAGE_BYTES} bytes`);
    }
    this.parts.set(f.number, plain.value);
    this.bytes += plain.value.length;
    if (f.number === 1) this.first = sk.firstPayload;
    if (this.parts.size < this.total) return { kind: "stored" };
    const whole = concatBytes(...Array.from({ length: this.total }, (_, i) => this.parts.get(i + 1)!));
    const first = this.first;
    this.clear();
    const ps = decodePayloads(whole, first, 0);
    return ps.ok ? { kind: "complete", payloads: ps.value } : drop(`fragment-decode:${ps.error.reason}`, ps.error.detail);
  }
}

const drop = (reason: string, detail: string): FragmentOutcome => ({ kind: "drop", reason, detail });
