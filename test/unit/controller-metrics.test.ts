// The controller's /metrics (host/metrics/controller.ts) after real API calls
// over HTTPS: requests by route pattern, method and status; store latency by
// operation; VPN and site counts; connections. The listener is the one
// `wesp controller --metrics` starts (plain HTTP on 127.0.0.1), and hostile
// bytes sent to it are refused without stopping it. Last, `wesp controller`
// itself with --metrics, --stun and --log-format json: its JSON log lines, its
// STUN counters on /metrics, and no operator token in what it logged.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { randomBytes } from "node:crypto";
import { request as httpsRequest } from "node:https";
import { get } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Controller } from "../../host/controller/controller.ts";
import { KeySealer } from "../../host/controller/keys.ts";
import { ControllerClient } from "../../host/controller/api/client.ts";
import { routeOf, startApi, type RunningApi } from "../../host/controller/api/server.ts";
import { ensureSelfSigned, type TlsFiles } from "../../host/controller/api/tls.ts";
import { openStore } from "../../host/controller/store/store.ts";
import { ControllerMetrics } from "../../host/metrics/controller.ts";
import type { MetricsServer } from "../../host/metrics/http.ts";
import { requireTools } from "../helpers/require.ts";
import { find, parseExposition, rawExchange, value, type Exposition } from "../helpers/prom.ts";

/** GET http://127.0.0.1:PORT/PATH: status and body. */
function httpGet(port: number, path: string): Promise<{ status: number; body: string; type: string }> {
  return new Promise((resolve, reject) => {
    get({ host: "127.0.0.1", port, path }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (d) => (body += d)).on("end", () => resolve({ status: res.statusCode!, body, type: String(res.headers["content-type"]) }));
    }).on("error", reject);
  });
}

describe("controller metrics", { skip: requireTools(["openssl"], { why: "controller HTTPS API (self-signed certificate)" }) }, () => {
  let dir: string;
  let tls: TlsFiles;
  let ctl: Controller;
  let api: RunningApi;
  let metrics: ControllerMetrics;
  let listener: MetricsServer;
  let client: ControllerClient;
  let token: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "wesp-ctl-metrics-"));
    tls = ensureSelfSigned(join(dir, "tls"));
    metrics = new ControllerMetrics(routeOf);
    ctl = new Controller(metrics.timeStore(await openStore(":memory:")), new KeySealer(randomBytes(32)));
    token = await ctl.store.createOperatorToken("ops");
    api = await startApi({ controller: ctl, tls, port: 0, observer: metrics });
    listener = await metrics.serve({ host: "127.0.0.1", port: 0 });
    client = new ControllerClient({ url: api.url, token, ca: tls.cert });
  });
  after(async () => {
    await listener?.close();
    await api?.close();
    await ctl?.store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function scrape(): Promise<Exposition> {
    const r = await httpGet(listener.port, "/metrics");
    assert.equal(r.status, 200);
    assert.match(r.type, /^text\/plain; version=0\.0\.4/);
    return parseExposition(r.body);
  }

  /** One request without the client (to get 401 / 404 / 405 answers). */
  function raw(method: string, path: string, auth: boolean): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = httpsRequest(new URL(path, api.url), { method, ca: tls.cert, headers: auth ? { authorization: `Bearer ${token}` } : {} }, (res) => {
        res.resume().on("end", () => resolve(res.statusCode!));
      });
      req.on("error", reject);
      req.end();
    });
  }

  test("requests by route pattern and status, store latency, VPN and site counts", async () => {
    await client.createVpn({ name: "acme", topology: { kind: "full-mesh" } });
    await client.createVpn({ name: "beta", topology: { kind: "full-mesh" } });
    for (const [i, n] of ["hq", "b", "c"].entries()) {
      await client.addSite("acme", { name: n, prefixes: [`10.${i + 1}.0.0/16`], wan: [{ name: "inet", privateAddress: `192.0.2.${i + 1}` }] });
    }
    await client.addSite("beta", { name: "solo", prefixes: ["10.9.0.0/16"], wan: [{ name: "inet", privateAddress: "192.0.2.9" }] });
    await client.removeSite("acme", "c");
    await client.listSites("acme");
    assert.equal(await raw("GET", "/v1/vpns", false), 401);
    assert.equal(await raw("GET", "/v1/nothing/here/at/all", true), 404);
    assert.equal(await raw("GET", "/v1/vpns/acme/sites/a-site-with-a-long-name-0123456789", true), 404);
    assert.equal(await raw("PUT", "/v1/vpns", true), 405);

    const e = await scrape();
    const req = (route: string, method: string, code: string) => value(e, "wesp_controller_requests_total", { route, method, code });
    assert.equal(e.types.get("wesp_controller_requests_total"), "counter");
    assert.equal(req("/v1/vpns", "POST", "201"), 2);
    assert.equal(req("/v1/vpns/:vpn/sites", "POST", "201"), 4);
    assert.equal(req("/v1/vpns/:vpn/sites/:site", "DELETE", "204"), 1);
    assert.equal(req("/v1/vpns/:vpn/sites", "GET", "200"), 1);
    assert.equal(req("/v1/vpns", "GET", "401"), 1);
    assert.equal(req("other", "GET", "404"), 1, "a path no route has is counted as route \"other\", never by its raw text");
    assert.equal(req("/v1/vpns/:vpn/sites/:site", "GET", "404"), 1, "a site's name is not a label");
    assert.equal(req("/v1/vpns", "PUT", "405"), 1);
    for (const s of e.samples.filter((x) => x.name === "wesp_controller_requests_total")) {
      assert.ok(s.labels.route === "other" || s.labels.route.startsWith("/v1/"), `route label ${s.labels.route}`);
      assert.doesNotMatch(s.labels.route, /acme|hq|nothing/, "routes are patterns, not paths");
    }
    // Every request is observed once in the latency histogram too.
    const reqTotal = find(e, "wesp_controller_requests_total").reduce((a, s) => a + s.value, 0);
    const latCount = find(e, "wesp_controller_request_seconds_count").reduce((a, s) => a + s.value, 0);
    assert.equal(latCount, reqTotal);

    assert.equal(e.types.get("wesp_controller_store_seconds"), "histogram");
    assert.equal(value(e, "wesp_controller_store_seconds_count", { op: "createVpn" }), 2);
    assert.equal(value(e, "wesp_controller_store_seconds_count", { op: "addSite" }), 4);
    assert.ok((value(e, "wesp_controller_store_seconds_count", { op: "checkOperatorToken" }) ?? 0) >= 9);
    assert.ok(find(e, "wesp_controller_store_seconds_bucket", { op: "createVpn", le: "+Inf" })[0].value === 2);

    assert.equal(value(e, "wesp_controller_vpns"), 2);
    assert.equal(value(e, "wesp_controller_sites", { vpn: "acme" }), 2);
    assert.equal(value(e, "wesp_controller_sites", { vpn: "beta" }), 1);
    assert.ok((value(e, "wesp_controller_api_connections") ?? -1) >= 0);
    assert.equal(value(e, "wesp_controller_ce_connections"), 0, "no client presented a CE certificate");
    assert.ok(find(e, "process_cpu_user_seconds_total").length === 1, "process metrics (prom-client defaults)");

    // A refused store call is counted as an error of its operation.
    await assert.rejects(client.createVpn({ name: "acme", topology: { kind: "full-mesh" } }));
    assert.equal(value(await scrape(), "wesp_controller_store_errors_total", { op: "createVpn" }), 1);
  });

  test("route labels: patterns and the CE API's fixed paths; anything else is \"other\"", () => {
    assert.equal(routeOf("/v1/vpns/acme/sites/hq"), "/v1/vpns/:vpn/sites/:site");
    assert.equal(routeOf("/v1/health"), "/v1/health");
    for (const p of ["/v1/ca", "/v1/enrol", "/v1/ce/config", "/v1/ce/events", "/v1/ce/certificate"]) assert.equal(routeOf(p), p);
    for (const p of ["/v1/ce/whatever", "/v1/ce/", "/v1", "/", "/metrics", "/v1/vpns/a/b/c/d/e/f/g"]) assert.equal(routeOf(p), "other", p);
  });

  test("the metrics listener refuses hostile requests and keeps serving", async () => {
    const port = listener.port;
    assert.match(await rawExchange({ port }, "\x00\x01\x02 garbage\r\n\r\n"), /^HTTP\/1\.1 400 /);
    assert.match(await rawExchange({ port }, `GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20000)}\r\n\r\n`), /^HTTP\/1\.1 4(00|31) /);
    assert.match(await rawExchange({ port }, "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"), /^HTTP\/1\.1 400 /);
    assert.match(await rawExchange({ port }, "GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n"), /^HTTP\/1\.1 404 /);
    assert.match(await rawExchange({ port }, "DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), /^HTTP\/1\.1 405 /);
    assert.match(await rawExchange({ port }, "GET /metr"), /^$|^HTTP\/1\.1 400 /, "a request cut short: closed, or a 400");
    assert.equal((await httpGet(port, "/")).status, 404);
    const after = await scrape();
    assert.equal(value(after, "wesp_controller_vpns"), 2, "still serving");
  });
});

const WESP = join(import.meta.dirname, "..", "..", "bin", "wesp.js");

test("wesp controller --metrics --stun --log-format json: JSON logs, STUN counters on /metrics, no token logged", { skip: requireTools(["openssl"], { why: "wesp controller (TLS certificate)" }), timeout: 90_000 }, async () => {
  const state = mkdtempSync(join(tmpdir(), "wesp-ctl-metrics-cli-"));
  const child = spawn(process.execPath, [WESP, "controller", "--state", state, "--listen", "127.0.0.1:0", "--stun", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--log-format", "json"], { stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stderr!.on("data", (c) => (err += c));
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  try {
    const msgs = () => err.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as { level: string; name: string; msg: string });
    const deadline = Date.now() + 60_000;
    let metricsPort = 0, stunPort = 0;
    while ((!metricsPort || !stunPort) && Date.now() < deadline && child.exitCode === null) {
      await new Promise((r) => setTimeout(r, 50));
      for (const m of msgs()) {
        metricsPort ||= Number(/^metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics$/.exec(m.msg)?.[1] ?? 0);
        stunPort ||= Number(/^stun: answering Binding requests on 127\.0\.0\.1:(\d+)/.exec(m.msg)?.[1] ?? 0);
      }
    }
    assert.ok(metricsPort && stunPort, `the controller said where it listens: ${err}`);
    // One Binding request (RFC 8489 §5: type 0x0001, length 0, magic cookie, transaction id).
    const sock = createSocket("udp4");
    const req = Buffer.concat([Buffer.from([0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42]), randomBytes(12)]);
    const answered = new Promise<Buffer>((r) => sock.once("message", (b) => r(b)));
    sock.send(req, stunPort, "127.0.0.1");
    assert.equal((await answered).readUInt16BE(0), 0x0101, "a Binding success response");
    sock.close();
    const e = parseExposition((await new Promise<string>((resolve, reject) => {
      get({ host: "127.0.0.1", port: metricsPort, path: "/metrics" }, (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (d) => (body += d)).on("end", () => resolve(body));
      }).on("error", reject);
    })));
    assert.equal(value(e, "wesp_controller_stun_requests_total", { result: "answered" }), 1);
    assert.equal(value(e, "wesp_controller_vpns"), 0);
    for (const m of msgs()) {
      assert.equal(m.name, "wesp controller");
      assert.ok(["info", "warn", "error"].includes(m.level), m.level);
    }
    child.kill("SIGTERM");
    assert.equal(await exited, 0, err);
    const token = readFileSync(join(state, "operator.token"), "utf8").trim();
    assert.ok(!err.includes(token), "the operator token is not logged");
    assert.ok(msgs().some((m) => m.msg === "stopping"));
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL");
    await exited;
    rmSync(state, { recursive: true, force: true });
  }
});
