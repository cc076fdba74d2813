// One IKE SA, initiator or responder, as a pure state machine (RFC 7296 §1–§2):
// datagrams in, datagrams and events out; time comes in through `tick(now)`.
//
//   initiator:  start ─► init-sent ─► auth-sent ─► established ─► deleting ─► deleted
//   responder:  (IKE_SA_INIT) ─► init-answered ─► established ─► deleted
//                any state ─► failed (timeout, error notify, AUTH, protocol,
//                liveness check unanswered, half-open too long)
//
// Once established: CREATE_CHILD_SA for new and rekeyed CHILD_SAs (exchange_child.ts),
// INFORMATIONAL for DELETE and liveness, started by either side.
//
// Message IDs (§2.2): each side numbers its own requests from 0; a response
// carries its request's ID. Our requests — retransmitted, one outstanding at a
// time (§2.3), the others queued — are our_requests.ts; the peer's — a request
// seen again answered from the cached response (§2.1) — peer_requests.ts; the
// SK/SKF sealing and opening is protect.ts.
import { Exchange, Flag, Notify, Protocol, VERSION } from "./constants.ts";
import { hexSpi, type SaContext } from "./context.ts";
import { authRequest, onAuthRequest, onAuthResponse } from "./exchange_auth.ts";
import { forgetChildren, lowestNonceIsOurs, nonceOf, spiBytes, spiNumber } from "./child_sa.ts";
import { childRequest, onChildRequest, onChildResponse, retryGroup } from "./exchange_child.ts";
import { ikeRekeyRequest, isIkeRekey, onIkeRekeyRequest, onIkeRekeyResponse, type PendingIkeRekey } from "./exchange_ike_rekey.ts";
import { initRequest, onInitRequest, onInitResponse } from "./exchange_init.ts";
import { fragmentNumbers, Reassembly } from "./fragment.ts";
import { isResponse, type Header, type Message } from "./message.ts";
import { unsupportedCritical, type Payload } from "./payloads.ts";
import { OurRequests, type Pending } from "./our_requests.ts";
import { PeerRequests } from "./peer_requests.ts";
import { openProtected, sealProtected } from "./protect.ts";
import type { Deps, FailReason, IkeEvent, IkeSaConfig, Path, Step } from "./types.ts";

export type SaState = "init-sent" | "auth-sent" | "init-answered" | "established" | "deleting" | "deleted" | "failed";

/** strongSwan's half_open_timeout is 30 s as well. */
const DEFAULT_HALF_OPEN_S = 30;

export class IkeSa {
  state: SaState;
  readonly ctx: SaContext;
  /** Our requests: Message IDs, the outstanding one, the queue behind it (§2.1, §2.3). */
  private readonly requests = new OurRequests();
  /** The peer's requests: the ID expected next, the cached response to the one before (§2.1). */
  private readonly peer = new PeerRequests();
  /** RFC 7383 §2.6: fragments of the response to our request, until complete. */
  private readonly responseFragments = new Reassembly();
  /** When we created the SA, and when an authenticated message last came from the peer (§2.4). */
  private readonly createdAt: number;
  private lastHeard: number;
  private lastKeepalive: number;
  /** §2.8.1: the peer rekeyed a CHILD_SA while our rekey of it was outstanding. */
  private collision?: { rekeyOf: number; spiIn: number; nonces: Uint8Array[] };
  /** §2.8.2: the peer rekeyed this IKE SA while our rekey of it was outstanding: its new IKE SA and that exchange's nonces. */
  private ikeCollision?: { theirs: IkeSa; nonces: Uint8Array[] };
  /** The IKE SA this one was rekeyed into (§1.3.2); the endpoint adopts it. */
  successor?: IkeSa;
  /** §2.8.2: the other new IKE SA of a simultaneous rekey, which the endpoint must find until one side deletes it. */
  sibling?: IkeSa;
  /** §2.8.2: a new IKE SA that lost a simultaneous rekey: deleted by its maker, never holding CHILD_SAs. */
  redundant = false;

  private constructor(ctx: SaContext, state: SaState) {
    this.ctx = ctx;
    this.state = state;
    this.createdAt = this.lastHeard = this.lastKeepalive = ctx.deps.now();
  }

  /** "SPIi_SPIr" in hex, as events carry it. */
  get id(): string { return `${this.spiI}_${this.spiR}`; }

  /** The identity the peer authenticated as, once it has. */
  get peerId() { return this.ctx.peerId; }

  /** Labels a step's events with this SA's id. */
  private stamp(step: Step): Step {
    for (const e of step.events) e.sa ??= this.id;
    return step;
  }

  /** When the peer last sent an authenticated message (ms): what a liveness check waits on (§2.4). */
  get lastHeardAt(): number { return this.lastHeard; }

  get spiI(): string { return hexSpi(this.ctx.spiI); }
  get spiR(): string { return hexSpi(this.ctx.spiR); }
  get name(): string { return this.ctx.cfg.name; }
  initiatorSide(): boolean { return this.ctx.initiator; }

  /** Starts an IKE SA towards `path.remoteAddress` (IKE_SA_INIT, §1.2). */
  static initiate(cfg: IkeSaConfig, path: Path, deps: Deps): { sa: IkeSa; step: Step } {
    let spiI = deps.random(8);
    while (spiI.every((b) => b === 0)) spiI = deps.random(8); // §3.1: the initiator's SPI MUST NOT be zero
    const ctx: SaContext = { cfg, deps, initiator: true, spiI, spiR: new Uint8Array(8), path, group: cfg.ikeProposals[0].dh[0], natHere: false, natThere: false, children: [] };
    const sa = new IkeSa(ctx, "init-sent");
    return { sa, step: sa.stamp(sa.request(Exchange.IKE_SA_INIT, initRequest(ctx))) };
  }

  /**
   * Answers an IKE_SA_INIT request. Returns the new SA only when the request was
   * accepted; a refusal (NO_PROPOSAL_CHOSEN, INVALID_KE_PAYLOAD, …) keeps no state.
   */
  static respond(cfg: IkeSaConfig, deps: Deps, m: Message, raw: Uint8Array, path: Path): { sa?: IkeSa; step: Step } {
    let spiR = deps.random(8);
    while (spiR.every((b) => b === 0)) spiR = deps.random(8);
    const ctx: SaContext = { cfg, deps, initiator: false, spiI: m.header.spiI, spiR, path, group: 0, natHere: false, natThere: false, children: [] };
    const a = onInitRequest(ctx, m, raw);
    if (a.kind === "refuse") {
      const sa = `${hexSpi(ctx.spiI)}_0000000000000000`;
      return { step: { send: [{ bytes: a.response, path }], events: [{ type: "failed", ike: cfg.name, sa, reason: a.reason, detail: a.detail }] } };
    }
    const sa = new IkeSa(ctx, "init-answered");
    sa.peer.answeredInit(raw, a.response, path);
    return { sa, step: { send: [{ bytes: a.response, path }], events: [] } };
  }

  /** When `tick` next has something to do, or undefined. */
  get nextTimeout(): number | undefined {
    const k = this.keepaliveDue;
    const other = this.exchangeDue;
    return k === undefined ? other : other === undefined ? k : Math.min(k, other);
  }

  /** Retransmission, half-open expiry or liveness check, whichever applies. */
  private get exchangeDue(): number | undefined {
    if (this.pending) return this.pending.nextAt;
    if (this.state === "init-answered") return this.createdAt + (this.ctx.cfg.halfOpenSeconds ?? DEFAULT_HALF_OPEN_S) * 1000;
    const dpd = this.ctx.cfg.dpdSeconds;
    if (this.state === "established" && dpd) return this.lastHeard + dpd * 1000;
    return undefined;
  }

  /** RFC 3948 §2.3: the side behind a NAT keeps its mapping open with NAT-keepalives. */
  private get keepaliveDue(): number | undefined {
    const k = this.ctx.cfg.keepaliveSeconds;
    if (!k || this.state !== "established" || !this.ctx.natHere) return undefined;
    return this.lastKeepalive + k * 1000;
  }

  /**
   * Time has come for something: retransmit the outstanding request or give up
   * after the last try (§2.1); drop a half-open responder SA; send a liveness
   * check (an empty INFORMATIONAL request, §2.4) when the peer has been quiet;
   * send a NAT-keepalive (one 0xFF byte, RFC 3948 §2.3) when one is due.
   */
  tick(now: number): Step {
    const step = this.tickExchange(now);
    const k = this.keepaliveDue;
    if (k !== undefined && now >= k) {
      this.lastKeepalive = now;
      step.send.push({ bytes: Uint8Array.of(0xff), path: { ...this.ctx.path }, keepalive: true });
    }
    return step;
  }

  private tickExchange(now: number): Step {
    const due = this.exchangeDue;
    if (due === undefined || now < due) return none();
    if (this.pending) {
      const r = this.requests.retransmit(now, this.ctx.cfg.retransmit);
      if (r.kind === "give-up") {
        const p = r.pending;
        const what = p.exchange === Exchange.INFORMATIONAL && this.state === "established" ? "liveness check" : `message ${p.id}`;
        return this.stamp(this.fail("timeout", `no response to ${what} after ${p.tries} sends`));
      }
      return r.step;
    }
    if (this.state === "init-answered") return this.stamp(this.fail("half-open", "no IKE_AUTH request in time"));
    return this.stamp(this.sealedRequest(Exchange.INFORMATIONAL, []));
  }

  /**
   * Forgets the SA without a word to the peer: for INITIAL_CONTACT (§2.4: the peer
   * has restarted and will not answer for the old SA).
   */
  abandon(): Step {
    this.state = "deleted";
    this.requests.forget();
    return this.stamp({ send: [], events: [{ type: "ikeSaDeleted", ike: this.name, byPeer: true, why: "initial-contact" }] });
  }

  /** Deletes an established IKE SA (and with it its CHILD_SAs, §1.4.1) with an INFORMATIONAL DELETE. */
  close(): Step {
    return this.whenIdle(() => {
      this.state = "deleting";
      return this.sealedRequest(Exchange.INFORMATIONAL, [{ kind: "delete", protocol: Protocol.IKE, spis: [] }]);
    });
  }

  /**
   * Rekeys the CHILD_SA we receive on with `spiIn` (§1.3.3): a CREATE_CHILD_SA with
   * REKEY_SA; once answered, `childSaEstablished` (with `rekeyOf`) and then the old
   * CHILD_SA's DELETE, answered by `childSaDeleted` (§2.8: the rekey's initiator deletes it).
   */
  rekeyChild(spiIn: number): Step {
    return this.whenIdle(() => {
      if (!this.ctx.children.some((c) => c.spiIn === spiIn)) {
        return { send: [], events: [{ type: "childSaFailed", ike: this.name, notify: Notify.CHILD_SA_NOT_FOUND, detail: `no CHILD_SA with inbound SPI ${spiIn}`, rekeyOf: spiIn }] };
      }
      return this.childExchange(spiIn);
    });
  }

  /**
   * Rekeys this IKE SA (§1.3.2): once answered, `ikeSaRekeyed` names the new one (in
   * `successor`, holding the CHILD_SAs), and this one is deleted (`ikeSaDeleted`, why "rekeyed").
   */
  rekeyIke(): Step {
    return this.whenIdle(() => {
      // already rekeyed, by the peer or by a collision's outcome: the successor is rekeyed instead
      if (this.successor || this.ikeCollision) return none();
      const { payloads, pending } = ikeRekeyRequest(this.ctx);
      const step = this.sealedRequest(Exchange.CREATE_CHILD_SA, payloads);
      this.pending!.ikeRekey = pending;
      return step;
    });
  }

  /**
   * Another CHILD_SA with the configured proposals and selectors (§1.3.1); with
   * `worker`, one whose inbound SPI steers to that packet worker (RFC 9611: one
   * CHILD_SA per resource, the same selectors on each).
   */
  createChild(worker?: number): Step {
    return this.whenIdle(() => this.childExchange(undefined, undefined, worker));
  }

  /** Deletes one of our CHILD_SAs by its inbound SPI (§1.4.1). */
  deleteChild(spiIn: number): Step {
    return this.whenIdle(() => this.deleteChildren([spiIn]));
  }

  /** Our inbound SPIs of the CHILD_SAs this IKE SA holds. */
  get childSpis(): number[] {
    return this.ctx.children.map((c) => c.spiIn);
  }

  /** `worker`: for a new CHILD_SA, the packet worker its inbound SPI goes to (a worker index, or an SPI on that worker). */
  private childExchange(rekeyOf: number | undefined, group?: number, worker?: number): Step {
    const { payloads, pending } = group === undefined ? childRequest(this.ctx, rekeyOf, undefined, worker) : childRequest(this.ctx, rekeyOf, group, worker);
    pending.retried = group !== undefined;
    pending.worker = worker;
    const step = this.sealedRequest(Exchange.CREATE_CHILD_SA, payloads);
    this.pending!.child = pending;
    return step;
  }

  private deleteChildren(spisIn: number[]): Step {
    const live = spisIn.filter((s) => this.ctx.children.some((c) => c.spiIn === s));
    if (!live.length) return none();
    const step = this.sealedRequest(Exchange.INFORMATIONAL, [{ kind: "delete", protocol: Protocol.ESP, spis: live.map(spiBytes) }]);
    this.pending!.deleting = live;
    return step;
  }

  /** §1.3.1: a CHILD_SA the responder set up in a mode we did not ask for is deleted at once (queued first). */
  private deleteDeclined(events: IkeEvent[]): IkeEvent[] {
    for (const e of events) if (e.type === "childSaFailed" && e.deleting !== undefined) this.requests.later(() => this.deleteChildren([e.deleting!]), true);
    return events;
  }

  /** Runs `start` now if no request is outstanding, else after the outstanding ones (window of one, §2.3). */
  private whenIdle(start: () => Step): Step {
    if (this.state !== "established") return none();
    if (this.pending) {
      this.requests.later(start);
      return none();
    }
    return this.stamp(start());
  }

  /** After a response: the next queued request, if the SA is still up for it. */
  private next(step: Step): Step {
    return this.requests.drain(step, () => this.state === "established");
  }

  private get pending(): Pending | undefined { return this.requests.pending; }

  /** A decoded datagram for this SA (`raw` without any non-ESP marker), arriving over `path`. */
  receive(m: Message, raw: Uint8Array, path: Path): Step {
    if (this.state === "failed" || this.state === "deleted") return this.stamp(this.refused("dead-sa", `message for an SA in state ${this.state}`));
    return this.stamp(isResponse(m.header) ? this.onResponse(m, raw, path) : this.onRequest(m, raw, path));
  }

  // --- requests we send ---------------------------------------------------

  private header(exchange: number, id: number, response: boolean): Header {
    return {
      spiI: this.ctx.spiI, spiR: this.ctx.spiR, version: VERSION, exchange, messageId: id,
      flags: (this.ctx.initiator ? Flag.INITIATOR : 0) | (response ? Flag.RESPONSE : 0),
    };
  }

  private request(exchange: number, datagrams: Uint8Array | Uint8Array[]): Step {
    return this.requests.send(exchange, Array.isArray(datagrams) ? datagrams : [datagrams], this.ctx.path, this.ctx.deps.now(), this.ctx.cfg.retransmit);
  }

  private sealedRequest(exchange: number, inner: Payload[]): Step {
    return this.request(exchange, sealProtected(this.ctx, this.header(exchange, this.requests.nextId, false), inner));
  }

  // --- responses to our requests -----------------------------------------

  private onResponse(m: Message, raw: Uint8Array, path: Path): Step {
    const p = this.pending;
    if (!p || m.header.messageId !== p.id || m.header.exchange !== p.exchange) {
      return this.refused("unexpected-response", `response ${m.header.messageId} (exchange ${m.header.exchange}) matches no request`);
    }
    if (p.exchange === Exchange.IKE_SA_INIT) return this.onInitResponse(m, raw);
    const opened = openProtected(this.ctx, m, raw, this.responseFragments);
    if (opened.kind === "stored") return none();
    // §2.21.2: a message that fails integrity is dropped as if never received; the request stays pending
    if (opened.kind === "drop") return this.refused(opened.reason, opened.detail);
    const inner = { value: opened.payloads };
    this.requests.answered();
    this.ctx.path = { ...path };
    this.lastHeard = this.ctx.deps.now();
    if (p.exchange === Exchange.IKE_AUTH) {
      const r = onAuthResponse(this.ctx, inner.value);
      if (r.kind === "fail") {
        const step = this.fail(r.reason, r.detail);
        // §2.21.2: the responder has the SA up; an error found by the initiator "MAY be returned
        // in a separate INFORMATIONAL exchange": sent once, the answer is not awaited
        const n: Payload = { kind: "notify", protocol: 0, spi: new Uint8Array(0), notifyType: Notify.AUTHENTICATION_FAILED, data: new Uint8Array(0) };
        if (r.reason === "auth") for (const bytes of sealProtected(this.ctx, this.header(Exchange.INFORMATIONAL, this.requests.nextId, false), [n])) step.send.push({ bytes, path: { ...this.ctx.path } });
        return step;
      }
      this.state = "established";
      return this.next({ send: [], events: [this.established(), ...this.deleteDeclined(r.events)] });
    }
    if (p.exchange === Exchange.INFORMATIONAL && this.state === "deleting") {
      this.state = "deleted";
      return { send: [], events: [{ type: "ikeSaDeleted", ike: this.name, byPeer: false, ...this.deletedWhy() }] };
    }
    const step = none();
    if (p.ikeRekey) this.onIkeRekeyAnswer(p.ikeRekey, inner.value, step);
    const retry = p.child && retryGroup(this.ctx, p.child, inner.value);
    if (p.child && retry !== undefined) {
      // the same CHILD_SA again, with a KE of the group the responder wants
      const { rekeyOf, worker } = p.child;
      this.requests.later(() => this.childExchange(rekeyOf, retry, worker), true);
    } else if (p.child && this.lostByPeer(p.child.rekeyOf, inner.value)) {
      // §2.25: "If a CHILD_SA_NOT_FOUND notification is received, the sender SHOULD silently
      // delete the Child SA (if it still exists) and send a request to create a new Child SA
      // from scratch (if the Child SA does not yet exist)": no DELETE, a CREATE_CHILD_SA without REKEY_SA
      const lost = p.child.rekeyOf!;
      const spisIn = forgetChildren(this.ctx, [lost]);
      step.events.push({ type: "childSaDeleted", ike: this.name, spisIn, why: "not-found" });
      // on the lost one's packet worker
      this.requests.later(() => this.childExchange(undefined, undefined, lost), true);
    } else if (p.child) {
      step.events.push(...this.deleteDeclined(onChildResponse(this.ctx, p.child, inner.value)));
      const rekeyed = step.events.find((e) => e.type === "childSaEstablished" && e.rekeyOf !== undefined);
      // §2.8: the side that rekeyed deletes the old CHILD_SA once the new one exists;
      // §2.8.1: after a simultaneous rekey, only one of the two new ones survives
      if (rekeyed?.type === "childSaEstablished") {
        const doomed = this.afterRekey(rekeyed.rekeyOf!, rekeyed.spiIn, [p.child.ni, nonceOf(inner.value)]);
        if (doomed === rekeyed.spiIn) rekeyed.redundant = true;
        this.requests.later(() => this.deleteChildren([doomed]), true);
      }
    }
    if (p.deleting) {
      const spisIn = forgetChildren(this.ctx, p.deleting);
      if (spisIn.length) step.events.push({ type: "childSaDeleted", ike: this.name, spisIn });
    }
    return this.next(step);
  }

  /** Our rekey of `rekeyOf` answered CHILD_SA_NOT_FOUND while we still hold that CHILD_SA: the peer lost its half. */
  private lostByPeer(rekeyOf: number | undefined, ps: Payload[]): boolean {
    if (rekeyOf === undefined || !this.ctx.children.some((c) => c.spiIn === rekeyOf)) return false;
    return ps.some((x) => x.kind === "notify" && x.notifyType === Notify.CHILD_SA_NOT_FOUND);
  }

  private onInitResponse(m: Message, raw: Uint8Array): Step {
    const r = onInitResponse(this.ctx, m, raw);
    if (r.kind === "fail") {
      this.requests.forget();
      return this.fail(r.reason, r.detail);
    }
    if (r.kind === "retry") return this.request(Exchange.IKE_SA_INIT, initRequest(this.ctx));
    this.requests.answered();
    // §2.23: with a NAT in the way the initiator moves to port 4500 from IKE_AUTH on
    const c = this.ctx;
    if ((c.natHere || c.natThere) && c.path.remotePort === c.cfg.ports.ike) {
      c.path = { ...c.path, localPort: c.cfg.ports.natt, remotePort: c.cfg.ports.natt };
    }
    this.state = "auth-sent";
    return this.sealedRequest(Exchange.IKE_AUTH, authRequest(c));
  }

  // --- requests from the peer --------------------------------------------

  private onRequest(m: Message, raw: Uint8Array, path: Path): Step {
    const id = m.header.messageId;
    const last = m.payloads[m.payloads.length - 1];
    const f = last?.kind === "sk" ? fragmentNumbers(last) : undefined;
    // §2.1: a retransmitted request gets the same response again
    const seen = this.peer.seen(id, raw, f?.number);
    if (seen.kind === "resend") return { send: seen.datagrams.map((bytes) => ({ bytes, path })), events: [] };
    if (seen.kind === "refuse") return this.refused(seen.reason, seen.detail);
    if (m.header.exchange === Exchange.IKE_SA_INIT) return this.refused("unexpected-request", "IKE_SA_INIT on an existing SA");
    if (this.state === "init-sent") return this.refused("unexpected-request", "request before IKE_SA_INIT completed");
    const opened = openProtected(this.ctx, m, raw, this.peer.fragments);
    if (opened.kind !== "drop" && (!f || f.number === 1)) this.peer.authenticated(raw);
    if (opened.kind === "stored") return none();
    if (opened.kind === "drop") return this.refused(opened.reason, opened.detail);
    const inner = { value: opened.payloads };
    // §2.23: the peer's address is followed only once a message has authenticated
    this.ctx.path = { ...path };
    this.lastHeard = this.ctx.deps.now();
    const critical = unsupportedCritical(inner.value);
    if (critical !== undefined) {
      // §2.5: rejected as a whole, the response names the payload type
      const step = this.respond(m.header.exchange, id, [{ kind: "notify", protocol: 0, spi: new Uint8Array(0), notifyType: Notify.UNSUPPORTED_CRITICAL_PAYLOAD, data: Uint8Array.of(critical) }], path);
      step.events.push({ type: "refused", ike: this.name, reason: "unsupported-critical", detail: `critical payload type ${critical}` });
      return step;
    }
    if (m.header.exchange === Exchange.IKE_AUTH && this.state === "init-answered") {
      const a = onAuthRequest(this.ctx, inner.value);
      const step = this.respond(m.header.exchange, id, a.payloads, path);
      if (a.kind === "refuse") return { send: step.send, events: this.fail(a.reason, a.detail).events };
      this.state = "established";
      step.events.push(this.established(), ...a.events);
      return step;
    }
    if (this.state !== "established" && this.state !== "deleting") return this.refused("unexpected-request", `exchange ${m.header.exchange} in state ${this.state}`);
    if (m.header.exchange === Exchange.INFORMATIONAL) return this.onInformational(id, inner.value, path);
    if (m.header.exchange === Exchange.CREATE_CHILD_SA && this.state === "established" && isIkeRekey(inner.value)) {
      return this.onPeerIkeRekey(id, inner.value, path);
    }
    if (m.header.exchange === Exchange.CREATE_CHILD_SA && this.state === "established") {
      // §2.25.1: a rekey of a CHILD_SA we are deleting gets TEMPORARY_FAILURE
      const a = onChildRequest(this.ctx, inner.value, this.pending?.deleting ?? []);
      const est = a.events.find((e) => e.type === "childSaEstablished");
      if (est?.type === "childSaEstablished" && est.rekeyOf !== undefined && this.pending?.child?.rekeyOf === est.rekeyOf) {
        this.collision = { rekeyOf: est.rekeyOf, spiIn: est.spiIn, nonces: [nonceOf(inner.value), nonceOf(a.payloads)] };
      }
      const step = this.respond(m.header.exchange, id, a.payloads, path);
      step.events.push(...a.events);
      return step;
    }
    // §2.25: while this IKE SA is going away, a new CHILD_SA is refused with TEMPORARY_FAILURE
    const refusal = m.header.exchange === Exchange.CREATE_CHILD_SA ? Notify.TEMPORARY_FAILURE : Notify.INVALID_SYNTAX;
    return this.respond(m.header.exchange, id, [{ kind: "notify", protocol: 0, spi: new Uint8Array(0), notifyType: refusal, data: new Uint8Array(0) }], path);
  }

  /** §1.4: DELETE of the IKE SA or of CHILD_SAs, and the empty liveness check (§2.4). */
  private onInformational(id: number, ps: Payload[], path: Path): Step {
    const events: IkeEvent[] = [];
    const answer: Payload[] = [];
    for (const p of ps) {
      if (p.kind !== "delete") continue;
      if (p.protocol === Protocol.IKE) {
        const step = this.respond(Exchange.INFORMATIONAL, id, [], path);
        // §2.25.2 "reply as usual, and forget its own rekeying request"; §2.8.2: the peer did not
        // see our crossing rekey, so its new IKE SA (already answered) takes the CHILD_SAs
        const c = this.ikeCollision;
        this.ikeCollision = undefined;
        if (c) step.events.push(this.adopt(c.theirs));
        this.state = "deleted";
        this.requests.forget();
        step.events.push({ type: "ikeSaDeleted", ike: this.name, byPeer: true, ...this.deletedWhy() });
        return step;
      }
      if (p.protocol === Protocol.ESP) {
        // §1.4.1: the SPIs named are the ones the peer receives on (our outbound); we
        // answer with our halves of those pairs. SPIs we do not know are skipped.
        const theirs = new Set(p.spis.filter((x) => x.length === 4).map(spiNumber));
        const spisIn = forgetChildren(this.ctx, this.ctx.children.filter((c) => theirs.has(c.spiOut)).map((c) => c.spiIn));
        // §2.25.1: a CHILD_SA we are deleting as well is answered without a Delete payload
        const answered = spisIn.filter((s) => !this.pending?.deleting?.includes(s));
        if (answered.length) answer.push({ kind: "delete", protocol: Protocol.ESP, spis: answered.map(spiBytes) });
        if (spisIn.length) events.push({ type: "childSaDeleted", ike: this.name, spisIn });
      }
    }
    const step = this.respond(Exchange.INFORMATIONAL, id, answer, path);
    step.events.push(...events);
    return step;
  }

  private respond(exchange: number, id: number, inner: Payload[], path: Path): Step {
    const datagrams = sealProtected(this.ctx, this.header(exchange, id, true), inner);
    this.peer.answered(id, datagrams, path);
    return { send: datagrams.map((bytes) => ({ bytes, path })), events: [] };
  }

  /**
   * Which CHILD_SA to delete once our rekey of `old` has produced `fresh`. Normally
   * the old one. §2.8.1: if the peer rekeyed `old` at the same time, "the SA created
   * with the lowest of the four nonces used in the two exchanges SHOULD be closed by
   * the endpoint that created it": if that is ours, we delete ours and leave the old
   * one to the peer, whose rekey survives; else ours survives and the old one goes.
   */
  private afterRekey(old: number, fresh: number, ourNonces: Uint8Array[]): number {
    const c = this.collision;
    if (!c || c.rekeyOf !== old) return old;
    this.collision = undefined;
    return lowestNonceIsOurs(ourNonces, c.nonces) ? fresh : old;
  }

  // --- outcomes ------------------------------------------------------------

  /** The new IKE SA of a rekey takes the CHILD_SAs (§1.3.2); this one only waits for its DELETE. */
  private adopt(s: IkeSa): IkeEvent {
    s.ctx.children = this.ctx.children;
    this.ctx.children = [];
    this.successor = s;
    return { type: "ikeSaRekeyed", ike: this.name, newSa: s.id };
  }

  private deletedWhy(): { why?: "rekeyed" | "redundant" } {
    return this.redundant ? { why: "redundant" } : this.successor ? { why: "rekeyed" } : {};
  }

  /**
   * The peer rekeys this IKE SA (§1.3.2). Refused with TEMPORARY_FAILURE once it has been
   * rekeyed already, and while a CHILD_SA exchange of ours is outstanding (its outcome must
   * land on the IKE SA that keeps the CHILD_SAs; the peer retries). §2.25.2: a rekey crossing
   * ours is answered as usual; which new IKE SA survives is decided when ours is answered (§2.8.2).
   */
  private onPeerIkeRekey(id: number, ps: Payload[], path: Path): Step {
    const p = this.pending;
    if (this.successor || this.ikeCollision || p?.child || p?.deleting) {
      const step = this.respond(Exchange.CREATE_CHILD_SA, id, [{ kind: "notify", protocol: 0, spi: new Uint8Array(0), notifyType: Notify.TEMPORARY_FAILURE, data: new Uint8Array(0) }], path);
      step.events.push({ type: "ikeRekeyFailed", ike: this.name, notify: Notify.TEMPORARY_FAILURE, detail: "the peer's IKE SA rekey meets an exchange of ours (§2.25)", peerRequest: true });
      return step;
    }
    const a = onIkeRekeyRequest(this.ctx, ps);
    const step = this.respond(Exchange.CREATE_CHILD_SA, id, a.payloads, path);
    if (!a.outcome.ok) step.events.push({ type: "ikeRekeyFailed", ike: this.name, notify: a.outcome.notify, detail: a.outcome.detail, peerRequest: true });
    else if (p?.ikeRekey) {
      this.sibling = new IkeSa(a.outcome.next, "established");
      this.ikeCollision = { theirs: this.sibling, nonces: [nonceOf(ps), nonceOf(a.payloads)] };
    } else step.events.push(this.adopt(new IkeSa(a.outcome.next, "established")));
    return step;
  }

  /**
   * Our IKE SA rekey answered. Alone: the new IKE SA takes the CHILD_SAs and we delete this
   * one (§2.18). After a crossing rekey by the peer (§2.8.2): "the new IKE SA containing the
   * lowest nonce SHOULD be deleted by the node that created it, and the other surviving new
   * IKE SA MUST inherit all the Child SAs": if the lowest of the four nonces is in our
   * exchange, we delete our new IKE SA and the peer deletes this one; else ours survives, we
   * delete this one, and the peer deletes its own. If the peer refused ours (it finished its
   * rekey first and saw no collision: TEMPORARY_FAILURE), its new IKE SA takes over.
   */
  private onIkeRekeyAnswer(pending: PendingIkeRekey, ps: Payload[], step: Step): void {
    const r = onIkeRekeyResponse(this.ctx, pending, ps);
    const c = this.ikeCollision;
    this.ikeCollision = undefined;
    if (!r.ok) {
      step.events.push({ type: "ikeRekeyFailed", ike: this.name, notify: r.notify, detail: r.detail });
      if (c) step.events.push(this.adopt(c.theirs));
      return;
    }
    const ours = new IkeSa(r.next, "established");
    if (c && lowestNonceIsOurs([pending.ni, nonceOf(ps)], c.nonces)) {
      ours.redundant = true;
      this.sibling = ours;
      step.events.push(this.adopt(c.theirs));
      step.send.push(...ours.close().send);
      return;
    }
    if (c) c.theirs.redundant = true;
    step.events.push(this.adopt(ours));
    this.requests.later(() => {
      this.state = "deleting";
      return this.sealedRequest(Exchange.INFORMATIONAL, [{ kind: "delete", protocol: Protocol.IKE, spis: [] }]);
    }, true);
  }

  private established(): IkeEvent {
    const c = this.ctx.ike!;
    const proposal = [
      `${c.encr.cipher}-${c.encr.keyBits}`, c.integ ? `integ-${c.integ.id}` : "", `prf-${c.prf!.hash}`, `dh-${this.ctx.group}`,
    ].filter(Boolean).join("/");
    this.lastHeard = this.lastKeepalive = this.ctx.deps.now();
    return {
      type: "ikeSaEstablished", ike: this.name, spiI: this.spiI, spiR: this.spiR, initiator: this.ctx.initiator, proposal,
      natDetected: this.ctx.natHere || this.ctx.natThere, behindNat: !!this.ctx.behindNat, initialContact: !!this.ctx.peerInitialContact,
      peerAuth: this.ctx.peerCert ? { method: "certificate", subject: this.ctx.peerCert.subject.replace(/\n/g, ", "), serial: this.ctx.peerCert.serialNumber.toLowerCase() } : { method: "psk" },
    };
  }

  private fail(reason: FailReason, detail: string): Step {
    this.state = "failed";
    return { send: [], events: [{ type: "failed", ike: this.name, reason, detail }] };
  }

  private refused(reason: string, detail: string): Step {
    return { send: [], events: [{ type: "refused", ike: this.name, reason, detail }] };
  }
}

const none = (): Step => ({ send: [], events: [] });
