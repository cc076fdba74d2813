// The pseudorandom function and its expansion, RFC 7296 §2.13, and the key
// schedules built on them: IKE SA keys (§2.14) and CHILD_SA keying material
// (§2.17).
import { createHmac } from "node:crypto";
import type { EncrAlg, IntegAlg, PrfAlg } from "./algorithms.ts";
import { concatBytes } from "./result.ts";

/** prf(K, S) — HMAC with the negotiated hash (RFC 4868 §2.1.2: the key is used at any length). */
export function prf(alg: PrfAlg, key: Uint8Array, data: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac(alg.hash, key).update(data).digest());
}

/**
 * prf+(K, S) = T1 | T2 | T3 | …, T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n)
 * (§2.13), truncated to `length` bytes. The counter is one octet, so at most 255 blocks.
 */
export function prfPlus(alg: PrfAlg, key: Uint8Array, seed: Uint8Array, length: number): Uint8Array {
  if (length > 255 * alg.bytes) throw new RangeError(`prf+ yields at most ${255 * alg.bytes} bytes, ${length} asked`);
  const out = new Uint8Array(length);
  let t = new Uint8Array(0);
  for (let n = 1, o = 0; o < length; n++) {
    t = new Uint8Array(createHmac(alg.hash, key).update(t).update(seed).update(Uint8Array.of(n)).digest());
    out.set(t.subarray(0, Math.min(t.length, length - o)), o);
    o += t.length;
  }
  return out;
}

/** The seven keys of an IKE SA (§2.14). SK_e* hold key ‖ salt for the AEADs; SK_a* are empty for them. */
export interface IkeSaKeys {
  skD: Uint8Array;
  skAi: Uint8Array;
  skAr: Uint8Array;
  skEi: Uint8Array;
  skEr: Uint8Array;
  skPi: Uint8Array;
  skPr: Uint8Array;
}

export interface IkeSaKeyInput {
  prf: PrfAlg;
  encr: EncrAlg;
  integ?: IntegAlg;
  /** g^ir from the Diffie-Hellman exchange. */
  sharedSecret: Uint8Array;
  ni: Uint8Array;
  nr: Uint8Array;
  spiI: Uint8Array;
  spiR: Uint8Array;
  /**
   * Rekeying an IKE SA (§2.18): SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr), with
   * the old IKE SA's PRF (as strongSwan's keymat_v2 does); the rest as §2.14.
   */
  rekey?: { prf: PrfAlg; skD: Uint8Array };
}

/**
 * §2.14: SKEYSEED = prf(Ni | Nr, g^ir);
 * {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr).
 * (For HMAC PRFs the whole Ni | Nr is the key; only fixed-key PRFs such as AES-XCBC take halves.)
 */
export function deriveIkeSaKeys(k: IkeSaKeyInput): { skeyseed: Uint8Array; keys: IkeSaKeys } {
  const skeyseed = k.rekey
    ? prf(k.rekey.prf, k.rekey.skD, concatBytes(k.sharedSecret, k.ni, k.nr))
    : prf(k.prf, concatBytes(k.ni, k.nr), k.sharedSecret);
  const p = k.prf.bytes;
  const a = k.integ?.keyBytes ?? 0;
  const e = k.encr.keymatBytes;
  const stream = prfPlus(k.prf, skeyseed, concatBytes(k.ni, k.nr, k.spiI, k.spiR), 3 * p + 2 * a + 2 * e);
  let o = 0;
  const take = (n: number) => stream.slice(o, (o += n));
  const keys = { skD: take(p), skAi: take(a), skAr: take(a), skEi: take(e), skEr: take(e), skPi: take(p), skPr: take(p) };
  return { skeyseed, keys };
}

/** A CHILD_SA's keys per direction: i→r is traffic the IKE initiator sends (§2.17). */
export interface ChildSaKeys {
  encI: Uint8Array;
  integI: Uint8Array;
  encR: Uint8Array;
  integR: Uint8Array;
}

/**
 * §2.17: KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr). "All keys for SAs carrying
 * data from the initiator to the responder are taken before SAs going from the
 * responder to the initiator"; within a direction the encryption key comes first,
 * then the integrity key. Ni and Nr are those of the exchange that creates the
 * CHILD_SA (IKE_SA_INIT's for the one in IKE_AUTH, which has no PFS).
 */
export function deriveChildSaKeys(alg: PrfAlg, skD: Uint8Array, encr: EncrAlg, integ: IntegAlg | undefined, ni: Uint8Array, nr: Uint8Array, pfsSecret?: Uint8Array): ChildSaKeys {
  const e = encr.keymatBytes;
  const a = integ?.keyBytes ?? 0;
  const seed = pfsSecret ? concatBytes(pfsSecret, ni, nr) : concatBytes(ni, nr);
  const km = prfPlus(alg, skD, seed, 2 * (e + a));
  return { encI: km.slice(0, e), integI: km.slice(e, e + a), encR: km.slice(e + a, 2 * e + a), integR: km.slice(2 * e + a) };
}
