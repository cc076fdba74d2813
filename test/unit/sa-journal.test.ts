// Reservation journals (host/sa/journal.ts, seq_store.ts prepareAll and the
// migration in tick): a batch's first reservations are one file; a key
// resumes from the max over its own file and its journal records; kill -9 at
// each step of a journal's life (left as the files it leaves: a temporary
// journal, staged per-key files, per-key files beside a journal not yet
// deleted) never resumes a key below what it may have used; a journal that
// cannot be read refuses every durable SA of its directory, never resumes
// one at 1; journals are deleted once every record is covered, and only
// their owner's; journalStats (wesp status) counts them and dates the oldest.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, renameSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createHash, randomBytes } from "node:crypto";
import { FIRST_BLOCK, SeqStateError, SeqStore, type DurableParams, type Resume } from "../../host/sa/seq_store.ts";
import { durableState, journalPath } from "../../host/sa/journal.ts";
import { decodeJournal, encodeJournal } from "../../host/sa/journal_format.ts";
import { encodeState, readState, recordBody, statePath, type SaStateRecord } from "../../host/sa/state_file.ts";
import { keyId } from "../../host/sa/key_id.ts";
import { journalStatus } from "../../host/pipeline/status.ts";
import { inStateDir as inStateDirOf, migrated, saFiles, saParams } from "./sa-state-helpers.ts";

const inStateDir = (fn: (dir: string) => void | Promise<void>) => inStateDirOf("wesp-jrn-", fn);
const params = (stateDir: string, i: number): DurableParams => saParams(stateDir, i);

/** `b` with one bit of byte `at` flipped (a copy). */
function flip(b: Buffer, at: number): Buffer {
  const c = Buffer.from(b);
  c[at] ^= 0x10;
  return c;
}

function resumeOf(got: Map<string, Resume | SeqStateError>, p: DurableParams): Resume {
  const r = got.get(statePath(p.stateDir, p.dir, p.keyId));
  assert.ok(r && !(r instanceof SeqStateError), `${p.dir} ${p.keyId}: ${String(r)}`);
  return r;
}

const recordOf = (p: DurableParams, reserved: bigint): SaStateRecord =>
  ({ dir: p.dir, keyId: p.keyId, spi: p.spi, suite: p.suite, peer: p.peer, reserved, packets: 0n, bytes: 0n, created: 1 });

test("a batch's first reservations are one journal (no per-key file yet); a restart resumes past it and its batch covers the old journal", async () => {
  await inStateDir(async (dir) => {
    const ps = Array.from({ length: 40 }, (_, i) => params(dir, i));
    const s1 = new SeqStore(() => {});
    const got = s1.prepareAll(ps, 1);
    assert.deepEqual(saFiles(dir), ["journal-w0-1.bin"], "one file for the whole batch, no temporary left");
    for (const p of ps) {
      const r = resumeOf(got, p);
      assert.deepEqual([r.initialSeq, r.priorSeen, r.seqLimit], [1n, false, FIRST_BLOCK[p.dir]]);
      const d = durableState(dir, p.dir, p.keyId);
      assert.ok(d.kind === "ok" && d.record.reserved === r.seqLimit, "the promise is on disk before prepareAll returns");
    }
    s1.abandon(); // kill -9 after step 2
    const s2 = new SeqStore(() => {});
    const again = s2.prepareAll(ps, 2);
    for (const p of ps) {
      const r = resumeOf(again, p);
      assert.deepEqual([r.initialSeq, r.priorSeen, r.resumed, r.seqLimit, r.created], [FIRST_BLOCK[p.dir] + 1n, true, true, 2n * FIRST_BLOCK[p.dir], 1]);
    }
    assert.deepEqual(saFiles(dir), ["journal-w0-2.bin"], "every record of journal 1 is covered by journal 2: deleted");
  });
});

test("a key resumes from the max over its own file and its journal records, whichever is higher", async () => {
  await inStateDir(async (dir) => {
    const ps = Array.from({ length: 8 }, (_, i) => params(dir, 2 * i)); // outbound
    const [low, high] = ps;
    new SeqStore(() => {}).prepareAll(ps, 1);
    // files beside the journal (a renewal's, a migration's): one below its journal record, one above
    writeFileSync(statePath(dir, low.dir, low.keyId), encodeState(recordOf(low, 5n)));
    writeFileSync(statePath(dir, high.dir, high.keyId), encodeState(recordOf(high, 1_000_000n)));
    const s = new SeqStore(() => {});
    assert.equal(s.prepare(low, 2).initialSeq, FIRST_BLOCK.out + 1n, "journal higher: past the journal");
    assert.equal(s.prepare(high, 2).initialSeq, 1_000_001n, "file higher: past the file");
  });
});

test("kill -9 at each step of a journal's life never resumes a key below its promise", async () => {
  await inStateDir(async (dir) => {
    const ps = Array.from({ length: 20 }, (_, i) => params(dir, i));
    // Step 1 interrupted: a journal never renamed into place promised nothing (prepareAll never
    // returned, no SA ran): deleted, and its keys start at 1.
    const early = journalPath(dir, "w0", 9) + ".tmp";
    writeFileSync(early, encodeJournal("w0", 9, ps.map((p) => recordOf(p, 777_777n))));
    const s1 = new SeqStore(() => {});
    const first = s1.prepareAll(ps, 1);
    assert.equal(resumeOf(first, ps[0]).initialSeq, 1n);
    assert.ok(!saFiles(dir).includes("journal-w0-9.bin.tmp"), "the temporary journal is gone");
    const journal = saFiles(dir).find((f) => f.startsWith("journal-"))!;
    assert.equal(journal, "journal-w0-10.bin", "numbered past every journal seen");
    s1.abandon();
    // Step 3 interrupted before renames: staged per-key files (the migration's) are not in place.
    for (const p of ps) writeFileSync(`${statePath(dir, p.dir, p.keyId)}.m1.atmp`, encodeState(recordOf(p, 3n)));
    const s2 = new SeqStore(() => {});
    assert.equal(s2.prepare(ps[0], 2).initialSeq, FIRST_BLOCK[ps[0].dir] + 1n, "resumes from the journal");
    s2.abandon();
    // Step 3 interrupted after some renames: per-key files beside the journal; the max holds.
    writeFileSync(statePath(dir, ps[1].dir, ps[1].keyId), encodeState(recordOf(ps[1], FIRST_BLOCK[ps[1].dir])));
    const s3 = new SeqStore(() => {});
    assert.equal(s3.prepare(ps[1], 3).initialSeq, FIRST_BLOCK[ps[1].dir] + 1n);
    // Steps 3–4 complete: every key gets its own file (the keys not installed here are migrated too),
    // then the journal goes; a restart resumes from the files alone.
    await migrated(s3);
    assert.ok(!saFiles(dir).some((f) => f.startsWith("journal-")), "every journal deleted once covered");
    s3.abandon();
    const s4 = new SeqStore(() => {});
    for (const p of ps.slice(2)) {
      const d = readState(statePath(dir, p.dir, p.keyId), { dir: p.dir, keyId: p.keyId });
      assert.ok(d.kind === "ok" && d.record.reserved === FIRST_BLOCK[p.dir], "the migration wrote the journal's promise to the key's own file");
      assert.equal(s4.prepare(p, 4).initialSeq, FIRST_BLOCK[p.dir] + 1n);
    }
  });
});

test("a journal that cannot be read refuses every durable SA of its directory, naming it; never a restart at 1", async () => {
  const damage: [string, (path: string) => void][] = [
    ["one bit of a reservation changed", (f) => writeFileSync(f, flip(readFileSync(f), 40 + 24))],
    ["cut short", (f) => writeFileSync(f, readFileSync(f).subarray(0, 300))],
    ["not a journal", (f) => writeFileSync(f, "{")],
    ["renamed to another number", (f) => renameSync(f, f.replace("-w0-1.", "-w0-5."))],
    ["unreadable (a directory in its place)", (f) => (rmSync(f), mkdirSync(f))],
  ];
  for (const [what, spoil] of damage) {
    await inStateDir(async (dir) => {
      const ps = Array.from({ length: 6 }, (_, i) => params(dir, i));
      new SeqStore(() => {}).prepareAll(ps, 1);
      const path = journalPath(dir, "w0", 1);
      spoil(path);
      const name = saFiles(dir).find((f) => f.startsWith("journal-"))!;
      const stranger = params(dir, 99); // not in the journal: it could have been, so it is refused too
      const s = new SeqStore(() => {});
      for (const p of [ps[0], stranger]) {
        assert.throws(() => s.prepare(p, 2), (e: unknown) => e instanceof SeqStateError && e.message.includes(name) && /refusing every durable SA/.test(e.message), what);
      }
      const got = s.prepareAll([...ps, stranger], 2);
      assert.ok([...got.values()].every((r) => r instanceof SeqStateError), `${what}: prepareAll refuses them all`);
      // the operator removes it (the keys being replaced): the refusal lifts without a restart
      rmSync(join(dir, "sa", name), { recursive: true });
      assert.equal(s.prepare(stranger, 3).initialSeq, 1n, what);
    });
  }
});

test("journals are their owner's: another worker's is neither read, refused on, nor deleted", async () => {
  await inStateDir(async (dir) => {
    const mine = Array.from({ length: 4 }, (_, i) => params(dir, i));
    const theirs = Array.from({ length: 4 }, (_, i) => params(dir, 10 + i));
    const w1 = new SeqStore(() => {}, "w1");
    w1.prepareAll(theirs, 1);
    w1.abandon();
    const w0 = new SeqStore(() => {}, "w0");
    w0.prepareAll(mine, 1);
    await migrated(w0);
    assert.deepEqual(saFiles(dir).filter((f) => f.startsWith("journal-")), ["journal-w1-1.bin"], "w0 deleted its own journal only");
    writeFileSync(journalPath(dir, "w1", 1), "{");
    assert.equal(new SeqStore(() => {}, "w0").prepare(mine[0], 2).initialSeq, FIRST_BLOCK[mine[0].dir] + 1n, "w1's damage does not refuse w0's keys");
    assert.throws(() => new SeqStore(() => {}, "w1").prepare(theirs[0], 2), SeqStateError);
  });
});

test("a restart that installs only some of a journal's keys: the journal stays until the rest are migrated", async () => {
  await inStateDir(async (dir) => {
    const ps = Array.from({ length: 10 }, (_, i) => params(dir, i));
    const s1 = new SeqStore(() => {});
    s1.prepareAll(ps, 1);
    s1.abandon();
    const s2 = new SeqStore(() => {});
    s2.prepareAll(ps.slice(0, 5), 2);
    assert.ok(saFiles(dir).includes("journal-w0-1.bin"), "half of journal 1 is still its keys' only record");
    await migrated(s2);
    assert.ok(!saFiles(dir).some((f) => f.startsWith("journal-")));
    for (const [i, p] of ps.entries()) {
      const d = readState(statePath(dir, p.dir, p.keyId), { dir: p.dir, keyId: p.keyId });
      assert.ok(d.kind === "ok" && d.record.reserved === (i < 5 ? 2n : 1n) * FIRST_BLOCK[p.dir], `key ${i}: its file holds its latest promise`);
    }
  });
});

test("decodeJournal: header, count, checksum and every record checked", () => {
  const p = params("/x", 0);
  const recs = [recordOf(p, 10n), { ...recordOf({ ...p, keyId: keyId("in", randomBytes(8)), dir: "in" }, (1n << 64n) - 1n), peer: 'a "quoted"\\ peér', spi: -1, packets: 7n, bytes: 9n, created: 1764950000000 }];
  const b = encodeJournal("w3", 4, recs);
  const ok = decodeJournal(b, "w3", 4);
  assert.ok(ok.kind === "ok");
  assert.deepEqual(ok.records, recs.map((r) => ({ ...r, spi: r.spi >>> 0 })), "every field as written");
  assert.equal(decodeJournal(b, "w3", 5).kind, "bad", "another journal's number");
  assert.equal(decodeJournal(b, "w2", 4).kind, "bad", "another owner's");
  assert.equal(decodeJournal(b.subarray(0, -1), "w3", 4).kind, "bad", "cut by one byte");
  for (let at = 0; at < b.length; at += 7) assert.equal(decodeJournal(flip(b, at), "w3", 4).kind, "bad", `bit flipped at byte ${at}`);
  const two = encodeJournal("w3", 4, [recordOf(p, 1n), recordOf(p, 2n)]);
  const size = (two.length - 40 - 36) / 2;
  const swapped = Buffer.concat([two.subarray(0, 40), two.subarray(40 + size, 40 + 2 * size), two.subarray(40, 40 + size), two.subarray(40 + 2 * size)]);
  assert.equal(decodeJournal(swapped, "w3", 4).kind, "bad", "records reordered");
  // a key id becomes a file name: one that key_id.ts cannot make is never written
  assert.throws(() => encodeJournal("w3", 4, [{ ...recordOf(p, 1n), keyId: "../../etc/x" }]), RangeError);
  assert.throws(() => encodeJournal("w3", 4, [recordOf(p, 1n << 64n)]), RangeError, "past u64");
});

/** A version-1 (text) journal, as wesp wrote them before version 2. */
function journalV1(owner: string, seq: number, records: SaStateRecord[]): string {
  const text = [JSON.stringify({ format: "wesp sa-journal", version: 1, owner, seq, count: records.length }), ...records.map((r) => JSON.stringify(recordBody(r)))].join("\n") + "\n";
  return text + JSON.stringify({ end: records.length, check: createHash("sha256").update(text).digest("hex") }) + "\n";
}

test("a version-1 (text) journal an earlier wesp left is read: its keys resume past it, a damaged one refuses them all", async () => {
  const p = params("/x", 0);
  const text = journalV1("w3", 4, [recordOf(p, 10n)]);
  const ok = decodeJournal(Buffer.from(text), "w3", 4);
  assert.ok(ok.kind === "ok" && ok.records.length === 1 && ok.records[0].reserved === 10n);
  assert.equal(decodeJournal(Buffer.from(text.replace('"reserved":"10"', '"reserved":"11"')), "w3", 4).kind, "bad", "a changed digit");
  assert.equal(decodeJournal(Buffer.from(journalV1("w3", 4, [{ ...recordOf(p, 1n), keyId: "../../etc/x" }])), "w3", 4).kind, "bad", "a hostile key id");
  await inStateDir(async (dir) => {
    const ps = Array.from({ length: 6 }, (_, i) => params(dir, i));
    writeFileSync(join(dir, "sa", "journal-w0-3.json"), journalV1("w0", 3, ps.map((q) => recordOf(q, 500_000n))));
    const s = new SeqStore(() => {});
    const got = s.prepareAll(ps, 2);
    for (const q of ps) assert.equal(resumeOf(got, q).initialSeq, 500_001n, "past the version-1 journal's promise");
    assert.deepEqual(saFiles(dir).filter((f) => f.startsWith("journal-")), ["journal-w0-4.bin"], "numbered past it; the old one covered by the new and deleted");
  });
});

test("statePath is what path.join makes, however the state directory is spelled (its fast path appends to a cached join)", () => {
  const id = keyId("in", randomBytes(16));
  for (const d of ["/var/lib/wesp", "/var/lib/wesp/", "/var//lib/./wesp", "/", "", ".", "./state", "../x/../state", "rel/dir/"]) {
    for (const k of [id, "ABCdef0123", "../../etc/x", "a/b", ".."]) {
      for (const dir of ["in", "out"] as const) {
        for (let again = 0; again < 2; again++) assert.equal(statePath(d, dir, k), join(d, "sa", `${dir}-${k}.json`), `${JSON.stringify(d)} ${k}`);
      }
    }
  }
});

test("journalStats (wesp status): journals not yet retired, the files they stand for, and when the oldest was put in place — its mtime when an earlier run left it", async () => {
  await inStateDir(async (dir) => {
    const ps = Array.from({ length: 6 }, (_, i) => params(dir, i));
    const before = Date.now();
    const s1 = new SeqStore(() => {});
    s1.prepareAll(ps, 1);
    const st = s1.journalStats();
    assert.deepEqual([st.journals, st.pending], [1, 6]);
    assert.ok(st.oldest !== null && st.oldest >= before && st.oldest <= Date.now(), "written by this run: its time");
    s1.abandon();
    const hourAgo = Date.now() - 3_600_000;
    utimesSync(journalPath(dir, "w0", 1), hourAgo / 1000, hourAgo / 1000);
    const s2 = new SeqStore(() => {});
    s2.prepare(params(dir, 50), 2); // reads the journals
    const st2 = s2.journalStats();
    assert.deepEqual([st2.journals, st2.pending], [1, 6]);
    assert.ok(st2.oldest !== null && Math.abs(st2.oldest - hourAgo) < 1000, `an earlier run's: its mtime (${st2.oldest} vs ${hourAgo})`);
    assert.deepEqual(journalStatus(st2, st2.oldest + 95_000), { count: 1, pendingFiles: 6, oldestSeconds: 95 });
    await migrated(s2);
    assert.deepEqual(s2.journalStats(), { journals: 0, pending: 0, oldest: null });
    assert.deepEqual(journalStatus(s2.journalStats()), { count: 0, pendingFiles: 0, oldestSeconds: null });
  });
});
