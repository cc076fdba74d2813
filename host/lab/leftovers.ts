// Finding and removing what labs left behind: a demo kept with `--keep`, or a
// run killed with SIGKILL, where no hook could tear its lab down. Everything a
// lab makes is named by its tag (lab.ts), so the names alone say what to remove.
import { readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { namespaceNames, removeNamespace, removeNamespaceSync } from "./namespace.ts";
import { pidAlive } from "./process.ts";

let seq = 0;

/**
 * A lab tag that names this process: `<prefix><pid>-<n>-` (n counts this
 * process's labs), so `sweepStale(prefix)` can tell a dead run's leftovers
 * from a live one's.
 */
export function ownerTag(prefix: string): string {
  return `${prefix}${process.pid}-${seq++}-`;
}

/** Namespaces and scratch dirs whose names start with `prefix` (what a lab of that tag made). */
export function leftovers(prefix: string): { namespaces: string[]; dirs: string[] } {
  const namespaces = namespaceNames().filter((n) => n.startsWith(prefix));
  const dirs = readdirSync(tmpdir())
    .filter((n) => n.startsWith(prefix))
    .map((n) => join(tmpdir(), n))
    .filter((p) => statSync(p, { throwIfNoEntry: false })?.isDirectory());
  return { namespaces, dirs };
}

/** Removes a kept (or abandoned) lab by its tag: processes, namespaces, dirs. Returns what it removed. */
export async function removeLeftovers(prefix: string): Promise<string[]> {
  const { namespaces, dirs } = leftovers(prefix);
  for (const ns of namespaces) await removeNamespace(ns);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  return [...namespaces, ...dirs];
}

/**
 * Removes the namespaces and scratch dirs of `ownerTag(prefix)` labs whose
 * process no longer runs; a live process's are not touched. Returns what it removed.
 */
export function sweepStale(prefix: string): string[] {
  const owner = (name: string) => {
    const m = name.startsWith(prefix) ? /^(\d+)-/.exec(name.slice(prefix.length)) : null;
    return m ? Number(m[1]) : 0;
  };
  const dead = (name: string) => {
    const pid = owner(name);
    return pid !== 0 && pid !== process.pid && !pidAlive(pid);
  };
  const removed: string[] = [];
  for (const name of namespaceNames().filter(dead)) {
    removeNamespaceSync(name);
    removed.push(name);
  }
  for (const name of readdirSync(tmpdir()).filter(dead)) {
    const path = join(tmpdir(), name);
    if (!statSync(path, { throwIfNoEntry: false })?.isDirectory()) continue;
    rmSync(path, { recursive: true, force: true });
    removed.push(path);
  }
  return removed;
}
