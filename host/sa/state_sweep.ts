// Tidying a state directory at start, before any worker runs (so no writer
// of ours is alive): what an interrupted run or a run with more workers left
// in `sa/`, handled without weakening the rule of seq_store.ts — a
// (key, nonce) pair is never used twice and a replay window never reopens,
// across kill -9 and restarts (RFC 4303 §3.3.3, §3.4.3; RFC 4106 §3.1).
//
// 1. Temporary files. A state file is written as `<file>.tmp` (writeStateSync,
//    writeStatesSync) or `<file>.<tag>.atmp` (stageState, the migration's
//    stageStates) and renamed into place; a journal as `<journal>.tmp`. The
//    core's limit is raised only after the rename and the directory fsync
//    (seq_store.ts; journal.ts steps 1–2), so a temporary file promised
//    nothing: deleted. (A journal's own loader did this for its owner's
//    temporary journals only; the state files' were never deleted.)
//
// 2. Journals of a former worker index. With N workers, owners w0..w(N-1)
//    read, cover and delete their journals; a journal of wK, K ≥ N, is
//    nobody's (its keys, worker_sas.ts, are derived for K: no worker of
//    this run installs them). It may still hold the latest reservation of
//    its keys, so it is never simply deleted: each of its records is merged
//    into its key's own file — the max over the file and every record of
//    that key in wK's journals, as a restart computes it (journal.ts
//    mergeRecords) — written durably (writeStatesSync: temporary file,
//    flush, rename, directory fsync), and only then, once every record of
//    the journal is in a file, is the journal deleted and the directory
//    fsync'd. Killed anywhere in between: the journal or the files, or
//    both, are on disk and the max is what it was. Should worker K run
//    again, it resumes from the files.
//
//    Left in place, and reported: a journal that cannot be read (it could
//    hold any of wK's keys: worker K, if it runs again, refuses them, as
//    journal.ts says), one whose key's file is unreadable or corrupt (that
//    key is refused at install anyway; its journal record must not be
//    lost), one whose files could not be written, and a journal whose owner
//    is not a worker name (not written by this version: left to the
//    operator).
import { readdirSync, readFileSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { mergeRecords, parseJournalName } from "./journal.ts";
import { decodeJournal } from "./journal_format.ts";
import { fsyncDirSync, readState, statePath, writeStatesSync, type SaStateRecord } from "./state_file.ts";

/** A state file's temporary name: `<dir>-<key id>.json` then `.tmp`, or a tag and `.atmp`. */
const STATE_TEMP = /^(in|out)-[0-9a-zA-Z]+\.json\.(tmp|[0-9a-z]{1,24}\.atmp)$/;
/** A worker's journal owner, and its index. */
const WORKER_OWNER = /^w(0|[1-9][0-9]{0,5})$/;

export interface SweepReport {
  /** Temporary files deleted (file names in `sa/`). */
  temps: string[];
  /** Journals of former worker indexes whose records are now in their keys' own files: deleted. */
  adopted: string[];
  /** Journals of former worker indexes (or of no worker) left in place, and why. */
  kept: { file: string; why: string }[];
}

/**
 * The sweep above, for a node about to start `workers` workers. Nothing of
 * this node may be writing `stateDir` meanwhile. A missing directory is
 * nothing to sweep.
 */
export function sweepStateDir(stateDir: string, workers: number): SweepReport {
  const report: SweepReport = { temps: [], adopted: [], kept: [] };
  const dir = join(stateDir, "sa");
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return report; // missing or unreadable: the workers name it when they need it
  }
  const former = new Map<string, { file: string; seq: number }[]>();
  for (const n of names) {
    const j = parseJournalName(n);
    if (STATE_TEMP.test(n) || j?.temp) {
      if (unlinkQuiet(join(dir, n))) report.temps.push(n);
      continue;
    }
    if (!j) continue;
    const w = WORKER_OWNER.exec(j.owner);
    if (w && Number(w[1]) < workers) continue; // a live worker's: its store covers it
    if (!w) {
      report.kept.push({ file: n, why: `owner ${j.owner} is not a worker: left to the operator` });
      continue;
    }
    const list = former.get(j.owner) ?? [];
    former.set(j.owner, list);
    list.push({ file: n, seq: j.seq });
  }
  for (const [owner, journals] of former) adopt(stateDir, owner, journals, report);
  if (report.temps.length || report.adopted.length) fsyncDirSync(dir);
  return report;
}

/** Step 2 above for the journals of one former owner. */
function adopt(stateDir: string, owner: string, journals: { file: string; seq: number }[], report: SweepReport): void {
  const dir = join(stateDir, "sa");
  // Each readable journal's records by state file.
  const read: { file: string; files: Set<string> }[] = [];
  const byFile = new Map<string, SaStateRecord[]>();
  for (const { file, seq } of journals) {
    let r;
    try {
      r = decodeJournal(readFileSync(join(dir, file)), owner, seq);
    } catch (e) {
      r = { kind: "bad" as const, why: `cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` };
    }
    if (r.kind === "bad") {
      report.kept.push({ file, why: `${r.why}: it may hold worker ${owner.slice(1)}'s latest reservations (that worker refuses its SAs while it is there)` });
      continue;
    }
    const files = new Set<string>();
    for (const rec of r.records) {
      const path = statePath(stateDir, rec.dir, rec.keyId);
      files.add(path);
      const list = byFile.get(path);
      if (list) list.push(rec);
      else byFile.set(path, [rec]);
    }
    read.push({ file, files });
  }
  // Each key's max over its file and its records; written where it raises the file.
  const failed = new Map<string, string>();
  const writes: { path: string; record: SaStateRecord }[] = [];
  for (const [path, recs] of byFile) {
    const cur = readState(path, { dir: recs[0].dir, keyId: recs[0].keyId });
    if (cur.kind === "bad") {
      failed.set(path, `state file ${path} ${cur.why}`);
      continue;
    }
    const had = cur.kind === "ok" ? cur.record : null;
    const merged = mergeRecords(had, recs.map((rec) => ({ journal: "", gen: 0, rec })))!;
    if (!had || !sameRecord(had, merged)) writes.push({ path, record: merged });
  }
  for (const [path, e] of writeStatesSync(writes)) failed.set(path, `state file ${path} cannot be written (${(e as NodeJS.ErrnoException).code ?? e.message})`);
  for (const j of read) {
    const why = [...j.files].map((f) => failed.get(f)).find((w) => w !== undefined);
    if (why !== undefined) report.kept.push({ file: j.file, why: `${why}: kept until its records can be written to their keys' files` });
    else if (unlinkQuiet(join(dir, j.file))) report.adopted.push(j.file);
  }
}

const sameRecord = (a: SaStateRecord, b: SaStateRecord): boolean =>
  a.reserved === b.reserved && a.packets === b.packets && a.bytes === b.bytes && a.created === b.created;

/** Deletes `path`; whether it was there to delete. */
function unlinkQuiet(path: string): boolean {
  try {
    unlinkSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The report in one line for the log, or null when there was nothing to do. */
export function describeSweep(r: SweepReport): string | null {
  const parts: string[] = [];
  if (r.temps.length) parts.push(`${r.temps.length} temporary file${r.temps.length === 1 ? "" : "s"} of an interrupted write deleted`);
  if (r.adopted.length) parts.push(`journals of former workers written to their keys' files and deleted: ${r.adopted.join(", ")}`);
  for (const k of r.kept) parts.push(`journal ${k.file} kept: ${k.why}`);
  return parts.length ? `state directory: ${parts.join("; ")}` : null;
}
