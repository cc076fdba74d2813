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
//
// Negotiated SAs (IKE peers) are not derived: IKE makes one CHILD_SA per
// worker (RFC 9611 per-resource SAs; host/ike/manager.ts), each with an
// inbound SPI we chose so that SPI mod N is its worker (workerOfSpi), and the
// lifecycle tags it with that worker (SaSpec.worker). Worker i gets exactly
// the SAs tagged i; a peer with none there yet is left out on that worker.
import { createHash, hkdfSync } from "node:crypto";
import type { KeyMaterial, PeerSpec, SaSpec } from "./spec.ts";

const INFO = "wesp worker SA ";

function derive(bytes: Uint8Array, worker: number): Uint8Array {
  return new Uint8Array(hkdfSync("sha256", bytes, new Uint8Array(0), INFO + worker, bytes.length));
}

function material(km: KeyMaterial, worker: number): KeyMaterial {
  const key = derive(km.key, worker);
  return km.authKey ? { key, authKey: derive(km.authKey, worker) } : { key };
}

/** The worker that receives inbound SPI `spi` with `workers` workers (net/steer_linux.ts steers by it). */
export const workerOfSpi = (spi: number, workers: number): number => (spi >>> 0) % workers;

/** The key id of worker `worker`'s SA derived from the SA whose key id is `id`. */
export function workerKeyId(id: string, worker: number): string {
  return worker === 0 ? id : createHash("sha256").update(`${id}/worker ${worker}`).digest("hex").slice(0, 32);
}

/** Worker `worker`'s SA derived from `s` (keys, when `s` carries them, in new buffers of their own). */
function workerSa(s: SaSpec, worker: number): SaSpec {
  const { keysIn, keysOut, ...rest } = s;
  return {
    ...rest,
    spiIn: (s.spiIn + worker) >>> 0,
    spiOut: (s.spiOut + worker) >>> 0,
    keyIdIn: workerKeyId(s.keyIdIn, worker),
    keyIdOut: workerKeyId(s.keyIdOut, worker),
    ...(keysIn ? { keysIn: material(keysIn, worker) } : {}),
    ...(keysOut ? { keysOut: material(keysOut, worker) } : {}),
  };
}

/**
 * The key material `peers` carry, moved into one buffer: each key becomes a
 * view into it, its old bytes wiped; the buffer is what their postMessage
 * transfers (so the main thread keeps no copy). One buffer, not one per
 * key: Node 20's Worker constructor overflows its stack on a transfer list
 * of about 120,000 buffers, and a hub of 100,000 static peers has 200,000
 * keys.
 */
function packKeys(peers: readonly PeerSpec[]): ArrayBuffer[] {
  const moved = new Map<Uint8Array, Uint8Array>(); // a key array met twice is moved once
  let total = 0;
  const each = (f: (km: KeyMaterial) => void) => {
    for (const p of peers) for (const s of p.sas) for (const km of [s.keysIn, s.keysOut]) if (km) f(km);
  };
  each((km) => {
    for (const b of km.authKey ? [km.key, km.authKey] : [km.key]) if (!moved.has(b)) (moved.set(b, b), (total += b.length));
  });
  if (moved.size === 0) return [];
  const buf = new ArrayBuffer(total);
  let off = 0;
  for (const b of moved.keys()) {
    const view = new Uint8Array(buf, off, b.length);
    view.set(b);
    b.fill(0);
    off += b.length;
    moved.set(b, view);
  }
  each((km) => {
    km.key = moved.get(km.key)!;
    if (km.authKey) km.authKey = moved.get(km.authKey)!;
  });
  return [buf];
}

/** Whether a peer's SAs are negotiated per worker (tagged) rather than derived from configured ones. */
const tagged = (p: PeerSpec): boolean => p.sas.some((s) => s.worker !== undefined);

/**
 * The desired peers of worker `worker` of `workers` from the lifecycle's plan
 * (lifecycle.ts): static ESP SAs derived as above (worker 0 keeps the
 * configured ones), negotiated ones those tagged for this worker, re-indexed
 * (its first is its outbound SA), plain tunnels as they are (no sequence
 * state: only worker 0 receives them, every worker may send). `transfer` is
 * the one buffer this worker's keys were moved into (packKeys). Worker 0's
 * keys are the configured ones, moved (the originals wiped): workers ≥ 1
 * must be served before worker 0 (peersForWorkers).
 */
export function peersForWorker(peers: readonly PeerSpec[], worker: number, workers: number): { peers: PeerSpec[]; transfer: ArrayBuffer[] } {
  if (workers <= 1) return { peers: [...peers], transfer: packKeys(peers) };
  const out: PeerSpec[] = [];
  for (const p of peers) {
    if (tagged(p)) {
      const sas = p.sas.filter((s) => s.worker === worker).map((s, index) => ({ ...s, index }));
      if (sas.length) out.push({ ...p, sas });
    } else out.push(worker === 0 ? p : { ...p, sas: p.sas.map((s) => workerSa(s, worker)) });
  }
  return { peers: out, transfer: packKeys(out) };
}

/** peersForWorker for every worker of `workers`, worker 0 last (its keys are the configured ones the others derive from). */
export function peersForWorkers(peers: readonly PeerSpec[], workers: number): { peers: PeerSpec[]; transfer: ArrayBuffer[] }[] {
  const per: { peers: PeerSpec[]; transfer: ArrayBuffer[] }[] = [];
  for (let i = workers - 1; i >= 0; i--) per[i] = peersForWorker(peers, i, workers);
  return per;
}
