// The per-CE configs the controller computes (host/controller/controller.ts,
// render.ts, topology.ts, keys.ts), checked as properties over random VPNs:
// every pair that should talk has matching SAs on both sides (spi_in ↔
// spi_out, key_in ↔ key_out, a distinct key per direction); a CE sees its
// own peers and keys and nothing of any other pair (net2cloud §4.1); the peer
// sets follow the topology; every config passes `wesp check`'s loader, so
// `ce.apply()` takes it. Plus: sealed keys at rest, the master key file, and
// what a site added or removed changes for the others.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { Controller } from "../../host/controller/controller.ts";
import { KeySealError, KeySealer, KEY_BYTES, loadOrCreateMasterKey } from "../../host/controller/keys.ts";
import type { CeConfig } from "../../host/controller/render.ts";
import { CONTROLLER_MODES, CONTROLLER_SUITES, type Topology } from "../../host/controller/store/model.ts";
import { siteOf, type SiteSpec } from "./controller-sites.ts";
import { openStore } from "../../host/controller/store/store.ts";
import { pairsOf, peersOf } from "../../host/controller/topology.ts";
import { parseConfig } from "../../host/config/load.ts";

async function controller(url = ":memory:"): Promise<Controller> {
  return new Controller(await openStore(url), new KeySealer(randomBytes(32)));
}

const vpnArb = fc.record({
  sites: fc.array(fc.record({ natted: fc.boolean(), trustedPort: fc.boolean() }), { minLength: 2, maxLength: 7 }),
  kind: fc.constantFrom("full-mesh", "hub-and-spoke", "hub-and-spoke-backup"),
  hub: fc.nat(),
  backup: fc.nat(),
  suite: fc.constantFrom(...CONTROLLER_SUITES),
  mode: fc.constantFrom(...CONTROLLER_MODES),
});

function topologyOf(v: { sites: SiteSpec[]; kind: string; hub: number; backup: number }): Topology {
  const n = v.sites.length;
  const hub = `site${v.hub % n}`;
  if (v.kind === "full-mesh") return { kind: "full-mesh" };
  const backup = `site${(v.hub + 1 + (v.backup % (n - 1))) % n}`;
  return v.kind === "hub-and-spoke" ? { kind: "hub-and-spoke", hub } : { kind: "hub-and-spoke", hub, backupHub: backup };
}

const keysOf = (c: CeConfig) => c.peers.flatMap((p) => p.sas!.flatMap((s) => [s.key_in, s.key_out]));

test("controller configs: every pair has mirrored SAs, each CE sees only its peers and keys, and each config loads", async () => {
  await fc.assert(
    fc.asyncProperty(vpnArb, async (v) => {
      const ctl = await controller();
      try {
        const topology = topologyOf(v);
        await ctl.createVpn({ name: "vpn", topology, suite: v.suite, mode: v.mode, keying: "controller" });
        for (const [i, s] of v.sites.entries()) await ctl.addSite("vpn", siteOf(i, s));
        const vpn = (await ctl.store.getVpn("vpn"))!;
        const sites = await ctl.store.listSites("vpn");
        const names = sites.map((s) => s.name);
        const cfg = new Map<string, CeConfig>();
        for (const n of names) cfg.set(n, await ctl.configFor("vpn", n));

        // Topology: who talks to whom.
        for (const n of names) {
          const peers = cfg.get(n)!.peers.map((p) => p.name).sort();
          assert.deepEqual(peers, peersOf(vpn, sites, n));
          if (topology.kind === "full-mesh") assert.deepEqual(peers, names.filter((m) => m !== n).sort());
          else {
            const hubs = [topology.hub, topology.backupHub].filter(Boolean) as string[];
            if (hubs.includes(n)) assert.deepEqual(peers, names.filter((m) => m !== n).sort(), "a hub sees every other site");
            else assert.deepEqual(peers, [...hubs].sort(), "a spoke sees the hub(s) only");
          }
        }

        // Mirrored SAs on both sides of every pair.
        const pairs = pairsOf(vpn, sites);
        const keyOwners = new Map<string, string>();
        for (const [a, b] of pairs) {
          const pa = cfg.get(a)!.peers.find((p) => p.name === b)!;
          const pb = cfg.get(b)!.peers.find((p) => p.name === a)!;
          assert.equal(pa.sas!.length, 1);
          assert.equal(pb.sas!.length, 1);
          const [x, y] = [pa.sas![0], pb.sas![0]];
          assert.equal(x.spi_in, y.spi_out);
          assert.equal(x.spi_out, y.spi_in);
          assert.equal(x.key_in, y.key_out);
          assert.equal(x.key_out, y.key_in);
          assert.notEqual(x.key_in, x.key_out, "each direction has its own key");
          assert.equal(x.suite, v.suite);
          assert.equal(x.key_in.length, KEY_BYTES[v.suite] * 2);
          assert.equal(pa.wan, pb.wan, "both ends use the same kind of port");
          assert.equal(pa.mode, v.mode);
          for (const k of [x.key_in, x.key_out]) {
            assert.ok(!keyOwners.has(k), "no key serves two SAs");
            keyOwners.set(k, `${a}|${b}`);
          }
          // Addresses: where the other side is reached (its NAT's public side when natted).
          const sb = sites.find((s) => s.name === b)!;
          const port = sb.wan.find((w) => w.name === pb.wan)!;
          assert.equal(pa.address, port.publicAddress ?? port.privateAddress);
          assert.equal(pa.port, port.publicPort ?? port.privatePort);
          // A spoke's tunnel to the hub (controller keying: the hub alone) also carries the other spokes' prefixes (spoke to spoke through it).
          const hubs = topology.kind === "hub-and-spoke" ? [topology.hub, topology.backupHub].filter((h) => h !== undefined) : [];
          const spokes = sites.filter((s) => !hubs.includes(s.name)).sort((x, y) => (x.name < y.name ? -1 : 1));
          const viaB = b === hubs[0] && !hubs.includes(a) ? spokes.filter((s) => s.name !== a).flatMap((s) => s.prefixes) : [];
          assert.deepEqual(pa.prefixes, [...sb.prefixes, ...viaB]);
          assert.equal(pa.transit ?? false, a === hubs[0] && !hubs.includes(b), "the hub forwards between its spokes");
        }

        // Isolation: a CE's config holds the keys of its own pairs and no other.
        for (const n of names) {
          const c = cfg.get(n)!;
          const mine = keysOf(c);
          for (const k of mine) assert.ok(keyOwners.get(k)!.split("|").includes(n), `${n} holds a key of its own pair`);
          const text = JSON.stringify(c);
          for (const [k, owners] of keyOwners) {
            if (!owners.split("|").includes(n)) assert.ok(!text.includes(k), `${n} sees no key of ${owners}`);
          }
          const others = names.filter((m) => m !== n && !c.peers.some((p) => p.name === m));
          for (const m of others) assert.ok(!text.includes(`"${m}"`), `${n} is not told about ${m}`);
          const spis = c.peers.flatMap((p) => p.sas!.map((s) => s.spi_in));
          assert.equal(new Set(spis).size, spis.length, "spi_in unique on the node");
          // The config loads as `wesp check` and `ce.apply()` load it.
          const { config, warnings } = parseConfig(text, { baseDir: tmpdir(), source: `<${n}>` });
          assert.equal(config.peers.length, c.peers.length);
          assert.deepEqual(warnings.filter((w) => !/all-zero/.test(w.message)), []);
          const sn = sites.find((s) => s.name === n)!;
          assert.deepEqual(c.node.wan.map((w) => w.address), sn.wan.map((w) => w.privateAddress), "a CE's own ports carry its private addresses");
        }
      } finally {
        await ctl.store.close();
      }
    }),
    { numRuns: 40 },
  );
});

test("controller configs: a site added touches no existing pair; a site removed disappears from its peers only", async () => {
  const ctl = await controller();
  try {
    await ctl.createVpn({ name: "v", keying: "controller" });
    for (let i = 1; i <= 3; i++) await ctl.addSite("v", siteOf(i, { natted: i === 2, trustedPort: false }));
    const before = await Promise.all(["site1", "site2", "site3"].map((n) => ctl.configFor("v", n)));
    await ctl.addSite("v", siteOf(4, { natted: false, trustedPort: false }));
    const after = await Promise.all(["site1", "site2", "site3"].map((n) => ctl.configFor("v", n)));
    for (const [k, c] of after.entries()) {
      assert.deepEqual(c.peers.filter((p) => p.name !== "site4"), before[k].peers, "existing peers and SAs unchanged");
      assert.equal(c.peers.filter((p) => p.name === "site4").length, 1);
    }
    assert.equal((await ctl.configFor("v", "site2")).peers[0].keepalive, 20, "a CE behind a NAT keeps its mapping open");
    assert.equal((await ctl.configFor("v", "site1")).peers[0].keepalive, 0);
    assert.equal(await ctl.removeSite("v", "site3"), true);
    for (const n of ["site1", "site2", "site4"]) {
      const c = await ctl.configFor("v", n);
      assert.ok(!c.peers.some((p) => p.name === "site3"));
      const was = after.find((x) => x.node.name === n)?.peers.filter((p) => p.name !== "site3");
      if (was) assert.deepEqual(c.peers.filter((p) => p.name !== "site4"), was.filter((p) => p.name !== "site4"));
    }
    assert.equal((await ctl.store.listSas("v")).some((s) => s.src === "site3" || s.dst === "site3"), false);
    await assert.rejects(ctl.configFor("v", "site3"), /not found/);
  } finally {
    await ctl.store.close();
  }
});

test("controller configs: moving to hub-and-spoke deletes the spoke-to-spoke SAs and keeps the hub's", async () => {
  const ctl = await controller();
  try {
    await ctl.createVpn({ name: "v", keying: "controller" });
    for (let i = 1; i <= 4; i++) await ctl.addSite("v", siteOf(i, { natted: false, trustedPort: false }));
    assert.equal((await ctl.store.listSas("v")).length, 12);
    const hubBefore = await ctl.configFor("v", "site1");
    await ctl.setTopology("v", { kind: "hub-and-spoke", hub: "site1" });
    assert.equal((await ctl.store.listSas("v")).length, 6);
    const hubAfter = await ctl.configFor("v", "site1");
    assert.deepEqual(hubAfter.peers.map((p) => p.transit), [true, true, true], "the hub now forwards between its spokes");
    assert.deepEqual({ ...hubAfter, peers: hubAfter.peers.map(({ transit: _t, ...p }) => p) }, hubBefore, "the hub's SAs stay as they were");
    assert.deepEqual((await ctl.configFor("v", "site3")).peers.map((p) => p.name), ["site1"]);
    assert.deepEqual(await ctl.reconcile("v"), { made: 0, deleted: 0 }, "reconciling again changes nothing");
    await ctl.setTopology("v", { kind: "hub-and-spoke", hub: "site1", backupHub: "site2" });
    assert.deepEqual((await ctl.configFor("v", "site3")).peers.map((p) => p.name), ["site1", "site2"]);
    assert.deepEqual((await ctl.configFor("v", "site2")).peers.map((p) => p.name), ["site1", "site3", "site4"]);
  } finally {
    await ctl.store.close();
  }
});

test("controller keys: sealed at rest, bound to their row, opened only under the master key", async () => {
  const dir = mkdtempSync(join(tmpdir(), "wesp-ctl-keys-"));
  try {
    const url = join(dir, "c.db");
    const master = randomBytes(32);
    const ctl = new Controller(await openStore(url), new KeySealer(master));
    await ctl.createVpn({ name: "v", keying: "controller" });
    await ctl.addSite("v", siteOf(1, { natted: false, trustedPort: false }));
    await ctl.addSite("v", siteOf(2, { natted: false, trustedPort: false }));
    const c = await ctl.configFor("v", "site1");
    const sas = await ctl.store.listSas("v");
    await ctl.store.close();
    const raw = Buffer.concat([readFileSync(url), ...[`${url}-wal`].flatMap((f) => { try { return [readFileSync(f)]; } catch { return []; } })]);
    for (const k of keysOf(c)) {
      assert.ok(!raw.includes(Buffer.from(k, "hex")), "no key bytes in the database file");
      assert.ok(!raw.includes(Buffer.from(k)), "no key hex in the database file");
    }
    const sealer = new KeySealer(master);
    const [x, y] = sas;
    const id = (s: typeof x) => ({ vpn: "v", src: s.src, dst: s.dst, generation: s.generation, spi: s.spi });
    assert.equal(sealer.open(id(x), x.sealedKey).length, 36);
    assert.throws(() => sealer.open(id(y), x.sealedKey), KeySealError, "a sealed key moved to another row does not open");
    assert.throws(() => sealer.open({ ...id(x), vpn: "w" }, x.sealedKey), KeySealError);
    assert.throws(() => new KeySealer(randomBytes(32)).open(id(x), x.sealedKey), /does not open/);
    assert.throws(() => sealer.open(id(x), x.sealedKey.slice(0, 20)), /truncated|does not open/);
    assert.throws(() => new KeySealer(randomBytes(16)), /32 bytes/);
    const bad = Uint8Array.from(x.sealedKey);
    bad[14] ^= 1;
    assert.throws(() => sealer.open(id(x), bad), KeySealError);
    // A wrong master key fails loudly when a config is made, naming no key.
    const wrong = new Controller(await openStore(url), new KeySealer(randomBytes(32)));
    await assert.rejects(wrong.configFor("v", "site1"), (e: Error) => e instanceof KeySealError && !/[0-9a-f]{32}/.test(e.message));
    await wrong.store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("controller master key file: made 0600 on first use, read back, refused when group or others can read it or when malformed", () => {
  const dir = mkdtempSync(join(tmpdir(), "wesp-ctl-mk-"));
  try {
    const p = join(dir, "master.key");
    const k = loadOrCreateMasterKey(p);
    assert.equal(k.length, 32);
    assert.equal(statSync(p).mode & 0o777, 0o600);
    assert.deepEqual(loadOrCreateMasterKey(p), k);
    chmodSync(p, 0o640);
    assert.throws(() => loadOrCreateMasterKey(p), /0640.*chmod 600/);
    writeFileSync(p, "abc\n", { mode: 0o600 });
    chmodSync(p, 0o600);
    assert.throws(() => loadOrCreateMasterKey(p), /64 hex digits/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
