// PUT /v1/ce/wan/{port} over real mTLS on 127.0.0.1 (host/controller/api/ce_wan.ts):
// a CE registers the public address and port STUN told it of its own WAN port,
// and its peers' configs carry them (render.ts, net2cloud §5.2); a port of
// another site, a name it does not have, and hostile bodies are refused and
// leave the store alone; an unchanged registration bumps nothing.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Controller } from "../../host/controller/controller.ts";
import type { RunningApi } from "../../host/controller/api/server.ts";
import { CeClient, ControllerError } from "../../host/agent/ce_client.ts";
import { enrolledCe } from "./controller-ce-fixture.ts";

describe("a CE registers its WAN ports' public side", () => {
  let ctl: Controller;
  let api: RunningApi;
  let a: CeClient;
  let logs: string[];
  let close: () => Promise<void>;

  before(async () => {
    ({ ctl, api, a, logs, close } = await enrolledCe("cewan", async (operator) => {
      await operator.createVpn({ name: "v" });
      await operator.addSite("v", { name: "a", prefixes: ["10.1.0.0/16"], wan: [{ name: "inet", privateAddress: "10.0.0.2" }] });
      await operator.addSite("v", { name: "b", prefixes: ["10.2.0.0/16"], wan: [{ name: "inet", privateAddress: "192.0.2.2" }, { name: "mpls", privateAddress: "198.51.100.2", trusted: true }] });
    }, 3478));
  });
  after(() => close?.());

  const peerA = async () => (await ctl.configFor("v", "b")).peers.find((p) => p.name === "a")!;
  const version = async () => (await ctl.store.getVpn("v"))!.version;
  async function refused(p: Promise<unknown>, status: number, msg: RegExp): Promise<void> {
    await assert.rejects(p, (e: unknown) => {
      assert.ok(e instanceof ControllerError, String(e));
      assert.equal(e.status, status, e.message);
      assert.match(e.message, msg);
      return true;
    });
  }

  test("the config answer names the controller's STUN port", async () => {
    const r = await a.call<{ stun?: { port: number } }>("GET", "/v1/ce/config");
    assert.deepEqual(r.stun, { port: 3478 });
  });

  test("a registered mapping is what the CE's peers are given; the same again changes nothing", async () => {
    assert.deepEqual([(await peerA()).address, (await peerA()).port], ["10.0.0.2", 4500], "before: the configured address");
    const v0 = await version();
    const r = await a.call<{ changed: boolean; port: { publicAddress: string; publicPort: number; natType: string } }>("PUT", "/v1/ce/wan/inet", { publicAddress: "203.0.113.7", publicPort: 40001 });
    assert.equal(r.changed, true);
    assert.deepEqual([r.port.publicAddress, r.port.publicPort, r.port.natType], ["203.0.113.7", 40001, "unknown"], "a translated port without a type: unknown (not none)");
    assert.equal(await version(), v0 + 1, "one change: the VPN's peers are notified and pull");
    const p = await peerA();
    assert.deepEqual([p.address, p.port, p.nat_t], ["203.0.113.7", 40001, true], "b reaches a at its public side");
    const self = (await ctl.configFor("v", "a")).peers.find((x) => x.name === "b")!;
    assert.ok(self.keepalive > 0, "a, behind a NAT, sends keepalives to hold the mapping (RFC 3948 §2.3)");
    assert.ok(logs.some((l) => /WAN port v\/a\/inet registered: public 203\.0\.113\.7:40001/.test(l)));

    const again = await a.call<{ changed: boolean }>("PUT", "/v1/ce/wan/inet", { publicAddress: "203.0.113.7", publicPort: 40001 });
    assert.equal(again.changed, false);
    assert.equal(await version(), v0 + 1, "no bump, no notification for an unchanged registration");
  });

  test("a mapping equal to the port's own address: no NAT, peers use the configured address", async () => {
    const r = await a.call<{ port: { publicAddress?: string; natType: string } }>("PUT", "/v1/ce/wan/inet", { publicAddress: "10.0.0.2", publicPort: 4500 });
    assert.equal(r.port.publicAddress, undefined);
    assert.equal(r.port.natType, "none");
    assert.deepEqual([(await peerA()).address, (await peerA()).port], ["10.0.0.2", 4500]);
    const self = (await ctl.configFor("v", "a")).peers.find((x) => x.name === "b")!;
    assert.equal(self.keepalive, 0);
  });

  test("a CE can name only its own ports: another site's port, an unknown name, a hostile name are 404", async () => {
    const v0 = await version();
    const body = { publicAddress: "203.0.113.8", publicPort: 40002 };
    await refused(a.call("PUT", "/v1/ce/wan/mpls", body), 404, /site "a" has no WAN port "mpls"/);
    await refused(a.call("PUT", "/v1/ce/wan/nope", body), 404, /no WAN port/);
    await refused(a.call("PUT", "/v1/ce/wan/..%2Fb%2Finet", body), 404, /no such WAN port/);
    await refused(a.call("PUT", `/v1/ce/wan/${"x".repeat(40)}`, body), 404, /no such WAN port/);
    await refused(a.call("GET", "/v1/ce/wan/inet"), 405, /PUT/);
    const b = (await ctl.store.getSite("v", "b"))!;
    assert.ok(b.wan.every((w) => w.publicAddress === undefined), "b's ports untouched");
    assert.equal(await version(), v0);
  });

  test("hostile bodies are refused (400) and change nothing", async () => {
    const v0 = await version();
    const bodies: Array<[unknown, RegExp]> = [
      [null, /publicAddress, publicPort/],
      [[1, 2], /publicAddress, publicPort/],
      ["203.0.113.7", /publicAddress, publicPort/],
      [{ publicAddress: "203.0.113.7", publicPort: 1, extra: 1 }, /unknown field "extra"/],
      [{ publicAddress: "203.0.113.999", publicPort: 1 }, /publicAddress/],
      [{ publicAddress: "x".repeat(1000), publicPort: 1 }, /publicAddress/],
      [{ publicAddress: 7, publicPort: 1 }, /publicAddress/],
      [{ publicAddress: "203.0.113.7" }, /publicPort/],
      [{ publicAddress: "203.0.113.7", publicPort: 0 }, /publicPort/],
      [{ publicAddress: "203.0.113.7", publicPort: 65536 }, /publicPort/],
      [{ publicAddress: "203.0.113.7", publicPort: 1.5 }, /publicPort/],
      [{ publicAddress: "203.0.113.7", publicPort: "4500" }, /publicPort/],
      [{ publicAddress: "2001:db8::1", publicPort: 4500 }, /port "inet" is IPv4/],
      [{ publicAddress: "203.0.113.7", publicPort: 4500, natType: "leaky" }, /natType/],
    ];
    for (const [body, msg] of bodies) await refused(a.call("PUT", "/v1/ce/wan/inet", body), 400, msg);
    assert.equal(await version(), v0);
    assert.equal((await ctl.store.getSite("v", "a"))!.wan[0].publicAddress, undefined);
  });

  test("without a client certificate the route is refused", async () => {
    const anon = new CeClient(api.url, {});
    await refused(anon.call("PUT", "/v1/ce/wan/inet", { publicAddress: "203.0.113.7", publicPort: 1 }), 401, /client certificate/);
  });
});
