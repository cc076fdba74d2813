// Network namespaces for end-to-end and interop tests.
//
// A `Lab` owns everything a test builds: namespaces (named `wesp-t-<pid>-<n>-<label>`
// so leftovers can be traced to the test process that made them), the veth pairs
// inside them, the long-running processes started in them and a scratch directory.
// `teardown()` removes all of it and is safe to call twice; a process-wide `exit` /
// SIGINT / SIGTERM hook runs the same teardown synchronously, so a test that throws,
// fails an assertion or is interrupted still leaves nothing behind.
//
// Interfaces are only ever created *inside* a lab namespace (veth ends are created
// directly in their target namespaces), so deleting a namespace deletes its
// interfaces, and a process dying takes its TUN devices with it. Mounts are made
// only inside private mount namespaces (`unshare -m`) that die with their process.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Namespace name prefix; WESP_NS_PREFIX gives each of several concurrent runners its own. */
export const NS_PREFIX = process.env.WESP_NS_PREFIX ?? "wesp-t-";

export { exec, run, waitFor, type ExecOptions, type ExecResult } from "../../host/util/proc.ts";
import { exec, run, waitFor, type ExecOptions, type ExecResult } from "../../host/util/proc.ts";

/** A process started inside a namespace; its output is kept for diagnostics. */
export class Spawned {
  stdout = "";
  stderr = "";
  exitCode: number | null = null;
  readonly exited: Promise<number | null>;
  constructor(readonly argv: string[], readonly child: ChildProcess) {
    child.stdout?.on("data", (d) => (this.stdout = keepTail(this.stdout + d)));
    child.stderr?.on("data", (d) => (this.stderr = keepTail(this.stderr + d)));
    this.exited = new Promise((resolve) => {
      child.on("exit", (code, signal) => {
        this.exitCode = code ?? (signal ? 128 : null);
        resolve(this.exitCode);
      });
      child.on("error", () => resolve(null));
    });
  }
  get pid(): number {
    return this.child.pid ?? -1;
  }
  get running(): boolean {
    return this.exitCode === null && this.child.exitCode === null && this.child.signalCode === null;
  }
  /**
   * Signals the process group (the child was started as a group leader) and waits for
   * it to end; escalates to SIGKILL after `graceMs`. SIGKILL first when the caller
   * must stop the process without letting it say goodbye (e.g. an IKE DELETE).
   */
  async stop(signal: NodeJS.Signals = "SIGTERM", graceMs = 3000): Promise<void> {
    if (!this.running) return;
    killGroup(this.pid, signal);
    const t = setTimeout(() => killGroup(this.pid, "SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(t);
  }
}

function keepTail(s: string): string {
  return s.length > 1 << 20 ? s.slice(-(1 << 19)) : s;
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

/** One network namespace of a lab. */
export class Netns {
  constructor(readonly name: string, readonly lab: Lab) {}

  private wrap(argv: string[]): string[] {
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
  /** Starts a long-running process here; the lab kills it at teardown. */
  spawn(argv: string[], opts: { env?: NodeJS.ProcessEnv; stdin?: boolean } = {}): Spawned {
    return this.lab.track(this.wrap(argv), opts);
  }
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
  async pids(): Promise<number[]> {
    const r = await exec(["ip", "netns", "pids", this.name]);
    return r.stdout.split(/\s+/).filter(Boolean).map(Number);
  }
  /** Sends one UDP datagram from src:sport (which may be in use) to dst:dport. */
  async sendUdp(src: string, sport: number, dst: string, dport: number, payload: Uint8Array): Promise<void> {
    await this.run(["/usr/bin/python3", "-c", SEND_UDP_PY, src, String(sport), dst, String(dport)], {
      input: Buffer.from(payload).toString("hex"),
    });
  }
  /**
   * ICMP echo with a stdlib-only Python raw socket (the image has no `ping`).
   * Counts replies that carry our identifier, sequence and payload.
   */
  // Each echo may wait 3 s: the first packet on a fresh link waits for IPv6
  // neighbour discovery, whose retransmit timer alone is 1 s (RFC 4861 §10);
  // a 1 s wait lost such a reply on a loaded CI machine. Every echo must still come back.
  async ping(dst: string, count = 3, timeoutSec = 3): Promise<{ sent: number; received: number }> {
    const out = await this.run(["/usr/bin/python3", "-c", PING_PY, dst, String(count), String(timeoutSec)], {
      timeoutMs: (count * timeoutSec + 10) * 1000,
    });
    const received = Number(out.trim());
    return { sent: count, received };
  }
}

// Echo requests over a raw ICMP/ICMPv6 socket. For ICMPv6 the kernel fills in the
// checksum (RFC 3542 §3.1); for ICMP we compute it (RFC 792). Prints the reply count.
const PING_PY = String.raw`
import os, select, socket, struct, sys, time
dst, n, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
v6 = ":" in dst
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
fam, proto, req, rep = (socket.AF_INET6, socket.IPPROTO_ICMPV6, 128, 129) if v6 else (socket.AF_INET, socket.IPPROTO_ICMP, 8, 0)
s = socket.socket(fam, socket.SOCK_RAW, proto)
ident, ok = os.getpid() & 0xffff, 0
for seq in range(n):
    payload = b"wesp-ping-" + struct.pack("!H", seq) * 10
    hdr = struct.pack("!BBHHH", req, 0, 0, ident, seq)
    c = 0 if v6 else csum(hdr + payload)
    s.sendto(struct.pack("!BBHHH", req, 0, c, ident, seq) + payload, (dst, 0))
    end = time.time() + wait
    while True:
        left = end - time.time()
        if left <= 0 or not select.select([s], [], [], left)[0]: break
        d = s.recv(65535)
        off = 0 if v6 else (d[0] & 15) * 4
        t, _, _, i, q = struct.unpack("!BBHHH", d[off:off + 8])
        if t == rep and i == ident and q == seq and d[off + 8:] == payload:
            ok += 1; break
print(ok)
`;

// One UDP datagram built by hand over a raw socket, so the harness can send from a
// port another process (e.g. charon on 4500) holds. Checksum per RFC 768 / RFC 8200
// §8.1 (pseudo-header); the kernel adds the IP header.
const SEND_UDP_PY = String.raw`
import socket, struct, sys
src, sport, dst, dport = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
data = bytes.fromhex(sys.stdin.read().strip())
v6 = ":" in dst
fam = socket.AF_INET6 if v6 else socket.AF_INET
ulen = 8 + len(data)
pseudo = socket.inet_pton(fam, src) + socket.inet_pton(fam, dst) + (struct.pack("!IxxxB", ulen, 17) if v6 else struct.pack("!xBH", 17, ulen))
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
c = csum(pseudo + struct.pack("!HHHH", sport, dport, ulen, 0) + data) or 0xffff
s = socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_UDP)
s.bind((src, 0))
s.sendto(struct.pack("!HHHH", sport, dport, ulen, c) + data, (dst, 0))
`;

// TCP echo for transfers with their bytes checked: the server sends back whatever it
// receives; the client sends N random bytes, half-closes, and compares what returns.
const ECHO_SERVER_JS = String.raw`
const net = require("node:net");
const [addr, port] = process.argv.slice(1);
const srv = net.createServer((c) => { c.pipe(c); c.on("close", () => srv.close()); });
srv.listen(Number(port), addr, () => console.log("listening"));
`;
const ECHO_CLIENT_JS = String.raw`
const net = require("node:net"), crypto = require("node:crypto");
const [addr, port, n] = process.argv.slice(1);
const data = crypto.randomBytes(Number(n));
const got = [];
const c = net.connect(Number(port), addr, () => c.end(data));
c.on("data", (d) => got.push(d));
c.on("end", () => {
  const back = Buffer.concat(got);
  console.log(JSON.stringify({ sent: data.length, echoed: back.length, equal: back.equals(data) }));
});
c.on("error", (e) => { console.error(e.message); process.exit(1); });
`;

/**
 * A TCP transfer checked byte for byte: `bytes` random bytes from `client` to
 * `serverAddr` in `server`, echoed back. Both directions carry all the bytes.
 */
export async function tcpEcho(server: Netns, serverAddr: string, client: Netns, bytes = 1 << 20, port = 5001): Promise<{ sent: number; echoed: number; equal: boolean }> {
  const srv = server.spawn([process.execPath, "-e", ECHO_SERVER_JS, serverAddr, String(port)]);
  try {
    await waitFor(() => /listening/.test(srv.stdout) || !srv.running, `echo server in ${server.name}`);
    if (!srv.running) throw new Error(`echo server failed: ${srv.stderr}`);
    const out = await client.run([process.execPath, "-e", ECHO_CLIENT_JS, serverAddr, String(port), String(bytes)], { timeoutMs: 60_000 });
    return JSON.parse(out);
  } finally {
    await srv.stop();
  }
}

let labSeq = 0;
const liveLabs = new Set<Lab>();

/** Everything one test builds; see the file comment. */
export class Lab {
  readonly namespaces: Netns[] = [];
  readonly processes: Spawned[] = [];
  readonly dir: string;
  private readonly tag: string;
  private torn = false;

  /** `prefix` starts every namespace and scratch dir name (default NS_PREFIX; sweepStale knows only that one). */
  constructor(prefix = NS_PREFIX) {
    this.tag = `${prefix}${process.pid}-${labSeq++}-`;
    this.dir = mkdtempSync(join(tmpdir(), this.tag));
    liveLabs.add(this);
    installExitHooks();
  }

  /** Creates namespace `<prefix><pid>-<lab>-<label>` with loopback up. */
  async ns(label: string): Promise<Netns> {
    const ns = new Netns(this.tag + label, this);
    this.namespaces.push(ns); // before creation, so a half-made one is still deleted
    await run(["ip", "netns", "add", ns.name]);
    await ns.ip("link", "set", "lo", "up");
    return ns;
  }

  /**
   * A veth pair with one end in each namespace, both up. The ends are created
   * directly in their namespaces, so no name is ever taken in the root namespace.
   * Interface names are limited to 15 bytes (IFNAMSIZ).
   */
  async veth(a: Netns, aIf: string, b: Netns, bIf: string): Promise<void> {
    // "name" spelled out: a bare short name like "a" would parse as the keyword "address"
    await run(["ip", "link", "add", "name", aIf, "netns", a.name, "type", "veth", "peer", "name", bIf, "netns", b.name]);
    await a.up(aIf);
    await b.up(bIf);
  }

  /** Used by `Netns.spawn`: starts argv as a process-group leader and remembers it. */
  track(argv: string[], opts: { env?: NodeJS.ProcessEnv; stdin?: boolean }): Spawned {
    if (this.torn) throw new Error("lab already torn down");
    const child = spawn(argv[0], argv.slice(1), {
      env: opts.env ?? process.env,
      detached: true, // own process group: teardown kills the whole group by its id
      stdio: [opts.stdin ? "pipe" : "ignore", "pipe", "pipe"],
    });
    const p = new Spawned(argv, child);
    this.processes.push(p);
    return p;
  }

  /** Stops every process, deletes every namespace and the scratch dir. Idempotent. */
  async teardown(): Promise<void> {
    if (this.torn) return;
    this.torn = true;
    await Promise.all(this.processes.map((p) => p.stop("SIGTERM", 2000)));
    for (const ns of this.namespaces) {
      // Anything still living in the namespace was started by this lab (directly or
      // as a descendant): end it by id so the namespace can really go away.
      for (const pid of await ns.pids()) killGroup(pid, "SIGKILL");
      await exec(["ip", "netns", "del", ns.name]);
    }
    if (!process.env.WESP_KEEP_LABDIR) rmSync(this.dir, { recursive: true, force: true });
    liveLabs.delete(this);
  }

  /** Synchronous twin of `teardown` for process-exit hooks (no awaiting there). */
  teardownSync(): void {
    if (this.torn) return;
    this.torn = true;
    for (const p of this.processes) if (p.running) killGroup(p.pid, "SIGKILL");
    for (const ns of this.namespaces) deleteNsSync(ns.name);
    if (!process.env.WESP_KEEP_LABDIR) rmSync(this.dir, { recursive: true, force: true });
    liveLabs.delete(this);
  }
}

function deleteNsSync(name: string): void {
  try {
    const pids = execFileSync("ip", ["netns", "pids", name], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    for (const pid of pids.split(/\s+/).filter(Boolean)) killGroup(Number(pid), "SIGKILL");
  } catch {
    /* namespace already gone */
  }
  try {
    execFileSync("ip", ["netns", "del", name], { stdio: "ignore" });
  } catch {
    /* already gone */
  }
}

let hooked = false;
function installExitHooks(): void {
  if (hooked) return;
  hooked = true;
  const all = () => {
    for (const lab of [...liveLabs]) lab.teardownSync();
  };
  process.on("exit", all);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(sig, () => {
      all();
      process.exit(128 + (sig === "SIGINT" ? 2 : sig === "SIGTERM" ? 15 : 1));
    });
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Removes namespaces and scratch dirs left by test processes that no longer run
 * (e.g. killed with SIGKILL, where no hook can run). Returns what it removed.
 * Leftovers of a still-running test process are not touched.
 */
export function sweepStale(): string[] {
  const removed: string[] = [];
  const owner = (name: string) => {
    const m = name.startsWith(NS_PREFIX) ? /^(\d+)-/.exec(name.slice(NS_PREFIX.length)) : null;
    return m ? Number(m[1]) : 0;
  };
  let list = "";
  try {
    list = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
  } catch {
    /* no netns support: nothing to sweep */
  }
  for (const line of list.split("\n")) {
    const name = line.split(" ")[0];
    const pid = owner(name);
    if (pid && pid !== process.pid && !pidAlive(pid)) {
      deleteNsSync(name);
      removed.push(name);
    }
  }
  for (const name of readdirSync(tmpdir())) {
    const pid = owner(name);
    const path = join(tmpdir(), name);
    if (pid && pid !== process.pid && !pidAlive(pid) && statSync(path).isDirectory()) {
      rmSync(path, { recursive: true, force: true });
      removed.push(path);
    }
  }
  return removed;
}

/** Whether this process may build namespaces (root with `ip netns`); tests skip otherwise. */
export function canUseNetns(): boolean {
  if (process.getuid?.() !== 0) return false;
  try {
    execFileSync("ip", ["netns", "list"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
