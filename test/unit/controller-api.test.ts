// The controller's operator API over real HTTPS on 127.0.0.1 (server.ts,
// client.ts): the typed client end to end, authentication, and hostile
// requests — bad JSON, wrong types, huge bodies, odd paths, and fast-check
// JSON values — each answered 4xx with a reason, the server still up.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { Controller } from "../../host/controller/controller.ts";
import { KeySealer } from "../../host/controller/keys.ts";
import { ApiError, ControllerClient } from "../../host/controller/api/client.ts";
import { startApi, type RunningApi } from "../../host/controller/api/server.ts";
import { ensureSelfSigned, type TlsFiles } from "../../host/controller/api/tls.ts";
import { openStore } from "../../host/controller/store/store.ts";
import { requireTools } from "../helpers/require.ts";

interface Raw {
  status: number;
  body: { error?: { code: string; message: string; details?: string[] } } & Record<string, unknown>;
}

describe("controller API", { skip: requireTools(["openssl"], { why: "controller HTTPS API (self-signed certificate)" }) }, () => {
  let dir: string;
  let tls: TlsFiles;
  let ctl: Controller;
  let api: RunningApi;
  let token: string;
  let client: ControllerClient;
  const logs: string[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "wesp-ctl-api-"));
    tls = ensureSelfSigned(join(dir, "tls"));
    ctl = new Controller(await openStore(":memory:"), new KeySealer(randomBytes(32)));
    token = await ctl.store.createOperatorToken("ops");
    api = await startApi({ controller: ctl, tls, port: 0, log: (l) => logs.push(l) });
    client = new ControllerClient({ url: api.url, token, ca: tls.cert });
  });
  after(async () => {
    await api?.close();
    await ctl?.store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function raw(method: string, path: string, opts: { body?: string | Buffer; type?: string; auth?: string | null } = {}): Promise<Raw> {
    return new Promise((resolve, reject) => {
      const req = request(new URL(path, api.url), {
        method,
        ca: tls.cert,
        headers: {
          ...(opts.auth === null ? {} : { authorization: opts.auth ?? `Bearer ${token}` }),
          ...(opts.body !== undefined ? { "content-type": opts.type ?? "application/json" } : {}),
        },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const t = Buffer.concat(chunks).toString();
          resolve({ status: res.statusCode!, body: t ? JSON.parse(t) : {} });
        });
      });
      req.on("error", reject);
      req.end(opts.body);
    });
  }

  test("the typed client: create a VPN, add and remove sites, list, topology, tokens, a site's config", async () => {
    assert.deepEqual(await client.health(), { ok: true, store: "sqlite" });
    const v = await client.createVpn({ name: "acme", topology: { kind: "full-mesh" }, keying: "controller" });
    assert.equal(v.version, 1);
    assert.equal(v.keying, "controller");
    await client.addSite("acme", { name: "hq", prefixes: ["10.1.0.0/16"], wan: [{ name: "inet", privateAddress: "192.0.2.1" }] });
    await client.addSite("acme", { name: "b", prefixes: ["10.2.0.0/16"], wan: [{ name: "inet", privateAddress: "192.168.2.2", publicAddress: "198.51.100.2", publicPort: 4500, natType: "symmetric" }] });
    await client.addSite("acme", { name: "c", prefixes: ["10.3.0.0/16"], wan: [{ name: "inet", privateAddress: "203.0.113.3" }] });
    assert.deepEqual((await client.listVpns()).map((x) => x.name), ["acme"]);
    assert.deepEqual((await client.listSites("acme")).map((s) => s.name), ["hq", "b", "c"]);
    const hq = await client.siteConfig("acme", "hq");
    assert.deepEqual(hq.peers.map((p) => [p.name, p.address]), [["b", "198.51.100.2"], ["c", "203.0.113.3"]]);
    const b = await client.siteConfig("acme", "b");
    assert.equal(b.peers.find((p) => p.name === "hq")!.sas![0].key_in, hq.peers.find((p) => p.name === "b")!.sas![0].key_out);
    await client.setTopology("acme", { kind: "hub-and-spoke", hub: "hq" });
    assert.deepEqual((await client.siteConfig("acme", "c")).peers.map((p) => p.name), ["hq"]);
    const site = await client.updateWanPort("acme", "c", "inet", { natType: "full-cone" });
    assert.equal(site.wan[0].natType, "full-cone");
    const t = await client.createEnrolmentToken("acme", "c", 60);
    assert.match(t.token, /^wesp-enrol-/);
    assert.deepEqual(await ctl.store.consumeEnrolmentToken(t.token), { vpn: "acme", site: "c" });
    await client.removeSite("acme", "b");
    assert.deepEqual((await client.getVpn("acme")).sites.map((s) => s.name), ["hq", "c"]);
    await assert.rejects(client.removeSite("acme", "hq"), (e: unknown) => e instanceof ApiError && e.status === 409 && /hub/.test(e.message));
    await assert.rejects(client.createVpn({ name: "acme" }), (e: unknown) => e instanceof ApiError && e.status === 409);
    await assert.rejects(client.getSite("acme", "nope"), (e: unknown) => e instanceof ApiError && e.status === 404);
    await client.deleteVpn("acme");
    assert.deepEqual(await client.listVpns(), []);
    assert.ok(logs.some((l) => /^ops POST \/v1\/vpns → 201$/.test(l)), "operator changes are logged by operator name");
    assert.ok(!logs.join("\n").includes(token) && !logs.join("\n").includes(hq.peers[0].sas![0].key_in), "no token or key in the log");
  });

  test("authentication: no token, a wrong one, or a malformed header is 401; health needs none", async () => {
    for (const auth of [null, "Bearer wesp-op-nope", "Basic abc", `Bearer ${token} extra`, "Bearer " + "x".repeat(300)]) {
      const r = await raw("GET", "/v1/vpns", { auth });
      assert.equal(r.status, 401, String(auth));
      assert.equal(r.body.error?.code, "unauthenticated");
    }
    await assert.rejects(new ControllerClient({ url: api.url, token: "wrong", ca: tls.cert }).listVpns(), (e: unknown) => e instanceof ApiError && e.status === 401);
    assert.equal((await raw("GET", "/v1/health", { auth: null })).status, 200);
    const unauth = await raw("POST", "/v1/vpns", { auth: null, body: "{not json" });
    assert.equal(unauth.status, 401, "bodies of unauthenticated requests are not read");
  });

  test("a client that does not trust the controller's certificate refuses to talk", async () => {
    const other = ensureSelfSigned(join(dir, "other"));
    await assert.rejects(new ControllerClient({ url: api.url, token, ca: other.cert }).listVpns(), /self.signed|certificate/i);
  });

  test("hostile requests: each answered 4xx with a reason", async () => {
    const cases: [string, string, Parameters<typeof raw>[2], number, string | RegExp][] = [
      ["POST", "/v1/vpns", { body: "{" }, 400, "bad-json"],
      ["POST", "/v1/vpns", { body: "[]" }, 400, "invalid-body"],
      ["POST", "/v1/vpns", { body: "null" }, 400, "invalid-body"],
      ["POST", "/v1/vpns", { body: '"x"' }, 400, "invalid-body"],
      ["POST", "/v1/vpns", { body: '{"name":"a","extra":1}' }, 400, "invalid-body"],
      ["POST", "/v1/vpns", { body: '{"name":"a","__proto__":{"admin":true}}' }, 400, "invalid-body"],
      ["POST", "/v1/vpns", { body: '{"name":"a b"}' }, 400, "invalid-body"],
      ["POST", "/v1/vpns", { body: '{"name":"a","keying":"psk"}' }, 400, "invalid-body"],
      ["POST", "/v1/vpns", { body: '{"name":"a","topology":{"kind":"hub-and-spoke"}}' }, 400, "invalid-body"],
      ["POST", "/v1/vpns", { body: '{"name":"a"}', type: "text/plain" }, 415, "unsupported-media-type"],
      ["POST", "/v1/vpns", { body: "{" + '"a":'.repeat(1) + "[".repeat(5000) + "]".repeat(5000) + "}" }, 400, "invalid-body"],
      ["POST", "/v1/vpns", { body: Buffer.alloc(70 * 1024, 0x20) }, 413, "too-large"],
      ["POST", "/v1/vpns/nope/sites", { body: '{"name":"s","prefixes":["10.0.0.0/8"],"wan":[{"name":"i","privateAddress":"192.0.2.1"}]}' }, 404, "not-found"],
      ["GET", "/v1/nothing", {}, 404, "no-route"],
      ["GET", "/v1/vpns/%E0%A4%A", {}, 400, "bad-url"],
      ["PUT", "/v1/vpns", { body: "{}" }, 405, "method-not-allowed"],
      ["GET", "/v1/vpns/a/sites/b/wan/c/d", {}, 404, "no-route"],
    ];
    for (const [m, p, o, status, code] of cases) {
      const r = await raw(m, p, o);
      assert.equal(r.status, status, `${m} ${p} ${String(o?.body).slice(0, 40)}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error?.code, code);
      assert.ok(r.body.error!.message.length > 0);
    }
    await raw("POST", "/v1/vpns", { body: '{"name":"v"}' });
    const site = await raw("POST", "/v1/vpns/v/sites", { body: JSON.stringify({ name: "s", prefixes: ["10.0.0.1/8"], wan: [{ name: "i", privateAddress: "192.0.2.1" }] }) });
    assert.equal(site.status, 400);
    assert.match(site.body.error!.message, /host bits/);
    const port = await raw("POST", "/v1/vpns/v/sites", { body: JSON.stringify({ name: "s", prefixes: ["10.0.0.0/8"], wan: [{ name: "i", privateAddress: "192.0.2.1", privatePort: 70000 }] }) });
    assert.deepEqual(port.body.error?.details, ["wan[0].privatePort: must be <= 65535"]);
    assert.equal((await raw("GET", "/v1/health", { auth: null })).status, 200, "still serving");
    assert.equal(Object.prototype.hasOwnProperty.call({}, "admin"), false, "no prototype pollution");
  });

  test("fuzz: random JSON bodies on every write route never crash the server and are answered 2xx/4xx", async () => {
    await raw("POST", "/v1/vpns", { body: '{"name":"fz"}' });
    await raw("POST", "/v1/vpns/fz/sites", { body: JSON.stringify({ name: "s1", prefixes: ["10.1.0.0/16"], wan: [{ name: "inet", privateAddress: "192.0.2.1" }] }) });
    const routes: [string, string][] = [
      ["POST", "/v1/vpns"], ["POST", "/v1/vpns/fz/sites"], ["PUT", "/v1/vpns/fz/topology"],
      ["PATCH", "/v1/vpns/fz/sites/s1/wan/inet"], ["POST", "/v1/vpns/fz/sites/s1/enrolment-tokens"],
    ];
    const siteLike = fc.record({
      name: fc.oneof(fc.string(), fc.constantFrom("s2", "s3", "-", "")),
      prefixes: fc.oneof(fc.array(fc.oneof(fc.string(), fc.constantFrom("10.2.0.0/16", "10.1.0.0/24", "::/0", "1.2.3.4/33"))), fc.anything()),
      wan: fc.oneof(fc.array(fc.record({ name: fc.string(), privateAddress: fc.oneof(fc.string(), fc.constantFrom("192.0.2.9", "::1", "1.2.3")), privatePort: fc.integer() }, { requiredKeys: [] })), fc.anything()),
    }, { requiredKeys: [] });
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...routes), fc.oneof(fc.jsonValue({ maxDepth: 4 }), siteLike, fc.string()), async ([m, p], v) => {
        const body = typeof v === "string" ? v : JSON.stringify(v);
        const r = await raw(m, p, { body });
        assert.ok(r.status < 500, `${m} ${p} ${body.slice(0, 100)} → ${r.status} ${JSON.stringify(r.body)}`);
        if (r.status >= 400) assert.ok(r.body.error?.code && r.body.error.message, "a reason");
      }),
      { numRuns: 300 },
    );
    const sites = await client.listSites("fz");
    for (const s of sites) await client.siteConfig("fz", s.name);
    assert.equal((await raw("GET", "/v1/health", { auth: null })).status, 200);
  });
});
