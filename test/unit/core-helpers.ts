// Packet builders and an independent ESP opener (node:crypto) for the core's
// unit tests (test/unit/core-*.test.ts). The packet builders live in
// host/lab/packets.ts (benchmarks use them too) and are re-exported here.
import { createDecipheriv, randomBytes } from "node:crypto";
import { Core, type SaParams } from "../../host/core/core.ts";

export { inetChecksum, innerUdp, ipv4, ipv6, udp, type Ip4Opts } from "../../host/lab/packets.ts";

export const hexOf = (b: Uint8Array): string => Buffer.from(b).toString("hex");

export interface Keys { key: Uint8Array; salt: Uint8Array; hmacKey?: Uint8Array }

export function keysFor(suite: SaParams["suite"], keyLen = 16): Keys {
  return {
    key: randomBytes(suite === "chacha20-poly1305" ? 32 : keyLen),
    salt: randomBytes(4),
    hmacKey: suite === "aes-cbc-hmac-sha256" ? randomBytes(32) : undefined,
  };
}

/**
 * Opens an ESP packet (SPI .. ICV) with node:crypto, independently of the
 * core: returns the decrypted ESP payload INCLUDING padding, pad length and
 * next header, or throws on a bad tag. AEAD suites only.
 */
export function nodeOpenEsp(esp: Uint8Array, suite: "aes-gcm-16" | "chacha20-poly1305", k: Keys, seqHi?: number): Uint8Array {
  const iv = esp.subarray(8, 16);
  const ct = esp.subarray(16, esp.length - 16);
  const tag = esp.subarray(esp.length - 16);
  const nonce = Buffer.concat([k.salt, iv]);
  const aad = seqHi === undefined ? esp.subarray(0, 8) : Buffer.concat([esp.subarray(0, 4), u32(seqHi), esp.subarray(4, 8)]);
  const alg = suite === "chacha20-poly1305" ? "chacha20-poly1305" : `aes-${k.key.length * 8}-gcm`;
  const d = createDecipheriv(alg as any, k.key, nonce, { authTagLength: 16 } as any) as any;
  d.setAAD(aad, { plaintextLength: ct.length });
  d.setAuthTag(tag);
  return Uint8Array.from(Buffer.concat([d.update(ct), d.final()]));
}

export function u32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0);
  return b;
}

/** A core with a given size; the .wasm comes from $WESP_WASM or build/wesp.wasm. */
export function makeCore(opts: Parameters<typeof Core.create>[0] = {}): Promise<Core> {
  return Core.create({ slots: 16, maxSas: 64, maxPolicies: 64, largeWindowBlocks: 2, ...opts });
}

/** Sum of a counter block's drops. */
export function dropSum(c: { drops: Record<string, bigint> }): bigint {
  return Object.values(c.drops).reduce((a, b) => a + b, 0n);
}
