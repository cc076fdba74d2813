// A lab: the network namespaces, veth links, long-running processes and
// scratch directory that one run builds (the demo, a test, a benchmark), and
// their removal.
//
// Every namespace is named `<tag><label>` and the scratch dir `<tag>XXXXXX` in
// the temp dir, so what a lab made can be found again by its name alone
// (leftovers.ts): the demo's tag is a fixed prefix (`wesp demo --down` removes
// a kept lab by it); tests and benchmarks put their pid in the tag
// (`ownerTag`), so leftovers of a dead run can be told from a live one's.
//
// Interfaces are only ever created inside lab namespaces, so deleting the
// namespaces deletes them, and a process dying takes its TUN devices with it.
// Processes run as their own process groups and are stopped by group at
// teardown, then whatever still lives in a namespace (`ip netns pids`).
//
// Teardown runs when the owner calls it (on success and on failure), on
// SIGINT/SIGTERM/SIGHUP, and on process exit (synchronously there), unless the
// lab is kept. WESP_KEEP_LABDIR=1 keeps the scratch dir, for a post-mortem.
import { spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Netns, removeNamespace, removeNamespaceSync } from "./namespace.ts";
import { killGroup, LabProcess } from "./process.ts";
import { veth } from "./veth.ts";
import { run } from "../util/proc.ts";

export interface SpawnOptions {
  /** Added to this process's environment. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** A pipe to the process's stdin (`child.stdin`); else it reads /dev/null. */
  stdin?: boolean;
  /** Output to `<lab dir>/<log>.log` instead of memory; `log` also names the process in messages. */
  log?: string;
  /** With `log`: stdout stays a pipe the caller reads (`child.stdout`); only stderr goes to the log. */
  ownStdout?: boolean;
}

export class Lab {
  readonly namespaces: Netns[] = [];
  readonly processes: LabProcess[] = [];
  readonly dir: string;
  private readonly byLabel = new Map<string, Netns>();
  /** Teardown started (async) / finished; the exit hook finishes an unfinished one. */
  private tearing: Promise<void> | null = null;
  private done = false;
  private kept = false;

  /** `tag` starts the name of every namespace and of the scratch dir. */
  constructor(readonly tag: string) {
    this.dir = mkdtempSync(join(tmpdir(), tag));
    live.add(this);
    installHooks();
  }

  /** Creates namespace `<tag><label>` with loopback up. */
  async ns(label: string): Promise<Netns> {
    const ns = this.makeNetns(this.tag + label);
    this.namespaces.push(ns); // before creation: a half-made one is still deleted
    this.byLabel.set(label, ns);
    await run(["ip", "netns", "add", ns.name]);
    await ns.ip("link", "set", "lo", "up");
    return ns;
  }

  /** The namespace `ns(label)` made. */
  at(label: string): Netns {
    const ns = this.byLabel.get(label);
    if (!ns) throw new Error(`no namespace ${label} in lab ${this.tag}`);
    return ns;
  }

  /** A subclass's own kind of namespace (test helpers add probes). */
  protected makeNetns(name: string): Netns {
    return new Netns(name, this);
  }

  /** A veth pair between two of this lab's namespaces (veth.ts). */
  veth(a: Netns, aIf: string, b: Netns, bIf: string, opts?: { mtu?: number }): Promise<void> {
    return veth(a, aIf, b, bIf, opts);
  }

  /**
   * Starts argv (already wrapped for its namespace, see `Netns.spawn`; or in
   * ours) as its own process group and stops it at teardown.
   */
  track(argv: string[], opts: SpawnOptions = {}): LabProcess {
    if (this.tearing || this.done) throw new Error("lab already torn down");
    const env = opts.env ? { ...process.env, ...opts.env } : process.env;
    const stdin = opts.stdin ? "pipe" : "ignore";
    if (!opts.log) {
      const child = spawn(argv[0], argv.slice(1), { env, cwd: opts.cwd, detached: true, stdio: [stdin, "pipe", "pipe"] });
      return this.remember(new LabProcess(argv, child, argv.join(" ")));
    }
    // a file, not a pipe: a kept lab outlives us
    const log = join(this.dir, `${opts.log}.log`);
    const fd = openSync(log, "a", 0o600);
    try {
      const child = spawn(argv[0], argv.slice(1), { env, cwd: opts.cwd, detached: true, stdio: [stdin, opts.ownStdout ? "pipe" : fd, fd] });
      const p = new LabProcess(argv, child, opts.log, log);
      // the caller reads stdout itself (LabProcess would keep a copy)
      if (opts.ownStdout) child.stdout?.removeAllListeners("data");
      return this.remember(p);
    } finally {
      closeSync(fd);
    }
  }

  private remember(p: LabProcess): LabProcess {
    this.processes.push(p);
    return p;
  }

  /** Leave everything up when this process exits; `removeLeftovers(tag)` removes it later. */
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
      for (const ns of this.namespaces) await removeNamespace(ns.name);
      this.removeDir();
      this.done = true;
      live.delete(this);
    })();
    return this.tearing;
  }

  /** Synchronous teardown for exit hooks, where nothing can be awaited; also finishes an asynchronous one the exit interrupted. */
  teardownSync(): void {
    if (this.kept || this.done) return;
    for (const p of this.processes) if (p.running) killGroup(p.pid, "SIGKILL");
    for (const ns of this.namespaces) removeNamespaceSync(ns.name);
    this.removeDir();
    this.done = true;
    live.delete(this);
  }

  private removeDir(): void {
    if (!process.env.WESP_KEEP_LABDIR) rmSync(this.dir, { recursive: true, force: true });
  }
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
      if (live.size) process.stderr.write(`\nwesp: ${sig}: tearing the lab down\n`);
      Promise.all([...live].map((l) => l.teardown())).finally(() => process.exit(code));
    });
  }
}
