// The VPN database's records (draft-ietf-l3vpn-ce-based-02 §3.1: "a new VPN
// entry ... the CE devices belonging to the VPN, and a description of the
// VPN's topology"), as the Store interface (store.ts) hands them out.
//
// Identifiers follow net2cloud §3 ("C-PE Location identifiers, such as Site
// Identifier, System ID, and/or Port ID"): a site has a numeric `siteId`
// (unique in its VPN, given by the controller) and a `systemId` (the CE box,
// unique across the database); each WAN port has a numeric `portId` (unique in
// its site). Names — of VPNs, sites and ports — are what operators type and
// what a CE's config carries (docs/config.md "name": 1–32 of A-Z a-z 0-9 _ . -).

import type { Lifetime } from "../../config/model.ts";

/** net2cloud §3 "NAT properties": the NAT in front of a WAN port (RFC 3489 §5 terms). */
export const NAT_TYPES = ["none", "full-cone", "restricted-cone", "port-restricted-cone", "symmetric", "unknown"] as const;
export type NatType = (typeof NAT_TYPES)[number];

/** Suites the controller makes keys for: AEADs only (docs/config.md "Suites and key sizes"). */
export const CONTROLLER_SUITES = ["aes-256-gcm", "aes-128-gcm", "chacha20-poly1305"] as const;
export type ControllerSuite = (typeof CONTROLLER_SUITES)[number];

/** ESP modes a controller-made VPN uses (docs/config.md "Modes"; plain ipip/gre are not offered). */
export const CONTROLLER_MODES = ["tunnel", "transport-ipip", "transport-gre"] as const;
export type ControllerMode = (typeof CONTROLLER_MODES)[number];

/**
 * How a VPN's SAs are keyed (issue 8 items 2 and 6): `ike` — each pair of CEs
 * negotiates IKEv2 (RFC 7296) with the certificates the controller's CA issued
 * them, so no secret crosses the network; `controller` — the controller makes
 * the keys and pushes them (RFC 9061 IKE-less case).
 */
export const KEYINGS = ["ike", "controller"] as const;
export type Keying = (typeof KEYINGS)[number];

/**
 * SA lifetimes a VPN's CEs enforce (RFC 4301 §4.4.2.1; docs/config.md
 * `lifetime`): at a soft one the CE reports sadb-expire and the controller
 * rekeys; at a hard one the CE removes the SA, rekeyed or not.
 */
export type SaLifetime = Lifetime;

/**
 * Soft 1 h (strongSwan's rekey_time), hard 2 h: the hour between is how long
 * the controller may be out of reach before a pair's traffic stops — in the
 * IKE-less case only the controller makes new keys (RFC 9061 §4.1.2).
 */
export const DEFAULT_SA_LIFETIME: SaLifetime = { softSeconds: 3600, seconds: 7200 };

/**
 * An IKE-keyed VPN's lifetimes become its CEs' `ike.lifetime` (render_ike.ts),
 * within what a CE's IKE accepts (docs/config.md): CHILD_SAs of 10 s to a week,
 * 1 h when the VPN names no hard lifetime in seconds.
 */
export const IKE_LIFETIME = { minSeconds: 10, maxSeconds: 604800, defaultChildSeconds: 3600 } as const;

export type Topology =
  | { kind: "full-mesh" }
  /**
   * Spokes talk to the hub (and to the backup hub when there is one); hubs
   * talk to every spoke and to each other. `dpd`: the IKE liveness interval
   * of its tunnels in seconds (config `ike.dpd`, default 30), which bounds how
   * fast spokes fail over to the backup hub (docs/controller.md item 7).
   */
  | { kind: "hub-and-spoke"; hub: string; backupHub?: string; dpd?: number };

export interface Vpn {
  name: string;
  topology: Topology;
  suite: ControllerSuite;
  mode: ControllerMode;
  keying: Keying;
  /** Lifetimes of its controller-made SAs. */
  saLifetime: SaLifetime;
  /** Change counter: every change to the VPN, its sites or its SAs raises it by one. */
  version: number;
  createdAt: number;
}

export interface NewVpn {
  name: string;
  topology?: Topology;
  suite?: ControllerSuite;
  mode?: ControllerMode;
  /** Default `ike`. Fixed once the VPN exists. */
  keying?: Keying;
  saLifetime?: SaLifetime;
}

/** A WAN port of a CE (net2cloud §3): private side as configured, public side as seen past a NAT. */
export interface WanPort {
  name: string;
  portId: number;
  /** The CE's own address on this port (a private one behind a NAT). */
  privateAddress: string;
  /** The CE's UDP port for ESP-in-UDP (RFC 3948), default 4500. */
  privatePort: number;
  /** The address peers reach it at, when a NAT translates it (learned with STUN later). */
  publicAddress?: string;
  publicPort?: number;
  natType: NatType;
  /** Faces a trusted network (the provider's MPLS VPN) rather than the Internet (net2cloud §4). */
  trusted: boolean;
}

export interface NewWanPort {
  name: string;
  privateAddress: string;
  privatePort?: number;
  publicAddress?: string;
  publicPort?: number;
  natType?: NatType;
  trusted?: boolean;
}

export interface Site {
  vpn: string;
  /** The CE's identity: its node name in the config it gets. */
  name: string;
  siteId: number;
  systemId: string;
  /** Prefixes behind the CE (its config's node.local_prefixes). */
  prefixes: string[];
  wan: WanPort[];
  createdAt: number;
}

export interface NewSite {
  name: string;
  /** Default: `${vpn}/${name}`. */
  systemId?: string;
  prefixes: string[];
  wan: NewWanPort[];
}

/** What a STUN answer or a CE's registration changes on a port. */
export interface WanPortUpdate {
  publicAddress?: string | null;
  publicPort?: number | null;
  natType?: NatType;
}

/**
 * One direction of a controller-made SA pair (RFC 9061 IKE-less case): `src`
 * sends on it, `dst` receives. The key is sealed (keys.ts); the store never
 * sees it in the clear.
 */
export interface SaRecord {
  src: string;
  dst: string;
  /** Rekey generation of the pair (0 first; make-before-break lists two). */
  generation: number;
  /** dst's spi_in: unique among the SAs dst receives on. */
  spi: number;
  suite: ControllerSuite;
  sealedKey: Uint8Array;
  createdAt: number;
  /**
   * Its step of a rekey (RFC 9061 §4.1.2 order): "new" — installed inbound
   * only; "active" — its sender uses it outbound; "old" — inbound only, the
   * outbound traffic moved to the next generation, removed next.
   */
  state: SaState;
}

export const SA_STATES = ["new", "active", "old"] as const;
export type SaState = (typeof SA_STATES)[number];

/**
 * What the store says of a CE certificate: `valid` (issued to that site, which
 * exists), `revoked`, `site-removed` (its site is gone: the CE must drop its
 * VPN state, §3.6), or `unknown` (not issued by this controller's database).
 */
export type CertificateStatus =
  | { status: "valid" | "revoked" | "site-removed"; vpn: string; site: string; notAfter: number }
  | { status: "unknown" };

/** A change notification: `vpn` is now at `version` (a deleted VPN reports version -1). */
export interface Change {
  vpn: string;
  version: number;
  /**
   * Set: no change at all, but CE `online` of the VPN just opened its push
   * channel (store.announceOnline) — the peers that must initiate towards it
   * are told to try now (api/ce_api.ts). The VPN's version did not move.
   */
  online?: string;
}

export type StoreErrorCode = "not-found" | "conflict" | "invalid" | "token-invalid";

/** A refusal the API turns into a 4xx: `code` says which. Messages never carry secrets. */
export class StoreError extends Error {
  constructor(readonly code: StoreErrorCode, message: string) {
    super(message);
    this.name = "StoreError";
  }
}
