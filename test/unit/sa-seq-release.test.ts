// A key's sequence-store state (host/sa/seq_store.ts FileState: its write
// generations and tracked SAs) is let go of once nothing can need it — no
// tracked SA, no write in flight that could land, no uncovered journal
// record — so rotating static keys does not grow the store for ever; and
// letting go never lets an older write land over a newer one, nor a key
// resume below a number it used: a renewal, a migration batch or a Resume
// that outlives the state it was made on is ordered against that state, and
// a key prepared again resumes from its files.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { MIN_BLOCK, SeqStateError, SeqStore, type DurableParams, type Resume } from "../../host/sa/seq_store.ts";
import { durableState } from "../../host/sa/journal.ts";
import { readState, statePath } from "../../host/sa/state_file.ts";
import { keyId } from "../../host/sa/key_id.ts";
import { VERDICT, type Core } from "../../host/core/core.ts";
import { parseConfig } from "../../host/config/load.ts";
import type { Config } from "../../host/config/model.ts";
import { SaTable } from "../../host/sa/install.ts";
import { SaLifecycle } from "../../host/sa/lifecycle.ts";
import { hexKey, type Doc } from "../helpers/config_fixture.ts";
import { innerUdp, makeCore } from "./core-helpers.ts";
import { inStateDir as inStateDirOf, migrated, sendOut } from "./sa-state-helpers.ts";

const inStateDir = (fn: (dir: string) => void | Promise<void>) => inStateDirOf("wesp-seqrel-", fn);

/** A fresh outbound or inbound key: its durable parameters and its keying material. */
function newKey(stateDir: string, dir: "in" | "out", spi: number): { p: DurableParams; key: Buffer; salt: Buffer } {
  const key = randomBytes(16), salt = randomBytes(4);
  return { key, salt, p: { stateDir, dir, keyId: keyId(dir, Buffer.concat([key, salt])), spi, suite: "aes-128-gcm", peer: "p", esn: false } };
}

/** What a restart would resume key `p` from (the max over its file and the journals). */
function durable(p: DurableParams): bigint {
  const d = durableState(p.stateDir, p.dir, p.keyId);
  assert.equal(d.kind, "ok");
  return d.kind === "ok" ? d.record.reserved : -1n;
}

/**
 * An outbound SA of `k` in `core` from `res`, with a policy of its own
 * (remote 10.2.`n`.0/24), tracked by `store`: its id, a sender of `count`
 * packets that reports each batch as the pipeline does (ensure) and returns
 * the last number used, and its removal (untrack first, as SaTable does).
 */
function outSa(core: Core, store: SeqStore, k: ReturnType<typeof newKey>, res: Resume, n: number, now = Date.now()) {
  const id = core.addSa({ direction: "out", suite: "aes-gcm-16", mode: "tunnel", spi: k.p.spi, key: k.key, salt: k.salt, local: "192.0.2.1", remote: "192.0.2.2", peerId: 1, initialSeq: res.initialSeq, seqLimit: res.seqLimit });
  const policy = core.addPolicy({ action: "protect", local: "10.1.0.0/16", remote: `10.2.${n}.0/24`, saId: id, peerId: 1 });
  store.track(id, k.p, res, now);
  const pkt = innerUdp("10.1.0.1", `10.2.${n}.1`, 16);
  const send = (count: number): bigint => sendOut(core, store, id, pkt, count);
  const remove = (): void => {
    store.untrack(core, id);
    core.removePolicy(policy);
    core.removeSa(id);
  };
  return { id, send, remove };
}

/** Ticks and yields until `done` (bounded: the writes run off the thread); whether it came. */
async function until(store: SeqStore, core: Core, done: () => boolean): Promise<boolean> {
  for (let i = 0; i < 2000 && !done(); i++) {
    store.tick(core);
    await new Promise((r) => setTimeout(r, 2));
  }
  return done();
}

test("one peer's key rotated 300 times, alone and beside a steady key: the store holds a state per tracked key, no more", async () => {
  await inStateDir(async (dir) => {
    const core = await makeCore({ slots: 64 });
    const store = new SeqStore(() => {});
    const steady = newKey(dir, "out", 0x100);
    const s = outSa(core, store, steady, store.prepare(steady.p), 0);
    s.send(10);
    for (let i = 0; i < 300; i++) {
      const k = newKey(dir, "out", 0x200 + i);
      const sa = outSa(core, store, k, store.prepare(k.p), 1);
      sa.send(3);
      if (i % 50 === 0) store.tick(core);
      assert.equal(store.fileCount(), 2, `rotation ${i}: the steady key and this one`);
      sa.remove();
      assert.equal(store.fileCount(), 1, `rotation ${i}: the rotated-out key's state is let go of with its final write`);
    }
    s.remove();
    assert.equal(store.fileCount(), 0);
  });
});

test("SaTable: 10 reloads that rotate every peer's keys (batched: a journal each) leave one state per SA", async () => {
  await inStateDir(async (dir) => {
    const peers = 20;
    const doc = (): Doc => ({
      version: 1,
      node: { name: "a", wan: [{ name: "inet", address: "192.0.2.1" }], local_prefixes: ["10.0.0.0/16"] },
      peers: Array.from({ length: peers }, (_, i) => ({
        name: `p${i}`, address: `198.51.100.${i + 1}`, port: 4500, prefixes: [`10.${i + 1}.0.0/16`],
        sas: [{ spi_in: 0x1000 + i, spi_out: 0x2000 + i, suite: "aes-256-gcm", key_in: hexKey(36), key_out: hexKey(36) }],
      })),
    });
    const load = (d: Doc): Config => parseConfig(JSON.stringify(d), { baseDir: "/tmp", source: "<test>" }).config;
    const core = await makeCore({ maxSas: 4 * peers, maxPolicies: 4 * peers, largeWindowBlocks: 4 * peers });
    const alarms: string[] = [];
    const store = new SeqStore((m) => void alarms.push(m));
    const table = new SaTable(core, { store, stateDir: dir, emit: (e) => void (e.event === "alarm" && alarms.push(e.message)) });
    const lc = new SaLifecycle({ apply: async (ps) => table.apply(ps) });
    table.apply(lc.initial(load(doc())).peers);
    assert.equal(store.fileCount(), 2 * peers);
    for (let r = 0; r < 10; r++) {
      await lc.apply(load(doc())); // every key new: the old SAs removed, the new ones installed in one batch
      assert.equal(store.fileCount(), 2 * peers, `reload ${r}: the old keys' states went with their final writes`);
      if (r % 3 === 0) await migrated(store);
      assert.equal(store.fileCount(), 2 * peers, `reload ${r}: and the migration keeps none`);
    }
    table.clear();
    assert.equal(store.fileCount(), 0, "a clean stop lets go of every state");
    assert.deepEqual(alarms, []);
  });
});

test("a state whose last SA went without a final write is kept while its renewal is in flight, let go of when it lands; the key prepared meanwhile stays ordered after it", async () => {
  await inStateDir(async (dir) => {
    const core = await makeCore({ slots: 64 });
    const store = new SeqStore(() => {});
    const k1 = newKey(dir, "out", 0x301), k2 = newKey(dir, "out", 0x302);
    const r1 = store.prepare(k1.p, 1000);
    const sa = outSa(core, store, k1, r1, 1, 1000);
    assert.equal(sa.send(5000), 5000n); // more than half the first block, less than three quarters: no urgent renewal
    store.tick(core, 1010); // the renewal (5000 + a block) is staged off the thread
    // the id tracked again without an untrack (a caller's slip): k1's last SA gone, no final write
    store.track(sa.id, k2.p, store.prepare(k2.p, 1020), 1020);
    assert.equal(store.fileCount(), 2, "k1's state is kept: its renewal is in flight (issued > committed)");
    // k1 prepared again before that renewal lands: its write must stay above the renewal's
    const again = store.prepare(k1.p, 1030);
    assert.equal(again.initialSeq, MIN_BLOCK.out + 1n);
    assert.ok(await until(store, core, () => store.fileCount() === 1), "k1's state let go of once the renewal landed (discarded: older than the prepare)");
    assert.ok(durable(k1.p) >= again.seqLimit, `k1 on disk ${durable(k1.p)}: never below the ${again.seqLimit} its last prepare promised`);
  });
});

test("the journal migration orders its writes against the state it issued them on: a key let go of meanwhile keeps its newer final record", async () => {
  await inStateDir(async (dir) => {
    const core = await makeCore({ slots: 64 });
    const store = new SeqStore(() => {});
    const k = newKey(dir, "out", 0x401), x = newKey(dir, "out", 0x402);
    const got = store.prepareAll([k.p, x.p]); // one journal: both keys' records
    const r = got.get(statePath(dir, "out", k.p.keyId))!;
    assert.ok(!(r instanceof SeqStateError));
    const sa = outSa(core, store, k, r, 1);
    store.tick(core); // the migration stages both keys' files from the journal (k's record: the first block)
    // Before it lands: k's traffic runs past the first block (an urgent renewal), its SA is removed.
    const sent = sa.send(Number(MIN_BLOCK.out) + 1000);
    assert.ok(sent > MIN_BLOCK.out);
    sa.remove();
    assert.equal(store.fileCount(), 1, "k let go of (final write in place, journal record covered); x's record is still uncovered");
    await migrated(store);
    assert.equal(store.fileCount(), 0, "x let go of once the migration covered its record (no SA holds it)");
    assert.ok(durable(k.p) >= sent, `k on disk ${durable(k.p)}: the migration's older record must not land over the final one (${sent} sent)`);
    store.abandon();
    const resumed = new SeqStore(() => {}).prepare(k.p);
    assert.ok(resumed.initialSeq > sent, `k resumes at ${resumed.initialSeq}, ${sent} were sent`);
  });
});

test("a covering of a let-go state touches no journal record written since by the key's new state", async () => {
  await inStateDir(async (dir) => {
    const core = await makeCore({ slots: 64 });
    const store = new SeqStore(() => {});
    const k = newKey(dir, "out", 0x501);
    const r = store.prepare(k.p);
    store.track(7, k.p, r);
    store.untrack(core, 7);
    assert.equal(store.fileCount(), 0);
    // the key again, in a batch: a journal record in its new state's generations (from 1)
    const got = store.prepareAll([k.p]).get(statePath(dir, "out", k.p.keyId))!;
    assert.ok(!(got instanceof SeqStateError));
    assert.ok(got.seqLimit > r.seqLimit);
    // A migration batch issued on the old state, landing late (its directory fsync'd after
    // all this): its covering, at an old generation above the record's, must not count.
    const host = (store as unknown as { migration: { host: { covered(f: unknown, my: number): void } } }).migration.host;
    host.covered(r.at, 5);
    assert.equal(store.journalStats().pending, 1, "the new journal record is still uncovered");
    assert.ok(durable(k.p) >= got.seqLimit, `k on disk ${durable(k.p)}, its last promise ${got.seqLimit}: the journal must stay`);
  });
});

test("track with a Resume whose state was let go of joins the key's current state: one state per key, and a batch sees the key held", async () => {
  await inStateDir(async (dir) => {
    const core = await makeCore({ slots: 64 });
    const store = new SeqStore(() => {});
    const k = newKey(dir, "out", 0x601), y = newKey(dir, "in", 0x602);
    const early = store.prepare(k.p); // handed out, tracked only later
    const r2 = store.prepare(k.p);
    store.track(1, k.p, r2);
    store.untrack(core, 1); // the key's last SA: its state let go of, `early`'s with it
    assert.equal(store.fileCount(), 0);
    const r3 = store.prepare(k.p); // a new state for the key
    store.track(2, k.p, r3);
    store.track(3, k.p, early); // must join the key's current state, not revive the old one
    store.untrack(core, 2);
    assert.equal(store.fileCount(), 1, "SA 3 holds the key's (only) state");
    // With two states, a batch would see the current one unheld and reserve under SA 3's feet.
    const got = store.prepareAll([k.p, y.p]);
    assert.equal(got.has(statePath(dir, "out", k.p.keyId)), false, "a key with a tracked SA is left out of a batch");
    store.untrack(core, 3);
    assert.equal(store.fileCount(), 1, "only y's state (its journal record uncovered) is left");
  });
});

test("a key let go of and prepared again resumes past everything it used: outbound past what it sent, inbound with the window filled", async () => {
  await inStateDir(async (dir) => {
    const core = await makeCore({ slots: 64 });
    const store = new SeqStore(() => {});
    // outbound: several renewals, then removed
    const o = newKey(dir, "out", 0x701);
    const ro = store.prepare(o.p);
    const out = outSa(core, store, o, ro, 1);
    let sent = 0n;
    for (let i = 0; i < 6; i++) {
      sent = out.send(4000);
      store.tick(core);
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(sent, 24_000n);
    out.remove();
    // inbound: a peer's traffic accepted, then removed
    const i = newKey(dir, "in", 0x702);
    const ri = store.prepare(i.p);
    const rx = core.addSa({ direction: "in", suite: "aes-gcm-16", mode: "tunnel", spi: i.p.spi, key: i.key, salt: i.salt, local: "192.0.2.2", remote: "192.0.2.1", peerId: 1, replayWindow: 64, initialSeq: ri.initialSeq, seqLimit: ri.seqLimit });
    core.addPolicy({ action: "protect", local: "10.2.0.0/16", remote: "10.1.0.0/16", saId: -1, peerId: 1 });
    store.track(rx, i.p, ri);
    const tx = await makeCore();
    const txSa = tx.addSa({ direction: "out", suite: "aes-gcm-16", mode: "tunnel", spi: i.p.spi, key: i.key, salt: i.salt, local: "192.0.2.1", remote: "192.0.2.2", peerId: 1 });
    tx.addPolicy({ action: "protect", local: "10.1.0.0/16", remote: "10.2.0.0/16", saId: txSa, peerId: 1 });
    let last = new Uint8Array(0);
    for (let n = 0; n < 3000; n++) {
      tx.writePacket(0, innerUdp("10.1.0.1", "10.2.0.1", 20));
      tx.processOutbound(1);
      last = Uint8Array.from(tx.packet(0));
      core.writePacket(0, last, 0);
      core.processInbound(1);
      assert.equal(core.verdict(0), VERDICT.TO_TUN, core.reasonName(0));
      if (n % 64 === 63) store.ensure(core, rx);
    }
    store.untrack(core, rx);
    core.removeSa(rx);
    assert.equal(store.fileCount(), 0, "both keys let go of");
    // the same store, and a restarted one, resume both from their files
    for (const s of [store, new SeqStore(() => {})]) {
      const o2 = s.prepare(o.p);
      assert.ok(o2.initialSeq > sent, `outbound resumes at ${o2.initialSeq}, ${sent} were sent`);
      const i2 = s.prepare(i.p);
      assert.equal(i2.priorSeen, true);
      assert.ok(i2.initialSeq > 3000n, `inbound resumes at ${i2.initialSeq}, 3000 were accepted`);
      const again = core.addSa({ direction: "in", suite: "aes-gcm-16", mode: "tunnel", spi: i.p.spi, key: i.key, salt: i.salt, local: "192.0.2.2", remote: "192.0.2.1", peerId: 1, replayWindow: 64, initialSeq: i2.initialSeq, priorSeen: true, seqLimit: i2.seqLimit });
      core.writePacket(0, last, 0);
      core.processInbound(1);
      assert.match(core.reasonName(0), /^REPLAY/, "the last packet accepted before is a replay after");
      core.removeSa(again);
    }
    assert.equal(readState(statePath(dir, "in", i.p.keyId), { dir: "in", keyId: i.p.keyId }).kind, "ok");
  });
});
