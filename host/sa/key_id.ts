// A key's identity without the key: a keyed hash, HMAC-SHA-256 keyed with the
// key material itself over a fixed label and the direction. It names the
// key's sequence-state file and tells two configs' SAs apart, and reveals
// nothing about the key (HMAC is a PRF under its key). The SPI is left out on
// purpose: the nonce space belongs to the key, so the same key under another
// SPI must resume the same state (RFC 4106 §3.1, RFC 7634 §2).
import { createHmac } from "node:crypto";

const LABEL = "wesp sa-state v1 ";

/** 32 hex digits (128 bits) identifying `key ‖ authKey` used in direction `dir`. */
export function keyId(dir: "in" | "out", key: Uint8Array, authKey?: Uint8Array): string {
  const h = createHmac("sha256", authKey ? Buffer.concat([key, authKey]) : key);
  h.update(LABEL + dir);
  return h.digest("hex").slice(0, 32);
}
