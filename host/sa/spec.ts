// What the SA-lifecycle module (lifecycle.ts, main thread) hands the packet
// worker (install.ts): the whole desired set of peers and SAs, key-less except
// for SAs the worker does not have yet. Plain data, so it crosses postMessage;
// key bytes travel in one ArrayBuffer of their own per message, in the
// transfer list (worker_sas.ts packKeys), so the main thread keeps no copy
// once they are sent.
//
// Identity: a peer is its name; an SA is (direction, SPI, key id). An SA whose
// identity is unchanged keeps its core record, sequence number, replay window,
// counters and the peer's learned NAT address across an apply; a peer whose
// remote address or port alone changed keeps its SAs too (tunnelKey).
import type { Lifetime, Mode, Suite } from "../config/model.ts";
import type { Carrier } from "../pipeline/provision.ts";

/** Key material of one direction (sent as views into the message's key buffer, transferred, then wiped by the worker). */
export interface KeyMaterial {
  /** Cipher key ‖ salt, as the config holds it (config/model.ts `Suite`). */
  key: Uint8Array;
  /** HMAC-SHA-256 key for the CBC+HMAC suites. */
  authKey?: Uint8Array;
}

export interface SaSpec {
  /** Position in the peer's `sas`; index 0 is the one used outbound. */
  index: number;
  spiIn: number;
  spiOut: number;
  suite: Suite;
  esn: boolean;
  replayWindow: number;
  lifetime: Lifetime;
  /** Keyed hashes of the inbound and outbound keys (key_id.ts): identity and state-file name. */
  keyIdIn: string;
  keyIdOut: string;
  /** Present only when the worker does not hold this SA yet (new, or its peer's tunnel changed). */
  keysIn?: KeyMaterial;
  keysOut?: KeyMaterial;
  /** Keep sequence state on disk (static keys); false for negotiated SAs whose keys die with the process. */
  durable: boolean;
  /**
   * With node.workers > 1, a negotiated SA's packet worker (its inbound SPI
   * mod workers, worker_sas.ts workerOfSpi): only that worker holds it, and
   * the first SA of each worker is that worker's outbound SA. Absent for
   * static SAs (every worker holds a derived copy) and with one worker.
   */
  worker?: number;
}

/** Whether `sas[k]` is an outbound SA: the first of its worker's (of all, when untagged). */
export const sendsOn = (sas: readonly SaSpec[], k: number): boolean => sas.findIndex((s) => s.worker === sas[k].worker) === k;

export interface PeerSpec {
  name: string;
  mode: Mode;
  /** Outer addresses and ports. */
  local: string;
  address: string;
  port: number;
  localPort: number;
  wanIndex: number;
  family: 4 | 6;
  encap: "udp" | "raw" | "plain";
  natT: boolean;
  keepalive: number;
  greKey?: number;
  greSeq: boolean;
  mtu: number;
  carrier: Carrier;
  /** SPD: every local selector × every remote prefix (text), protect through sas[0] (each worker's own first SA). */
  locals: string[];
  remotes: string[];
  /** SPD priority of those entries: a backup's sit behind the rest (config/selectors.ts). */
  priority: number;
  sas: SaSpec[];
}

/**
 * The tunnel fields of a peer: if any changes, its SAs are rebuilt (their
 * sequence state stays on disk). The peer's remote address and port are not
 * among them: a peer that only moved keeps its SAs, moved in place
 * (install.ts movePeer, core moveSa), so neither side's sequence numbers or replay
 * windows jump to the durable reservation.
 */
export function tunnelKey(p: PeerSpec): string {
  return JSON.stringify([p.mode, p.local, p.localPort, p.wanIndex, p.encap, p.natT, p.greKey ?? null, p.greSeq, p.mtu]);
}

/**
 * tunnelKey(a) === tunnelKey(b), field by field: the SA table compares the
 * peer it holds with the one an apply asks for, and a JSON text per peer
 * (50,000 at a hub's start) cost more than the comparison (a property test
 * holds the two equal).
 */
export function sameTunnel(a: PeerSpec, b: PeerSpec): boolean {
  return a.mode === b.mode && a.local === b.local && a.localPort === b.localPort && a.wanIndex === b.wanIndex
    && a.encap === b.encap && a.natT === b.natT && (a.greKey ?? null) === (b.greKey ?? null) && a.greSeq === b.greSeq && a.mtu === b.mtu;
}

/** Whether `b` is `a` moved: the same tunnel at another remote address or port. */
export const moved = (a: PeerSpec, b: PeerSpec): boolean => a.address !== b.address || a.port !== b.port;

/** The SA identity of one direction. */
export const saKey = (dir: "in" | "out", spi: number, keyId: string): string => `${dir}:${spi >>> 0}:${keyId}`;

/** Events the worker reports about SAs (lifecycle.ts re-emits them; api.ts documents them). */
export type SaEvent =
  | { event: "sa-installed"; peer: string; dir: "in" | "out"; spi: number; saId: number; resumedAt?: string }
  | { event: "sa-removed"; peer: string; dir: "in" | "out"; spi: number; why: "config" | "lifetime" | "peer-removed" | "tunnel-changed" | "stop" }
  | { event: "needs-rekey"; peer: string; dir: "in" | "out"; spi: number; why: "soft-lifetime" | "sequence-exhausted" }
  | { event: "alarm"; peer?: string; spi?: number; message: string };

/**
 * An apply's events as one batch (SaTable emitBatch, a worker's one message
 * to the main thread): in order, each sa-installed one as its row in
 * `installs`, whose columns hold numbers and references to strings that
 * exist anyway. A hub's start installs 100,000 SAs: their events as objects
 * were 100,000 objects made at the apply's end and 100,000 cloned (each
 * with its property names) into the message, on the installing thread; as
 * rows they are five arrays, and the receiver makes the objects (eventsOf).
 */
export interface EventBatch {
  events: (SaEvent | number)[];
  installs: InstallRows;
}

/** sa-installed events as columns (EventBatch): row i is one event. */
export interface InstallRows {
  peer: string[];
  dir: ("in" | "out")[];
  spi: number[];
  saId: number[];
  /** The first sequence number of an SA resumed from an earlier run's state, else undefined. */
  resumedAt: (bigint | undefined)[];
}

/** Empty columns for an apply's sa-installed events. */
export const installRows = (): InstallRows => ({ peer: [], dir: [], spi: [], saId: [], resumedAt: [] });

/** An sa-installed event. */
export function installEvent(peer: string, dir: "in" | "out", spi: number, saId: number, resumedAt: bigint | undefined): SaEvent {
  return resumedAt !== undefined ? { event: "sa-installed", peer, dir, spi, saId, resumedAt: String(resumedAt) } : { event: "sa-installed", peer, dir, spi, saId };
}

/** The events of batch `b`, in order, as SaEvents. */
export function eventsOf(b: EventBatch): SaEvent[] {
  const r = b.installs;
  return b.events.map((e) => (typeof e === "number" ? installEvent(r.peer[e], r.dir[e], r.spi[e], r.saId[e], r.resumedAt[e]) : e));
}
