// Controller-driven rekeying (RFC 9061 §4.1.2, IKE-less; host/controller/store/rekey.ts,
// api/ce_rekey.ts): the order of the steps as both CEs' configs show them —
// new SAs inbound first, then outbound, then the old ones removed, each step
// only once both CEs reported the previous one applied; sadb-expire reports
// of superseded SAs or mid-rekey; refusals (another site's SA, an unknown
// one, a version the VPN never had); hostile sadb-expire and applied bodies
// over real mTLS (a table and fast-check); and two PostgreSQL replicas racing
// on one expiry and one step.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import Database from "better-sqlite3";
import fc from "fast-check";
import { Controller } from "../../host/controller/controller.ts";
import { KeySealer } from "../../host/controller/keys.ts";
import { saName } from "../../host/controller/api/ce_rekey.ts";
import { openStore, type Store } from "../../host/controller/store/store.ts";
import { migrationsFor } from "../../host/controller/store/schema.ts";
import { StoreError, type NewSite } from "../../host/controller/store/model.ts";
import type { CeConfig } from "../../host/controller/render.ts";
import { parseConfig } from "../../host/config/load.ts";
import { CeClient, ControllerError } from "../../host/agent/ce_client.ts";
import { enrolledCe } from "./controller-ce-fixture.ts";
import { requireTools } from "../helpers/require.ts";
import { PgCluster, POSTGRES_NEED } from "../../host/lab/pg_cluster.ts";

const site = (name: string, octet: number): NewSite => ({ name, prefixes: [`10.${octet}.0.0/16`], wan: [{ name: "inet", privateAddress: `192.0.2.${octet}` }] });

/** The SPI pairs [spi_in, spi_out] `c` lists for peer `peer`, in order (the first is used outbound). */
const sasOf = (c: CeConfig, peer: string) => c.peers.find((p) => p.name === peer)!.sas!.map((s) => [s.spi_in, s.spi_out]);

/**
 * A store clock the tests move: a generation is replaced no sooner than half
 * its soft lifetime after it was made (store/rekey.ts minGenerationAgeMs;
 * controller-rekey-early.test.ts), so a test reporting an expiry first lets
 * that much time pass.
 */
const clock = { t: Date.now(), now: () => clock.t, age: (softSeconds: number) => (clock.t += softSeconds * 500) };

async function controllerWith(store: Store, sites: string[]): Promise<Controller> {
  const ctl = new Controller(store, new KeySealer(randomBytes(32)));
  await ctl.createVpn({ name: "v", keying: "controller", saLifetime: { softSeconds: 30, seconds: 60 } });
  for (const [i, s] of sites.entries()) await ctl.addSite("v", site(s, i + 1));
  return ctl;
}

test("controller rekey: new inbound first, then outbound, then the old removed — each step once both CEs applied the previous", async () => {
  const ctl = await controllerWith(await openStore(":memory:", { now: clock.now }), ["a", "b", "c"]);
  const store = ctl.store;
  const v = (await store.getVpn("v"))!;
  const seal = ctl.keyMaker(v);
  const version = async () => (await store.getVpn("v"))!.version;
  try {
    const a0 = await ctl.configFor("v", "a");
    await ctl.configFor("v", "b");
    const c0 = await ctl.configFor("v", "c");
    assert.equal(sasOf(a0, "b").length, 1);
    assert.deepEqual(a0.peers[0].sas![0].lifetime, { seconds: 60, soft_seconds: 30 }, "the VPN's lifetimes, as the config spells them");
    const [inA, outA] = sasOf(a0, "b")[0];

    // a's outbound SA towards b (b's spi_in) reaches its soft lifetime.
    clock.age(30);
    const r = await store.saExpired("v", "a", { src: "a", dst: "b", spi: outA }, seal);
    assert.equal(r.outcome, "rekeying");
    const n1 = await version();
    const a1 = await ctl.configFor("v", "a");
    const b1 = await ctl.configFor("v", "b");
    assert.equal(sasOf(a1, "b").length, 2);
    assert.deepEqual(sasOf(a1, "b")[0], [inA, outA], "step 1: the old SA still first (outbound), the new one beside it (inbound)");
    const [inA1, outA1] = sasOf(a1, "b")[1];
    assert.ok(inA1 !== inA && outA1 !== outA, "new SPIs");
    assert.deepEqual(sasOf(b1, "a"), sasOf(a1, "b").map(([i, o]) => [o, i]), "b's view is a's, mirrored");
    assert.notEqual(a1.peers[0].sas![1].key_in, a0.peers[0].sas![0].key_in, "a new key");
    assert.deepEqual(await ctl.configFor("v", "c"), c0, "another pair's CE is untouched");
    for (const [n, c] of [["a", a1], ["b", b1]] as const) {
      const { config } = parseConfig(JSON.stringify(c), { baseDir: tmpdir(), source: `<${n}>` });
      assert.equal(config.peers.find((p) => p.name === (n === "a" ? "b" : "a"))!.sas.length, 2, "it loads as wesp check loads it");
    }

    // Both ends report it again, and b its inbound twin: nothing more happens.
    assert.equal((await store.saExpired("v", "b", { src: "a", dst: "b", spi: outA }, seal)).outcome, "superseded");
    assert.equal((await store.saExpired("v", "b", { src: "b", dst: "a", spi: inA }, seal)).outcome, "superseded");
    assert.equal(await version(), n1, "no second generation");

    // Only a applied step 1: b may not send on the new SA yet.
    assert.deepEqual(await store.reportApplied("v", "a", n1, seal), []);
    assert.deepEqual(await store.reportApplied("v", "c", n1, seal), [], "c's report moves nothing of a and b");
    assert.deepEqual(sasOf(await ctl.configFor("v", "b"), "a"), sasOf(b1, "a"));
    const s2 = await store.reportApplied("v", "b", n1 - 1, seal);
    assert.deepEqual(s2, [], "an older version than step 1's is not enough");
    const step2 = await store.reportApplied("v", "b", n1, seal);
    assert.deepEqual(step2.map((s) => s.step), ["outbound"]);
    const n2 = await version();
    assert.equal(n2, n1 + 1);
    assert.deepEqual(sasOf(await ctl.configFor("v", "a"), "b"), [[inA1, outA1], [inA, outA]], "step 2: the new SA first (outbound), the old still accepted");

    // Meanwhile the new generation is reported expired (a tiny lifetime): remembered, not yet made.
    clock.age(30);
    assert.equal((await store.saExpired("v", "b", { src: "a", dst: "b", spi: outA1 }, seal)).outcome, "pending");
    assert.equal(await version(), n2);

    await store.reportApplied("v", "b", n2, seal);
    const step3 = await store.reportApplied("v", "a", n2, seal);
    assert.deepEqual(step3.map((s) => s.step), ["removed", "started"], "step 3, then at once the next rekey the pending expiry asked for");
    const a3 = await ctl.configFor("v", "a");
    assert.equal(sasOf(a3, "b").length, 2);
    assert.deepEqual(sasOf(a3, "b")[0], [inA1, outA1], "the old generation is gone; generation 1 outbound, generation 2 inbound");
    assert.ok(!JSON.stringify(a3).includes(a0.peers[0].sas![0].key_in), "generation 0's keys are gone from the config");
    const gens = (await store.listSas("v")).filter((s) => [s.src, s.dst].sort().join() === "a,b").map((s) => `${s.generation}:${s.state}`).sort();
    assert.deepEqual(gens, ["1:active", "1:active", "2:new", "2:new"]);

    // Reconciling (any operator change) does not bring generation 0 back.
    assert.deepEqual(await ctl.reconcile("v"), { made: 0, deleted: 0 });
  } finally {
    await store.close();
  }
});

test("controller rekey: refusals — another site's SA, an unknown SPI, a version the VPN never had", async () => {
  const ctl = await controllerWith(await openStore(":memory:", { now: clock.now }), ["a", "b", "c"]);
  const store = ctl.store;
  const seal = ctl.keyMaker((await store.getVpn("v"))!);
  try {
    const [, out] = sasOf(await ctl.configFor("v", "a"), "b")[0];
    const refused = (p: Promise<unknown>, code: string) => assert.rejects(p, (e: unknown) => e instanceof StoreError && e.code === code);
    await refused(store.saExpired("v", "c", { src: "a", dst: "b", spi: out }, seal), "not-found");
    await refused(store.saExpired("v", "a", { src: "a", dst: "b", spi: out ^ 1 }, seal), "not-found");
    await refused(store.saExpired("v", "a", { src: "a", dst: "nobody", spi: out }, seal), "not-found");
    const v = (await store.getVpn("v"))!.version;
    await refused(store.reportApplied("v", "a", v + 1, seal), "invalid");
    await refused(store.reportApplied("v", "a", -1, seal), "invalid");
    await refused(store.reportApplied("v", "a", 0.5, seal), "invalid");
    assert.equal((await store.getVpn("v"))!.version, v, "nothing changed");
    await assert.rejects(ctl.createVpn({ name: "w", saLifetime: { softSeconds: 60, seconds: 60 } }), /softSeconds: must be less than seconds/);
  } finally {
    await store.close();
  }
});

test("controller rekey: a VPN made before lifetimes existed gets a soft lifetime only on upgrade (a hard one would end its old SAs at once)", async () => {
  const file = join(mkdtempSync(join(tmpdir(), "wesp-rekey-mig-")), "c.db");
  const d = new Database(file);
  d.exec("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)");
  migrationsFor("sqlite").slice(0, 2).forEach((m, i) => {
    for (const stmt of m) d.exec(stmt);
    d.prepare("INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)").run(i + 1);
  });
  d.prepare("INSERT INTO vpns (name, topology, suite, mode, version, created_at) VALUES ('old', '{\"kind\":\"full-mesh\"}', 'aes-256-gcm', 'tunnel', 1, 0)").run();
  d.close();
  const store = await openStore(`sqlite:${file}`);
  try {
    assert.deepEqual((await store.getVpn("old"))!.saLifetime, { softSeconds: 3600 });
    assert.deepEqual((await store.createVpn({ name: "new" })).saLifetime, { softSeconds: 3600, seconds: 7200 });
  } finally {
    await store.close();
    rmSync(dirname(file), { recursive: true, force: true });
  }
});

describe("controller rekey over the CE API: sadb-expire and applied, hostile bodies refused", () => {
  let ctl: Controller;
  let a: CeClient;
  let logs: string[];
  let close: () => Promise<void>;

  before(async () => {
    ({ ctl, a, logs, close } = await enrolledCe("rekey", async (operator) => {
      await operator.createVpn({ name: "v", keying: "controller" });
      for (const [i, s] of ["a", "b", "c"].entries()) await operator.addSite("v", site(s, i + 1));
    }, undefined, clock.now));
  });
  after(() => close?.());

  const version = async () => (await ctl.store.getVpn("v"))!.version;
  const status = (p: Promise<unknown>) => p.then(() => 200, (e: unknown) => (e instanceof ControllerError ? e.status : 0));

  test("the default lifetimes reach the config; a soft expiry starts a rekey (202), a repeat does not (200)", async () => {
    const c = await a.call<{ config: CeConfig; version: number }>("GET", "/v1/ce/config");
    assert.deepEqual(c.config.peers[0].sas![0].lifetime, { seconds: 7200, soft_seconds: 3600 }, "soft 1 h, hard 2 h by default");
    const [, out] = sasOf(c.config, "b")[0];
    const name = saName({ src: "a", dst: "b", spi: out });
    clock.age(3600);
    const r = await a.call<{ outcome: string }>("POST", "/v1/ce/sadb-expire", { "ipsec-sa-name": name, "soft-lifetime-expire": true, "lifetime-current": { time: 3600, bytes: 1000, packets: 10 } });
    assert.equal(r.outcome, "rekeying");
    assert.ok(logs.some((l) => l.includes(`sadb-expire from v/a: SA ${name} soft lifetime`)), "logged");
    const again = await a.call<{ outcome: string }>("POST", "/v1/ce/sadb-expire", { "ipsec-sa-name": name });
    assert.equal(again.outcome, "superseded");
    const at = await version();
    assert.deepEqual(await a.call("POST", "/v1/ce/applied", { version: at }), { version: at, steps: 0 }, "b has not applied it: no step");
    assert.equal(await status(a.call("POST", "/v1/ce/applied", { version: at + 1 })), 400, "a version the VPN never had");
    for (const l of logs) assert.ok(!/"key|[0-9a-f]{40}/.test(l), `no key material in logs: ${l}`);
  });

  test("GET /v1/ce/ikeless: the CE's own SPD and SAD as ietf-i2nsf-ikeless entries, the same SAs as its config (mid-rekey: two inbound, one outbound)", async () => {
    const { config } = await a.call<{ config: CeConfig }>("GET", "/v1/ce/config");
    type Sad = { name: string; "ipsec-sa-config": { spi: number; "esp-sa": { encryption: { key: string; "encryption-algorithm": number } }; "sa-lifetime-soft": { time: number; action: string }; "encapsulation-type": { espencap: string } } };
    const r = await a.call<{ site: string; "ietf-i2nsf-ikeless:ipsec-ikeless": { spd: { "spd-entry": { name: string; direction: string }[] }; sad: { "sad-entry": Sad[] } } }>("GET", "/v1/ce/ikeless");
    assert.equal(r.site, "a");
    const { spd, sad } = r["ietf-i2nsf-ikeless:ipsec-ikeless"];
    assert.deepEqual(spd["spd-entry"].map((e) => `${e.name}`).sort(), ["a/b/inbound", "a/b/outbound", "a/c/inbound", "a/c/outbound"]);
    const want = new Map<string, string>();
    for (const p of config.peers) {
      want.set(saName({ src: "a", dst: p.name, spi: p.sas![0].spi_out }), p.sas![0].key_out);
      for (const sa of p.sas!) want.set(saName({ src: p.name, dst: "a", spi: sa.spi_in }), sa.key_in);
    }
    assert.equal(sasOf(config, "b").length, 2, "a and b are mid-rekey (step 1)");
    assert.deepEqual(sad["sad-entry"].map((e) => e.name).sort(), [...want.keys()].sort(), "b: one outbound and two inbound SAs; c: one of each");
    for (const e of sad["sad-entry"]) {
      assert.equal(e["ipsec-sa-config"]["esp-sa"].encryption.key.replaceAll(":", ""), want.get(e.name), `${e.name}: the config's key`);
      assert.equal(e["ipsec-sa-config"]["esp-sa"].encryption["encryption-algorithm"], 20, "ENCR_AES_GCM_16");
      assert.deepEqual([e["ipsec-sa-config"]["sa-lifetime-soft"].time, e["ipsec-sa-config"]["sa-lifetime-soft"].action], [3600, "replace"]);
      assert.equal(e["ipsec-sa-config"]["encapsulation-type"].espencap, "espinudp");
    }
  });

  test("another site's SA and unknown SAs are 404; a table of hostile bodies is 400 and changes nothing", async () => {
    const c = await ctl.configFor("v", "b");
    const [, bToC] = sasOf(c, "c")[0];
    const v0 = await version();
    assert.equal(await status(a.call("POST", "/v1/ce/sadb-expire", { "ipsec-sa-name": saName({ src: "b", dst: "c", spi: bToC }) })), 404, "a pair a is not part of");
    assert.equal(await status(a.call("POST", "/v1/ce/sadb-expire", { "ipsec-sa-name": "a/b/0x00000001" })), 404);
    const hostile: unknown[] = [
      null, [], "x", 1, {}, { "ipsec-sa-name": 5 }, { "ipsec-sa-name": "a/b/1234" }, { "ipsec-sa-name": "a/b/0x0000000g" },
      { "ipsec-sa-name": "a/b/0x000000001" }, { "ipsec-sa-name": "../b/0x00000001" }, { "ipsec-sa-name": "a/b/0x00000001", extra: 1 },
      { "ipsec-sa-name": "a/b/0x00000001", "soft-lifetime-expire": "yes" }, { "ipsec-sa-name": "a/b/0x00000001", "lifetime-current": { time: -1 } },
      { "ipsec-sa-name": "a/b/0x00000001", "lifetime-current": { bytes: 1e300 } }, { "ipsec-sa-name": `${"a".repeat(33)}/b/0x00000001` },
      { "ipsec-sa-name": "a/b/0x00000001", "lifetime-current": { idle: 1, x: 1 } },
    ];
    for (const body of hostile) assert.equal(await status(a.call("POST", "/v1/ce/sadb-expire", body)), 400, JSON.stringify(body));
    for (const body of [null, {}, { version: -1 }, { version: 1.5 }, { version: "1" }, { version: 1, x: 1 }, { version: 2 ** 60 }]) {
      assert.equal(await status(a.call("POST", "/v1/ce/applied", body)), 400, JSON.stringify(body));
    }
    assert.equal(await version(), v0, "no change from any of them");
  });

  test("fast-check: 300 generated bodies on both routes are answered 200/202/400/404, never 5xx, and never make a second rekey", async () => {
    const name = fc.oneof(fc.string({ maxLength: 90 }), fc.tuple(fc.constantFrom("a", "b", "c", "zz"), fc.constantFrom("a", "b", "c"), fc.integer({ min: 0, max: 0xffffffff }))
      .map(([s, d, spi]) => saName({ src: s, dst: d, spi })));
    const body = fc.oneof(
      fc.anything(),
      fc.record({ "ipsec-sa-name": name, "soft-lifetime-expire": fc.anything(), "lifetime-current": fc.anything() }, { requiredKeys: ["ipsec-sa-name"] }),
      fc.record({ version: fc.oneof(fc.integer(), fc.double(), fc.string()) }),
    );
    const before = (await ctl.store.listSas("v")).length;
    await fc.assert(fc.asyncProperty(fc.constantFrom("/v1/ce/sadb-expire", "/v1/ce/applied"), body, async (route, b) => {
      const s = await status(a.call("POST", route, b));
      assert.ok([200, 202, 400, 404].includes(s), `${route} ${JSON.stringify(b)?.slice(0, 200)}: ${s}`);
    }), { numRuns: 300 });
    assert.ok((await ctl.store.listSas("v")).length <= before + 2, "at most one more generation (a's pairs, from a name that happened to match)");
  });
});

describe("controller rekey on two PostgreSQL replicas", { skip: requireTools([POSTGRES_NEED], { why: "controller rekey between replicas" }) }, () => {
  let cluster: PgCluster;
  before(async () => {
    cluster = await PgCluster.start();
  });
  after(() => cluster?.stop());

  test("both CEs' expiries and both CEs' step reports race through two replicas: one generation, each step once", async () => {
    const url = await cluster.createDatabase();
    const [x, y] = await Promise.all([openStore(url, { now: clock.now }), openStore(url, { now: clock.now })]);
    try {
      const ctl = await controllerWith(x, ["a", "b"]);
      const seal = ctl.keyMaker((await x.getVpn("v"))!);
      const [inA, outA] = sasOf(await ctl.configFor("v", "a"), "b")[0];
      for (let round = 0; round < 3; round++) {
        const [cur] = sasOf(await ctl.configFor("v", "a"), "b");
        clock.age(30);
        const r = await Promise.all([
          x.saExpired("v", "a", { src: "a", dst: "b", spi: cur[1] }, seal),
          y.saExpired("v", "b", { src: "b", dst: "a", spi: cur[0] }, seal),
        ]);
        assert.deepEqual(r.map((o) => o.outcome).sort(), ["rekeying", "superseded"], `round ${round}: one replica made the generation, the other found it made`);
        const gens = new Set((await y.listSas("v")).map((s) => s.generation));
        assert.equal(gens.size, 2, "two generations, not three");
        for (let step = 0; step < 2; step++) {
          const v = (await y.getVpn("v"))!.version;
          const s = await Promise.all([x.reportApplied("v", "a", v, seal), y.reportApplied("v", "b", v, seal)]);
          assert.equal(s.flat().length, 1, `round ${round} step ${step}: taken once, by whichever report came second`);
        }
        assert.equal(sasOf(await ctl.configFor("v", "a"), "b").length, 1, "the old generation removed");
      }
      const [inA3, outA3] = sasOf(await ctl.configFor("v", "a"), "b")[0];
      assert.ok(inA3 !== inA && outA3 !== outA);
      assert.deepEqual((await x.listSas("v")).map((s) => s.generation), [3, 3]);
    } finally {
      await x.close();
      await y.close();
    }
  });
});
