// The SA-lifecycle module, main-thread half: the one door every SA goes
// through, whatever made it (config file, `wesp reload`/SIGHUP, later IKEv2
// and the controller). It decides nothing about *which* SAs should exist —
// the caller hands it a validated config — but owns how they get there:
//
//   config ─► plan (desired peers, key ids; keys only for SAs the worker
//   lacks, transferred, then wiped here) ─► worker: SaTable.apply (make
//   before break, atomic between batches; durable sequence reservations in
//   seq_store) ─► events back (installed, removed, needs rekey, alarms).
//
// After apply the main thread holds no key bytes: the config's keys are
// zeroed (wipeConfigKeys) and only key-less fields and key ids remain.
import { EventEmitter } from "node:events";
import type { Config } from "../config/model.ts";
import { heldAfter, plan, wipeConfigKeys } from "./plan.ts";
import type { PeerSpec, SaEvent } from "./spec.ts";

/** What the worker side offers the lifecycle (pipeline/forwarder.ts implements it). */
export interface SaSink {
  apply(peers: PeerSpec[], transfer: ArrayBuffer[]): Promise<void>;
}

/** Node fields a running instance cannot change (they shape the TUN, sockets and core). */
const FIXED_NODE_FIELDS = ["name", "wan", "tun", "control", "workers", "stateDir"] as const;

export class ReloadRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ReloadRefused";
  }
}

export interface ApplyReport {
  added: string[];
  removed: string[];
  changed: string[];
  unchanged: string[];
}

export interface SaLifecycleEvents {
  "sa-installed": [Extract<SaEvent, { event: "sa-installed" }>];
  "sa-removed": [Extract<SaEvent, { event: "sa-removed" }>];
  "needs-rekey": [Extract<SaEvent, { event: "needs-rekey" }>];
  alarm: [Extract<SaEvent, { event: "alarm" }>];
}

export class SaLifecycle extends EventEmitter<SaLifecycleEvents> {
  private held = { sas: new Set<string>(), tunnels: new Map<string, string>() };
  private peers: PeerSpec[] = [];
  private node: Config["node"] | null = null;
  private queue: Promise<unknown> = Promise.resolve();

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

  /**
   * The desired state for a first start (no apply yet): the worker receives
   * it with its start message. Keys are copied out and the config's wiped.
   */
  initial(config: Config): { peers: PeerSpec[]; transfer: ArrayBuffer[] } {
    const p = plan(config, this.held);
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
            throw new ReloadRefused(`node.${f === "stateDir" ? "state_dir" : f} changed: a running instance cannot change it (restart to apply)`);
          }
        }
      }
      const p = plan(config, this.held);
      const report = this.report(p.peers);
      try {
        await this.sink.apply(p.peers, p.transfer);
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
    wipeConfigKeys(config);
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

  /** Key-less view of what runs (for status and tests). */
  running(): readonly PeerSpec[] {
    return this.peers;
  }
}

function stripKeys(p: PeerSpec): PeerSpec {
  return { ...p, sas: p.sas.map(({ keysIn: _i, keysOut: _o, ...s }) => s) };
}
