// SaLifecycle.setNegotiated (host/sa/lifecycle.ts): an IKE peer's SAs come
// from the negotiated table, not the config, through the same plan/apply —
// keys only on first listing and wiped once the worker holds their direction,
// unchanged SAs kept, a reload leaves them alone, refusals change nothing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { parseConfig } from "../../host/config/load.ts";
import type { Config } from "../../host/config/model.ts";
import { SaTable } from "../../host/sa/install.ts";
import { ReloadRefused, SaLifecycle, type NegotiatedSa } from "../../host/sa/lifecycle.ts";
import type { PeerSpec } from "../../host/sa/spec.ts";
import { baseConfig, type Doc } from "../helpers/config_fixture.ts";
import { makeCore } from "./core-helpers.ts";

/** The base config with peer b negotiated by IKE. */
function ikeDoc(): Doc {
  const c = baseConfig();
  delete c.peers[0].sas;
  c.peers[0].ike = { auth: { psk: "sa-negotiated-unit-test-psk" } };
  return c;
}
const load = (doc: Doc): Config => parseConfig(JSON.stringify(doc), { baseDir: "/tmp", source: "<test>", uid: 1000, env: {} }).config;

async function rig() {
  const core = await makeCore({ maxSas: 16, maxPolicies: 16, largeWindowBlocks: 4 });
  const table = new SaTable(core);
  const sent: PeerSpec[][] = [];
  const lc = new SaLifecycle({ apply: async (peers) => { sent.push(structuredClone(peers)); table.apply(peers); } });
  const doc = ikeDoc();
  table.apply(lc.initial(load(doc)).peers);
  return { core, table, lc, sent, doc };
}

const pair = (spiIn: number, spiOut: number): NegotiatedSa => ({
  spiIn, spiOut, suite: "aes-128-gcm", esn: false, lifetime: { seconds: 3600 },
  keysIn: { key: new Uint8Array(randomBytes(20)) }, keysOut: { key: new Uint8Array(randomBytes(20)) },
});
const keyless = ({ keysIn: _i, keysOut: _o, ...s }: NegotiatedSa): NegotiatedSa => s;
const hasKeys = (p: PeerSpec) => p.sas.map((s) => [!!s.keysIn, !!s.keysOut]);

test("an IKE peer is absent until negotiated, then holds exactly its negotiated SAs; the caller's keys are wiped", async () => {
  const r = await rig();
  assert.deepEqual(r.table.prov.peers.map((p) => p.name), ["c"], "no SA, no policy for b yet");
  const first = pair(0x5001, 0x6001);
  const report = await r.lc.setNegotiated("b", [first]);
  assert.deepEqual(report.added, ["b"]);
  const b = r.table.prov.peers.find((p) => p.name === "b")!;
  assert.deepEqual([b.out!.spi, b.in.map((s) => s.spi)], [0x6001, [0x5001]]);
  assert.ok([first.keysIn!.key, first.keysOut!.key].every((k) => k.every((x) => x === 0)), "caller's keys wiped");
  assert.equal(r.sent.at(-1)!.find((p) => p.name === "b")!.sas[0].durable, false, "negotiated SAs keep no state on disk");
});

test("make before break in the caller's order: the responder's [old, new] is inbound only; [new] switches and removes the old", async () => {
  const r = await rig();
  const old = pair(0x5001, 0x6001);
  await r.lc.setNegotiated("b", [old]);
  const outId = r.table.prov.peers.find((p) => p.name === "b")!.out!.saId;
  const fresh = pair(0x5002, 0x6002);
  await r.lc.setNegotiated("b", [keyless(old), fresh]);
  let b = r.table.prov.peers.find((p) => p.name === "b")!;
  assert.equal(b.out!.saId, outId, "outbound untouched");
  assert.deepEqual(b.in.map((s) => s.spi), [0x5001, 0x5002]);
  assert.deepEqual(hasKeys(r.sent.at(-1)!.find((p) => p.name === "b")!), [[false, false], [true, false]], "only the new inbound key travels");
  await r.lc.setNegotiated("b", [keyless(fresh)]);
  b = r.table.prov.peers.find((p) => p.name === "b")!;
  assert.deepEqual([b.out!.spi, b.in.map((s) => s.spi)], [0x6002, [0x5002]]);
  assert.deepEqual(hasKeys(r.sent.at(-1)!.find((p) => p.name === "b")!), [[false, true]], "the outbound key kept until it was needed");
});

test("a reload keeps negotiated SAs; refusals: not an IKE peer, a new SA without keys", async () => {
  const r = await rig();
  await r.lc.setNegotiated("b", [pair(0x5001, 0x6001)]);
  const outId = r.table.prov.peers.find((p) => p.name === "b")!.out!.saId;
  assert.deepEqual((await r.lc.apply(load(r.doc))).unchanged, ["b", "c"]);
  assert.equal(r.table.prov.peers.find((p) => p.name === "b")!.out!.saId, outId);
  await assert.rejects(r.lc.setNegotiated("c", [pair(0x5003, 0x6003)]), (e: unknown) => e instanceof ReloadRefused && /not an IKE peer/.test((e as Error).message));
  await assert.rejects(r.lc.setNegotiated("b", [keyless(pair(0x5004, 0x6004))]), /without its keys/);
  assert.equal(r.table.prov.peers.find((p) => p.name === "b")!.out!.saId, outId, "nothing changed");
  await r.lc.setNegotiated("b", []);
  assert.deepEqual(r.table.prov.peers.map((p) => p.name), ["c"], "an empty list takes the peer out");
});
