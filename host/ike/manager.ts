// The bridge from IKEv2 to the SA lifecycle: one IkeEndpoint's events become
// the negotiated SA lists of host/sa/lifecycle.ts (setNegotiated), and the
// lifecycle's timers and the core's needs-rekey become IKE requests.
//
//   childSaEstablished ──► the pair listed for its peer (keys handed over once)
//     with rekeyOf, as the rekey's initiator: new pair first (inbound
//       installed, then outbound switched, in one apply; RFC 7296 §2.8)
//     as the responder: new pair after the old one (inbound only) until the
//       old one's DELETE: then it is the only one, and outbound switches
//   reselect (the peer's selectors changed) ──► the IKE SA stays; the side that
//       initiates makes a CHILD_SA with the new selectors, puts it first, then
//       deletes the old ones (make before break)
//   childSaDeleted ──► the old pair removed (last, after make); a rekeyed one
//       stays listed after its successor, inbound only, for RETIRED_INBOUND_MS
//   lifetimes: CHILD_SA rekeyed at child_seconds − margin − jitter·random
//     (RFC 4301 §4.4.2.1 soft lifetime); bytes/packets and sequence
//     exhaustion come from the core as needs-rekey; the IKE SA at ike_seconds
//     (a refused IKE SA rekey tried again after retry.min); a simultaneous IKE SA
//     rekey (RFC 7296 §2.8.2) only relabels the CHILD_SAs with the surviving IKE SA
//   both ends initiating at once (two IKE SAs, one set up by each) ──► once both carry
//     a CHILD_SA, one is dropped by a rule both ends apply alike (crossedTwins)
//   failed / ikeSaDeleted ──► the peer's SAs removed; as initiator, retried
//     after retry.min, doubling up to retry.max (CE-based VPN draft §3.4);
//     after retry.alarm_after failures in a row an alarm (once, until up again)
//   an IKE SA up without its first CHILD_SA (refused in IKE_AUTH, §1.2: NO_PROPOSAL_
//     CHOSEN, TS_UNACCEPTABLE, a mode mismatch; or the data plane refusing the pair)
//     ──► a failed set-up: that IKE SA deleted (either role), a failure counted,
//     retried as above — never an IKE SA kept up that carries no traffic
//     (the CE document §5: a tunnel never black-holes). "Up again" (failures
//     and alarm reset) is a CHILD_SA in the data plane, not the IKE SA alone.
//   node.workers = N > 1 ──► one CHILD_SA per packet worker (RFC 9611 per-resource
//     SAs: the same selectors on each, so no SA's sequence number or replay window
//     has two writers): our inbound SPI names the worker (SPI mod N, the kernel
//     steers by it); each side makes CHILD_SAs for its workers that have none
//     (fill) — the IKE SA's initiator at once, the responder after FILL_DELAY_MS,
//     by when an initiator with as many workers has made them all; a rekey stays
//     on its worker; a reselect makes one new CHILD_SA per worker
//
// No sockets and no timers of its own: events come in through onEvent (the
// transport's callback), steps go out through deps.send, time is `tick(now)`.
import { EventEmitter } from "node:events";
import type { Config, IkeIdentity, Lifetime, Mode, PeerConfig } from "../config/model.ts";
import type { NegotiatedSa, SaLifecycle } from "../sa/lifecycle.ts";
import type { SaEvent } from "../sa/spec.ts";
import { certAuthOf, dnToDer, ownCertIdentity } from "./certs.ts";
import { IdType } from "./constants.ts";
import type { IkeEndpoint } from "./endpoint.ts";
import { lowestNonceIsOurs } from "./child_sa.ts";
import type { IkeSa } from "./ike_sa.ts";
import { parseProposal, type ProposalSpec } from "./proposals.ts";
import { hostTs, tsFromCidrs, within } from "./ts.ts";
import { localSelectors } from "../config/selectors.ts";
import { workerOfSpi } from "../sa/worker_sas.ts";
import type { ChildMode, ChildSaEstablished, Identity, IkeEvent, IkeSaConfig, Path, Step } from "./types.ts";

/** What the manager keeps up for one peer. Times in seconds, as the config has them. */
export interface ManagedPeer {
  name: string;
  ike: IkeSaConfig;
  /** Where an initiation goes: our address and IKE port, the peer's. */
  path: Path;
  initiate: boolean;
  lifetime: { ikeSeconds: number; childSeconds: number; childBytes?: number; childPackets?: number; rekeyMargin: number; rekeyJitter: number };
  retry: { min: number; max: number; alarmAfter: number };
}

export interface ManagerDeps {
  /** Milliseconds, the same clock as the endpoint's Deps.now. */
  now(): number;
  /** Uniform in [0, 1): the rekey jitter. */
  random(): number;
  /** Puts a step's datagrams on the network (IkeTransport.apply); the events in it come back through onEvent. */
  send(step: Step): void;
  /** Packet workers (node.workers, default 1): the manager keeps a CHILD_SA with every peer on each. */
  workers?: number;
}

export type ManagerEvent =
  | { type: "up"; peer: string; sa: string }
  /** `failure`: a set-up or an IKE SA failed (counts toward the alarm); else deleted by either side. */
  | { type: "down"; peer: string; why: string; failure: boolean }
  | { type: "retry"; peer: string; failures: number; inMs: number }
  | { type: "alarm"; peer: string; failures: number; message: string }
  /** The lifecycle refused a list (the worker had no room, …): the SAs stay as they were. */
  | { type: "error"; peer: string; message: string };

interface Child {
  /** Key-less once handed over. */
  sa: NegotiatedSa;
  /** The IKE SA it belongs to ("SPIi_SPIr"), followed across IKE SA rekeys. */
  ikeSa: string;
  softAt: number;
  rekeying: boolean;
  /** As negotiated (RFC 7296 §1.3.1): the peer config's ESP mode, shown by `wesp status`. */
  mode: ChildMode;
}

/**
 * How long a CHILD_SA deleted in favour of its successor (a rekey, §2.8) stays
 * in the data plane after the DELETE exchange, listed last so that only inbound
 * uses it. The peer switched its outbound SA when it sent or got the DELETE;
 * datagrams it sealed with the old SA just before are still on the wire, in
 * the socket or in a worker's batch when the exchange ends, and would be lost
 * (seen: a few per rekey at 300 datagrams/s). strongSwan waits likewise
 * (`charon.delete_rekeyed_delay`, 5 s). The replay window still holds.
 */
export const RETIRED_INBOUND_MS = 2000;

/**
 * How long the IKE SA's responder waits before making CHILD_SAs for its own
 * workers that hold none (RFC 9611 leaves who makes them to the peers): the
 * initiator makes one per worker of its own at once, so between two ends with
 * as many workers the responder makes none, and only a responder with more
 * workers than its initiator fills the rest. A second early would double them.
 */
export const FILL_DELAY_MS = 1000;

interface PeerState {
  peer: ManagedPeer;
  /** Index 0 is used outbound; all are accepted inbound. */
  children: Child[];
  /** Rekeyed CHILD_SAs whose DELETE is done, kept inbound until `until` (RETIRED_INBOUND_MS); listed after `children`. */
  retiring: { child: Child; until: number }[];
  current?: IkeSa;
  failures: number;
  alarmed: boolean;
  retryAt?: number;
  ikeRekeyAt?: number;
  /** IKE SAs we gave up as failed set-ups and are deleting: their deletion is not news. */
  given: Set<string>;
  /** Whether the lifecycle holds a non-empty list of ours for this peer (the last one it accepted). */
  installed: boolean;
  /** New selectors to bring into a CHILD_SA (reselect): from this time on (ms). */
  reselectAt?: number;
  /** By packet worker, the inbound SPIs of the CHILD_SAs a reselect's new one replaces, while its CREATE_CHILD_SA runs. */
  replacing?: Map<number, number[]>;
  /** Workers whose CHILD_SA we asked for (fill), while the CREATE_CHILD_SA runs. */
  filling: Set<number>;
  /** From when workers without a CHILD_SA get one (ms). */
  fillAt?: number;
}

export interface PeerStatus {
  name: string;
  up: boolean;
  sa?: string;
  /** The current IKE SA's state (ike_sa.ts) and whether we initiated it. */
  state?: string;
  initiator?: boolean;
  /** When the peer last sent an authenticated message (ms, the deps clock): its last sign of life. */
  lastHeard?: number;
  /** When the IKE SA is rekeyed next (ms). */
  ikeRekeyAt?: number;
  failures: number;
  alarmed: boolean;
  retryAt?: number;
  /** Our inbound SPIs, the outbound one's pair first. */
  children: number[];
  /** The same CHILD_SAs with the peer's SPI, when each is rekeyed (ms; undefined while rekeying) and, with several, its packet worker. */
  pairs: { spiIn: number; spiOut: number; mode: ChildMode; rekeyAt?: number; worker?: number }[];
}

export class IkeManager extends EventEmitter<{ event: [ManagerEvent] }> {
  private readonly peers = new Map<string, PeerState>();
  private applying: Promise<unknown> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly endpoint: IkeEndpoint,
    private readonly lifecycle: SaLifecycle,
    peers: readonly ManagedPeer[],
    private readonly deps: ManagerDeps,
  ) {
    super();
    for (const p of peers) this.peers.set(p.name, newState(p));
    lifecycle.on("needs-rekey", (e) => this.needsRekey(e));
  }

  /** Brings every initiating peer up (the CE document's "permanent" tunnels). */
  start(): void {
    for (const s of this.peers.values()) if (s.peer.initiate) this.connect(s);
  }

  /** Deletes every IKE SA (and with them the CHILD_SAs) and retries nothing more. */
  stop(): void {
    this.stopped = true;
    for (const s of this.peers.values()) if (s.current?.state === "established") this.deps.send(s.current.close());
  }

  /** Resolves once every list handed to the lifecycle so far is applied (or refused). */
  settled(): Promise<void> {
    return this.applying.then(() => undefined);
  }

  status(): PeerStatus[] {
    return [...this.peers.values()].map((s) => {
      const cur = s.current;
      return {
        name: s.peer.name, up: cur?.state === "established",
        ...(cur ? { sa: cur.id, state: cur.state, initiator: cur.initiatorSide(), lastHeard: cur.lastHeardAt } : {}),
        ...(s.ikeRekeyAt !== undefined ? { ikeRekeyAt: s.ikeRekeyAt } : {}),
        failures: s.failures, alarmed: s.alarmed, ...(s.retryAt !== undefined ? { retryAt: s.retryAt } : {}),
        children: s.children.map((c) => c.sa.spiIn),
        pairs: s.children.map((c) => ({
          spiIn: c.sa.spiIn, spiOut: c.sa.spiOut, mode: c.mode, ...(c.rekeying ? {} : { rekeyAt: c.softAt }),
          ...(this.workers > 1 ? { worker: this.workerOf(c.sa.spiIn) } : {}),
        })),
      };
    });
  }

  private get workers(): number {
    return this.deps.workers ?? 1;
  }

  private workerOf(spiIn: number): number {
    return workerOfSpi(spiIn, this.workers);
  }

  /**
   * The packet worker a new inbound SPI of peer `name` is for (Deps.allocateSpi;
   * none with one worker): `sameWorkerAs`'s (a rekeyed CHILD_SA's SPI, or a worker
   * index), else the one with the fewest of the peer's CHILD_SAs (the lowest on a tie).
   */
  spiWorker(name: string, sameWorkerAs?: number): { worker: number; of: number } | undefined {
    const of = this.workers;
    if (of <= 1) return undefined;
    if (sameWorkerAs !== undefined) return { worker: workerOfSpi(sameWorkerAs, of), of };
    const count = new Array<number>(of).fill(0);
    for (const c of this.peers.get(name)?.children ?? []) count[this.workerOf(c.sa.spiIn)]++;
    return { worker: count.indexOf(Math.min(...count)), of };
  }

  /** A peer added while running (a reload): brought up at once if it initiates. */
  addPeer(p: ManagedPeer): void {
    if (this.peers.has(p.name)) throw new RangeError(`peer ${p.name}: already managed`);
    const s = newState(p);
    this.peers.set(p.name, s);
    if (p.initiate) this.connect(s);
  }

  /**
   * A peer going away (a reload removed or changed it): every IKE SA of its name is
   * deleted — an INFORMATIONAL DELETE for an established one (§1.4.1), the others
   * forgotten — and its CHILD_SAs leave the worker. Later events of those SAs are
   * not its any more. Resolves once the worker has dropped the SAs.
   */
  async removePeer(name: string): Promise<void> {
    const s = this.peers.get(name);
    if (!s) return;
    this.peers.delete(name);
    for (const sa of [...this.endpoint.sas.values()]) {
      if (sa.name !== name || sa.state === "deleted" || sa.state === "failed") continue;
      this.deps.send(sa.state === "established" ? sa.close() : sa.abandon());
    }
    if (s.children.length === 0) return;
    s.children = [];
    s.retiring = [];
    await this.lifecycle.setNegotiated(name, []).catch((err: Error) => this.emit("event", { type: "error", peer: name, message: err.message }));
  }

  /**
   * Word that peer `name`'s end just came up (its controller saw it connect:
   * host/agent/agent.ts "peer-online"): a peer we initiate to and have no IKE
   * SA with is tried at once. An attempt still waiting for its IKE_SA_INIT
   * answer went to an end not yet running: it is dropped quietly (no failure
   * counted) for a new one; so is a retry waiting out its backoff. Returns
   * whether an attempt started.
   */
  retryNow(name: string): boolean {
    const s = this.peers.get(name);
    if (!s || this.stopped || !s.peer.initiate) return false;
    const cur = s.current;
    // answered (IKE_AUTH under way), up, or being deleted: leave it
    if (cur && cur.state !== "init-sent" && cur.state !== "deleted" && cur.state !== "failed") return false;
    if (cur?.state === "init-sent") {
      s.given.add(cur.id);
      this.deps.send(cur.abandon());
    }
    s.current = undefined;
    s.retryAt = undefined;
    this.connect(s);
    return true;
  }

  /**
   * The peer's traffic selectors changed (a reload, or a controller adding a
   * site whose traffic goes through this tunnel) and `peer.ike` holds the new
   * ones. The IKE SA stays — a restart would stop the tunnel's traffic. A
   * rekey keeps a CHILD_SA's selectors (RFC 7296 §2.8), so the side that
   * initiates makes another CHILD_SA with the new ones (§1.3.1), puts it first
   * once it is in the data plane and then deletes the old ones, whose inbound
   * halves retire (RETIRED_INBOUND_MS): make before break. The data plane's
   * policies follow the config at once (the lifecycle); this is what the
   * CHILD_SA says to the peer. The other side answers (narrowing to its own
   * selectors, §2.9, should its config lag: then the new CHILD_SA does not
   * cover ours and we try again after retry.min).
   */
  reselect(name: string): void {
    const s = this.peers.get(name);
    if (!s || this.stopped || !s.peer.initiate) return;
    s.reselectAt = this.deps.now();
    this.tryReselect(s);
  }

  private tryReselect(s: PeerState): void {
    const cur = s.current;
    if (s.reselectAt === undefined || this.deps.now() < s.reselectAt || s.replacing) return;
    // no IKE SA up: the next one's first CHILD_SA carries the new selectors
    if (cur?.state !== "established") return void (s.reselectAt = undefined);
    const old = s.children.filter((c) => c.ikeSa === cur.id).map((c) => c.sa.spiIn);
    if (old.length === 0) return void (s.reselectAt = undefined);
    s.reselectAt = undefined;
    // one new CHILD_SA per worker, each replacing that worker's
    const replacing = new Map<number, number[]>();
    for (const spi of old) {
      const w = this.workerOf(spi);
      replacing.set(w, [...(replacing.get(w) ?? []), spi]);
    }
    s.replacing = replacing;
    for (const w of replacing.keys()) this.deps.send(cur.createChild(this.workers > 1 ? w : undefined));
  }

  /** One event of the endpoint (the transport's callback). */
  onEvent(e: IkeEvent): void {
    const s = this.peers.get(e.ike);
    if (!s) return;
    switch (e.type) {
      case "ikeSaEstablished": return this.established(s, e.sa!);
      case "ikeSaRekeyed": {
        for (const c of s.children) if (c.ikeSa === e.sa) c.ikeSa = e.newSa;
        if (s.current?.id === e.sa) {
          s.current = this.findSa((sa) => sa.id === e.newSa) ?? s.current;
          s.ikeRekeyAt = this.softAt(s.peer.lifetime.ikeSeconds, s.peer);
        }
        return;
      }
      case "childSaEstablished": return this.childUp(s, e);
      case "childSaDeleted": {
        const gone = s.children.filter((c) => e.spisIn.includes(c.sa.spiIn));
        if (gone.length === 0) return;
        s.children = s.children.filter((c) => !gone.includes(c));
        // replaced by a newer pair (not lost by the peer: §2.25 CHILD_SA_NOT_FOUND): its inbound half stays a moment
        if (e.why !== "not-found" && s.children.length) {
          const until = this.deps.now() + RETIRED_INBOUND_MS;
          for (const child of gone) s.retiring.push({ child, until });
        }
        this.push(s);
        this.scheduleFill(s, FILL_DELAY_MS);
        return;
      }
      case "childSaFailed": {
        // the first CHILD_SA of the current IKE SA refused (in IKE_AUTH): the set-up failed
        const cur = s.current;
        if (cur && e.sa === cur.id && cur.state === "established" && !s.children.some((c) => c.ikeSa === cur.id)) {
          return this.failSetup(s, cur, `no CHILD_SA: ${e.detail}`);
        }
        // we refused the peer's request: its business to try again; ours (a rekey crossing it) is still outstanding
        if (e.peerRequest) return;
        // our reselect's CHILD_SA refused: the old ones carry on; again after retry.min
        if (e.rekeyOf === undefined && s.replacing) {
          s.replacing = undefined;
          s.reselectAt = this.deps.now() + s.peer.retry.min * 1000;
          return;
        }
        // a worker's CHILD_SA refused (the peer may cap them, RFC 9611 §2.1 TS_MAX_QUEUE): again after retry.min
        if (e.rekeyOf === undefined && s.filling.size) {
          s.filling.clear();
          s.fillAt = this.deps.now() + s.peer.retry.min * 1000;
          return;
        }
        // a rekey refused: try again after retry.min (the old pair keeps working until its hard lifetime);
        // only that CHILD_SA's — another one's rekey may still be outstanding
        for (const c of s.children) {
          if (c.rekeying && (e.rekeyOf === undefined || e.rekeyOf === c.sa.spiIn)) (c.rekeying = false, c.softAt = this.deps.now() + s.peer.retry.min * 1000);
        }
        return;
      }
      case "ikeRekeyFailed":
        if (e.peerRequest) return; // we refused the peer's rekey: not a failure of ours, nothing to retry
        // our rekey refused (TEMPORARY_FAILURE across another exchange, §2.25): again after retry.min
        if (s.current?.id === e.sa && s.current?.state === "established" && s.ikeRekeyAt === undefined) s.ikeRekeyAt = this.deps.now() + s.peer.retry.min * 1000;
        return;
      case "ikeSaDeleted":
        // "rekeyed": its CHILD_SAs went over to the new IKE SA; "redundant": it never had any (§2.8.2)
        if (e.why === "rekeyed" || e.why === "redundant") return;
        this.dropChildrenOf(s, e.sa);
        if (e.sa !== undefined && s.given.delete(e.sa)) return;
        if (this.isCurrent(s, e.sa)) this.down(s, e.byPeer ? `deleted by the peer${e.why ? ` (${e.why})` : ""}` : "deleted", false);
        return;
      case "failed":
        this.dropChildrenOf(s, e.sa);
        if (e.sa !== undefined && s.given.delete(e.sa)) return;
        if (this.isCurrent(s, e.sa)) this.down(s, `${e.reason}: ${e.detail}`, true);
        return;
    }
  }

  /** Retries, rekeys due by time. */
  tick(now: number): void {
    for (const s of this.peers.values()) {
      if (s.retryAt !== undefined && now >= s.retryAt) {
        s.retryAt = undefined;
        this.connect(s);
      }
      if (s.current?.state === "established" && s.ikeRekeyAt !== undefined && now >= s.ikeRekeyAt) {
        s.ikeRekeyAt = undefined;
        this.deps.send(s.current.rekeyIke());
      }
      for (const c of s.children) if (!c.rekeying && now >= c.softAt) this.rekey(s, c);
      if (s.reselectAt !== undefined && now >= s.reselectAt) this.tryReselect(s);
      if (s.fillAt !== undefined && now >= s.fillAt) this.fill(s);
      if (s.retiring.some((r) => now >= r.until)) {
        s.retiring = s.retiring.filter((r) => now < r.until);
        this.push(s);
      }
    }
  }

  /** The earliest time `tick` has work, or undefined. */
  get nextTimeout(): number | undefined {
    const ts: number[] = [];
    for (const s of this.peers.values()) {
      if (s.retryAt !== undefined) ts.push(s.retryAt);
      if (s.ikeRekeyAt !== undefined) ts.push(s.ikeRekeyAt);
      for (const c of s.children) if (!c.rekeying) ts.push(c.softAt);
      for (const r of s.retiring) ts.push(r.until);
      if (s.reselectAt !== undefined) ts.push(s.reselectAt);
      if (s.fillAt !== undefined) ts.push(s.fillAt);
    }
    return ts.length ? Math.min(...ts) : undefined;
  }

  private connect(s: PeerState): void {
    if (this.stopped) return;
    const r = this.endpoint.initiate(s.peer.ike, s.peer.path);
    s.current = r.sa;
    this.deps.send(r.step);
  }

  private findSa(f: (sa: IkeSa) => boolean): IkeSa | undefined {
    return [...this.endpoint.sas.values()].find(f);
  }

  /** Whether an event's IKE SA is the peer's current one (being set up or up), or the peer has none in hand. */
  private isCurrent(s: PeerState, sa: string | undefined): boolean {
    const cur = s.current;
    // the SPIr half of an id is zero until the responder chose one: match an SA in setup by SPIi
    return !cur || sa === undefined || sa === cur.id || sa.startsWith(`${cur.spiI}_`);
  }

  private dropChildrenOf(s: PeerState, sa: string | undefined): void {
    const keep = s.children.filter((c) => c.ikeSa !== sa);
    if (keep.length === s.children.length) return;
    s.children = keep;
    s.retiring = s.retiring.filter((r) => r.child.ikeSa !== sa);
    this.push(s);
    this.scheduleFill(s, FILL_DELAY_MS);
  }

  /**
   * Fill (RFC 9611): with several packet workers, workers without a CHILD_SA
   * of the peer get one from `delay` ms on (an earlier time already set
   * stays). Needs a CHILD_SA up already: the first comes with IKE_AUTH.
   */
  private scheduleFill(s: PeerState, delay: number): void {
    if (this.workers <= 1 || s.children.length === 0) return;
    const at = this.deps.now() + delay;
    if (s.fillAt === undefined || at < s.fillAt) s.fillAt = at;
    this.fill(s);
  }

  private fill(s: PeerState): void {
    const cur = s.current;
    if (s.fillAt === undefined || this.deps.now() < s.fillAt || this.stopped) return;
    // the IKE SA down: its next one fills again; a reselect under way: after it
    if (cur?.state !== "established" || s.replacing || s.children.length === 0) return void (s.fillAt = undefined);
    s.fillAt = undefined;
    const held = new Set(s.children.map((c) => this.workerOf(c.sa.spiIn)));
    for (let w = 0; w < this.workers; w++) {
      if (held.has(w) || s.filling.has(w)) continue;
      s.filling.add(w);
      this.deps.send(cur.createChild(w));
    }
  }

  private established(s: PeerState, sa: string): void {
    s.current = this.findSa((x) => x.id === sa) ?? s.current;
    s.retryAt = undefined;
    s.ikeRekeyAt = this.softAt(s.peer.lifetime.ikeSeconds, s.peer);
    this.emit("event", { type: "up", peer: s.peer.name, sa });
  }

  /**
   * An IKE SA that is up but got no CHILD_SA: deleted (§1.4.1) by whichever side
   * finds out, and counted as a failed attempt; the initiating side retries.
   */
  private failSetup(s: PeerState, sa: IkeSa, why: string): void {
    s.given.add(sa.id);
    this.dropChildrenOf(s, sa.id);
    this.deps.send(sa.close());
    this.down(s, why, true);
  }

  private childUp(s: PeerState, e: ChildSaEstablished & { sa?: string }): void {
    const lt = s.peer.lifetime;
    const hard: Lifetime = { seconds: lt.childSeconds, ...(lt.childBytes ? { bytes: lt.childBytes } : {}), ...(lt.childPackets ? { packets: lt.childPackets } : {}) };
    const sa: NegotiatedSa = {
      spiIn: e.spiIn, spiOut: e.spiOut, suite: e.suite, esn: e.esn, lifetime: hard,
      keysIn: { key: e.keyIn, ...(e.authKeyIn ? { authKey: e.authKeyIn } : {}) },
      keysOut: { key: e.keyOut, ...(e.authKeyOut ? { authKey: e.authKeyOut } : {}) },
    };
    const child: Child = { sa, ikeSa: e.sa ?? "", softAt: this.softAt(lt.childSeconds, s.peer), rekeying: false, mode: e.mode };
    const old = e.rekeyOf === undefined ? undefined : s.children.find((c) => c.sa.spiIn === e.rekeyOf);
    if (old) old.rekeying = true; // replaced: its DELETE follows
    const worker = this.workerOf(e.spiIn);
    if (!old && e.initiator && s.replacing?.has(worker)) return this.reselected(s, child, e, worker);
    if (!old && e.initiator) s.filling.delete(worker);
    // §2.8: the rekey's initiator may send on the new pair once it has the answer; the responder
    // keeps sending on the old one until the DELETE, so the peer's new inbound SA is surely in place.
    // §2.8.1: a pair made redundant by a simultaneous rekey is deleted at once by us: never sent on.
    if (old && e.initiator && !e.redundant) s.children.unshift(child);
    else s.children.push(child);
    const twins = old ? undefined : this.crossedTwins(s, child);
    if (twins) this.dropTwin(s, twins);
    else this.push(s);
    delete sa.keysIn;
    delete sa.keysOut;
    // the initiator of the IKE SA makes its workers' CHILD_SAs at once, the responder only if they still lack one
    if (!old) this.scheduleFill(s, s.current?.initiatorSide() ? 0 : FILL_DELAY_MS);
  }

  /**
   * Our reselect's CHILD_SA is up: first in the list (the peer installed it
   * inbound when it answered, so we may send on it, as a rekey's initiator
   * does, §2.8), then, once the data plane holds it, the DELETEs of the ones
   * it replaces. If the peer narrowed it (§2.9) short of our new selectors,
   * another try after retry.min.
   */
  private reselected(s: PeerState, child: Child, e: ChildSaEstablished & { sa?: string }, worker: number): void {
    const doomed = s.replacing!.get(worker)!;
    s.replacing!.delete(worker);
    if (s.replacing!.size === 0) s.replacing = undefined;
    s.children.unshift(child);
    const applied = this.push(s);
    delete child.sa.keysIn;
    delete child.sa.keysOut;
    if (!within(s.peer.ike.localTs, e.tsLocal) || !within(s.peer.ike.remoteTs, e.tsRemote)) s.reselectAt = this.deps.now() + s.peer.retry.min * 1000;
    const sa = this.findSa((x) => x.id === child.ikeSa);
    // the old CHILD_SAs go only once the new one is in the data plane (refused: they carry on)
    void applied.then((ok) => {
      if (!ok || sa?.state !== "established") return;
      for (const spi of doomed) if (sa.childSpis.includes(spi)) this.deps.send(sa.deleteChild(spi));
    });
  }

  /**
   * Both ends initiated at once: `fresh` is the first CHILD_SA of its IKE SA, and another IKE
   * SA, set up by an IKE_SA_INIT the other end started, is up with the same peer and carries
   * a CHILD_SA. Returns [the one to drop, the one to keep]. The rule is ours (RFC 7296 has
   * none for this): §2.8.1's for redundant SAs applied to the IKE_SA_INIT nonces, so both
   * ends pick alike without a word: the IKE SA whose IKE_SA_INIT holds the lowest of the
   * four nonces goes. Deleted by its responder, which initiated the kept one and so knows
   * that the peer holds the kept one's pair (it answered that IKE_AUTH) — as a CHILD_SA
   * rekey's initiator knows it of the new pair (§2.8) — and can move outbound there first.
   */
  private crossedTwins(s: PeerState, fresh: Child): [IkeSa, IkeSa] | undefined {
    const mine = this.findSa((x) => x.id === fresh.ikeSa);
    if (!mine?.ctx.msg1 || s.children.some((c) => c !== fresh && c.ikeSa === fresh.ikeSa)) return undefined;
    const twin = this.findSa((x) => x !== mine && x.name === mine.name && x.state === "established" && !x.successor && x.ctx.msg1 !== undefined &&
      x.initiatorSide() !== mine.initiatorSide() && s.children.some((c) => c.ikeSa === x.id));
    if (!twin) return undefined;
    return lowestNonceIsOurs([mine.ctx.ni!, mine.ctx.nr!], [twin.ctx.ni!, twin.ctx.nr!]) ? [mine, twin] : [twin, mine];
  }

  /**
   * Keeps `keep` and drops `drop` (crossedTwins); the dropped one's deletion is no news. Its
   * responder puts the kept IKE SA's CHILD_SAs first (outbound moves there) and sends the
   * DELETE once that is applied; its initiator changes nothing: the DELETE takes the dropped
   * pair away and outbound falls to the kept one, which the deleting end holds.
   */
  private dropTwin(s: PeerState, [drop, keep]: [IkeSa, IkeSa]): void {
    s.current = keep;
    s.given.add(drop.id);
    if (drop.initiatorSide()) return void this.push(s);
    s.children = [...s.children.filter((c) => c.ikeSa === keep.id), ...s.children.filter((c) => c.ikeSa !== keep.id)];
    this.push(s);
    this.applying = this.applying.then(() => this.deps.send(drop.close()));
  }

  /**
   * Hands the peer's list to the lifecycle (which copies the keys and wipes the
   * event's); resolves to whether the data plane took it.
   */
  private push(s: PeerState): Promise<boolean> {
    const name = s.peer.name;
    // nothing retires beside an empty list: the peer is down, its SAs all go
    if (s.children.length === 0) s.retiring = [];
    const list = [...s.children, ...s.retiring.map((r) => r.child)].map((c) => ({ ...c.sa }));
    const ikeSas = new Set(s.children.map((c) => c.ikeSa));
    const applied = this.lifecycle.setNegotiated(name, list).then(
      () => {
        s.installed = list.length > 0;
        // up again once a pair is in the data plane, not when the IKE SA alone is (failures counted until here)
        if (s.installed) (s.failures = 0, s.alarmed = false);
        return true;
      },
      (err: Error) => {
        this.emit("event", { type: "error", peer: name, message: err.message });
        // the peer's first pair refused: nothing carries its traffic, so the set-up failed
        const cur = s.current;
        if (this.peers.get(name) === s && !s.installed && cur?.state === "established" && ikeSas.has(cur.id)) {
          this.failSetup(s, cur, `no CHILD_SA: the data plane refused it: ${err.message}`);
        }
        return false;
      },
    );
    this.applying = applied;
    return applied;
  }

  private down(s: PeerState, why: string, failure: boolean): void {
    s.current = undefined;
    s.ikeRekeyAt = undefined;
    // a reselect in hand ends with its IKE SA: the next one's first CHILD_SA has the selectors
    s.replacing = undefined;
    s.reselectAt = undefined;
    s.filling.clear();
    s.fillAt = undefined;
    this.emit("event", { type: "down", peer: s.peer.name, why, failure });
    const r = s.peer.retry;
    if (failure) {
      s.failures++;
      if (s.failures >= r.alarmAfter && !s.alarmed) {
        s.alarmed = true;
        this.emit("event", { type: "alarm", peer: s.peer.name, failures: s.failures, message: `peer ${s.peer.name}: ${s.failures} failed attempts in a row (last: ${why}); a person should look` });
      }
    }
    if (!s.peer.initiate || this.stopped) return;
    // first retry after min, then min·2, min·4, … up to max (CE-based VPN draft §3.4)
    const inMs = Math.min(r.max, r.min * 2 ** Math.max(0, s.failures - 1)) * 1000;
    s.retryAt = this.deps.now() + inMs;
    this.emit("event", { type: "retry", peer: s.peer.name, failures: s.failures, inMs });
  }

  /** Soft lifetime: `hard` less the margin and a random part of the jitter, never below half of it. */
  private softAt(hard: number, p: ManagedPeer): number {
    const soft = Math.max(hard / 2, hard - p.lifetime.rekeyMargin - this.deps.random() * p.lifetime.rekeyJitter);
    return this.deps.now() + soft * 1000;
  }

  private needsRekey(e: Extract<SaEvent, { event: "needs-rekey" }>): void {
    const s = this.peers.get(e.peer);
    const c = s?.children.find((x) => (e.dir === "in" ? x.sa.spiIn : x.sa.spiOut) === e.spi);
    if (s && c && !c.rekeying) this.rekey(s, c);
  }

  private rekey(s: PeerState, c: Child): void {
    const sa = this.findSa((x) => x.id === c.ikeSa);
    if (sa?.state !== "established" || !sa.childSpis.includes(c.sa.spiIn)) return;
    c.rekeying = true;
    this.deps.send(sa.rekeyChild(c.sa.spiIn));
  }
}

function newState(peer: ManagedPeer): PeerState {
  return { peer, children: [], retiring: [], failures: 0, alarmed: false, given: new Set(), installed: false, filling: new Set() };
}

// --- from the config ---------------------------------------------------------

/** ID payload contents of a configured identity (§3.5). DN is refused by config/semantic.ts. */
export function identityOf(id: IkeIdentity, bytesOf: (text: string) => Uint8Array): Identity {
  switch (id.type) {
    case "ipv4": return { idType: IdType.IPV4_ADDR, data: bytesOf(id.value) };
    case "ipv6": return { idType: IdType.IPV6_ADDR, data: bytesOf(id.value) };
    case "fqdn": return { idType: IdType.FQDN, data: new TextEncoder().encode(id.value) };
    case "rfc822": return { idType: IdType.RFC822_ADDR, data: new TextEncoder().encode(id.value) };
    case "dn": return { idType: IdType.DER_ASN1_DN, data: dnToDer(id.value) };
  }
}

function proposals(texts: readonly string[], p: "ike" | "esp"): ProposalSpec[] {
  return texts.map((t) => {
    const r = parseProposal(t, p);
    if (!r.ok) throw new RangeError(r.message);
    return r.spec;
  });
}

/** The next-layer protocols a transport-mode virtual link carries (IANA: IPv4 4, IPv6 41, GRE 47). */
const LINK_PROTOCOLS: Partial<Record<Mode, number[]>> = { "transport-ipip": [4, 41], "transport-gre": [47] };

/**
 * The CHILD_SA's mode and traffic selectors for a peer: tunnel mode between the
 * config's prefixes; for transport-ipip / transport-gre, transport mode between
 * the two WAN addresses, restricted to the link's protocols (ts.ts hostTs) so the
 * SA carries the virtual link and nothing else the two hosts exchange.
 */
export function childOf(config: Config, p: PeerConfig): Pick<IkeSaConfig, "mode" | "localTs" | "remoteTs"> {
  const link = LINK_PROTOCOLS[p.mode];
  if (!link) return { mode: "tunnel", localTs: tsFromCidrs(localSelectors(config, p).map((x) => x.text)), remoteTs: tsFromCidrs(p.prefixes.map((x) => x.text)) };
  return { mode: "transport", localTs: hostTs(config.node.wan[p.wanIndex].address.bytes, link), remoteTs: hostTs(p.address.bytes, link) };
}

/**
 * The managed form of a validated config's IKE peer. ESP over UDP exactly when
 * the peer's config says so (nat_t), so the data plane's carrier and IKE agree;
 * IKE itself on node.ike_port (500 by default, ours and the peer's) and the WAN port's NAT-T port.
 */
export function managedPeer(config: Config, p: PeerConfig, bytesOf: (text: string) => Uint8Array): ManagedPeer {
  const ike = p.ike!;
  const wan = config.node.wan[p.wanIndex];
  const lt = ike.lifetime;
  return {
    name: p.name,
    ike: {
      name: p.name,
      localId: ownCertIdentity(ike.certs?.chain[0], identityOf(ike.localId, bytesOf)),
      remoteId: identityOf(ike.remoteId, bytesOf),
      psk: ike.psk,
      ...(ike.certs ? { certs: certAuthOf(ike.certs) } : {}),
      fragmentSize: ike.fragmentSize,
      ikeProposals: proposals(ike.proposals.ike, "ike"),
      espProposals: proposals(ike.proposals.esp, "esp"),
      ...childOf(config, p),
      lifetime: { seconds: lt.childSeconds },
      ports: { ike: config.node.ikePort, natt: wan.port },
      forceEncap: p.encap === "udp",
      dpdSeconds: ike.dpd,
      keepaliveSeconds: p.keepalive,
    },
    path: { localAddress: wan.address.text, localPort: config.node.ikePort, remoteAddress: p.address.text, remotePort: config.node.ikePort },
    initiate: ike.initiate,
    lifetime: lt,
    retry: ike.retry,
  };
}
