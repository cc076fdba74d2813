// The start-time sweep of a state directory (host/sa/state_sweep.ts): the
// temporary files an interrupted write leaves are deleted; a journal of a
// worker index the node no longer runs is deleted only after its records are
// in their keys' own files, so that worker, run again, resumes past them
// (never a (key, nonce) pair twice, never a reopened replay window: RFC 4303
// §3.3.3, §3.4.3); a journal that cannot be read, or whose key's file is
// corrupt or cannot be written, stays; a live worker's journal is its own
// store's business.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FIRST_BLOCK, SeqStore, type DurableParams } from "../../host/sa/seq_store.ts";
import { durableStates, journalPath } from "../../host/sa/journal.ts";
import { encodeState, readState, statePath } from "../../host/sa/state_file.ts";
import { describeSweep, sweepStateDir } from "../../host/sa/state_sweep.ts";
import { inStateDir as inStateDirOf, saFiles, saParams } from "./sa-state-helpers.ts";

const inStateDir = (fn: (dir: string) => void | Promise<void>) => inStateDirOf("wesp-sweep-", fn);
const params = (stateDir: string, i: number): DurableParams => saParams(stateDir, i, 0x200);
const journals = (dir: string): string[] => saFiles(dir).filter((f) => f.startsWith("journal-"));

/** Every key's resumable state, as comparable values. */
function states(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const [f, r] of durableStates(dir)) out.set(f, r.kind === "ok" ? `${r.record.reserved}/${r.record.packets}/${r.record.created}` : r.kind);
  return out;
}

/** Worker `owner`'s first reservations of `ps` in a journal, the worker then killed (-9). */
function crashedWorker(owner: string, ps: DurableParams[], now: number): void {
  const s = new SeqStore(() => {}, owner);
  s.prepareAll(ps, now);
  s.abandon();
}

test("temporary files of interrupted writes are deleted; state files and live workers' journals are not", async () => {
  await inStateDir((dir) => {
    const ps = Array.from({ length: 4 }, (_, i) => params(dir, i));
    crashedWorker("w0", ps, 1);
    const f = statePath(dir, ps[0].dir, ps[0].keyId);
    writeFileSync(f, encodeState({ dir: ps[0].dir, keyId: ps[0].keyId, spi: 1, suite: "aes-256-gcm", peer: "p", reserved: 5n, packets: 0n, bytes: 0n, created: 1 }));
    const temps = [`${f}.tmp`, `${f}.17.atmp`, `${f}.m3.atmp`, `${journalPath(dir, "w0", 7)}.tmp`, `${journalPath(dir, "w5", 2)}.tmp`];
    for (const t of temps) writeFileSync(t, "half");
    const before = states(dir);
    const r = sweepStateDir(dir, 1);
    assert.equal(r.temps.length, temps.length);
    assert.deepEqual(saFiles(dir), [f.split("/").pop()!, "journal-w0-1.bin"].sort(), "only the temporaries went");
    assert.deepEqual(states(dir), before, "no key's state changed");
    assert.match(describeSweep(r) ?? "", /5 temporary files of an interrupted write deleted/);
    assert.equal(describeSweep(sweepStateDir(dir, 1)), null, "nothing left to do");
  });
});

test("a former worker's journal: its records go to their keys' files first, then it is deleted; that worker resumes past them", async () => {
  await inStateDir((dir) => {
    const live = Array.from({ length: 4 }, (_, i) => params(dir, i));
    const gone = Array.from({ length: 30 }, (_, i) => params(dir, 10 + i)); // ≥ 16: one syncfs path of writeStatesSync
    crashedWorker("w0", live, 1);
    crashedWorker("w2", gone, 1);
    crashedWorker("w2", gone.slice(0, 10), 2); // a second journal of w2: those keys resume past both
    // one key of w2 has a file above its journal record already: the max keeps it
    const hi = statePath(dir, gone[20].dir, gone[20].keyId);
    writeFileSync(hi, encodeState({ dir: gone[20].dir, keyId: gone[20].keyId, spi: 1, suite: "aes-256-gcm", peer: "p", reserved: 1_000_000n, packets: 7n, bytes: 0n, created: 1 }));
    const before = states(dir);

    const r = sweepStateDir(dir, 2); // two workers now: w2 is a former one
    assert.deepEqual(r.adopted.sort(), ["journal-w2-1.bin", "journal-w2-2.bin"]);
    assert.deepEqual(r.kept, []);
    assert.deepEqual(journals(dir), ["journal-w0-1.bin"], "w0's journal is w0's store's");
    assert.deepEqual(states(dir), before, "every key resumes exactly where it did");
    for (const [i, p] of gone.entries()) {
      const d = readState(statePath(dir, p.dir, p.keyId), { dir: p.dir, keyId: p.keyId });
      const want = i === 20 ? 1_000_000n : (i < 10 ? 2n : 1n) * FIRST_BLOCK[p.dir];
      assert.ok(d.kind === "ok" && d.record.reserved === want, `key ${i}: its own file holds ${want}`);
    }
    // worker 2 runs again: it resumes from the files
    const w2 = new SeqStore(() => {}, "w2");
    assert.equal(w2.prepare(gone[0], 3).initialSeq, 2n * FIRST_BLOCK[gone[0].dir] + 1n);
    assert.equal(w2.prepare(gone[15], 3).initialSeq, FIRST_BLOCK[gone[15].dir] + 1n);
    assert.equal(w2.prepare(gone[20], 3).initialSeq, 1_000_001n);
  });
});

test("a former worker's journal stays when it cannot be read, when a key's file is corrupt, or when a file cannot be written", async () => {
  await inStateDir((dir) => {
    const a = Array.from({ length: 3 }, (_, i) => params(dir, i));
    const b = Array.from({ length: 3 }, (_, i) => params(dir, 10 + i));
    const c = Array.from({ length: 3 }, (_, i) => params(dir, 20 + i));
    crashedWorker("w1", a, 1); // journal-w1-1: damaged below
    crashedWorker("w1", b, 1); // journal-w1-2: one key's file corrupt
    crashedWorker("w3", c, 1); // journal-w3-1: one key's file cannot be written
    writeFileSync(journalPath(dir, "w1", 1), "{");
    writeFileSync(statePath(dir, b[1].dir, b[1].keyId), "not json");
    mkdirSync(`${statePath(dir, c[2].dir, c[2].keyId)}.tmp`); // a directory where its temporary file goes: the write fails
    writeFileSync(join(dir, "sa", "journal-x9-1.bin"), "someone else's");

    const r = sweepStateDir(dir, 1);
    assert.deepEqual(r.adopted, []);
    const kept = new Map(r.kept.map((k) => [k.file, k.why]));
    assert.deepEqual([...kept.keys()].sort(), ["journal-w1-1.bin", "journal-w1-2.bin", "journal-w3-1.bin", "journal-x9-1.bin"]);
    assert.match(kept.get("journal-w1-1.bin")!, /not JSON|corrupt|journal/);
    assert.match(kept.get("journal-w1-2.bin")!, /is not JSON \(corrupt\)/);
    assert.match(kept.get("journal-w3-1.bin")!, /cannot be written/);
    assert.match(kept.get("journal-x9-1.bin")!, /not a worker/);
    assert.deepEqual(journals(dir), ["journal-w1-1.bin", "journal-w1-2.bin", "journal-w3-1.bin", "journal-x9-1.bin"], "all of them still there");
    // what could be written was (only raising): b[0] and c[0] have files at their journal's promise
    for (const p of [b[0], c[0]]) {
      const d = readState(statePath(dir, p.dir, p.keyId), { dir: p.dir, keyId: p.keyId });
      assert.ok(d.kind === "ok" && d.record.reserved === FIRST_BLOCK[p.dir]);
    }
    // fixed: the next start adopts it
    rmSync(`${statePath(dir, c[2].dir, c[2].keyId)}.tmp`, { recursive: true });
    assert.deepEqual(sweepStateDir(dir, 1).adopted, ["journal-w3-1.bin"]);
    assert.equal(new SeqStore(() => {}, "w3").prepare(c[2], 2).initialSeq, FIRST_BLOCK[c[2].dir] + 1n);
  });
});

test("a missing state directory is nothing to sweep", () => {
  assert.deepEqual(sweepStateDir(join(tmpdir(), `wesp-none-${process.pid}-${Date.now()}`), 1), { temps: [], adopted: [], kept: [] });
});
