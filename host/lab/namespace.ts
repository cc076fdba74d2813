// One network namespace of a lab (`ip netns add`), the commands run in it, the
// processes started in it, and its removal with everything still living there.
import { execFileSync } from "node:child_process";
import { exec, run, waitFor, type ExecOptions, type ExecResult } from "../util/proc.ts";
import { killGroup } from "./process.ts";
import type { Lab, SpawnOptions } from "./lab.ts";
import type { LabProcess } from "./process.ts";

export class Netns {
  constructor(readonly name: string, readonly lab: Lab) {}

  /** argv run inside this namespace. */
  wrap(argv: string[]): string[] {
    return ["ip", "netns", "exec", this.name, ...argv];
  }
  exec(argv: string[], opts?: ExecOptions): Promise<ExecResult> {
    return exec(this.wrap(argv), opts);
  }
  run(argv: string[], opts?: ExecOptions): Promise<string> {
    return run(this.wrap(argv), opts);
  }
  /** `ip <args>` inside this namespace. */
  ip(...args: string[]): Promise<string> {
    return run(["ip", "-n", this.name, ...args]);
  }
  /** Starts a long-running process here, pinned to `opts.core` when given (taskset: threads and children inherit it); the lab stops it at teardown. */
  spawn(argv: string[], opts: SpawnOptions & { core?: number } = {}): LabProcess {
    const pinned = opts.core === undefined ? argv : ["taskset", "-c", String(opts.core), ...argv];
    return this.lab.track(this.wrap(pinned), opts);
  }
  /** An address on `ifname`; IPv6 ones `nodad`, usable at once instead of after duplicate address detection (RFC 4862 §5.4). */
  addr(ifname: string, cidr: string): Promise<string> {
    return this.ip("addr", "add", cidr, "dev", ifname, ...(cidr.includes(":") ? ["nodad"] : []));
  }
  up(ifname: string): Promise<string> {
    return this.ip("link", "set", "dev", ifname, "up");
  }
  route(prefix: string, via: string): Promise<string> {
    return this.ip(...(via.includes(":") ? ["-6"] : []), "route", "add", prefix, "via", via);
  }
  /** Turns the namespace into a router for IPv4 and IPv6. */
  async forwarding(): Promise<void> {
    await this.run(["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);
  }
  /** Pids of every process whose network namespace this is (`ip netns pids`). */
  pids(): Promise<number[]> {
    return namespacePids(this.name);
  }
}

async function namespacePids(name: string): Promise<number[]> {
  const r = await exec(["ip", "netns", "pids", name]);
  return r.stdout.split(/\s+/).filter(Boolean).map(Number);
}

/**
 * Deletes namespace `name` (its interfaces go with it) after ending what still
 * lives in it: SIGTERM to each process group, SIGKILL to those still there
 * after `graceMs`. Quiet if it is gone already.
 */
export async function removeNamespace(name: string, graceMs = 3000): Promise<void> {
  const pids = await namespacePids(name);
  for (const pid of pids) killGroup(pid, "SIGTERM");
  if (pids.length) {
    await waitFor(async () => (await namespacePids(name)).length === 0, `processes in ${name} to end`, graceMs).catch(() => {
      for (const pid of pids) killGroup(pid, "SIGKILL");
    });
  }
  await exec(["ip", "netns", "del", name]);
}

/** `removeNamespace` for exit hooks, where nothing can be awaited: SIGKILL at once. */
export function removeNamespaceSync(name: string): void {
  try {
    const pids = execFileSync("ip", ["netns", "pids", name], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    for (const pid of pids.split(/\s+/).filter(Boolean)) killGroup(Number(pid), "SIGKILL");
  } catch {
    /* already gone */
  }
  try {
    execFileSync("ip", ["netns", "del", name], { stdio: "ignore" });
  } catch {
    /* already gone */
  }
}

/** Every namespace's name (`ip netns list`); none where this process cannot list them. */
export function namespaceNames(): string[] {
  let list = "";
  try {
    list = execFileSync("ip", ["netns", "list"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  } catch {
    /* no netns support */
  }
  return list.split("\n").map((l) => l.split(" ")[0]).filter(Boolean);
}

/** Whether this process may build namespaces (root with `ip netns`). */
export function canUseNetns(): boolean {
  if (process.getuid?.() !== 0) return false;
  try {
    execFileSync("ip", ["netns", "list"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
