// An apply's first reservations, taken by its SAs (host/sa/install.ts
// PreparedQueue): in the apply's order at a cursor, and in any other order
// through the map it falls back to — each SA gets its own reservation, once,
// and an SA none was made for gets none (it prepares on its own).
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { PreparedQueue, type Prepared } from "../../host/sa/install.ts";
import type { Resume } from "../../host/sa/seq_store.ts";
import type { SaSpec } from "../../host/sa/spec.ts";

const spec = (i: number): SaSpec => ({ index: 0, spiIn: i, spiOut: i, suite: "aes-256-gcm", esn: false, replayWindow: 64, lifetime: {}, keyIdIn: `i${i}`, keyIdOut: `o${i}`, durable: true });
const made = (sa: SaSpec): Prepared => ({ sa, dp: { stateDir: "/s", dir: "in", keyId: sa.keyIdIn, spi: sa.spiIn, suite: sa.suite, peer: "p", esn: false }, res: { file: `/s/sa/in-${sa.keyIdIn}.json`, at: undefined as unknown as Resume["at"] /* a queue never reads it */, initialSeq: 1n, priorSeen: false, seqLimit: 256n, base: { packets: 0n, bytes: 0n }, created: 0, resumed: false } });

test("PreparedQueue: every SA takes its own reservation once, in the apply's order or any other; SAs without one get none", () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 10 }), fc.boolean(), fc.integer(), (n, extra, inOrder, seed) => {
    const listed = Array.from({ length: n }, (_, i) => spec(i));
    const others = Array.from({ length: extra }, (_, i) => spec(1000 + i));
    const q = new PreparedQueue(listed.map(made));
    // the apply's order with unlisted SAs in between, or shuffled, each SA asked twice
    let asks = [...listed, ...others];
    if (!inOrder) asks = asks.map((s, i) => ({ s, k: Math.sin(seed + i) })).sort((a, b) => a.k - b.k).map((x) => x.s);
    const got = new Map<SaSpec, number>();
    for (const s of [...asks, ...asks]) {
      const m = q.take(s);
      if (!m) continue;
      assert.equal(m.sa, s, "an SA's own reservation, never another's");
      got.set(s, (got.get(s) ?? 0) + 1);
    }
    for (const s of listed) assert.equal(got.get(s), 1, `SA ${s.spiIn} took its reservation exactly once`);
    for (const s of others) assert.equal(got.get(s), undefined);
  }), { numRuns: 500 });
});
