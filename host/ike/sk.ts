// The Encrypted payload, RFC 7296 §3.14, sealed and opened.
//
//   ┌ IKE header ┬ (payloads in clear) ┬ SK generic header ┬ IV ┬ ciphertext ┬ ICV ┐
//   └────────────── AAD for the AEADs (RFC 5282 §5.1) ─────┘    └ Payloads ‖ Padding ‖ Pad Length
//
// AES-GCM-16 (RFC 5282) and ChaCha20-Poly1305 (RFC 7634 §3): nonce = salt (the
// last 4 bytes of SK_e) ‖ 8-byte IV; the AAD runs from the first byte of the IKE
// header to the last of the Encrypted payload's generic header; 16-byte tag = ICV.
// AES-CBC (RFC 3602) + HMAC-SHA2 (RFC 4868): random 16-byte IV, plaintext padded
// to the block, ICV = HMAC over the whole message up to the ICV, truncated (§3.14:
// "the checksum MUST be computed over the encrypted message"). Integrity is
// verified before anything is decrypted, with a constant-time compare.
import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { EncrAlg, IntegAlg } from "./algorithms.ts";
import { GENERIC_HEADER_BYTES, HEADER_BYTES, PayloadType } from "./constants.ts";
import { decodePayloads, encodeMessage, encodePayloads, type Header } from "./message.ts";
import type { Payload } from "./payloads.ts";
import type { DecodeReason, Result } from "./result.ts";

/** One direction's protection: the sender's SK_e and SK_a (SK_ei/SK_ai for what the initiator sends). */
export interface SkKeys {
  encr: EncrAlg;
  integ?: IntegAlg;
  /** SK_e: cipher key ‖ salt for the AEADs. */
  encKey: Uint8Array;
  /** SK_a; empty for the AEADs. */
  integKey: Uint8Array;
}

export type SkReason = "no-sk" | "sk-length" | "integrity" | "pad-length";
export interface SkError {
  reason: SkReason | DecodeReason;
  detail: string;
  offset: number;
}

const aeadName = (e: EncrAlg) => (e.cipher === "chacha20-poly1305" ? "chacha20-poly1305" : `aes-${e.keyBits}-gcm`) as "aes-128-gcm";
const cbcName = (e: EncrAlg) => `aes-${e.keyBits}-cbc`;

function splitKey(k: SkKeys): { key: Uint8Array; salt: Uint8Array } {
  const n = k.encKey.length - k.encr.saltBytes;
  return { key: k.encKey.subarray(0, n), salt: k.encKey.subarray(n) };
}

/** Bytes the protection adds around a plaintext of `plainLen` bytes (before padding): IV, padding, Pad Length, ICV. */
export function protectedBytes(k: SkKeys, plainLen: number): number {
  const e = k.encr;
  const padLen = (e.blockBytes - ((plainLen + 1) % e.blockBytes)) % e.blockBytes;
  return e.ivBytes + plainLen + padLen + 1 + (e.aead ? e.tagBytes : k.integ!.icvBytes);
}

/** §3.14: Payloads ‖ Padding ‖ Pad Length, a multiple of the block size (1 for the AEADs, so no padding). */
export function padded(k: SkKeys, bytes: Uint8Array): Uint8Array {
  const b = k.encr.blockBytes;
  const padLen = (b - ((bytes.length + 1) % b)) % b;
  const plain = new Uint8Array(bytes.length + padLen + 1);
  plain.set(bytes);
  plain[plain.length - 1] = padLen;
  return plain;
}

/**
 * Encrypts `plain` (already padded) into `msg` at `ivOff` (IV, ciphertext, ICV follow
 * to the end of `msg`), authenticating everything before `ivOff` (RFC 5282 §5.1 AAD,
 * or the HMAC over the whole message). `msg` must be sized for it (`protectedBytes`).
 */
export function protect(msg: Uint8Array, ivOff: number, plain: Uint8Array, k: SkKeys, iv?: Uint8Array): void {
  const e = k.encr;
  const icvBytes = e.aead ? e.tagBytes : k.integ!.icvBytes;
  const theIv = iv ?? randomBytes(e.ivBytes);
  msg.set(theIv, ivOff);
  const ctOff = ivOff + e.ivBytes;
  if (e.aead) {
    const { key, salt } = splitKey(k);
    const c = createCipheriv(aeadName(e), key, Buffer.concat([salt, theIv]), { authTagLength: 16 });
    c.setAAD(msg.subarray(0, ivOff));
    msg.set(c.update(plain), ctOff);
    c.final();
    msg.set(c.getAuthTag(), ctOff + plain.length);
  } else {
    const c = createCipheriv(cbcName(e), k.encKey, theIv).setAutoPadding(false);
    msg.set(Buffer.concat([c.update(plain), c.final()]), ctOff);
    const icv = createHmac(k.integ!.hash, k.integKey).update(msg.subarray(0, msg.length - icvBytes)).digest();
    msg.set(icv.subarray(0, icvBytes), msg.length - icvBytes);
  }
}

/**
 * Builds a message whose last payload is an Encrypted payload holding `inner`
 * (§3.14), after the clear `outer` payloads (none in practice, but §3.14 allows them).
 * `iv` is for tests; by default it is random (unique per message for the AEADs: 8
 * random bytes under one key, RFC 5282 §3.1 allows a counter or any unique value).
 */
export function sealMessage(header: Header, inner: readonly Payload[], k: SkKeys, outer: readonly Payload[] = [], iv?: Uint8Array): Uint8Array {
  const { first, bytes } = encodePayloads(inner);
  const plain = padded(k, bytes);
  const body = new Uint8Array(protectedBytes(k, bytes.length));
  const sk: Payload = { kind: "sk", type: PayloadType.SK, firstPayload: first, body };
  const msg = encodeMessage({ header, payloads: [...outer, sk] });
  protect(msg, msg.length - body.length, plain, k, iv);
  return msg;
}

/**
 * Checks integrity of `msg` (the IV at `ivOff`, the ICV at the end), then decrypts
 * and strips the padding: the payload bytes. Every length checked before use.
 */
export function unprotect(msg: Uint8Array, ivOff: number, k: SkKeys): Result<Uint8Array, SkError> {
  const e = k.encr;
  const icvBytes = e.aead ? e.tagBytes : k.integ?.icvBytes ?? 0;
  const ctLen = msg.length - ivOff - e.ivBytes - icvBytes;
  if (ivOff < HEADER_BYTES + GENERIC_HEADER_BYTES || ctLen < 1 || ctLen % e.blockBytes !== 0) {
    return fail2("sk-length", `Encrypted payload of ${msg.length - ivOff} bytes for ${e.ivBytes}-byte IV, ${icvBytes}-byte ICV, ${e.blockBytes}-byte blocks`, ivOff);
  }
  const iv = msg.subarray(ivOff, ivOff + e.ivBytes);
  const ctOff = ivOff + e.ivBytes;
  const ct = msg.subarray(ctOff, ctOff + ctLen);
  const icv = msg.subarray(ctOff + ctLen);
  let plain: Buffer;
  if (e.aead) {
    const { key, salt } = splitKey(k);
    const d = createDecipheriv(aeadName(e), key, Buffer.concat([salt, iv]), { authTagLength: 16 });
    d.setAAD(msg.subarray(0, ivOff));
    d.setAuthTag(icv);
    const p = d.update(ct);
    try {
      d.final(); // throws on a bad tag; the plaintext is discarded unseen
    } catch {
      return fail2("integrity", "AEAD tag does not verify", ctOff + ctLen);
    }
    plain = p;
  } else {
    const want = createHmac(k.integ!.hash, k.integKey).update(msg.subarray(0, msg.length - icvBytes)).digest().subarray(0, icvBytes);
    if (!timingSafeEqual(want, icv)) return fail2("integrity", "HMAC ICV does not verify", ctOff + ctLen);
    const d = createDecipheriv(cbcName(e), k.encKey, iv).setAutoPadding(false);
    plain = Buffer.concat([d.update(ct), d.final()]);
  }
  // §3.14: the receiver reads Pad Length and MUST NOT insist on particular padding bytes
  const padLen = plain[plain.length - 1];
  if (padLen + 1 > plain.length) return fail2("pad-length", `Pad Length ${padLen} in ${plain.length} bytes`, ctOff);
  return { ok: true, value: new Uint8Array(plain.subarray(0, plain.length - padLen - 1)) };
}

/**
 * Opens the Encrypted payload of `msg` (the raw datagram, whose last decoded
 * payload is `sk`) and decodes the payloads inside. Integrity first, then
 * decryption; every length checked before use.
 */
export function openMessage(msg: Uint8Array, sk: Payload | undefined, k: SkKeys): Result<Payload[], SkError> {
  if (!sk || sk.kind !== "sk" || sk.type !== PayloadType.SK) return fail2("no-sk", "no Encrypted payload", HEADER_BYTES);
  const ivOff = msg.length - sk.body.length;
  const plain = unprotect(msg, ivOff, k);
  if (!plain.ok) return plain;
  const inner = decodePayloads(plain.value, sk.firstPayload, ivOff + k.encr.ivBytes);
  return inner.ok ? inner : { ok: false, error: inner.error };
}

const fail2 = (reason: SkReason, detail: string, offset: number): { ok: false; error: SkError } => ({ ok: false, error: { reason, detail, offset } });
