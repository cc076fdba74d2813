// What a state directory's Journals holds in memory (host/sa/journal.ts): the
// batch's own arrays per journal and one number per uncovered record (its
// journal's slot and index), not an entry and a list per record. Against a
// plain model, across random writes and coverings: every key's uncovered
// records (journal and generation, in order) are the model's, the count of
// journals is, and a journal is on disk exactly while it holds an uncovered
// record — also when a deleted journal's slot is reused and when a key has
// records in several journals, only some of which a write covers.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { existsSync } from "node:fs";
import { Journals } from "../../host/sa/journal.ts";
import type { SaStateRecord } from "../../host/sa/state_file.ts";
import { inStateDir } from "./sa-state-helpers.ts";

const IDS = ["0".repeat(32), "1".repeat(32), "a".repeat(32)];
const KEYS = IDS.flatMap((keyId) => (["in", "out"] as const).map((dir) => ({ dir, keyId })));

const op = fc.oneof(
  fc.record({ kind: fc.constant("write" as const), keys: fc.uniqueArray(fc.integer({ min: 0, max: KEYS.length - 1 }), { minLength: 0, maxLength: KEYS.length }) }),
  // a state-file write of one key at a generation: a new one, or one from before (covers only older records)
  fc.record({ kind: fc.constant("covered" as const), key: fc.integer({ min: 0, max: KEYS.length - 1 }), back: fc.integer({ min: 0, max: 6 }) }),
);

test("Journals: uncovered records, journal count and files on disk follow a plain model across writes and coverings", async () => {
  await fc.assert(fc.asyncProperty(fc.array(op, { maxLength: 30 }), async (ops) => {
    await inStateDir("wesp-jheld-", (dir) => {
      const j = new Journals(dir, "w0");
      j.load();
      let gen = 0;
      // the model: per key its uncovered [journal, gen], in order; per journal its uncovered count
      const held = KEYS.map(() => [] as [string, number][]);
      const left = new Map<string, number>();
      const deleted: string[] = [];
      const cover = (k: number, g: number): void => {
        held[k] = held[k].filter(([path, hg]) => {
          if (hg >= g) return true;
          const n = left.get(path)! - 1;
          if (n) left.set(path, n);
          else (left.delete(path), deleted.push(path));
          return false;
        });
      };
      for (const o of ops) {
        if (o.kind === "write") {
          const gens = o.keys.map(() => ++gen);
          const recs: SaStateRecord[] = o.keys.map((k) => ({ ...KEYS[k], spi: 1, suite: "aes-256-gcm", peer: "p", reserved: 1n, packets: 0n, bytes: 0n, created: 1 }));
          const path = j.write(gens, recs);
          if (!o.keys.length) {
            deleted.push(path);
            continue;
          }
          left.set(path, o.keys.length);
          o.keys.forEach((k, i) => {
            if (held[k].length) cover(k, gens[i]);
            held[k].push([path, gens[i]]);
          });
        } else {
          const g = o.back === 0 ? ++gen : Math.max(0, gen - o.back);
          j.covered(KEYS[o.key].dir, KEYS[o.key].keyId, g);
          cover(o.key, g);
        }
        KEYS.forEach((k, i) => {
          const got = j.records(k.dir, k.keyId)?.map((e) => [e.journal, e.gen]) ?? [];
          assert.deepEqual(got, held[i], `${k.dir} ${k.keyId.slice(0, 1)}: its uncovered records`);
          for (const e of j.records(k.dir, k.keyId) ?? []) assert.deepEqual([e.rec.dir, e.rec.keyId], [k.dir, k.keyId], "each record its own key's");
        });
        assert.equal(j.count, left.size, "journals in place");
        assert.equal(j.pending, held.filter((h) => h.length).length, "files with uncovered records");
        for (const path of left.keys()) assert.ok(existsSync(path), `${path} stays while it holds a record`);
        for (const path of deleted) assert.ok(!existsSync(path), `${path} is deleted once it holds none`);
      }
    });
  }), { numRuns: 60 });
});
