// From a validated config to the desired set of peers and SAs (spec.ts) —
// the part of the SA lifecycle that runs on the main thread, where configs
// are loaded. Key bytes go only into SAs the worker does not hold yet, each
// copied out of the config (which is wiped once planned); everything else
// is key-less (key ids). How the copies reach the workers is worker_sas.ts's
// business: peersForWorker moves each worker's share into one buffer of its
// own, wipes these copies, and that buffer is what its message transfers.
import type { Config, PeerConfig, SaConfig } from "../config/model.ts";
import type { Carrier } from "../pipeline/provision.ts";
import { keyId } from "./key_id.ts";
import { BACKUP_PRIORITY, NORMAL_PRIORITY, localSelectors } from "../config/selectors.ts";
import { saKey, sendsOn, tunnelKey, type KeyMaterial, type PeerSpec, type SaSpec } from "./spec.ts";

export interface Plan {
  peers: PeerSpec[];
}

/** A copy of `bytes` (the config's are wiped once planned; worker_sas.ts packKeys wipes this one). */
const own = (bytes: Uint8Array): Uint8Array => Uint8Array.from(bytes);

function material(sa: SaConfig, dir: "in" | "out"): KeyMaterial {
  const key = dir === "in" ? sa.keyIn : sa.keyOut;
  const auth = dir === "in" ? sa.authKeyIn : sa.authKeyOut;
  return { key: own(key), ...(auth ? { authKey: own(auth) } : {}) };
}

function copyMaterial(km: KeyMaterial): KeyMaterial {
  return { key: own(km.key), ...(km.authKey ? { authKey: own(km.authKey) } : {}) };
}

function saSpec(sa: SaConfig): SaSpec {
  return {
    index: sa.index, spiIn: sa.spiIn, spiOut: sa.spiOut, suite: sa.suite, esn: sa.esn,
    replayWindow: sa.replayWindow, lifetime: sa.lifetime, durable: true,
    keyIdIn: keyId("in", sa.keyIn, sa.authKeyIn),
    keyIdOut: keyId("out", sa.keyOut, sa.authKeyOut),
  };
}

/**
 * SAs IKEv2 negotiated, by peer name (lifecycle.ts keeps the table): specs
 * whose keys, when present, are the lifecycle's own copies; plan copies them
 * again (the lifecycle drops its own once the worker holds them).
 */
export type Negotiated = ReadonlyMap<string, readonly SaSpec[]>;

function peerSpec(config: Config, p: PeerConfig, negotiated: Negotiated): PeerSpec {
  const wan = config.node.wan[p.wanIndex];
  const plain = p.mode === "ipip" || p.mode === "gre";
  const carrier: Carrier = plain ? "raw-plain" : p.encap === "udp" ? "udp" : "raw-esp";
  const gre = p.mode === "gre" || p.mode === "transport-gre";
  return {
    name: p.name, mode: p.mode, local: wan.address.text, address: p.address.text, port: p.port, localPort: wan.port,
    wanIndex: p.wanIndex, family: wan.address.family, encap: plain ? "plain" : p.encap, natT: p.natT,
    keepalive: p.keepalive, ...(gre && p.gre.key !== undefined ? { greKey: p.gre.key } : {}), greSeq: gre && p.gre.sequence,
    mtu: p.mtu ?? 0, carrier,
    locals: localSelectors(config, p).map((l) => l.text), remotes: p.prefixes.map((r) => r.text),
    priority: p.backupFor !== undefined ? BACKUP_PRIORITY : NORMAL_PRIORITY,
    sas: plain ? [] : p.ike ? (negotiated.get(p.name) ?? []).map(({ keysIn: _i, keysOut: _o, ...s }, index) => ({ ...s, index })) : p.sas.map(saSpec),
  };
}

/**
 * The desired state for `config`. `held` is what the worker holds now (SA
 * identities, and each peer's tunnel key): SAs found there travel without
 * keys; the rest carry theirs. IKE peers' SAs come from `negotiated`; with
 * `running`, static peers are taken from it as they run.
 */
export function plan(config: Config, held: { sas: Set<string>; tunnels: Map<string, string> }, negotiated: Negotiated = new Map(), running?: readonly PeerSpec[]): Plan {
  // `running` (key-less) stands in for static peers when only negotiated SAs change: the config's keys are wiped by then.
  const keep = new Map((running ?? []).map((s) => [s.name, s]));
  // An IKE peer without a CHILD_SA yet is left out: no SA, no policy (its traffic drops as NO_POLICY).
  const peers = config.peers.filter((p) => !p.ike || (negotiated.get(p.name)?.length ?? 0) > 0).map((p) => {
    const kept = p.ike ? undefined : keep.get(p.name);
    if (kept) return kept;
    const spec = peerSpec(config, p, negotiated);
    const rebuilt = held.tunnels.get(p.name) !== tunnelKey(spec);
    spec.sas.forEach((s, k) => {
      const needIn = rebuilt || !held.sas.has(saKey("in", s.spiIn, s.keyIdIn));
      const needOut = sendsOn(spec.sas, k) && (rebuilt || !held.sas.has(saKey("out", s.spiOut, s.keyIdOut)));
      if (p.ike) {
        // Negotiated keys exist only until the worker holds them: a rebuild without them is refused by the worker.
        const n = negotiated.get(p.name)![k];
        if (needIn && n.keysIn) s.keysIn = copyMaterial(n.keysIn);
        if (needOut && n.keysOut) s.keysOut = copyMaterial(n.keysOut);
        return;
      }
      if (needIn) s.keysIn = material(p.sas[k], "in");
      if (needOut) s.keysOut = material(p.sas[k], "out");
    });
    return spec;
  });
  return { peers };
}

/** What the worker will hold once `peers` is applied (the next plan's `held`). */
export function heldAfter(peers: PeerSpec[]): { sas: Set<string>; tunnels: Map<string, string> } {
  const sas = new Set<string>();
  const tunnels = new Map<string, string>();
  for (const p of peers) {
    tunnels.set(p.name, tunnelKey(p));
    p.sas.forEach((s, k) => {
      sas.add(saKey("in", s.spiIn, s.keyIdIn));
      if (sendsOn(p.sas, k)) sas.add(saKey("out", s.spiOut, s.keyIdOut));
    });
  }
  return { sas, tunnels };
}

/** Overwrites every key of a loaded config with zeros: the main thread keeps only key-less fields. */
export function wipeConfigKeys(config: Config): void {
  for (const p of config.peers) {
    for (const sa of p.sas) {
      for (const k of [sa.keyIn, sa.keyOut, sa.authKeyIn, sa.authKeyOut]) k?.fill(0);
    }
  }
}
