// Enrolment and the CE API over real HTTPS on 127.0.0.1 (host/controller/ca.ts,
// api/ce_api.ts; host/agent/enrol.ts, ce_client.ts): a CE enrols from a token
// and fetches its config over mutual TLS; then the abuse cases of issue 8 —
// a reused, wrong or expired token, a CSR for another site's name, a CA that
// is not the pinned one, a CE certificate on the operator API, a certificate
// of another CA, a revoked CE, a removed site — each refused with its reason
// and logged; and the push channel announcing a change.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { randomBytes, X509Certificate } from "node:crypto";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ControllerCa } from "../../host/controller/ca.ts";
import { Controller } from "../../host/controller/controller.ts";
import { KeySealer } from "../../host/controller/keys.ts";
import { ApiError, ControllerClient } from "../../host/controller/api/client.ts";
import { startApi, type RunningApi } from "../../host/controller/api/server.ts";
import { ensureServerCert } from "../../host/controller/api/tls.ts";
import { openStore } from "../../host/controller/store/store.ts";
import { CeClient, ControllerError, type SseEvent } from "../../host/agent/ce_client.ts";
import { enrol, fetchPinnedCa, renew } from "../../host/agent/enrol.ts";
import type { Enrolment } from "../../host/agent/state.ts";
import { keyPairPem, makeCsr, newKeyPair, siteIdentity } from "../../host/util/pki.ts";

describe("enrolment and the CE API", () => {
  let dir: string;
  let ca: ControllerCa;
  let ctl: Controller;
  let api: RunningApi;
  let operator: ControllerClient;
  let opToken: string;
  let clock = Date.now();
  const logs: string[] = [];

  const site = (name: string, i: number) => ({ name, prefixes: [`10.${i}.0.0/16`], wan: [{ name: "inet", privateAddress: `192.0.2.${i}` }] });
  const token = async (s: string, ttlMs = 600_000) => ({ ...(await ctl.store.createEnrolmentToken("v", s, ttlMs)), vpn: "v", site: s });
  const ceClient = (e: Pick<Enrolment, "caPem" | "certPem" | "keyPem">) => new CeClient(api.url, { ca: e.caPem, cert: e.certPem, key: e.keyPem });
  /** Asserts `p` rejects with a ControllerError of `status`/`code` whose message matches `msg`, and that a log line matches `logged`. */
  async function refused(p: Promise<unknown>, status: number, code: string, msg: RegExp, logged: RegExp): Promise<void> {
    const before = logs.length;
    await assert.rejects(p, (e: unknown) => {
      assert.ok(e instanceof ControllerError, String(e));
      assert.equal(e.status, status, e.message);
      assert.equal(e.code, code, e.message);
      assert.match(e.message, msg);
      return true;
    });
    assert.ok(logs.slice(before).some((l) => logged.test(l)), `logged ${logged}: ${logs.slice(before).join(" | ")}`);
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "wesp-enrol-"));
    ca = await ControllerCa.open(join(dir, "ca"));
    ctl = new Controller(await openStore(":memory:", { now: () => clock }), new KeySealer(randomBytes(32)));
    const tls = await ensureServerCert(join(dir, "tls"), ca, []);
    api = await startApi({ controller: ctl, tls, ca, port: 0, log: (l) => logs.push(l) });
    opToken = await ctl.store.createOperatorToken("ops");
    operator = new ControllerClient({ url: api.url, token: opToken, ca: ca.pem });
    await operator.createVpn({ name: "v" });
    for (const [i, s] of ["a", "b", "c", "d"].entries()) await operator.addSite("v", site(s, i + 1));
  });
  after(async () => {
    await api?.close();
    await ctl?.store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("a CE enrols from its token alone and fetches only its own config over mTLS", async () => {
    const t = await operator.createEnrolmentToken("v", "a");
    assert.equal(t.caFingerprint, ca.fingerprint, "the token comes with the CA fingerprint to pin");
    const e = await enrol(api.url, t.caFingerprint!, { token: t.token, vpn: "v", site: "a" });
    const cert = new X509Certificate(e.certPem);
    assert.equal(cert.subject, "CN=a@v");
    assert.equal(cert.subjectAltName, "email:a@v", "SAN: the site identity (IKEv2 ID_RFC822_ADDR)");
    assert.ok(cert.verify(new X509Certificate(ca.pem).publicKey), "issued by the controller's CA");
    assert.ok(Date.parse(cert.validTo) - Date.now() <= 31 * 86400_000, "short-lived");
    assert.ok(!logs.join("\n").includes(t.token), "the token is never logged");
    assert.ok(logs.some((l) => /enrolled a@v from 127\.0\.0\.1/.test(l)));
    const r = await ceClient(e).call<{ site: string; config: { node: { name: string }; peers: { name: string }[] } }>("GET", "/v1/ce/config");
    assert.equal(r.site, "a");
    assert.equal(r.config.node.name, "a");
    assert.deepEqual(r.config.peers.map((p) => p.name).sort(), ["b", "c", "d"]);
  });

  test("renewal: a new key and certificate for the same identity, over mTLS with the current one", async () => {
    const e = await enrol(api.url, ca.fingerprint, await token("c"));
    const n = await renew(e);
    const [a, b] = [new X509Certificate(e.certPem), new X509Certificate(n.certPem)];
    assert.notEqual(a.serialNumber, b.serialNumber);
    assert.equal(b.subjectAltName, "email:c@v");
    assert.notEqual(n.keyPem, e.keyPem, "a new key");
    assert.equal((await ceClient(n).call<{ site: string }>("GET", "/v1/ce/config")).site, "c", "the new certificate is known to the store");
    const keys = await newKeyPair();
    await refused(ceClient(e).call("POST", "/v1/ce/certificate", { csr: await makeCsr("a@v", keys) }), 403, "wrong-identity", /CN=c@v/, /renewal refused for c@v/);
  });

  test("reused, wrong and expired tokens are refused, each with its reason, and logged", async () => {
    const t = await token("b");
    const e = await enrol(api.url, ca.fingerprint, t);
    await refused(enrol(api.url, ca.fingerprint, t), 401, "token-invalid", /already used/, /enrolment refused from 127\.0\.0\.1: enrolment token already used/);
    await refused(enrol(api.url, ca.fingerprint, { ...t, token: "wesp-enrol-" + randomBytes(32).toString("base64url") }), 401, "token-invalid", /unknown/, /enrolment refused.*unknown/);
    const x = await token("c", 1000);
    clock += 2000;
    await refused(enrol(api.url, ca.fingerprint, x), 401, "token-invalid", /expired/, /enrolment refused.*expired/);
    assert.equal((await ceClient(e).call<{ site: string }>("GET", "/v1/ce/config")).site, "b", "the first enrolment stands");
  });

  test("a CSR for another site's name, or asking for more than the identity, is refused and leaves the token unused", async () => {
    const t = await token("c");
    const keys = await newKeyPair();
    const post = (csr: string) => new CeClient(api.url, { ca: ca.pem }).call("POST", "/v1/enrol", { token: t.token, csr });
    await refused(post(await makeCsr(siteIdentity("v", "a"), keys)), 403, "wrong-identity", /CN=c@v/, /enrolment refused.*CN=c@v/);
    await refused(post(await makeCsr("c@v.example", keys)), 403, "wrong-identity", /CN=c@v/, /enrolment refused/);
    await refused(post("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"), 400, "bad-csr", /PKCS #10/, /enrolment refused/);
    await refused(post("x".repeat(10_000)), 400, "bad-csr", /at most/, /enrolment refused/);
    const e = await enrol(api.url, ca.fingerprint, t);
    assert.equal(new X509Certificate(e.certPem).subject, "CN=c@v", "the token still enrols its own site");
  });

  test("a CE refuses a controller whose CA is not the pinned one (the token is never sent)", async () => {
    const t = await token("d");
    await assert.rejects(fetchPinnedCa(api.url, "00".repeat(32)), (e: unknown) => e instanceof ControllerError && e.code === "ca-mismatch");
    await assert.rejects(enrol(api.url, "ab:cd", t), /64 hex digits/);
    await assert.rejects(enrol(api.url, "11".repeat(32), t), /not the pinned/);
    await enrol(api.url, ca.fingerprint.toUpperCase().replace(/(..)(?!$)/g, "$1:"), t);
  });

  test("CE and operator credentials do not mix: a CE certificate opens no operator route, a token no CE route", async () => {
    const t = await token("a");
    const e = await enrol(api.url, ca.fingerprint, t);
    await refused(ceClient(e).call("GET", "/v1/vpns"), 403, "ce-certificate", /operator API/, /operator API GET \/v1\/vpns refused.*client \(CE\) certificate/);
    // Even with the operator's token alongside the certificate.
    const status = await new Promise<number>((resolve, reject) => {
      request(new URL("/v1/vpns", api.url), { ca: ca.pem, cert: e.certPem, key: e.keyPem, agent: false, headers: { authorization: `Bearer ${opToken}` } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on("error", reject).end();
    });
    assert.equal(status, 403, "a CE certificate with an operator token is still refused");
    await refused(new CeClient(api.url, { ca: ca.pem }).call("GET", "/v1/ce/config"), 401, "certificate-required", /client certificate/, /CE API \/v1\/ce\/config refused/);
    // A client certificate of another CA: TLS does not verify it.
    const other = await ControllerCa.open(join(dir, "other-ca"));
    const keys = await newKeyPair();
    const forged = await other.signCsr(await makeCsr("a@v", keys), "a@v");
    await refused(ceClient({ caPem: ca.pem, certPem: forged.pem, keyPem: await keyPairPem(keys) }).call("GET", "/v1/ce/config"), 403, "certificate-invalid", /not accepted/, /CE API .* refused/);
  });

  test("a revoked CE is refused by TLS (the CRL) and by the CE API; a removed site is told to drop its state", async () => {
    const t = await token("d");
    const e = await enrol(api.url, ca.fingerprint, t);
    const c = ceClient(e);
    await c.call("GET", "/v1/ce/config");
    assert.equal(await operator.revokeSite("v", "d"), 2, "both certificates of d are revoked");
    await refused(c.call("GET", "/v1/ce/config"), 403, "certificate-revoked", /revoked/, /CE API \/v1\/ce\/config refused.*revoked/);
    // The CRL is remade asynchronously on the change: TLS itself then says CERT_REVOKED.
    const deadline = Date.now() + 5000;
    for (;;) {
      const r = await c.call("GET", "/v1/ce/config").catch((x: ControllerError) => x);
      if (r instanceof ControllerError && r.code === "certificate-revoked" && /TLS: the CRL lists it/.test(r.message)) break;
      assert.ok(Date.now() < deadline, "the CRL came into force");
      await new Promise((res) => setTimeout(res, 50));
    }
    const tb = await token("b");
    const eb = await enrol(api.url, ca.fingerprint, tb);
    await operator.removeSite("v", "b");
    await refused(ceClient(eb).call("GET", "/v1/ce/config"), 403, "site-removed", /drop its VPN state/, /refused/);
    await refused(ceClient(eb).events("/v1/ce/events", () => {}, () => {}, 10_000), 403, "site-removed", /drop/, /refused/);
    await assert.rejects(operator.createEnrolmentToken("v", "b"), (x: unknown) => x instanceof ApiError && x.status === 404, "no token for a removed site");
  });

  test("the push channel says hello, then announces each change of the CE's VPN", async () => {
    const t = await token("a");
    const e = await enrol(api.url, ca.fingerprint, t);
    const events: SseEvent[] = [];
    const ch = await ceClient(e).events("/v1/ce/events", (ev) => events.push(ev), () => {}, 30_000);
    try {
      const wait = async (n: number) => {
        const end = Date.now() + 5000;
        while (events.length < n) {
          assert.ok(Date.now() < end, `event ${n}: ${JSON.stringify(events)}`);
          await new Promise((r) => setTimeout(r, 20));
        }
      };
      await wait(1);
      assert.equal(events[0].event, "hello");
      assert.deepEqual({ ...JSON.parse(events[0].data), version: 0 }, { vpn: "v", site: "a", version: 0 });
      await operator.addSite("v", site("e", 9));
      await wait(2);
      assert.equal(events[1].event, "change");
      assert.ok(JSON.parse(events[1].data).version > JSON.parse(events[0].data).version);
    } finally {
      ch.close();
    }
  });
});
