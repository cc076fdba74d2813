// Hostile datagrams into the IKE state machine (host/ike/endpoint.ts, ike_sa.ts):
// 110,000 mutations (./ike-mutate.ts) of the messages of a real exchange:
//  - 60,000 IKE_AUTH requests into a responder waiting for one: none may
//    authenticate (the SK payload's ICV covers header and body, RFC 7296 §3.14),
//    the SA must stay waiting, and the genuine request still succeeds after;
//  - 30,000 IKE_SA_INIT requests into a responder;
//  - 20,000 IKE_SA_INIT responses into fresh initiators (that exchange is not
//    authenticated, so some mutations are "accepted": what matters is that
//    nothing throws and every refusal is an event or a counted reason).
// A failure prints its seed; WESP_SEED=<n> replays it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { IkeEndpoint } from "../../host/ike/endpoint.ts";
import { ikeSaConfig } from "../../host/ike/config.ts";
import { IkeSa } from "../../host/ike/ike_sa.ts";
import { decodeMessage } from "../../host/ike/message.ts";
import type { IkeEvent, Path } from "../../host/ike/types.ts";
import { Rng, seedFromEnv } from "../helpers/gen.ts";
import { mutate, payloadOffsets } from "./ike-mutate.ts";

const [A, B] = ["10.99.0.1", "10.99.0.2"];
const PATH_AB: Path = { localAddress: A, localPort: 500, remoteAddress: B, remotePort: 500 };
const PATH_AT_B: Path = { localAddress: B, localPort: 500, remoteAddress: A, remotePort: 500 };
const cfg = (local: string, remote: string) =>
  ikeSaConfig({ name: `to-${remote}`, local, remote, psk: "fuzz", ike: ["aes128gcm16-prfsha256-x25519"], esp: ["aes128gcm16"], localTs: ["10.1.0.0/16"], remoteTs: ["10.2.0.0/16"] });
const cfgA = cfg(A, B);
const cfgB = { ...cfg(B, A), localTs: cfgA.remoteTs, remoteTs: cfgA.localTs };
const deps = () => {
  let spi = 0x1000;
  return { random: (n: number) => new Uint8Array(randomBytes(n)), now: () => 0, allocateSpi: () => ++spi };
};
const EVENT_TYPES = new Set(["ikeSaEstablished", "childSaEstablished", "childSaFailed", "childSaDeleted", "ikeSaDeleted", "failed", "refused"]);

/** A real exchange, stopped with B waiting for A's IKE_AUTH request. */
function halfway() {
  const a = new IkeEndpoint(() => undefined, deps());
  const b = new IkeEndpoint((r) => (r === A ? cfgB : undefined), deps());
  const initReq = a.initiate(cfgA, PATH_AB).step.send[0].bytes;
  const initResp = b.receive(initReq, PATH_AT_B).send[0].bytes;
  const authReq = a.receive(initResp, PATH_AB).send[0].bytes;
  return { a, b, initReq, initResp, authReq };
}

function checkEvents(es: IkeEvent[], where: string) {
  for (const e of es) {
    assert.ok(EVENT_TYPES.has(e.type), `${where}: event ${e.type}`);
    if (e.type === "refused" || e.type === "failed") assert.ok(e.reason && e.detail, `${where}: ${JSON.stringify(e)}`);
  }
}

test("IKE state machine: 110,000 mutated messages, no exception, nothing forged authenticates", () => {
  const seed = seedFromEnv();
  const r = new Rng(seed);
  const h = halfway();
  const waiting = [...h.b.sas.values()][0];
  assert.equal(waiting.state, "init-answered");
  const corpus = [h.initReq, h.initResp, h.authReq];

  // 1. IKE_AUTH requests into the waiting responder
  const authOffs = payloadOffsets(h.authReq);
  for (let i = 0; i < 60_000; i++) {
    const m = mutate(r, h.authReq, authOffs, r.pick(corpus));
    if (m.length === h.authReq.length && m.every((x, k) => x === h.authReq[k])) continue;
    let step;
    try {
      step = h.b.receive(m, PATH_AT_B);
    } catch (e) {
      assert.fail(`seed ${seed} auth round ${i}: ${(e as Error).stack}\n${Buffer.from(m).toString("hex")}`);
    }
    checkEvents(step.events, `seed ${seed} auth round ${i}`);
    assert.ok(!step.events.some((e) => e.type === "ikeSaEstablished"), `seed ${seed} auth round ${i}: a forgery authenticated`);
    assert.equal(waiting.state, "init-answered", `seed ${seed} auth round ${i}`);
  }
  const refusedAuth = [...h.b.counters].reduce((n, [, v]) => n + v, 0);
  assert.ok(refusedAuth > 50_000, `counted ${refusedAuth}`);
  assert.ok((h.b.counters.get("integrity") ?? 0) > 1000, "many reached the ICV check");
  const genuine = h.b.receive(h.authReq, PATH_AT_B);
  assert.deepEqual(genuine.events.map((e) => e.type), ["ikeSaEstablished", "childSaEstablished"], "the genuine request still works");

  // 2. IKE_SA_INIT requests into a responder (a fresh one every 2,000, as half-open SAs pile up)
  const initOffs = payloadOffsets(h.initReq);
  let responder = new IkeEndpoint((x) => (x === A ? cfgB : undefined), deps());
  for (let i = 0; i < 30_000; i++) {
    if (i % 2000 === 0) responder = new IkeEndpoint((x) => (x === A ? cfgB : undefined), deps());
    const m = mutate(r, h.initReq, initOffs, r.pick(corpus));
    try {
      checkEvents(responder.receive(m, PATH_AT_B).events, `seed ${seed} init round ${i}`);
    } catch (e) {
      assert.fail(`seed ${seed} init round ${i}: ${(e as Error).stack}\n${Buffer.from(m).toString("hex")}`);
    }
  }

  // 3. IKE_SA_INIT responses into fresh initiators
  const respOffs = payloadOffsets(h.initResp);
  for (let i = 0; i < 20_000; i++) {
    const m = mutate(r, h.initResp, respOffs, r.pick(corpus));
    const d = decodeMessage(m);
    if (!d.ok) continue;
    try {
      const { sa } = IkeSa.initiate(cfgA, PATH_AB, deps());
      checkEvents(sa.receive(d.value, m, PATH_AB).events, `seed ${seed} resp round ${i}`);
    } catch (e) {
      assert.fail(`seed ${seed} resp round ${i}: ${(e as Error).stack}\n${Buffer.from(m).toString("hex")}`);
    }
  }
});
