// The peers wesp is measured against, each doing one AEAD operation per packet
// through its ordinary public API (as an application would call it), in the
// same process as wesp so that ratios are meaningful on a noisy VM.
//
// A peer returns a "runner" for (suite, size, op): a function that processes
// `count` packets of `size` bytes and returns how many it processed. Inputs are
// prepared once; per-packet work is only what the library itself requires
// (e.g. node:crypto needs one createCipheriv per packet, by design).
import { createCipheriv, createDecipheriv, randomBytes, createHmac } from "node:crypto";
import { gcm, cbc } from "@noble/ciphers/aes.js";
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import sodium from "libsodium-wrappers";
import { ChaCha20Poly1305 as AsChaCha, newInstance } from "@chainsafe/as-chacha20poly1305";

export type Suite = "chacha20-poly1305" | "aes-128-gcm" | "aes-256-gcm" | "aes-128-cbc-hmac-sha256";
export type Op = "seal" | "open";
export type Runner = (count: number) => void;
export interface Peer {
  name: string;
  /** undefined when the peer does not implement that suite. */
  make(suite: Suite, size: number, op: Op): Runner | undefined;
}

const aad8 = randomBytes(8);
const keyFor = (suite: Suite) => randomBytes(suite === "aes-128-gcm" || suite === "aes-128-cbc-hmac-sha256" ? 16 : 32);

/** One createCipheriv per packet: how node:crypto is used per datagram. */
export const nodeCrypto: Peer = {
  name: "node:crypto",
  make(suite, size, op) {
    const key = keyFor(suite);
    const nonce = randomBytes(12);
    const pt = randomBytes(size);
    if (suite === "aes-128-cbc-hmac-sha256") {
      const hkey = randomBytes(32);
      const iv = randomBytes(16);
      const padded = randomBytes(Math.ceil((size + 2) / 16) * 16);
      const enc = () => {
        const c = createCipheriv("aes-128-cbc", key, iv).setAutoPadding(false);
        const ct = Buffer.concat([c.update(padded), c.final()]);
        createHmac("sha256", hkey).update(aad8).update(iv).update(ct).digest();
        return ct;
      };
      if (op === "seal") return (n) => { for (let i = 0; i < n; i++) enc(); };
      const ct = enc();
      return (n) => {
        for (let i = 0; i < n; i++) {
          createHmac("sha256", hkey).update(aad8).update(iv).update(ct).digest();
          const d = createDecipheriv("aes-128-cbc", key, iv).setAutoPadding(false);
          d.update(ct); d.final();
        }
      };
    }
    const algo = suite === "chacha20-poly1305" ? "chacha20-poly1305" : suite === "aes-128-gcm" ? "aes-128-gcm" : "aes-256-gcm";
    const opts = { authTagLength: 16 } as const;
    const seal = () => {
      const c = createCipheriv(algo as "aes-128-gcm", key, nonce, opts);
      c.setAAD(aad8, { plaintextLength: size });
      const ct = c.update(pt);
      c.final();
      return [ct, c.getAuthTag()] as const;
    };
    if (op === "seal") return (n) => { for (let i = 0; i < n; i++) seal(); };
    const [ct, tag] = seal();
    return (n) => {
      for (let i = 0; i < n; i++) {
        const d = createDecipheriv(algo as "aes-128-gcm", key, nonce, opts);
        d.setAAD(aad8, { plaintextLength: size });
        d.setAuthTag(tag);
        d.update(ct);
        d.final();
      }
    };
  },
};

export const noble: Peer = {
  name: "@noble/ciphers",
  make(suite, size, op) {
    const key = keyFor(suite);
    const nonce = randomBytes(12);
    const pt = new Uint8Array(randomBytes(size));
    if (suite === "aes-128-cbc-hmac-sha256") {
      const hkey = randomBytes(32);
      const iv = randomBytes(16);
      const padded = new Uint8Array(randomBytes(Math.ceil((size + 2) / 16) * 16));
      const enc = () => {
        const ct = cbc(key, iv, { disablePadding: true }).encrypt(padded);
        hmac(sha256, hkey, ct);
        return ct;
      };
      if (op === "seal") return (n) => { for (let i = 0; i < n; i++) enc(); };
      const ct = enc();
      return (n) => { for (let i = 0; i < n; i++) { hmac(sha256, hkey, ct); cbc(key, iv, { disablePadding: true }).decrypt(ct); } };
    }
    const mk = () => (suite === "chacha20-poly1305" ? chacha20poly1305(key, nonce, aad8) : gcm(key, nonce, aad8));
    if (op === "seal") return (n) => { for (let i = 0; i < n; i++) mk().encrypt(pt); };
    const ct = mk().encrypt(pt);
    return (n) => { for (let i = 0; i < n; i++) mk().decrypt(ct); };
  },
};

export async function sodiumPeer(): Promise<Peer> {
  await sodium.ready;
  return {
    name: "libsodium-wrappers",
    make(suite, size, op) {
      if (suite !== "chacha20-poly1305") return undefined;
      const key = new Uint8Array(randomBytes(32));
      const nonce = new Uint8Array(randomBytes(12));
      const pt = new Uint8Array(randomBytes(size));
      const ad = new Uint8Array(aad8);
      const seal = () => sodium.crypto_aead_chacha20poly1305_ietf_encrypt(pt, ad, null, nonce, key);
      if (op === "seal") return (n) => { for (let i = 0; i < n; i++) seal(); };
      const ct = seal();
      return (n) => { for (let i = 0; i < n; i++) sodium.crypto_aead_chacha20poly1305_ietf_decrypt(null, ct, ad, nonce, key); };
    },
  };
}

export const chainsafe: Peer = {
  name: "@chainsafe/as-chacha20poly1305",
  make(suite, size, op) {
    if (suite !== "chacha20-poly1305") return undefined;
    const impl = new AsChaCha(newInstance());
    const key = new Uint8Array(randomBytes(32));
    const nonce = new Uint8Array(randomBytes(12));
    const pt = new Uint8Array(randomBytes(size));
    const ad = new Uint8Array(aad8);
    const dst = new Uint8Array(size + 16);
    if (op === "seal") return (n) => { for (let i = 0; i < n; i++) impl.seal(key, nonce, pt, ad, dst); };
    const ct = impl.seal(key, nonce, pt, ad).slice();
    const out = new Uint8Array(size);
    return (n) => { for (let i = 0; i < n; i++) impl.open(key, nonce, ct, ad, out); };
  },
};
