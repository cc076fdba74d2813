// The worker's half of the SA lifecycle: applies a desired set of peers
// (spec.ts) to its core, atomically with respect to packets (one synchronous
// call between batches), and keeps the Provisioned view the pipeline and
// status read. Make before break (RFC 4301 §4.4.2.1 rekey, and the config's
// documented procedure): new inbound SAs first, then the policies switch to
// the new outbound SA, then the SAs that left are removed. An SA whose
// identity (direction, SPI, key id) is unchanged is not touched: it keeps
// its sequence number, replay window, counters and its peer's learned NAT
// address. A peer whose remote address or port alone changed keeps its SAs:
// they are moved in place (movePeer) before the rest of the update.
//
// Per peer (peer id ≥ 1; 0 stays unused so a zeroed descriptor names none):
//   ESP modes: outbound SA = sas[0]; inbound SAs = every entry of sas.
//   plain ipip / gre: one outbound and one inbound SA of suite "none".
//   SPD: for every remote prefix R and local selector L of R's family
//   (node.local_prefixes, or the whole family when none is listed):
//   protect L -> R through the outbound SA, peerId = the peer — which also
//   serves the inbound check of RFC 4301 §5.2.
import type { Core, Counters, Mode as CoreMode, SaParams } from "../core/core.ts";
import { SUITES } from "../config/suites.ts";
import type { InSa, OutSa, PeerRuntime, Provisioned } from "../pipeline/provision.ts";
import { SeqStateError, type DurableParams, type Resume, type SeqStore } from "./seq_store.ts";
import { installEvent, installRows, moved, sameTunnel, type EventBatch, type KeyMaterial, type PeerSpec, type SaEvent, type SaSpec } from "./spec.ts";

/** A first reservation made in an apply's batch, with the SA and parameters it was made for. */
export interface Prepared {
  sa: SaSpec;
  dp: DurableParams;
  res: Resume | SeqStateError;
}

/**
 * One direction's first reservations of an apply, in the order `check`
 * listed their SAs — the order the apply adds them in, so each SA finds its
 * own at the cursor (no map keyed by SA, 100,000 entries at a hub's start).
 * Should an SA ever come out of that order, the rest go into a map.
 */
export class PreparedQueue {
  private at = 0;
  private rest?: Map<SaSpec, Prepared>;
  /** Taken entries are let go (undefined): their Resume need not outlive its SA's install. */
  private readonly list: (Prepared | undefined)[];
  constructor(list: Prepared[]) {
    this.list = list;
  }

  /** The reservation made for `s`, once; undefined if none was (it prepares on its own). */
  take(s: SaSpec): Prepared | undefined {
    if (!this.rest) {
      const m = this.list[this.at];
      if (m !== undefined && m.sa === s) {
        this.list[this.at++] = undefined;
        return m;
      }
      this.rest = new Map(this.list.slice(this.at).map((m) => [m!.sa, m!]));
    }
    const m = this.rest.get(s);
    this.rest.delete(s);
    return m;
  }
}

/** One direction of an SA that an apply puts into the core. */
interface Addition {
  peer: string;
  sa: SaSpec;
  dir: "in" | "out";
}

export class ApplyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ApplyError";
  }
}

/**
 * A peer held: its spec (whose tunnel fields say whether a new spec is the
 * same tunnel, sameTunnel) and its runtime view. An SA's identity (spec.ts
 * saKey: direction, SPI, key id) is compared field by field — the held
 * inbound SAs carry their key id, the outbound one's is `outKeyId` — instead
 * of kept as strings in a map per peer: a hub's start made 50,000 maps and
 * 100,000 key strings that all survive the install (issue 9).
 */
interface Held {
  spec: PeerSpec;
  rt: PeerRuntime;
  /** Key id of the outbound SA, null for plain tunnels or a refused one (with rt.out.spi, its identity). */
  outKeyId: string | null;
}

/** An inbound SA as held: the pipeline's InSa and its key id (a reference to the spec's string). */
interface HeldIn extends InSa {
  keyId: string;
}

/** The held inbound SA of identity (spi, keyId), if any (a peer holds a few: a scan). */
function heldIn(h: Held, spi: number, keyId: string): HeldIn | undefined {
  for (const sa of h.rt.in as HeldIn[]) if (sa.spi >>> 0 === spi >>> 0 && sa.keyId === keyId) return sa;
  return undefined;
}

/** Whether the held outbound SA is the one of identity (spi, keyId). */
const heldOut = (h: Held, spi: number, keyId: string): boolean => h.outKeyId === keyId && h.rt.out !== null && h.rt.out.spi >>> 0 === spi >>> 0;

/** Where a socket the pipeline needs is missing; the worker answers this from its open sockets. */
export type HasCarrier = (wanIndex: number, carrier: PeerSpec["carrier"], mode: PeerSpec["mode"]) => boolean;

export interface SaTableOptions {
  /** Durable sequence state (worker); absent = none (unit tests of provisioning only). */
  store?: SeqStore;
  stateDir?: string;
  hasCarrier?: HasCarrier;
  emit?: (e: SaEvent) => void;
  /**
   * The events of one apply, at its end, in one call (in order; `emit` then
   * gets none of them): a worker sends them to the main thread as one
   * message instead of one per SA (100,000 at a hub's start), its
   * sa-installed events as rows (EventBatch; eventsOf makes the objects).
   * The batch is the callback's to keep.
   */
  emitBatch?: (batch: EventBatch) => void;
}


/** Whether a soft lifetime (RFC 4301 §4.4.2.1: "a warning ... that the SA will soon expire") is reached. */
function softReached(lt: SaSpec["lifetime"], used: { seconds: number; bytes: number; packets: number }): boolean {
  return (lt.softSeconds !== undefined && used.seconds >= lt.softSeconds)
    || (lt.softBytes !== undefined && used.bytes >= lt.softBytes)
    || (lt.softPackets !== undefined && used.packets >= lt.softPackets);
}

const familyOf = (prefix: string): 4 | 6 => (prefix.includes(":") ? 6 : 4);
/** Replay windows above this need a pool block (docs/core.md: 16 inline words hold 960). */
const LARGE_WINDOW = 960;

export class SaTable {
  readonly prov: Provisioned = { peers: [], outBySa: new Map() };
  private readonly held = new Map<string, Held>();
  private readonly freeIds: number[] = [];
  private nextId = 1;
  /** SA id → when it was first installed (ms, across restarts for durable SAs) and its hard lifetime. */
  private readonly born: Float64Array;
  private readonly warned = new Set<number>();
  /** SAs removed for their lifetime, shown as expired in status. */
  readonly expired = new Set<number>();
  /**
   * Per peer and direction, the final counters of its SAs removed so far
   * (read just before the core zeroes their records): a peer's totals in
   * status and metrics are these plus its live SAs', so they never fall when
   * a rekey or a lifetime replaces an SA (a Prometheus counter must not).
   * Forgotten when the peer is removed.
   */
  readonly retired = new Map<string, { in: Counters; out: Counters }>();
  /** During an apply: the first reservations made for it in one batch, per direction by SA (prepareDurable). */
  private prepared?: { in: PreparedQueue; out: PreparedQueue };
  /** The SAs with a lifetime, listed at each apply: what checkLifetimes walks every second. */
  private timed: { h: Held; sa: OutSa | InSa; dir: "in" | "out" }[] = [];
  /** SAs the pipeline used since the last check (used): only an SA that sent can have used up its numbers. */
  private readonly recent = new Set<number>();
  /**
   * During an apply with opts.emitBatch: its events so far, an sa-installed
   * one as its row in `installs` (EventBatch).
   */
  private batch?: (SaEvent | number)[];
  /**
   * The sa-installed events of the apply under way, as columns: an object
   * per event held to the apply's end survived every collection of the
   * young generation on the way (100,000 at a hub's start, issue 9); these
   * are numbers and references to strings that exist anyway.
   */
  private installs = installRows();
  /** The core's parameters of the SA being added (saParams: one object for every call), and its UDP ports. */
  private readonly params: SaParams = {
    direction: "out", suite: "none", mode: "tunnel", spi: 0, esn: false, replayWindow: undefined, key: undefined, saltInKey: false,
    hmacKey: undefined, allowNoIntegrity: undefined, peerId: 0, local: undefined, remote: undefined, mtu: 0, greKey: undefined,
    greSeq: undefined, udp: undefined, fixedRemote: undefined, initialSeq: undefined, priorSeen: undefined, seqLimit: undefined,
  };
  private readonly udp = { sport: 0, dport: 0 };

  constructor(private readonly core: Core, private readonly opts: SaTableOptions = {}) {
    // by SA id, NaN for none: a number per SA, not a map entry and a boxed number (100,000 at a hub)
    this.born = new Float64Array(core.maxSas).fill(NaN);
  }

  /** The peers held now, with their specs (keep-alive timers, status). */
  peers(): { spec: PeerSpec; rt: PeerRuntime }[] {
    return [...this.held.values()].map((h) => ({ spec: h.spec, rt: h.rt }));
  }

  /** Removes every SA (clean stop): final counters written, keys wiped by the core. */
  clear(): void {
    this.untrackAll([...this.held.values()]);
    for (const h of [...this.held.values()]) this.dropPeer(h, "stop");
    this.prov.peers = [];
    this.prov.outBySa.clear();
    this.timed = [];
  }

  private emit(e: SaEvent): void {
    if (this.batch) this.batch.push(e);
    else this.opts.emit?.(e);
  }

  /**
   * Makes the core hold exactly `peers`. Checks what can be checked first
   * (sockets, capacity, keys present) and throws ApplyError without changing
   * anything; an SA whose sequence state is unusable is refused alone (an
   * alarm names its file) and the rest applies. Wipes every key buffer.
   */
  apply(peers: PeerSpec[]): void {
    if (this.opts.emitBatch) this.batch = [];
    try {
      this.prepareDurable(this.check(peers));
      // a first apply (a node's start) holds nothing to look up: no set of names, no lookups
      if (this.held.size > 0) {
        const want = new Set(peers.map((p) => p.name));
        const gone = [...this.held.values()].filter((h) => !want.has(h.spec.name));
        this.untrackAll(gone);
        for (const h of gone) this.dropPeer(h, "peer-removed");
      }
      // each peer's runtime view as it is applied, not looked up again by name afterwards
      const rts: PeerRuntime[] = [];
      for (const p of peers) {
        let h = this.held.get(p.name);
        if (h && sameTunnel(h.spec, p)) {
          if (moved(h.spec, p)) this.movePeer(h, p);
          this.updatePeer(h, p);
        } else {
          if (h) this.dropPeer(h, "tunnel-changed");
          h = this.addPeer(p);
        }
        rts.push(h.rt);
      }
      this.prov.peers = rts;
      this.prov.outBySa.clear();
      for (const h of this.held.values()) if (h.rt.out) this.prov.outBySa.set(h.rt.out.saId, h.rt.out);
    } finally {
      this.prepared = undefined;
      this.listTimed();
      for (const p of peers) for (const s of p.sas) (wipe(s.keysIn), wipe(s.keysOut));
      // the rows go with the batch (no copy): the next apply starts new ones
      const batch = this.batch ? { events: this.batch, installs: this.installs } : undefined;
      this.batch = undefined;
      if (batch) this.installs = installRows();
      if (batch?.events.length) this.opts.emitBatch!(batch); // last: keys are wiped whatever it does
    }
  }

  /**
   * The first reservations of the durable SAs this apply adds (`check` lists
   * them), made in one batch (SeqStore.prepareAll: one flush of the file
   * system instead of two fsyncs per SA), before any of them goes into the
   * core; `resume` takes them from here.
   */
  private prepareDurable(adds: Addition[]): void {
    const store = this.opts.store, stateDir = this.opts.stateDir;
    if (!store || !stateDir) return;
    const durable = adds.filter((a) => a.sa.durable);
    if (durable.length < 2) return;
    const ps = durable.map((a) => this.durableParams(stateDir, a.peer, a.sa, a.dir));
    // the store's columns sized once for the SA ids this apply may hand out (lowest free: below live + added)
    store.expectIds(Math.min(this.core.maxSas, this.liveSas() + adds.length));
    const lists: { in: Prepared[]; out: Prepared[] } = { in: [], out: [] };
    // a file named twice in the batch is made once: the other SA of that key prepares on its own
    store.prepareEach(ps).forEach((res, i) => void (res && lists[durable[i].dir].push({ sa: durable[i].sa, dp: ps[i], res })));
    this.prepared = { in: new PreparedQueue(lists.in), out: new PreparedQueue(lists.out) };
  }

  private durableParams(stateDir: string, peer: string, s: SaSpec, dir: "in" | "out"): DurableParams {
    return { stateDir, dir, keyId: dir === "in" ? s.keyIdIn : s.keyIdOut, spi: dir === "in" ? s.spiIn : s.spiOut, suite: s.suite, peer, esn: s.esn };
  }

  /** Throws ApplyError if `peers` cannot be applied; else the SA directions it adds. */
  private check(peers: PeerSpec[]): Addition[] {
    const added: Addition[] = [];
    let adds = 0, large = 0, policies = 0;
    const addedIn = new Map<number, string>(); // inbound SPIs this apply adds → their peer (a reload: a few)
    for (const p of peers) {
      if (this.opts.hasCarrier && !this.opts.hasCarrier(p.wanIndex, p.carrier, p.mode)) {
        throw new ApplyError(`peer ${p.name}: needs a ${p.carrier} socket on WAN port ${p.wanIndex} that this instance did not open at start (restart to add it)`);
      }
      const h = this.held.size > 0 ? this.held.get(p.name) : undefined;
      const rebuild = !h || !sameTunnel(h.spec, p);
      if (p.sas.length === 0) adds += rebuild ? 2 : 0;
      for (let k = 0; k < p.sas.length; k++) {
        const s = p.sas[k];
        const needIn = rebuild || heldIn(h!, s.spiIn, s.keyIdIn) === undefined;
        const needOut = k === 0 && (rebuild || !heldOut(h!, s.spiOut, s.keyIdOut));
        if (needIn && !s.keysIn) throw new ApplyError(`peer ${p.name}: inbound SA spi 0x${(s.spiIn >>> 0).toString(16)} arrived without its keys`);
        if (needOut && !s.keysOut) throw new ApplyError(`peer ${p.name}: outbound SA spi 0x${(s.spiOut >>> 0).toString(16)} arrived without its keys`);
        adds += (needIn ? 1 : 0) + (needOut ? 1 : 0);
        if (needIn) added.push({ peer: p.name, sa: s, dir: "in" });
        if (needIn && this.held.size > 0) addedIn.set(s.spiIn >>> 0, p.name);
        if (needOut) added.push({ peer: p.name, sa: s, dir: "out" });
        if (needIn && s.replayWindow > LARGE_WINDOW) large++;
      }
      policies += p.remotes.length * Math.max(1, p.locals.length);
      if (rebuild && !h && this.freeIds.length === 0 && this.nextId >= this.core.maxSas) throw new ApplyError("no free peer id: the core was sized for fewer peers (restart)");
    }
    if (addedIn.size) this.checkSpiMoves(addedIn, peers);
    // Make before break needs room for the new SAs while the old ones still exist.
    if (this.liveSas() + adds > this.core.maxSas) throw new ApplyError(`the new config needs ${adds} more SAs than the core has room for (${this.core.maxSas}); restart to resize`);
    if (large > this.core.largeBlocksFree()) throw new ApplyError(`the new config needs ${large} more replay windows above ${LARGE_WINDOW} than the core has room for (${this.core.largeBlocksFree()} free); restart to resize`);
    // Counted as if every policy were new (a peer's are replaced, not added): conservative.
    if (this.core.policyCount() + policies > this.core.maxPolicies) throw new ApplyError(`the new config needs up to ${policies} more SPD entries than the core has room for (${this.core.maxPolicies}); restart to resize`);
    return added;
  }

  /**
   * Throws ApplyError when an inbound SPI this apply adds for one peer is held
   * now by another peer that stays: the apply would add it before that peer
   * lets it go (make before break), and two SAs cannot share an inbound SPI.
   * One pass over the held SAs (expired ones included: they keep their SPI
   * until the apply removes them), against the few SPIs a reload adds.
   */
  private checkSpiMoves(addedIn: Map<number, string>, peers: PeerSpec[]): void {
    let staying: Set<string> | undefined;
    for (const h of this.held.values()) {
      if (h.spec.sas.length === 0) continue;
      for (const sa of h.rt.in) {
        const p = addedIn.get(sa.spi >>> 0);
        if (p === undefined || p === h.spec.name) continue;
        staying ??= new Set(peers.map((x) => x.name));
        if (staying.has(h.spec.name)) {
          throw new ApplyError(`peer ${p}: inbound SA spi 0x${(sa.spi >>> 0).toString(16)} is held by peer ${h.spec.name} until this apply; move an SPI between peers in two steps (remove it from ${h.spec.name} first)`);
        }
      }
    }
  }

  private liveSas(): number {
    let n = 0;
    for (const h of this.held.values()) n += (h.rt.out ? 1 : 0) + h.rt.in.length;
    return n;
  }

  private addPeer(p: PeerSpec): Held {
    const peerId = this.freeIds.pop() ?? this.nextId++;
    this.core.forgetPeer(peerId); // a reused id must not carry another peer's learned address
    const rt: PeerRuntime = {
      peerId, name: p.name, mode: p.mode, address: p.address, port: p.port, wanIndex: p.wanIndex,
      encap: p.encap, suite: p.sas[0]?.suite, out: null, in: [], policies: [],
    };
    const h: Held = { spec: p, rt, outKeyId: null };
    this.held.set(p.name, h);
    if (p.sas.length === 0) {
      const mode = p.mode as CoreMode;
      const o = this.core.addSa({ direction: "out", suite: "none", mode, ...this.common(p, peerId) });
      const i = this.core.addSa({ direction: "in", suite: "none", mode, ...this.common(p, peerId) });
      rt.out = this.outSa(p, o, 0, {});
      rt.in.push({ saId: i, spi: 0, index: 0, lifetime: {}, keyId: "" } as HeldIn);
      this.born[o] = this.born[i] = Date.now();
    } else {
      for (const s of p.sas) this.addIn(h, s);
      this.addOut(h, p.sas[0]);
    }
    this.setPolicies(h);
    return h;
  }

  /**
   * The peer moved (remote address or port; the rest of its tunnel as it
   * was): every SA it holds is pointed at the new remote in place, keeping
   * keys, sequence numbers, replay windows and counters — the peer's own
   * config did not change, so it goes on counting where it was. The address
   * NAT-T learned for the peer (RFC 7296 §2.23: the address of the newest
   * authenticated inbound packet, core peerLearn) is forgotten: it was
   * learned on the old path, and the operator's new address is the newer
   * word; if the peer is behind a NAT, its next authenticated packet teaches
   * the new mapping again.
   */
  private movePeer(h: Held, p: PeerSpec): void {
    const port = p.encap === "udp" ? p.port : 0;
    const ids = [...(h.rt.out ? [h.rt.out.saId] : []), ...h.rt.in.map((sa) => sa.saId)];
    for (const id of ids) if (!this.expired.has(id)) this.core.moveSa(id, p.address, port);
    this.core.forgetPeer(h.rt.peerId);
    h.rt.address = p.address;
    h.rt.port = p.port;
  }

  private updatePeer(h: Held, p: PeerSpec): void {
    const oldSpec = h.spec;
    h.spec = p;
    h.rt.suite = p.sas[0]?.suite;
    if (p.sas.length === 0) return this.samePolicies(oldSpec, p) ? undefined : this.setPolicies(h);
    // 1. new inbound SAs first: the peer may start sending on them at once.
    const kept = new Set<InSa>();
    for (const s of p.sas) {
      const held = heldIn(h, s.spiIn, s.keyIdIn);
      if (held) (held.index = s.index, held.lifetime = s.lifetime, kept.add(held));
      else {
        // The same SPI under another key (a static key edited, its SPI kept): two SAs
        // cannot share an inbound SPI (RFC 4301 §4.1, the SPI names the SA at its
        // destination), so this one is replaced break-before-make. Nothing is lost:
        // a packet still sealed under the old key fails authentication under the new.
        const stale = (h.rt.in as HeldIn[]).find((sa) => sa.spi >>> 0 === s.spiIn >>> 0);
        if (stale) {
          h.rt.in = h.rt.in.filter((sa) => sa !== stale);
          this.removeSa(h, stale.saId, "in", stale.spi, "config");
        }
        const sa = this.addIn(h, s);
        if (sa) kept.add(sa);
      }
    }
    // 2. outbound switch: the new SA, then the policies pointing at it, then the old one goes.
    const first = p.sas[0];
    const oldOut = h.rt.out;
    if (!heldOut(h, first.spiOut, first.keyIdOut)) {
      this.addOut(h, first);
      this.setPolicies(h);
      if (oldOut) this.removeSa(h, oldOut.saId, "out", oldOut.spi, "config");
    } else {
      if (oldOut) oldOut.lifetime = first.lifetime;
      if (!this.samePolicies(oldSpec, p)) this.setPolicies(h);
    }
    // 3. inbound SAs no longer listed.
    const gone = h.rt.in.filter((sa) => !kept.has(sa));
    if (gone.length) h.rt.in = h.rt.in.filter((sa) => kept.has(sa));
    for (const sa of gone) this.removeSa(h, sa.saId, "in", sa.spi, "config");
    h.rt.in.sort((a, b) => a.index - b.index);
  }

  private samePolicies(a: PeerSpec, b: PeerSpec): boolean {
    return a.locals.join() === b.locals.join() && a.remotes.join() === b.remotes.join() && a.priority === b.priority;
  }

  /** The final state files of these peers' durable SAs, written in one batch before they are dropped (removeSa's untrack then has nothing left to do). */
  private untrackAll(hs: Held[]): void {
    const store = this.opts.store;
    if (!store || hs.length === 0) return;
    const ids: number[] = [];
    for (const h of hs) {
      if (h.rt.out && !this.expired.has(h.rt.out.saId)) ids.push(h.rt.out.saId);
      for (const sa of h.rt.in) if (!this.expired.has(sa.saId)) ids.push(sa.saId);
    }
    store.untrackAll(this.core, ids);
  }

  private dropPeer(h: Held, why: "peer-removed" | "tunnel-changed" | "stop"): void {
    for (const id of h.rt.policies) this.core.removePolicy(id);
    h.rt.policies = [];
    if (h.rt.out) this.removeSa(h, h.rt.out.saId, "out", h.rt.out.spi, why);
    for (const sa of h.rt.in) this.removeSa(h, sa.saId, "in", sa.spi, why);
    this.core.forgetPeer(h.rt.peerId);
    this.freeIds.push(h.rt.peerId);
    this.held.delete(h.spec.name);
    // A peer changed in place (tunnel-changed) comes back under its name and keeps its totals.
    if (why !== "tunnel-changed") this.retired.delete(h.spec.name);
  }

  private common(p: PeerSpec, peerId: number) {
    const gre = p.mode === "gre" || p.mode === "transport-gre";
    return {
      peerId, local: p.local, remote: p.address, mtu: p.mtu,
      ...(gre ? { greKey: p.greKey, greSeq: p.greSeq } : {}),
    };
  }

  /**
   * The core's parameters for direction `dir` of `s`, durable from `res`,
   * written into one object kept for every call (`params`): `Core.addSa`
   * reads them during the call and keeps nothing, and an object of 27
   * fields per SA direction (200,000 at a hub's start) was 14 MB of the
   * young generation's allocation, each megabyte bringing its next
   * collection, which copies every object the install keeps, closer
   * (issue 9). Every field is written on every call: none carries over.
   */
  private saParams(h: Held, s: SaSpec, dir: "in" | "out", res: Resume | undefined): SaParams {
    const p = h.spec, km = dir === "in" ? s.keysIn! : s.keysOut!, o = this.params;
    const gre = p.mode === "gre" || p.mode === "transport-gre";
    const udp = p.encap === "udp";
    const suite = SUITES[s.suite];
    o.direction = dir;
    o.mode = p.mode as CoreMode;
    o.spi = dir === "in" ? s.spiIn : s.spiOut;
    o.esn = s.esn;
    o.replayWindow = dir === "in" ? s.replayWindow : undefined;
    // The keying material as the config holds it: the AEADs' ends in their salt, the nonce's
    // prefix (RFC 4106 §8.1, RFC 7634 §2), which the core splits off (no views made per SA).
    o.suite = suite.core;
    o.key = km.key;
    o.saltInKey = suite.saltBytes > 0;
    o.hmacKey = suite.core === "aes-cbc-hmac-sha256" ? km.authKey : undefined;
    o.allowNoIntegrity = suite.core === "aes-cbc" ? true : undefined;
    o.peerId = h.rt.peerId;
    o.local = p.local;
    o.remote = p.address;
    o.mtu = p.mtu;
    o.greKey = gre ? p.greKey : undefined;
    o.greSeq = gre ? p.greSeq : undefined;
    // nat_t: false on a UDP port: encapsulated, but the peer's address is as configured (no NAT).
    if (udp) (this.udp.sport = p.localPort, this.udp.dport = p.port);
    o.udp = udp ? this.udp : undefined;
    o.fixedRemote = udp ? !p.natT : undefined;
    o.initialSeq = res?.initialSeq;
    o.priorSeen = dir === "in" ? res?.priorSeen : undefined;
    o.seqLimit = res?.seqLimit;
    return o;
  }

  /** `core.addSa` of direction `dir` of `s` (saParams); the shared parameters let go of the key after. */
  private addToCore(h: Held, s: SaSpec, dir: "in" | "out", res: Resume | undefined): number {
    try {
      return this.core.addSa(this.saParams(h, s, dir, res));
    } finally {
      this.params.key = this.params.hmacKey = undefined;
    }
  }

  private outSa(p: PeerSpec, saId: number, spi: number, lifetime: SaSpec["lifetime"]): OutSa {
    return { saId, spi, wanIndex: p.wanIndex, family: p.family, carrier: p.carrier, mtu: p.mtu, lifetime };
  }

  /** Durable start of one direction of `s`, or null when its state refuses it (alarm raised). */
  private resume(h: Held, s: SaSpec, dir: "in" | "out"): { dp?: DurableParams; res?: Resume } | null {
    const store = this.opts.store;
    if (!s.durable || !store || !this.opts.stateDir) return {};
    // made in this apply's batch (prepareDurable), once
    const made = this.prepared?.[dir].take(s);
    const dp = made?.dp ?? this.durableParams(this.opts.stateDir, h.spec.name, s, dir);
    try {
      if (made?.res instanceof SeqStateError) throw made.res;
      return { dp, res: made?.res ?? store.prepare(dp) };
    } catch (e) {
      if (!(e instanceof SeqStateError)) throw e;
      this.emit({ event: "alarm", peer: h.spec.name, spi: dp.spi, message: e.message });
      return null;
    }
  }

  private addIn(h: Held, s: SaSpec): InSa | undefined {
    const p = h.spec;
    const r = this.resume(h, s, "in");
    if (!r) return undefined;
    const id = this.addToCore(h, s, "in", r.res);
    if (r.res) this.opts.store!.track(id, r.dp!, r.res);
    this.born[id] = r.res?.created ?? Date.now();
    const sa: HeldIn = { saId: id, spi: s.spiIn, index: s.index, lifetime: s.lifetime, keyId: s.keyIdIn };
    h.rt.in.push(sa);
    this.installed(p.name, "in", s.spiIn, id, r.res);
    return sa;
  }

  private addOut(h: Held, s: SaSpec): void {
    const p = h.spec;
    const r = this.resume(h, s, "out");
    if (!r) {
      h.rt.out = null;
      h.outKeyId = null;
      return;
    }
    const id = this.addToCore(h, s, "out", r.res);
    if (r.res) this.opts.store!.track(id, r.dp!, r.res);
    this.born[id] = r.res?.created ?? Date.now();
    h.rt.out = this.outSa(p, id, s.spiOut, s.lifetime);
    h.outKeyId = s.keyIdOut;
    this.installed(p.name, "out", s.spiOut, id, r.res);
  }

  private installed(peer: string, dir: "in" | "out", spi: number, saId: number, res: Resume | undefined): void {
    if (!this.opts.emit && !this.opts.emitBatch) return;
    const resumedAt = res?.resumed ? res.initialSeq : undefined;
    if (!this.batch) return this.emit(installEvent(peer, dir, spi, saId, resumedAt));
    const c = this.installs;
    this.batch.push(c.peer.length);
    c.peer.push(peer);
    c.dir.push(dir);
    c.spi.push(spi);
    c.saId.push(saId);
    c.resumedAt.push(resumedAt);
  }

  /** The peer's SPD entries, through its current outbound SA (none while it has none: NO_POLICY drops). */
  private setPolicies(h: Held): void {
    for (const id of h.rt.policies) this.core.removePolicy(id);
    h.rt.policies = [];
    const out = h.rt.out;
    if (!out) return;
    for (const r of h.spec.remotes) {
      const fam = familyOf(r);
      const locals = h.spec.locals.filter((l) => familyOf(l) === fam);
      if (locals.length === 0) locals.push(fam === 4 ? "0.0.0.0/0" : "::/0");
      for (const l of locals) {
        h.rt.policies.push(this.core.addPolicy({ action: "protect", local: l, remote: r, saId: out.saId, peerId: h.rt.peerId, priority: h.spec.priority }));
      }
    }
  }

  /** Adds SA `saId`'s counters, about to be zeroed, to its peer's retired totals. */
  private retire(peer: string, dir: "in" | "out", saId: number): void {
    const c = this.core.readCounters(saId);
    const r = this.retired.get(peer) ?? { in: zeroCounters(), out: zeroCounters() };
    const t = r[dir];
    t.packets += c.packets;
    t.bytes += c.bytes;
    for (const [k, v] of Object.entries(c.drops) as [keyof Counters["drops"], bigint][]) t.drops[k] = (t.drops[k] ?? 0n) + v;
    this.retired.set(peer, r);
  }

  private removeSa(h: Held, saId: number, dir: "in" | "out", spi: number, why: Extract<SaEvent, { event: "sa-removed" }>["why"]): void {
    if (this.expired.has(saId)) {
      this.expired.delete(saId);
      return; // already gone from the core
    }
    this.retire(h.spec.name, dir, saId);
    this.opts.store?.untrack(this.core, saId);
    this.core.removeSa(saId);
    this.born[saId] = NaN;
    this.warned.delete(saId);
    this.emit({ event: "sa-removed", peer: h.spec.name, dir, spi, why });
  }

  /**
   * Called by the pipeline (through the worker) for each SA a batch's
   * packets were matched to: checkLifetimes looks at those for a used-up
   * sequence number.
   */
  used(saId: number): void {
    this.recent.add(saId);
  }

  /** The SAs with any lifetime set, from what is held now (after an apply, even one that failed half-way). */
  private listTimed(): void {
    this.timed = [];
    for (const h of this.held.values()) {
      if (h.rt.out && hasLimit(h.rt.out.lifetime)) this.timed.push({ h, sa: h.rt.out, dir: "out" });
      for (const sa of h.rt.in) if (hasLimit(sa.lifetime)) this.timed.push({ h, sa, dir: "in" });
    }
  }

  /**
   * Hard lifetimes (RFC 4301 §4.4.2.1), counted across restarts for durable
   * SAs: an SA past one is removed. At a soft lifetime, or 90 % of a hard one,
   * or when the core says the sequence numbers are exhausted, a needs-rekey
   * event is raised once. Called every second; it walks the SAs that have a
   * lifetime and those used since the last call, not every SA: a hub of
   * 100,000 idle SAs without lifetimes costs it nothing (walking them all
   * took 35 ms a second at 40,000 here).
   */
  checkLifetimes(now = Date.now()): void {
    for (const id of this.recent) {
      if (!this.expired.has(id) && !this.warned.has(id) && this.core.needsRekey(id)) this.exhausted(id);
    }
    this.recent.clear();
    for (const { h, sa, dir } of this.timed) this.checkLifetime(h, sa, dir, now);
  }

  /** Outbound SA `saId` used its last sequence number (RFC 4303 §3.3.3): its peer is looked up (rare: once per SA). */
  private exhausted(saId: number): void {
    for (const h of this.held.values()) {
      if (h.rt.out?.saId !== saId) continue;
      this.warned.add(saId);
      this.emit({ event: "needs-rekey", peer: h.spec.name, dir: "out", spi: h.rt.out.spi, why: "sequence-exhausted" });
      return;
    }
  }

  private checkLifetime(h: Held, sa: OutSa | InSa, dir: "in" | "out", now: number): void {
    if (this.expired.has(sa.saId)) return; // every other SA removed went with an apply, which made the list again
    const lt = sa.lifetime;
    const c = this.core.readCounters(sa.saId);
    const base = this.opts.store?.history(sa.saId)?.base ?? { packets: 0n, bytes: 0n };
    const used = { seconds: (now - (Number.isNaN(this.born[sa.saId]) ? now : this.born[sa.saId])) / 1000, bytes: Number(base.bytes + c.bytes), packets: Number(base.packets + c.packets) };
    const frac = Math.max(
      lt.seconds !== undefined ? used.seconds / lt.seconds : 0,
      lt.bytes !== undefined ? used.bytes / lt.bytes : 0,
      lt.packets !== undefined ? used.packets / lt.packets : 0,
    );
    if ((frac >= 0.9 || softReached(lt, used)) && !this.warned.has(sa.saId)) {
      this.warned.add(sa.saId);
      this.emit({ event: "needs-rekey", peer: h.spec.name, dir, spi: sa.spi, why: "soft-lifetime" });
    }
    if (frac < 1) return;
    this.retire(h.spec.name, dir, sa.saId);
    this.opts.store?.untrack(this.core, sa.saId);
    this.core.removeSa(sa.saId);
    this.expired.add(sa.saId);
    this.emit({ event: "sa-removed", peer: h.spec.name, dir, spi: sa.spi, why: "lifetime" });
  }
}

/** Zeroes a key buffer the apply was given. */
function wipe(km: KeyMaterial | undefined): void {
  if (km === undefined) return;
  zero(km.key);
  if (km.authKey) zero(km.authKey);
}

/**
 * Writes zeros over `b`: a loop the compiler inlines, not `fill(0)`, a call
 * into the runtime that cost more than the 36 bytes of a key (200,000 calls
 * at a hub's start, issue 9).
 */
function zero(b: Uint8Array): void {
  for (let i = 0; i < b.length; i++) b[i] = 0;
}

/** Whether a lifetime sets any limit. */
function hasLimit(lt: SaSpec["lifetime"]): boolean {
  for (const k in lt) if (lt[k as keyof typeof lt] !== undefined) return true;
  return false;
}

function zeroCounters(): Counters {
  return { packets: 0n, bytes: 0n, drops: {} as Counters["drops"] };
}
