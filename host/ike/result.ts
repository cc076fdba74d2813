// Typed results for everything that reads bytes from the network. The IKE
// decoder treats every byte as hostile (RFC 7296 §2.5 and §3: lengths are
// checked before use) and reports each refusal with a reason from one list,
// so a responder can count refusals by reason the way the core counts drops.

/** Why a message or payload was refused (one list, so refusals can be counted by reason). */
export const DECODE_REASONS = [
  "short-header", // fewer than 28 bytes (§3.1)
  "bad-major-version", // major version not 2 (§3.1, §2.5: INVALID_MAJOR_VERSION)
  "length-mismatch", // header Length disagrees with the datagram (§3.1)
  "payload-truncated", // a generic payload header runs past the end (§3.2)
  "payload-length", // a payload length below 4 or past the end (§3.2)
  "trailing-bytes", // bytes after the last payload (Next Payload = 0) (§3.2)
  "sk-not-last", // the Encrypted payload is not the last one (§3.14)
  "body-short", // a payload body shorter than its fixed part (§3.3–§3.15)
  "proposal-length", // proposal/transform/attribute lengths inconsistent (§3.3)
  "proposal-number", // proposal numbers not 1, then same or +1 (§3.3.1)
  "proposal-last", // Last Substruc wrong (§3.3.1/§3.3.2)
  "transform-count", // Num Transforms disagrees with the transforms found
  "spi-size", // an SPI size the protocol does not allow
  "nonce-size", // nonce outside 16..256 (§3.9)
  "ts-type", // a traffic selector type other than 7 or 8 (§3.13.1)
  "ts-length", // a traffic selector with the wrong length for its type (§3.13.1)
  "ts-count", // Number of TSs disagrees with the selectors found
  "delete-count", // Num of SPIs × SPI size disagrees with the body (§3.11)
  "id-length", // an IPv4/IPv6 identity of the wrong length (§3.5)
] as const;
export type DecodeReason = (typeof DECODE_REASONS)[number];

export interface DecodeError {
  reason: DecodeReason;
  /** Human detail, e.g. "payload 33 at 28 claims 900 bytes, 60 left". */
  detail: string;
  /** Byte offset in the buffer being decoded where the fault was found. */
  offset: number;
}

export type Result<T, E = DecodeError> = { ok: true; value: T } | { ok: false; error: E };

export const ok = <T>(value: T): { ok: true; value: T } => ({ ok: true, value });
export const fail = (reason: DecodeReason, detail: string, offset: number): { ok: false; error: DecodeError } => ({
  ok: false,
  error: { reason, detail, offset },
});

/** Big-endian readers over a byte view; the caller checks bounds first. */
export const u16 = (b: Uint8Array, o: number): number => (b[o] << 8) | b[o + 1];
export const u32 = (b: Uint8Array, o: number): number => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
export const put16 = (b: Uint8Array, o: number, v: number): void => {
  b[o] = v >>> 8;
  b[o + 1] = v;
};
export const put32 = (b: Uint8Array, o: number, v: number): void => {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
};

/** Concatenation of byte strings (the `|` of RFC 7296 §2.13–§2.15). */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
