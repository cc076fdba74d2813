// The VPN database's schema, as numbered migrations written once for both
// dialects: `{id}` is the row id column and `{blob}` a byte string, spelled
// per dialect by `migrationsFor`. Times are milliseconds since the epoch
// (BIGINT), booleans 0/1, lists JSON text. A migration is never edited once
// released: changes are new entries at the end.
//
//   vpns ─┬─< sites ─┬─< wan_ports
//         │          ├─< enrolment_tokens     (SHA-256 of the token, never the token)
//         └─< sas >──┘  src_site, dst_site    (one row per direction; sealed key; rekey step)
//   operator_tokens                             (SHA-256 of the token)
//   ce_certificates                             (serials the CA issued; revoked_at)
//   schema_migrations                           (applied versions)

const MIGRATIONS: readonly string[] = [
  // 1: VPNs, sites, WAN ports, controller-made SAs, enrolment and operator tokens.
  `CREATE TABLE vpns (
     id {id},
     name TEXT NOT NULL UNIQUE,
     topology TEXT NOT NULL,
     suite TEXT NOT NULL,
     mode TEXT NOT NULL,
     version BIGINT NOT NULL DEFAULT 0,
     next_site_id INTEGER NOT NULL DEFAULT 1,
     created_at BIGINT NOT NULL
   );
   CREATE TABLE sites (
     id {id},
     vpn_id BIGINT NOT NULL REFERENCES vpns(id) ON DELETE CASCADE,
     name TEXT NOT NULL,
     site_id INTEGER NOT NULL,
     system_id TEXT NOT NULL UNIQUE,
     prefixes TEXT NOT NULL,
     created_at BIGINT NOT NULL,
     UNIQUE (vpn_id, name),
     UNIQUE (vpn_id, site_id)
   );
   CREATE TABLE wan_ports (
     site_ref BIGINT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
     name TEXT NOT NULL,
     port_id INTEGER NOT NULL,
     private_address TEXT NOT NULL,
     private_port INTEGER NOT NULL,
     public_address TEXT,
     public_port INTEGER,
     nat_type TEXT NOT NULL,
     trusted INTEGER NOT NULL,
     PRIMARY KEY (site_ref, name),
     UNIQUE (site_ref, port_id)
   );
   CREATE TABLE sas (
     vpn_id BIGINT NOT NULL REFERENCES vpns(id) ON DELETE CASCADE,
     src_site BIGINT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
     dst_site BIGINT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
     generation INTEGER NOT NULL,
     spi BIGINT NOT NULL,
     suite TEXT NOT NULL,
     sealed_key {blob} NOT NULL,
     created_at BIGINT NOT NULL,
     PRIMARY KEY (src_site, dst_site, generation),
     UNIQUE (dst_site, spi)
   );
   CREATE INDEX sas_vpn ON sas (vpn_id);
   CREATE TABLE enrolment_tokens (
     hash TEXT PRIMARY KEY,
     site_ref BIGINT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
     expires_at BIGINT NOT NULL,
     used_at BIGINT,
     created_at BIGINT NOT NULL
   );
   CREATE TABLE operator_tokens (
     hash TEXT PRIMARY KEY,
     name TEXT NOT NULL UNIQUE,
     created_at BIGINT NOT NULL
   );`,
  // 2: certificates issued to CEs (host/controller/ca.ts). No foreign key to
  // sites: a removed site's serials stay, revoked, and a site re-added under
  // the same name is a new site_ref that its old certificates do not match.
  `CREATE TABLE ce_certificates (
     serial TEXT PRIMARY KEY,
     site_ref BIGINT NOT NULL,
     vpn TEXT NOT NULL,
     site TEXT NOT NULL,
     not_after BIGINT NOT NULL,
     revoked_at BIGINT,
     created_at BIGINT NOT NULL
   );
   CREATE INDEX ce_certificates_site ON ce_certificates (site_ref)`,
  // 3: how a VPN is keyed (model.ts KEYINGS). VPNs made before it had only
  // controller-made keys; new ones default to IKE (rules.ts checkNewVpn).
  `ALTER TABLE vpns ADD COLUMN keying TEXT NOT NULL DEFAULT 'controller'`,
  // 4: controller-driven rekeying (RFC 9061 §4.1.2, the IKE-less case). Each
  // VPN's SA lifetimes (JSON, NULL = the default); the config version each CE
  // last reported applied; per SA its step of the rekey — 'new' (installed
  // inbound only), 'active' (its sender uses it outbound), 'old' (inbound
  // only, outbound moved on) — with the version that step began at, and when
  // a CE reported its soft lifetime reached (sadb-expire). VPNs made before
  // get a soft lifetime only: a hard one would end at once every SA older
  // than it (CEs count from the key's first use), before its rekey.
  `ALTER TABLE vpns ADD COLUMN sa_lifetime TEXT;
   UPDATE vpns SET sa_lifetime = '{"softSeconds":3600}';
   ALTER TABLE sites ADD COLUMN applied_version BIGINT NOT NULL DEFAULT 0;
   ALTER TABLE sas ADD COLUMN state TEXT NOT NULL DEFAULT 'active';
   ALTER TABLE sas ADD COLUMN state_version BIGINT NOT NULL DEFAULT 0;
   ALTER TABLE sas ADD COLUMN expired_at BIGINT`,
];

/** The schema version this build writes and reads. */
export const SCHEMA_VERSION = MIGRATIONS.length;

const TYPES = {
  sqlite: { id: "INTEGER PRIMARY KEY AUTOINCREMENT", blob: "BLOB" },
  postgres: { id: "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", blob: "BYTEA" },
} as const;

/** Migration `i` (1-based) as statements of `dialect`, one per element. */
export function migrationsFor(dialect: "sqlite" | "postgres"): string[][] {
  const t = TYPES[dialect];
  return MIGRATIONS.map((m) =>
    m.replaceAll("{id}", t.id).replaceAll("{blob}", t.blob).split(";").map((s) => s.trim()).filter(Boolean),
  );
}
