// The ESP cipher suites the config accepts, with the key sizes each needs.
// Sizes come from the RFCs that define the ESP transforms:
//   AES-GCM in ESP      RFC 4106 §8.1: KEYMAT = key ‖ 4-byte salt; 8-byte IV; 16-byte ICV
//   ChaCha20-Poly1305   RFC 7634 §2:   KEYMAT = 32-byte key ‖ 4-byte salt; 8-byte IV; 16-byte ICV
//   AES-CBC             RFC 3602 §2:   16/24/32-byte key, 16-byte IV
//   HMAC-SHA-256-128    RFC 4868 §2.1.1: 32-byte key, ICV truncated to 16 bytes

import type { Suite } from "./model.ts";
import type { Suite as CoreSuite } from "../core/core.ts";

export interface SuiteInfo {
  /** Display name used in messages, e.g. "AES-256-GCM". */
  label: string;
  /** Bytes of `key_in` / `key_out`: cipher key plus salt. */
  keyBytes: number;
  /** Of which salt (AEAD nonce prefix), at the end. */
  saltBytes: number;
  /** Bytes of `auth_key_in` / `auth_key_out`; 0 = the suite has no separate auth key. */
  authKeyBytes: number;
  /** Bytes of the explicit IV carried in each packet. */
  ivBytes: number;
  /** Bytes of the ICV (integrity check value); 0 = no integrity. */
  icvBytes: number;
  aead: boolean;
  /** The core's suite (one per ESP transform; the key length tells AES-128/192/256 apart). */
  core: CoreSuite;
}

export const SUITES: Readonly<Record<Suite, SuiteInfo>> = {
  "aes-128-gcm": { label: "AES-128-GCM", keyBytes: 20, saltBytes: 4, authKeyBytes: 0, ivBytes: 8, icvBytes: 16, aead: true, core: "aes-gcm-16" },
  "aes-192-gcm": { label: "AES-192-GCM", keyBytes: 28, saltBytes: 4, authKeyBytes: 0, ivBytes: 8, icvBytes: 16, aead: true, core: "aes-gcm-16" },
  "aes-256-gcm": { label: "AES-256-GCM", keyBytes: 36, saltBytes: 4, authKeyBytes: 0, ivBytes: 8, icvBytes: 16, aead: true, core: "aes-gcm-16" },
  "chacha20-poly1305": { label: "ChaCha20-Poly1305", keyBytes: 36, saltBytes: 4, authKeyBytes: 0, ivBytes: 8, icvBytes: 16, aead: true, core: "chacha20-poly1305" },
  "aes-128-cbc-hmac-sha256": { label: "AES-128-CBC + HMAC-SHA-256-128", keyBytes: 16, saltBytes: 0, authKeyBytes: 32, ivBytes: 16, icvBytes: 16, aead: false, core: "aes-cbc-hmac-sha256" },
  "aes-256-cbc-hmac-sha256": { label: "AES-256-CBC + HMAC-SHA-256-128", keyBytes: 32, saltBytes: 0, authKeyBytes: 32, ivBytes: 16, icvBytes: 16, aead: false, core: "aes-cbc-hmac-sha256" },
  "aes-128-cbc": { label: "AES-128-CBC (no integrity)", keyBytes: 16, saltBytes: 0, authKeyBytes: 0, ivBytes: 16, icvBytes: 0, aead: false, core: "aes-cbc" },
};

export const SUITE_NAMES = Object.keys(SUITES) as Suite[];

/** "needs 36 bytes (32 key + 4 salt)" — the explanation used in key-length errors. */
export function describeKeySize(info: SuiteInfo): string {
  if (info.saltBytes === 0) return `${info.keyBytes} bytes`;
  return `${info.keyBytes} bytes (${info.keyBytes - info.saltBytes} key + ${info.saltBytes} salt)`;
}

