// Durable sequence reservations, in the worker that owns the SAs (one writer
// per SA). The rule that keeps a (key, nonce) pair from ever being used twice
// and a replay window from ever reopening across kill -9 (RFC 4303 §3.3.3,
// §3.4.3; RFC 4106 §3.1; RFC 7634 §2):
//
//   the core never uses a sequence number above SA_SEQLIMIT (outbound: never
//   seals with it; inbound: never accepts it), and the host raises SA_SEQLIMIT
//   only after the state file promising that much is on disk.
//
// So after any crash the file's `reserved` is at or above every number used:
// outbound resumes at reserved + 1; inbound resumes with every number up to
// reserved counted as received (FLAG_PRIOR_SEEN).
//
// Reservations are made ahead in blocks of about half a second of the SA's
// traffic, never fewer than MIN_BLOCK numbers, and renewed when half the
// block is used (tick, every 10 ms), so the packet path does not wait on the
// disk; should the disk or a busy event loop fall behind anyway, the
// pipeline's per-batch check (ensure) renews synchronously once a quarter is
// left, so an SA's own traffic never runs into its limit. An inbound SA
// starts small and idle (FIRST_BLOCK): its first traffic is renewed by ensure.
//
// What a tick looks at is O(active SAs), not O(SAs): an SA changes only
// through packets, and the pipeline reports every SA a packet of a batch
// was matched to — sent, received, or dropped after the SA was found
// (ensure) — so the next tick visits it. Between packets an SA needs a look
// only while something is under way: a write in flight, a peer being
// chased, an inbound SA not yet idle (its give-back IDLE_MS after its last
// progress). Those are `watched`; the rest are dormant and cost nothing per
// tick (before, every tick visited the next 1,024 of all SAs: at 20,000
// idle peers, 100,000 visits a second).
//
// Writes to one file are ordered by a generation number: an asynchronous
// write is staged (written and fsync'd to a temporary file) off the thread
// and committed (renamed into place) back on it only if no newer write was
// committed meanwhile — so an older, slower write can never land over a
// newer one (a renewal overtaken by an urgent one, or by the final write of
// a removed SA, or by a new SA of the same key). An inbound SA
// that went idle gives back most of its block (lowering the limit in the
// core first, then the file): after a restart the peer's next packets,
// numbered just past what we accepted, are dropped as replays only up to the
// reservation, so a small one loses little.
//
// A file's generations live in its FileState, which is kept only while it
// may be needed and let go of (release) once three things hold: no SA of its
// key is tracked, no write of it is in flight that could still land (issued
// === committed), and it has no uncovered journal record. Otherwise a node
// that rotates its static keys (a new key, a new key id, at each reload or
// controller push) would keep one per key it ever had: 10,000 peers rotating
// hourly, 10,000 more an hour, for ever. Letting go never reorders writes:
// every write compares against the FileState it was issued on (captured, never
// looked up again by key), and with issued === committed any write still in
// flight is older than the committed one, so it is discarded when it lands,
// whatever state the key has by then. A state made afresh for the key later
// (generations from 0 again) orders only writes issued after it, all newer
// than anything of the old one. Journal records carry their writer's
// generations, which only that state may compare (covered): hence the third
// condition. A Resume holds its state until track; one let go of meanwhile is
// swapped for the key's current one there.
//
// An inbound SA must also follow a peer that jumped past its reservation:
// a peer that restarted resumes past its own (outbound) reservation, up to a
// whole block ahead, and a peer that kept sending while we were down is ahead
// by what we missed. Its packets then authenticate but are dropped as
// SEQ_UNRESERVED, the window never moves, and — without more — the SA would
// stay shut for good. So when an inbound SA makes no progress while its
// SEQ_UNRESERVED count grows (only authenticated packets count there), the
// reservation is raised, doubling the distance ahead each time until the
// peer's numbers fit; once traffic flows again an oversized reservation is
// lowered back to one block (core first, then the file), so a later crash
// costs few replay drops.
//
// Many SAs installed at once (prepareAll) put their first reservations in
// one reservation journal instead of a file each (journal.ts: what a key
// resumes from is then the max over its file and its journal records, and
// why that keeps the rule across kill -9 at every step). The per-key files
// follow in the background: renewals write them as before, and `tick` starts
// a migration batch (migration.ts) whenever none is running, so journals
// live seconds. A large batch lists its directory once (which keys have a
// file) instead of reading a missing file per key.
import type { Core } from "../core/core.ts";
import { join } from "node:path";
import { Journals, OWNER, STATE_NAME, mergeRecords } from "./journal.ts";
import { Migration } from "./migration.ts";
import { FRESH, HOT, PENDING, SaSlots } from "./seq_slots.ts";
import { commitStaged, discardStaged, plainKey, readState, stageState, statePath, writeStatesSync, writeStateSync, type SaStateRecord } from "./state_file.ts";

/** Fewest numbers reserved at a time: outbound skipping ahead on restart costs nothing, inbound costs replay drops. */
export const MIN_BLOCK = { out: 8192n, in: 2048n } as const;
const MAX_BLOCK = 1n << 24n;
/** Seconds of traffic a block should last. */
const BLOCK_SECONDS = 0.5;
/** An inbound SA without progress for this long shrinks its reservation to IDLE_BLOCK. */
const IDLE_MS = 2000;
const IDLE_BLOCK = 256n;
/**
 * The reservation an SA starts with (install and resume). An inbound SA
 * starts as an idle one, with IDLE_BLOCK: a hub installs thousands of SAs
 * most of which stay idle, and each would otherwise take a whole block and
 * give most of it back IDLE_MS later — one more state-file write per SA, a
 * storm of them two seconds after a large install, and up to a whole block
 * of the peer's packets dropped as replays should we crash first. IDLE_BLOCK
 * is at least a batch of ring slots (256), so the first batch of its traffic
 * fits before ensure() renews it to a whole block.
 */
export const FIRST_BLOCK = { out: MIN_BLOCK.out, in: IDLE_BLOCK } as const;
/** How long a reservation raised for a peer ahead of it waits for that peer's next packet before it may shrink. */
const CHASE_MS = 10_000;
const SEQ32_MAX = 0xffffffffn;
/** Most watched SAs a tick visits besides the ones used since the last (tick). */
export const TICK_SLICE = 1024;
/** From this many SAs on, a batch lists the state directory once instead of reading each key's file (most are missing). */
const LIST_MIN = 64;

export class SeqStateError extends Error {
  constructor(readonly file: string, why: string) {
    super(`state file ${file} ${why}`);
    this.name = "SeqStateError";
  }
}

export interface DurableParams {
  stateDir: string;
  dir: "in" | "out";
  keyId: string;
  spi: number;
  suite: string;
  peer: string;
  esn: boolean;
}

/** Where an SA starts, from its key's state (what `addSa` needs). */
export interface Resume {
  /** Its state file's path (built when asked: an install does not). */
  readonly file: string;
  /** Its state file's state in the store that made this (track). */
  readonly at: FileState;
  initialSeq: bigint;
  priorSeen: boolean;
  seqLimit: bigint;
  /** Counters of earlier runs, for lifetimes. */
  base: { packets: bigint; bytes: bigint };
  created: number;
  /** True when an earlier run's state was found. */
  resumed: boolean;
}

/**
 * Per state file: the last write generation issued and the last committed
 * (in place: the file, or a journal), and the tracked SAs of its key — an
 * SA id, normally one, or the ids when two SAs of one key are tracked at
 * once (a replacement). One map entry per key file (an install of 100,000
 * made two before, this and a list per file), keyed by key id within its
 * state directory and direction (DirState), not by path: no path string is
 * built and hashed per SA at install; `pathOf` builds it when the file is
 * read or written. Held only while it may be needed (file comment, release).
 */
export interface FileState {
  readonly d: DirState;
  readonly dir: "in" | "out";
  readonly keyId: string;
  issued: number;
  committed: number;
  holders: number | number[] | undefined;
  /** The prepareEach call that last took this file (a file named twice in one call is taken once). */
  seen: number;
  /**
   * Set when the store lets go of this state (release, the one place a state
   * leaves its map): `current` reads it instead of looking the key up again
   * in a map of every key (0.1 s of a 100,000-SA install, issue 9).
   */
  released: boolean;
}

/** One state directory (however spelled): its journals and its files' states, by direction and key id. */
interface DirState {
  readonly stateDir: string;
  readonly j: Journals;
  readonly files: { readonly in: Map<string, FileState>; readonly out: Map<string, FileState> };
}

/** A first reservation of a prepareEach batch: its record, index in the call's params, and the file's state. */
interface Batched {
  record: SaStateRecord;
  i: number;
  f: FileState;
}

/** Which state files a listing of a state directory's `sa/` shows, by direction: their key ids. */
type Listing = { in: Set<string>; out: Set<string> };

function listing(names: Set<string> | undefined): Listing | undefined {
  if (!names) return undefined;
  const out: Listing = { in: new Set(), out: new Set() };
  for (const n of names) {
    const m = STATE_NAME.exec(n);
    if (m) out[m[1] as "in" | "out"].add(m[2]);
  }
  return out;
}

/** The path of state file `f` (built on each call: only reads and writes need it). */
function pathOf(f: FileState): string {
  return statePath(f.d.stateDir, f.dir, f.keyId);
}

/** The counters of a key never used (a Resume's base, shared: read, never written). */
const NO_COUNTS: Resume["base"] = Object.freeze({ packets: 0n, bytes: 0n });

/** A Resume whose path is built only if asked for. */
class Resumed implements Resume {
  constructor(
    readonly at: FileState,
    readonly initialSeq: bigint,
    readonly priorSeen: boolean,
    readonly seqLimit: bigint,
    readonly base: { packets: bigint; bytes: bigint },
    readonly created: number,
    readonly resumed: boolean,
  ) {}

  get file(): string {
    return pathOf(this.at);
  }
}

export class SeqStore {
  /** Every tracked SA's reservation state, by SA id (seq_slots.ts: columns, not an object per SA). */
  private readonly sas = new SaSlots<FileState>();
  /** SAs the pipeline used since the last tick (ensure; each once, by the HOT flag): visited by the next tick whatever its turn. Reused: no allocation per batch. */
  private readonly hot: number[] = [];
  /**
   * SAs a tick must look at without traffic (wanted): those with something
   * under way. The rest are dormant until the pipeline reports them (ensure).
   */
  private readonly watched = new Set<number>();
  /**
   * New SAs, due their first look (the FRESH flag), in the order tracked:
   * a list consumed by the ticks before the watched set, not set entries —
   * an install of 100,000 adds them all at once. An id removed (or tracked
   * again) before its look is skipped by its flag.
   */
  private fresh: number[] = [];
  private freshAt = 0;
  /** SAs in `fresh` still flagged (watchedCount). */
  private freshCount = 0;
  /** Where the last tick's slice of the watched SAs stopped. */
  private cursor?: IterableIterator<number>;
  /** Ticks so far (SaSlots.visitTick). */
  private ticks = 0;
  /** prepareEach calls so far (FileState.seen). */
  private prepares = 0;
  /** Per state directory, by its `sa/` path (however stateDir is spelled): its journals and files (DirState). */
  private readonly dirs = new Map<string, DirState>();
  /** The same, by stateDir as spelled (a cache: join normalises the whole path on each call). */
  private readonly spelled = new Map<string, DirState>();
  /** The same, by its journals (the migration's callbacks). */
  private readonly byJournals = new Map<Journals, DirState>();
  /** Set by abandon: nothing more is written. */
  private abandoned = false;
  /** The per-key files the journals stand in for, written in the background (tick). */
  private readonly migration: Migration<FileState>;
  /** The core the last tick saw (a tracked key's migrated record reads its counters). */
  private core?: Core;

  /**
   * `owner` names this store's journals (journal.ts "Owners"): the worker's
   * index, `w0` for the only one.
   */
  constructor(private readonly alarm: (message: string, saId: number) => void, private readonly owner = "w0") {
    if (!OWNER.test(owner)) throw new Error(`journal owner ${JSON.stringify(owner)}: expected ${OWNER}`);
    this.migration = new Migration<FileState>({
      journals: () => this.byJournals.keys(),
      file: (j, k) => this.fileOf(this.byJournals.get(j)!, k.dir, k.keyId),
      busy: (f) => this.holders(f).some((t) => (this.sas.flags[t] & PENDING) !== 0),
      record: (f) => this.migrationRecord(f),
      issue: (f) => ++f.issued,
      committed: (f) => f.committed,
      setCommitted: (f, my) => void (f.committed = my),
      covered: (f, my) => {
        this.cover(f, my);
        this.release(f); // a key no SA holds (removed, or not installed since a restart): its file is all it needs
      },
      gone: () => this.abandoned,
      alarm: (message) => this.alarm(message, -1),
    });
  }

  /** State directory `stateDir` (its journals not read yet: journalsOf). */
  private dirOf(stateDir: string): DirState {
    let d = this.spelled.get(stateDir);
    if (d !== undefined) return d;
    const key = join(stateDir, "sa"); // = dirname(statePath(stateDir, …)), however stateDir is spelled
    d = this.dirs.get(key);
    if (!d) {
      d = { stateDir, j: new Journals(stateDir, this.owner), files: { in: new Map(), out: new Map() } };
      this.dirs.set(key, d);
      this.byJournals.set(d.j, d);
    }
    if (this.spelled.size >= 64) this.spelled.clear();
    this.spelled.set(stateDir, d);
    return d;
  }

  /** State directory `stateDir` with this owner's journals read from disk on first use, and its listing if that read one. */
  private journalsOf(stateDir: string): { d: DirState; names?: Listing } {
    const d = this.dirOf(stateDir);
    return { d, names: listing(d.j.load()) };
  }

  /** The state of file `keyId` in direction `dir` of `d`. */
  private fileOf(d: DirState, dir: "in" | "out", keyId: string): FileState {
    const files = d.files[dir];
    let f = files.get(keyId);
    if (!f) files.set(keyId, (f = { d, dir, keyId, issued: 0, committed: 0, holders: undefined, seen: 0, released: false }));
    return f;
  }

  /** Whether `f` is still its key's state (not let go of: release). */
  private current(f: FileState): boolean {
    return !f.released;
  }

  /**
   * Lets go of file `f`'s state when nothing can need it (file comment):
   * no tracked SA; no write in flight that could land (issued === committed:
   * any still in flight is older than the committed one, and discarded on
   * landing against `f` itself); no uncovered journal record (their
   * generations are `f`'s). Called where one of these may have just become
   * true; the key's next use makes a new state (fileOf).
   */
  private release(f: FileState): void {
    if (f.holders !== undefined || f.issued !== f.committed || f.d.j.has(f.dir, f.keyId)) return;
    if (!this.current(f)) return;
    f.d.files[f.dir].delete(f.keyId);
    f.released = true;
  }

  /** How many state files this store holds a state for (tests, status): the tracked SAs' keys and those with something under way. */
  fileCount(): number {
    let n = 0;
    for (const d of this.dirs.values()) n += d.files.in.size + d.files.out.size;
    return n;
  }

  /**
   * Journals not yet deleted, the state files they still stand for, and
   * when the oldest of them was put in place (ms; null: none), over every
   * state directory (status, tests).
   */
  journalStats(): { journals: number; pending: number; oldest: number | null } {
    let journals = 0, pending = 0, oldest: number | null = null;
    for (const j of this.byJournals.keys()) {
      journals += j.count;
      pending += j.pending;
      const o = j.oldest;
      if (o !== null && (oldest === null || o < oldest)) oldest = o;
    }
    return { journals, pending, oldest };
  }

  /**
   * Reads the key's state and makes the first reservation durable (synchronously:
   * nothing may be sent before it is on disk). Throws SeqStateError naming the
   * file when the state is unreadable, corrupt, another key's, or cannot be written.
   */
  prepare(p: DurableParams, now = Date.now()): Resume {
    const { d, names } = this.journalsOf(p.stateDir);
    const f = this.fileOf(d, p.dir, p.keyId);
    let r: { rec: SaStateRecord; resume: Resume };
    try {
      r = this.reservation(p, now, names, f);
    } catch (e) {
      this.release(f); // refused before any write: nothing to keep for it
      throw e;
    }
    const { rec, resume } = r;
    try {
      this.writeSync(f, rec);
    } catch (e) {
      throw new SeqStateError(pathOf(f), `cannot be written (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): refusing to send on this SA`);
    }
    return resume;
  }

  /**
   * `prepare` for many SAs at once (an install of many), each as durable on
   * return: their first reservations in one journal (journal.ts) — or,
   * should it fail, a file each (state_file.ts writeStatesSync). Per state
   * file, its Resume or why it is refused. Params naming the same file
   * twice get it once (the later one is prepared on its own at install).
   * Files of SAs still tracked are left out: an SA of that key is being
   * replaced in this apply, and its removal (untrack) writes the file again —
   * a reservation made before that write would be lowered under what the new
   * SA may use. Those prepare on their own, after the removal.
   */
  prepareAll(ps: readonly DurableParams[], now = Date.now()): Map<string, Resume | SeqStateError> {
    const out = new Map<string, Resume | SeqStateError>();
    this.prepareEach(ps, now).forEach((r, i) => void (r && out.set(r instanceof SeqStateError ? statePath(ps[i].stateDir, ps[i].dir, ps[i].keyId) : r.file, r)));
    return out;
  }

  /**
   * prepareAll, its answers in the order of `ps`: per entry its Resume, why
   * it is refused, or undefined where prepareAll leaves it out (its file
   * named before in `ps`, or tracked) — that SA prepares on its own.
   */
  prepareEach(ps: readonly DurableParams[], now = Date.now()): (Resume | SeqStateError | undefined)[] {
    const out: (Resume | SeqStateError | undefined)[] = new Array(ps.length).fill(undefined);
    // this call's mark on the files it takes (FileState.seen): a file named twice is taken once
    const call = ++this.prepares;
    const batches = new Map<DirState, Batched[]>();
    const listed = new Map<DirState, Listing | undefined>();
    // let go of after the loop: a file named again in this call is still taken once (seen)
    const refused: FileState[] = [];
    ps.forEach((p, i) => {
      const d = this.dirOf(p.stateDir);
      const f = this.fileOf(d, p.dir, p.keyId);
      if (f.seen === call || f.holders !== undefined) return;
      f.seen = call;
      let names = listed.get(d);
      if (!listed.has(d)) {
        names = this.journalsOf(p.stateDir).names ?? (ps.length >= LIST_MIN && !d.j.refusal ? listing(d.j.names()) : undefined);
        listed.set(d, names);
      }
      try {
        const r = this.reservation(p, now, names, f);
        let batch = batches.get(d);
        if (!batch) batches.set(d, (batch = []));
        batch.push({ record: r.rec, i, f });
        out[i] = r.resume;
      } catch (e) {
        if (!(e instanceof SeqStateError)) throw e;
        out[i] = e;
        refused.push(f);
      }
    });
    for (const f of refused) this.release(f);
    for (const [d, batch] of batches) {
      const failed = this.writeBatch(d, batch);
      if (!failed.size) continue;
      for (const b of batch) {
        const path = pathOf(b.f), e = failed.get(path);
        if (e) out[b.i] = new SeqStateError(path, `cannot be written (${(e as NodeJS.ErrnoException).code ?? e.message}): refusing to send on this SA`);
      }
    }
    return out;
  }

  /** A batch's records durable: one journal, else a file each. The files that failed. */
  private writeBatch(d: DirState, batch: Batched[]): Map<string, Error> {
    const gs = batch.map((b) => b.f);
    const gens = gs.map((g) => ++g.issued);
    try {
      // throws, writing nothing, on a record it cannot hold (a key id not of journal_format.ts KEY_ID: it becomes a file name)
      d.j.write(gens, batch.map((b) => b.record));
      // in place (in the journal): a staged write issued before must not land over it
      gs.forEach((g, i) => (g.committed = gens[i]));
      return new Map();
    } catch {
      // a file each below: only the SAs whose own file fails are refused
    }
    const files = batch.map((b) => ({ path: pathOf(b.f), record: b.record }));
    const failed = writeStatesSync(files);
    files.forEach((b, i) => void (failed.has(b.path) || this.committed(gs[i], gens[i])));
    return failed;
  }

  /**
   * What installing SA `p` reserves: its file, the record to write before it
   * may run, and how it resumes. `names` lists the state directory when the
   * caller did (a missing file is then not read).
   */
  private reservation(p: DurableParams, now: number, names: Listing | undefined, f: FileState): { rec: SaStateRecord; resume: Resume } {
    const j = f.d.j;
    if (j.refusal) {
      throw new SeqStateError(j.refusal.file, `${j.refusal.why}: refusing every durable SA of ${p.stateDir} (the journal may hold their latest reservations; never restart their numbers at 1: replace the keys, or remove the journal only if every key is new)`);
    }
    // not listed: no file to read (a key id statePath would normalise, not plainKey, is read whatever the listing says)
    const r = names && !names[p.dir].has(p.keyId) && plainKey(p.keyId) ? { kind: "absent" as const } : readState(pathOf(f), { dir: p.dir, keyId: p.keyId });
    if (r.kind === "bad") throw new SeqStateError(pathOf(f), `${r.why}: refusing this SA (never restart its numbers at 1; replace the key, or remove the file only if the key is new)`);
    const prev = mergeRecords(r.kind === "ok" ? r.record : null, j.records(p.dir, p.keyId));
    // Every number ≤ top may have been used: the latest record (the file or
    // a journal's) is always at or above what the core was allowed, and the
    // max includes it (a staged write only raises it further, and is never
    // committed over this newer one).
    const top = prev ? prev.reserved : 0n;
    const max = p.esn ? (1n << 64n) - 1n : SEQ32_MAX;
    if (top >= max) throw new SeqStateError(pathOf(f), `shows this key's sequence numbers used up (RFC 4303 §3.3.3): replace the key`);
    let reserved = top + FIRST_BLOCK[p.dir];
    if (reserved > max) reserved = max;
    const rec: SaStateRecord = {
      dir: p.dir, keyId: p.keyId, spi: p.spi, suite: p.suite, peer: p.peer, reserved,
      packets: prev?.packets ?? 0n, bytes: prev?.bytes ?? 0n, created: prev?.created ?? now,
    };
    const base = rec.packets === 0n && rec.bytes === 0n ? NO_COUNTS : { packets: rec.packets, bytes: rec.bytes };
    return { rec, resume: new Resumed(f, top + 1n, prev !== null, reserved, base, rec.created, prev !== null) };
  }

  /**
   * SA ids below `n` are about to be tracked (an install of many): the
   * columns are made that large at once, not doubled eleven times on the
   * way to 100,000 (each doubling copies all fifteen). A hint: track grows
   * them for any id past it.
   */
  expectIds(n: number): void {
    if (n > 0) this.sas.room(n - 1);
  }

  /** Starts renewing SA `saId`'s reservation (after addSa with `res`). */
  track(saId: number, p: DurableParams, res: Resume, now = Date.now()): void {
    if (this.sas.live(saId)) {
      // the id was not untracked (a caller's slip): its file's listing must not keep it
      const old = this.sas.file[saId];
      this.forget(saId);
      this.release(old);
    }
    // The state `res` was prepared on, unless it was let go of since (its
    // key's last SA removed between prepare and track: SaTable.apply does not
    // do that, but nothing here forbids it). Then the key's current state
    // stands in, and that is safe: the prepare's write was synchronous and is
    // in place (or covered by a newer one); the old state was let go of with
    // nothing in flight that can land (release), so its generations order
    // nothing any more; every write of this SA is issued on the current state,
    // after everything of the old one. Tracking the old state instead would
    // leave the key with two generation spaces, and an older, slower write of
    // one could land over a newer write of the other.
    const f = this.current(res.at) ? res.at : this.fileOf(res.at.d, res.at.dir, res.at.keyId);
    // inbound: idle until its traffic starts (FIRST_BLOCK), so tick neither renews nor gives back
    this.sas.fill(saId, p, f, res.seqLimit, res.initialSeq - 1n, res.base, res.created, now, p.dir === "in" ? now - IDLE_MS - 1 : now);
    // looked at once, then dormant unless something is under way
    this.sas.flags[saId] |= FRESH;
    this.fresh.push(saId);
    this.freshCount++;
    const same = f.holders;
    f.holders = same === undefined ? saId : typeof same === "number" ? [same, saId] : [...same, saId];
  }

  /** The tracked SAs of state file `f` (rarely more than one). */
  private holders(f: FileState): readonly number[] {
    const h = f.holders;
    return h === undefined ? [] : typeof h === "number" ? [h] : h;
  }

  /** Stops tracking `t` (its final write is the caller's). */
  private forget(t: number): void {
    const file = this.sas.file[t];
    if ((this.sas.flags[t] & FRESH) !== 0) this.freshCount--;
    this.sas.clear(t);
    this.watched.delete(t);
    const left = this.holders(file).filter((x) => x !== t);
    file.holders = left.length > 1 ? left : left[0];
  }

  /** When tick last looked at tracked SA `saId` (its `now`, ms), -1 if not yet; undefined if untracked. */
  visitedAt(saId: number): number | undefined {
    return this.sas.live(saId) ? this.sas.visitT[saId] : undefined;
  }

  /** How many SAs the next ticks look at without traffic (status, tests). */
  watchedCount(): number {
    return this.watched.size + this.freshCount;
  }

  /** Counters of earlier runs and first-install time of a tracked SA (lifetimes). */
  history(saId: number): { base: { packets: bigint; bytes: bigint }; created: number } | undefined {
    const s = this.sas;
    return s.live(saId) ? { base: { packets: s.basePackets[saId], bytes: s.baseBytes[saId] }, created: s.created[saId] } : undefined;
  }

  /**
   * Before removeSa: writes the final counters (sync) and stops tracking. The
   * outbound reservation stays. An inbound SA's is lowered to the highest
   * number it accepted: it accepts nothing more (it is removed next, on this
   * thread), so that is exact, and the same key installed again (a peer
   * removed and added back by a reload) resumes just past it — else the peer's
   * next packets would be dropped as replays up to the whole reservation.
   * Never below what another SA of the key still tracked may use (keepOthers).
   */
  untrack(core: Core, saId: number): void {
    if (!this.sas.live(saId)) return;
    const file = this.sas.file[saId], rec = this.record(core, saId, this.finalReserved(core, saId));
    this.forget(saId);
    this.keepOthers(file, rec);
    try {
      this.writeSync(file, rec);
    } catch {
      // The reservation on disk is still a valid upper bound; only counters are lost.
      // (Its generation never commits: the state stays, which is the safe side.)
    }
    this.release(file);
  }

  /**
   * Raises `rec`, a final record of `f`, to the limit of every SA of `f`'s
   * key still tracked. A reload that keeps a key but gives it a new SPI
   * installs the new SA (make-before-break: prepare reserves past the file,
   * track) before the old one goes; the old one's final record alone would
   * promise only its own reservation — an inbound one only what it accepted
   * — below the numbers the new SA may already use, and a crash then would
   * reuse them (outbound) or reopen them (inbound).
   */
  private keepOthers(f: FileState, rec: SaStateRecord): void {
    for (const t of this.holders(f)) if (this.sas.reserved[t] > rec.reserved) rec.reserved = this.sas.reserved[t];
  }

  /** What untrack writes: the reservation, an inbound one lowered to the highest number accepted. */
  private finalReserved(core: Core, t: number): bigint {
    const top = this.sas.p[t]!.dir === "in" ? core.seqOf(t, false) : -1n;
    const reserved = this.sas.reserved[t];
    return top >= 1n && top < reserved ? top : reserved; // never 0: a limit of 0 means none
  }

  /**
   * untrack for many SAs at once (a clean stop: all of them; a reload: the
   * removed peers'); removeSa of each follows. Their final records in one
   * batch (state_file.ts writeStatesSync) instead of two fsyncs each, which
   * made stopping a hub of 20,000 durable SAs take seconds; the journal
   * records they cover go with them.
   */
  untrackAll(core: Core, saIds: Iterable<number>): void {
    const ts: number[] = [];
    for (const id of saIds) if (this.sas.live(id)) ts.push(id);
    const last = new Map<FileState, SaStateRecord>();
    for (const t of ts) {
      const record = this.record(core, t, this.finalReserved(core, t));
      const file = this.sas.file[t], had = last.get(file);
      // two SAs of one key (rare): the higher promise
      if (!had || record.reserved > had.reserved) last.set(file, record);
    }
    for (const t of ts) this.forget(t);
    for (const [f, rec] of last) this.keepOthers(f, rec);
    const fs = [...last.keys()];
    const batch = fs.map((f) => ({ path: pathOf(f), record: last.get(f)! }));
    const gens = fs.map((f) => ++f.issued);
    const failed = writeStatesSync(batch);
    batch.forEach((b, i) => {
      // a record that failed: the one on disk is still a valid upper bound; only counters are lost
      if (!failed.has(b.path)) this.committed(fs[i], gens[i]);
    });
    for (const f of fs) this.release(f);
  }

  /** A write of `f` at generation `my` is in place and durable: newer than any before, its journal records covered. */
  private committed(f: FileState, my: number): void {
    f.committed = my;
    this.cover(f, my);
  }

  /**
   * `f`'s journal records older than generation `my` are covered — if `f` is
   * still its key's state. One let go of had no records; any its key has now
   * were written by a newer state, in generations `my` must not be compared
   * with (a migration's fsync that resolves after the key's final write, its
   * release and a new install's journal would otherwise cover that journal's
   * record, newer than the file).
   */
  private cover(f: FileState, my: number): void {
    if (this.current(f)) f.d.j.covered(f.dir, f.keyId, my);
  }

  private record(core: Core, t: number, reserved: bigint): SaStateRecord {
    const s = this.sas, p = s.p[t]!;
    let packets = s.basePackets[t], bytes = s.baseBytes[t];
    try {
      const c = core.readCounters(t);
      packets += c.packets;
      bytes += c.bytes;
    } catch {
      /* removed already */
    }
    return { dir: p.dir, keyId: p.keyId, spi: p.spi, suite: p.suite, peer: p.peer, reserved, packets, bytes, created: s.created[t] };
  }

  /**
   * Renews reservations that are half used (and shrinks idle inbound ones).
   * Call every few milliseconds between batches; never blocks on the disk.
   * Visits the SAs the pipeline used since the last tick (`ensure` marks
   * them) and the watched ones, at most TICK_SLICE of those per tick, in
   * turn; dormant SAs are not visited (file comment).
   */
  tick(core: Core, now = Date.now()): void {
    if (this.abandoned) return;
    this.core = core;
    this.ticks++;
    this.migration.step();
    for (const t of this.hot) {
      this.sas.flags[t] &= ~HOT;
      this.look(core, t, now);
    }
    this.hot.length = 0;
    let budget = TICK_SLICE;
    const s = this.sas, fresh = this.fresh;
    while (budget > 0 && this.freshAt < fresh.length) {
      const t = fresh[this.freshAt++];
      if ((s.flags[t] & FRESH) === 0) continue; // removed, or looked at already
      s.flags[t] &= ~FRESH;
      this.freshCount--;
      this.look(core, t, now);
      budget--;
    }
    if (this.freshAt === fresh.length && fresh.length) (this.fresh = []), (this.freshAt = 0);
    const n = Math.min(budget, this.watched.size);
    for (let k = 0; k < n; k++) {
      let r = this.cursor?.next();
      if (!r || r.done) {
        this.cursor = this.watched.values();
        r = this.cursor.next();
        if (r.done) return;
      }
      this.look(core, r.value, now);
    }
  }

  /** One visit of `t` this tick, then whether it stays watched. */
  private look(core: Core, t: number, now: number): void {
    if (!this.sas.live(t) || this.sas.visitTick[t] === this.ticks) return; // removed since it was marked; seen this tick
    this.sas.visitTick[t] = this.ticks;
    this.visit(core, t, now);
    if (this.wanted(core, t, now)) this.watched.add(t);
    else this.watched.delete(t);
  }

  /**
   * Whether `t` needs a look without traffic: a write in flight (visit
   * skips it until it lands), a peer being chased (ends after CHASE_MS), or
   * an inbound SA that is not yet idle, or idle with more than the
   * give-back leaves (visit gives it back). Anything else changes only
   * through packets, which the pipeline reports (ensure); a failed write is
   * retried when the SA is used again.
   */
  private wanted(core: Core, t: number, now: number): boolean {
    const s = this.sas;
    if ((s.flags[t] & PENDING) !== 0 || s.chaseT[t] !== 0) return true;
    if (s.p[t]!.dir === "out") return false;
    if (now - s.lastProgressT[t] <= IDLE_MS) return true;
    const cur = core.seqOf(t, false);
    return cur >= 0n && s.reserved[t] - cur > IDLE_BLOCK * 2n;
  }

  private visit(core: Core, t: number, now: number): void {
    const s = this.sas, dir = s.p[t]!.dir;
    s.visitT[t] = now;
    if ((s.flags[t] & PENDING) !== 0) return;
    const cur = dir === "out" ? core.seqOf(t, true) - 1n : core.seqOf(t, false);
    if (cur < 0n) return;
    const dt = now - s.lastT[t];
    if (dt >= 50) {
      const inst = Number(cur - s.lastSeq[t]) * 1000 / dt;
      // The old estimate's weight halves every 50 ms since the last look,
      // however long ago that was (a dormant SA is not looked at).
      const keep = 0.5 ** (dt / 50);
      s.rate[t] = s.rate[t] === 0 ? inst : s.rate[t] * keep + inst * (1 - keep);
      if (cur !== s.lastSeq[t]) s.lastProgressT[t] = now;
      s.lastSeq[t] = cur;
      s.lastT[t] = now;
    }
    const block = this.blockFor(t);
    const left = s.reserved[t] - cur;
    const stuck = dir === "in" && this.peerAhead(core, t);
    // An idle inbound SA uses no numbers: renewing its (deliberately small)
    // reservation would only undo the give-back below, and the two would
    // alternate for as long as it stays idle — a state-file write every few
    // ticks per SA. When its traffic resumes, ensure() renews it.
    const idle = dir === "in" && now - s.lastProgressT[t] > IDLE_MS;
    // Chasing ends when the window moves (the peer's numbers fit), or after CHASE_MS without.
    if (s.chaseT[t] !== 0 && (cur > s.chaseSeq[t] || now - s.chaseT[t] > CHASE_MS)) s.chaseT[t] = 0;
    if (stuck) {
      // The peer sends past the limit (it restarted, or sent while we were
      // down): reach at least a whole outbound block (what a restarted wesp
      // skips), further each time, until its numbers fit. No shrink below
      // undoes this while chasing.
      let ahead = left > block ? left : block;
      if (ahead < MIN_BLOCK.out) ahead = MIN_BLOCK.out;
      s.chaseT[t] = now;
      s.chaseSeq[t] = cur;
      this.renew(core, t, cur + 2n * ahead);
    } else if (left < block / 2n && !idle) {
      this.renew(core, t, cur + block);
    } else if (s.chaseT[t] !== 0) {
      // waiting for the peer's next packet
    } else if (dir === "in" && now - s.lastProgressT[t] <= IDLE_MS && left > block * 4n) {
      // Flowing again after a raise: lower an oversized reservation to one
      // block (core first, as for an idle SA below).
      const lower = cur + block;
      core.setSeqLimit(t, lower);
      s.reserved[t] = lower;
      this.renew(core, t, lower);
    } else if (idle && left > IDLE_BLOCK * 2n) {
      // Lower the core first: from here on nothing above cur + IDLE_BLOCK is
      // accepted, so writing the smaller promise afterwards is safe.
      const lower = cur + IDLE_BLOCK;
      core.setSeqLimit(t, lower);
      s.reserved[t] = lower;
      this.renew(core, t, lower);
    }
  }

  /** Whether authenticated packets past the limit arrived since the last look (inbound). */
  private peerAhead(core: Core, t: number): boolean {
    const n = core.dropCount(t, "SEQ_UNRESERVED");
    if (n < 0) return false;
    const grew = n > this.sas.unreserved[t];
    this.sas.unreserved[t] = n;
    return grew;
  }

  /**
   * The record the migration writes for `file`: a tracked key's live record
   * (raised to its journal records' reservation if that is higher: never
   * below what they promise), any other key's (its SA refused, removed, or
   * not installed since a restart) the max over its file and its records;
   * null when its file is unreadable (the key is refused at install, the
   * journal stays).
   */
  private migrationRecord(f: FileState): SaStateRecord | null {
    const entries = f.d.j.records(f.dir, f.keyId);
    const tracked = this.holders(f);
    const core = this.core;
    if (tracked.length && core) {
      let top = tracked[0];
      for (const t of tracked) if (this.sas.reserved[t] > this.sas.reserved[top]) top = t;
      const rec = this.record(core, top, this.sas.reserved[top]);
      for (const e of entries ?? []) if (e.rec.reserved > rec.reserved) rec.reserved = e.rec.reserved;
      return rec;
    }
    const [first] = entries ?? [];
    if (!first) return null;
    const r = readState(pathOf(f), { dir: first.rec.dir, keyId: first.rec.keyId });
    return r.kind === "bad" ? null : mergeRecords(r.kind === "ok" ? r.record : null, entries);
  }

  /**
   * What kill -9 does to this store's writes in flight: they are dropped —
   * their temporary files stay, nothing more is renamed or deleted — and
   * nothing more is written. For tests that crash a store in-process.
   */
  abandon(): void {
    this.abandoned = true;
  }

  private blockFor(t: number): bigint {
    const want = BigInt(Math.ceil(this.sas.rate[t] * BLOCK_SECONDS));
    const min = MIN_BLOCK[this.sas.p[t]!.dir];
    return want < min ? min : want > MAX_BLOCK ? MAX_BLOCK : want;
  }

  /** A write in place now (install, removal, stop, urgent renewal): newer than anything staged. */
  private writeSync(f: FileState, rec: SaStateRecord): void {
    const my = ++f.issued;
    writeStateSync(pathOf(f), rec);
    this.committed(f, my);
  }

  /**
   * Called by the pipeline after each batch for the SAs its packets were
   * matched to (sent, received, or dropped after the SA was found): the
   * next tick visits them. When less than a quarter of the block is left
   * (the asynchronous renewal fell behind), renews now, synchronously, so
   * the SA's own traffic never meets its limit. Cheap when nothing is due
   * (one read of the SA's number).
   */
  ensure(core: Core, saId: number): void {
    const s = this.sas, p = s.p[saId];
    if (p === undefined) return;
    if ((s.flags[saId] & HOT) === 0) (s.flags[saId] |= HOT, this.hot.push(saId));
    if (s.failed[saId]) return;
    const cur = p.dir === "out" ? core.seqOf(saId, true) - 1n : core.seqOf(saId, false);
    if (cur < 0n) return;
    // An inbound window that has not moved since tick last looked: the batch
    // used no number (replays, failed ICVs, numbers past the limit, which the
    // chase in visit follows), so there is nothing to make room for. Without
    // this, an idle SA's give-back (visit: cur + IDLE_BLOCK, below a quarter
    // block) and this renewal alternated every tick for as long as such
    // packets kept coming — two state-file writes, three fsyncs, ~100 times a
    // second per SA on the packet thread, for anyone who can send ESP with a
    // known SPI. The first batch that moves the window renews as before.
    if (p.dir === "in" && cur === s.lastSeq[saId]) return;
    const block = this.blockFor(saId);
    if (s.reserved[saId] - cur >= block / 4n) return;
    const max = p.esn ? (1n << 64n) - 1n : SEQ32_MAX;
    const target = cur + block > max ? max : cur + block;
    if (target <= s.reserved[saId]) return;
    try {
      this.writeSync(s.file[saId], this.record(core, saId, target));
    } catch (e) {
      this.fail(saId, e as NodeJS.ErrnoException);
      return;
    }
    s.reserved[saId] = target;
    core.setSeqLimit(saId, target);
  }

  private fail(t: number, e: NodeJS.ErrnoException): void {
    const s = this.sas, p = s.p[t]!;
    const why = `state file ${pathOf(s.file[t])} cannot be written (${e.code ?? e.message}): SA spi 0x${(p.spi >>> 0).toString(16)} (${p.dir}) stops at sequence number ${s.reserved[t]}`;
    if (s.failed[t] !== why) this.alarm(why, t);
    s.failed[t] = why;
  }

  private renew(core: Core, t: number, target: bigint): void {
    const s = this.sas;
    const max = s.p[t]!.esn ? (1n << 64n) - 1n : SEQ32_MAX;
    const reserved = target > max ? max : target;
    s.flags[t] |= PENDING;
    // this SA's incarnation: its id may name another SA by the time the write lands
    const g = s.file[t], file = pathOf(g), epoch = s.epoch[t];
    const same = () => s.live(t) && s.epoch[t] === epoch;
    const my = ++g.issued;
    stageState(file, this.record(core, t, reserved), my).then(
      (tmp) => {
        if (same()) s.flags[t] &= ~PENDING;
        // A newer write is in place already (urgent renewal, removal, a new
        // SA of this key): this older one must not land over it. Compared
        // with `g`, the state it was issued on, even if its key has another
        // by now (release).
        if (my < g.committed) {
          discardStaged(tmp);
          return this.release(g);
        }
        if (this.abandoned) return;
        try {
          commitStaged(tmp, file);
        } catch (e) {
          discardStaged(tmp);
          return same() ? this.fail(t, e as NodeJS.ErrnoException) : undefined;
        }
        this.committed(g, my);
        // Removed meanwhile (its id may already name another SA): nothing to
        // raise; the last write of a key no SA holds any more may free its state.
        if (!same()) return this.release(g);
        s.failed[t] = null;
        // Only the latest write issued may set the core: a newer one (a
        // lowering, which set the core lower before it was issued) decides.
        if (my !== g.issued) return;
        s.reserved[t] = reserved;
        core.setSeqLimit(t, reserved);
      },
      (e: NodeJS.ErrnoException) => {
        if (!same()) return; // removed meanwhile: its final write was the removal's
        s.flags[t] &= ~PENDING;
        this.fail(t, e);
      },
    );
  }
}
