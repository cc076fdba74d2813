// The controller's VPN database (host/controller/store/): one contract suite
// run against both implementations — SQLite always, PostgreSQL against a real
// server this file starts in a temp dir (host/lab/pg_cluster.ts).
// Plus what only one of them has: a SQLite file survives a reopen; two
// PostgreSQL replicas hear each other's changes (LISTEN/NOTIFY).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import Database from "better-sqlite3";
import { openStore, type OpenOptions, type Store } from "../../host/controller/store/store.ts";
import { StoreError, type Change, type NewSite } from "../../host/controller/store/model.ts";
import { SCHEMA_VERSION, migrationsFor } from "../../host/controller/store/schema.ts";
import { hashToken } from "../../host/controller/store/sql_store.ts";
import { requireTools } from "../helpers/require.ts";
import { PgCluster, POSTGRES_NEED } from "../../host/lab/pg_cluster.ts";

interface Backend {
  name: "sqlite" | "postgres";
  skip: string | false;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** A URL for a new, empty database. */
  fresh(): Promise<string>;
  /** Raw rows of a table, to look at what is at rest. */
  raw(url: string, sql: string): Promise<Record<string, unknown>[]>;
}

const tmp = mkdtempSync(join(tmpdir(), "wesp-ctl-store-"));
let n = 0;
const sqlite: Backend = {
  name: "sqlite",
  skip: false,
  start: async () => {},
  stop: async () => rmSync(tmp, { recursive: true, force: true }),
  fresh: async () => `sqlite:${join(tmp, `db${++n}.sqlite`)}`,
  raw: async (url, sql) => {
    const d = new Database(url.replace(/^sqlite:/, ""), { readonly: true });
    try {
      return d.prepare(sql).all() as Record<string, unknown>[];
    } finally {
      d.close();
    }
  },
};

let cluster: PgCluster | undefined;
const postgres: Backend = {
  name: "postgres",
  skip: requireTools([POSTGRES_NEED], { why: "controller store on PostgreSQL" }),
  start: async () => {
    cluster = await PgCluster.start();
  },
  stop: async () => cluster?.stop(),
  fresh: () => cluster!.createDatabase(),
  raw: async (url, sql) => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      return (await c.query(sql)).rows;
    } finally {
      await c.end();
    }
  },
};

const site = (name: string, octet: number, extra: Partial<NewSite> = {}): NewSite => ({
  name,
  prefixes: [`10.${octet}.0.0/16`],
  wan: [{ name: "inet", privateAddress: `192.0.2.${octet}` }],
  ...extra,
});

async function rejects(p: Promise<unknown>, code: StoreError["code"], re?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof StoreError, `a StoreError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (re) assert.match(e.message, re);
    return true;
  });
}

const seal = (tag: string) => ({ src, dst, spi }: { src: string; dst: string; spi: number }) => ({
  suite: "aes-256-gcm" as const,
  sealedKey: Buffer.from(`${tag}:${src}>${dst}:${spi}`),
});

for (const b of [sqlite, postgres]) {
  describe(`controller store: ${b.name}`, { skip: b.skip }, () => {
    const open: Store[] = [];
    const use = async (url?: string, opts?: OpenOptions) => {
      const s = await openStore(url ?? (await b.fresh()), opts);
      open.push(s);
      return s;
    };
    before(() => b.start());
    after(async () => {
      for (const s of open) await s.close().catch(() => {});
      await b.stop();
    });

    test("VPNs: created at version 1 with defaults, listed, refused twice or with a bad name or topology", async () => {
      const s = await use();
      const v = await s.createVpn({ name: "acme" });
      assert.deepEqual({ ...v, createdAt: 0 }, { name: "acme", topology: { kind: "full-mesh" }, suite: "aes-256-gcm", mode: "tunnel", keying: "ike", saLifetime: { softSeconds: 3600, seconds: 7200 }, version: 1, createdAt: 0 });
      await s.createVpn({ name: "beta", topology: { kind: "hub-and-spoke", hub: "hq", backupHub: "dr" }, suite: "chacha20-poly1305", mode: "transport-ipip" });
      assert.deepEqual((await s.listVpns()).map((x) => x.name), ["acme", "beta"]);
      assert.deepEqual((await s.getVpn("beta"))?.topology, { kind: "hub-and-spoke", hub: "hq", backupHub: "dr" });
      assert.equal(await s.getVpn("nope"), undefined);
      await rejects(s.createVpn({ name: "acme" }), "conflict", /exists/);
      await rejects(s.createVpn({ name: "-bad" }), "invalid", /name/);
      await rejects(s.createVpn({ name: "x".repeat(33) }), "invalid");
      await rejects(s.createVpn({ name: "c", topology: { kind: "ring" } as never }), "invalid", /topology/);
      await rejects(s.createVpn({ name: "c", topology: { kind: "hub-and-spoke", hub: "a", backupHub: "a" } }), "invalid", /backupHub/);
      await rejects(s.createVpn({ name: "c", suite: "aes-128-cbc" as never }), "invalid", /suite/);
      await rejects(s.createVpn({ name: "c", keying: "psk" as never }), "invalid", /keying/);
      assert.equal((await s.createVpn({ name: "gamma", keying: "controller" })).keying, "controller");
      assert.equal((await s.getVpn("gamma"))!.keying, "controller", "the keying is stored");
      assert.equal(await s.deleteVpn("beta"), true);
      assert.equal(await s.deleteVpn("beta"), false);
    });

    test("sites: identifiers (site id per VPN, system id, port ids), canonical addresses, defaults", async () => {
      const s = await use();
      await s.createVpn({ name: "v" });
      const a = await s.addSite("v", {
        name: "hq", systemId: "SN-0001", prefixes: ["10.1.0.0/16", "FD00:1::/48"],
        wan: [
          { name: "inet", privateAddress: "192.168.1.2", privatePort: 4501, publicAddress: "198.51.100.7", publicPort: 61000, natType: "port-restricted-cone" },
          { name: "mpls", privateAddress: "10.255.0.1", trusted: true },
        ],
      });
      assert.equal(a.siteId, 1);
      assert.equal(a.systemId, "SN-0001");
      assert.deepEqual(a.prefixes, ["10.1.0.0/16", "fd00:1::/48"]);
      assert.deepEqual(a.wan, [
        { name: "inet", portId: 1, privateAddress: "192.168.1.2", privatePort: 4501, publicAddress: "198.51.100.7", publicPort: 61000, natType: "port-restricted-cone", trusted: false },
        { name: "mpls", portId: 2, privateAddress: "10.255.0.1", privatePort: 4500, natType: "none", trusted: true },
      ]);
      const b = await s.addSite("v", site("b", 2));
      assert.equal(b.siteId, 2);
      assert.equal(b.systemId, "v/b");
      assert.deepEqual((await s.listSites("v")).map((x) => [x.name, x.siteId]), [["hq", 1], ["b", 2]]);
      assert.deepEqual(await s.getSite("v", "b"), b);
      assert.equal(await s.getSite("v", "zz"), undefined);
      await s.removeSite("v", "b");
      const c = await s.addSite("v", site("c", 3));
      assert.equal(c.siteId, 3, "site ids are never reused");
    });

    test("sites: refused when the name or system id is taken, prefixes overlap, or a field is bad", async () => {
      const s = await use();
      await s.createVpn({ name: "v" });
      await s.createVpn({ name: "w" });
      await s.addSite("v", site("a", 1, { systemId: "box-1" }));
      await rejects(s.addSite("v", site("a", 2)), "conflict", /exists/);
      await rejects(s.addSite("w", site("z", 2, { systemId: "box-1" })), "conflict", /system id/);
      await rejects(s.addSite("v", site("b", 2, { prefixes: ["10.1.128.0/17"] })), "invalid", /overlaps 10\.1\.0\.0\/16 of site "a"/);
      await rejects(s.addSite("v", site("b", 2, { prefixes: ["10.2.0.1/16"] })), "invalid", /host bits/);
      await rejects(s.addSite("v", site("b", 2, { prefixes: ["10.2.0.0/16", "10.2.3.0/24"] })), "invalid", /overlaps/);
      await rejects(s.addSite("v", site("b", 2, { prefixes: [] })), "invalid", /prefixes/);
      await rejects(s.addSite("v", site("b", 2, { wan: [] })), "invalid", /wan/);
      await rejects(s.addSite("v", site("b", 2, { wan: [{ name: "x", privateAddress: "300.1.1.1" }] })), "invalid", /privateAddress/);
      await rejects(s.addSite("v", site("b", 2, { wan: [{ name: "x", privateAddress: "192.0.2.9", privatePort: 0 }] })), "invalid", /privatePort/);
      await rejects(s.addSite("v", site("b", 2, { wan: [{ name: "x", privateAddress: "192.0.2.9", natType: "weird" as never }] })), "invalid", /natType/);
      await rejects(s.addSite("v", site("b", 2, { wan: [{ name: "x", privateAddress: "192.0.2.9" }, { name: "x", privateAddress: "192.0.2.10" }] })), "invalid", /used by another port/);
      await rejects(s.addSite("nope", site("b", 2)), "not-found", /VPN "nope"/);
      assert.deepEqual((await s.listSites("v")).map((x) => x.name), ["a"], "nothing refused was written");
      assert.equal((await s.getVpn("v"))!.version, 2, "refusals do not change the version");
    });

    test("WAN ports: the public side and NAT type are updated; unknown port or site refused", async () => {
      const s = await use();
      await s.createVpn({ name: "v" });
      await s.addSite("v", site("a", 1));
      const u = await s.updateWanPort("v", "a", "inet", { publicAddress: "203.0.113.9", publicPort: 40000, natType: "symmetric" });
      assert.deepEqual(u.wan[0], { name: "inet", portId: 1, privateAddress: "192.0.2.1", privatePort: 4500, publicAddress: "203.0.113.9", publicPort: 40000, natType: "symmetric", trusted: false });
      const back = await s.updateWanPort("v", "a", "inet", { publicAddress: null, publicPort: null, natType: "none" });
      assert.equal(back.wan[0].publicAddress, undefined);
      assert.equal((await s.getVpn("v"))!.version, 4);
      await rejects(s.updateWanPort("v", "a", "nope", { natType: "none" }), "not-found", /WAN port/);
      await rejects(s.updateWanPort("v", "zz", "inet", { natType: "none" }), "not-found", /site/);
      await rejects(s.updateWanPort("v", "a", "inet", { publicAddress: "x" }), "invalid");
    });

    test("enrolment tokens: one-time, expiring, kept only as a hash", async () => {
      let now = 1_000_000;
      const url = await b.fresh();
      const s = await use(url, { now: () => now });
      await s.createVpn({ name: "v" });
      await s.addSite("v", site("a", 1));
      const t = await s.createEnrolmentToken("v", "a", 60_000);
      assert.match(t.token, /^wesp-enrol-[A-Za-z0-9_-]{43}$/);
      assert.equal(t.expiresAt, now + 60_000);
      const rows = await b.raw(url.replace(/^sqlite:/, "sqlite:"), "SELECT * FROM enrolment_tokens");
      assert.equal(rows.length, 1);
      assert.equal(rows[0].hash, hashToken(t.token));
      assert.ok(!JSON.stringify(rows).includes(t.token.slice(11)), "the token itself is not at rest");
      assert.deepEqual(await s.consumeEnrolmentToken(t.token), { vpn: "v", site: "a" });
      await rejects(s.consumeEnrolmentToken(t.token), "token-invalid", /already used/);
      await rejects(s.consumeEnrolmentToken("wesp-enrol-" + "A".repeat(43)), "token-invalid", /unknown/);
      await rejects(s.consumeEnrolmentToken("x".repeat(10_000)), "token-invalid");
      const e = await s.createEnrolmentToken("v", "a", 1000);
      now += 1000;
      await rejects(s.consumeEnrolmentToken(e.token), "token-invalid", /expired/);
      await rejects(s.createEnrolmentToken("v", "zz", 60_000), "not-found");
      await rejects(s.createEnrolmentToken("v", "a", 0), "invalid");
      const r = await s.createEnrolmentToken("v", "a", 60_000);
      await s.removeSite("v", "a");
      await rejects(s.consumeEnrolmentToken(r.token), "token-invalid", /unknown/, );
    });

    test("CE certificates: recorded with the token's use, revoked by site, removal and VPN deletion", async () => {
      const url = await b.fresh();
      const s = await use(url);
      await s.createVpn({ name: "v" });
      await s.addSite("v", site("a", 1));
      await s.addSite("v", site("b", 2));
      const t = await s.createEnrolmentToken("v", "a", 60_000);
      await assert.rejects(s.enrol(t.token, async () => {
        throw new Error("CSR for another name");
      }), /another name/);
      assert.deepEqual(await s.enrol(t.token, async (x) => (assert.deepEqual(x, { vpn: "v", site: "a" }), { serial: "0A1B", notAfter: 5 })), { vpn: "v", site: "a" },
        "a refused issue left the token unused");
      await rejects(s.enrol(t.token, async () => ({ serial: "0c", notAfter: 5 })), "token-invalid", /already used/);
      assert.deepEqual(await s.certificateStatus("0a1b"), { status: "valid", vpn: "v", site: "a", notAfter: 5 });
      for (const bad of ["ff", "", "0a1b'--", "x".repeat(100)]) assert.equal((await s.certificateStatus(bad)).status, "unknown", bad);
      await s.recordCertificate("v", "b", "0B", 7);
      await s.recordCertificate("v", "a", "0A2B", 9);
      const before = (await s.getVpn("v"))!.version;
      assert.equal(await s.revokeCertificates("v", "a"), 2);
      assert.ok((await s.getVpn("v"))!.version > before, "a revocation is a change (replicas remake their CRL)");
      assert.equal(await s.revokeCertificates("v", "a"), 0);
      assert.equal((await s.certificateStatus("0a2b")).status, "revoked");
      assert.deepEqual((await s.listRevoked()).map((r) => r.serial), ["0a1b", "0a2b"]);
      await s.removeSite("v", "b");
      assert.equal((await s.certificateStatus("0b")).status, "site-removed");
      await s.addSite("v", site("b", 2));
      assert.equal((await s.certificateStatus("0b")).status, "site-removed", "a site re-added under the name does not inherit old certificates");
      assert.deepEqual((await s.listRevoked()).map((r) => r.serial), ["0a1b", "0a2b", "0b"]);
      await s.recordCertificate("v", "b", "0d", 7);
      await s.deleteVpn("v");
      assert.deepEqual((await s.listRevoked()).map((r) => r.serial), ["0a1b", "0a2b", "0b", "0d"]);
    });

    test("operator tokens: checked by hash, unknown ones refused", async () => {
      const url = await b.fresh();
      const s = await use(url);
      const t = await s.createOperatorToken("alice");
      assert.match(t, /^wesp-op-/);
      assert.equal(await s.checkOperatorToken(t), "alice");
      assert.equal(await s.checkOperatorToken(t + "x"), undefined);
      assert.equal(await s.checkOperatorToken(""), undefined);
      await rejects(s.createOperatorToken("alice"), "conflict");
      const rows = await b.raw(url, "SELECT * FROM operator_tokens");
      assert.ok(!JSON.stringify(rows).includes(t.slice(8)));
    });

    test("SAs: a pair gets one SA per direction, SPIs unique per receiver, made once, pruned with the pair or its site", async () => {
      const s = await use();
      await s.createVpn({ name: "v" });
      for (let i = 1; i <= 4; i++) await s.addSite("v", site(`s${i}`, i));
      let calls = 0;
      const counting = (d: { src: string; dst: string; spi: number }) => (calls++, seal("k")(d));
      assert.equal(await s.ensureSaPair("v", "s1", "s2", 0, counting), true);
      assert.equal(await s.ensureSaPair("v", "s2", "s1", 0, counting), false, "the pair is unordered");
      assert.equal(calls, 2);
      for (const [x, y] of [["s1", "s3"], ["s1", "s4"], ["s2", "s3"], ["s3", "s4"]]) await s.ensureSaPair("v", x, y, 0, seal("k"));
      const all = await s.listSas("v");
      assert.equal(all.length, 10);
      for (const sa of all) {
        assert.ok(sa.spi >= 256 && sa.spi <= 0xffffffff);
        assert.equal(Buffer.from(sa.sealedKey).toString(), `k:${sa.src}>${sa.dst}:${sa.spi}`, "the sealed bytes come back as given");
      }
      for (const dst of ["s1", "s2", "s3", "s4"]) {
        const spis = all.filter((x) => x.dst === dst).map((x) => x.spi);
        assert.equal(new Set(spis).size, spis.length, `${dst} receives on distinct SPIs`);
      }
      assert.deepEqual((await s.listSasOf("v", "s4")).map((x) => `${x.src}>${x.dst}`).sort(), ["s1>s4", "s3>s4", "s4>s1", "s4>s3"]);
      await rejects(s.ensureSaPair("v", "s1", "s1", 0, seal("k")), "invalid");
      await rejects(s.ensureSaPair("v", "s1", "zz", 0, seal("k")), "not-found");
      assert.equal(await s.pruneSas("v", [["s1", "s2"], ["s3", "s1"], ["s1", "s4"], ["s2", "s3"], ["s4", "s3"]]), 0);
      assert.equal(await s.pruneSas("v", [["s2", "s1"], ["s1", "s3"], ["s1", "s4"], ["s2", "s3"]]), 2);
      assert.equal((await s.listSas("v")).length, 8);
      await s.removeSite("v", "s1");
      assert.deepEqual((await s.listSas("v")).map((x) => `${x.src}>${x.dst}`).sort(), ["s2>s3", "s3>s2"]);
    });

    test("versions: every change raises its VPN's version by one and is heard by watchers, in order", async () => {
      const s = await use();
      const heard: Change[] = [];
      s.watch((c) => heard.push(c));
      await s.createVpn({ name: "v" });
      await s.createVpn({ name: "w" });
      await s.addSite("v", site("a", 1));
      await s.addSite("v", site("b", 2));
      await s.ensureSaPair("v", "a", "b", 0, seal("k"));
      await s.ensureSaPair("v", "a", "b", 0, seal("k"));
      await s.setTopology("v", { kind: "hub-and-spoke", hub: "a" });
      await rejects(s.removeSite("v", "a"), "conflict", /hub/);
      await s.updateWanPort("v", "b", "inet", { natType: "symmetric" });
      await s.pruneSas("v", []);
      assert.equal(await s.removeSite("v", "b"), true);
      assert.equal(await s.removeSite("v", "b"), false);
      await s.deleteVpn("w");
      const want = [["v", 1], ["w", 1], ["v", 2], ["v", 3], ["v", 4], ["v", 5], ["v", 6], ["v", 7], ["v", 8], ["w", -1]];
      const deadline = Date.now() + 2000;
      while (heard.length < want.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(heard.map((c) => [c.vpn, c.version]), want);
      assert.equal((await s.getVpn("v"))!.version, 8);
    });

    test("revoked serials of a VPN's sites: revoked and not expired only, by site, no other VPN's", async () => {
      let now = 1_000_000;
      const s = await use(undefined, { now: () => now });
      for (const v of ["v", "w"]) {
        await s.createVpn({ name: v });
        await s.addSite(v, site("a", 1));
        await s.addSite(v, site("b", 2));
      }
      await s.recordCertificate("v", "a", "0A", now + 1000);
      await s.recordCertificate("v", "a", "0B", now + 5000);
      await s.recordCertificate("v", "b", "0C", now + 5000);
      await s.recordCertificate("w", "a", "0D", now + 5000);
      assert.deepEqual(await s.revokedSerialsOf("v"), []);
      await s.revokeCertificates("v", "a");
      await s.revokeCertificates("w", "a");
      assert.deepEqual(await s.revokedSerialsOf("v"), [{ site: "a", serial: "0a" }, { site: "a", serial: "0b" }]);
      now += 2000;
      assert.deepEqual(await s.revokedSerialsOf("v"), [{ site: "a", serial: "0b" }], "an expired certificate is refused anyway: no longer listed");
      await s.removeSite("v", "b");
      assert.deepEqual(await s.revokedSerialsOf("v"), [{ site: "a", serial: "0b" }, { site: "b", serial: "0c" }], "a removed site's certificates are revoked");
    });

    test("migration 3: VPNs made before the keying column keep controller-made keys", async () => {
      const url = await b.fresh();
      const v2 = migrationsFor(b.name).slice(0, 2).flat();
      await writeRaw(b, url, [
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
        ...v2, "INSERT INTO schema_migrations (version, applied_at) VALUES (1, 0), (2, 0)",
        `INSERT INTO vpns (name, topology, suite, mode, version, created_at) VALUES ('old', '{"kind":"full-mesh"}', 'aes-256-gcm', 'tunnel', 1, 0)`,
      ].join(";\n"));
      const s = await use(url);
      assert.equal((await s.getVpn("old"))!.keying, "controller");
      assert.equal((await s.createVpn({ name: "new" })).keying, "ike");
    });

    test("migrations: reopening is a no-op; a database from a newer wesp is refused", async () => {
      const url = await b.fresh();
      const s1 = await use(url);
      await s1.createVpn({ name: "v" });
      await s1.close();
      const s2 = await use(url);
      assert.equal((await s2.getVpn("v"))!.version, 1, "data survives a reopen");
      const rows = await b.raw(url, "SELECT version FROM schema_migrations ORDER BY version");
      assert.deepEqual(rows.map((r) => Number(r.version)), Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1));
      await s2.close();
      await writeRaw(b, url, `INSERT INTO schema_migrations (version, applied_at) VALUES (${SCHEMA_VERSION + 1}, 0)`);
      await rejects(openStore(url), "invalid", /newer than this wesp/);
    });
  });
}

async function writeRaw(b: Backend, url: string, sql: string): Promise<void> {
  if (b.name === "sqlite") {
    const d = new Database(url.replace(/^sqlite:/, ""));
    d.exec(sql);
    d.close();
    return;
  }
  await b.raw(url, sql);
}

describe("controller store: two PostgreSQL replicas", { skip: postgres.skip }, () => {
  before(() => postgres.start());
  after(() => postgres.stop());

  test("a change made through one replica is heard by the other within 2 s; concurrent SA making agrees on one pair", async () => {
    const url = await postgres.fresh();
    const a = await openStore(url);
    const b = await openStore(url);
    try {
      const heard: Change[] = [];
      b.watch((c) => heard.push(c));
      const t0 = Date.now();
      await a.createVpn({ name: "v" });
      await a.addSite("v", site("x", 1));
      await a.addSite("v", site("y", 2));
      while (heard.length < 3 && Date.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 5));
      assert.deepEqual(heard, [{ vpn: "v", version: 1 }, { vpn: "v", version: 2 }, { vpn: "v", version: 3 }], "heard within 2 s");
      const made = await Promise.all([
        a.ensureSaPair("v", "x", "y", 0, seal("a")),
        b.ensureSaPair("v", "y", "x", 0, seal("b")),
      ]);
      const sas = await b.listSas("v");
      assert.equal(sas.length, 2, `one pair, whoever made it (made: ${made})`);
      const tags = new Set(sas.map((s) => Buffer.from(s.sealedKey).toString().split(":")[0]));
      assert.equal(tags.size, 1, "both directions come from the same replica");
      // Both replicas ran their migrations on start: the schema is there once.
      assert.equal((await postgres.raw(url, "SELECT COUNT(*) AS n FROM schema_migrations"))[0].n, String(SCHEMA_VERSION));
    } finally {
      await a.close();
      await b.close();
    }
  });

  test("replicas started together migrate once (advisory lock)", async () => {
    const url = await postgres.fresh();
    const stores = await Promise.all([openStore(url), openStore(url), openStore(url)]);
    try {
      await stores[0].createVpn({ name: "v" });
      for (const s of stores) assert.equal((await s.getVpn("v"))!.version, 1);
    } finally {
      for (const s of stores) await s.close();
    }
  });
});

test("controller store: SQLite keeps no token in the file", async () => {
  const url = `sqlite:${join(mkdtempSync(join(tmpdir(), "wesp-ctl-file-")), "c.db")}`;
  const s = await openStore(url);
  await s.createVpn({ name: "v" });
  await s.addSite("v", site("a", 1));
  const t = await s.createEnrolmentToken("v", "a", 60_000);
  const op = await s.createOperatorToken("ops");
  await s.close();
  const path = url.slice("sqlite:".length);
  for (const f of [path, `${path}-wal`]) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(f);
    } catch {
      continue;
    }
    assert.ok(!bytes.includes(Buffer.from(t.token.slice(11))), `${f} holds no enrolment token`);
    assert.ok(!bytes.includes(Buffer.from(op.slice(8))), `${f} holds no operator token`);
  }
  rmSync(path.replace(/\/c\.db$/, ""), { recursive: true, force: true });
});
