// Answers sent outside any IKE SA, to messages we cannot process: RFC 7296 §2.5,
// "If an endpoint receives a message with a higher major version number, it MUST
// drop the message and SHOULD send an unauthenticated Notify message of type
// INVALID_MAJOR_VERSION containing the highest (closest) version number it
// supports", laid out as §1.5 says: the request's SPIs, Exchange Type and Message
// ID copied, the Response flag set, no SK payload.
//
// Nothing proves where such a request came from, so an answer must not make us a
// reflector or an amplifier: it goes only to an IKE_SA_INIT request (what a newer
// initiator starts with) from an address we have a peer configuration for (the
// endpoint checks), is never longer than that request (36 bytes: header and
// Notify, so a request shorter than that gets none), and a token bucket per source
// address and one for all sources bound how many leave; the rest are dropped and
// counted. §1.5's INVALID_IKE_SPI (MAY) is not sent: docs/ike.md says why.
import { Exchange, Flag, GENERIC_HEADER_BYTES, HEADER_BYTES, Notify, VERSION } from "./constants.ts";

/** Header (§3.1) and a Notify payload (§3.10) with no SPI and no data. */
export const VERSION_ANSWER_BYTES = HEADER_BYTES + GENERIC_HEADER_BYTES + 4;

export interface AnswerLimits {
  /** Answers per second to one source address, and the burst allowed. */
  perSourceRate: number;
  perSourceBurst: number;
  /** Answers per second to all sources together, and the burst allowed. */
  globalRate: number;
  globalBurst: number;
  /** Source addresses remembered; past this, the oldest is forgotten (a full bucket again: bounded by the global one). */
  maxSources: number;
}

export const DEFAULT_ANSWER_LIMITS: AnswerLimits = { perSourceRate: 1, perSourceBurst: 3, globalRate: 20, globalBurst: 40, maxSources: 4096 };

/** A token bucket: `rate` tokens a second, at most `burst`, one taken per answer. */
class Bucket {
  private tokens: number;
  private at: number;
  constructor(private readonly rate: number, private readonly burst: number, now: number) {
    this.tokens = burst;
    this.at = now;
  }
  /** Refills for the time since the last call, then takes a token if there is one. */
  take(now: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + (Math.max(0, now - this.at) / 1000) * this.rate);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
  /** A token would be there (without taking it). */
  has(now: number): boolean {
    return Math.min(this.burst, this.tokens + (Math.max(0, now - this.at) / 1000) * this.rate) >= 1;
  }
}

export type VersionVerdict =
  | { kind: "not-ours" } // not a higher major version's IKE_SA_INIT request: the decoder's drop stands
  | { kind: "answer"; bytes: Uint8Array }
  | { kind: "drop"; reason: "invalid-major-version-short" | "invalid-major-version-limited" };

export class UnprotectedAnswers {
  private readonly sources = new Map<string, Bucket>();
  private readonly global: Bucket;

  constructor(private readonly now: () => number, private readonly limits: AnswerLimits = DEFAULT_ANSWER_LIMITS) {
    this.global = new Bucket(limits.globalRate, limits.globalBurst, now());
  }

  /** §2.5: what to do with `b`, a datagram the decoder refused for its major version, from `source`. */
  invalidMajorVersion(b: Uint8Array, source: string): VersionVerdict {
    if (b.length < HEADER_BYTES || b[17] >> 4 <= VERSION >> 4) return { kind: "not-ours" };
    if (b[18] !== Exchange.IKE_SA_INIT || b[19] & Flag.RESPONSE) return { kind: "not-ours" };
    if (b.length < VERSION_ANSWER_BYTES) return { kind: "drop", reason: "invalid-major-version-short" };
    if (!this.allow(source)) return { kind: "drop", reason: "invalid-major-version-limited" };
    const out = new Uint8Array(VERSION_ANSWER_BYTES);
    out.set(b.subarray(0, 16), 0); // SPIi, SPIr as received
    out[16] = 41; // Notify
    out[17] = VERSION;
    out[18] = b[18];
    out[19] = Flag.RESPONSE; // §1.5: R set, I clear (we are not the original initiator)
    out.set(b.subarray(20, 24), 20); // Message ID
    new DataView(out.buffer).setUint32(24, VERSION_ANSWER_BYTES);
    // Notify: next 0, not critical, length 8, protocol 0, SPI size 0, type
    new DataView(out.buffer).setUint16(HEADER_BYTES + 2, GENERIC_HEADER_BYTES + 4);
    new DataView(out.buffer).setUint16(HEADER_BYTES + 6, Notify.INVALID_MAJOR_VERSION);
    return { kind: "answer", bytes: out };
  }

  /** Both buckets must have a token; the source's is taken only when the global one has one too. */
  private allow(source: string): boolean {
    const now = this.now();
    let s = this.sources.get(source);
    if (!s) {
      if (this.sources.size >= this.limits.maxSources) this.sources.delete(this.sources.keys().next().value!);
      s = new Bucket(this.limits.perSourceRate, this.limits.perSourceBurst, now);
      this.sources.set(source, s);
    }
    if (!s.has(now) || !this.global.has(now)) return false;
    return s.take(now) && this.global.take(now);
  }
}
