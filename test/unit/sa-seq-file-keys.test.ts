// A state file is named, inside the SeqStore and its journals, by its state
// directory, direction and key id (host/sa/seq_store.ts FileState, journal.ts
// StateKey), no longer by its path. The path told these apart by itself; the
// keys must too: one key id used inbound and outbound, and in two state
// directories, is four files, each with its own reservation, journal records,
// migration and final write — else one SA's promise would stand for
// another's and a restart could reuse a (key, nonce) pair or reopen a replay
// window. And one directory spelled two ways is one directory: its files'
// states are one, so a key tracked under one spelling is left out of a batch
// that names it under the other (prepareAll's rule for a key being replaced).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { FIRST_BLOCK, SeqStateError, SeqStore, type DurableParams, type Resume } from "../../host/sa/seq_store.ts";
import { durableState } from "../../host/sa/journal.ts";
import { ensureStateDir, readState, statePath } from "../../host/sa/state_file.ts";
import { makeCore } from "./core-helpers.ts";
import { inStateDir, migrated, saFiles, saParams } from "./sa-state-helpers.ts";

const K = "0123456789abcdef0123456789abcdef";

const shared = (stateDir: string, dir: "in" | "out", spi: number): DurableParams =>
  ({ stateDir, dir, keyId: K, spi, suite: "aes-256-gcm", peer: `p${spi}`, esn: false });

/** The four SAs of key id K (in and out, in `a` and `b`), then enough others that a batch lists each directory (LIST_MIN). */
function batch(a: string, b: string): DurableParams[] {
  const four = [shared(a, "out", 1), shared(a, "in", 2), shared(b, "out", 3), shared(b, "in", 4)];
  return [...four, ...Array.from({ length: 70 }, (_, i) => saParams(i % 2 ? a : b, i, 0x1000))];
}

function ok(r: Resume | SeqStateError | undefined, what: string): Resume {
  assert.ok(r && !(r instanceof SeqStateError), `${what}: ${String(r)}`);
  return r;
}

test("one key id inbound and outbound in two state directories: four files, each resuming from its own reservation, through journal, restart and migration", async () => {
  await inStateDir("wesp-fkey-", async (a) => {
    const b = join(a, "other");
    mkdirSync(b);
    ensureStateDir(b);
    // a's outbound file ran before, far ahead: only it resumes past it
    const ahead = new SeqStore(() => {});
    ahead.prepare(shared(a, "out", 1), 1);
    for (let k = 0; k < 5; k++) ahead.prepare(shared(a, "out", 1), 1);
    const top = durableState(a, "out", K);
    assert.ok(top.kind === "ok" && top.record.reserved === 6n * FIRST_BLOCK.out);

    const s1 = new SeqStore(() => {});
    const ps = batch(a, b);
    const got = s1.prepareEach(ps, 2);
    const [aOut, aIn, bOut, bIn] = got.slice(0, 4).map((r, i) => ok(r, `SA ${i}`));
    assert.deepEqual([aOut.initialSeq, aOut.resumed, aOut.seqLimit], [6n * FIRST_BLOCK.out + 1n, true, 7n * FIRST_BLOCK.out]);
    for (const [r, dir] of [[aIn, "in"], [bOut, "out"], [bIn, "in"]] as const) {
      assert.deepEqual([r.initialSeq, r.resumed, r.seqLimit], [1n, false, FIRST_BLOCK[dir]], `${dir}: a new file, not a's outbound one`);
    }
    assert.deepEqual(new Set([aOut.file, aIn.file, bOut.file, bIn.file]).size, 4, "four paths");
    assert.equal(aIn.file, statePath(a, "in", K));
    assert.equal(bOut.file, statePath(b, "out", K));
    // each promise on disk (journals) under its own file
    for (const [dir, res] of [[a, aOut], [a, aIn], [b, bOut], [b, bIn]] as const) {
      const d = durableState(dir, res.file.endsWith(`in-${K}.json`) ? "in" : "out", K);
      assert.ok(d.kind === "ok" && d.record.reserved === res.seqLimit, `${res.file}: its own promise is on disk`);
    }

    // a restart before the migration: each resumes past its own journal record
    s1.abandon();
    const s2 = new SeqStore(() => {});
    const again = s2.prepareEach(batch(a, b).slice(0, 4), 3).map((r, i) => ok(r, `again ${i}`));
    assert.deepEqual(again.map((r) => r.initialSeq), [aOut, aIn, bOut, bIn].map((r) => r.seqLimit + 1n));

    // the migration writes each file its own record, and the journals go
    await migrated(s2);
    for (const [i, r] of again.entries()) {
      const dir = i % 2 ? "in" : "out";
      const f = readState(r.file, { dir, keyId: K });
      assert.ok(f.kind === "ok" && f.record.reserved === r.seqLimit, `${r.file}: migrated with its own reservation`);
    }
    assert.deepEqual(saFiles(a).filter((n) => n.startsWith("journal-")), []);
    assert.deepEqual(saFiles(b).filter((n) => n.startsWith("journal-")), []);
  });
});

test("untrackAll with one key id inbound and outbound: each file gets its own SA's final record", async () => {
  await inStateDir("wesp-fkey-", async (a) => {
    const core = await makeCore({ maxSas: 8, maxPolicies: 8 });
    const s = new SeqStore(() => {});
    const out = shared(a, "out", 1), inb = shared(a, "in", 2);
    const ro = s.prepare(out, 1), ri = s.prepare(inb, 1);
    s.track(1, out, ro, 1);
    s.track(2, inb, ri, 1);
    s.untrackAll(core, [1, 2]);
    const fo = readState(statePath(a, "out", K), { dir: "out", keyId: K });
    const fi = readState(statePath(a, "in", K), { dir: "in", keyId: K });
    assert.ok(fo.kind === "ok" && fo.record.reserved === FIRST_BLOCK.out && fo.record.spi === 1);
    assert.ok(fi.kind === "ok" && fi.record.reserved === FIRST_BLOCK.in && fi.record.spi === 2);
  });
});

test("a state directory spelled two ways is one: a key tracked under one spelling is left out of a batch naming the other; named twice, taken once", async () => {
  await inStateDir("wesp-fkey-", async (a) => {
    const s = new SeqStore(() => {});
    const live = shared(a, "out", 1);
    s.track(5, live, s.prepare(live, 1), 1);
    const other = `${a}/./`;
    const ps = [shared(other, "out", 1), shared(other, "in", 2), shared(a, "in", 3), ...Array.from({ length: 70 }, (_, i) => saParams(a, i, 0x1000))];
    const got = s.prepareEach(ps, 2);
    assert.equal(got[0], undefined, "tracked under the other spelling: prepares on its own after its removal");
    const first = ok(got[1], "in, first spelling");
    assert.equal(got[2], undefined, "the same file named again in one call: taken once");
    assert.equal(first.file, statePath(a, "in", K));
    const d = durableState(a, "in", K);
    assert.ok(d.kind === "ok" && d.record.reserved === FIRST_BLOCK.in);
  });
});
