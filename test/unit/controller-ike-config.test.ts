// The per-CE configs of IKE-keyed VPNs (host/controller/render.ts,
// render_ike.ts; issue 8 item 2), as properties over random VPNs: each peer
// has an `ike` block and no key — none in the config, none in the database;
// both ends of every pair name each other's certificate identity and exactly
// one of them initiates (the one behind a NAT when only one is, else the lower
// site id); every config, beside the certificate, key and CA a CE holds after
// enrolment (from the controller's own CA, ca.ts), passes `wesp check`'s
// loader. A revocation reaches exactly the revoked site's block in its peers'
// configs; a removed site leaves them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { ControllerCa } from "../../host/controller/ca.ts";
import { Controller } from "../../host/controller/controller.ts";
import { KeySealer } from "../../host/controller/keys.ts";
import type { CeConfig } from "../../host/controller/render.ts";
import { CONTROLLER_MODES, CONTROLLER_SUITES, type Topology } from "../../host/controller/store/model.ts";
import { siteOf } from "./controller-sites.ts";
import { openStore } from "../../host/controller/store/store.ts";
import { pairsOf } from "../../host/controller/topology.ts";
import { CE_FILES } from "../../host/agent/state.ts";
import { parseConfig } from "../../host/config/load.ts";
import { keyPairPem, makeCsr, newKeyPair, siteIdentity, writePrivateFile } from "../../host/util/pki.ts";

/** What an enrolled CE holds (host/agent/state.ts): its key, the certificate the CA issued for `site@vpn`, the CA. */
async function enrolled(ca: ControllerCa, ctl: Controller, dir: string, vpn: string, site: string): Promise<string> {
  const keys = await newKeyPair();
  const c = await ca.signCsr(await makeCsr(siteIdentity(vpn, site), keys), siteIdentity(vpn, site));
  await ctl.store.recordCertificate(vpn, site, c.serial, c.notAfter);
  const d = join(dir, site);
  mkdirSync(d, { recursive: true });
  writePrivateFile(join(d, CE_FILES.key), await keyPairPem(keys));
  writeFileSync(join(d, CE_FILES.cert), c.pem);
  writeFileSync(join(d, CE_FILES.ca), ca.pem);
  return c.serial;
}

const vpnArb = fc.record({
  sites: fc.array(fc.record({ natted: fc.boolean(), trustedPort: fc.boolean() }), { minLength: 2, maxLength: 6 }),
  hub: fc.option(fc.nat(), { nil: undefined }),
  suite: fc.constantFrom(...CONTROLLER_SUITES),
  mode: fc.constantFrom(...CONTROLLER_MODES),
  // the VPN's SA lifetimes, often ones IKE keying cannot express (refused at create-vpn)
  saLifetime: fc.option(fc.record({
    seconds: fc.integer({ min: 2, max: 700_000 }), softSeconds: fc.integer({ min: 2, max: 700_000 }),
    bytes: fc.integer({ min: 1, max: 2 ** 40 }), packets: fc.integer({ min: 1, max: 2 ** 32 }),
  }, { requiredKeys: [] }), { nil: undefined }),
});

const dir = mkdtempSync(join(tmpdir(), "wesp-ctl-ike-"));
const caP = ControllerCa.open(join(dir, "ca"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

test("IKE-keyed configs: no key anywhere, mirrored identities, one initiator per pair, each config loads with the CE's enrolment files", async () => {
  const ca = await caP;
  let run = 0;
  await fc.assert(
    fc.asyncProperty(vpnArb, async (v) => {
      const ctl = new Controller(await openStore(":memory:"), new KeySealer(randomBytes(32)));
      const at = join(dir, `run${run++}`);
      try {
        const topology: Topology = v.hub === undefined ? { kind: "full-mesh" } : { kind: "hub-and-spoke", hub: `site${v.hub % v.sites.length}` };
        let vpn;
        try {
          vpn = await ctl.createVpn({ name: "vpn", topology, suite: v.suite, mode: v.mode, ...(v.saLifetime ? { saLifetime: v.saLifetime } : {}) });
        } catch (e) {
          const l = v.saLifetime!;
          assert.ok(l, `only a lifetime is refused: ${(e as Error).message}`);
          assert.match((e as Error).message, /saLifetime\.(seconds|softSeconds)/);
          const child = l.seconds ?? 3600;
          assert.ok(child < 10 || child > 604800 || (l.softSeconds ?? 0) >= child, `refused only what a CE's IKE cannot take: ${JSON.stringify(l)}`);
          return;
        }
        assert.equal(vpn.keying, "ike", "IKE is the default keying");
        for (const [i, s] of v.sites.entries()) await ctl.addSite("vpn", siteOf(i, s));
        const sites = await ctl.store.listSites("vpn");
        for (const s of sites) await enrolled(ca, ctl, at, "vpn", s.name);
        assert.deepEqual(await ctl.store.listSas("vpn"), [], "no SA (and no key) in the database");
        const cfg = new Map<string, CeConfig>();
        for (const s of sites) cfg.set(s.name, await ctl.configFor("vpn", s.name));

        for (const [a, b] of pairsOf(vpn, sites)) {
          const pa = cfg.get(a)!.peers.find((p) => p.name === b)!;
          const pb = cfg.get(b)!.peers.find((p) => p.name === a)!;
          assert.ok(pa.ike && pb.ike && !pa.sas && !pb.sas, "an ike block, no SAs");
          assert.equal(pa.ike.initiate, !pb.ike.initiate, `exactly one of ${a}, ${b} initiates`);
          const na = sites.find((s) => s.name === a)!.wan.find((w) => w.name === pa.wan)!.natType !== "none";
          const nb = sites.find((s) => s.name === b)!.wan.find((w) => w.name === pb.wan)!.natType !== "none";
          if (na !== nb) assert.equal(pa.ike.initiate, na, "the side behind a NAT initiates");
          else assert.equal(pa.ike.initiate, sites.find((s) => s.name === a)!.siteId > sites.find((s) => s.name === b)!.siteId, "else the higher (newer) site id");
          assert.deepEqual(pa.ike.local_id, pb.ike.remote_id);
          assert.deepEqual(pa.ike.remote_id, { type: "rfc822", value: `${b}@vpn` });
          assert.deepEqual(pa.ike.proposals, pb.ike.proposals);
          assert.equal(pa.mode, v.mode);
          assert.equal(pa.wan, pb.wan, "both ends use the same kind of port");
        }
        for (const s of sites) {
          const c = cfg.get(s.name)!;
          const text = JSON.stringify(c);
          assert.doesNotMatch(text, /"(key_in|key_out|psk|psk_file|sas)"/, "no key material");
          const { config, warnings } = parseConfig(text, { baseDir: join(at, s.name), source: `<${s.name}>` });
          assert.deepEqual(warnings, []);
          assert.equal(config.peers.length, c.peers.length);
          for (const p of config.peers) {
            assert.ok(p.ike?.certs, "certificate authentication");
            // the VPN's lifetimes are the CHILD_SAs': expiry at the hard one, the rekey from the soft one (or 90 % of the hard one) on
            const lt = p.ike.lifetime;
            assert.equal(lt.childSeconds, vpn.saLifetime.seconds ?? 3600);
            assert.equal(lt.childSeconds - lt.rekeyMargin, vpn.saLifetime.softSeconds !== undefined && vpn.saLifetime.softSeconds < lt.childSeconds ? vpn.saLifetime.softSeconds : Math.floor(lt.childSeconds * 0.9));
            assert.ok(lt.rekeyMargin + lt.rekeyJitter < lt.childSeconds && lt.ikeSeconds >= lt.childSeconds);
            assert.equal(lt.childBytes, vpn.saLifetime.bytes);
            assert.equal(lt.childPackets, vpn.saLifetime.packets);
            assert.equal(p.ike.localId.type, "rfc822");
            assert.equal(p.ike.certs.chain[0].checkEmail(`${s.name}@vpn`), `${s.name}@vpn`, "our identity is our certificate's");
          }
        }
      } finally {
        await ctl.store.close();
        rmSync(at, { recursive: true, force: true });
      }
    }),
    { numRuns: 25 },
  );
});

test("IKE-keyed configs: a revocation changes the revoked site's block in its peers' configs and nothing else; a removed site leaves them", async () => {
  const ca = await caP;
  const ctl = new Controller(await openStore(":memory:"), new KeySealer(randomBytes(32)));
  const at = join(dir, "revoke");
  try {
    await ctl.createVpn({ name: "v" });
    for (let i = 1; i <= 3; i++) await ctl.addSite("v", siteOf(i, { natted: false, trustedPort: false }));
    const serial: Record<string, string> = {};
    for (const n of ["site1", "site2", "site3"]) serial[n] = await enrolled(ca, ctl, at, "v", n);
    const before = await Promise.all(["site1", "site2", "site3"].map((n) => ctl.configFor("v", n)));
    assert.equal(await ctl.revokeSite("v", "site3"), 1);
    const after = await Promise.all(["site1", "site2", "site3"].map((n) => ctl.configFor("v", n)));
    for (const k of [0, 1]) {
      const b = before[k].peers;
      const a = after[k].peers;
      assert.deepEqual(a.filter((p) => p.name !== "site3"), b.filter((p) => p.name !== "site3"), "other peers untouched (no IKE restart)");
      const p3 = a.find((p) => p.name === "site3")!;
      assert.deepEqual(p3.ike!.auth.revoked_serials, [serial.site3.toLowerCase()]);
      assert.deepEqual({ ...p3, ike: { ...p3.ike!, auth: { ...p3.ike!.auth, revoked_serials: undefined } } },
        { ...b.find((p) => p.name === "site3")!, ike: { ...b.find((p) => p.name === "site3")!.ike!, auth: { ...b.find((p) => p.name === "site3")!.ike!.auth, revoked_serials: undefined } } });
      const { config } = parseConfig(JSON.stringify(after[k]), { baseDir: join(at, `site${k + 1}`), source: "<after>" });
      const c3 = config.peers.find((p) => p.name === "site3")!.ike!.certs!;
      assert.deepEqual(c3.revokedSerials, [serial.site3.toUpperCase().replace(/^0+/, "")], "the loader refuses site3's certificate");
    }
    assert.deepEqual(after[2], before[2], "the revoked site's own config is unchanged (the CE API refuses it anyway)");
    await ctl.removeSite("v", "site2");
    for (const n of ["site1", "site3"]) assert.ok(!(await ctl.configFor("v", n)).peers.some((p) => p.name === "site2"));
  } finally {
    await ctl.store.close();
  }
});
