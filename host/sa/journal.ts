// Reservation journals: the first reservations of one install batch in ONE
// file, so installing 100,000 durable SAs costs one file, one fsync and one
// directory fsync instead of a state file each (issue 9; seq_store.ts has
// the rule this keeps: a (key, nonce) pair is never reused, a replay window
// never reopens, across kill -9).
//
// Where a key's state is. A key's durable records are its own state file
// (state_file.ts) and the records of it in this owner's journals. Every one
// of them was, when it was written, at or above every number the key had
// used, and the latest written stays at or above until a newer one is
// durable (seq_store.ts: the core's limit is raised only after the record
// promising it is on disk, lowered before a lower one is written). So the
// key resumes from the MAX over its file and its journal records: the latest
// is among them, an older one only raises the answer (an inbound SA then
// counts a few more numbers as received: replay drops, never a reopened
// window). Counters take the max too; `created` the earliest.
//
// A journal's life, and kill -9 at every step:
//   1. `journal-<owner>-<n>.bin.tmp` written and fsync'd. Killed here: no SA
//      of the batch has run (prepareAll has not returned); the next load
//      deletes the temporary file, the keys resume from what they had.
//   2. renamed to `journal-<owner>-<n>.bin`, the directory fsync'd: now the
//      batch's SAs may use their numbers. Killed after: the journal is read
//      at the next start.
//   3. each record gets covered: by a newer durable record of its key — a
//      state-file write (a renewal, a removal's final write, or the
//      rate-limited migration in seq_store.ts that writes the per-key files
//      in the background) or a newer journal (a restart's batch reserves
//      past the max, which included this record). Killed meanwhile: both
//      records are on disk, the max holds.
//   4. once every record of a journal is covered, the journal is deleted.
//      Deleting it takes nothing from the max that a newer record does not
//      give; an unlink lost to a power cut only brings back a covered
//      journal (a higher max at worst).
//
// A journal that cannot be read, or fails its checks, could hold any key's
// latest record: every durable SA of that state directory is refused with
// the journal named (never resumed at 1), until it is readable or removed
// by an operator who knows the keys are new or replaced. The journal is put
// in place atomically (step 1–2), so a crash never tears one; damage is the
// disk's or someone's. One SHA-256 over the whole file catches it, with the
// record count in the header and trailer catching a cut: per-record
// checksums would add nothing, since a damaged record cannot say whose key
// it was, so it must refuse every SA either way.
//
// Owners. Each worker has its own keys (worker_sas.ts: worker i's key ids
// are derived for i), its own SeqStore and its own journals, named `w<i>`;
// a store reads, covers and deletes only its owner's. A journal of a worker
// index no longer run (the node restarted with fewer workers) is nobody's
// to cover: its keys are installed by no one. At start, before any worker
// runs, state_sweep.ts writes its records into their keys' own files (the
// max over file and records, durable) and only then deletes it, so the
// worker index, should it run again, resumes from the files.
//
// Layout: journal_format.ts (binary since version 2; version 1, text, is
// still read). Files: `journal-<owner>-<n>.bin`, `.json` for version 1.
import { closeSync, constants, fsyncSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import { decodeJournal, encodeJournal } from "./journal_format.ts";
import { fsyncDirSync, readState, statePath, type ReadResult, type SaStateRecord } from "./state_file.ts";

/** A journal's name: owner, number, version 1's `.json` or version 2's `.bin`, `.tmp` while it is written. */
const NAME = /^journal-([a-z0-9]{1,16})-([1-9][0-9]{0,14})\.(json|bin)(\.tmp)?$/;
/** Whether `name` (a file in a state directory's `sa/`) is a reservation journal of any owner. */
export const isJournalName = (name: string): boolean => NAME.test(name);
/** A journal file name's owner and number, and whether it is a temporary one (step 1); null for any other name. */
export function parseJournalName(name: string): { owner: string; seq: number; temp: boolean } | null {
  const m = NAME.exec(name);
  return m ? { owner: m[1], seq: Number(m[2]), temp: m[4] !== undefined } : null;
}
/** Who may own journals: `w` and a worker index. */
export const OWNER = /^[a-z0-9]{1,16}$/;

export function journalPath(stateDir: string, owner: string, seq: number): string {
  return join(stateDir, "sa", `journal-${owner}-${seq}.bin`);
}

/** Steps 1–2 above: in place and durable when this returns; throws (the temporary file removed) if not. */
export function writeJournalSync(path: string, buf: Uint8Array): void {
  const tmp = `${path}.tmp`;
  try {
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
    try {
      for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off, buf.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    unlinkQuiet(tmp);
    throw e;
  }
  fsyncDirSync(dirname(path));
}

function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    /* gone already, or the directory is: nothing to do */
  }
}

/** A file's mtime (ms), or now when it cannot be stat'ed (it was just read). */
function mtimeOf(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return Date.now();
  }
}

/**
 * A state file named by what it is within its state directory, its
 * direction and key id, not by its path: an install of 100,000 SAs then
 * builds and hashes no path per SA (issue 9); a path is built only when a
 * file is read or written (Journals.path). A SaStateRecord is one.
 */
export interface StateKey {
  dir: "in" | "out";
  keyId: string;
}

/** A journal record not covered yet: the journal holding it, the write generation it counts as (seq_store.ts), the record. */
export interface JournalEntry {
  journal: string;
  gen: number;
  rec: SaStateRecord;
}

/**
 * A journal in place: its path, when it was put there, its records and
 * their write generations — the batch's own arrays, kept as they were
 * written or read: nothing per record (an install of 100,000 made an entry
 * and a list per record before, all of which survived to be copied by the
 * young generation's collector) — and how many are not covered yet.
 */
interface InPlace {
  path: string;
  born: number;
  /** Per record; 0: all 0 (a loaded journal's). */
  gens: readonly number[] | 0;
  recs: readonly SaStateRecord[];
  left: number;
}

/**
 * A record's place, as one number: its journal's slot × SLOT + its index in
 * the journal (a decoded count is a u32, so the index fits; slots are reused,
 * so there are never more than there are journals in place — far below the
 * 2^21 that keeps the number exact).
 */
const SLOT = 2 ** 32;

/**
 * One state directory's journals of one owner, in memory: which records are
 * not covered yet (by key file), which journals still hold one, and the
 * deletion of a journal once it holds none. Loaded from disk on first use.
 */
export class Journals {
  /** Why every durable SA of this directory is refused (a journal that cannot be read), or null. */
  refusal: { file: string; why: string } | null = null;
  private loaded = false;
  private nextSeq = 1;
  /** Journals in place with records not covered yet, by slot (a freed slot is undefined, and reused). */
  private readonly slots: (InPlace | undefined)[] = [];
  private readonly free: number[] = [];
  /** How many slots are in use. */
  private inPlace = 0;
  /** State file (by direction, then key id: StateKey) → its uncovered journal records' places (SLOT): one, or a list when it has several. */
  private readonly held = { in: new Map<string, number | number[]>(), out: new Map<string, number | number[]>() };
  /** Where `due` stopped. */
  private cursor?: Iterator<StateKey>;

  constructor(readonly stateDir: string, readonly owner: string) {}

  /**
   * Reads this owner's journals the first time (and again while one was
   * unreadable: the operator may have fixed it); deletes its temporary ones
   * (step 1: they promised nothing). Returns the names in the directory
   * when it read them (which state files exist), else undefined.
   */
  load(): Set<string> | undefined {
    if (this.loaded) return undefined;
    const dir = join(this.stateDir, "sa");
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // missing: nothing to resume (writes will fail and refuse, naming the file)
      if (code !== "ENOENT") return void (this.refusal = { file: dir, why: `cannot be read (${code ?? (e as Error).message})` });
      names = [];
    }
    const found: { path: string; seq: number; records: SaStateRecord[] }[] = [];
    let max = 0;
    for (const n of names) {
      const m = NAME.exec(n);
      if (!m || m[1] !== this.owner) continue;
      const seq = Number(m[2]), path = join(dir, n);
      max = Math.max(max, seq);
      if (m[4]) {
        unlinkQuiet(path);
        continue;
      }
      let text: Buffer;
      try {
        text = readFileSync(path);
      } catch (e) {
        return void (this.refusal = { file: path, why: `cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` });
      }
      const r = decodeJournal(text, this.owner, seq);
      if (r.kind === "bad") return void (this.refusal = { file: path, why: r.why });
      found.push({ path, seq, records: r.records });
    }
    this.refusal = null;
    this.loaded = true;
    this.nextSeq = max + 1;
    found.sort((a, b) => a.seq - b.seq);
    for (const j of found) this.add(j.path, 0, j.records, mtimeOf(j.path));
    return new Set(names);
  }

  /** The uncovered journal records of the state file of key `keyId` in direction `dir` (made when asked). */
  records(dir: "in" | "out", keyId: string): readonly JournalEntry[] | undefined {
    const v = this.held[dir].get(keyId);
    if (v === undefined) return undefined;
    return typeof v === "number" ? [this.entry(v)] : v.map((r) => this.entry(r));
  }

  /** Whether the state file of key `keyId` in direction `dir` has uncovered journal records (records(), without making them). */
  has(dir: "in" | "out", keyId: string): boolean {
    return this.held[dir].has(keyId);
  }

  private entry(ref: number): JournalEntry {
    const j = this.slots[Math.floor(ref / SLOT)]!, i = ref % SLOT;
    return { journal: j.path, gen: j.gens === 0 ? 0 : j.gens[i], rec: j.recs[i] };
  }

  private genOf(ref: number): number {
    const gens = this.slots[Math.floor(ref / SLOT)]!.gens;
    return gens === 0 ? 0 : gens[ref % SLOT];
  }

  /** Record `ref` is covered: one fewer in its journal, which is deleted once it holds none. */
  private release(ref: number): void {
    const slot = Math.floor(ref / SLOT), j = this.slots[slot];
    if (!j || --j.left > 0) return;
    this.slots[slot] = undefined;
    this.free.push(slot);
    this.inPlace--;
    unlinkQuiet(j.path);
  }

  /** The path of state file `k` in this directory. */
  path(k: StateKey): string {
    return statePath(this.stateDir, k.dir, k.keyId);
  }

  /** How many state files journal records still stand for. */
  get pending(): number {
    return this.held.in.size + this.held.out.size;
  }

  /** How many journals are on disk (of this owner, as far as this store knows). */
  get count(): number {
    return this.inPlace;
  }

  /** When the oldest journal still on disk was put in place (ms since the epoch), or null when there is none. */
  get oldest(): number | null {
    let t: number | null = null;
    for (const j of this.slots) if (j && (t === null || j.born < t)) t = j.born;
    return t;
  }

  /**
   * Steps 1–2 for records `recs` (one per state file: a record names its
   * file by direction and key id; `gens` their write generations; parallel
   * arrays, not an object per record): durable on return, or throws. Their
   * files' older records are covered by these (step 3).
   */
  write(gens: readonly number[], recs: readonly SaStateRecord[]): string {
    const seq = this.nextSeq++;
    const path = journalPath(this.stateDir, this.owner, seq);
    writeJournalSync(path, encodeJournal(this.owner, seq, recs));
    this.add(path, gens, recs, Date.now());
    return path;
  }

  /** Holds `recs` as journal `path`'s, covering their files' older records first (a write's, not a load's: gens 0). */
  private add(path: string, gens: readonly number[] | 0, recs: readonly SaStateRecord[], born: number): void {
    if (!recs.length) return unlinkQuiet(path);
    const slot = this.free.pop() ?? this.slots.length;
    // in place before its records are held: a record covering an earlier one of this journal (a key twice in it) counts
    this.slots[slot] = { path, born, gens, recs, left: recs.length };
    this.inPlace++;
    const base = slot * SLOT;
    for (let i = 0; i < recs.length; i++) {
      const rec = recs[i], held = this.held[rec.dir];
      if (!held.has(rec.keyId)) { // one lookup for most files: an install's keys have none yet
        held.set(rec.keyId, base + i);
        continue;
      }
      if (gens !== 0) this.covered(rec.dir, rec.keyId, gens[i]);
      const left = held.get(rec.keyId);
      held.set(rec.keyId, left === undefined ? base + i : typeof left === "number" ? [left, base + i] : [...left, base + i]);
    }
  }

  /**
   * Step 3–4: a record of the state file of key `keyId` in direction `dir`
   * written at generation `gen` is durable, so its journal records from
   * before are covered; a journal left with none is deleted.
   */
  covered(dir: "in" | "out", keyId: string, gen: number): void {
    const held = this.held[dir];
    const v = held.get(keyId);
    if (v === undefined) return;
    if (typeof v === "number") {
      if (this.genOf(v) >= gen) return;
      held.delete(keyId);
      return this.release(v);
    }
    const keep: number[] = [];
    for (const r of v) {
      if (this.genOf(r) >= gen) keep.push(r);
      else this.release(r);
    }
    if (keep.length > 1) held.set(keyId, keep);
    else if (keep.length) held.set(keyId, keep[0]);
    else held.delete(keyId);
  }

  /** Every state file with uncovered records, inbound keys first (due's turn). */
  private *keys(): Generator<StateKey> {
    for (const keyId of this.held.in.keys()) yield { dir: "in", keyId };
    for (const keyId of this.held.out.keys()) yield { dir: "out", keyId };
  }

  /** Up to `n` state files with uncovered records, in turn; `skip`ped ones come round again later. */
  due(n: number, skip: (k: StateKey) => boolean): StateKey[] {
    const out: StateKey[] = [];
    for (let looked = 0, size = this.pending; out.length < n && looked < size; looked++) {
      let r = this.cursor?.next();
      if (!r || r.done) {
        this.cursor = this.keys();
        r = this.cursor.next();
        if (r.done) break;
      }
      if (!skip(r.value)) out.push(r.value);
    }
    return out;
  }

  /** Names in the state directory now (which state files exist), or undefined if it cannot be listed. */
  names(): Set<string> | undefined {
    try {
      return new Set(readdirSync(join(this.stateDir, "sa")));
    } catch {
      return undefined;
    }
  }
}

/** The state a key resumes from: the max over its file's record and its journal records (null: none). */
export function mergeRecords(file: SaStateRecord | null, entries: readonly JournalEntry[] | undefined): SaStateRecord | null {
  let m = file;
  for (const { rec } of entries ?? []) {
    if (!m) {
      m = rec;
      continue;
    }
    m = {
      ...(rec.reserved > m.reserved ? rec : m),
      reserved: rec.reserved > m.reserved ? rec.reserved : m.reserved,
      packets: rec.packets > m.packets ? rec.packets : m.packets,
      bytes: rec.bytes > m.bytes ? rec.bytes : m.bytes,
      created: Math.min(rec.created, m.created),
    };
  }
  return m;
}

/** A key's state file name in a state directory's `sa/`: direction, key id. */
export const STATE_NAME = /^(in|out)-([0-9a-zA-Z]+)\.json$/;

/**
 * Every key's state in `stateDir` as a restart would resume it: per state
 * file, the max over the file and the records of every journal in place, of
 * any owner (a journal's temporary file promised nothing). For inspection
 * and tests; throws naming a journal that cannot be read.
 */
export function durableStates(stateDir: string): Map<string, ReadResult> {
  const dir = join(stateDir, "sa");
  const out = new Map<string, ReadResult>();
  const journals: SaStateRecord[][] = [];
  for (const n of readdirSync(dir)) {
    const s = STATE_NAME.exec(n), m = NAME.exec(n);
    if (s) out.set(join(dir, n), readState(join(dir, n), { dir: s[1] as "in" | "out", keyId: s[2] }));
    if (!m || m[4]) continue;
    const r = decodeJournal(readFileSync(join(dir, n)), m[1], Number(m[2]));
    if (r.kind === "bad") throw new Error(`journal ${join(dir, n)} ${r.why}`);
    journals.push(r.records);
  }
  for (const rec of journals.flat()) {
    const file = statePath(stateDir, rec.dir, rec.keyId);
    const had = out.get(file);
    if (had?.kind === "bad") continue;
    out.set(file, { kind: "ok", record: mergeRecords(had?.kind === "ok" ? had.record : null, [{ journal: "", gen: 0, rec }])! });
  }
  return out;
}

/** One key's state as a restart would resume it (durableStates). */
export function durableState(stateDir: string, dir: "in" | "out", keyId: string): ReadResult {
  return durableStates(stateDir).get(statePath(stateDir, dir, keyId)) ?? { kind: "absent" };
}
