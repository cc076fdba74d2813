// SAD: the O(1) SPI hash agrees with a linear scan over the records under any
// sequence of installs and removals (fast-check), and 100,000 SAs fit.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { randomBytes } from "node:crypto";
import { makeCore } from "./core-helpers.ts";

const KEY = randomBytes(32);

test("SPI lookup (hash) equals a linear scan under random installs and removals", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.oneof(
          // install: SPIs from a small pool (collisions, duplicates) or anywhere
          fc.record({ op: fc.constant("add" as const), spi: fc.oneof(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 0xffffffff })) }),
          fc.record({ op: fc.constant("del" as const), pick: fc.nat() }),
        ),
        { maxLength: 120 },
      ),
      fc.array(fc.integer({ min: 0, max: 0xffffffff }), { maxLength: 20 }),
      async (ops, probes) => {
        const core = await makeCore({ slots: 1, maxSas: 48, maxPolicies: 1, largeWindowBlocks: 0 });
        const live = new Map<number, number>(); // spi -> id
        for (const o of ops) {
          if (o.op === "add") {
            let id = -1;
            try {
              id = core.addSa({ direction: "in", suite: "chacha20-poly1305", mode: "tunnel", spi: o.spi, key: KEY, salt: KEY.subarray(0, 4) });
            } catch (e) {
              const dup = live.has(o.spi), full = live.size >= 48;
              assert.ok(dup || full, `unexpected ${(e as Error).message}`);
              continue;
            }
            assert.ok(!live.has(o.spi), "duplicate SPI accepted");
            live.set(o.spi, id);
          } else if (live.size > 0) {
            const spis = [...live.keys()];
            const spi = spis[o.pick % spis.length];
            core.removeSa(live.get(spi)!);
            live.delete(spi);
          }
          // outbound SAs are never in the SAD
        }
        for (const spi of [...live.keys(), ...probes]) {
          const h = core.ex.sadLookup(spi >>> 0), l = core.ex.sadLookupLinear(spi >>> 0);
          assert.equal(h, l, `spi ${spi}`);
          assert.equal(h, live.get(spi) ?? -1);
        }
      },
    ),
    { numRuns: 150 },
  );
});

test("outbound SAs and plain tunnels do not answer SPI lookups", async () => {
  const core = await makeCore();
  core.addSa({ direction: "out", suite: "chacha20-poly1305", mode: "tunnel", spi: 99, key: KEY });
  core.addSa({ direction: "in", suite: "none", mode: "gre", spi: 98, local: "192.0.2.1", remote: "192.0.2.2" });
  assert.equal(core.ex.sadLookup(99), -1);
  assert.equal(core.ex.sadLookup(98), -1);
});

test("100,000 SAs fit; lookups stay exact; bytes per SA as documented", async () => {
  const N = 100_000;
  const core = await makeCore({ slots: 256, maxSas: N, maxPolicies: 16, largeWindowBlocks: 0 });
  const spis = new Set<number>();
  while (spis.size < N) spis.add((Math.random() * 0xfffffffe + 1) >>> 0);
  const list = [...spis];
  const ids: number[] = [];
  for (let i = 0; i < N; i++) {
    ids.push(core.addSa({ direction: "in", suite: "chacha20-poly1305", mode: "tunnel", spi: list[i], key: KEY, peerId: i }));
  }
  assert.throws(() => core.addSa({ direction: "in", suite: "chacha20-poly1305", mode: "tunnel", spi: 1, key: KEY }), /table full/);
  for (let k = 0; k < 2000; k++) {
    const i = (Math.random() * N) | 0;
    assert.equal(core.ex.sadLookup(list[i]), ids[i]);
  }
  // Record 2,624 + peer entry 32 + SAD bucket 4 (2^17 buckets for 100,000) ≈ 2,661 B per SA.
  const sasBytes = N * (2624 + 32) + (1 << 17) * 4;
  assert.ok(core.memoryBytes() >= sasBytes);
  assert.ok(core.memoryBytes() < sasBytes + 256 * (9472 + 64) + 8192 * 48 + (1 << 20), `memory ${core.memoryBytes()}`);
});
