// Two controller replicas over one PostgreSQL database (issue 8, "Must
// show": a change made through one reaches a CE attached to the other within
// 2 s). Both serve the API with the same CA (replicas share `ca/` and
// `master.key`); a CE enrolled through replica A holds its push channel on
// replica B; an operator adds a site through A; the CE hears it on B and the
// config it pulls from B has the new peer. A revocation made through A is
// enforced by B's TLS too (its CRL is remade from the change feed).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ControllerCa } from "../../host/controller/ca.ts";
import { Controller } from "../../host/controller/controller.ts";
import { KeySealer } from "../../host/controller/keys.ts";
import { ControllerClient } from "../../host/controller/api/client.ts";
import { startApi, type RunningApi } from "../../host/controller/api/server.ts";
import { ensureServerCert } from "../../host/controller/api/tls.ts";
import { openStore } from "../../host/controller/store/store.ts";
import { CeClient, ControllerError, type SseEvent } from "../../host/agent/ce_client.ts";
import { enrol } from "../../host/agent/enrol.ts";
import { requireTools } from "../helpers/require.ts";
import { PgCluster, POSTGRES_NEED } from "../../host/lab/pg_cluster.ts";

describe("two controller replicas on PostgreSQL, one CE", { skip: requireTools([POSTGRES_NEED], { why: "controller replicas on PostgreSQL" }) }, () => {
  let dir: string;
  let cluster: PgCluster;
  const apis: RunningApi[] = [];
  const ctls: Controller[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "wesp-replicas-"));
    cluster = await PgCluster.start();
    const url = await cluster.createDatabase();
    const ca = await ControllerCa.open(join(dir, "ca"));
    const master = randomBytes(32);
    for (const name of ["a", "b"]) {
      const ctl = new Controller(await openStore(url), new KeySealer(master));
      ctls.push(ctl);
      apis.push(await startApi({ controller: ctl, tls: await ensureServerCert(join(dir, `tls-${name}`), ca, []), ca, port: 0 }));
    }
  });
  after(async () => {
    for (const a of apis) await a.close();
    for (const c of ctls) await c.store.close();
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("a site added through replica A reaches a CE attached to replica B (time printed); a revocation through A holds on B", async () => {
    const [ctlA] = ctls;
    const [apiA, apiB] = apis;
    const ca = await ControllerCa.open(join(dir, "ca"));
    const opA = new ControllerClient({ url: apiA.url, token: await ctlA.store.createOperatorToken("ops"), ca: ca.pem });
    await opA.createVpn({ name: "v" });
    for (const [i, s] of ["s1", "s2"].entries()) await opA.addSite("v", { name: s, prefixes: [`10.${i + 1}.0.0/16`], wan: [{ name: "inet", privateAddress: `192.0.2.${i + 1}` }] });
    const t = await opA.createEnrolmentToken("v", "s1");
    const e = await enrol(apiA.url, t.caFingerprint!, { token: t.token, vpn: "v", site: "s1" });
    const onB = new CeClient(apiB.url, { ca: e.caPem, cert: e.certPem, key: e.keyPem });
    const events: SseEvent[] = [];
    const ch = await onB.events("/v1/ce/events", (ev) => events.push(ev), () => {}, 30_000);
    try {
      for (const end = Date.now() + 5000; !events.some((x) => x.event === "hello"); await new Promise((r) => setTimeout(r, 10))) {
        assert.ok(Date.now() < end, "hello from B");
      }
      const t0 = Date.now();
      await opA.addSite("v", { name: "s3", prefixes: ["10.3.0.0/16"], wan: [{ name: "inet", privateAddress: "192.0.2.3" }] });
      // The site's SAs are made by A after the site itself: wait for the config B serves to have the peer.
      let peers: string[] = [];
      for (const end = Date.now() + 10_000; !peers.includes("s3") && Date.now() < end; await new Promise((r) => setTimeout(r, 20))) {
        if (events.some((x) => x.event === "change")) {
          peers = (await onB.call<{ config: { peers: { name: string }[] } }>("GET", "/v1/ce/config")).config.peers.map((p) => p.name);
        }
      }
      const dt = Date.now() - t0;
      console.log(`# replica B: s3 in the config of a CE attached to it ${dt} ms after the add-site through replica A began`);
      assert.deepEqual(peers.sort(), ["s2", "s3"]);
      assert.ok(events.some((x) => x.event === "change"), "B pushed a change it heard from A");

      await opA.revokeSite("v", "s1");
      for (const end = Date.now() + 5000; ; await new Promise((r) => setTimeout(r, 50))) {
        const r = await onB.call("GET", "/v1/ce/config").catch((x: unknown) => x);
        if (r instanceof ControllerError && /TLS: the CRL lists it/.test(r.message)) break;
        assert.ok(Date.now() < end, `B's CRL takes the revocation made through A: ${String(r)}`);
      }
    } finally {
      ch.close();
    }
  });
});
