// Diffie-Hellman groups for the KE payload (RFC 7296 §3.4), with node:crypto:
//
//   14  MODP-2048   RFC 3526 §3; public value and shared secret are big-endian,
//                   zero-padded to the 256-byte modulus (RFC 7296 §3.4, §2.14)
//   19  ECP-256     RFC 5903 §7: public value x ‖ y (64 bytes, no 0x04 prefix);
//                   the shared secret is the x coordinate alone (32 bytes)
//   31  Curve25519  RFC 8031 §2: public value and secret are the 32-byte X25519
//                   strings of RFC 7748
//
// A peer's public value is hostile input: its length is checked against the
// group, the MODP value against 1 < y < p-1 (RFC 6989 §2.1), the ECP point by
// OpenSSL's on-curve check, and an all-zero X25519 result is refused (RFC 8031
// §2.3, RFC 7748 §6.1). Failures come back typed; nothing throws out.
import { createDiffieHellman, createECDH, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, getDiffieHellman } from "node:crypto";
import { DhGroup } from "./constants.ts";

export type DhReason = "unsupported-group" | "public-length" | "public-value";
export interface DhError { reason: DhReason; detail: string }
export type DhResult = { ok: true; secret: Uint8Array } | { ok: false; error: DhError };

/** One side's ephemeral key pair for a group; `secret` combines it with the peer's KE data. */
export interface KeyExchange {
  group: number;
  /** What goes in our KE payload's Key Exchange Data (§3.4). */
  publicValue: Uint8Array;
  secret(peer: Uint8Array): DhResult;
}

/** Bytes of a group's public value (§3.4: "the length ... MUST be as specified by the group"). */
export const DH_PUBLIC_BYTES: Readonly<Record<number, number>> = {
  [DhGroup.MODP_2048]: 256,
  [DhGroup.ECP_256]: 64,
  [DhGroup.CURVE25519]: 32,
};

export const supportedGroup = (g: number): boolean => g in DH_PUBLIC_BYTES;

const bad = (reason: DhReason, detail: string): DhResult => ({ ok: false, error: { reason, detail } });

/** Left-pads a big-endian integer to `n` bytes (§2.14: "padded with zeros ... to the length of the modulus"). */
function padTo(b: Uint8Array, n: number): Uint8Array {
  if (b.length === n) return new Uint8Array(b);
  const out = new Uint8Array(n);
  out.set(b.subarray(Math.max(0, b.length - n)), Math.max(0, n - b.length));
  return out;
}

const toBig = (b: Uint8Array) => BigInt("0x" + (Buffer.from(b).toString("hex") || "0"));

function modp2048(priv?: Uint8Array): KeyExchange {
  const std = getDiffieHellman("modp14");
  const prime = std.getPrime();
  const p = toBig(prime);
  let dh: { generateKeys(): Buffer; computeSecret(k: Buffer): Buffer } = std;
  if (priv) {
    const fixed = createDiffieHellman(prime, std.getGenerator());
    fixed.setPrivateKey(Buffer.from(priv));
    dh = fixed;
  }
  const pub = dh.generateKeys();
  return {
    group: DhGroup.MODP_2048,
    publicValue: padTo(pub, 256),
    secret(peer) {
      if (peer.length !== 256) return bad("public-length", `MODP-2048 public value of ${peer.length} bytes, want 256`);
      const y = toBig(peer);
      // RFC 6989 §2.1: 1 < y < p-1, which excludes the values that force a known shared secret
      if (y <= 1n || y >= p - 1n) return bad("public-value", "MODP public value outside 1 < y < p-1");
      return { ok: true, secret: padTo(dh.computeSecret(Buffer.from(peer)), 256) };
    },
  };
}

function ecp256(priv?: Uint8Array): KeyExchange {
  const ecdh = createECDH("prime256v1");
  if (priv) ecdh.setPrivateKey(Buffer.from(priv));
  else ecdh.generateKeys();
  // RFC 5903 §7: "the Diffie-Hellman public value ... is x | y" — the SEC1 0x04 prefix is not sent
  const pub = ecdh.getPublicKey().subarray(1);
  return {
    group: DhGroup.ECP_256,
    publicValue: new Uint8Array(pub),
    secret(peer) {
      if (peer.length !== 64) return bad("public-length", `ECP-256 public value of ${peer.length} bytes, want 64`);
      try {
        // OpenSSL refuses a point that is not on the curve (RFC 6989 §2.3)
        const x = ecdh.computeSecret(Buffer.concat([Buffer.of(4), peer]));
        return { ok: true, secret: padTo(x, 32) };
      } catch (e) {
        return bad("public-value", `ECP-256 public value refused: ${(e as Error).message}`);
      }
    },
  };
}

// DER wrappers that let node:crypto take raw X25519 keys (RFC 8410 §7 / §10.3).
const X25519_SPKI = Buffer.from("302a300506032b656e032100", "hex");
const X25519_PKCS8 = Buffer.from("302e020100300506032b656e04220420", "hex");

function curve25519(priv?: Uint8Array): KeyExchange {
  const privateKey = priv
    ? createPrivateKey({ key: Buffer.concat([X25519_PKCS8, priv]), format: "der", type: "pkcs8" })
    : generateKeyPairSync("x25519").privateKey;
  const spki = createPublicKey(privateKey).export({ format: "der", type: "spki" });
  return {
    group: DhGroup.CURVE25519,
    publicValue: new Uint8Array(spki.subarray(spki.length - 32)),
    secret(peer) {
      if (peer.length !== 32) return bad("public-length", `Curve25519 public value of ${peer.length} bytes, want 32`);
      let s: Buffer;
      try {
        const publicKey = createPublicKey({ key: Buffer.concat([X25519_SPKI, peer]), format: "der", type: "spki" });
        s = diffieHellman({ privateKey, publicKey });
      } catch (e) {
        return bad("public-value", `X25519 refused the public value: ${(e as Error).message}`);
      }
      // RFC 8031 §2.3: "MUST check ... whether the computed shared secret is the all-zero value"
      if (s.every((x) => x === 0)) return bad("public-value", "X25519 shared secret is all zero");
      return { ok: true, secret: new Uint8Array(s) };
    },
  };
}

/**
 * A fresh key pair for `group`, or undefined for a group wesp does not have.
 * `privateKey` fixes the private value (tests with published vectors only).
 */
export function createKeyExchange(group: number, privateKey?: Uint8Array): KeyExchange | undefined {
  switch (group) {
    case DhGroup.MODP_2048: return modp2048(privateKey);
    case DhGroup.ECP_256: return ecp256(privateKey);
    case DhGroup.CURVE25519: return curve25519(privateKey);
    default: return undefined;
  }
}
