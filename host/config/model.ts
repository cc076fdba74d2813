// The normalized configuration model: what `loadConfig` returns after the file
// has passed the JSON Schema (schema.json) and the semantic checks (semantic.ts).
//
// The file uses snake_case; the model uses camelCase, has every default filled
// in, every address parsed to bytes, and every key decoded to a `KeyBytes`.
// It mirrors the CE VPN database of draft-ietf-l3vpn-ce-based-02 §3.1/§5: for
// each peer CE a tuple <peer address, keys, SA info, tunnel info>.
//
// Nothing here is specific to the WASM core; host/pipeline maps a `SaConfig`
// to the core's `addSa` (see the notes on each field for the byte layouts).

import type { KeyBytes } from "./keys.ts";

/** IP version of an address or prefix. */
export type Family = 4 | 6;

/** An IP address with its family and network-order bytes (4 or 16). */
export interface Address {
  /** Canonical text form (IPv6 compressed, lower case). */
  text: string;
  family: Family;
  /** Network byte order; 4 bytes for IPv4, 16 for IPv6. */
  bytes: Uint8Array;
}

/** A CIDR prefix; host bits are guaranteed zero. */
export interface Prefix {
  /** Canonical text, e.g. "10.1.0.0/16", "fd00:1::/48". */
  text: string;
  family: Family;
  /** Network address, network byte order, 4 or 16 bytes, host bits zero. */
  bytes: Uint8Array;
  /** Prefix length: 0..32 (IPv4) or 0..128 (IPv6). */
  length: number;
}

/** An address to put on an interface, with its on-link prefix length (host bits allowed). */
export interface InterfaceAddress {
  /** Text as `ip addr add` takes it, e.g. "10.1.0.1/16". */
  text: string;
  address: Address;
  length: number;
}

/**
 * ESP cipher suites. Key layouts (what `key_in` / `key_out` hold):
 *
 * | suite                     | key_in/key_out                    | auth_key_in/out | ICV |
 * |---------------------------|-----------------------------------|-----------------|-----|
 * | aes-128-gcm               | 16 key ‖ 4 salt (RFC 4106 §8.1)   | —               | 16  |
 * | aes-192-gcm               | 24 key ‖ 4 salt                   | —               | 16  |
 * | aes-256-gcm               | 32 key ‖ 4 salt                   | —               | 16  |
 * | chacha20-poly1305         | 32 key ‖ 4 salt (RFC 7634 §2)     | —               | 16  |
 * | aes-128-cbc-hmac-sha256   | 16 (RFC 3602)                     | 32 (RFC 4868)   | 16  |
 * | aes-256-cbc-hmac-sha256   | 32                                | 32              | 16  |
 * | aes-128-cbc               | 16, no integrity at all           | —               | 0   |
 *
 * See suites.ts for the table in code.
 */
export type Suite =
  | "aes-128-gcm"
  | "aes-192-gcm"
  | "aes-256-gcm"
  | "chacha20-poly1305"
  | "aes-128-cbc-hmac-sha256"
  | "aes-256-cbc-hmac-sha256"
  | "aes-128-cbc";

/**
 * How traffic to a peer is carried.
 * - `tunnel`: ESP tunnel mode (RFC 4303 §3.1.2): the inner packet is the ESP payload.
 * - `transport-ipip`: IP-in-IP (RFC 2003 / RFC 2473) protected by ESP in transport mode
 *   (draft-ietf-l3vpn-ce-based-02 §5, "IPsec in transport mode").
 * - `transport-gre`: GRE (RFC 2784/2890) protected by ESP in transport mode.
 * - `ipip`, `gre`: no ESP at all; only allowed on a `trusted` WAN port (an MPLS VPN,
 *   net2cloud gap analysis §4.1: "forwarded through the MPLS network natively without
 *   any encryption").
 */
export type Mode = "tunnel" | "transport-ipip" | "transport-gre" | "ipip" | "gre";

/** ESP encapsulation on the wire: RFC 3948 UDP encapsulation, or IP protocol 50. */
export type Encap = "udp" | "raw";

/** A WAN port of this CE (one local outer address). */
export interface WanPort {
  name: string;
  /** Local outer address (what we bind to and put in the outer source). */
  address: Address;
  /** Local UDP port for UDP-encapsulated ESP (RFC 3948); default 4500. */
  port: number;
  /** Default ESP encapsulation for peers on this port; default "udp". */
  encap: Encap;
  /** True for MPLS-facing ports where plain `ipip` / `gre` peers are allowed. */
  trusted: boolean;
}

export interface TunConfig {
  /** Interface name, at most 15 bytes (IFNAMSIZ - 1); default "wesp0". */
  name: string;
  /** Interface MTU; default 1400. */
  mtu: number;
  /** Addresses to assign when running privileged; empty = leave the interface alone. */
  addresses: InterfaceAddress[];
  /** Attach to an existing TUN (made with `ip tuntap add … user U`) instead of creating one. */
  persistent: boolean;
  /** How packets are read: "readv" (default) = read(2) per packet; "auto" = multishot io_uring where the kernel allows it, else readv (docs/io.md: not shown faster beyond the noise, so not the default). */
  reader: "auto" | "readv";
}

export interface ControlConfig {
  /** Absolute path of the control socket (mode 0600). */
  socket: string;
}

/** Where the Prometheus metrics listener binds (docs/metrics.md): a TCP address or a Unix socket path. */
export type MetricsListen = { host: string; port: number } | { path: string };

export interface MetricsConfig {
  listen: MetricsListen;
}

export interface NodeConfig {
  name: string;
  wan: WanPort[];
  tun: TunConfig;
  /** Prefixes behind this CE (what peers route to us); may be empty. */
  localPrefixes: Prefix[];
  control: ControlConfig;
  /** Worker threads (one WASM instance each); default = available cores. */
  workers: number;
  /**
   * Where durable per-key sequence state lives (host/sa/seq_store.ts): a
   * restart resumes every static SA past its last reservation, never at 1.
   */
  stateDir: string;
  /**
   * UDP port of IKE proper (RFC 7296 §2: 500), ours on every WAN address an IKE
   * peer uses and the one we send to at the peers; another for unprivileged runs.
   */
  ikePort: number;
  /** Prometheus /metrics listener; absent = off (the default). */
  metrics?: MetricsConfig;
}

/**
 * SA lifetimes (RFC 4301 §4.4.2.1): hard limits (the SA is removed when one is
 * reached; absent = unlimited) and soft ones (a rekey is asked for; absent =
 * at 90 % of the hard one).
 */
export interface Lifetime {
  seconds?: number;
  bytes?: number;
  packets?: number;
  softSeconds?: number;
  softBytes?: number;
  softPackets?: number;
}

/**
 * One SA pair with a peer. `spiIn`/`keyIn` protect what the peer sends us;
 * `spiOut`/`keyOut` what we send it (the peer's `spiIn`).
 */
export interface SaConfig {
  /** Position in the peer's `sas` list. All are accepted inbound; index 0 is the one used outbound. */
  index: number;
  /** SPI we receive on; 256..2^32-1 (0..255 are reserved, RFC 4303 §2.1). Unique on this node. */
  spiIn: number;
  /** SPI we send with; the peer's spi_in. */
  spiOut: number;
  suite: Suite;
  /** Inbound cipher key; AEAD suites carry the 4-byte salt at the end (see `Suite`). */
  keyIn: KeyBytes;
  keyOut: KeyBytes;
  /** HMAC-SHA-256 keys (32 bytes) for the CBC+HMAC suites; undefined otherwise. */
  authKeyIn?: KeyBytes;
  authKeyOut?: KeyBytes;
  /** Anti-replay window in packets: 0 (off) or 32..65536; default 1024. */
  replayWindow: number;
  /** Extended (64-bit) sequence numbers, RFC 4303 §2.2.1; default false. */
  esn: boolean;
  lifetime: Lifetime;
}

export interface GreOptions {
  /** GRE key (RFC 2890 §2.1), 0..2^32-1; undefined = no key field. */
  key?: number;
  /** Send and check GRE sequence numbers (RFC 2890 §2.2); default false. */
  sequence: boolean;
}

export interface PeerConfig {
  name: string;
  /** Outer address of the peer (for a peer behind NAT: its public, translated address). */
  address: Address;
  /** Remote UDP port for UDP-encapsulated ESP; default 4500. */
  port: number;
  /** Name of the WAN port used to reach this peer. */
  wan: string;
  /** Index of that port in `node.wan`. */
  wanIndex: number;
  /**
   * ESP encapsulation actually used to this peer: "udp" when `natT` is true,
   * else the WAN port's `encap`. Meaningless for plain `ipip` / `gre`.
   */
  encap: Encap;
  /**
   * A NAT may sit between us (RFC 3948): ESP goes over UDP, and the peer's
   * address:port is updated from authenticated inbound packets. Resolved from
   * the file's `nat_t: true | false | auto` (auto = true on a UDP port).
   */
  natT: boolean;
  /** Seconds between NAT-keepalives (RFC 3948 §2.3); 0 = none. */
  keepalive: number;
  /**
   * Prefixes reachable through this peer (the SPD selectors); never
   * overlapping another peer's, except between a backup and its primary.
   */
  prefixes: Prefix[];
  /**
   * Traffic between this peer and the other transit peers passes through us
   * (a hub): this peer's local selectors are `local_prefixes` plus every other
   * transit peer's prefixes (config/selectors.ts).
   */
  transit: boolean;
  /**
   * The peer this one backs up (failover, config/selectors.ts): the prefixes
   * they share go to that peer while it has SAs, to this one otherwise.
   */
  backupFor?: string;
  mode: Mode;
  /** Only for `gre` / `transport-gre`. */
  gre: GreOptions;
  /** Path MTU towards the peer (outer packet size limit); undefined = the WAN link's. */
  mtu?: number;
  /**
   * 1 SA pair normally, 2 while rekeying (make before break: both accepted
   * inbound, `sas[0]` used outbound); empty for plain `ipip` / `gre`, and for
   * a peer whose SAs IKEv2 negotiates (`ike`).
   */
  sas: SaConfig[];
  /** IKEv2 (RFC 7296) negotiates this peer's SAs instead of `sas` (host/ike/manager.ts). */
  ike?: IkePeerConfig;
}

/** An IKE identity (RFC 7296 §3.5); a DN as text ("C=CH, O=wesp, CN=ce1"), sent as its DER. */
export interface IkeIdentity {
  type: "ipv4" | "ipv6" | "fqdn" | "rfc822" | "dn";
  value: string;
}

/** A peer's certificate credentials (host/config/ike_certs.ts reads and checks them). */
export interface IkeCertConfig {
  /** Our certificate first, then the intermediates the `cert` file holds. */
  chain: import("node:crypto").X509Certificate[];
  key: import("node:crypto").KeyObject;
  /** The CAs a peer's chain must lead to (`ca`). */
  cas: import("node:crypto").X509Certificate[];
  /** Serial numbers (hex, upper case, no leading zeros) refused in a peer's chain (`revoked_serials`). */
  revokedSerials: string[];
  /** RSA keys sign with RSASSA-PSS instead of PKCS#1 v1.5 (`rsa_pss`, RFC 7427 A.4). */
  rsaPss: boolean;
  /** CRLs from `crl`, each signed by one of `cas` (host/ike/crl.ts). */
  crls: import("../ike/crl.ts").Crl[];
  /** The files, resolved, for messages. */
  files: { cert: string; key: string; ca: string };
}

/** A peer's `ike` block: how its CHILD_SAs are negotiated and kept up (docs/config.md "peers[].ike"). */
export interface IkePeerConfig {
  /** The pre-shared key (AUTH method 2, §2.15): the string's UTF-8 bytes, or decoded hex (`0x…`, or from `psk_file`); empty with `certs`. */
  psk: KeyBytes;
  /** Certificates instead of the PSK (`auth.cert`, `key`, `ca`): RFC 7427 signatures both ways. */
  certs?: IkeCertConfig;
  /** RFC 7383: IKE messages over this many bytes (IP datagram) go as fragments; 0 = no fragmentation; default 1280. */
  fragmentSize?: number;
  /** Our identity; default the WAN port's address. */
  localId: IkeIdentity;
  /** The identity the peer must prove; default its address. */
  remoteId: IkeIdentity;
  /** strongSwan-style proposal strings (host/ike/proposals.ts), most preferred first. */
  proposals: { ike: string[]; esp: string[] };
  lifetime: {
    /** IKE SA rekeyed this long after it was set up, less margin and jitter. */
    ikeSeconds: number;
    /** CHILD_SA hard lifetimes (RFC 4301 §4.4.2.1); rekeyed before them. */
    childSeconds: number;
    childBytes?: number;
    childPackets?: number;
    /** Rekey this many seconds before a hard lifetime … */
    rekeyMargin: number;
    /** … and up to this many seconds earlier still, at random (so two ends rarely collide). */
    rekeyJitter: number;
  };
  /** Seconds of silence before a liveness check (§2.4); 0 = none. */
  dpd: number;
  /** Failed set-ups retried after `min` seconds, doubling up to `max`; an alarm after `alarmAfter` failures (CE §3.4). */
  retry: { min: number; max: number; alarmAfter: number };
  /** Start the IKE SA ourselves (else wait for the peer). */
  initiate: boolean;
}

export interface Config {
  /** Absolute path of the file this came from ("<text>" when parsed from a string). */
  source: string;
  node: NodeConfig;
  peers: PeerConfig[];
}

/** A problem found in a config, located by a path such as `peers[1].sas[0].key_out`. */
export interface ConfigIssue {
  /** JSON-pointer-like path: `.` between fields, `[i]` for list items; "" for the whole file. */
  path: string;
  /** What is wrong; never contains key material. */
  message: string;
  /** 1-based line in the source file, when known. */
  line?: number;
}
