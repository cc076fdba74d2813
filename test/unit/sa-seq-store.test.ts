// Durable sequence reservations (host/sa/seq_store.ts, state_file.ts): what a
// restart resumes from, what a damaged, foreign or unwritable state file
// does (the SA is refused, never restarted at 1), and that the renewal loop
// keeps the file ahead of every number the core uses.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { FIRST_BLOCK, MIN_BLOCK, SeqStateError, SeqStore, type DurableParams } from "../../host/sa/seq_store.ts";
import { decodeState, encodeState, ensureStateDir, readState, statePath } from "../../host/sa/state_file.ts";
import { keyId } from "../../host/sa/key_id.ts";
import { VERDICT } from "../../host/core/core.ts";
import { innerUdp, makeCore } from "./core-helpers.ts";

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "wesp-seq-"));
  ensureStateDir(d);
  return d;
}

function params(stateDir: string, dir: "in" | "out", key = randomBytes(20)): DurableParams {
  return { stateDir, dir, keyId: keyId(dir, key), spi: 0x1234, suite: "aes-128-gcm", peer: "p", esn: false };
}

test("key id: a keyed hash that differs by key and direction and never contains the key", () => {
  const k = randomBytes(36);
  const a = keyId("out", k), b = keyId("in", k), c = keyId("out", randomBytes(36));
  assert.match(a, /^[0-9a-f]{32}$/);
  assert.notEqual(a, b);
  assert.notEqual(a, c);
  assert.equal(keyId("out", Uint8Array.from(k)), a, "same key, same id (the SPI plays no part: the nonce space is the key's)");
  assert.ok(!a.includes(k.toString("hex").slice(0, 8)));
});

test("a new key starts at 1 with a durable first block; a restart resumes past it, inbound with the window filled", () => {
  const dir = tmp();
  try {
    for (const d of ["out", "in"] as const) {
      const p = params(dir, d);
      const s = new SeqStore(() => {});
      const r1 = s.prepare(p, 1000);
      assert.equal(r1.initialSeq, 1n);
      assert.equal(r1.priorSeen, false);
      assert.equal(r1.resumed, false);
      assert.equal(r1.seqLimit, FIRST_BLOCK[d]);
      const onDisk = readState(r1.file, { dir: d, keyId: p.keyId });
      assert.equal(onDisk.kind, "ok");
      assert.equal(onDisk.kind === "ok" && onDisk.record.reserved, FIRST_BLOCK[d], "the promise is on disk before anything is used");
      assert.ok(!readFileSync(r1.file, "utf8").includes(p.keyId.slice(0, 0) + "key\""), "no key field");
      // kill -9 here: the next run resumes past everything the first could have used.
      const r2 = new SeqStore(() => {}).prepare(p, 2000);
      assert.equal(r2.initialSeq, FIRST_BLOCK[d] + 1n);
      assert.equal(r2.priorSeen, true);
      assert.equal(r2.resumed, true);
      assert.equal(r2.created, 1000, "lifetimes count from the key's first install");
      assert.equal(r2.seqLimit, 2n * FIRST_BLOCK[d]);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a corrupt, foreign or unwritable state file refuses the SA and names the file", () => {
  const dir = tmp();
  try {
    const p = params(dir, "out");
    const s = new SeqStore(() => {});
    const r = s.prepare(p);
    // Corrupt: one digit of the reservation changed (the checksum catches it).
    const text = readFileSync(r.file, "utf8");
    writeFileSync(r.file, text.replace(/"reserved":"(\d)/, (_m, d) => `"reserved":"${(Number(d) + 1) % 10}`));
    assert.throws(() => s.prepare(p), (e: unknown) => e instanceof SeqStateError && e.message.includes(r.file) && /checksum|corrupt/.test(e.message));
    writeFileSync(r.file, "{not json");
    assert.throws(() => s.prepare(p), (e: unknown) => e instanceof SeqStateError && /corrupt/.test(e.message));
    // Foreign: another key's (valid) record under this key's name.
    const other = params(dir, "out");
    const rec = { dir: "out" as const, keyId: other.keyId, spi: 1, suite: "aes-128-gcm", peer: "x", reserved: 5n, packets: 0n, bytes: 0n, created: 0 };
    writeFileSync(r.file, encodeState(rec));
    assert.throws(() => s.prepare(p), (e: unknown) => e instanceof SeqStateError && /another key/.test(e.message));
    // Unreadable: the state directory is a file (root ignores modes, ENOTDIR does not).
    const file = join(dir, "plain-file");
    writeFileSync(file, "");
    assert.throws(() => s.prepare(params(file, "in")), (e: unknown) => e instanceof SeqStateError && /cannot be read/.test(e.message) && e.message.includes(file));
    // Not writable: a directory sits where the temporary file must go (EISDIR, even for root).
    const q = params(dir, "in");
    mkdirSync(statePath(dir, "in", q.keyId) + ".tmp");
    assert.throws(() => s.prepare(q), (e: unknown) => e instanceof SeqStateError && /cannot be written/.test(e.message) && e.message.includes(statePath(dir, "in", q.keyId)));
    // Used up: a 32-bit SA whose reservation reached 2^32 - 1 cannot go on (RFC 4303 §3.3.3).
    writeFileSync(r.file, encodeState({ ...rec, keyId: p.keyId, reserved: 0xffffffffn }));
    assert.throws(() => s.prepare(p), /used up/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("decodeState rejects every malformed field", () => {
  const ok = { dir: "in" as const, keyId: "ab".repeat(16), spi: 7, suite: "chacha20-poly1305", peer: "p", reserved: 9n, packets: 1n, bytes: 2n, created: 3 };
  const expect = { dir: "in" as const, keyId: ok.keyId };
  assert.equal(decodeState(encodeState(ok), expect).kind, "ok");
  const v = JSON.parse(encodeState(ok));
  for (const [f, bad] of [["reserved", "-1"], ["reserved", "1e5"], ["reserved", 5], ["packets", "99999999999999999999999"], ["created", -1], ["version", 2], ["spi", "7"]] as const) {
    const t = JSON.stringify({ ...v, [f]: bad });
    assert.equal(decodeState(t, expect).kind, "bad", `${f} = ${JSON.stringify(bad)}`);
  }
  assert.equal(decodeState("[]", expect).kind, "bad");
  assert.equal(decodeState("null", expect).kind, "bad");
  assert.equal(decodeState(encodeState(ok), { dir: "out", keyId: ok.keyId }).kind, "bad", "direction is part of the identity");
});

test("renewal keeps the file ahead of every number the core seals, and the core stops at the limit meanwhile", async () => {
  const dir = tmp();
  try {
    const key = randomBytes(16), salt = randomBytes(4);
    const p = params(dir, "out", Buffer.concat([key, salt]));
    const alarms: string[] = [];
    const store = new SeqStore((m) => alarms.push(m));
    const res = store.prepare(p);
    const core = await makeCore();
    const sa = core.addSa({ direction: "out", suite: "aes-gcm-16", mode: "tunnel", spi: p.spi, key, salt, local: "192.0.2.1", remote: "192.0.2.2", peerId: 1, initialSeq: res.initialSeq, seqLimit: res.seqLimit });
    core.addPolicy({ action: "protect", local: "10.1.0.0/16", remote: "10.2.0.0/16", saId: sa, peerId: 1 });
    store.track(sa, p, res);
    const pkt = innerUdp("10.1.0.1", "10.2.0.1", 20);
    let sent = 0, refused = 0;
    for (let round = 0; round < 40; round++) {
      for (let i = 0; i < 1000; i++) {
        core.writePacket(0, pkt);
        core.processOutbound(1);
        if (core.verdict(0) === VERDICT.TO_NETWORK) sent++;
        else refused++;
      }
      store.ensure(core, sa); // what the pipeline does after a batch: the SA is in use (tick visits only those)
      const used = core.seqOf(sa, true) - 1n;
      const disk = readState(res.file, { dir: "out", keyId: p.keyId });
      assert.equal(disk.kind, "ok");
      assert.ok(disk.kind === "ok" && disk.record.reserved >= used, `round ${round}: file ${disk.kind === "ok" ? disk.record.reserved : "?"} < used ${used}`);
      store.tick(core, Date.now());
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(alarms.length, 0);
    assert.ok(sent > Number(MIN_BLOCK.out), `renewals let it go past the first block (sent ${sent}, refused ${refused})`);
    assert.equal(BigInt(sent), core.seqOf(sa, true) - 1n, "every sealed packet used one number, refused ones none");
    store.untrack(core, sa);
    const fin = readState(res.file, { dir: "out", keyId: p.keyId });
    assert.ok(fin.kind === "ok" && fin.record.packets === BigInt(sent), "final counters written");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** An inbound AES-GCM SA started from its durable state in `dir` and tracked by a fresh store. */
async function durableInbound(dir: string, now = Date.now()) {
  const key = randomBytes(16), salt = randomBytes(4);
  const p = params(dir, "in", Buffer.concat([key, salt]));
  const store = new SeqStore(() => {});
  const res = store.prepare(p);
  const core = await makeCore();
  const sa = core.addSa({ direction: "in", suite: "aes-gcm-16", mode: "tunnel", spi: p.spi, key, salt, local: "192.0.2.2", remote: "192.0.2.1", peerId: 1, replayWindow: 64, initialSeq: res.initialSeq, seqLimit: res.seqLimit });
  store.track(sa, p, res, now);
  return { p, store, core, sa, key, salt };
}

/** durableInbound with a sender of the same key from sequence number 1: `send(n)` seals n packets and opens them, `ensure` as the pipeline calls it after a batch. */
async function flowingInbound(dir: string, now: number) {
  const d = await durableInbound(dir, now);
  d.core.addPolicy({ action: "protect", local: "10.2.0.0/16", remote: "10.1.0.0/16", saId: -1, peerId: 1 });
  const tx = await makeCore();
  const out = tx.addSa({ direction: "out", suite: "aes-gcm-16", mode: "tunnel", spi: d.p.spi, key: d.key, salt: d.salt, local: "192.0.2.1", remote: "192.0.2.2", peerId: 1 });
  tx.addPolicy({ action: "protect", local: "10.1.0.0/16", remote: "10.2.0.0/16", saId: out, peerId: 1 });
  let last = new Uint8Array(0);
  const send = (n: number): void => {
    for (let i = 0; i < n; i++) {
      tx.writePacket(0, innerUdp("10.1.0.1", "10.2.0.1", 20));
      tx.processOutbound(1);
      last = Uint8Array.from(tx.packet(0));
      d.core.writePacket(0, last, 0);
      d.core.processInbound(1);
      assert.equal(d.core.verdict(0), VERDICT.TO_TUN, d.core.reasonName(0));
    }
    d.store.ensure(d.core, d.sa);
  };
  /** The last packet sent, again: dropped as a replay after its SA was found, so the pipeline reports the SA (ensure). */
  const replay = (): void => {
    d.core.writePacket(0, last, 0);
    d.core.processInbound(1);
    assert.equal(d.core.reasonName(0), "REPLAY");
    d.store.ensure(d.core, d.sa);
  };
  return { ...d, send, replay };
}

const onDisk = (dir: string, keyId: string): bigint => {
  const r = readState(statePath(dir, "in", keyId), { dir: "in", keyId });
  assert.equal(r.kind, "ok");
  return r.kind === "ok" ? r.record.reserved : -1n;
};
const settle = () => new Promise((r) => setTimeout(r, 20)); // a staged write commits

test("an inbound SA starts small and idle: no write while it stays idle; its first batch renews it to a whole block", async () => {
  const dir = tmp();
  try {
    const { p, store, core, sa, send } = await flowingInbound(dir, 0);
    assert.equal(core.saState(sa).seqLimit, FIRST_BLOCK.in);
    for (let now = 10; now <= 10_000; now += 10) store.tick(core, now);
    await settle();
    assert.equal(core.saState(sa).seqLimit, FIRST_BLOCK.in, "idle from the start: tick neither renews nor gives back");
    assert.equal(onDisk(dir, p.keyId), FIRST_BLOCK.in);
    send(200); // one batch: fits in FIRST_BLOCK, then ensure renews (synchronously: a quarter of a block is not left)
    assert.equal(core.saState(sa).seqLimit, 200n + MIN_BLOCK.in);
    assert.equal(onDisk(dir, p.keyId), 200n + MIN_BLOCK.in, "on disk before the core may use it");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("an inbound SA that goes idle gives back most of its block once: the core limit drops first, then the file; no renew/give-back cycle", async () => {
  const dir = tmp();
  try {
    const { p, store, core, sa, send } = await flowingInbound(dir, 0);
    send(100);
    store.tick(core, 100); // progress seen
    const limits: bigint[] = [];
    for (let now = 110; now <= 12_000; now += 10) {
      store.tick(core, now);
      await new Promise((r) => setImmediate(r));
      limits.push(core.saState(sa).seqLimit);
    }
    await settle();
    const back = limits.findIndex((l) => l < 100n + MIN_BLOCK.in);
    assert.ok(back >= 0, "given back once idle past IDLE_MS");
    assert.equal(limits[back], 100n + 256n, "down to a small block past what it accepted");
    assert.deepEqual([...new Set(limits.slice(back))], [limits[back]], "and it stays there while idle");
    assert.equal(onDisk(dir, p.keyId), limits[back], "the file holds the same promise");
    send(256); // traffic again: a whole batch (256 slots) fits what was left, then ensure renews
    send(256);
    assert.ok(core.saState(sa).seqLimit >= 612n + MIN_BLOCK.in / 4n);
    assert.equal(onDisk(dir, p.keyId), core.saState(sa).seqLimit);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("an idle inbound SA fed only replays keeps its small block: packets that move no window renew nothing, no renew/give-back cycle", async () => {
  const dir = tmp();
  try {
    const { p, store, core, sa, send, replay } = await flowingInbound(dir, 0);
    send(100);
    store.tick(core, 100); // progress seen
    const limits: bigint[] = [];
    // A replayed packet every 10 ms, as the worker's tick runs: the window stays at 100.
    for (let now = 110; now <= 12_000; now += 10) {
      store.tick(core, now);
      replay();
      await new Promise((r) => setImmediate(r));
      limits.push(core.saState(sa).seqLimit);
    }
    await settle();
    const back = limits.findIndex((l) => l < 100n + MIN_BLOCK.in);
    assert.ok(back >= 0, "given back once idle past IDLE_MS, replays or not");
    assert.equal(limits[back], 100n + 256n);
    // Before the fix ensure() renewed it to a whole block (synchronous write) after the next
    // replay, the next tick gave it back, and so on: the limit alternated every 10 ms.
    assert.deepEqual([...new Set(limits.slice(back))], [limits[back]], "and it stays there while only replays come");
    assert.equal(onDisk(dir, p.keyId), limits[back]);
    send(256); // real traffic again: renewed after its first batch
    assert.equal(core.saState(sa).seqLimit, 356n + MIN_BLOCK.in);
    assert.equal(onDisk(dir, p.keyId), core.saState(sa).seqLimit);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a peer that resumes past our inbound reservation (it restarted) is followed: authenticated packets past the limit raise it", async () => {
  const dir = tmp();
  try {
    const { p, store, core: rx, sa, key, salt } = await durableInbound(dir);
    rx.addPolicy({ action: "protect", local: "10.2.0.0/16", remote: "10.1.0.0/16", saId: -1, peerId: 1 });
    // The sender resumed 20,000 numbers on (a restarted wesp skips up to a whole block).
    const tx = await makeCore();
    const out = tx.addSa({ direction: "out", suite: "aes-gcm-16", mode: "tunnel", spi: p.spi, key, salt, local: "192.0.2.1", remote: "192.0.2.2", peerId: 1, initialSeq: 20_000 });
    tx.addPolicy({ action: "protect", local: "10.1.0.0/16", remote: "10.2.0.0/16", saId: out, peerId: 1 });
    const send = (): string => {
      tx.writePacket(0, innerUdp("10.1.0.1", "10.2.0.1", 20));
      tx.processOutbound(1);
      rx.writePacket(0, Uint8Array.from(tx.packet(0)), 0);
      rx.processInbound(1);
      return rx.verdict(0) === VERDICT.TO_TUN ? "ok" : rx.reasonName(0);
    };
    assert.equal(send(), "SEQ_UNRESERVED", "past the limit: authenticated, but not accepted yet");
    let verdict = "";
    for (let round = 0; round < 50 && verdict !== "ok"; round++) {
      store.tick(rx, Date.now());
      await new Promise((r) => setTimeout(r, 10));
      verdict = send();
    }
    assert.equal(verdict, "ok", "the reservation caught up with the peer");
    const disk = readState(statePath(dir, "in", p.keyId), { dir: "in", keyId: p.keyId });
    assert.ok(disk.kind === "ok" && disk.record.reserved >= rx.seqOf(sa, false), "and the file covers what was accepted");
    // A forgery past the limit (bad ICV) does not count: it is AUTH, never SEQ_UNRESERVED, which alone drives the raise.
    const unreserved = rx.dropCount(sa, "SEQ_UNRESERVED");
    tx.writePacket(0, innerUdp("10.1.0.1", "10.2.0.1", 20));
    tx.processOutbound(1);
    const forged = Uint8Array.from(tx.packet(0));
    new DataView(forged.buffer).setUint32(24, 0x7fffffff); // seq far ahead (outer IPv4 20 + SPI 4)
    rx.writePacket(0, forged, 0);
    rx.processInbound(1);
    assert.equal(rx.reasonName(0), "AUTH");
    assert.equal(rx.dropCount(sa, "SEQ_UNRESERVED"), unreserved);
    assert.ok(unreserved >= 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a renewal still in flight when its SA is removed and its id reused leaves the new SA alone: no limit raised, no failure blamed on it", async () => {
  const dir = tmp();
  try {
    const alarms: string[] = [];
    const store = new SeqStore((m) => alarms.push(m));
    const core = await makeCore();
    const key = randomBytes(16), salt = randomBytes(4);
    const p1 = params(dir, "out", Buffer.concat([key, salt]));
    const r1 = store.prepare(p1);
    const add = (p: DurableParams, r: { initialSeq: bigint; seqLimit: bigint }, k: Uint8Array, s: Uint8Array) =>
      core.addSa({ direction: "out", suite: "aes-gcm-16", mode: "tunnel", spi: p.spi, key: k, salt: s, local: "192.0.2.1", remote: "192.0.2.2", peerId: 1, initialSeq: r.initialSeq, seqLimit: r.seqLimit });
    const id = add(p1, r1, key, salt);
    core.addPolicy({ action: "protect", local: "10.1.0.0/16", remote: "10.2.0.0/16", saId: id, peerId: 1 });
    store.track(id, p1, r1);
    // more than half the first block used: the next look renews it, off the thread
    const pkt = innerUdp("10.1.0.1", "10.2.0.1", 20);
    for (let i = 0; i < Number(MIN_BLOCK.out) / 2 + 100; i++) {
      core.writePacket(0, pkt);
      core.processOutbound(1);
    }
    store.ensure(core, id);
    store.tick(core, Date.now() + 100);
    // removed, its final write failing (the file's name taken by a directory: the staged renewal will fail to land too),
    // and a new key's SA takes the same id
    rmSync(r1.file);
    mkdirSync(join(r1.file, "x"), { recursive: true });
    store.untrack(core, id);
    core.removeSa(id);
    const key2 = randomBytes(16), salt2 = randomBytes(4);
    const p2 = params(dir, "out", Buffer.concat([key2, salt2]));
    const r2 = store.prepare(p2);
    const id2 = add(p2, r2, key2, salt2);
    assert.equal(id2, id, "the core hands out the freed id again (else this test proves nothing)");
    store.track(id2, p2, r2);
    await settle();
    await settle();
    assert.equal(core.saState(id2).seqLimit, r2.seqLimit, "the old SA's renewal raised nothing of the new one");
    assert.deepEqual(alarms, [], "the old SA's failed write is not blamed on the new one (which would stop its renewals)");
    // the new SA still renews (its state was not left marked as writing)
    for (let i = 0; i < Number(MIN_BLOCK.out) / 2 + 100; i++) {
      core.writePacket(0, pkt);
      core.processOutbound(1);
    }
    store.ensure(core, id2);
    store.tick(core, Date.now() + 200);
    await settle();
    assert.ok(core.saState(id2).seqLimit > r2.seqLimit, "renewed");
    const d2 = readState(r2.file, { dir: "out", keyId: p2.keyId });
    assert.ok(d2.kind === "ok" && d2.record.reserved === core.saState(id2).seqLimit, "its file first, then the core");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
