// The SA lifecycle's main-thread half (host/sa/lifecycle.ts, plan.ts) and its
// worker half (install.ts) without a worker thread: keys leave the main
// thread (the sink repacks them into one buffer per worker, as the
// Forwarder does, and transfers it; the plan's copies and the config
// wiped), only new SAs carry keys,
// unchanged SAs keep their core records, make-before-break order, refusals.
import { test } from "node:test";
import assert from "node:assert/strict";
import { MessageChannel } from "node:worker_threads";
import { parseConfig } from "../../host/config/load.ts";
import type { Config } from "../../host/config/model.ts";
import { SaLifecycle, ReloadRefused } from "../../host/sa/lifecycle.ts";
import { SaTable } from "../../host/sa/install.ts";
import { plan } from "../../host/sa/plan.ts";
import { peersForWorker } from "../../host/sa/worker_sas.ts";
import { eventsOf, type EventBatch, type PeerSpec, type SaEvent } from "../../host/sa/spec.ts";
import { baseConfig, hexKey, type Doc } from "../helpers/config_fixture.ts";
import { makeCore } from "./core-helpers.ts";

const load = (doc: Doc): Config => parseConfig(JSON.stringify(doc), { baseDir: "/tmp", source: "<test>" }).config;

const allKeys = (c: Config): Uint8Array[] => c.peers.flatMap((p) => p.sas.flatMap((s) => [s.keyIn, s.keyOut, s.authKeyIn, s.authKeyOut].filter((k): k is NonNullable<typeof k> => !!k)));

/**
 * A lifecycle whose sink is a SaTable on a real core, reached through a real
 * MessagePort (so transfer happens), the keys packed as the Forwarder packs
 * them for one worker (peersForWorker).
 */
async function rig() {
  const core = await makeCore({ maxSas: 64, maxPolicies: 64, largeWindowBlocks: 16 });
  const events: SaEvent[] = [];
  const table = new SaTable(core, { emit: (e) => void events.push(e) });
  const { port1, port2 } = new MessageChannel();
  const sent: { peers: PeerSpec[]; transfer: ArrayBuffer[]; keyBytes: number }[] = [];
  port2.on("message", (m: { peers: PeerSpec[] }) => table.apply(m.peers));
  const lc = new SaLifecycle({
    apply: async (planned) => {
      const { peers, transfer } = peersForWorker(planned, 0, 1);
      sent.push({ peers, transfer, keyBytes: transfer.reduce((n, b) => n + b.byteLength, 0) });
      port1.postMessage({ peers }, transfer);
      await new Promise((r) => setTimeout(r, 20));
    },
  });
  const close = () => (port1.close(), port2.close());
  return { core, table, lc, sent, events, close };
}

const peerD = () => ({
  name: "d", address: "198.51.100.4", prefixes: ["10.4.0.0/16"],
  sas: [{ spi_in: 0x1004, spi_out: 0x4001, suite: "chacha20-poly1305", key_in: hexKey(36), key_out: hexKey(36) }],
});

test("keys leave the main thread: transferred buffers are detached, the config's keys zeroed, the worker's copies wiped", async () => {
  const r = await rig();
  try {
    const doc = baseConfig();
    const first = load(doc);
    const init = r.lc.initial(first);
    assert.ok(allKeys(first).length > 0);
    assert.ok(allKeys(first).every((k) => k.every((b) => b === 0)), "config keys zeroed once planned");
    const planned = init.peers.flatMap((p) => p.sas.flatMap((s) => [s.keysIn?.key, s.keysIn?.authKey, s.keysOut?.key, s.keysOut?.authKey].filter((k) => k)));
    assert.equal(planned.length, 6, "b: key in/out; c: key and auth key in/out");
    r.table.apply(init.peers);
    for (const p of init.peers) for (const s of p.sas) for (const k of [s.keysIn?.key, s.keysOut?.key, s.keysIn?.authKey]) assert.ok(!k || k.every((b) => b === 0), "the worker wipes what it installed");

    // The same file again: nothing changes, no key travels.
    const same = load(doc);
    assert.deepEqual(await r.lc.apply(same), { added: [], removed: [], changed: [], unchanged: ["b", "c"] });
    assert.equal(r.sent.at(-1)!.transfer.length, 0);
    assert.ok(allKeys(same).every((k) => k.every((b) => b === 0)));

    // A peer added: only its two keys travel, and their buffers are gone from this thread once sent.
    doc.peers.push(peerD());
    const bOut = r.table.prov.peers[0].out!.saId;
    assert.deepEqual(await r.lc.apply(load(doc)), { added: ["d"], removed: [], changed: [], unchanged: ["b", "c"] });
    const last = r.sent.at(-1)!;
    assert.equal(last.keyBytes, 2 * 36, "d's two keys, nothing else");
    assert.equal(last.transfer.length, 1, "in one buffer");
    assert.ok(last.transfer.every((b) => b.byteLength === 0), "transferred, so detached here");
    const d = last.peers.find((p) => p.name === "d")!.sas[0];
    assert.deepEqual([d.keysIn!.key.length, d.keysOut!.key.length], [0, 0], "no key bytes left on this thread");
    assert.ok(last.peers.filter((p) => p.name !== "d").every((p) => p.sas.every((s) => !s.keysIn && !s.keysOut)), "unchanged SAs carry no keys");
    assert.equal(r.table.prov.peers[0].out!.saId, bOut, "b keeps its SA record");
    assert.deepEqual(r.table.prov.peers.map((p) => p.name), ["b", "c", "d"]);
  } finally {
    r.close();
  }
});

test("a rekey by config is make before break: new inbound, then outbound switch, then the old go; unchanged state stays", async () => {
  const r = await rig();
  try {
    const doc = baseConfig();
    r.table.apply(r.lc.initial(load(doc)).peers);
    const c0 = r.table.prov.peers[1];
    const cOut = c0.out!.saId;
    const oldB = doc.peers[0].sas[0];
    const newB = { spi_in: 0x1011, spi_out: 0x2011, suite: "aes-256-gcm", key_in: hexKey(36), key_out: hexKey(36) };
    // Step 1: append the new SA (old one still first: still used outbound).
    doc.peers[0].sas = [oldB, newB];
    r.events.length = 0;
    assert.deepEqual((await r.lc.apply(load(doc))).changed, ["b"]);
    assert.deepEqual(r.events.map((e) => `${e.event}:${"dir" in e ? e.dir : ""}:${"spi" in e ? e.spi : ""}`), [`sa-installed:in:${0x1011}`]);
    // Step 2: the new SA first, the old removed.
    doc.peers[0].sas = [newB];
    r.events.length = 0;
    await r.lc.apply(load(doc));
    assert.deepEqual(r.events.map((e) => `${e.event}:${"dir" in e ? e.dir : ""}:${"spi" in e ? e.spi : ""}`), [
      `sa-installed:out:${0x2011}`, `sa-removed:out:${0x2001}`, `sa-removed:in:${0x1001}`,
    ]);
    const b = r.table.prov.peers[0];
    assert.equal(b.out!.spi, 0x2011);
    assert.deepEqual(b.in.map((s) => s.spi), [0x1011]);
    assert.equal(r.table.prov.peers[1].out!.saId, cOut, "peer c untouched");
    assert.equal(r.core.lookupPolicy("10.1.0.1", "10.2.0.1") >= 0, true, "b's traffic has a policy");
  } finally {
    r.close();
  }
});

test("a reload that changes node fields or cannot fit is refused and changes nothing; its keys are wiped all the same", async () => {
  const r = await rig();
  try {
    const doc = baseConfig();
    r.table.apply(r.lc.initial(load(doc)).peers);
    const renamed = structuredClone(doc);
    renamed.node.name = "other";
    const c1 = load(renamed);
    await assert.rejects(r.lc.apply(c1), (e: unknown) => e instanceof ReloadRefused && /node\.name/.test((e as Error).message));
    assert.ok(allKeys(c1).every((k) => k.every((b) => b === 0)));
    // More SAs than the core has room for (maxSas 64): refused by the worker before anything changes.
    const big = structuredClone(doc);
    for (let i = 0; i < 40; i++) {
      big.peers.push({ name: `x${i}`, address: `198.51.100.${100 + i}`, prefixes: [`10.${100 + i}.0.0/16`], sas: [{ spi_in: 0x5000 + i, spi_out: 0x6000 + i, suite: "aes-128-gcm", key_in: hexKey(20), key_out: hexKey(20) }] });
    }
    const before = r.table.prov.peers.map((p) => p.out!.saId);
    const all = plan(load(big), { sas: new Set(), tunnels: new Map() });
    assert.throws(() => r.table.apply(all.peers), /room/);
    assert.ok(all.peers.every((p) => p.sas.every((s) => s.keysIn!.key.every((b) => b === 0))), "keys wiped on a refusal too");
    assert.deepEqual(r.table.prov.peers.map((p) => p.out!.saId), before);
  } finally {
    r.close();
  }
});

test("soft lifetimes (RFC 4301 §4.4.2.1) ask for a rekey once; the controller's order — [old, new], [new, old], [new] — moves outbound in the middle step only", async () => {
  const r = await rig();
  try {
    const doc = baseConfig();
    const lifetime = { seconds: 100, soft_seconds: 10 };
    const oldB = { ...doc.peers[0].sas[0], lifetime };
    doc.peers[0].sas = [oldB];
    r.table.apply(r.lc.initial(load(doc)).peers);
    const t0 = Date.now();
    const seen = () => r.events.map((e) => `${e.event}:${"dir" in e ? e.dir : ""}:${"spi" in e ? e.spi : ""}${"why" in e ? `:${e.why}` : ""}`);
    r.events.length = 0;
    r.table.checkLifetimes(t0 + 5_000);
    assert.deepEqual(seen(), [], "before the soft lifetime: nothing (90 % of the hard one is 90 s)");
    r.table.checkLifetimes(t0 + 11_000);
    assert.deepEqual(seen().sort(), [`needs-rekey:in:${0x1001}:soft-lifetime`, `needs-rekey:out:${0x2001}:soft-lifetime`]);
    r.table.checkLifetimes(t0 + 12_000);
    assert.equal(r.events.length, 2, "asked once per SA");

    const newB = { spi_in: 0x1011, spi_out: 0x2011, suite: "aes-256-gcm", key_in: hexKey(36), key_out: hexKey(36), lifetime };
    r.events.length = 0;
    doc.peers[0].sas = [oldB, newB];
    await r.lc.apply(load(doc));
    assert.deepEqual(seen(), [`sa-installed:in:${0x1011}`], "step 1: inbound only");
    r.events.length = 0;
    doc.peers[0].sas = [newB, oldB];
    await r.lc.apply(load(doc));
    assert.deepEqual(seen(), [`sa-installed:out:${0x2011}`, `sa-removed:out:${0x2001}:config`], "step 2: outbound switches; both still accepted inbound");
    assert.deepEqual(r.table.prov.peers[0].in.map((s) => s.spi).sort(), [0x1001, 0x1011]);
    r.events.length = 0;
    doc.peers[0].sas = [newB];
    await r.lc.apply(load(doc));
    assert.deepEqual(seen(), [`sa-removed:in:${0x1001}:config`], "step 3: the old inbound SA goes");

    // A hard lifetime removes the SA (the new one, 100 s after its install).
    r.events.length = 0;
    r.table.checkLifetimes(Date.now() + 101_000);
    assert.ok(seen().includes(`sa-removed:out:${0x2011}:lifetime`), seen().join(" "));

    // A soft lifetime not below the hard one is refused by the loader.
    assert.throws(() => load({ ...doc, peers: [{ ...doc.peers[0], sas: [{ ...newB, lifetime: { seconds: 10, soft_seconds: 10 } }] }] }), /soft_seconds.*must be less than lifetime\.seconds/);
  } finally {
    r.close();
  }
});

test("emitBatch: an apply's events reach it in one call, in the order emit gets them one by one, whether the apply adds, replaces or removes", async () => {
  const one = await makeCore({ maxSas: 64, maxPolicies: 64, largeWindowBlocks: 16 });
  const batched = await makeCore({ maxSas: 64, maxPolicies: 64, largeWindowBlocks: 16 });
  const each: SaEvent[] = [];
  const calls: SaEvent[][] = [];
  const got: SaEvent[] = [];
  const raw: EventBatch[] = [];
  const a = new SaTable(one, { emit: (e) => void each.push(e) });
  const b = new SaTable(batched, { emit: (e) => void got.push(e), emitBatch: (b) => void (calls.push(eventsOf(b)), raw.push(b)) });
  // the same peers for both (an apply wipes the keys it was given: plan each time)
  const peersOf = (doc: Doc) => plan(load(doc), { sas: new Set(), tunnels: new Map() }).peers;
  const doc = baseConfig();
  // then d rekeyed (new SPIs, new keys): make before break, its old SAs removed
  const rekeyedD = { ...peerD(), sas: [{ ...peerD().sas[0], spi_in: 0x1005, spi_out: 0x5001 }] };
  const steps: Doc[] = [doc, { ...doc, peers: [doc.peers[0], peerD()] }, { ...doc, peers: [rekeyedD] }];
  for (const step of steps) {
    each.length = 0;
    calls.length = 0;
    a.apply(peersOf(step));
    b.apply(peersOf(step));
    assert.ok(each.length > 0);
    assert.equal(calls.length, 1, "one call per apply");
    assert.deepEqual(calls[0], each, "the same events, in the same order");
    // sa-installed events travel as rows (no object each), and survive the worker's message as they are
    const batch = raw.pop()!;
    assert.equal(batch.events.filter((e) => typeof e === "number").length, each.filter((e) => e.event === "sa-installed").length);
    assert.deepEqual(eventsOf(structuredClone(batch)), each, "the main thread's events from the cloned batch");
  }
  assert.deepEqual(got, [], "emit gets none of an apply's events when emitBatch is given");
  // an apply that changes nothing has nothing to send
  calls.length = 0;
  b.apply(peersOf(steps[2]));
  assert.equal(calls.length, 0);
});
