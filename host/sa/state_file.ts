// One key's durable sequence state: a small JSON file per (direction, key),
// written atomically (temporary file, fsync, rename, fsync of the directory)
// so a crash leaves the old or the new record, never a torn one; a checksum
// catches any other damage. Layout:
//
//   { "version": 1, "dir": "out", "keyId": "…32 hex…", "spi": 2816, "suite": "aes-128-gcm",
//     "peer": "branch1", "reserved": "196608", "packets": "120000", "bytes": "…",
//     "created": 1764950000000, "check": "…sha-256 of the rest…" }
//
// `reserved` is the promise: outbound, no sequence number above it was ever
// sent under this key; inbound, none above it was ever accepted. Numbers are
// decimal strings (u64). The key itself is never written (keyId is a keyed hash).
import { spawn, spawnSync } from "node:child_process";
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync, constants } from "node:fs";
import { open } from "node:fs/promises";
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";

export interface SaStateRecord {
  dir: "in" | "out";
  keyId: string;
  spi: number;
  suite: string;
  peer: string;
  reserved: bigint;
  packets: bigint;
  bytes: bigint;
  /** Unix milliseconds of the key's first install: hard and soft lifetimes in seconds count from here. */
  created: number;
}

export type ReadResult =
  | { kind: "absent" }
  | { kind: "ok"; record: SaStateRecord }
  | { kind: "bad"; why: string };

/** join(stateDir, "sa") per state directory seen (a node has one; tests a few). */
const saDirs = new Map<string, string>();
/**
 * Whether key id `k` needs no normalising in a path (/^[0-9A-Za-z]+$/: no
 * separator, not a dot segment). A loop, not the regular expression: an
 * install asks it once or more per SA (issue 9).
 */
export function plainKey(k: string): boolean {
  if (k.length === 0) return false;
  for (let i = 0; i < k.length; i++) {
    const c = k.charCodeAt(i);
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a))) return false;
  }
  return true;
}

/** The file of key `keyId` in direction `dir` under the node's state directory. */
export function statePath(stateDir: string, dir: "in" | "out", keyId: string): string {
  // join() normalises the whole path on every call (≈ 0.4 µs; three calls per SA of an install of
  // 100,000): the directory part is joined once, a plain name appended — what join would give.
  if (!plainKey(keyId)) return join(stateDir, "sa", `${dir}-${keyId}.json`);
  let sa = saDirs.get(stateDir);
  if (sa === undefined) {
    if (saDirs.size >= 64) saDirs.clear();
    saDirs.set(stateDir, (sa = join(stateDir, "sa")));
  }
  return `${sa}/${dir}-${keyId}.json`;
}

/** A record's fields as written (a state file adds `check`; a journal line is this alone: journal.ts). */
export function recordBody(r: SaStateRecord): Record<string, unknown> {
  return {
    version: 1, dir: r.dir, keyId: r.keyId, spi: r.spi >>> 0, suite: r.suite, peer: r.peer,
    reserved: r.reserved.toString(), packets: r.packets.toString(), bytes: r.bytes.toString(), created: r.created,
  };
}

const checksum = (b: Record<string, unknown>): string => createHash("sha256").update(JSON.stringify(b)).digest("hex");

export function encodeState(r: SaStateRecord): string {
  const b = recordBody(r);
  return JSON.stringify({ ...b, check: checksum(b) }) + "\n";
}

const U64 = /^(0|[1-9][0-9]{0,19})$/;

/** Why `b` (a parsed record body, `check` aside) is not a valid one, or null: every field but dir and keyId. */
export function bodyFault(b: Record<string, unknown>): string | null {
  if (b.version !== 1) return `has version ${JSON.stringify(b.version)}, expected 1`;
  for (const f of ["reserved", "packets", "bytes"]) {
    if (typeof b[f] !== "string" || !U64.test(b[f] as string) || BigInt(b[f] as string) >= 1n << 64n) {
      return `has no valid "${f}" (corrupt)`;
    }
  }
  if (typeof b.created !== "number" || !Number.isSafeInteger(b.created) || b.created < 0) return `has no valid "created" (corrupt)`;
  if (typeof b.spi !== "number" || typeof b.suite !== "string" || typeof b.peer !== "string") return "misses spi/suite/peer (corrupt)";
  return null;
}

/** The record of a body bodyFault passed. */
export function bodyRecord(b: Record<string, unknown>, dir: "in" | "out", keyId: string): SaStateRecord {
  return {
    dir, keyId, spi: b.spi as number, suite: b.suite as string, peer: b.peer as string,
    reserved: BigInt(b.reserved as string), packets: BigInt(b.packets as string), bytes: BigInt(b.bytes as string),
    created: b.created as number,
  };
}

/** Parses a state file's text; every field is checked, the checksum last. */
export function decodeState(text: string, expect: { dir: "in" | "out"; keyId: string }): ReadResult {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(text);
  } catch {
    return { kind: "bad", why: "is not JSON (corrupt)" };
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) return { kind: "bad", why: "is not a state record (corrupt)" };
  const { check, ...rest } = v;
  const fault = bodyFault(rest);
  if (fault) return { kind: "bad", why: fault };
  if (check !== checksum(rest)) return { kind: "bad", why: "fails its checksum (corrupt)" };
  if (rest.dir !== expect.dir || rest.keyId !== expect.keyId) return { kind: "bad", why: "belongs to another key" };
  return { kind: "ok", record: bodyRecord(rest, expect.dir, expect.keyId) };
}

export function readState(path: string, expect: { dir: "in" | "out"; keyId: string }): ReadResult {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { kind: "absent" };
    return { kind: "bad", why: `cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` };
  }
  return decodeState(text, expect);
}

/** Makes the state directory (0700) if it is missing. */
export function ensureStateDir(stateDir: string): void {
  mkdirSync(join(stateDir, "sa"), { recursive: true, mode: 0o700 });
}

/** fsync(2) of a directory: the renames in it survive a power loss. */
export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes the record durably before returning (install time: before the SA may use any number). */
export function writeStateSync(path: string, r: SaStateRecord): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
  try {
    writeSync(fd, encodeState(r));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  fsyncDirSync(dirname(path));
}

/** Fewest records for which one flush of the file system (syncfs) beats an fsync each. */
export const BATCH_FLUSH_MIN = 16;

/** One syncfs(2) of the file system holding `dir`, by coreutils' `sync -f`; false if that could not be done. */
function syncFsOf(dir: string): boolean {
  const r = spawnSync("sync", ["-f", dir], { stdio: "ignore", timeout: 60_000 });
  return r.status === 0;
}

/**
 * Many records put in place at once (installing many SAs: writeStateSync's
 * two fsyncs took 0.65 ms per record here, over 2,000), each as durable as
 * writeStateSync makes it before this returns, with fewer flushes: every
 * temporary file written; then, from BATCH_FLUSH_MIN records on, one syncfs
 * of their file system (all are under one state directory), else — or should
 * that fail — an fsync of each; then every rename; then one fsync of each
 * directory. A record is in place only if nothing failed for it: its path is
 * absent from the returned map of errors.
 */
export function writeStatesSync(entries: readonly { path: string; record: SaStateRecord }[]): Map<string, Error> {
  const failed = new Map<string, Error>();
  let written: { path: string; tmp: string }[] = [];
  const fail = (path: string, e: unknown) => void failed.set(path, e instanceof Error ? e : new Error(String(e)));
  const each = entries.length < BATCH_FLUSH_MIN;
  for (const { path, record } of entries) {
    const tmp = `${path}.tmp`;
    try {
      const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
      try {
        writeSync(fd, encodeState(record));
        if (each) fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      written.push({ path, tmp });
    } catch (e) {
      fail(path, e);
    }
  }
  if (!each && written.length && ![...new Set(written.map((w) => dirname(w.tmp)))].every(syncFsOf)) {
    written = written.filter((w) => {
      try {
        const fd = openSync(w.tmp, constants.O_RDONLY);
        try {
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
        return true;
      } catch (e) {
        fail(w.path, e);
        return false;
      }
    });
  }
  const dirs = new Map<string, string[]>();
  for (const w of written) {
    try {
      renameSync(w.tmp, w.path);
      const d = dirname(w.path);
      const list = dirs.get(d);
      if (list) list.push(w.path);
      else dirs.set(d, [w.path]);
    } catch (e) {
      fail(w.path, e);
    }
  }
  for (const [d, paths] of dirs) {
    try {
      fsyncDirSync(d);
    } catch (e) {
      for (const path of paths) fail(path, e);
    }
  }
  return failed;
}

/**
 * The slow half of an asynchronous write, off the packet thread (libuv's
 * pool): the record into its own temporary file (`tag` makes it unique),
 * fsync'd. Nothing is in place until commitStaged renames it — on the owner's
 * thread, where the order of commits is decided (seq_store.ts).
 */
export async function stageState(path: string, r: SaStateRecord, tag: number): Promise<string> {
  const tmp = `${path}.${tag}.atmp`;
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
  try {
    await fh.writeFile(encodeState(r));
    await fh.sync();
  } finally {
    await fh.close();
  }
  return tmp;
}

/** Puts a staged record in place, durably (rename, fsync of the directory). */
export function commitStaged(tmp: string, path: string): void {
  renameSync(tmp, path);
  fsyncDirSync(dirname(path));
}

/** Drops a staged record that a newer write made moot. */
export function discardStaged(tmp: string): void {
  try {
    unlinkSync(tmp);
  } catch {
    /* gone already */
  }
}

/** syncfs(2) of the file system holding `dir` (`sync -f`) without blocking the thread; false if that could not be done. */
function syncFsOfAsync(dir: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = spawn("sync", ["-f", dir], { stdio: "ignore", timeout: 60_000 });
    c.on("error", () => resolve(false));
    c.on("exit", (code) => resolve(code === 0));
  });
}

/** How many temporary files stageStates writes at a time (libuv's pool has 4 threads). */
const STAGE_PARALLEL = 16;

/**
 * The slow half of writing many records in the background (journal
 * migration, seq_store.ts), off the thread: each into its own temporary file
 * (`tag` makes them unique), then one syncfs of their file system (all are
 * under one directory) or, should that fail, an fsync each. Nothing is in
 * place until the owner renames them (renameStaged) and fsyncs the directory
 * once (fsyncDir). A record that could not be staged is in `failed`.
 */
export async function stageStates(entries: readonly { path: string; record: SaStateRecord }[], tag: string): Promise<{ staged: { path: string; tmp: string }[]; failed: Map<string, Error> }> {
  const failed = new Map<string, Error>();
  let staged: { path: string; tmp: string }[] = [];
  const one = async (path: string, record: SaStateRecord, sync: boolean): Promise<void> => {
    const tmp = `${path}.${tag}.atmp`;
    try {
      const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
      try {
        await fh.writeFile(encodeState(record));
        if (sync) await fh.sync();
      } finally {
        await fh.close();
      }
      staged.push({ path, tmp });
    } catch (e) {
      failed.set(path, e instanceof Error ? e : new Error(String(e)));
      discardStaged(tmp);
    }
  };
  for (let i = 0; i < entries.length; i += STAGE_PARALLEL) {
    await Promise.all(entries.slice(i, i + STAGE_PARALLEL).map((e) => one(e.path, e.record, false)));
  }
  if (staged.length && !(await syncFsOfAsync(dirname(staged[0].path)))) {
    const left = staged;
    staged = [];
    for (const s of left) {
      try {
        const fh = await open(s.tmp, constants.O_RDONLY);
        try {
          await fh.sync();
        } finally {
          await fh.close();
        }
        staged.push(s);
      } catch (e) {
        failed.set(s.path, e instanceof Error ? e : new Error(String(e)));
        discardStaged(s.tmp);
      }
    }
  }
  return { staged, failed };
}

/** Puts a record stageStates staged in place; durable only after the next fsyncDir of its directory. */
export function renameStaged(tmp: string, path: string): void {
  renameSync(tmp, path);
}

/** fsync(2) of a directory, off the thread: the renames made in it so far are durable when it resolves. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
