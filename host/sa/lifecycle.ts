// The SA-lifecycle module, main-thread half: the one door every SA goes
// through, whatever made it (config file, `wesp reload`/SIGHUP, later IKEv2
// and the controller). It decides nothing about *which* SAs should exist —
// the caller hands it a validated config — but owns how they get there:
//
//   config ─► plan (desired peers, key ids; keys only for SAs the worker
//   lacks, copied out, the config's wiped) ─► sink: each worker's share of
//   the keys moved into one buffer and transferred (worker_sas.ts) ─► worker: SaTable.apply (make
//   before break, atomic between batches; durable sequence reservations in
//   seq_store) ─► events back (installed, removed, needs rekey, alarms).
//
// After apply the main thread holds no key bytes: the config's keys are
// zeroed (wipeConfigKeys) and only key-less fields and key ids remain.
//
// IKEv2 peers (config `ike`) have no SAs in the config: host/ike/manager.ts
// hands their negotiated CHILD_SAs in through setNegotiated, which goes the
// same way (plan, apply, events). Their keys stay here only until the
// worker holds the direction they are for.
import { EventEmitter } from "node:events";
import type { Config, Lifetime, Suite } from "../config/model.ts";
import type { ReloadResult } from "../control/protocol.ts";
import { DEFAULT_REPLAY_WINDOW } from "../config/normalize.ts";
import { keyId } from "./key_id.ts";
import { heldAfter, plan, wipeConfigKeys } from "./plan.ts";
import { failoverStates, failoverSwitches, type FailoverState, type FailoverSwitch } from "./failover.ts";
import { workerOfSpi } from "./worker_sas.ts";
import { saKey, type KeyMaterial, type PeerSpec, type SaEvent, type SaSpec } from "./spec.ts";

/**
 * One negotiated CHILD_SA pair as IKE's manager describes it. Keys (the
 * layouts of config/model.ts `Suite`) are needed the first time an SA is
 * listed; later lists may leave them out (the SA is found by its SPIs).
 */
export interface NegotiatedSa {
  spiIn: number;
  spiOut: number;
  suite: Suite;
  esn: boolean;
  lifetime: Lifetime;
  replayWindow?: number;
  keysIn?: KeyMaterial;
  keysOut?: KeyMaterial;
}

/**
 * What the worker side offers the lifecycle (pipeline/forwarder.ts implements
 * it). It gets the desired peers only: which buffers a message transfers is
 * the sink's to decide, since it repacks each worker's keys into a buffer of
 * their own (worker_sas.ts peersForWorker) and wipes the plan's copies.
 */
export interface SaSink {
  apply(peers: PeerSpec[]): Promise<void>;
}

/** Node fields a running instance cannot change (they shape the TUN, sockets and core). */
export const FIXED_NODE_FIELDS = ["name", "wan", "tun", "control", "workers", "stateDir", "ikePort"] as const;

export class ReloadRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ReloadRefused";
  }
}

/** What apply() did: the control socket's answer to "reload" (host/control/protocol.ts). */
export type ApplyReport = ReloadResult;

export interface SaLifecycleEvents {
  "sa-installed": [Extract<SaEvent, { event: "sa-installed" }>];
  "sa-removed": [Extract<SaEvent, { event: "sa-removed" }>];
  "needs-rekey": [Extract<SaEvent, { event: "needs-rekey" }>];
  alarm: [Extract<SaEvent, { event: "alarm" }>];
  /** A primary's prefixes moved to another carrier (failover.ts). */
  failover: [FailoverSwitch];
}

export class SaLifecycle extends EventEmitter<SaLifecycleEvents> {
  private held = { sas: new Set<string>(), tunnels: new Map<string, string>() };
  private peers: PeerSpec[] = [];
  private node: Config["node"] | null = null;
  private config: Config | null = null;
  /** IKE peers' SAs by peer name, index 0 used outbound; keys only until the worker holds them. */
  private readonly negotiated = new Map<string, SaSpec[]>();
  private queue: Promise<unknown> = Promise.resolve();
  private carriers: FailoverState[] = [];

  constructor(private readonly sink: SaSink) {
    super();
  }

  /** Feeds a worker event to subscribers. */
  deliver(e: SaEvent): void {
    switch (e.event) {
      case "sa-installed": this.emit("sa-installed", e); break;
      case "sa-removed": this.emit("sa-removed", e); break;
      case "needs-rekey": this.emit("needs-rekey", e); break;
      case "alarm": this.emit("alarm", e); break;
    }
  }

  /** Who carries each primary's prefixes now (`backup_for` pairs of the running config). */
  failover(): FailoverState[] {
    return this.carriers.map((c) => ({ ...c }));
  }

  /**
   * The desired state for a first start (no apply yet): the worker receives
   * it with its start message. Keys are copied out and the config's wiped.
   */
  initial(config: Config): { peers: PeerSpec[] } {
    const p = plan(config, this.held, this.negotiated);
    this.commit(config, p.peers);
    return p;
  }

  /**
   * Applies a new validated config: peers and SAs added, changed or removed
   * atomically in the worker; unchanged SAs keep all their state. Applies
   * queue behind one another. Rejects with ReloadRefused (nothing changed)
   * when a node field that needs a restart differs, or the worker refused.
   */
  apply(config: Config): Promise<ApplyReport> {
    const run = this.queue.then(() => this.applyNow(config));
    this.queue = run.catch(() => {});
    return run;
  }

  private async applyNow(config: Config): Promise<ApplyReport> {
    try {
      if (this.node) {
        for (const f of FIXED_NODE_FIELDS) {
          if (JSON.stringify(config.node[f]) !== JSON.stringify(this.node[f])) {
            throw new ReloadRefused(`node.${f === "stateDir" ? "state_dir" : f === "ikePort" ? "ike_port" : f} changed: a running instance cannot change it (restart to apply)`);
          }
        }
      }
      const p = plan(config, this.held, this.negotiated);
      const report = this.report(p.peers);
      try {
        await this.sink.apply(p.peers);
      } catch (e) {
        throw new ReloadRefused((e as Error).message);
      }
      this.commit(config, p.peers);
      return report;
    } finally {
      wipeConfigKeys(config);
    }
  }

  private commit(config: Config, peers: PeerSpec[]): void {
    this.held = heldAfter(peers);
    this.peers = peers.map(stripKeys);
    this.node = config.node;
    this.config = config;
    wipeConfigKeys(config);
    const next = failoverStates(config, peers);
    const switches = failoverSwitches(this.carriers, next);
    this.carriers = next;
    for (const sw of switches) this.emit("failover", sw);
    for (const list of this.negotiated.values()) {
      for (const s of list) {
        if (s.keysIn && this.held.sas.has(saKey("in", s.spiIn, s.keyIdIn))) s.keysIn = wipe(s.keysIn);
        if (s.keysOut && this.held.sas.has(saKey("out", s.spiOut, s.keyIdOut))) s.keysOut = wipe(s.keysOut);
      }
    }
  }

  /**
   * Replaces the SAs of IKE peer `peer` with `sas` (index 0 used outbound,
   * every one accepted inbound) and applies the whole desired state, queued
   * behind other applies. Make before break is the caller's order: list a
   * rekeyed CHILD_SA beside the old one, then drop the old one. An empty list
   * takes the peer out of the worker. The caller's key buffers are wiped.
   * Rejects with ReloadRefused when the worker refuses (nothing changed).
   */
  setNegotiated(peer: string, sas: readonly NegotiatedSa[]): Promise<ApplyReport> {
    const run = this.queue.then(() => this.negotiateNow(peer, sas));
    this.queue = run.catch(() => {});
    return run;
  }

  private async negotiateNow(peer: string, sas: readonly NegotiatedSa[]): Promise<ApplyReport> {
    const before = this.negotiated.get(peer) ?? [];
    try {
      const config = this.config;
      if (!config?.peers.some((p) => p.name === peer && p.ike)) throw new ReloadRefused(`peer ${peer}: not an IKE peer of the running config`);
      const workers = config.node.workers;
      const next = sas.map((n, index) => negotiatedSpec(peer, n, index, before, workers));
      this.negotiated.set(peer, next);
      const p = plan(config, this.held, this.negotiated, this.peers);
      const report = this.report(p.peers);
      try {
        await this.sink.apply(p.peers);
      } catch (e) {
        this.negotiated.set(peer, before);
        throw new ReloadRefused((e as Error).message);
      }
      this.commit(config, p.peers);
      return report;
    } finally {
      for (const n of sas) for (const km of [n.keysIn, n.keysOut]) if (km) wipe(km);
    }
  }

  private report(next: PeerSpec[]): ApplyReport {
    const before = new Map(this.peers.map((p) => [p.name, JSON.stringify(p)]));
    const r: ApplyReport = { added: [], removed: [], changed: [], unchanged: [] };
    for (const p of next) {
      const old = before.get(p.name);
      if (old === undefined) r.added.push(p.name);
      else if (old === JSON.stringify(stripKeys(p))) r.unchanged.push(p.name);
      else r.changed.push(p.name);
      before.delete(p.name);
    }
    r.removed.push(...before.keys());
    return r;
  }
}

function wipe(km: KeyMaterial): undefined {
  km.key.fill(0);
  km.authKey?.fill(0);
  return undefined;
}

/**
 * The SaSpec of a negotiated SA: key ids from its keys, or from the same SA
 * listed before; with several workers, tagged with the one its inbound SPI
 * steers to (worker_sas.ts).
 */
function negotiatedSpec(peer: string, n: NegotiatedSa, index: number, before: readonly SaSpec[], workers: number): SaSpec {
  const old = before.find((s) => s.spiIn === n.spiIn && s.spiOut === n.spiOut);
  const copy = (km: KeyMaterial): KeyMaterial => ({ key: km.key.slice(), ...(km.authKey ? { authKey: km.authKey.slice() } : {}) });
  if (!old && (!n.keysIn || !n.keysOut)) throw new ReloadRefused(`peer ${peer}: new SA spi 0x${(n.spiIn >>> 0).toString(16)} without its keys`);
  return {
    index, spiIn: n.spiIn, spiOut: n.spiOut, suite: n.suite, esn: n.esn, lifetime: n.lifetime,
    replayWindow: n.replayWindow ?? DEFAULT_REPLAY_WINDOW, durable: false,
    ...(workers > 1 ? { worker: workerOfSpi(n.spiIn, workers) } : {}),
    keyIdIn: old?.keyIdIn ?? keyId("in", n.keysIn!.key, n.keysIn!.authKey),
    keyIdOut: old?.keyIdOut ?? keyId("out", n.keysOut!.key, n.keysOut!.authKey),
    // keys the worker does not hold yet: the ones kept from before, else copies of the caller's (wiped after)
    ...(old ? { ...(old.keysIn ? { keysIn: old.keysIn } : {}), ...(old.keysOut ? { keysOut: old.keysOut } : {}) } : { keysIn: copy(n.keysIn!), keysOut: copy(n.keysOut!) }),
  };
}

function stripKeys(p: PeerSpec): PeerSpec {
  return { ...p, sas: p.sas.map(({ keysIn: _i, keysOut: _o, ...s }) => s) };
}
