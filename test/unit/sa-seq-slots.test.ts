// The struct of arrays that holds every tracked SA's reservation state
// (host/sa/seq_slots.ts), against a naive model (a Map of objects): whatever
// the order of tracking, growing and removal, each live id reads back what
// it was filled with, a removed id is not live, a refilled id starts clean
// with a new epoch.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { HOT, PENDING, SaSlots } from "../../host/sa/seq_slots.ts";
import type { DurableParams } from "../../host/sa/seq_store.ts";

interface Model { p: DurableParams; file: string; reserved: bigint; lastSeq: bigint; packets: bigint; bytes: bigint; created: number; now: number; progress: number; epoch: number }

const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const op = fc.oneof(
  fc.record({ kind: fc.constant("fill" as const), id: fc.integer({ min: 0, max: 700 }), reserved: u64, lastSeq: u64, packets: u64, bytes: u64, created: fc.integer({ min: 0, max: 2 ** 45 }), now: fc.integer({ min: 0, max: 2 ** 45 }) }),
  fc.record({ kind: fc.constant("clear" as const), id: fc.integer({ min: 0, max: 700 }) }),
  fc.record({ kind: fc.constant("flag" as const), id: fc.integer({ min: 0, max: 700 }) }),
);

test("SaSlots: every live id reads back what it was filled with, across growth; cleared ids are not live; a refill starts clean", () => {
  fc.assert(fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
    const s = new SaSlots();
    const model = new Map<number, Model>();
    const epochs = new Map<number, number>();
    for (const o of ops) {
      if (o.kind === "fill") {
        const p: DurableParams = { stateDir: "/s", dir: o.id % 2 ? "in" : "out", keyId: `k${o.id}`, spi: o.id, suite: "aes-256-gcm", peer: "p", esn: false };
        const epoch = s.fill(o.id, p, `/s/sa/${o.id}`, o.reserved, o.lastSeq, { packets: o.packets, bytes: o.bytes }, o.created, o.now, o.now - 1);
        assert.equal(epoch, (epochs.get(o.id) ?? 0) + 1, "a new epoch at every fill");
        epochs.set(o.id, epoch);
        model.set(o.id, { p, file: `/s/sa/${o.id}`, reserved: o.reserved, lastSeq: o.lastSeq, packets: o.packets, bytes: o.bytes, created: o.created, now: o.now, progress: o.now - 1, epoch });
      } else if (o.kind === "clear") {
        s.clear(o.id);
        model.delete(o.id);
      } else if (s.live(o.id)) {
        s.flags[o.id] |= HOT | PENDING; // a later fill must not inherit these
      }
    }
    for (let id = 0; id <= 700; id++) {
      const m = model.get(id);
      assert.equal(s.live(id), m !== undefined, `id ${id}`);
      if (!m) continue;
      assert.equal(s.p[id], m.p);
      assert.equal(s.file[id], m.file);
      assert.equal(s.epoch[id], m.epoch);
      assert.equal(s.reserved[id], m.reserved);
      assert.equal(s.lastSeq[id], m.lastSeq);
      assert.equal(s.basePackets[id], m.packets);
      assert.equal(s.baseBytes[id], m.bytes);
      assert.equal(s.created[id], m.created);
      assert.equal(s.lastT[id], m.now);
      assert.equal(s.lastProgressT[id], m.progress);
      assert.ok(s.cap > id);
    }
  }), { numRuns: 300 });
});

test("SaSlots: a refilled id starts with nothing of the SA before it (flags, failure, chase, rate, visits)", () => {
  const s = new SaSlots();
  const p: DurableParams = { stateDir: "/s", dir: "in", keyId: "k", spi: 1, suite: "aes-256-gcm", peer: "p", esn: false };
  s.fill(3, p, "/s/sa/in-k.json", 10n, 0n, { packets: 0n, bytes: 0n }, 1, 1, 0);
  s.flags[3] = HOT | PENDING;
  s.failed[3] = "disk full";
  s.chaseT[3] = 5;
  s.chaseSeq[3] = 9n;
  s.rate[3] = 1000;
  s.visitT[3] = 7;
  s.visitTick[3] = 7;
  s.unreserved[3] = 4;
  s.clear(3);
  s.fill(3, p, "/s/sa/in-k.json", 20n, 0n, { packets: 0n, bytes: 0n }, 1, 1, 0);
  assert.deepEqual([s.flags[3], s.failed[3], s.chaseT[3], s.chaseSeq[3], s.rate[3], s.visitT[3], s.visitTick[3], s.unreserved[3]], [0, null, 0, 0n, 0, -1, -1, 0]);
  assert.throws(() => s.room(-1), RangeError);
  assert.throws(() => s.room(1.5), RangeError);
});
