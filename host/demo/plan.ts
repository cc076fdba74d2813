// The demo's network, as data: three sites of a CE-based VPN
// (draft-ietf-l3vpn-ce-based-02), a full mesh of ESP SA pairs with a different
// suite per pair, negotiated with IKEv2 (or, with --static-keys, typed into the
// configs), and site C behind a source NAT.
//
//   site-a 10.1.0.2 ─lan─ ce-a ─wan 192.0.2.1 ──┐
//                                               │  wan: bridge br0, 192.0.2.0/24
//   site-b 10.2.0.2 ─lan─ ce-b ─wan 192.0.2.2 ──┤  (the "Internet"; the capture point)
//                                               │
//                    nat: outside 192.0.2.3 ────┘  masquerade, ports 20000-20999
//                         inside  172.16.3.1 ──┐
//   site-c 10.3.0.2 ─lan─ ce-c ─wan 172.16.3.2 ┘  default route via the NAT
//
// Each CE runs `wesp up` with a TUN `wesp0`; the routes to the other sites'
// prefixes point into it. A and B know C only by the NAT's outside address and
// port 4500, which is NOT where C's packets come from: the NAT rewrites C's
// source port to one of 20000-20999, so A and B reach C only because the core
// learns C's translated address and port from authenticated inbound packets
// (RFC 3948 §2.2; docs/core.md "NAT-T peer address learning"). C sends first
// (its keepalives, RFC 3948 §2.3, and the demo's first pings go from C).
// With IKEv2, C is the initiator towards both A and B for the same reason: A and
// B cannot reach C before it has opened a mapping. A initiates towards B. One
// initiator per pair: two would set up two IKE SAs (docs/ike.md).
//
// Static SPIs read as "from, to": 0x0000ab01 is the SA A sends to B on. IKE's
// SPIs are random (host/ike/runtime.ts) and known only from the CEs' key logs.

export type SiteId = "a" | "b" | "c";

export interface Site {
  id: SiteId;
  /** Node name in the config and in the output. */
  name: string;
  /** Prefixes behind the CE (its `local_prefixes`). */
  prefixes: [v4: string, v6: string];
  /** The site's LAN host (a namespace of its own). */
  host: { v4: string; v6: string };
  /** The CE's address on the LAN, the host's default gateway. */
  gateway: { v4: string; v6: string };
  /** LAN on-link prefix lengths. */
  lanLen: { v4: number; v6: number };
  /** The CE's own WAN address (private for C, behind the NAT). */
  wan: string;
  /** Where the other CEs send to: the WAN address, or the NAT's outside one. */
  publicAddress: string;
  behindNat: boolean;
}

export const WAN_LEN = 24;
export const NAT_INSIDE = { nat: "172.16.3.1", len: 24 };
/** The NAT's outside address: site C's public address. */
export const NAT_OUTSIDE = "192.0.2.3";
/** Source ports the NAT maps C's flows to (so 4500 in the config is wrong on purpose). */
export const NAT_PORTS = { first: 20000, last: 20999 };
export const ESP_PORT = 4500;

export const SITES: readonly Site[] = [
  site("a", "10.1", "fd00:1", "192.0.2.1", "192.0.2.1", false),
  site("b", "10.2", "fd00:2", "192.0.2.2", "192.0.2.2", false),
  site("c", "10.3", "fd00:3", "172.16.3.2", NAT_OUTSIDE, true),
];

function site(id: SiteId, v4: string, v6: string, wan: string, pub: string, behindNat: boolean): Site {
  return {
    id,
    name: `site-${id}`,
    prefixes: [`${v4}.0.0/16`, `${v6}::/48`],
    host: { v4: `${v4}.0.2`, v6: `${v6}::2` },
    gateway: { v4: `${v4}.0.1`, v6: `${v6}::1` },
    lanLen: { v4: 24, v6: 64 },
    wan,
    publicAddress: pub,
    behindNat,
  };
}

export type DemoSuite = "aes-128-gcm" | "aes-256-gcm" | "chacha20-poly1305";

export interface Pair {
  a: Site;
  b: Site;
  suite: DemoSuite;
  /** Static keys: SPI of the SA a sends on (b receives), and the reverse. */
  spiAB: number;
  spiBA: number;
  /** IKEv2: the IKE SA's proposal, the ESP one (giving `suite`), and the one side that initiates. */
  ike: { proposal: string; esp: string; initiator: SiteId };
}

function spi(from: SiteId, to: SiteId): number {
  return parseInt(`${from}${to}01`, 16);
}

const PAIR_SUITES: Record<string, DemoSuite> = {
  ab: "aes-128-gcm",
  ac: "aes-256-gcm",
  bc: "chacha20-poly1305",
};

/** Per pair: IKE SA proposal and ESP proposal (strongSwan keywords, docs/ike.md "Algorithms"), the initiator. */
const PAIR_IKE: Record<string, Pair["ike"]> = {
  ab: { proposal: "aes128gcm16-prfsha256-ecp256", esp: "aes128gcm16", initiator: "a" },
  ac: { proposal: "aes256gcm16-prfsha384-ecp256", esp: "aes256gcm16", initiator: "c" },
  bc: { proposal: "chacha20poly1305-prfsha256-curve25519", esp: "chacha20poly1305", initiator: "c" },
};

/** Every unordered pair of sites, each with its suite, static SPIs and IKE plan. */
export const PAIRS: readonly Pair[] = (["ab", "ac", "bc"] as const).map((k) => {
  const a = siteById(k[0] as SiteId);
  const b = siteById(k[1] as SiteId);
  return { a, b, suite: PAIR_SUITES[k], spiAB: spi(a.id, b.id), spiBA: spi(b.id, a.id), ike: PAIR_IKE[k] };
});

/**
 * A site's IKE identity (RFC 7296 §3.5) when its default one, its WAN address,
 * will not do: C's is private (172.16.3.2), and its peers know C only by the
 * NAT's address, so C and its peers agree on a name instead (docs/ike.md).
 */
export function ikeId(s: Site): { type: "fqdn"; value: string } | undefined {
  return s.behindNat ? { type: "fqdn", value: `${s.name}.demo.example` } : undefined;
}

/** How the CEs get their SAs: IKEv2 with pre-shared keys (the default), or static keys in the configs. */
export type DemoMode = "ike" | "static";

export function siteById(id: SiteId): Site {
  const s = SITES.find((x) => x.id === id);
  if (!s) throw new Error(`no site ${id}`);
  return s;
}

/** NAT-keepalive interval (RFC 3948 §2.3) of the site behind the NAT, in seconds. */
export const KEEPALIVE_S = 2; // short, so that even a quick run shows some on the wire

/** The demo's namespace and scratch-dir prefix (a lab tag, host/lab/lab.ts) when none is given. */
export const DEFAULT_PREFIX = "wesp-demo-";

/**
 * The prefix when none is given: `$WESP_NS_PREFIX` + `demo-` when set (each of
 * several concurrent runners has its own; the suffix keeps a demo clear of the
 * runner's other namespaces, which a demo's start would otherwise remove as
 * its leftovers), else `wesp-demo-`.
 */
export function defaultPrefix(env: NodeJS.ProcessEnv = process.env): string {
  return env.WESP_NS_PREFIX ? `${env.WESP_NS_PREFIX}demo-` : DEFAULT_PREFIX;
}

/** Namespace labels (the lab prefixes them). */
export const NS = {
  wan: "wan",
  nat: "nat",
  ce: (s: Site) => `ce-${s.id}`,
  host: (s: Site) => `site-${s.id}`,
} as const;

/** Interface names inside the namespaces (at most 15 bytes, IFNAMSIZ). */
export const IF = {
  bridge: "br0",
  wanPort: (label: string) => `to-${label}`,
  ceWan: "wan",
  ceLan: "lan",
  tun: "wesp0",
  hostLan: "eth0",
  natOutside: "outside",
  natInside: "inside",
} as const;
