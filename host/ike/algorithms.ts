// What each negotiated transform (RFC 7296 §3.3.2) means in bytes: key sizes
// for prf+ (§2.13, §2.14, §2.17), IV and ICV sizes for the SK payload (§3.14)
// and, for ESP, which wesp core suite carries it (host/config/model.ts `Suite`).
import { Encr, Integ, Prf } from "./constants.ts";
import type { Suite } from "../config/model.ts";

export type Hash = "sha256" | "sha384" | "sha512";

export interface PrfAlg {
  id: number;
  hash: Hash;
  /** Output bytes; also the preferred key length (RFC 4868 §2.1.2) used for SK_d, SK_pi, SK_pr. */
  bytes: number;
}

export interface IntegAlg {
  id: number;
  hash: Hash;
  keyBytes: number;
  /** Truncated ICV (RFC 4868 §2.1.1). */
  icvBytes: number;
}

export type Cipher = "aes-gcm" | "chacha20-poly1305" | "aes-cbc";

export interface EncrAlg {
  id: number;
  keyBits: number;
  cipher: Cipher;
  aead: boolean;
  /** Key bytes taken from prf+ (§2.14, §2.17): cipher key plus salt for the AEADs. */
  keymatBytes: number;
  /** The AEAD's salt at the end of the keying material: RFC 5282 §7.1 (GCM), RFC 7634 §3 (ChaCha20-Poly1305). */
  saltBytes: number;
  ivBytes: number;
  /** AEAD tag bytes (0 for CBC: the integrity transform has the ICV). */
  tagBytes: number;
  /** Padding boundary of the plaintext (§3.14); 1 = none needed. */
  blockBytes: number;
}

const PRFS: Record<number, PrfAlg> = {
  [Prf.HMAC_SHA2_256]: { id: Prf.HMAC_SHA2_256, hash: "sha256", bytes: 32 },
  [Prf.HMAC_SHA2_384]: { id: Prf.HMAC_SHA2_384, hash: "sha384", bytes: 48 },
  [Prf.HMAC_SHA2_512]: { id: Prf.HMAC_SHA2_512, hash: "sha512", bytes: 64 },
};

const INTEGS: Record<number, IntegAlg> = {
  [Integ.HMAC_SHA2_256_128]: { id: Integ.HMAC_SHA2_256_128, hash: "sha256", keyBytes: 32, icvBytes: 16 },
  [Integ.HMAC_SHA2_384_192]: { id: Integ.HMAC_SHA2_384_192, hash: "sha384", keyBytes: 48, icvBytes: 24 },
  [Integ.HMAC_SHA2_512_256]: { id: Integ.HMAC_SHA2_512_256, hash: "sha512", keyBytes: 64, icvBytes: 32 },
};

export const prfAlg = (id: number): PrfAlg | undefined => PRFS[id];
export const integAlg = (id: number): IntegAlg | undefined => INTEGS[id];

/** The encryption transform `id` with Key Length `keyBits` (§3.3.5), or undefined if unsupported. */
export function encrAlg(id: number, keyBits: number | undefined): EncrAlg | undefined {
  switch (id) {
    case Encr.AES_GCM_16:
      if (keyBits !== 128 && keyBits !== 192 && keyBits !== 256) return undefined;
      return { id, keyBits, cipher: "aes-gcm", aead: true, keymatBytes: keyBits / 8 + 4, saltBytes: 4, ivBytes: 8, tagBytes: 16, blockBytes: 1 };
    case Encr.CHACHA20_POLY1305:
      // RFC 7634 §2: a fixed 256-bit key; "the Key Length attribute MUST NOT be sent"
      if (keyBits !== undefined) return undefined;
      return { id, keyBits: 256, cipher: "chacha20-poly1305", aead: true, keymatBytes: 36, saltBytes: 4, ivBytes: 8, tagBytes: 16, blockBytes: 1 };
    case Encr.AES_CBC:
      if (keyBits !== 128 && keyBits !== 192 && keyBits !== 256) return undefined;
      return { id, keyBits, cipher: "aes-cbc", aead: false, keymatBytes: keyBits / 8, saltBytes: 0, ivBytes: 16, tagBytes: 0, blockBytes: 16 };
    default:
      return undefined;
  }
}

/** The wesp core suite for an ESP encryption + integrity pair, or undefined if the core has none. */
export function espSuite(encr: EncrAlg, integ: IntegAlg | undefined): Suite | undefined {
  if (encr.aead) {
    if (integ) return undefined; // RFC 4106 §8.1 / RFC 7634 §2: AEADs take no integrity transform
    if (encr.cipher === "chacha20-poly1305") return "chacha20-poly1305";
    return `aes-${encr.keyBits}-gcm` as Suite;
  }
  if (integ?.id !== Integ.HMAC_SHA2_256_128) return undefined;
  if (encr.keyBits === 128) return "aes-128-cbc-hmac-sha256";
  if (encr.keyBits === 256) return "aes-256-cbc-hmac-sha256";
  return undefined;
}
