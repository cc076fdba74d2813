// The tunnel benchmark's network: four namespaces in a line, built once and
// shared by every contender, so each one crosses the same veths and the same
// kernel forwarding.
//
//   hA ──lan── eA ══════ wan ══════ eB ──lan── hB
//   10.1.0.2   10.1.0.1  192.0.2.1  192.0.2.2  10.2.0.1  10.2.0.2
//   iperf3 -c  endpoint A (core 0)  endpoint B (core 1)  iperf3 -s
//              + iperf3 client's    + iperf3 server's
//                core               core
//
// hA and hB are the sites; eA and eB are the tunnel endpoints (forwarding on).
// A contender joins 10.1.0.0/24 and 10.2.0.0/24 across the wan link, routed
// into its own tunnel device; the bare veth routes them over `wan` directly.
// The lan links have MTU 1,400 so that every inner packet, TCP or UDP, fits
// every contender's tunnel unfragmented: strongSwan's libipsec TUN is fixed at
// 1,400 bytes (kernel_libipsec_plugin.c, TUN_DEFAULT_MTU).
//
// Namespaces are named `wbench-<pid>-<label>`; `teardown()` removes them and
// every process started in them, and a process-exit / SIGINT / SIGTERM hook
// does the same synchronously, so nothing outlives a failed or interrupted run.
// `sweepStale()` removes what a run killed with SIGKILL left behind.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exec, run, type ExecOptions, type ExecResult } from "../../host/util/proc.ts";

/** Namespace name prefix; WESP_NS_PREFIX gives each of several concurrent runners its own. */
export const NS_PREFIX = process.env.WESP_NS_PREFIX ?? "wbench-";

export const ADDR = {
  hA: "10.1.0.2", eAlan: "10.1.0.1", eAwan: "192.0.2.1",
  eBwan: "192.0.2.2", eBlan: "10.2.0.1", hB: "10.2.0.2",
  netA: "10.1.0.0/24", netB: "10.2.0.0/24",
} as const;

/** Inner MTU of every path through the lab (see the file comment). */
export const INNER_MTU = 1400;

/** A long-running process started in a namespace, as its own process group. */
export class Proc {
  out = "";
  exitCode: number | null = null;
  readonly exited: Promise<number | null>;
  constructor(readonly argv: string[], readonly child: ChildProcess) {
    const keep = (d: Buffer) => {
      this.out += d;
      if (this.out.length > 1 << 20) this.out = this.out.slice(-(1 << 19));
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    this.exited = new Promise((resolve) => {
      child.on("exit", (code, sig) => resolve((this.exitCode = code ?? (sig ? 128 : -1))));
      child.on("error", (e) => {
        this.out += `\n${e.message}`;
        resolve((this.exitCode = -1));
      });
    });
  }
  get pid(): number {
    return this.child.pid ?? -1;
  }
  get running(): boolean {
    return this.exitCode === null && this.child.exitCode === null && this.child.signalCode === null;
  }
  /** SIGTERM to the group, SIGKILL after `graceMs`. */
  async stop(graceMs = 3000): Promise<void> {
    if (!this.running) return;
    killGroup(this.pid, "SIGTERM");
    const t = setTimeout(() => killGroup(this.pid, "SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(t);
  }
}

function killGroup(pid: number, sig: NodeJS.Signals): void {
  if (pid <= 0) return;
  try {
    process.kill(-pid, sig);
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      /* gone */
    }
  }
}

export class Ns {
  constructor(readonly name: string, private readonly lab: BenchLab) {}
  wrap(argv: string[]): string[] {
    return ["ip", "netns", "exec", this.name, ...argv];
  }
  run(argv: string[], opts?: ExecOptions): Promise<string> {
    return run(this.wrap(argv), opts);
  }
  exec(argv: string[], opts?: ExecOptions): Promise<ExecResult> {
    return exec(this.wrap(argv), opts);
  }
  ip(...args: string[]): Promise<string> {
    return run(["ip", "-n", this.name, ...args]);
  }
  /** Starts argv here, pinned to `core` when given (taskset; threads and children inherit it). */
  spawn(argv: string[], opts: { core?: number; env?: NodeJS.ProcessEnv } = {}): Proc {
    const pinned = opts.core === undefined ? argv : ["taskset", "-c", String(opts.core), ...argv];
    return this.lab.track(this.wrap(pinned), opts.env);
  }
  /** rx_packets of `dev` (kernel counter). */
  async rxPackets(dev: string): Promise<number> {
    const j = JSON.parse(await this.ip("-s", "-j", "link", "show", "dev", dev));
    return Number(j[0].stats64.rx.packets);
  }
}

const live = new Set<BenchLab>();

export class BenchLab {
  readonly dir: string;
  readonly procs: Proc[] = [];
  readonly ns: Ns[] = [];
  private torn = false;
  hA!: Ns;
  eA!: Ns;
  eB!: Ns;
  hB!: Ns;

  constructor(readonly tag = `${NS_PREFIX}${process.pid}-`) {
    this.dir = mkdtempSync(join(tmpdir(), this.tag));
    live.add(this);
    hookExit();
  }

  track(argv: string[], env?: NodeJS.ProcessEnv): Proc {
    if (this.torn) throw new Error("lab torn down");
    const child = spawn(argv[0], argv.slice(1), { env: env ?? process.env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    const p = new Proc(argv, child);
    this.procs.push(p);
    return p;
  }

  private async addNs(label: string): Promise<Ns> {
    const ns = new Ns(this.tag + label, this);
    this.ns.push(ns); // before creation: a half-made one is still deleted
    await run(["ip", "netns", "add", ns.name]);
    await ns.ip("link", "set", "lo", "up");
    return ns;
  }

  private async veth(a: Ns, aIf: string, b: Ns, bIf: string, mtu: number): Promise<void> {
    await run(["ip", "link", "add", "name", aIf, "netns", a.name, "mtu", String(mtu), "type", "veth", "peer", "name", bIf, "netns", b.name, "mtu", String(mtu)]);
    await a.ip("link", "set", "dev", aIf, "up");
    await b.ip("link", "set", "dev", bIf, "up");
  }

  /** Builds the four namespaces and three links of the file comment. */
  async build(): Promise<void> {
    this.hA = await this.addNs("hA");
    this.eA = await this.addNs("eA");
    this.eB = await this.addNs("eB");
    this.hB = await this.addNs("hB");
    await this.veth(this.hA, "lan", this.eA, "lan", INNER_MTU);
    await this.veth(this.eA, "wan", this.eB, "wan", 1500);
    await this.veth(this.eB, "lan", this.hB, "lan", INNER_MTU);
    await this.hA.ip("addr", "add", `${ADDR.hA}/24`, "dev", "lan");
    await this.eA.ip("addr", "add", `${ADDR.eAlan}/24`, "dev", "lan");
    await this.eA.ip("addr", "add", `${ADDR.eAwan}/24`, "dev", "wan");
    await this.eB.ip("addr", "add", `${ADDR.eBwan}/24`, "dev", "wan");
    await this.eB.ip("addr", "add", `${ADDR.eBlan}/24`, "dev", "lan");
    await this.hB.ip("addr", "add", `${ADDR.hB}/24`, "dev", "lan");
    await this.hA.ip("route", "add", "default", "via", ADDR.eAlan);
    await this.hB.ip("route", "add", "default", "via", ADDR.eBlan);
    for (const e of [this.eA, this.eB]) await e.run(["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  }

  async teardown(): Promise<void> {
    if (this.torn) return;
    this.torn = true;
    await Promise.all(this.procs.map((p) => p.stop(2000)));
    for (const ns of this.ns) {
      const r = await exec(["ip", "netns", "pids", ns.name]);
      for (const pid of r.stdout.split(/\s+/).filter(Boolean)) killGroup(Number(pid), "SIGKILL");
      await exec(["ip", "netns", "del", ns.name]);
    }
    if (!process.env.WESP_KEEP_LABDIR) rmSync(this.dir, { recursive: true, force: true });
    live.delete(this);
  }

  teardownSync(): void {
    if (this.torn) return;
    this.torn = true;
    for (const p of this.procs) if (p.running) killGroup(p.pid, "SIGKILL");
    for (const ns of this.ns) deleteNsSync(ns.name);
    if (!process.env.WESP_KEEP_LABDIR) rmSync(this.dir, { recursive: true, force: true });
    live.delete(this);
  }
}

function deleteNsSync(name: string): void {
  try {
    const pids = execFileSync("ip", ["netns", "pids", name], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    for (const pid of pids.split(/\s+/).filter(Boolean)) killGroup(Number(pid), "SIGKILL");
  } catch {
    /* gone */
  }
  try {
    execFileSync("ip", ["netns", "del", name], { stdio: "ignore" });
  } catch {
    /* gone */
  }
}

let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  const all = () => {
    for (const l of [...live]) l.teardownSync();
  };
  process.on("exit", all);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(sig, () => {
      all();
      process.exit(128 + (sig === "SIGINT" ? 2 : sig === "SIGTERM" ? 15 : 1));
    });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Deletes `wbench-<pid>-*` namespaces whose process is gone (a run killed with SIGKILL). */
export function sweepStale(): string[] {
  let list = "";
  try {
    list = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const line of list.split("\n")) {
    const name = line.split(" ")[0];
    const m = name.startsWith(NS_PREFIX) ? /^(\d+)-/.exec(name.slice(NS_PREFIX.length)) : null;
    if (m && Number(m[1]) !== process.pid && !alive(Number(m[1]))) {
      deleteNsSync(name);
      removed.push(name);
    }
  }
  return removed;
}
