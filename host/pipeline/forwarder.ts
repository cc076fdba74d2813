// Orchestration on the main thread: start the packet worker, configure the
// TUN interface around it, answer status, stop cleanly.
//
//   main thread                         worker thread (worker.ts)
//   ───────────                         ─────────────────────────
//   Forwarder.start(config)
//     lifecycle.initial(config) ─spawn─► Core.create, open TUN
//     (node + desired peers; keys ◄─tun─── (its name)
//      transferred, then wiped here)       open WAN sockets,
//     ip link/addr/route (unless           SaTable.apply (host/sa/install.ts),
//      persistent), meanwhile              Pipeline.start
//                           ◄─ready───
//   lifecycle.apply(config) ─{apply}─►  SaTable.apply ─► {applied}   (reload)
//                           ◄─{event}─  SA installed/removed, needs rekey, alarm
//   status() ───────────────{status}─►  snapshot(core) ─► {status}
//   stop()  ────────────────{stop}───►  close fds, remove SAs ─► {stopped}, thread ends
//            (terminate() after a grace period: nothing can hang shutdown)
//
// With node.workers = N there are N packet workers, started one after the
// other (worker 0 makes the TUN, the others attach a queue to it; their NAT-T
// sockets join the SO_REUSEPORT group in worker order, which is what the
// steering program's answer indexes). Every SA has exactly one writer: worker
// i holds its own derived SAs of every static peer (host/sa/worker_sas.ts),
// applies go to all of them, status is summed (status_merge.ts). IKE, STUN
// and keepalives use worker 0's sockets (docs/forwarder.md "Workers").
import type { Worker } from "node:worker_threads";
import { execFile, spawn } from "node:child_process";
import { promisify } from "node:util";
import type { Config } from "../config/model.ts";
import type { Status, WorkerStatus } from "../control/status.ts";
import type { HostPacket } from "./pipeline.ts";
import { SaLifecycle } from "../sa/lifecycle.ts";
import { describeSwitch } from "../sa/failover.ts";
import { eventsOf, type EventBatch, type PeerSpec, type SaEvent } from "../sa/spec.ts";
import type { WorkerData } from "./worker.ts";
import { peersForWorkers } from "../sa/worker_sas.ts";
import { describeSweep, sweepStateDir } from "../sa/state_sweep.ts";
import { mergeStatus } from "./status_merge.ts";
import { moduleWorker } from "../util/module_worker.ts";
import { siblingUrl } from "../util/package_root.ts";
import { phaseStart, phaseTime, plural, secondsSince } from "../util/elapsed.ts";

const run = promisify(execFile);

/**
 * Runs `ip -batch -` over these command lines (one process for all of them;
 * `ip route` takes the family from the prefix). Rejects naming the first
 * failing line with ip's message.
 */
function ipBatch(lines: string[]): Promise<void> {
  if (lines.length === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const child = spawn("ip", ["-batch", "-"], { stdio: ["pipe", "ignore", "pipe"] });
    let err = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
    child.on("error", (e) => reject(new Error(`ip -batch: ${e.message}`)));
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`ip -batch (${lines.length} commands): ${err.trim() || `exit ${code}`}`))));
    child.stdin.end(lines.join("\n") + "\n");
  });
}

/** Thrown when the worker fails to start; `code` is the errno name when the kernel refused (EPERM …). */
export class ForwarderError extends Error {
  constructor(message: string, readonly code?: string, readonly where?: string) {
    super(message);
    this.name = "ForwarderError";
  }
}

export interface ForwarderOptions {
  /** Ring slots per worker (default 256). */
  slots?: number;
  /** Where the worker's log lines go (default stderr). */
  log?: (line: string) => void;
  /** Called when the worker reports an error after start (a fatal fd error, a crash). */
  onFatal?: (e: ForwarderError) => void;
  /**
   * IKE messages that arrived on a WAN port's NAT-T socket behind the non-ESP
   * marker (RFC 3948 §2.2), for the IKE daemon; answer with `sendHost`.
   */
  onHostPacket?: (p: HostPacket) => void;
  /** Called with the SA lifecycle before the worker starts, so its first events (SAs installed, alarms) are heard. */
  onLifecycle?: (lifecycle: SaLifecycle) => void;
}

/** SA directions (in and out) in a desired set: the final records a worker writes at stop. */
const saDirections = (peers: readonly PeerSpec[]): number => peers.reduce((n, p) => n + 2 * p.sas.length, 0);

/**
 * The worker's young generation, at most (V8: three semi-spaces): 64 MiB
 * semi-spaces instead of V8's 16. An install of 100,000 SAs keeps most of
 * what it allocates (records, reservations, journal entries), and with small
 * semi-spaces the scavenger copied it over and over: `SaTable.apply` took
 * 3.2 s with the default, 2.5–2.7 s with 64 MiB (docs/bench.md "Less per
 * SA"). V8 grows the semi-spaces only under allocation pressure, and the
 * packet path allocates nothing, so an idle or forwarding worker does not
 * hold them.
 */
const WORKER_YOUNG_MB = 3 * 64;

function startWorker(data: WorkerData, transferList: ArrayBuffer[]): Worker {
  return moduleWorker(siblingUrl("./worker.ts", import.meta.url), { workerData: data, transferList, resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_MB } });
}

/**
 * MTU, addresses, link up and a route per peer prefix into TUN `tunName`,
 * with `ip` (needs CAP_NET_ADMIN, which creating the TUN already required).
 * A persistent TUN is the administrator's to configure (docs/config.md).
 * Resolves with the prefixes routed.
 */
async function configureTun(config: Config, tunName: string, log: (line: string) => void): Promise<Set<string>> {
  const start = performance.now();
  const t = config.node.tun;
  const ip = async (...args: string[]) => {
    try {
      await run("ip", args);
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      const msg = (err.stderr || err.message).trim();
      throw new ForwarderError(`ip ${args.join(" ")}: ${msg}`, /Operation not permitted/.test(msg) ? "EPERM" : undefined, "tun");
    }
  };
  await ip("link", "set", "dev", tunName, "mtu", String(t.mtu));
  for (const a of t.addresses) {
    await ip(...(a.address.family === 6 ? ["-6"] : []), "addr", "replace", a.text, "dev", tunName, ...(a.address.family === 6 ? ["nodad"] : []));
  }
  await ip("link", "set", "dev", tunName, "up");
  // One `ip -batch` for every route: a process per prefix took minutes for thousands of peers.
  const routes = config.peers.flatMap((p) => p.prefixes.map((r) => r.text));
  try {
    await ipBatch(routes.map((r) => `route replace ${r} dev ${tunName}`));
  } catch (e) {
    const msg = (e as Error).message;
    throw new ForwarderError(msg, /Operation not permitted/.test(msg) ? "EPERM" : undefined, "tun");
  }
  log(`TUN ${tunName}: MTU, ${t.addresses.length} addresses, up, ${routes.length} routes in ${secondsSince(start)} s`);
  return new Set(routes);
}

export class Forwarder {
  readonly startedAt = new Date();
  private nextId = 1;
  private readonly pending = new Map<number, (s: WorkerStatus, worker: number) => void>();
  private readonly applying = new Map<number, (error: string | undefined, worker: number) => void>();
  /** The one door for SAs (host/sa/lifecycle.ts): reload applies through it, events come out of it. */
  readonly lifecycle: SaLifecycle;
  private stopping: Promise<void> | null = null;
  private exited = false;
  /** Peer prefixes routed into the TUN now (configureTun, then kept in step by every apply). */
  private readonly routes = new Set<string>();

  private constructor(
    readonly config: Config,
    private readonly workers: Worker[],
    readonly tunName: string,
    private readonly log: (line: string) => void,
    lifecycle: SaLifecycle,
  ) {
    this.lifecycle = lifecycle;
  }

  /** Worker 0: IKE, STUN and keepalives go out of its sockets. */
  private get worker(): Worker {
    return this.workers[0];
  }

  /**
   * SaSink for the lifecycle: hands every worker its desired set of peers
   * (worker_sas.ts: static SAs derived per worker, negotiated ones each to
   * the worker its SPI steers to; each worker's message transfers the one
   * buffer its share's keys were moved into, the plan's copies wiped). Each
   * worker applies atomically; one refusing (the same checks run in each)
   * rejects the whole apply with its message.
   */
  private applyPeers(peers: PeerSpec[]): Promise<void> {
    if (this.exited || this.stopping) return Promise.reject(new ForwarderError("not running"));
    this.sasHeld = saDirections(peers);
    const id = this.nextId++;
    const n = this.workers.length;
    const per = peersForWorkers(peers, n);
    return new Promise<void>((resolve, reject) => {
      let left = this.workers.length;
      let failed: string | undefined;
      this.applying.set(id, (error, worker) => {
        if (error && failed === undefined) failed = this.workers.length > 1 ? `worker ${worker}: ${error}` : error;
        if (--left > 0) return;
        this.applying.delete(id);
        if (failed !== undefined) reject(new ForwarderError(failed));
        else resolve();
      });
      // Each message transfers its own worker's key buffer (peersForWorkers derived them all first, worker 0 last).
      for (let i = this.workers.length - 1; i >= 0; i--) this.workers[i].postMessage({ type: "apply", id, peers: per[i].peers }, per[i].transfer);
    }).then(() => this.syncRoutes(peers));
  }

  /**
   * After an apply: a route into the TUN for every prefix of the peers held
   * now, and none for a prefix no peer has any more (a peer added by a
   * reload is reachable, a removed one is not routed into a TUN that drops
   * it). A persistent TUN's routes are the administrator's. A failing `ip`
   * is logged: the SAs are applied either way.
   */
  private async syncRoutes(peers: PeerSpec[]): Promise<void> {
    if (this.config.node.tun.persistent) return;
    const want = new Set(peers.flatMap((p) => p.remotes));
    const add = [...want].filter((r) => !this.routes.has(r));
    const del = [...this.routes].filter((r) => !want.has(r));
    if (add.length + del.length === 0) return;
    try {
      await ipBatch([...add.map((r) => `route replace ${r} dev ${this.tunName}`), ...del.map((r) => `route del ${r} dev ${this.tunName}`)]);
    } catch (e) {
      this.log((e as Error).message);
    }
    for (const r of add) this.routes.add(r);
    for (const r of del) this.routes.delete(r);
  }


  /** Starts the worker and configures the TUN. Rejects with ForwarderError (worker is gone then). */
  static async start(config: Config, opts: ForwarderOptions = {}): Promise<Forwarder> {
    const log = opts.log ?? ((l: string) => void process.stderr.write(l + "\n"));
    let fwd: Forwarder | undefined;
    const lifecycle = new SaLifecycle({ apply: (peers) => fwd ? fwd.applyPeers(peers) : Promise.reject(new ForwarderError("starting")) });
    opts.onLifecycle?.(lifecycle);
    lifecycle.on("failover", (sw) => log(describeSwitch(sw)));
    const count = config.node.workers;
    // Before any worker writes the state directory: temporary files of an interrupted write, and
    // journals of worker indexes this run does not have, written into their keys' files first.
    const sweep = sweepStateDir(config.node.stateDir, count);
    const swept = describeSweep(sweep);
    if (swept) log(swept);
    const planStart = phaseStart();
    const first = lifecycle.initial(config);
    const carriers = config.peers.filter((p) => p.ike).map((p) => ({ wanIndex: p.wanIndex, encap: p.encap }));
    // Derived before worker 0's start message transfers the configured keys away.
    const per = peersForWorkers(first.peers, count);
    log(`planned ${saDirections(first.peers)} SAs of ${plural(first.peers.length, "peer")}, keys derived, in ${phaseTime(planStart)}`);
    const workers: Worker[] = [];
    let tun = "";
    // The TUN is configured while worker 0 installs its SAs (it says "tun" once the
    // device is open): a hub's routes, one per peer prefix, took seconds more
    // when they came after the install. Until the pipeline starts, what the
    // routes bring waits in the TUN's queue.
    let configured: Promise<Set<string>> | undefined;
    const configure = (name: string) => {
      if (config.node.tun.persistent) return;
      configured = configureTun(config, name, log);
      configured.catch(() => {}); // awaited below; a failed start must not leave it unhandled
    };
    try {
      for (let i = 0; i < count; i++) {
        const data: WorkerData = { node: config.node, peers: per[i].peers, slots: opts.slots ?? 256, carriers, createdAt: Date.now(), ...(count > 1 ? { worker: { index: i, count }, ...(i > 0 ? { tunName: tun } : {}) } : {}) };
        const worker = startWorker(data, per[i].transfer);
        workers.push(worker);
        const name = await Forwarder.listen(worker, i, () => fwd, log, lifecycle, opts, i === 0 ? configure : undefined);
        if (i === 0) tun = name;
      }
    } catch (e) {
      await configured?.catch(() => {}); // its ip commands end before the TUN goes with the workers
      for (const w of workers) await w.terminate();
      throw e;
    }
    fwd = new Forwarder(config, workers, tun, log, lifecycle);
    fwd.sasHeld = saDirections(first.peers);
    fwd.journalsKept = sweep.kept;
    try {
      if (!config.node.tun.persistent) for (const r of await (configured ?? configureTun(config, tun, log))) fwd.routes.add(r);
    } catch (e) {
      await fwd.stop();
      throw e;
    }
    return fwd;
  }

  /** Wires worker `index`'s messages; resolves with its TUN name once it is ready. */
  private static listen(worker: Worker, index: number, get: () => Forwarder | undefined, log: (line: string) => void, lifecycle: SaLifecycle, opts: ForwarderOptions, onTun?: (name: string) => void): Promise<string> {
    const onEvent = (e: SaEvent) => {
      if (e.event === "alarm") log(`alarm: ${e.message}`);
      else if (e.event === "sa-removed" && e.why === "lifetime") log(`peer ${e.peer}: ${e.dir}bound SA spi 0x${(e.spi >>> 0).toString(16)} reached its lifetime and was removed`);
      else if (e.event === "needs-rekey") log(`peer ${e.peer}: ${e.dir}bound SA spi 0x${(e.spi >>> 0).toString(16)} needs a rekey (${e.why})`);
      lifecycle.deliver(e);
    };
    return new Promise<string>((resolve, reject) => {
      worker.on("message", (m) => {
        const fwd = get();
        if (m.type === "ready") resolve(m.tun);
        else if (m.type === "tun") onTun?.(m.tun);
        else if (m.type === "log") log(index > 0 ? `worker ${index}: ${m.message}` : m.message);
        else if (m.type === "error") {
          const e = new ForwarderError(`${m.where}: ${m.message}`, m.code, m.where);
          if (!fwd) reject(e);
          else opts.onFatal?.(e);
        } else if (m.type === "status") fwd?.pending.get(m.id)?.(m.status, index);
        else if (m.type === "applied") fwd?.applying.get(m.id)?.(m.error, index);
        else if (m.type === "host-packet" && m.packet.stun) for (const f of fwd?.stunListeners ?? []) f(m.packet);
        else if (m.type === "host-packet") opts.onHostPacket?.(m.packet);
        else if (m.type === "event") onEvent(m.event as SaEvent);
        else if (m.type === "events") for (const e of eventsOf(m.batch as EventBatch)) onEvent(e); // one apply's (SaTable emitBatch)
      });
      worker.on("error", (e) => {
        const fwd = get();
        const fe = new ForwarderError(`worker: ${e.message}`);
        if (!fwd) reject(fe);
        else opts.onFatal?.(fe);
      });
      worker.on("exit", (code) => {
        const fwd = get();
        if (fwd) fwd.exited = true;
        if (!fwd) reject(new ForwarderError(`worker exited (${code}) before it was ready`));
        else if (!fwd.stopping) opts.onFatal?.(new ForwarderError(`worker exited unexpectedly (${code})`));
      });
    });
  }

  private readonly stunListeners = new Set<(p: HostPacket) => void>();

  /**
   * STUN messages that arrive on the WAN ports' NAT-T sockets (the core tells
   * them from ESP and IKE: assembly/udp_encap.ts) go to `cb` until the
   * returned function is called; host/net/stun_client.ts forwarderTransport.
   */
  onStun(cb: (p: HostPacket) => void): () => void {
    this.stunListeners.add(cb);
    return () => void this.stunListeners.delete(cb);
  }

  /** Sends an IKE message from a WAN port's NAT-T socket, behind the non-ESP marker (through the worker, which owns it); with `stun`, a STUN message as it is. */
  sendHost(p: Omit<HostPacket, "local">): void {
    if (this.exited || this.stopping) return;
    const bytes = Uint8Array.from(p.bytes);
    this.worker.postMessage({ type: "send-host", packet: { ...p, bytes } }, [bytes.buffer]);
  }

  /** Counters and identities of the running instance (never keys). */
  async status(timeoutMs = 5000): Promise<Status> {
    if (this.exited || this.stopping) throw new ForwarderError("not running");
    const id = this.nextId++;
    const all = await new Promise<WorkerStatus[]>((resolve, reject) => {
      const got: WorkerStatus[] = [];
      let left = this.workers.length;
      const t = setTimeout(() => {
        this.pending.delete(id);
        reject(new ForwarderError("worker did not answer"));
      }, timeoutMs);
      this.pending.set(id, (s, worker) => {
        got[worker] = s;
        if (--left > 0) return;
        clearTimeout(t);
        this.pending.delete(id);
        resolve(got);
      });
      for (const w of this.workers) w.postMessage({ type: "status", id });
    });
    const ws = all.length === 1 ? all[0] : mergeStatus(all);
    const n = this.config.node;
    const failover = this.lifecycle.failover();
    return {
      node: n.name,
      pid: process.pid,
      startedAt: this.startedAt.toISOString(),
      uptimeSeconds: Math.round((Date.now() - this.startedAt.getTime()) / 1000),
      tun: this.tunName,
      workers: this.workers.length,
      control: n.control.socket,
      ...ws,
      ...(this.journalsKept.length ? { journalsKept: this.journalsKept } : {}),
      ...(failover.length ? { failover } : {}),
    };
  }

  /** Former workers' journals the start's sweep left in place (state_sweep.ts), for status. */
  private journalsKept: { file: string; why: string }[] = [];

  /** SA directions in the last desired set (per worker): how many final records a stop writes. */
  private sasHeld = 0;

  /**
   * Closes the TUN and sockets (in the worker) and ends it; terminate() after
   * `graceMs`. The default grows with the SAs held (0.25 ms each): a worker
   * writes every durable SA's final record before it ends (seq_store.ts
   * untrackAll), about 3 s for 20,000 here, and one terminated first loses
   * them (the reservations on disk stay valid bounds; counters are lost).
   * Idempotent.
   */
  stop(graceMs = 3000 + Math.ceil(this.sasHeld / 4)): Promise<void> {
    if (this.stopping) return this.stopping;
    this.stopping = (async () => {
      await Promise.all(this.workers.map(async (w) => {
        if (w.threadId < 0) return; // already ended
        const gone = new Promise<void>((r) => w.once("exit", () => r()));
        w.postMessage({ type: "stop" });
        const t = setTimeout(() => {
          this.log("worker did not stop in time; terminating it (its fds are closed with it)");
          void w.terminate();
        }, graceMs);
        await gone;
        clearTimeout(t);
      }));
    })();
    return this.stopping;
  }
}
