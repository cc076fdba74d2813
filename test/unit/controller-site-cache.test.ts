// Controller.configFor reads a VPN's sites once per VPN version (the pull
// after a notification, from every CE at once: docs/controller.md "Scale"):
// pulls at one version share one read, concurrent ones included; any change
// raises the version and the next pull sees it; a failed read is not kept.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Controller } from "../../host/controller/controller.ts";
import { KeySealer } from "../../host/controller/keys.ts";
import type { NewSite } from "../../host/controller/store/model.ts";
import { openStore, type Store } from "../../host/controller/store/store.ts";

const site = (i: number): NewSite => ({ name: `s${i}`, prefixes: [`10.${i}.0.0/16`], wan: [{ name: "inet", privateAddress: `192.0.2.${i}` }] });

/** The store with its listSites calls counted, and a switch that makes the next one fail. */
function counting(store: Store) {
  const c = { reads: 0, failNext: false };
  const proxy = new Proxy(store, {
    get(t, k, r) {
      if (k === "listSites") {
        return async (vpn: string) => {
          c.reads++;
          if (c.failNext) {
            c.failNext = false;
            throw new Error("database gone");
          }
          return t.listSites(vpn);
        };
      }
      const v = Reflect.get(t, k, r);
      return typeof v === "function" ? v.bind(t) : v;
    },
  });
  return { store: proxy, c };
}

for (const keying of ["controller", "ike"] as const) {
  test(`configFor (keying ${keying}): one site read per VPN version, shared by concurrent pulls; a change is seen at once`, async () => {
    const inner = await openStore(":memory:");
    const { store, c } = counting(inner);
    const ctl = new Controller(store, new KeySealer(randomBytes(32)));
    try {
      await ctl.createVpn({ name: "v", keying });
      for (const i of [1, 2, 3]) await ctl.addSite("v", site(i));
      c.reads = 0;
      const first = await Promise.all(["s1", "s2", "s3", "s1", "s2", "s3"].map((s) => ctl.configFor("v", s)));
      assert.equal(c.reads, 1, "six concurrent pulls at one version: one read");
      assert.deepEqual(first[0].peers.map((p) => p.name), ["s2", "s3"]);
      assert.deepEqual(first[3], first[0], "the same config again");

      // A change raises the version: the next pull reads again and has the new site.
      await ctl.addSite("v", site(4));
      c.reads = 0; // (the add's own reconcile reads the sites too)
      assert.deepEqual((await ctl.configFor("v", "s1")).peers.map((p) => p.name), ["s2", "s3", "s4"]);
      await ctl.configFor("v", "s4");
      assert.equal(c.reads, 1, "a new version: one read for the pulls after it");

      // So does a WAN port update (a registration), and a removed site is gone from the next pull.
      await inner.updateWanPort("v", "s2", "inet", { publicAddress: "198.51.100.2", publicPort: 40000 });
      assert.equal((await ctl.configFor("v", "s1")).peers.find((p) => p.name === "s2")!.address, "198.51.100.2");
      await ctl.removeSite("v", "s3");
      assert.deepEqual((await ctl.configFor("v", "s1")).peers.map((p) => p.name), ["s2", "s4"]);
      await assert.rejects(ctl.configFor("v", "s3"), /site "s3" not found/);

      // A failed read is refused to that pull and not kept: the next one reads again.
      await ctl.addSite("v", site(5));
      c.failNext = true;
      await assert.rejects(ctl.configFor("v", "s1"), /database gone/);
      assert.deepEqual((await ctl.configFor("v", "s1")).peers.map((p) => p.name), ["s2", "s4", "s5"]);
    } finally {
      await inner.close();
    }
  });
}
