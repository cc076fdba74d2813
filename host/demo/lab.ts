// The demo's namespaces, interfaces, processes and scratch directory, and
// their removal.
//
// Everything is named `<prefix><label>` (prefix `wesp-demo-` by default), so
// a lab can be found again by its name alone: `wesp demo --down` (and the
// next `wesp demo`) remove what a `--keep` run, or a run killed with SIGKILL,
// left behind. Interfaces are created directly inside lab namespaces, so
// deleting the namespaces deletes them; long-running processes (wesp up,
// tcpdump, the traffic agents) run inside lab namespaces and are ended by
// their pids (`ip netns pids`) before the namespaces go.
//
// Teardown runs on success, on failure, on SIGINT/SIGTERM/SIGHUP and on
// process exit (synchronously there), unless the lab is kept.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, openSync, closeSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const DEFAULT_PREFIX = "wesp-demo-";

/**
 * The prefix when none is given: `$WESP_NS_PREFIX` + `demo-` when set (each of
 * several concurrent runners has its own; the suffix keeps a demo clear of the
 * runner's other namespaces, which a demo's start would otherwise remove as
 * its leftovers), else `wesp-demo-`.
 */
export function defaultPrefix(env: NodeJS.ProcessEnv = process.env): string {
  return env.WESP_NS_PREFIX ? `${env.WESP_NS_PREFIX}demo-` : DEFAULT_PREFIX;
}

export { exec, run, waitFor, type ExecResult } from "../util/proc.ts";
import { exec, run, waitFor, type ExecResult } from "../util/proc.ts";

/** A long-running process in a namespace, its output going to a log file in the lab dir. */
export class LabProcess {
  exitCode: number | null = null;
  readonly exited: Promise<number | null>;
  constructor(readonly label: string, readonly log: string, readonly child: ChildProcess) {
    this.exited = new Promise((resolve) => {
      child.on("exit", (code, signal) => resolve((this.exitCode = code ?? (signal ? 128 : -1))));
      child.on("error", () => resolve((this.exitCode = -1)));
    });
  }
  get pid(): number {
    return this.child.pid ?? -1;
  }
  get running(): boolean {
    return this.exitCode === null && this.child.exitCode === null && this.child.signalCode === null;
  }
  /** `signal` to the process group, SIGKILL after `graceMs`; resolves when it is gone. */
  async stop(signal: NodeJS.Signals = "SIGTERM", graceMs = 3000): Promise<void> {
    if (!this.running) return;
    killGroup(this.pid, signal);
    const t = setTimeout(() => killGroup(this.pid, "SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(t);
  }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  if (pid <= 0) return;
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

export class Lab {
  readonly namespaces: string[] = [];
  readonly processes: LabProcess[] = [];
  readonly dir: string;
  /** Teardown started (async) / finished; the exit hook finishes an unfinished one. */
  private tearing: Promise<void> | null = null;
  private done = false;
  private kept = false;

  constructor(readonly prefix = DEFAULT_PREFIX) {
    this.dir = mkdtempSync(join(tmpdir(), prefix));
    live.add(this);
    installHooks();
  }

  /** The full name of namespace `label`. */
  nsName(label: string): string {
    return this.prefix + label;
  }

  /** Creates namespace `label` with loopback up. */
  async ns(label: string): Promise<string> {
    const name = this.nsName(label);
    this.namespaces.push(name); // before creation: a half-made one is still deleted
    await run(["ip", "netns", "add", name]);
    await run(["ip", "-n", name, "link", "set", "lo", "up"]);
    return name;
  }

  /** `ip -n NS ARGS…` */
  ip(label: string, ...args: string[]): Promise<string> {
    return run(["ip", "-n", this.nsName(label), ...args]);
  }

  /** argv inside namespace `label`, to completion. */
  exec(label: string, argv: string[], opts?: { timeoutMs?: number; input?: string }): Promise<ExecResult> {
    return exec(["ip", "netns", "exec", this.nsName(label), ...argv], opts);
  }

  runIn(label: string, argv: string[], opts?: { timeoutMs?: number; input?: string }): Promise<string> {
    return run(["ip", "netns", "exec", this.nsName(label), ...argv], opts);
  }

  /** A veth pair between two lab namespaces, both ends up (created in place: no name is taken in the root namespace). */
  async veth(a: string, aIf: string, b: string, bIf: string): Promise<void> {
    await run(["ip", "link", "add", aIf, "netns", this.nsName(a), "type", "veth", "peer", "name", bIf, "netns", this.nsName(b)]);
    await this.ip(a, "link", "set", aIf, "up");
    await this.ip(b, "link", "set", bIf, "up");
  }

  /**
   * Starts argv in namespace `label` as its own process group, stdout and
   * stderr to `<dir>/<name>.log` (a file, not a pipe: a kept lab outlives us).
   * `pipeStdio` gives a stdin/stdout pipe instead, for the traffic agents;
   * `env` is added to ours.
   */
  spawn(label: string, name: string, argv: string[], opts: { pipeStdio?: boolean; cwd?: string; env?: NodeJS.ProcessEnv } = {}): LabProcess {
    if (this.tearing || this.done) throw new Error("lab already torn down");
    const log = join(this.dir, `${name}.log`);
    const fd = openSync(log, "a", 0o600);
    try {
      const child = spawn("ip", ["netns", "exec", this.nsName(label), ...argv], {
        detached: true,
        cwd: opts.cwd,
        env: opts.env ? { ...process.env, ...opts.env } : undefined,
        stdio: opts.pipeStdio ? ["pipe", "pipe", fd] : ["ignore", fd, fd],
      });
      const p = new LabProcess(name, log, child);
      this.processes.push(p);
      return p;
    } finally {
      closeSync(fd);
    }
  }

  /** Leave everything up when this process exits (`--keep`); `wesp demo --down` removes it. */
  keep(): void {
    this.kept = true;
    for (const p of this.processes) p.child.unref();
    live.delete(this);
  }

  get isKept(): boolean {
    return this.kept;
  }

  /** Stops every process (SIGTERM, so wesp releases its TUN and sockets), deletes the namespaces and the dir. Idempotent. */
  teardown(): Promise<void> {
    if (this.kept || this.done) return Promise.resolve();
    this.tearing ??= (async () => {
      await Promise.all(this.processes.map((p) => p.stop("SIGTERM", 3000)));
      for (const ns of this.namespaces) await removeNamespace(ns);
      rmSync(this.dir, { recursive: true, force: true });
      this.done = true;
      live.delete(this);
    })();
    return this.tearing;
  }

  /**
   * Synchronous teardown for exit hooks, where nothing can be awaited; also
   * finishes an asynchronous teardown the exit interrupted.
   */
  teardownSync(): void {
    if (this.kept || this.done) return;
    for (const p of this.processes) if (p.running) killGroup(p.pid, "SIGKILL");
    for (const ns of this.namespaces) removeNamespaceSync(ns);
    rmSync(this.dir, { recursive: true, force: true });
    this.done = true;
    live.delete(this);
  }
}

async function removeNamespace(ns: string): Promise<void> {
  const r = await exec(["ip", "netns", "pids", ns]);
  const pids = r.stdout.split(/\s+/).filter(Boolean).map(Number);
  for (const pid of pids) killGroup(pid, "SIGTERM");
  if (pids.length) await waitFor(async () => (await exec(["ip", "netns", "pids", ns])).stdout.trim() === "", `processes in ${ns} to end`, 3000).catch(() => {
    for (const pid of pids) killGroup(pid, "SIGKILL");
  });
  await exec(["ip", "netns", "del", ns]);
}

function removeNamespaceSync(ns: string): void {
  try {
    const pids = execFileSync("ip", ["netns", "pids", ns], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    for (const pid of pids.split(/\s+/).filter(Boolean)) killGroup(Number(pid), "SIGKILL");
  } catch {
    /* already gone */
  }
  try {
    execFileSync("ip", ["netns", "del", ns], { stdio: "ignore" });
  } catch {
    /* already gone */
  }
}

/** Namespaces and scratch dirs whose names start with `prefix` (what a lab of that prefix made). */
export function leftovers(prefix = DEFAULT_PREFIX): { namespaces: string[]; dirs: string[] } {
  let list = "";
  try {
    list = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
  } catch {
    /* no netns support */
  }
  const namespaces = list.split("\n").map((l) => l.split(" ")[0]).filter((n) => n.startsWith(prefix));
  const dirs = readdirSync(tmpdir())
    .filter((n) => n.startsWith(prefix))
    .map((n) => join(tmpdir(), n))
    .filter((p) => statSync(p, { throwIfNoEntry: false })?.isDirectory());
  return { namespaces, dirs };
}

/** Removes a kept (or abandoned) lab by its prefix: processes, namespaces, dirs. Returns what it removed. */
export async function removeLeftovers(prefix = DEFAULT_PREFIX): Promise<string[]> {
  const { namespaces, dirs } = leftovers(prefix);
  for (const ns of namespaces) await removeNamespace(ns);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  return [...namespaces, ...dirs];
}

const live = new Set<Lab>();
let hooked = false;
function installHooks(): void {
  if (hooked) return;
  hooked = true;
  const all = () => {
    for (const lab of [...live]) lab.teardownSync();
  };
  process.on("exit", all);
  // First signal: the ordinary teardown (wesp gets SIGTERM and exits cleanly).
  // A second one while that runs: the synchronous, SIGKILL one.
  let stopping = false;
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(sig, () => {
      const code = 128 + (sig === "SIGINT" ? 2 : sig === "SIGTERM" ? 15 : 1);
      if (stopping) {
        all();
        process.exit(code);
      }
      stopping = true;
      if (live.size) process.stderr.write(`\nwesp demo: ${sig}: tearing the lab down\n`);
      Promise.all([...live].map((l) => l.teardown())).finally(() => process.exit(code));
    });
  }
}
