// Stateless cookies for IKE_SA_INIT (RFC 7296 §2.6). When too many IKE SAs are
// half-open, the responder answers a request that carries no valid cookie with
// only N(COOKIE) and keeps nothing; a genuine initiator repeats its request with
// that cookie as the first payload, which proves it receives at its address.
//
//   Cookie = <VersionIDofSecret> | Hash(Ni | IPi | SPIi | <secret>)     (§2.6)
//
// Here the hash is HMAC-SHA-256 keyed with the secret, truncated to 16 bytes,
// behind a one-byte secret version. Secrets rotate on demand (`rotate()`); a
// cookie made under the previous secret is still accepted, so an exchange in
// flight across a rotation is not refused.
import { createHmac, timingSafeEqual } from "node:crypto";
import { addressBytes } from "./nat.ts";

const HASH_BYTES = 16;

export class CookieJar {
  private version = 0;
  private secrets: Uint8Array[];

  constructor(private readonly random: (n: number) => Uint8Array) {
    this.secrets = [random(32)];
  }

  /** A new secret; the previous one stays valid until the next rotation. */
  rotate(): void {
    this.version = (this.version + 1) & 0xff;
    this.secrets = [this.random(32), this.secrets[0]];
  }

  private hash(secret: Uint8Array, ni: Uint8Array, ip: string, spiI: Uint8Array): Uint8Array {
    return createHmac("sha256", secret).update(ni).update(addressBytes(ip)).update(spiI).digest().subarray(0, HASH_BYTES);
  }

  make(ni: Uint8Array, ip: string, spiI: Uint8Array): Uint8Array {
    const out = new Uint8Array(1 + HASH_BYTES);
    out[0] = this.version;
    out.set(this.hash(this.secrets[0], ni, ip, spiI), 1);
    return out;
  }

  valid(cookie: Uint8Array, ni: Uint8Array, ip: string, spiI: Uint8Array): boolean {
    if (cookie.length !== 1 + HASH_BYTES) return false;
    const age = (this.version - cookie[0]) & 0xff;
    const secret = this.secrets[age];
    return !!secret && timingSafeEqual(this.hash(secret, ni, ip, spiI), cookie.subarray(1));
  }
}
