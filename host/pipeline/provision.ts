// What the pipeline knows of the SAs the core holds (Provisioned: which
// socket each outbound SA leaves by),
// the core's sizing, and provision() for tests. The installing itself is the
// SA lifecycle's (host/sa/install.ts), the one door for every SA:
//
// Per peer (peer ids from 1, reused after a peer is removed; 0 stays unused
// so that a zeroed descriptor never names a real peer):
//
//   ESP modes (tunnel, transport-ipip, transport-gre):
//     outbound SA  sas[0]   spi_out / key_out — the only one we send on
//     inbound SAs  sas[0..] spi_in  / key_in  — both accepted while rekeying
//                           (make before break, docs/config.md "Rekeying")
//   plain ipip / gre (trusted ports, no ESP): one outbound and one inbound
//     SA of suite "none"; the core finds the inbound one by outer addresses
//     (and GRE key).
//
//   SPD: for every peer prefix R and every local selector L of R's family,
//     protect  L -> R  saId = the outbound SA, peerId = the peer
//   Local selectors are node.local_prefixes of that family, or the whole
//   family (0.0.0.0/0, ::/0) when none is listed. The same entries serve the
//   inbound check of RFC 4301 §5.2: a decapsulated packet must match, with
//   source and destination swapped, a protect entry of the peer whose SA
//   carried it. Prefixes never overlap (config/semantic.ts), so the order of
//   entries does not matter; nothing matches traffic to anything else, which
//   the core drops as NO_POLICY.
import type { Core } from "../core/core.ts";
import type { Config, PeerConfig, SaConfig, Suite } from "../config/model.ts";
import { SaTable } from "../sa/install.ts";
import { plan } from "../sa/plan.ts";
import type { PeerSpec } from "../sa/spec.ts";

/** How an outbound SA's packets leave: which WAN port, over which kind of socket. */
export type Carrier = "udp" | "raw-esp" | "raw-plain";

export interface OutSa {
  saId: number;
  spi: number;
  wanIndex: number;
  family: 4 | 6;
  carrier: Carrier;
  /** Path MTU the SA enforces (0 = none). */
  mtu: number;
  /** Config lifetime (hard), checked by the worker. */
  lifetime: SaConfig["lifetime"];
}

export interface InSa {
  saId: number;
  spi: number;
  /** Position in the peer's `sas`. */
  index: number;
  lifetime: SaConfig["lifetime"];
}

export interface PeerRuntime {
  peerId: number;
  name: string;
  mode: PeerConfig["mode"];
  address: string;
  port: number;
  wanIndex: number;
  encap: "udp" | "raw" | "plain";
  suite?: Suite;
  out: OutSa | null;
  in: InSa[];
  policies: number[];
}

export interface Provisioned {
  peers: PeerRuntime[];
  /** Outbound SA id → its description (sparse). */
  outBySa: Map<number, OutSa>;
}

/**
 * Core sizes for these peers with room to grow: a reload adds SAs before it
 * removes the old ones (make before break), and peers may be added while
 * running. Records are cheap (docs/core.md: ≈ 2.7 KB per SA), so the floor
 * is 1,024 SAs and policies; a config that outgrows them needs a restart.
 */
export function coreSizing(peers: PeerSpec[] | Config): { maxSas: number; maxPolicies: number; largeWindowBlocks: number; populateSas: number } {
  const list = Array.isArray(peers) ? peers : plan(peers, { sas: new Set(), tunnels: new Map() }).peers;
  let sas = 0, large = 0, policies = 0;
  for (const p of list) {
    sas += 1 + Math.max(1, p.sas.length);
    large += p.sas.filter((s) => s.replayWindow > 960).length;
    policies += p.remotes.length * Math.max(1, p.locals.length);
  }
  return {
    // Peer ids run 1..peers and must stay below maxSas.
    maxSas: Math.max(1024, 2 * (sas + list.length) + 16),
    maxPolicies: Math.max(1024, 2 * policies + 16),
    // 16 KiB each: the default window (1,024) needs one per inbound SA.
    largeWindowBlocks: Math.max(64, 2 * large + 16),
    // the records these SAs take at the first apply, backed by the kernel from create on (core.ts)
    populateSas: sas,
  };
}

/**
 * Installs every SA and policy of `config` into an empty core, without
 * durable sequence state (what unit tests of the pipeline use; `wesp up`
 * goes through host/sa/lifecycle.ts). Throws CoreError on a refusal.
 */
export function provision(core: Core, config: Config): Provisioned {
  const table = new SaTable(core);
  table.apply(plan(config, { sas: new Set(), tunnels: new Map() }).peers);
  return table.prov;
}
