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
//   1. `journal-<owner>-<n>.json.tmp` written and fsync'd. Killed here: no SA
//      of the batch has run (prepareAll has not returned); the next load
//      deletes the temporary file, the keys resume from what they had.
//   2. renamed to `journal-<owner>-<n>.json`, the directory fsync'd: now the
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
// index no longer run stays (its keys are not installed by anyone).
//
// Layout (text, one JSON value a line):
//   {"format":"wesp sa-journal","version":1,"owner":"w0","seq":7,"count":N}
//   N lines: a record body as state_file.ts writes it, without "check"
//   {"end":N,"check":"…sha-256 of every byte above…"}
import { closeSync, constants, fsyncSync, openSync, readdirSync, readFileSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { createHash } from "node:crypto";
import { basename, dirname, join } from "node:path";
import { bodyFault, bodyRecord, fsyncDirSync, readState, recordBody, statePath, type ReadResult, type SaStateRecord } from "./state_file.ts";

const FORMAT = "wesp sa-journal";
const NAME = /^journal-([a-z0-9]{1,16})-([1-9][0-9]{0,14})\.json(\.tmp)?$/;
/** A key id as key_id.ts makes it: what a journal record may name (it becomes a file name). */
export const KEY_ID = /^[0-9a-f]{32}$/;
/** Who may own journals: `w` and a worker index. */
export const OWNER = /^[a-z0-9]{1,16}$/;

export function journalPath(stateDir: string, owner: string, seq: number): string {
  return join(stateDir, "sa", `journal-${owner}-${seq}.json`);
}

const sha256 = (s: string): string => createHash("sha256").update(s).digest("hex");

/**
 * A record's line: JSON.stringify(recordBody(r)), built directly (a test
 * holds them equal) — a batch of 100,000 spent 0.25 s in the generic one.
 * `dir` and `keyId` need no escaping: "in"/"out" and KEY_ID (writeBatch
 * checks), the rest are numbers or go through JSON.stringify.
 */
export function journalLine(r: SaStateRecord): string {
  return `{"version":1,"dir":"${r.dir}","keyId":"${r.keyId}","spi":${r.spi >>> 0},"suite":${JSON.stringify(r.suite)},"peer":${JSON.stringify(r.peer)},` +
    `"reserved":"${r.reserved}","packets":"${r.packets}","bytes":"${r.bytes}","created":${r.created}}`;
}

export function encodeJournal(owner: string, seq: number, records: readonly SaStateRecord[]): string {
  const lines = [JSON.stringify({ format: FORMAT, version: 1, owner, seq, count: records.length })];
  for (const r of records) lines.push(KEY_ID.test(r.keyId) ? journalLine(r) : JSON.stringify(recordBody(r)));
  const text = lines.join("\n") + "\n";
  return text + JSON.stringify({ end: records.length, check: sha256(text) }) + "\n";
}

export type JournalRead = { kind: "ok"; records: SaStateRecord[] } | { kind: "bad"; why: string };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function parse(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}

/** Parses journal `journal-<owner>-<seq>.json`: checksum first, then header, count and every record. */
export function decodeJournal(text: string, owner: string, seq: number): JournalRead {
  const bad = (why: string): JournalRead => ({ kind: "bad", why });
  const cut = text.endsWith("\n") ? text.lastIndexOf("\n", text.length - 2) + 1 : 0;
  if (cut === 0) return bad("is cut short (corrupt)");
  const body = text.slice(0, cut);
  const trailer = parse(text.slice(cut));
  if (!isObject(trailer) || typeof trailer.check !== "string") return bad("has no trailer (cut short or corrupt)");
  if (trailer.check !== sha256(body)) return bad("fails its checksum (corrupt)");
  const lines = body.split("\n");
  lines.pop(); // after the last newline
  const head = parse(lines[0]);
  if (!isObject(head) || head.format !== FORMAT) return bad("is not a reservation journal (corrupt)");
  if (head.version !== 1) return bad(`has version ${JSON.stringify(head.version)}, expected 1`);
  if (head.owner !== owner || head.seq !== seq) return bad("has another journal's header (renamed?)");
  if (head.count !== lines.length - 1 || trailer.end !== head.count) return bad("does not hold the records its header counts (corrupt)");
  const records: SaStateRecord[] = [];
  for (let i = 1; i < lines.length; i++) {
    const v = parse(lines[i]);
    if (!isObject(v)) return bad(`line ${i + 1} is not a record (corrupt)`);
    const fault = bodyFault(v);
    if (fault) return bad(`line ${i + 1} ${fault}`);
    if ((v.dir !== "in" && v.dir !== "out") || typeof v.keyId !== "string" || !KEY_ID.test(v.keyId)) return bad(`line ${i + 1} names no key (corrupt)`);
    records.push(bodyRecord(v, v.dir as "in" | "out", v.keyId as string));
  }
  return { kind: "ok", records };
}

/** Steps 1–2 above: in place and durable when this returns; throws (the temporary file removed) if not. */
export function writeJournalSync(path: string, text: string): void {
  const tmp = `${path}.tmp`;
  const buf = Buffer.from(text, "utf8");
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

/** A journal record not covered yet: the journal holding it, the write generation it counts as (seq_store.ts), the record. */
export interface JournalEntry {
  journal: string;
  gen: number;
  rec: SaStateRecord;
}

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
  /** Journal path → the state files it still holds an uncovered record of. */
  private readonly open = new Map<string, Set<string>>();
  /** State file → its uncovered journal records. */
  private readonly held = new Map<string, JournalEntry[]>();
  /** Where `due` stopped. */
  private cursor?: IterableIterator<string>;

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
      if (m[3]) {
        unlinkQuiet(path);
        continue;
      }
      let text: string;
      try {
        text = readFileSync(path, "utf8");
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
    for (const j of found) this.add(j.path, j.records.map((rec) => ({ file: statePath(this.stateDir, rec.dir, rec.keyId), gen: 0, rec })));
    return new Set(names);
  }

  /** The uncovered journal records of state file `file`. */
  records(file: string): readonly JournalEntry[] | undefined {
    return this.held.get(file);
  }

  /** How many state files journal records still stand for. */
  get pending(): number {
    return this.held.size;
  }

  /** How many journals are on disk (of this owner, as far as this store knows). */
  get count(): number {
    return this.open.size;
  }

  /**
   * Steps 1–2 for `entries` (one per state file, `gen` their write
   * generations): durable on return, or throws. Their files' older records
   * are covered by these (step 3).
   */
  write(entries: readonly { file: string; gen: number; rec: SaStateRecord }[]): string {
    const seq = this.nextSeq++;
    const path = journalPath(this.stateDir, this.owner, seq);
    writeJournalSync(path, encodeJournal(this.owner, seq, entries.map((e) => e.rec)));
    for (const e of entries) this.covered(e.file, e.gen);
    this.add(path, entries);
    return path;
  }

  private add(path: string, entries: readonly { file: string; gen: number; rec: SaStateRecord }[]): void {
    const files = new Set<string>();
    for (const e of entries) {
      files.add(e.file);
      const entry = { journal: path, gen: e.gen, rec: e.rec };
      const list = this.held.get(e.file);
      if (list) list.push(entry);
      else this.held.set(e.file, [entry]);
    }
    if (files.size) this.open.set(path, files);
    else unlinkQuiet(path);
  }

  /**
   * Step 3–4: a record of `file` written at generation `gen` is durable, so
   * its journal records from before are covered; a journal left with none
   * is deleted.
   */
  covered(file: string, gen: number): void {
    const list = this.held.get(file);
    if (!list) return;
    const keep: JournalEntry[] = [];
    for (const e of list) {
      if (e.gen >= gen) {
        keep.push(e);
        continue;
      }
      const left = this.open.get(e.journal);
      left?.delete(file);
      if (left?.size === 0) {
        this.open.delete(e.journal);
        unlinkQuiet(e.journal);
      }
    }
    if (keep.length) this.held.set(file, keep);
    else this.held.delete(file);
  }

  /** Up to `n` state files with uncovered records, in turn; `skip`ped ones come round again later. */
  due(n: number, skip: (file: string) => boolean): string[] {
    const out: string[] = [];
    for (let looked = 0, size = this.held.size; out.length < n && looked < size; looked++) {
      let r = this.cursor?.next();
      if (!r || r.done) {
        this.cursor = this.held.keys();
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

/** Whether state file `file`'s name is among `names` (a listing of its directory). */
export const listed = (names: Set<string>, file: string): boolean => names.has(basename(file));

const STATE_NAME = /^(in|out)-([0-9a-zA-Z]+)\.json$/;

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
    if (!m || m[3]) continue;
    const r = decodeJournal(readFileSync(join(dir, n), "utf8"), m[1], Number(m[2]));
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
