// The Store (store.ts) over either database (db.ts): one body of SQL for
// SQLite and PostgreSQL. Every change runs in one transaction that raises its
// VPN's version and announces it (Db.notify) only if it commits.
import { createHash, randomBytes, randomInt, timingSafeEqual } from "node:crypto";
import type { Db, Sql } from "./db.ts";
import { UniqueViolation } from "./db.ts";
import {
  DEFAULT_SA_LIFETIME, StoreError, type CertificateStatus, type SaLifetime, type SaState, type Change, type NewSite, type NewVpn, type SaRecord, type Site, type Topology, type Vpn, type WanPort, type WanPortUpdate,
} from "./model.ts";
import { checkName, checkNewSite, checkNewVpn, checkPortUpdate, checkTopology, firstOverlap } from "./rules.ts";
import { parsePrefix } from "../../config/addr.ts";
import { SCHEMA_VERSION, migrationsFor } from "./schema.ts";
import type { OpenOptions, SaSeal, Store } from "./store.ts";
import { reportApplied, saExpired, type ExpireOutcome, type RekeyCtx, type RekeySeal, type RekeyStep, type SaRef } from "./rekey.ts";

/** Serialises migrations of replicas that start together (pg_advisory_xact_lock). */
const MIGRATION_LOCK = 0x77657370; // "wesp"
/** SPIs 0–255 are reserved (RFC 4303 §2.1). */
const SPI_MIN = 256;
const SPI_MAX = 0xffffffff;

export interface VpnRow { id: number; name: string; topology: string; suite: string; mode: string; keying: string; version: number; created_at: number; sa_lifetime: string | null }
export interface SiteRow { id: number; name: string; site_id: number; system_id: string; prefixes: string; created_at: number }
interface PortRow {
  site_ref: number; name: string; port_id: number; private_address: string; private_port: number;
  public_address: string | null; public_port: number | null; nat_type: string; trusted: number;
}
interface SaRow { src: string; dst: string; generation: number; spi: number; suite: string; sealed_key: Uint8Array; created_at: number; state: string }

export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** A 256-bit random token with a prefix saying what it is for. */
export function newToken(kind: "enrol" | "op"): string {
  return `wesp-${kind}-${randomBytes(32).toString("base64url")}`;
}

function vpnOf(r: VpnRow): Vpn {
  return {
    name: r.name, topology: JSON.parse(r.topology) as Topology, suite: r.suite as Vpn["suite"], mode: r.mode as Vpn["mode"],
    keying: r.keying as Vpn["keying"], version: Number(r.version), createdAt: Number(r.created_at),
    saLifetime: r.sa_lifetime === null ? { ...DEFAULT_SA_LIFETIME } : JSON.parse(r.sa_lifetime) as SaLifetime,
  };
}

function portOf(r: PortRow): WanPort {
  return {
    name: r.name, portId: r.port_id, privateAddress: r.private_address, privatePort: r.private_port,
    ...(r.public_address !== null ? { publicAddress: r.public_address } : {}),
    ...(r.public_port !== null ? { publicPort: r.public_port } : {}),
    natType: r.nat_type as WanPort["natType"], trusted: Number(r.trusted) === 1,
  };
}

function saOf(r: SaRow): SaRecord {
  return {
    src: r.src, dst: r.dst, generation: r.generation, spi: Number(r.spi), suite: r.suite as SaRecord["suite"],
    sealedKey: new Uint8Array(r.sealed_key), createdAt: Number(r.created_at), state: r.state as SaState,
  };
}

function notFound(what: string): never {
  throw new StoreError("not-found", `${what} not found`);
}

export class SqlStore implements Store {
  private constructor(private readonly db: Db, private readonly now: () => number) {}

  get kind(): "sqlite" | "postgres" {
    return this.db.dialect;
  }

  /** Migrates `db` to SCHEMA_VERSION (refusing a newer one) and wraps it. */
  static async open(db: Db, opts: OpenOptions = {}): Promise<SqlStore> {
    try {
      await migrate(db);
    } catch (e) {
      await db.close();
      throw e;
    }
    return new SqlStore(db, opts.now ?? Date.now);
  }

  private async vpnRow(q: Sql, name: string): Promise<VpnRow> {
    return (await q.get<VpnRow>("SELECT * FROM vpns WHERE name = ?", [name])) ?? notFound(`VPN "${name}"`);
  }

  /**
   * The VPN's row, locked until the transaction ends: changes to one VPN go one
   * at a time (on PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises every
   * writer), so two replicas making the same pair's SAs in opposite orders
   * wait for each other instead of deadlocking.
   */
  private async lockVpn(q: Sql, name: string): Promise<VpnRow> {
    const lock = this.db.dialect === "postgres" ? " FOR UPDATE" : "";
    return (await q.get<VpnRow>(`SELECT * FROM vpns WHERE name = ?${lock}`, [name])) ?? notFound(`VPN "${name}"`);
  }

  private async siteRow(q: Sql, vpnId: number, name: string): Promise<SiteRow> {
    return (await q.get<SiteRow>("SELECT * FROM sites WHERE vpn_id = ? AND name = ?", [vpnId, name])) ?? notFound(`site "${name}"`);
  }

  /** Raises the VPN's version and announces it once the transaction commits. */
  private async bump(q: Sql, vpn: VpnRow): Promise<number> {
    const r = await q.get<{ version: number }>("UPDATE vpns SET version = version + 1 WHERE id = ? RETURNING version", [vpn.id]);
    const change: Change = { vpn: vpn.name, version: Number(r!.version) };
    await this.db.notify(q, change);
    return change.version;
  }

  private async sitesOf(q: Sql, vpn: VpnRow): Promise<Site[]> {
    const sites = await q.all<SiteRow>("SELECT * FROM sites WHERE vpn_id = ? ORDER BY site_id", [vpn.id]);
    const ports = await q.all<PortRow>(
      "SELECT p.* FROM wan_ports p JOIN sites s ON s.id = p.site_ref WHERE s.vpn_id = ? ORDER BY p.site_ref, p.port_id", [vpn.id]);
    const bySite = new Map<number, WanPort[]>();
    for (const p of ports) bySite.set(Number(p.site_ref), [...(bySite.get(Number(p.site_ref)) ?? []), portOf(p)]);
    return sites.map((s) => ({
      vpn: vpn.name, name: s.name, siteId: s.site_id, systemId: s.system_id, prefixes: JSON.parse(s.prefixes) as string[],
      wan: bySite.get(Number(s.id)) ?? [], createdAt: Number(s.created_at),
    }));
  }

  async createVpn(v: NewVpn): Promise<Vpn> {
    const c = checkNewVpn(v);
    return this.db.tx(async (q) => {
      if (await q.get("SELECT 1 AS x FROM vpns WHERE name = ?", [c.name])) throw new StoreError("conflict", `VPN "${c.name}" exists`);
      await q.run("INSERT INTO vpns (name, topology, suite, mode, keying, version, created_at, sa_lifetime) VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
        [c.name, JSON.stringify(c.topology), c.suite, c.mode, c.keying, this.now(), JSON.stringify(c.saLifetime)]);
      const row = await this.vpnRow(q, c.name);
      await this.bump(q, row);
      return vpnOf(await this.vpnRow(q, c.name));
    });
  }

  async getVpn(name: string): Promise<Vpn | undefined> {
    const r = await this.db.get<VpnRow>("SELECT * FROM vpns WHERE name = ?", [name]);
    return r && vpnOf(r);
  }

  async listVpns(): Promise<Vpn[]> {
    return (await this.db.all<VpnRow>("SELECT * FROM vpns ORDER BY name")).map(vpnOf);
  }

  async setTopology(vpn: string, t: Topology): Promise<Vpn> {
    const topology = checkTopology(t);
    return this.db.tx(async (q) => {
      const row = await this.lockVpn(q, vpn);
      await q.run("UPDATE vpns SET topology = ? WHERE id = ?", [JSON.stringify(topology), row.id]);
      await this.bump(q, row);
      return vpnOf(await this.vpnRow(q, vpn));
    });
  }

  async deleteVpn(name: string): Promise<boolean> {
    return this.db.tx(async (q) => {
      const row = await q.get<VpnRow>("SELECT * FROM vpns WHERE name = ?", [name]);
      if (!row) return false;
      await q.run("UPDATE ce_certificates SET revoked_at = ? WHERE vpn = ? AND revoked_at IS NULL", [this.now(), name]);
      await q.run("DELETE FROM vpns WHERE id = ?", [row.id]);
      await this.db.notify(q, { vpn: name, version: -1 });
      return true;
    });
  }

  async addSite(vpn: string, s: NewSite): Promise<Site> {
    return this.db.tx(async (q) => {
      const row = await this.lockVpn(q, vpn);
      const c = checkNewSite(vpn, s, await this.sitesOf(q, row));
      if (await q.get("SELECT 1 AS x FROM sites WHERE vpn_id = ? AND name = ?", [row.id, c.name])) {
        throw new StoreError("conflict", `site "${c.name}" exists in VPN "${vpn}"`);
      }
      const ins = await this.insertSite(q, row, c);
      await this.bump(q, row);
      // The new site alone: re-reading every site of a 10,000-site VPN doubled the cost of each add.
      return { vpn, name: c.name, siteId: ins.siteId, systemId: c.systemId, prefixes: c.prefixes, wan: await this.portsOf(q, ins.id), createdAt: ins.createdAt };
    });
  }

  /** Inserts a checked site and its ports (its system id must be free in the whole database). */
  private async insertSite(q: Sql, row: VpnRow, c: Required<NewSite>): Promise<{ id: number; siteId: number; createdAt: number }> {
    if (await q.get("SELECT 1 AS x FROM sites WHERE system_id = ?", [c.systemId])) {
      throw new StoreError("conflict", `system id "${c.systemId}" belongs to another site`);
    }
    const n = await q.get<{ next_site_id: number }>(
      "UPDATE vpns SET next_site_id = next_site_id + 1 WHERE id = ? RETURNING next_site_id", [row.id]);
    const siteId = Number(n!.next_site_id) - 1;
    const createdAt = this.now();
    const ins = await q.get<{ id: number }>(
      "INSERT INTO sites (vpn_id, name, site_id, system_id, prefixes, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
      [row.id, c.name, siteId, c.systemId, JSON.stringify(c.prefixes), createdAt]);
    let portId = 0;
    for (const w of c.wan) {
      await q.run(
        `INSERT INTO wan_ports (site_ref, name, port_id, private_address, private_port, public_address, public_port, nat_type, trusted)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        [Number(ins!.id), w.name, ++portId, w.privateAddress, w.privatePort!, w.publicAddress ?? null, w.publicPort ?? null,
          w.natType!, w.trusted ? 1 : 0]);
    }
    return { id: Number(ins!.id), siteId, createdAt };
  }

  private async portsOf(q: Sql, siteRef: number): Promise<WanPort[]> {
    return (await q.all<PortRow>("SELECT * FROM wan_ports WHERE site_ref = ? ORDER BY port_id", [siteRef])).map(portOf);
  }

  async addSites(vpn: string, list: NewSite[]): Promise<number> {
    if (list.length === 0) return 0;
    return this.db.tx(async (q) => {
      const row = await this.lockVpn(q, vpn);
      const have = await q.all<{ name: string; prefixes: string }>("SELECT name, prefixes FROM sites WHERE vpn_id = ?", [row.id]);
      const names = new Set(have.map((h) => h.name));
      const systemIds = new Set<string>();
      const checked = list.map((s) => {
        const c = checkNewSite(vpn, s, []);
        if (names.has(c.name)) throw new StoreError("conflict", `site "${c.name}" exists in VPN "${vpn}"`);
        if (systemIds.has(c.systemId)) throw new StoreError("conflict", `system id "${c.systemId}" given twice`);
        names.add(c.name);
        systemIds.add(c.systemId);
        return c;
      });
      const tagged = [...have.map((h) => ({ name: h.name, prefixes: JSON.parse(h.prefixes) as string[] })), ...checked]
        .flatMap((x) => x.prefixes.map((t) => ({ site: x.name, prefix: parsePrefix(t) })))
        .flatMap((x) => (x.prefix.ok ? [{ site: x.site, prefix: x.prefix.value }] : []));
      const clash = firstOverlap(tagged);
      if (clash) {
        throw new StoreError("invalid", `prefixes: ${clash[1].prefix.text} of site "${clash[1].site}" overlaps ${clash[0].prefix.text} of site "${clash[0].site}": a CE could not tell the two peers apart`);
      }
      for (const c of checked) await this.insertSite(q, row, c);
      await this.bump(q, row);
      return checked.length;
    });
  }

  async getSite(vpn: string, name: string): Promise<Site | undefined> {
    return this.db.tx(async (q) => {
      const row = await q.get<VpnRow>("SELECT * FROM vpns WHERE name = ?", [vpn]);
      return row ? (await this.sitesOf(q, row)).find((s) => s.name === name) : undefined;
    });
  }

  async listSites(vpn: string): Promise<Site[]> {
    return this.db.tx(async (q) => this.sitesOf(q, await this.vpnRow(q, vpn)));
  }

  async updateWanPort(vpn: string, site: string, port: string, u: WanPortUpdate): Promise<Site> {
    const c = checkPortUpdate(u);
    return this.db.tx(async (q) => {
      const row = await this.lockVpn(q, vpn);
      const s = await this.siteRow(q, row.id, site);
      const sets: string[] = [];
      const params: (string | number | null)[] = [];
      if (c.publicAddress !== undefined) (sets.push("public_address = ?"), params.push(c.publicAddress));
      if (c.publicPort !== undefined) (sets.push("public_port = ?"), params.push(c.publicPort));
      if (c.natType !== undefined) (sets.push("nat_type = ?"), params.push(c.natType));
      if (sets.length) {
        const n = await q.run(`UPDATE wan_ports SET ${sets.join(", ")} WHERE site_ref = ? AND name = ?`, [...params, s.id, port]);
        if (n === 0) notFound(`WAN port "${port}" of site "${site}"`);
        await this.bump(q, row);
      } else if (!(await q.get("SELECT 1 AS x FROM wan_ports WHERE site_ref = ? AND name = ?", [s.id, port]))) {
        notFound(`WAN port "${port}" of site "${site}"`);
      }
      return (await this.sitesOf(q, row)).find((x) => x.name === site)!;
    });
  }

  async removeSite(vpn: string, name: string): Promise<boolean> {
    return this.db.tx(async (q) => {
      const row = await this.lockVpn(q, vpn);
      const t = JSON.parse(row.topology) as Topology;
      if (t.kind === "hub-and-spoke" && (t.hub === name || t.backupHub === name)) {
        throw new StoreError("conflict", `site "${name}" is a hub of VPN "${vpn}": change the topology first`);
      }
      const site = await q.get<{ id: number }>("SELECT id FROM sites WHERE vpn_id = ? AND name = ?", [row.id, name]);
      if (!site) return false;
      await q.run("UPDATE ce_certificates SET revoked_at = ? WHERE site_ref = ? AND revoked_at IS NULL", [this.now(), site.id]);
      await q.run("DELETE FROM sites WHERE id = ?", [site.id]);
      await this.bump(q, row);
      return true;
    });
  }

  async createEnrolmentToken(vpn: string, site: string, ttlMs: number): Promise<{ token: string; expiresAt: number }> {
    if (!Number.isInteger(ttlMs) || ttlMs < 1000 || ttlMs > 30 * 86400_000) {
      throw new StoreError("invalid", "ttl: 1 s .. 30 days");
    }
    return this.db.tx(async (q) => {
      const s = await this.siteRow(q, (await this.vpnRow(q, vpn)).id, site);
      const token = newToken("enrol");
      const now = this.now();
      await q.run("INSERT INTO enrolment_tokens (hash, site_ref, expires_at, used_at, created_at) VALUES (?, ?, ?, NULL, ?)",
        [hashToken(token), s.id, now + ttlMs, now]);
      return { token, expiresAt: now + ttlMs };
    });
  }

  consumeEnrolmentToken(token: string): Promise<{ vpn: string; site: string }> {
    return this.enrol(token, undefined);
  }

  async enrol(token: string, issue?: (s: { vpn: string; site: string }) => Promise<{ serial: string; notAfter: number }>): Promise<{ vpn: string; site: string }> {
    if (typeof token !== "string" || token.length > 256) throw new StoreError("token-invalid", "enrolment token unknown");
    const hash = hashToken(token);
    return this.db.tx(async (q) => {
      const now = this.now();
      const r = await q.get<{ hash: string; site_ref: number; vpn: string; site: string }>(
        `UPDATE enrolment_tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL AND expires_at > ?
         RETURNING hash, site_ref, (SELECT v.name FROM sites s JOIN vpns v ON v.id = s.vpn_id WHERE s.id = site_ref) AS vpn,
                   (SELECT s.name FROM sites s WHERE s.id = site_ref) AS site`, [now, hash, now]);
      // The lookup is by hash, so timing tells nothing about the token; compare again anyway.
      if (r && timingSafeEqual(Buffer.from(r.hash), Buffer.from(hash))) {
        const site = { vpn: r.vpn, site: r.site };
        if (issue) {
          const c = await issue(site);
          await q.run("INSERT INTO ce_certificates (serial, site_ref, vpn, site, not_after, revoked_at, created_at) VALUES (?, ?, ?, ?, ?, NULL, ?)",
            [c.serial.toLowerCase(), Number(r.site_ref), r.vpn, r.site, c.notAfter, now]);
        }
        return site;
      }
      const t = await q.get<{ used_at: number | null; expires_at: number }>(
        "SELECT used_at, expires_at FROM enrolment_tokens WHERE hash = ?", [hash]);
      if (!t) throw new StoreError("token-invalid", "enrolment token unknown");
      if (t.used_at !== null) throw new StoreError("token-invalid", "enrolment token already used");
      throw new StoreError("token-invalid", "enrolment token expired");
    });
  }

  async recordCertificate(vpn: string, site: string, serial: string, notAfter: number): Promise<void> {
    await this.db.tx(async (q) => {
      const s = await this.siteRow(q, (await this.vpnRow(q, vpn)).id, site);
      await q.run("INSERT INTO ce_certificates (serial, site_ref, vpn, site, not_after, revoked_at, created_at) VALUES (?, ?, ?, ?, ?, NULL, ?)",
        [serial.toLowerCase(), s.id, vpn, site, notAfter, this.now()]);
    });
  }

  async certificateStatus(serial: string): Promise<CertificateStatus> {
    if (typeof serial !== "string" || !/^[0-9a-fA-F]{1,40}$/.test(serial)) return { status: "unknown" };
    const r = await this.db.get<{ site_ref: number; vpn: string; site: string; not_after: number; revoked_at: number | null; live: number | null }>(
      `SELECT c.site_ref, c.vpn, c.site, c.not_after, c.revoked_at, (SELECT 1 FROM sites s WHERE s.id = c.site_ref) AS live
       FROM ce_certificates c WHERE c.serial = ?`, [serial.toLowerCase()]);
    if (!r) return { status: "unknown" };
    const status = r.live === null ? "site-removed" : r.revoked_at !== null ? "revoked" : "valid";
    return { status, vpn: r.vpn, site: r.site, notAfter: Number(r.not_after) };
  }

  async revokeCertificates(vpn: string, site: string): Promise<number> {
    return this.db.tx(async (q) => {
      const row = await this.lockVpn(q, vpn);
      const s = await this.siteRow(q, row.id, site);
      const n = await q.run("UPDATE ce_certificates SET revoked_at = ? WHERE site_ref = ? AND revoked_at IS NULL", [this.now(), s.id]);
      if (n > 0) await this.bump(q, row);
      return n;
    });
  }

  async listRevoked(): Promise<{ serial: string; revokedAt: number }[]> {
    const rows = await this.db.all<{ serial: string; revoked_at: number }>(
      "SELECT serial, revoked_at FROM ce_certificates WHERE revoked_at IS NOT NULL ORDER BY serial");
    return rows.map((r) => ({ serial: r.serial, revokedAt: Number(r.revoked_at) }));
  }

  async revokedSerialsOf(vpn: string): Promise<{ site: string; serial: string }[]> {
    return this.db.all<{ site: string; serial: string }>(
      "SELECT site, serial FROM ce_certificates WHERE vpn = ? AND revoked_at IS NOT NULL AND not_after > ? ORDER BY site, serial", [vpn, this.now()]);
  }

  async createOperatorToken(name: string): Promise<string> {
    checkName("operator name", name);
    const token = newToken("op");
    await this.db.tx(async (q) => {
      if (await q.get("SELECT 1 AS x FROM operator_tokens WHERE name = ?", [name])) {
        throw new StoreError("conflict", `operator "${name}" exists`);
      }
      await q.run("INSERT INTO operator_tokens (hash, name, created_at) VALUES (?, ?, ?)", [hashToken(token), name, this.now()]);
    });
    return token;
  }

  async checkOperatorToken(token: string): Promise<string | undefined> {
    if (typeof token !== "string" || token.length > 256) return undefined;
    const hash = hashToken(token);
    const r = await this.db.get<{ hash: string; name: string }>("SELECT hash, name FROM operator_tokens WHERE hash = ?", [hash]);
    // The lookup is by hash, so timing tells nothing about the token; compare again anyway.
    return r && timingSafeEqual(Buffer.from(r.hash), Buffer.from(hash)) ? r.name : undefined;
  }

  private static readonly SA_SELECT = `SELECT a.name AS src, b.name AS dst, x.generation, x.spi, x.suite, x.sealed_key, x.created_at, x.state
    FROM sas x JOIN sites a ON a.id = x.src_site JOIN sites b ON b.id = x.dst_site`;

  async listSas(vpn: string): Promise<SaRecord[]> {
    return this.db.tx(async (q) => {
      const row = await this.vpnRow(q, vpn);
      return (await q.all<SaRow>(`${SqlStore.SA_SELECT} WHERE x.vpn_id = ? ORDER BY a.name, b.name, x.generation`, [row.id])).map(saOf);
    });
  }

  async listSasOf(vpn: string, site: string): Promise<SaRecord[]> {
    return this.db.tx(async (q) => {
      const s = await this.siteRow(q, (await this.vpnRow(q, vpn)).id, site);
      return (await q.all<SaRow>(`${SqlStore.SA_SELECT} WHERE x.src_site = ? OR x.dst_site = ? ORDER BY a.name, b.name, x.generation`,
        [s.id, s.id])).map(saOf);
    });
  }

  async ensureSaPair(vpn: string, a: string, b: string, generation: number, seal: (d: { src: string; dst: string; spi: number }) => SaSeal): Promise<boolean> {
    if (a === b) throw new StoreError("invalid", "an SA pair needs two different sites");
    return this.db.tx(async (q) => {
      const row = await this.lockVpn(q, vpn);
      const sa = await this.siteRow(q, row.id, a);
      const sb = await this.siteRow(q, row.id, b);
      // A pair rekeyed past `generation` has it already (its generation 0 may be gone: rekey.ts).
      const have = await q.all<{ src_site: number }>(
        "SELECT DISTINCT src_site FROM sas WHERE generation >= ? AND ((src_site = ? AND dst_site = ?) OR (src_site = ? AND dst_site = ?))",
        [generation, sa.id, sb.id, sb.id, sa.id]);
      if (have.length === 2) return false;
      const now = this.now();
      for (const [src, dst] of [[sa, sb], [sb, sa]] as const) {
        if (have.some((h) => Number(h.src_site) === Number(src.id))) continue;
        const spi = await this.freeSpi(q, dst.id);
        const s = seal({ src: src.name, dst: dst.name, spi });
        await q.run(
          "INSERT INTO sas (vpn_id, src_site, dst_site, generation, spi, suite, sealed_key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
          [row.id, src.id, dst.id, generation, spi, s.suite, s.sealedKey, now]);
      }
      await this.bump(q, row);
      return true;
    });
  }

  saExpired(vpn: string, site: string, sa: SaRef, seal: RekeySeal): Promise<ExpireOutcome> {
    return this.db.tx(async (q) => {
      const row = await this.lockVpn(q, vpn);
      return saExpired(this.rekeyCtx(q), row, vpnOf(row).saLifetime, site, sa, seal);
    });
  }

  reportApplied(vpn: string, site: string, version: number, seal: RekeySeal): Promise<RekeyStep[]> {
    return this.db.tx(async (q) => reportApplied(this.rekeyCtx(q), await this.lockVpn(q, vpn), site, version, seal));
  }

  private rekeyCtx(q: Sql): RekeyCtx {
    return { q, now: this.now(), bump: (row) => this.bump(q, row), freeSpi: (dst) => this.freeSpi(q, dst), siteRow: (id, name) => this.siteRow(q, id, name) };
  }

  /** A random SPI that site `dst` does not receive on yet (a race with another replica ends in UniqueViolation, and the transaction runs again). */
  private async freeSpi(q: Sql, dst: number): Promise<number> {
    for (let i = 0; i < 64; i++) {
      const spi = randomInt(SPI_MIN, SPI_MAX + 1);
      if (!(await q.get("SELECT 1 AS x FROM sas WHERE dst_site = ? AND spi = ?", [dst, spi]))) return spi;
    }
    throw new UniqueViolation("sas.dst_site, sas.spi");
  }

  async pruneSas(vpn: string, wanted: Array<[string, string]>): Promise<number> {
    const keep = new Set(wanted.map(([x, y]) => (x < y ? `${x}\n${y}` : `${y}\n${x}`)));
    return this.db.tx(async (q) => {
      const row = await this.lockVpn(q, vpn);
      const pairs = await q.all<{ src: string; dst: string; src_site: number; dst_site: number }>(
        `SELECT DISTINCT a.name AS src, b.name AS dst, x.src_site, x.dst_site FROM sas x
         JOIN sites a ON a.id = x.src_site JOIN sites b ON b.id = x.dst_site WHERE x.vpn_id = ?`, [row.id]);
      let n = 0;
      for (const p of pairs) {
        const k = p.src < p.dst ? `${p.src}\n${p.dst}` : `${p.dst}\n${p.src}`;
        if (!keep.has(k)) n += await q.run("DELETE FROM sas WHERE src_site = ? AND dst_site = ?", [p.src_site, p.dst_site]);
      }
      if (n > 0) await this.bump(q, row);
      return n;
    });
  }

  watch(listener: (c: Change) => void): () => void {
    return this.db.subscribe(listener);
  }

  async announceOnline(vpn: string, version: number, site: string): Promise<void> {
    await this.db.tx((q) => this.db.notify(q, { vpn, version, online: site }));
  }

  close(): Promise<void> {
    return this.db.close();
  }
}

async function migrate(db: Db): Promise<void> {
  await db.tx(async (q) => {
    if (db.dialect === "postgres") await q.get("SELECT pg_advisory_xact_lock(?)", [MIGRATION_LOCK]);
    await q.run("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)");
    const r = await q.get<{ v: number | null }>("SELECT MAX(version) AS v FROM schema_migrations");
    const at = Number(r?.v ?? 0);
    if (at > SCHEMA_VERSION) {
      throw new StoreError("invalid", `the database is at schema version ${at}, newer than this wesp's ${SCHEMA_VERSION}: upgrade wesp`);
    }
    const all = migrationsFor(db.dialect);
    for (let v = at + 1; v <= SCHEMA_VERSION; v++) {
      for (const stmt of all[v - 1]) await q.run(stmt);
      await q.run("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", [v, Date.now()]);
    }
  });
}
