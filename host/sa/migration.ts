// The journal migration (journal.ts step 3): the per-key state files that
// reservation journals stand in for, written in the background so journals
// live seconds, not until every key happens to renew. One batch at a time
// (MIGRATE_BATCH files, started by SeqStore.tick when none is running):
// written off the thread (state_file.ts stageStates: temporary files, one
// syncfs), renamed here in write-generation order — a file a newer write
// (renewal, removal, a new batch) put in place meanwhile is left alone, the
// staged one dropped — then one fsync of the directory, and only then are
// the journal records covered (a journal left with none is deleted).
// Killed anywhere in between, the journal is still there: a key's max over
// its file and the journal is what it was.
//
// A batch holds each file's write state (the host's `F`, seq_store.ts
// FileState) from the moment it issues the file's generation to the end:
// its rename is ordered against that state's generations and its covering
// goes through the host with it. Looking the key up again on landing would
// not do: the host may have let go of the key's state meanwhile (its last
// SA removed, its final write newer than this one) and made a new one, whose
// generations start again at 0 — against those this older record would
// land over the newer final one, and cover journal records written since.
import { dirname } from "node:path";
import type { Journals, StateKey } from "./journal.ts";
import { discardStaged, fsyncDir, renameStaged, stageStates, type SaStateRecord } from "./state_file.ts";

/**
 * State files a migration batch writes from the journals: one syncfs each
 * (a second or more when other work fills the disk), so not few; its start
 * holds the thread ≈ 10 µs per file (4,096 held a tick 44 ms), so not many.
 */
export const MIGRATE_BATCH = 1024;
/** Renames done on the thread between two yields to the event loop (a few ms). */
const RENAME_SLICE = 256;
/** After a batch that could not write everything, the next waits this long. */
const RETRY_MS = 5000;

/** What the migration needs of the SeqStore that owns the files (one writer per file); `F` is its state of one file. */
export interface MigrationHost<F> {
  journals(): Iterable<Journals>;
  /** The state of file `k` of `j`'s directory: what the rest take (the same object until the host lets go of it). */
  file(j: Journals, k: StateKey): F;
  /** Whether `f` has a write in flight that will cover its records (left for now). */
  busy(f: F): boolean;
  /** The record `f` gets now, or null to leave it (its file is unreadable: the key is refused at install). */
  record(f: F): SaStateRecord | null;
  /** A new write generation of `f`, and the last one in place. */
  issue(f: F): number;
  committed(f: F): number;
  /** `f` at generation `my` is in place. */
  setCommitted(f: F, my: number): void;
  /** `f` at generation `my` is durable (its directory fsync'd): its older journal records are covered. */
  covered(f: F, my: number): void;
  /** True once the host is abandoned (kill -9 in tests): nothing more may be renamed or deleted. */
  gone(): boolean;
  alarm(message: string): void;
}

/** A state file of a migration batch: its key, its path (it is written), its record and write generation. */
interface Migrating<F> {
  k: StateKey;
  /** Its state when `my` was issued (file comment: never looked up again). */
  f: F;
  path: string;
  record: SaStateRecord;
  my: number;
}

export class Migration<F> {
  private running = false;
  /** Date.now() before which no batch starts (after a failure). */
  private after = 0;
  private batches = 0;

  constructor(private readonly host: MigrationHost<F>) {}

  /** Starts the next batch unless one is running: the first journals' files with uncovered records. */
  step(): void {
    if (this.running || Date.now() < this.after) return;
    const h = this.host;
    for (const j of h.journals()) {
      if (j.refusal || j.pending === 0) continue;
      const batch: Migrating<F>[] = [];
      const due = j.due(MIGRATE_BATCH, (k) => h.busy(h.file(j, k)));
      for (const k of due) {
        const f = h.file(j, k), record = h.record(f);
        if (record) batch.push({ k, f, path: j.path(k), record, my: h.issue(f) });
      }
      // every one due has an unreadable file: look again later, not every tick
      if (!batch.length && due.length) this.after = Date.now() + RETRY_MS;
      if (!batch.length) continue;
      this.running = true;
      this.run(j, batch)
        .catch((e: Error) => this.failed(batch.map((b) => b.path), e))
        .finally(() => void (this.running = false));
      return;
    }
  }

  private async run(j: Journals, batch: Migrating<F>[]): Promise<void> {
    const h = this.host;
    const { staged, failed } = await stageStates(batch, `m${++this.batches}`);
    if (h.gone()) return;
    const my = new Map(batch.map((b) => [b.path, b]));
    const renamed: Migrating<F>[] = [];
    for (const [i, s] of staged.entries()) {
      if (i > 0 && i % RENAME_SLICE === 0) {
        await new Promise((r) => setImmediate(r)); // let packets through
        if (h.gone()) return;
      }
      const b = my.get(s.path)!;
      if (b.my < h.committed(b.f)) {
        discardStaged(s.tmp);
        continue;
      }
      try {
        renameStaged(s.tmp, s.path);
        h.setCommitted(b.f, b.my);
        renamed.push(b);
      } catch (e) {
        discardStaged(s.tmp);
        failed.set(s.path, e as Error);
      }
    }
    if (renamed.length) {
      try {
        await fsyncDir(dirname(renamed[0].path));
        if (!h.gone()) for (const b of renamed) h.covered(b.f, b.my);
      } catch (e) {
        for (const b of renamed) failed.set(b.path, e as Error);
      }
    }
    // a file covered meanwhile by another write is no loss
    const stuck = [...failed.keys()].filter((path) => {
      const b = my.get(path);
      return b !== undefined && j.records(b.k.dir, b.k.keyId);
    });
    if (stuck.length && !h.gone()) this.failed(stuck, failed.get(stuck[0])!);
  }

  private failed(files: string[], e: Error): void {
    this.after = Date.now() + RETRY_MS;
    this.host.alarm(`reservation journal: ${files.length} state files could not be written (${(e as NodeJS.ErrnoException).code ?? e.message}, first ${files[0]}): the journal stays and is read at restart; retrying in ${RETRY_MS / 1000} s`);
  }
}
