// The VPN database behind one interface. Two implementations share one SQL
// body (sql_store.ts): SQLite for a controller on one machine (the default),
// PostgreSQL for replicas sharing one database, where every change is fanned
// out to every replica (LISTEN/NOTIFY). `openStore` picks one from a URL.
//
// Secrets at rest: enrolment and operator tokens are kept as SHA-256 hashes
// (they are 256-bit random values, so a plain hash is enough); SA keys arrive
// sealed (../keys.ts) and the store never sees them in the clear.
import type {
  CertificateStatus, Change, NewSite, NewVpn, SaRecord, Site, Topology, Vpn, WanPortUpdate,
} from "./model.ts";
import type { ExpireOutcome, RekeySeal, RekeyStep, SaRef } from "./rekey.ts";

export interface SaSeal {
  suite: SaRecord["suite"];
  sealedKey: Uint8Array;
}

export interface Store {
  readonly kind: "sqlite" | "postgres";

  createVpn(v: NewVpn): Promise<Vpn>;
  getVpn(name: string): Promise<Vpn | undefined>;
  listVpns(): Promise<Vpn[]>;
  setTopology(vpn: string, t: Topology): Promise<Vpn>;
  /** Deletes the VPN with its sites, tokens and SAs; false when there was none. */
  deleteVpn(name: string): Promise<boolean>;

  /** Adds a site; refused (StoreError "conflict") when its name or system id is taken, "invalid" when it breaks rules.ts. */
  addSite(vpn: string, s: NewSite): Promise<Site>;
  /**
   * Adds many sites in one transaction (provisioning): all or none, the same
   * rules as addSite, prefixes checked against each other and every site's at
   * once (rules.ts firstOverlap), one version bump; resolves to how many.
   */
  addSites(vpn: string, sites: NewSite[]): Promise<number>;
  getSite(vpn: string, name: string): Promise<Site | undefined>;
  listSites(vpn: string): Promise<Site[]>;
  /** Records what a NAT makes of a WAN port (STUN, or the operator). */
  updateWanPort(vpn: string, site: string, port: string, u: WanPortUpdate): Promise<Site>;
  /** Removes a site, its tokens and every SA it is part of, and revokes its certificates; refused while it is a hub of its VPN. */
  removeSite(vpn: string, name: string): Promise<boolean>;

  /** A one-time token for `site`, valid `ttlMs`; only its hash is kept. */
  createEnrolmentToken(vpn: string, site: string, ttlMs: number): Promise<{ token: string; expiresAt: number }>;
  /** Uses up `token`; StoreError "token-invalid" (saying unknown, used or expired) otherwise. */
  consumeEnrolmentToken(token: string): Promise<{ vpn: string; site: string }>;
  /**
   * Enrolment: uses up `token` and records the certificate `issue` makes for
   * its site, in one transaction — when `issue` throws (a CSR for another
   * name), the token stays unused. StoreError "token-invalid" as above.
   */
  enrol(token: string, issue: (s: { vpn: string; site: string }) => Promise<{ serial: string; notAfter: number }>): Promise<{ vpn: string; site: string }>;
  /** Records a certificate issued to an enrolled site (a renewal). */
  recordCertificate(vpn: string, site: string, serial: string, notAfter: number): Promise<void>;
  /** Whether the CE certificate `serial` (hex) may talk to the CE API, and for which site. */
  certificateStatus(serial: string): Promise<CertificateStatus>;
  /** Revokes every certificate of the site (it must enrol again with a new token); resolves to how many. */
  revokeCertificates(vpn: string, site: string): Promise<number>;
  /** Every revoked serial (for the CRL the TLS server checks). */
  listRevoked(): Promise<{ serial: string; revokedAt: number }[]>;
  /** The revoked, not yet expired serials of the VPN's sites (IKE peers refuse them: render.ts), by site name. */
  revokedSerialsOf(vpn: string): Promise<{ site: string; serial: string }[]>;

  /** A new operator token named `name` (shown once; its hash is kept). */
  createOperatorToken(name: string): Promise<string>;
  /** The name of the operator holding `token`, or undefined. */
  checkOperatorToken(token: string): Promise<string | undefined>;

  /** Every SA of the VPN, keys sealed. */
  listSas(vpn: string): Promise<SaRecord[]>;
  /** The SAs `site` sends or receives on, keys sealed. */
  listSasOf(vpn: string, site: string): Promise<SaRecord[]>;
  /**
   * Makes sure the pair {a, b} has its two SAs of `generation`: when missing,
   * picks an SPI for each direction that its receiver does not use yet and
   * asks `seal` for the key of that direction. Resolves to true when it made them.
   */
  ensureSaPair(vpn: string, a: string, b: string, generation: number, seal: (d: { src: string; dst: string; spi: number }) => SaSeal): Promise<boolean>;
  /**
   * sadb-expire (RFC 9061 §5.3): CE `site` reports that SA `sa` reached a
   * lifetime. For the pair's newest generation, when no rekey runs, makes the
   * next generation ("new": inbound only) with `seal`'s keys (rekey.ts).
   * StoreError "not-found" when `site` neither sends nor receives on it.
   */
  saExpired(vpn: string, site: string, sa: SaRef, seal: RekeySeal): Promise<ExpireOutcome>;
  /**
   * CE `site` applied the config of `version` (≤ the VPN's; "invalid"
   * otherwise); takes the rekey steps both CEs of a pair are now ready for.
   */
  reportApplied(vpn: string, site: string, version: number, seal: RekeySeal): Promise<RekeyStep[]>;
  /** Deletes the SAs of every pair not in `wanted` (unordered site-name pairs); resolves to the number of rows deleted. */
  pruneSas(vpn: string, wanted: Array<[string, string]>): Promise<number>;

  /** Hears every change to any VPN (from every replica, on PostgreSQL); returns the unsubscribe function. */
  watch(listener: (c: Change) => void): () => void;

  /** Tells every replica's watchers that CE `site` of `vpn` (at `version`) is online now (a Change with `online`; nothing is written). */
  announceOnline(vpn: string, version: number, site: string): Promise<void>;
  close(): Promise<void>;
}

export interface OpenOptions {
  log?: (line: string) => void;
  /** The clock, in ms (tests move it to expire tokens). */
  now?: () => number;
}

/**
 * Opens the store at `url`: `postgres://…` / `postgresql://…` for PostgreSQL,
 * `sqlite:PATH`, a plain path, or `:memory:` for SQLite. Creates or migrates
 * the schema (schema.ts).
 */
export async function openStore(url: string, opts: OpenOptions = {}): Promise<Store> {
  const { SqlStore } = await import("./sql_store.ts");
  if (/^postgres(ql)?:\/\//.test(url)) {
    const { PostgresDb } = await import("./postgres.ts");
    return SqlStore.open(await PostgresDb.open({ connectionString: url, log: opts.log }), opts);
  }
  const { SqliteDb } = await import("./sqlite.ts");
  return SqlStore.open(new SqliteDb(url.replace(/^sqlite:/, "")), opts);
}
