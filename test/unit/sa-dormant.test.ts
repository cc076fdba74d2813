// Dormant SAs: what the worker's timers do every few milliseconds or every
// second is proportional to the SAs in use, not to the SAs held. The
// reservation timer (host/sa/seq_store.ts, "O(active SAs)") looks at every
// new SA once, then only at the SAs the pipeline reported since the last
// tick and those with something under way; the lifetime check
// (host/sa/install.ts checkLifetimes) looks at the SAs with a lifetime and,
// for a used-up sequence number, at the SAs the pipeline reported. That is
// safe only because the pipeline reports every SA a packet was matched to,
// dropped packets included (host/pipeline/pipeline.ts afterBatch): a dormant
// inbound SA whose peer jumped past our reservation (authenticated, but past
// SA_SEQLIMIT: SEQ_UNRESERVED) is still followed. The pipeline tests run a
// real core behind a real Pipeline whose TUN and UDP socket are in-memory
// fakes (as test/unit/pipeline-noalloc.test.ts), and a second core as the peer.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureStateDir, statePath, writeStateSync } from "../../host/sa/state_file.ts";
import { keyId } from "../../host/sa/key_id.ts";
import type { SaEvent } from "../../host/sa/spec.ts";
import { SeqStore, TICK_SLICE } from "../../host/sa/seq_store.ts";
import { parseConfig } from "../../host/config/load.ts";
import type { Config } from "../../host/config/model.ts";
import { SaTable } from "../../host/sa/install.ts";
import { SaLifecycle } from "../../host/sa/lifecycle.ts";
import { Pipeline } from "../../host/pipeline/pipeline.ts";
import { coreAddr } from "../../host/config/addr.ts";
import { VERDICT, type Core } from "../../host/core/core.ts";
import { hexKey, type Doc } from "../helpers/config_fixture.ts";
import { innerUdp, makeCore } from "./core-helpers.ts";

const load = (doc: Doc): Config => parseConfig(JSON.stringify(doc), { baseDir: "/tmp", source: "<test>" }).config;

/**
 * Ticks until the reservation journals are migrated to per-key files
 * (host/sa/migration.ts, started by tick, written off the thread): the
 * state directory is removed only once nothing writes to it.
 */
async function drain(store: SeqStore, core: Core): Promise<void> {
  while (store.journalStats().journals > 0) {
    store.tick(core);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "wesp-dormant-"));
  ensureStateDir(d);
  return d;
}

test("tick looks at each new SA once (TICK_SLICE a tick), then only at the SAs used since the last tick: idle SAs are dormant", async () => {
  const dir = tmp();
  try {
    const peers = TICK_SLICE + 100; // 2 · peers SAs: three slices of first looks
    const doc: Doc = {
      version: 1,
      node: { name: "hub", wan: [{ name: "inet", address: "192.0.2.1" }], local_prefixes: ["10.0.0.0/16"] },
      peers: Array.from({ length: peers }, (_, i) => ({
        name: `p${i}`, address: `198.51.${100 + (i >> 8)}.${i & 255}`, port: 4500, prefixes: [`10.${1 + (i >> 8)}.${i & 255}.0/24`],
        sas: [{ spi_in: 0x1000 + i, spi_out: 0x9000 + i, suite: "aes-256-gcm", key_in: hexKey(36), key_out: hexKey(36), replay_window: 64 }],
      })),
    };
    const core = await makeCore({ maxSas: 4 * peers, maxPolicies: 2 * peers, largeWindowBlocks: 4 });
    const store = new SeqStore(() => {});
    const table = new SaTable(core, { store, stateDir: dir });
    const lc = new SaLifecycle({ apply: async (ps) => table.apply(ps) });
    table.apply(lc.initial(load(doc)).peers);
    const t0 = Date.now(); // ticks' clock: after the SAs were tracked
    const all = table.prov.peers.flatMap((rt) => [rt.in[0].saId, rt.out!.saId]);
    assert.equal(store.watchedCount(), all.length, "every new SA is due a first look");
    store.tick(core, t0 + 1);
    assert.equal(all.filter((id) => store.visitedAt(id) === t0 + 1).length, TICK_SLICE, `one tick looks at a slice, not all ${all.length} SAs`);
    for (let i = 1; i < Math.ceil(all.length / TICK_SLICE); i++) store.tick(core, t0 + 2);
    assert.equal(all.filter((id) => store.visitedAt(id) === -1).length, 0, "every SA looked at within ⌈N / TICK_SLICE⌉ ticks");
    assert.equal(store.watchedCount(), 0, "new and idle (outbound unused, inbound at its small first block): all dormant");
    const before = all.map((id) => store.visitedAt(id));
    for (let i = 0; i < 3 * Math.ceil(all.length / TICK_SLICE); i++) store.tick(core, t0 + 10 + i);
    assert.deepEqual(all.map((id) => store.visitedAt(id)), before, "no dormant SA is visited, however many ticks pass");
    // the last SA is used now (the pipeline calls ensure): the next tick visits it, and only it
    const last = all[all.length - 1];
    store.ensure(core, last);
    store.tick(core, t0 + 1000);
    assert.equal(store.visitedAt(last), t0 + 1000, "an SA used since the last tick is visited by the next");
    assert.equal(all.filter((id) => store.visitedAt(id) === t0 + 1000).length, 1);
    assert.equal(store.watchedCount(), 0, "an outbound SA without a write in flight goes dormant again");
    await drain(store, core);
    table.clear();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A UDP socket in memory: datagrams queued by the test, sends counted. */
class FakeUdp {
  readonly family = 4 as const;
  readonly fd = -1;
  cb: ((err: Error | null) => void) | null = null;
  readonly queue: Uint8Array[] = [];
  constructor(readonly peer: Uint8Array) {}
  onReadable(cb: (err: Error | null) => void) { this.cb = cb; }
  holding() { return false; }
  recvBatch(mem: Uint8Array, offs: Uint32Array, lens: Uint32Array, addrs: Uint8Array, ports: Uint16Array, max: number, _cap: number, locals: Uint8Array): number {
    const n = Math.min(this.queue.length, max);
    for (let i = 0; i < n; i++) {
      const d = this.queue.shift()!;
      mem.set(d, offs[i]);
      lens[i] = d.length;
      addrs.set(this.peer, i * 16);
      locals.fill(0, i * 16, i * 16 + 16);
      ports[i] = 4500;
    }
    return n;
  }
  sendBatch(_m: Uint8Array, _o: Uint32Array, _l: Uint32Array, _a: Uint8Array, _p: Uint16Array, _f: Uint8Array, n: number): number { return n; }
  counters() { return { failed: 0, lastErrno: 0, unsent: 0, truncated: 0 }; }
  close() {}
}

/** A TUN in memory: packets queued by the test to read, writes counted. */
class FakeTun {
  readonly name = "fake0";
  written = 0;
  readonly queue: Uint8Array[] = [];
  onReadable() {}
  holding() { return false; }
  readBatch(mem: Uint8Array, offs: Uint32Array, lens: Uint32Array, max: number): number {
    const n = Math.min(this.queue.length, max);
    for (let i = 0; i < n; i++) {
      const p = this.queue.shift()!;
      mem.set(p, offs[i]);
      lens[i] = p.length;
    }
    return n;
  }
  writeBatch(_m: Uint8Array, _o: Uint32Array, _l: Uint32Array, n: number): number { this.written += n; return n; }
  counters() { return { failed: 0, lastErrno: 0, unsent: 0, truncated: 0 }; }
  close() {}
}

test("a dormant inbound SA whose peer jumped past its reservation is reported by the pipeline's drops and followed", async () => {
  const dir = tmp();
  try {
    const key = hexKey(20); // AES-128-GCM: 16 key bytes, 4 salt bytes (RFC 4106 §8.1)
    const spi = 0x4242;
    const doc: Doc = {
      version: 1,
      node: { name: "b", wan: [{ name: "wan", address: "192.0.2.2", port: 4500, encap: "udp" }], local_prefixes: ["10.2.0.0/24"] },
      peers: [{ name: "a", address: "192.0.2.1", port: 4500, nat_t: true, prefixes: ["10.1.0.0/24"],
        sas: [{ spi_in: spi, spi_out: spi + 1, suite: "aes-128-gcm", key_in: key, key_out: hexKey(20) }] }],
    };
    const core = await makeCore();
    const store = new SeqStore(() => {});
    const table = new SaTable(core, { store, stateDir: dir });
    const lc = new SaLifecycle({ apply: async (ps) => table.apply(ps) });
    table.apply(lc.initial(load(doc)).peers);
    const inSa = table.prov.peers[0].in[0].saId;
    const udp = new FakeUdp(coreAddr("192.0.2.1").bytes);
    const tun = new FakeTun();
    const reported: number[] = [];
    const pipe = new Pipeline(core, tun as never, [{ name: "wan", udp: udp as never, raw: new Map() }], table.prov, [], (c, id) => {
      reported.push(id);
      store.ensure(c, id);
    });
    pipe.start((where, e) => { throw new Error(`${where}: ${e.message}`); });
    store.tick(core);
    assert.equal(store.watchedCount(), 0, "both SAs dormant after their first look");

    // The peer resumed 20,000 numbers on (a restarted wesp skips up to a whole block): past our 256.
    const k = Buffer.from(key, "hex");
    const tx = await makeCore();
    const out = tx.addSa({ direction: "out", suite: "aes-gcm-16", mode: "tunnel", spi, key: k.subarray(0, 16), salt: k.subarray(16), local: "192.0.2.1", remote: "192.0.2.2", peerId: 1, udp: true, initialSeq: 20_000 });
    tx.addPolicy({ action: "protect", local: "10.1.0.0/24", remote: "10.2.0.0/24", saId: out, peerId: 1 });
    const deliver = (): void => {
      tx.writePacket(0, innerUdp("10.1.0.5", "10.2.0.7", 20));
      tx.processOutbound(1);
      assert.equal(tx.verdict(0), VERDICT.TO_NETWORK);
      udp.queue.push(Uint8Array.from(tx.packet(0).subarray(tx.hdrLen(0)))); // the UDP payload: what the socket reads
      udp.cb!(null); // readable: one inbound batch
    };
    deliver();
    assert.equal(tun.written, 0);
    assert.equal(core.dropCount(inSa, "SEQ_UNRESERVED"), 1, "authenticated, but past the reservation");
    assert.deepEqual(reported, [inSa], "the pipeline reports the SA of a dropped packet");

    // Only ticks and the peer's packets from here: the reservation must catch up.
    const end = Date.now() + 30_000; // a bound for a stalled disk, not a speed requirement
    while (tun.written === 0 && Date.now() < end) {
      store.tick(core);
      await new Promise((r) => setTimeout(r, 10)); // a staged write commits
      deliver();
    }
    assert.equal(tun.written, 1, "the dormant SA followed its peer: the latest packet went to the TUN");
    assert.ok(core.saState(inSa).seqLimit >= core.seqOf(inSa, false));
    await drain(store, core);
    table.clear();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("an SA that used up its sequence numbers (RFC 4303 §3.3.3) is found among those the pipeline used: needs-rekey, once", async () => {
  const dir = tmp();
  try {
    const keyOut = hexKey(20);
    const doc: Doc = {
      version: 1,
      node: { name: "a", wan: [{ name: "wan", address: "192.0.2.1", port: 4500, encap: "udp" }], local_prefixes: ["10.1.0.0/24"] },
      peers: [{ name: "b", address: "192.0.2.2", port: 4500, nat_t: true, prefixes: ["10.2.0.0/24"],
        sas: [{ spi_in: 0x5000, spi_out: 0x5001, suite: "aes-128-gcm", key_in: hexKey(20), key_out: keyOut }] }],
    };
    // An earlier run reserved up to 2^32 - 4: this one starts at 2^32 - 3 and may send three packets.
    const kid = keyId("out", Buffer.from(keyOut, "hex"));
    writeStateSync(statePath(dir, "out", kid), { dir: "out", keyId: kid, spi: 0x5001, suite: "aes-128-gcm", peer: "b", reserved: 0xfffffffcn, packets: 0n, bytes: 0n, created: Date.now() });
    const core = await makeCore();
    const store = new SeqStore(() => {});
    const events: SaEvent[] = [];
    const table = new SaTable(core, { store, stateDir: dir, emit: (e) => void events.push(e) });
    const lc = new SaLifecycle({ apply: async (ps) => table.apply(ps) });
    table.apply(lc.initial(load(doc)).peers);
    const outSa = table.prov.peers[0].out!.saId;
    const tun = new FakeTun();
    const pipe = new Pipeline(core, tun as never, [{ name: "wan", udp: new FakeUdp(coreAddr("192.0.2.2").bytes) as never, raw: new Map() }], table.prov, [], (c, id) => {
      store.ensure(c, id);
      table.used(id);
    });
    const rekeys = () => events.filter((e) => e.event === "needs-rekey");
    table.checkLifetimes();
    assert.deepEqual(rekeys(), []);
    for (let i = 0; i < 3; i++) tun.queue.push(innerUdp("10.1.0.5", "10.2.0.7", 20));
    assert.equal(pipe.outboundBatch(), 3);
    assert.equal(pipe.counters.sent, 3, "the last three numbers, 2^32 - 1 the last");
    assert.equal(core.needsRekey(outSa), true);
    table.checkLifetimes();
    assert.deepEqual(rekeys(), [{ event: "needs-rekey", peer: "b", dir: "out", spi: 0x5001, why: "sequence-exhausted" }]);
    tun.queue.push(innerUdp("10.1.0.5", "10.2.0.7", 20));
    pipe.outboundBatch(); // dropped (SEQ_EXHAUSTED), reported again
    assert.equal(core.dropCount(outSa, "SEQ_EXHAUSTED"), 1);
    table.checkLifetimes();
    assert.equal(rekeys().length, 1, "once");
    await drain(store, core);
    table.clear();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
