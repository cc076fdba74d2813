// A CE's configuration, computed from the VPN database: the node (its WAN
// ports and prefixes) and the peers the topology gives it, each with its SAs,
// in the shape of a wesp config (docs/config.md), so the CE agent hands it to
// `ce.apply()` as it is. This is the CE's part of the VPN database
// (draft-ietf-l3vpn-ce-based-02 §3.3): `<peer address, keys, SA info, tunnel
// info>` for the peers it talks to — and nothing about any other pair
// (net2cloud §4.1: "many nodes can get dumped with too much information").
//
// Keying (model.ts KEYINGS): in an `ike` VPN each peer gets an `ike` block
// (render_ike.ts: certificates, identities, who initiates) and no key at all;
// in a `controller` VPN its controller-made SAs (`sas`, RFC 9061 IKE-less).
//
// The node fields a CE decides for itself (tun, control, state_dir, workers)
// are not set here: the agent keeps its own.
import type { SaRecord, Site, Vpn, WanPort } from "./store/model.ts";
import { peersOf, viaHub, type HubRoles } from "./topology.ts";
import { parseAddress } from "../config/addr.ts";
import { lifetimeToDoc } from "../config/normalize.ts";
import { ikeBlock, type CeIke } from "./render_ike.ts";

/** Seconds between NAT keepalives a CE behind a NAT sends (RFC 3948 §2.3 suggests 20). */
export const NAT_KEEPALIVE_S = 20;

export interface CeSa {
  spi_in: number;
  spi_out: number;
  suite: string;
  key_in: string;
  key_out: string;
  lifetime?: CeLifetime;
}

/** docs/config.md `peers[].sas[].lifetime`. */
export interface CeLifetime {
  seconds?: number;
  bytes?: number;
  packets?: number;
  soft_seconds?: number;
  soft_bytes?: number;
  soft_packets?: number;
}

export interface CePeer {
  name: string;
  address: string;
  port: number;
  wan: string;
  nat_t: boolean;
  keepalive: number;
  prefixes: string[];
  mode: string;
  /** A hub's spoke: traffic between it and the other spokes passes through this CE (docs/config.md `transit`). */
  transit?: boolean;
  /** A spoke's backup hub: the prefixes it shares with the hub go here while the hub is dead (docs/config.md `backup_for`). */
  backup_for?: string;
  /** Controller-made SAs (keying `controller`) … */
  sas?: CeSa[];
  /** … or IKEv2 with the enrolled certificates (keying `ike`). */
  ike?: CeIke;
}

/** A wesp config (docs/config.md) for one CE. */
export interface CeConfig {
  version: 1;
  node: {
    name: string;
    wan: { name: string; address: string; port: number; encap: "udp"; trusted: boolean }[];
    local_prefixes: string[];
  };
  peers: CePeer[];
}

function family(a: string): number {
  const p = parseAddress(a);
  return p.ok ? p.value.family : 0;
}

/** Where peers reach a port: its public side when a NAT translates it. */
function reachable(p: WanPort): { address: string; port: number } {
  return { address: p.publicAddress ?? p.privateAddress, port: p.publicPort ?? p.privatePort };
}

/** Each side can send to the other: its own address has the family of where it sends (docs/config.md "Rules"). */
function compatible(pa: WanPort, pb: WanPort): boolean {
  return family(pa.privateAddress) === family(reachable(pb).address) && family(pb.privateAddress) === family(reachable(pa).address);
}

/**
 * The ports a tunnel between `a` and `b` uses, `a`'s first: an Internet-facing
 * port on both sides when both have one, else trusted ones, else any; the
 * first compatible pair in port order, looked up from the side whose name
 * sorts first so that both CEs agree. Undefined when none is compatible.
 */
export function choosePorts(a: Site, b: Site): [WanPort, WanPort] | undefined {
  if (b.name < a.name) {
    const r = choosePorts(b, a);
    return r && [r[1], r[0]];
  }
  for (const trusted of [false, true, undefined]) {
    for (const pa of a.wan.filter((p) => trusted === undefined || p.trusted === trusted)) {
      const pb = b.wan.find((q) => (trusted === undefined || q.trusted === trusted) && compatible(pa, q));
      if (pb) return [pa, pb];
    }
  }
  return undefined;
}

/**
 * The config of `site`. `sas` must hold at least the SAs `site` sends or
 * receives on (others are ignored); `openKey` unseals one. A peer whose SAs
 * are not made yet, or with which no WAN port family is shared, is left out.
 * At most the two newest generations of a pair are listed, the one used
 * outbound first (pairGenerations).
 * With keying `ike`, `sas` is ignored and `revoked` (the VPN's revoked
 * certificate serials, by site) goes into each peer's `ike` block.
 */
export function renderConfig(
  vpn: Vpn, sites: Site[], sas: SaRecord[], site: string, openKey: (sa: SaRecord) => Uint8Array,
  revoked: { site: string; serial: string }[] = [],
): CeConfig {
  const me = sites.find((s) => s.name === site);
  if (!me) throw new Error(`site "${site}" is not in VPN "${vpn.name}"`);
  const peers: CePeer[] = [];
  // Indexed once: a hub of 10,000 spokes looked every peer up in the site and SA lists (quadratic: seconds per pull).
  const byName = new Map(sites.map((s) => [s.name, s]));
  const byPair = new Map<string, SaRecord[]>();
  for (const x of sas) {
    if (x.src !== site && x.dst !== site) continue;
    const k = `${x.src}\n${x.dst}`;
    const l = byPair.get(k);
    if (l) l.push(x);
    else byPair.set(k, [x]);
  }
  const roles = viaHub(vpn, sites, site);
  for (const name of peersOf(vpn, sites, site)) {
    const other = byName.get(name)!;
    const ports = choosePorts(me, other);
    if (!ports) continue;
    const [mine, theirs] = ports;
    const link = {
      name,
      ...reachable(theirs),
      wan: mine.name,
      nat_t: true,
      keepalive: mine.natType !== "none" ? NAT_KEEPALIVE_S : 0,
      prefixes: [...other.prefixes, ...(roles.carriers.includes(name) ? roles.spokePrefixes : [])],
      mode: vpn.mode,
      ...(roles.transit.has(name) ? { transit: true } : {}),
    };
    if (vpn.keying === "ike") {
      const serials = revoked.filter((r) => r.site === name).map((r) => r.serial);
      peers.push({ ...link, ike: ikeBlock(vpn, me, mine, other, theirs, serials) });
      continue;
    }
    const out = byPair.get(`${site}\n${name}`) ?? [];
    const inn = byPair.get(`${name}\n${site}`) ?? [];
    const gens = pairGenerations(out, inn);
    if (gens.length === 0) continue;
    peers.push({
      ...link,
      sas: gens.map((g) => {
        const o = out.find((x) => x.generation === g)!;
        const i = inn.find((x) => x.generation === g)!;
        return {
          spi_in: i.spi, spi_out: o.spi, suite: o.suite, key_in: Buffer.from(openKey(i)).toString("hex"), key_out: Buffer.from(openKey(o)).toString("hex"),
          ...lifetimeOf(vpn),
        };
      }),
    });
  }
  markBackup(peers, roles);
  return {
    version: 1,
    node: {
      name: me.name,
      wan: me.wan.map((p) => ({ name: p.name, address: p.privateAddress, port: p.privatePort, encap: "udp" as const, trusted: p.trusted })),
      local_prefixes: [...me.prefixes],
    },
    peers,
  };
}

/** A spoke's backup hub backs its hub up when both are among its peers (the hub's prefixes and the spokes' overlap only then). */
function markBackup(peers: CePeer[], roles: HubRoles): void {
  if (!roles.backup) return;
  const [primary, backup] = roles.backup;
  const b = peers.find((p) => p.name === backup);
  if (!b || !roles.carriers.includes(backup)) return;
  if (peers.some((p) => p.name === primary)) b.backup_for = primary;
}

/**
 * The generations of a pair a CE lists (at most the two newest made in both
 * directions): the one its sender uses outbound ("active") first — the CE
 * sends on the first and accepts both (docs/config.md "Rekeying") — so that a
 * rekey (store/rekey.ts, RFC 9061 §4.1.2) lists [old, new] while the new SAs
 * are installed inbound, then [new, old] once outbound moved, then [new].
 */
export function pairGenerations(out: SaRecord[], inn: SaRecord[]): number[] {
  const gens = [...new Set(out.map((x) => x.generation))].filter((g) => inn.some((x) => x.generation === g)).sort((x, y) => x - y).slice(-2);
  const active = (g: number) => (out.find((x) => x.generation === g)!.state === "active" ? 1 : 0);
  return gens.sort((x, y) => active(y) - active(x));
}

/** The VPN's SA lifetimes as the config spells them; nothing when it sets none. */
function lifetimeOf(vpn: Vpn): { lifetime?: CeLifetime } {
  const out = lifetimeToDoc(vpn.saLifetime);
  return Object.keys(out).length ? { lifetime: out } : {};
}
