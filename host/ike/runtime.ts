// IKEv2 in a running CE: what `wesp up` and the library (host/api) start beside
// the data plane for the config's peers that have an `ike` block, and what a
// controller agent calls for its IKE peers. Small on purpose:
//
//   const ike = new IkeRuntime({ log });
//   const fwd = await Forwarder.start(config, { onHostPacket: ike.onHostPacket });
//   await ike.start(fwd);            // sockets, endpoint, manager; initiators connect
//   await ike.apply(nextConfig);     // a reload: IKE peers added/removed/changed, then the data plane
//   ike.status();                    // per peer (Status.ike, `wesp status`)
//   await ike.stop();                // DELETEs sent (and answered, or 1.5 s), sockets closed
//
// Wiring (docs/ike.md "In wesp up"):
//
//   node.ike_port, 500 by default (its own dgram socket per WAN address) ─┐
//   NAT-T port: the data plane's UDP socket; the core ├─► IkeTransport ─► IkeEndpoint ─► events ─► IkeManager ─► SaLifecycle
//   hands IKE up as TO_HOST (onHostPacket), answers ─┘     (one timer: endpoint and manager)          (setNegotiated)
//   go back through Forwarder.sendHost (marker added)
//
// The responder's answer that creates a CHILD_SA waits until the lifecycle has
// installed it in the worker (manager.settled), so the peer's first ESP packet,
// which may follow the answer at once, finds its inbound SA (RFC 7296 §2.8).
// INITIAL_CONTACT (§2.4) goes in the first IKE SA to each peer after a start
// only: later ones (a retry, a re-establishment) must not make the peer drop
// SAs that are ours and live.
import { createHash, randomBytes } from "node:crypto";
import { canonicalAddress, formatCoreAddr, parseAddress, coreAddr } from "../config/addr.ts";
import type { Config, PeerConfig } from "../config/model.ts";
import { Forwarder, ForwarderError, type ForwarderOptions } from "../pipeline/forwarder.ts";
import type { HostPacket } from "../pipeline/pipeline.ts";
import type { IkePeerStatus, Status } from "../control/status.ts";
import { FIXED_NODE_FIELDS, type ApplyReport, type SaLifecycle } from "../sa/lifecycle.ts";
import { IkeEndpoint } from "./endpoint.ts";
import { childOf, IkeManager, managedPeer, type ManagedPeer, type ManagerEvent } from "./manager.ts";
import { IkeTransport } from "./transport.ts";
import { appendKeyLog, KEYLOG_ENV, keyLogPath } from "./keylog.ts";
import type { IkeEvent, IkeSaConfig, Path, PeerAuth } from "./types.ts";

/** What the runtime needs of the data plane (pipeline/forwarder.ts's Forwarder has it). */
export interface DataPlane {
  readonly config: Config;
  readonly lifecycle: SaLifecycle;
  /** An IKE message out of a WAN port's NAT-T socket; the worker adds the non-ESP marker. */
  sendHost(p: Omit<HostPacket, "local">): void;
}

export interface IkeRuntimeOptions {
  /** Log lines (never key material). */
  log?: (line: string) => void;
  /** UDP port of IKE proper on every WAN address, ours and the peers' (default: the config's node.ike_port, itself 500 by default, RFC 7296 §2). */
  ikePort?: number;
  /** What happened to a peer's tunnels, as it happens: for counters (host/metrics/ce.ts). */
  onIke?: (e: IkeTelemetry) => void;
}

/**
 * One thing worth counting per peer, as it happens: an IKE SA up or down, a
 * failure (a set-up or an IKE SA failed; toward the alarm), the alarm, a
 * CHILD_SA or IKE SA rekeyed. Refused and dropped messages are counted by
 * reason in `drops()` instead (most come from no known peer).
 */
export interface IkeTelemetry {
  event: "up" | "down" | "failure" | "alarm" | "child-rekey" | "ike-rekey";
  peer: string;
}

/** Retransmission of a peer with liveness checks: given up within `dpd` seconds after the check (§2.1, §2.4). */
function retransmitFor(dpd: number): { baseMs: number; tries: number } | undefined {
  if (!dpd) return undefined;
  // four sends wait 1+2+4+8 = 15 bases in all
  return { baseMs: Math.round(Math.max(100, Math.min(1000, (dpd * 1000) / 15))), tries: 4 };
}

/**
 * Everything of a config peer that IKE uses but its traffic selectors: a change
 * restarts that peer's IKE (keys hashed, never kept).
 */
function fingerprint(config: Config, p: PeerConfig): string {
  const wan = config.node.wan[p.wanIndex];
  const hidden = (_k: string, v: unknown) => (v instanceof Uint8Array ? createHash("sha256").update(v).digest("hex") : v);
  return JSON.stringify({
    ike: p.ike, address: p.address.text, port: p.port, encap: p.encap, natT: p.natT, keepalive: p.keepalive, mode: p.mode,
    wan: [wan.address.text, wan.port],
  }, hidden);
}

/**
 * The traffic selectors IKE proposes for a peer (manager.ts childOf: a tunnel's
 * prefixes, ours; transport mode's addresses): a change alone keeps the IKE SA
 * and moves the traffic to a new CHILD_SA (IkeManager.reselect).
 */
function selectorText(c: Pick<IkeSaConfig, "localTs" | "remoteTs">): string {
  return JSON.stringify([c.localTs, c.remoteTs], (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString("hex") : v));
}

/** "peer authenticated by certificate \"CN=…\" serial …" or "… by PSK", for the log. */
export function authText(a: PeerAuth): string {
  return a.method === "psk" ? "peer authenticated by PSK" : `peer authenticated by certificate "${a.subject}" serial ${a.serial}`;
}

const bytesOf = (text: string): Uint8Array => {
  const r = parseAddress(text);
  if (!r.ok) throw new RangeError(r.message);
  return r.value.bytes;
};

/**
 * The data plane's report with the IKE peers told as IKE sees them (the SA
 * lifecycle sees only their SAs, which come and go with negotiation): added,
 * removed, `changed` (an IKE field changed: restarted; or only its selectors:
 * reselected) or left alone.
 */
function ikeReport(r: ApplyReport, had: Set<string>, next: Map<string, PeerConfig>, down: string[], reselected: string[]): ApplyReport {
  const ike = (n: string) => had.has(n) || next.has(n);
  const keep = (l: string[]) => l.filter((n) => !ike(n));
  const names = [...next.keys()];
  return {
    added: [...keep(r.added), ...names.filter((n) => !had.has(n))],
    removed: [...keep(r.removed), ...down.filter((n) => !next.has(n))],
    changed: [...keep(r.changed), ...down.filter((n) => next.has(n)), ...reselected],
    unchanged: [...keep(r.unchanged), ...names.filter((n) => had.has(n) && !down.includes(n) && !reselected.includes(n))],
  };
}

interface Managed {
  peer: ManagedPeer;
  fingerprint: string;
  /** The current IKE SA as it was established: for status. */
  established?: { sa: string; at: number; proposal: string; natDetected: boolean; behindNat: boolean; peerAuth: PeerAuth };
  lastError?: string;
}

/** Refused messages are logged once per reason per this many ms (the rest counted in the line after). */
const REFUSED_LOG_MS = 10_000;
/** How long `stop` waits for the peers to answer its DELETEs. */
const STOP_WAIT_MS = 1500;
/** SPIs handed out recently, not yet (or no more) in a CHILD_SA, stay reserved this long. */
const SPI_QUARANTINE_MS = 10 * 60_000;

export class IkeRuntime {
  private dp?: DataPlane;
  /** The config running now (the data plane's own `config` is the one it started with). */
  private config?: Config;
  private stopped = false;
  private endpoint?: IkeEndpoint;
  private manager?: IkeManager;
  private transport?: IkeTransport;
  private readonly peers = new Map<string, Managed>();
  /** IKE SAs of peers removed or restarted by a reload: their late events are not the new peer's. */
  private readonly retired = new Set<string>();
  /** Inbound SPIs of the config's static SAs: never handed to IKE. */
  private staticSpis = new Set<number>();
  private readonly spis = new SpiAllocator(() => ({
    statics: this.staticSpis,
    live: new Set((this.manager?.status() ?? []).flatMap((s) => s.children)),
  }));
  private readonly log: (line: string) => void;
  private readonly onIke: (e: IkeTelemetry) => void;
  private readonly refusedLog = new Map<string, { at: number; suppressed: number }>();
  private readonly ikePortOverride: number | undefined;
  /** Fixed at start (node.ike_port is a FIXED_NODE_FIELDS field: a reload cannot change it). */
  private ikePort = 500;
  /** WESP_ESP_KEYLOG (keylog.ts): off by default; a debugging aid that writes CHILD_SA keys to a 0600 file. */
  private readonly keyLog = keyLogPath();
  /** Datagrams that came before `start` or after `stop`, and similar: dropped, counted. */
  readonly counters = new Map<string, number>();

  constructor(opts: IkeRuntimeOptions = {}) {
    this.log = opts.log ?? (() => {});
    this.onIke = opts.onIke ?? (() => {});
    this.ikePortOverride = opts.ikePort;
    if (this.keyLog) this.log(`warning: ike: ${KEYLOG_ENV} is set: CHILD_SA keys are written to ${this.keyLog} (debugging only; whoever reads it reads the traffic)`);
  }

  /** For ForwarderOptions.onHostPacket: an IKE message the data plane took off a NAT-T port. */
  readonly onHostPacket = (p: HostPacket): void => {
    const wan = this.dp?.config.node.wan[p.wanIndex];
    if (!this.transport || !wan) {
      this.counters.set("not-running", (this.counters.get("not-running") ?? 0) + 1);
      return;
    }
    const path: Path = { localAddress: wan.address.text, localPort: wan.port, remoteAddress: formatCoreAddr(p.family, p.address), remotePort: p.port };
    this.transport.receiveNatt(p.bytes, path);
  };

  /** Starts IKE for the data plane's config: sockets bound, every initiating peer connecting. */
  async start(dp: DataPlane): Promise<void> {
    this.dp = dp;
    const endpoint = new IkeEndpoint((addr) => this.configFor(addr), {
      random: (n) => new Uint8Array(randomBytes(n)),
      now: Date.now,
      allocateSpi: (peer, sameWorkerAs): number => this.spis.next(manager.spiWorker(peer, sameWorkerAs)),
    });
    const manager: IkeManager = new IkeManager(endpoint, dp.lifecycle, [], { now: Date.now, random: Math.random, send: (s) => this.transport?.apply(s), workers: dp.config.node.workers });
    manager.on("event", (e) => this.onManagerEvent(e));
    const config = dp.config;
    this.ikePort = this.ikePortOverride ?? config.node.ikePort;
    const natt = config.node.wan[0]?.port ?? 4500;
    this.transport = new IkeTransport(endpoint, {
      address: this.addresses(config),
      ports: { ike: this.ikePort, natt },
      natt: { send: (bytes, path) => this.sendNatt(bytes, path) },
      clock: manager,
      hold: () => manager.settled(),
    }, (e) => this.onIkeEvent(e));
    this.endpoint = endpoint;
    this.manager = manager;
    this.config = config;
    await this.transport.start();
    this.staticSpis = staticSpis(config);
    for (const p of config.peers) if (p.ike) this.add(config, p);
  }

  /**
   * A reload (what `wesp reload` and Ce.apply do): IKE peers removed or whose IKE
   * fields changed get a DELETE and lose their SAs, then the data plane applies
   * `config` (host/sa/lifecycle.ts), then added and changed peers start. If the
   * data plane refuses, the peers taken down start again and the error is thrown.
   */
  async apply(config: Config): Promise<ApplyReport> {
    const dp = this.need();
    const old = this.config!;
    // a node field only a restart can change: the data plane refuses the whole reload; IKE stays as it is
    if (FIXED_NODE_FIELDS.some((f) => JSON.stringify(config.node[f]) !== JSON.stringify(old.node[f]))) return dp.lifecycle.apply(config);
    const next = new Map(config.peers.filter((p) => p.ike).map((p) => [p.name, p]));
    const had = new Set(this.peers.keys());
    const down = [...this.peers.keys()].filter((n) => !next.has(n) || fingerprint(config, next.get(n)!) !== this.peers.get(n)!.fingerprint);
    const reselect = new Map<string, ReturnType<typeof childOf>>();
    for (const [n, p] of next) {
      const m = this.peers.get(n);
      const child = childOf(config, p);
      if (m && !down.includes(n) && selectorText(child) !== selectorText(m.peer.ike)) reselect.set(n, child);
    }
    for (const n of down) await this.remove(n);
    let report: ApplyReport;
    try {
      report = await dp.lifecycle.apply(config);
    } catch (e) {
      for (const n of down) this.add(old, old.peers.find((p) => p.name === n)!);
      throw e;
    }
    this.config = config;
    this.staticSpis = staticSpis(config);
    await this.transport!.start(this.addresses(config)); // the IKE port on addresses new to IKE
    for (const p of next.values()) if (!this.peers.has(p.name)) this.add(config, p);
    if (down.length) this.log(`ike: restarted or removed peers [${down.join(", ")}]`);
    // the data plane's policies already follow the new prefixes; the CHILD_SAs' selectors follow them
    for (const [n, child] of reselect) {
      const ike = this.peers.get(n)!.peer.ike;
      // in place: this object is every IKE SA's config (ctx.cfg) and what configFor answers with
      ike.localTs = child.localTs;
      ike.remoteTs = child.remoteTs;
      this.manager!.reselect(n);
    }
    const names = [...reselect.keys()];
    if (names.length) this.log(`ike: new traffic selectors for peers [${names.join(", ")}]: their IKE SAs stay${names.some((n) => this.peers.get(n)!.peer.initiate) ? "; new CHILD_SAs replace the old ones" : ""}`);
    return ikeReport(report, had, next, down, names);
  }

  /**
   * The controller says peer `name`'s CE just came up (host/agent/agent.ts):
   * if we initiate to it and have no IKE SA, try now (IkeManager.retryNow).
   */
  peerOnline(name: string): void {
    if (this.stopped || !this.manager || !this.peers.has(name)) return;
    if (this.manager.retryNow(name)) this.log(`ike: peer ${name}: its CE came up (the controller says): initiating now`);
  }

  /** Per IKE peer: the state of its IKE SA, failures and alarm, its CHILD_SAs. Times in seconds. */
  /** IKE datagrams and messages dropped or refused so far, by reason: the endpoint's, the transport's and this runtime's counts. */
  drops(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const m of [this.endpoint?.counters, this.transport?.counters, this.counters]) {
      if (m) for (const [k, v] of m) out[k] = (out[k] ?? 0) + v;
    }
    return out;
  }

  status(): IkePeerStatus[] {
    const now = Date.now();
    const secs = (ms: number | undefined) => (ms === undefined ? undefined : Math.max(0, Math.round((ms - now) / 1000)));
    const ago = (ms: number | undefined) => (ms === undefined ? undefined : Math.max(0, Math.round((now - ms) / 1000)));
    return (this.manager?.status() ?? []).map((s) => {
      const m = this.peers.get(s.name);
      const est = s.up ? m?.established : undefined;
      const st: IkePeerStatus = {
        name: s.name,
        state: s.up ? "up" : s.state ? "connecting" : s.retryAt !== undefined ? "retrying" : m?.peer.initiate ? "down" : "waiting",
        ...(s.sa ? { ikeSa: s.sa } : {}),
        ...(s.initiator !== undefined ? { role: s.initiator ? "initiator" : "responder" } : {}),
        ...(est ? { proposal: est.proposal, natDetected: est.natDetected, behindNat: est.behindNat, peerAuth: est.peerAuth, establishedSeconds: ago(est.at) } : {}),
        ...(s.up && s.ikeRekeyAt !== undefined ? { ikeRekeyInSeconds: secs(s.ikeRekeyAt) } : {}),
        ...(s.up && s.lastHeard !== undefined ? { lastHeardSeconds: ago(s.lastHeard) } : {}),
        failures: s.failures, alarm: s.alarmed,
        ...(s.retryAt !== undefined ? { retryInSeconds: secs(s.retryAt) } : {}),
        ...(m?.lastError ? { lastError: m.lastError } : {}),
        childSas: s.pairs.map((c) => ({
          spiIn: c.spiIn, spiOut: c.spiOut, mode: c.mode, ...(c.rekeyAt !== undefined ? { rekeyInSeconds: secs(c.rekeyAt) } : {}),
          ...(c.worker !== undefined ? { worker: c.worker } : {}),
        })),
      };
      return st;
    });
  }

  /** Deletes every IKE SA (RFC 7296 §1.4.1), waits a little for the answers, closes the sockets. Idempotent. */
  async stop(): Promise<void> {
    const { manager, endpoint, transport } = this;
    if (this.stopped) return;
    this.stopped = true;
    if (!manager || !endpoint || !transport) return transport?.close();
    manager.stop();
    const until = Date.now() + STOP_WAIT_MS;
    while (Date.now() < until && [...endpoint.sas.values()].some((sa) => sa.state === "deleting")) await new Promise((r) => setTimeout(r, 20));
    await manager.settled();
    transport.close();
    this.transport = undefined;
  }

  private need(): DataPlane {
    if (!this.dp || !this.manager || this.stopped) throw new Error("IKE is not running");
    return this.dp;
  }

  private add(config: Config, p: PeerConfig): void {
    const peer = managedPeer(config, p, bytesOf);
    peer.ike.ports = { ...peer.ike.ports, ike: this.ikePort };
    peer.path = { ...peer.path, localPort: this.ikePort, remotePort: this.ikePort };
    peer.ike.initialContact = true;
    const rt = retransmitFor(p.ike!.dpd);
    if (rt) peer.ike.retransmit = rt;
    this.peers.set(p.name, { peer, fingerprint: fingerprint(config, p) });
    this.manager!.addPeer(peer);
  }

  private async remove(name: string): Promise<void> {
    for (const sa of this.endpoint!.sas.values()) {
      if (sa.name !== name) continue;
      this.retired.add(sa.id);
      // removePeer closes it: an INFORMATIONAL with a Delete payload for the IKE SA (RFC 7296 §1.4.1)
      if (sa.state === "established") this.log(`ike: peer ${name}: deleting IKE SA ${sa.id} (DELETE sent: the peer was removed or its IKE fields changed)`);
    }
    this.peers.delete(name);
    await this.manager!.removePeer(name);
  }

  /** Responder side: the IKE config of the peer at `address`, if it is one. */
  private configFor(address: string) {
    const a = canonicalAddress(address);
    for (const m of this.peers.values()) if (m.peer.path.remoteAddress === a) return m.peer.ike;
    return undefined;
  }

  private addresses(config: Config): string[] {
    const used = new Set(config.peers.filter((p) => p.ike).map((p) => p.wanIndex));
    return config.node.wan.filter((_, k) => used.has(k)).map((w) => w.address.text);
  }

  private sendNatt(bytes: Uint8Array, path: Path): boolean {
    const wanIndex = this.dp!.config.node.wan.findIndex((w) => w.address.text === path.localAddress && w.port === path.localPort);
    if (wanIndex < 0) return false;
    const a = coreAddr(path.remoteAddress);
    this.dp!.sendHost({ wanIndex, family: a.family, address: a.bytes, port: path.remotePort, bytes });
    return true;
  }

  private onIkeEvent(e: IkeEvent): void {
    if (e.sa && this.retired.has(e.sa)) {
      if (e.type === "ikeSaDeleted" && e.byPeer) this.log(`ike: peer ${e.ike}: IKE SA ${e.sa} (already being deleted here) deleted by the peer`);
      return;
    }
    const m = this.peers.get(e.ike);
    const hex = (spi: number) => `0x${(spi >>> 0).toString(16).padStart(8, "0")}`;
    switch (e.type) {
      case "ikeSaEstablished":
        this.log(`ike: peer ${e.ike}: IKE SA ${e.sa} established as ${e.initiator ? "initiator" : "responder"} (${e.proposal}${e.natDetected ? ", NAT-T" : ""}${e.behindNat ? ", behind a NAT" : ""}${e.initialContact ? ", peer sent INITIAL_CONTACT" : ""}, ${authText(e.peerAuth)})`);
        if (m) {
          m.established = { sa: e.sa!, at: Date.now(), proposal: e.proposal, natDetected: e.natDetected, behindNat: e.behindNat, peerAuth: e.peerAuth };
          m.lastError = undefined;
          m.peer.ike.initialContact = false; // §2.4: only the first IKE SA after a start
        }
        break;
      case "childSaEstablished":
        this.log(`ike: peer ${e.ike}: CHILD_SA in ${hex(e.spiIn)} out ${hex(e.spiOut)} ${e.suite}${e.rekeyOf !== undefined ? ` (rekey of ${hex(e.rekeyOf)})` : ""}${e.redundant ? " redundant" : ""}`);
        if (this.keyLog) {
          try {
            appendKeyLog(this.keyLog, e);
          } catch (err) {
            this.log(`ike: ${KEYLOG_ENV}: ${(err as Error).message}`); // an I/O error: its message holds the path, never a key
          }
        }
        if (e.rekeyOf !== undefined && !e.redundant) this.onIke({ event: "child-rekey", peer: e.ike });
        if (m && e.encap !== (m.peer.ike.forceEncap ? "udp" : "raw")) this.log(`ike: peer ${e.ike}: negotiated ${e.encap} ESP, but the config carries it ${m.peer.ike.forceEncap ? "in UDP" : "raw"} (nat_t / encap)`);
        break;
      case "childSaDeleted": this.log(`ike: peer ${e.ike}: CHILD_SA ${e.spisIn.map(hex).join(", ")} deleted`); break;
      case "ikeSaRekeyed":
        this.log(`ike: peer ${e.ike}: IKE SA ${e.sa} rekeyed into ${e.newSa}`);
        this.onIke({ event: "ike-rekey", peer: e.ike });
        if (m?.established && m.established.sa === e.sa) m.established.sa = e.newSa;
        break;
      case "ikeSaDeleted": this.log(`ike: peer ${e.ike}: IKE SA ${e.sa} deleted${e.byPeer ? " by the peer" : ""}${e.why ? ` (${e.why})` : ""}`); break;
      case "failed": this.log(`ike: peer ${e.ike}: IKE SA ${e.sa ?? ""} failed: ${e.reason}: ${e.detail}`); break;
      case "childSaFailed": case "ikeRekeyFailed": this.log(`ike: peer ${e.ike}: ${e.type}: ${e.detail}`); break;
      case "refused": this.logRefused(e); break;
    }
    this.manager?.onEvent(e);
  }

  /**
   * A refused message (hostile or broken input; the endpoint counts each by reason):
   * one log line per reason per REFUSED_LOG_MS at most, so a flood cannot flood the log.
   */
  private logRefused(e: Extract<IkeEvent, { type: "refused" }>): void {
    const now = Date.now();
    const r = this.refusedLog.get(e.reason);
    if (r && now - r.at < REFUSED_LOG_MS) {
      r.suppressed++;
      return;
    }
    const more = r?.suppressed ? ` (and ${r.suppressed} more for this reason since the last line)` : "";
    this.log(`ike: refused (${e.reason})${e.ike ? ` from peer ${e.ike}` : ""}: ${e.detail.split("\n")[0]}${more}`);
    this.refusedLog.set(e.reason, { at: now, suppressed: 0 });
  }

  private onManagerEvent(e: ManagerEvent): void {
    const m = this.peers.get(e.peer);
    switch (e.type) {
      case "up":
        this.log(`ike: peer ${e.peer}: up`);
        this.onIke({ event: "up", peer: e.peer });
        break;
      case "down":
        if (m) m.lastError = e.why;
        this.log(`ike: peer ${e.peer}: down: ${e.why}`);
        this.onIke({ event: "down", peer: e.peer });
        if (e.failure) this.onIke({ event: "failure", peer: e.peer });
        break;
      case "retry":
        this.log(`ike: peer ${e.peer}: retry in ${e.inMs / 1000} s (failures in a row: ${e.failures}) at ${new Date(Date.now() + e.inMs).toISOString()}`); break;
      case "alarm":
        this.log(`alarm: ike: ${e.message}`);
        this.onIke({ event: "alarm", peer: e.peer });
        break;
      case "error": this.log(`ike: peer ${e.peer}: the data plane refused its SAs: ${e.message}`); break;
    }
  }
}

/**
 * Inbound SPIs for negotiated CHILD_SAs (Deps.allocateSpi): random, ≥ 256 (RFC 4303
 * §2.1: 1–255 are reserved), never a static SA's `spi_in`, never a live CHILD_SA's,
 * and not one handed out in the last ten minutes (its exchange may still be going,
 * or its SA on the way into the worker). Our SPI is how the core finds an inbound
 * SA: a duplicate would hand one peer's packets to another's SA. With several
 * packet workers the SPI also names its worker (SPI mod workers: the kernel
 * steers by it, net/steer_linux.ts), so `next` can be asked for a given one.
 */
export class SpiAllocator {
  private readonly recent = new Map<number, number>();

  constructor(
    private readonly taken: () => { statics: ReadonlySet<number>; live: ReadonlySet<number> },
    private readonly random: (n: number) => Uint8Array = (n) => randomBytes(n),
    private readonly now: () => number = Date.now,
  ) {}

  next(target?: { worker: number; of: number }): number {
    const now = this.now();
    const { statics, live } = this.taken();
    for (const [spi, at] of this.recent) if (now - at > SPI_QUARANTINE_MS && !live.has(spi)) this.recent.delete(spi);
    // a few thousand SAs in 2^32: a retry is rare, a thousand in a row means the random source is broken
    for (let i = 0; i < 1000; i++) {
      const b = this.random(4);
      let spi = ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
      if (target) spi = spi - (spi % target.of) + target.worker;
      if (spi < 256 || spi > 0xffffffff || statics.has(spi) || live.has(spi) || this.recent.has(spi)) continue;
      this.recent.set(spi, now);
      return spi;
    }
    throw new Error("no free SPI after 1000 random draws");
  }
}

/** Every worker's: worker i receives a static SA's spi_in + i (sa/worker_sas.ts). */
function staticSpis(config: Config): Set<number> {
  const n = config.node.workers;
  // a loop, not flatMaps of arrays: a hub's 50,000 SAs made 0.4 s of garbage before "forwarding on"
  const spis = new Set<number>();
  for (const p of config.peers) for (const s of p.sas) for (let i = 0; i < n; i++) spis.add(s.spiIn + i);
  return spis;
}

/**
 * The data plane and IKE together: what `wesp up` (cli/up.ts) and the library
 * (api/index.ts) both start. Rejects with ForwarderError (where "ike" when the
 * IKE port could not be bound; the data plane is stopped again then).
 */
export async function startWithIke(config: Config, opts: ForwarderOptions & Pick<IkeRuntimeOptions, "ikePort" | "onIke"> = {}): Promise<{ fwd: Forwarder; ike: IkeRuntime }> {
  const ike = new IkeRuntime({ log: opts.log, ikePort: opts.ikePort, onIke: opts.onIke });
  const fwd = await Forwarder.start(config, { ...opts, onHostPacket: ike.onHostPacket });
  try {
    await ike.start(fwd);
  } catch (e) {
    await ike.stop();
    await fwd.stop();
    const err = e as NodeJS.ErrnoException;
    throw new ForwarderError(`IKE port ${opts.ikePort ?? config.node.ikePort}: ${err.message}`, err.code, "ike");
  }
  return { fwd, ike };
}

/** The data plane's status with the IKE peers' (`wesp status`, Ce.status). */
export async function statusWithIke(fwd: Forwarder, ike: IkeRuntime): Promise<Status> {
  const st = await fwd.status();
  const peers = ike.status();
  return peers.length ? { ...st, ike: peers, ikeDrops: ike.drops() } : st;
}
