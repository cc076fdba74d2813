// Adding many sites at once (Store.addSites, Controller.addSites): the
// provisioning path of a large VPN (docs/controller.md "Scale"). The overlap
// check over every site's prefixes (rules.ts firstOverlap: sort, then compare
// neighbours) is held equal to checking every pair; a batch is all or none
// and bumps the version once; the refusals are those of addSite.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { prefixesOverlap, parsePrefix } from "../../host/config/addr.ts";
import type { Prefix } from "../../host/config/model.ts";
import { Controller } from "../../host/controller/controller.ts";
import { KeySealer } from "../../host/controller/keys.ts";
import { StoreError, type NewSite } from "../../host/controller/store/model.ts";
import { firstOverlap } from "../../host/controller/store/rules.ts";
import { openStore } from "../../host/controller/store/store.ts";

const prefix = (t: string): Prefix => {
  const p = parsePrefix(t);
  assert.ok(p.ok, t);
  return p.value;
};

test("firstOverlap finds an overlap exactly when some pair overlaps (IPv4 and IPv6 mixed)", () => {
  // Few distinct networks and lengths, so that overlaps are common.
  const v4 = fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 12, max: 20 })).map(([x, len]) => {
    const net = (((0x0a000000 | (x << 12)) >>> 0) & ((~0 << (32 - len)) >>> 0)) >>> 0;
    return prefix(`${net >>> 24}.${(net >> 16) & 255}.${(net >> 8) & 255}.${net & 255}/${len}`);
  });
  const v6 = fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 32, max: 36 })).map(([a, len]) => prefix(`fd00:${a}::/${len}`));
  fc.assert(fc.property(fc.array(fc.oneof(v4, v6), { maxLength: 12 }), (ps) => {
    const list = ps.map((p, i) => ({ site: `s${i}`, prefix: p }));
    let naive = false;
    for (let i = 0; i < list.length; i++) for (let j = i + 1; j < list.length; j++) naive ||= prefixesOverlap(list[i].prefix, list[j].prefix);
    const hit = firstOverlap(list);
    assert.equal(hit !== undefined, naive);
    if (hit) assert.ok(prefixesOverlap(hit[0].prefix, hit[1].prefix));
  }), { numRuns: 2000 });
});

const site = (i: number, prefixes = [`10.${i}.0.0/16`]): NewSite => ({ name: `s${i}`, prefixes, wan: [{ name: "inet", privateAddress: `192.0.2.${i}` }] });

test("addSites: all or none, one version bump, addSite's refusals; Controller.addSites makes the SAs", async () => {
  const store = await openStore(":memory:");
  const ctl = new Controller(store, new KeySealer(randomBytes(32)));
  try {
    await ctl.createVpn({ name: "v", topology: { kind: "hub-and-spoke", hub: "s1" }, keying: "controller" });
    await store.addSite("v", site(1));
    const v0 = (await store.getVpn("v"))!.version;
    assert.equal(await ctl.addSites("v", [site(2), site(3), site(4)]), 3);
    assert.deepEqual((await store.listSites("v")).map((s) => [s.name, s.siteId, s.wan[0].privatePort]), [["s1", 1, 4500], ["s2", 2, 4500], ["s3", 3, 4500], ["s4", 4, 4500]]);
    assert.equal((await store.listSas("v")).length, 6, "hub ↔ three spokes, both directions");
    assert.equal((await store.getVpn("v"))!.version, v0 + 1 + 3, "one bump for the sites, one per SA pair");

    const refused = async (batch: NewSite[], code: string, text: RegExp) => {
      const before = (await store.listSites("v")).length;
      await assert.rejects(store.addSites("v", batch), (e: unknown) => e instanceof StoreError && e.code === code && text.test(e.message));
      assert.equal((await store.listSites("v")).length, before, "nothing of the batch was added");
    };
    await refused([site(5), site(6, ["10.3.128.0/17"])], "invalid", /10\.3\.128\.0\/17 of site "s6" overlaps 10\.3\.0\.0\/16 of site "s3"/);
    await refused([site(5), site(6, ["10.5.1.0/24"])], "invalid", /overlaps 10\.5\.0\.0\/16 of site "s5"/);
    await refused([site(5), site(2)], "conflict", /site "s2" exists/);
    await refused([site(5), { ...site(6), systemId: "v/s5" }], "conflict", /system id "v\/s5" given twice/);
    await refused([site(5), { ...site(6), systemId: "v/s1" }], "conflict", /system id "v\/s1" belongs to another site/);
    await refused([site(5), { ...site(6), name: "bad name" }], "invalid", /name/);
    assert.equal(await store.addSites("v", []), 0);
  } finally {
    await store.close();
  }
});
