// Which sites of a VPN talk to each other (draft-ietf-l3vpn-ce-based-02 §3.1:
// the VPN database holds "a description of the VPN's topology"; §3.3: a CE
// establishes tunnels with the other CEs "to which it should establish a
// virtual VPN link - dependent on the VPN topology").
//
//   full mesh:       every pair of sites
//   hub-and-spoke:   hub ↔ each spoke; backup hub ↔ each spoke; hub ↔ backup hub
//
// A hub named in the topology but not (yet) a site of the VPN makes no pairs.
//
// Spoke to spoke goes through a hub (viaHub): a spoke's tunnel to a carrying
// hub lists the other spokes' prefixes beside the hub's own, and the hub
// marks its spokes `transit` so that its inbound check (RFC 4301 §5.2) takes
// a packet from one spoke to another (docs/config.md `transit`). With IKE
// keying both hubs carry, the backup as the hub's `backup_for` (failover on
// IKE liveness, docs/controller.md item 7); controller-made keys have no
// liveness signal, so there the hub alone carries (the backup hub when the
// hub is not a site) and nothing fails over.
import type { Site, Vpn } from "./store/model.ts";

/** An unordered pair of site names, the smaller first. */
export type Pair = [string, string];

function pair(a: string, b: string): Pair {
  return a < b ? [a, b] : [b, a];
}

/** Every pair of sites of `vpn` that has a tunnel, each once, sorted. */
export function pairsOf(vpn: Pick<Vpn, "topology">, sites: Pick<Site, "name">[]): Pair[] {
  const names = [...new Set(sites.map((s) => s.name))].sort();
  const out: Pair[] = [];
  const t = vpn.topology;
  if (t.kind === "full-mesh") {
    for (let i = 0; i < names.length; i++) for (let j = i + 1; j < names.length; j++) out.push([names[i], names[j]]);
    return out;
  }
  const hubs = [t.hub, t.backupHub].filter((h): h is string => h !== undefined && names.includes(h));
  for (const h of hubs) for (const s of names) if (!hubs.includes(s)) out.push(pair(h, s));
  if (hubs.length === 2) out.push(pair(hubs[0], hubs[1]));
  return out.sort((x, y) => (x[0] === y[0] ? (x[1] < y[1] ? -1 : 1) : x[0] < y[0] ? -1 : 1));
}

/**
 * The sites `site` talks to, sorted: `pairsOf`'s pairs that hold `site`,
 * found without making them all (a full mesh of 10,000 sites has 50 million;
 * every config a CE pulls asks this).
 */
export function peersOf(vpn: Pick<Vpn, "topology">, sites: Pick<Site, "name">[], site: string): string[] {
  const names = [...new Set(sites.map((s) => s.name))];
  if (!names.includes(site)) return [];
  const t = vpn.topology;
  if (t.kind === "full-mesh") return names.filter((n) => n !== site).sort();
  const hubs = [t.hub, t.backupHub].filter((h): h is string => h !== undefined && names.includes(h));
  if (!hubs.includes(site)) return [...hubs].sort();
  return names.filter((n) => n !== site && (!hubs.includes(n) || hubs.length === 2)).sort();
}

/** What a hub-and-spoke topology asks of `site`'s config beyond its pairs (render.ts). */
export interface HubRoles {
  /** Hubs through which `site`, a spoke, reaches the other spokes. */
  carriers: string[];
  /** The other spokes' prefixes (spokes by name), when `site` is a spoke. */
  spokePrefixes: string[];
  /** Peers of `site`, a carrying hub, that it forwards between. */
  transit: Set<string>;
  /** [hub, backup hub] when `site` is a spoke that fails over between them. */
  backup?: [string, string];
}

export function viaHub(vpn: Pick<Vpn, "topology" | "keying">, sites: Pick<Site, "name" | "prefixes">[], site: string): HubRoles {
  const none: HubRoles = { carriers: [], spokePrefixes: [], transit: new Set() };
  const t = vpn.topology;
  if (t.kind !== "hub-and-spoke") return none;
  const names = new Set(sites.map((s) => s.name));
  const hubs = [t.hub, t.backupHub].filter((h): h is string => h !== undefined && names.has(h));
  const carriers = vpn.keying === "ike" ? hubs : hubs.slice(0, 1);
  const spokes = sites.filter((s) => !hubs.includes(s.name)).sort((a, b) => (a.name < b.name ? -1 : 1));
  if (carriers.includes(site)) return { ...none, transit: new Set(spokes.map((s) => s.name)) };
  if (hubs.includes(site) || !names.has(site)) return none;
  return {
    carriers,
    spokePrefixes: spokes.filter((s) => s.name !== site).flatMap((s) => s.prefixes),
    transit: new Set(),
    ...(carriers.length === 2 ? { backup: [carriers[0], carriers[1]] as [string, string] } : {}),
  };
}
