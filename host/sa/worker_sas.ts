// Per-worker SAs for static peers (docs/forwarder.md "Workers", docs/config.md
// node.workers). An SA's sequence number and replay window must have exactly
// one writer: two threads sealing under one AEAD key could use one nonce twice
// (RFC 4106 §3.1, RFC 7634 §2). So with N workers every configured SA pair
// becomes N pairs, one per worker, that share nothing:
//
//   worker i of N:  SPI      = configured SPI + i      (configured SPI ≡ 0 mod N,
//                                                       so SPI mod N == i steers
//                                                       inbound: net/steer_linux.ts)
//                   key      = configured key                      (i = 0)
//                            = HKDF-SHA-256(key, "", "wesp worker SA " + i, |key|)
//                   auth key = the same derivation of the HMAC key  (i > 0)
//                   key id   = configured key id                   (i = 0)
//                            = SHA-256(key id ‖ "/worker " + i)[0..16] (i > 0)
//
// Worker 0's SA is the configured one, so workers: 1 is unchanged and its
// durable state file carries over. The derivation uses no direction: our
// outbound key is the peer's inbound key, and both ends must derive the same
// (RFC 5869 HKDF, salt empty). Both ends therefore need the same `workers`.
// Key ids of derived SAs come from the configured key id, not the key,
// because a reload sends unchanged SAs without keys; each derived SA still
// has its own id and so its own sequence-state file.
import { createHash, hkdfSync } from "node:crypto";
import type { KeyMaterial, PeerSpec, SaSpec } from "./spec.ts";

const INFO = "wesp worker SA ";

function derive(bytes: Uint8Array, worker: number): Uint8Array {
  return new Uint8Array(hkdfSync("sha256", bytes, new Uint8Array(0), INFO + worker, bytes.length));
}

function material(km: KeyMaterial, worker: number, transfer: ArrayBuffer[]): KeyMaterial {
  const key = derive(km.key, worker);
  transfer.push(key.buffer as ArrayBuffer);
  if (!km.authKey) return { key };
  const authKey = derive(km.authKey, worker);
  transfer.push(authKey.buffer as ArrayBuffer);
  return { key, authKey };
}

/** The key id of worker `worker`'s SA derived from the SA whose key id is `id`. */
export function workerKeyId(id: string, worker: number): string {
  return worker === 0 ? id : createHash("sha256").update(`${id}/worker ${worker}`).digest("hex").slice(0, 32);
}

/** Worker `worker`'s SA derived from `s` (keys, when `s` carries them, in new buffers added to `transfer`). */
function workerSa(s: SaSpec, worker: number, transfer: ArrayBuffer[]): SaSpec {
  const { keysIn, keysOut, ...rest } = s;
  return {
    ...rest,
    spiIn: (s.spiIn + worker) >>> 0,
    spiOut: (s.spiOut + worker) >>> 0,
    keyIdIn: workerKeyId(s.keyIdIn, worker),
    keyIdOut: workerKeyId(s.keyIdOut, worker),
    ...(keysIn ? { keysIn: material(keysIn, worker, transfer) } : {}),
    ...(keysOut ? { keysOut: material(keysOut, worker, transfer) } : {}),
  };
}

/**
 * The desired peers of worker `worker` (≥ 1) from worker 0's (the plan of
 * lifecycle.ts): static ESP SAs derived as above, plain tunnels as they are
 * (no sequence state: only worker 0 receives them, every worker may send).
 * `peers` is only read: its key buffers still go to worker 0 afterwards.
 */
export function peersForWorker(peers: readonly PeerSpec[], worker: number): { peers: PeerSpec[]; transfer: ArrayBuffer[] } {
  const transfer: ArrayBuffer[] = [];
  const out = peers.map((p) => ({ ...p, sas: p.sas.map((s) => workerSa(s, worker, transfer)) }));
  return { peers: out, transfer };
}
