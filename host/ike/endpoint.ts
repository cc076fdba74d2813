// Many IKE SAs behind one pair of ports: finds the SA a datagram belongs to by
// the SPI we chose (RFC 7296 §2.6: each side picks its own SPI to find its SA),
// starts a responder SA for a fresh IKE_SA_INIT request, answers retransmitted
// IKE_SA_INIT requests from the cached response (§2.1), and counts what it
// drops by reason. Still no I/O: transport.ts feeds it datagrams and sends
// what comes back.
import { Exchange, Flag, Notify, SPI_BYTES } from "./constants.ts";
import { CookieJar } from "./cookie.ts";
import { hexSpi } from "./context.ts";
import { IkeSa } from "./ike_sa.ts";
import { decodeMessage, encodeMessage, fromInitiator, isResponse, type Message } from "./message.ts";
import type { Deps, IkeSaConfig, Path, Step } from "./types.ts";
import { UnprotectedAnswers, type AnswerLimits } from "./unprotected_answers.ts";

/** Half-open SAs from which cookies are demanded unless configured otherwise. */
const DEFAULT_COOKIE_THRESHOLD = 64;
/**
 * Hard bounds on half-open SAs, past which an IKE_SA_INIT request is dropped
 * (counted) even with a valid cookie: a cookie proves only that the sender
 * receives at its address (§2.6), so an attacker with many addresses passes
 * the cookie check; these cap its memory. strongSwan has the same pair
 * (`block_threshold` per address, `init_limit_half_open` in total).
 */
const DEFAULT_HALF_OPEN_PER_ADDRESS = 32;
const DEFAULT_HALF_OPEN_MAX = 8192;

export class IkeEndpoint {
  /** Every live SA by the SPI we chose (SPIi when we initiated, SPIr when we responded). */
  readonly sas = new Map<string, IkeSa>();
  /** Responder SAs by (peer address, port, SPIi), to answer IKE_SA_INIT retransmissions. */
  private readonly halfOpen = new Map<string, IkeSa>();
  /** How many of `halfOpen` each peer address holds, and each half-open SA's key there. */
  private readonly halfOpenByAddress = new Map<string, number>();
  private readonly halfOpenKey = new Map<IkeSa, string>();
  /** Dropped datagrams and refused messages by reason. */
  readonly counters = new Map<string, number>();

  private readonly cookies: CookieJar;
  /** INVALID_MAJOR_VERSION answers (§2.5), rate-limited. */
  private readonly answers: UnprotectedAnswers;

  /**
   * `configFor` names the configuration for a peer address (responder side); undefined = not a peer of ours.
   * `cookieThreshold`: from this many half-open SAs on, IKE_SA_INIT requests must carry a cookie (§2.6).
   * `halfOpenPerAddress`, `halfOpenMax`: past these, new IKE_SA_INIT requests are dropped.
   * `answerLimits`: token buckets for the INVALID_MAJOR_VERSION answers (unprotected_answers.ts).
   */
  constructor(
    private readonly configFor: (remoteAddress: string) => IkeSaConfig | undefined,
    private readonly deps: Deps,
    private readonly opts: { cookieThreshold?: number; halfOpenPerAddress?: number; halfOpenMax?: number; answerLimits?: AnswerLimits } = {},
  ) {
    this.cookies = new CookieJar(deps.random);
    this.answers = new UnprotectedAnswers(deps.now, opts.answerLimits);
  }

  /** Half-open responder SAs (answered IKE_SA_INIT, no IKE_AUTH yet). */
  get halfOpenCount(): number {
    return this.halfOpen.size;
  }

  private count(reason: string): void {
    this.counters.set(reason, (this.counters.get(reason) ?? 0) + 1);
  }

  initiate(cfg: IkeSaConfig, path: Path): { sa: IkeSa; step: Step } {
    const r = IkeSa.initiate(cfg, path, this.deps);
    this.sas.set(r.sa.spiI, r.sa);
    return r;
  }

  /** One datagram as it came off the socket (the non-ESP marker already removed, RFC 3948 §2.2). */
  receive(bytes: Uint8Array, path: Path): Step {
    const d = decodeMessage(bytes);
    if (!d.ok) return this.undecodable(bytes, path, d.error.reason);
    const m = d.value;
    const h = m.header;
    const zeroR = h.spiR.every((b) => b === 0);
    if (fromInitiator(h) && !isResponse(h) && zeroR && h.exchange === Exchange.IKE_SA_INIT) {
      return this.initRequest(m, bytes, path);
    }
    // the I flag tells whose SPI is ours: an initiator's message is for our responder SA
    const sa = this.sas.get(hexSpi(fromInitiator(h) ? h.spiR : h.spiI));
    if (!sa) {
      this.count("unknown-spi");
      return { send: [], events: [] };
    }
    return this.done(sa, sa.receive(m, bytes, path));
  }

  /** A datagram the decoder refused: counted, and a newer major version's IKE_SA_INIT maybe answered (§2.5). */
  private undecodable(bytes: Uint8Array, path: Path, reason: string): Step {
    // only to addresses we have a peer configuration for: no answer to the rest of the world
    const peer = reason === "bad-major-version" && this.configFor(path.remoteAddress) !== undefined;
    const v = peer ? this.answers.invalidMajorVersion(bytes, path.remoteAddress) : undefined;
    if (v?.kind === "answer") {
      this.count("invalid-major-version-sent");
      return { send: [{ bytes: v.bytes, path }], events: [] };
    }
    this.count(v?.kind === "drop" ? v.reason : `decode:${reason}`);
    return { send: [], events: [] };
  }

  private initRequest(m: Message, bytes: Uint8Array, path: Path): Step {
    const key = `${path.remoteAddress}|${path.remotePort}|${hexSpi(m.header.spiI)}`;
    const known = this.halfOpen.get(key);
    if (known) return this.done(known, known.receive(m, bytes, path));
    const cfg = this.configFor(path.remoteAddress);
    if (!cfg) {
      this.count("unknown-peer");
      return { send: [], events: [] };
    }
    if (this.halfOpen.size >= (this.opts.cookieThreshold ?? DEFAULT_COOKIE_THRESHOLD)) {
      const challenge = this.cookieChallenge(m, path);
      if (challenge) return challenge;
    }
    const mine = this.halfOpenByAddress.get(path.remoteAddress) ?? 0;
    if (mine >= (this.opts.halfOpenPerAddress ?? DEFAULT_HALF_OPEN_PER_ADDRESS)) {
      this.count("half-open-per-address");
      return { send: [], events: [] };
    }
    if (this.halfOpen.size >= (this.opts.halfOpenMax ?? DEFAULT_HALF_OPEN_MAX)) {
      this.count("half-open-limit");
      return { send: [], events: [] };
    }
    const r = IkeSa.respond(cfg, this.deps, m, bytes, path);
    if (r.sa) {
      this.sas.set(r.sa.spiR, r.sa);
      this.halfOpen.set(key, r.sa);
      this.halfOpenKey.set(r.sa, key);
      this.halfOpenByAddress.set(path.remoteAddress, mine + 1);
    }
    return this.counted(r.step);
  }

  /** Takes the half-open entry `key` ("address|port|SPIi") of `sa` out of the indexes. */
  private forgetHalfOpen(key: string, sa: IkeSa): void {
    this.halfOpen.delete(key);
    this.halfOpenKey.delete(sa);
    // the address from the key: the SA's own path may have moved since (§2.23)
    const addr = key.slice(0, key.indexOf("|"));
    const n = (this.halfOpenByAddress.get(addr) ?? 1) - 1;
    if (n > 0) this.halfOpenByAddress.set(addr, n);
    else this.halfOpenByAddress.delete(addr);
  }

  /**
   * §2.6: under load a request must begin with a valid N(COOKIE); otherwise the
   * answer is a fresh cookie and nothing is kept. Returns undefined to go on.
   */
  private cookieChallenge(m: Message, path: Path): Step | undefined {
    const ni = m.payloads.find((p) => p.kind === "nonce");
    if (!ni) return undefined; // refused later with INVALID_SYNTAX
    const first = m.payloads[0];
    if (first?.kind === "notify" && first.notifyType === Notify.COOKIE && this.cookies.valid(first.data, ni.data, path.remoteAddress, m.header.spiI)) return undefined;
    this.count("cookie-sent");
    const header = { ...m.header, spiR: new Uint8Array(SPI_BYTES), flags: Flag.RESPONSE, messageId: 0 };
    const cookie = this.cookies.make(ni.data, path.remoteAddress, m.header.spiI);
    const bytes = encodeMessage({ header, payloads: [{ kind: "notify", protocol: 0, spi: new Uint8Array(0), notifyType: Notify.COOKIE, data: cookie }] });
    return { send: [{ bytes, path }], events: [] };
  }

  /** Retransmissions and timeouts of every SA. */
  tick(now: number): Step {
    const out: Step = { send: [], events: [] };
    for (const sa of [...this.sas.values()]) {
      const s = this.done(sa, sa.tick(now));
      out.send.push(...s.send);
      out.events.push(...s.events);
    }
    return out;
  }

  /** The earliest time `tick` has work, or undefined. */
  get nextTimeout(): number | undefined {
    let t: number | undefined;
    for (const sa of this.sas.values()) {
      const n = sa.nextTimeout;
      if (n !== undefined && (t === undefined || n < t)) t = n;
    }
    return t;
  }

  /** Forgets SAs that are over, and keeps the half-open index to SAs still negotiating. */
  private done(sa: IkeSa, step: Step): Step {
    if (step.events.some((e) => e.type === "ikeSaEstablished" && e.initialContact)) this.initialContact(sa, step);
    // a rekeyed IKE SA (§1.3.2) is found by its new SPI from now on, and so is the other
    // new IKE SA of a simultaneous rekey (§2.8.2) until one side has deleted it
    for (const next of [sa.successor, sa.sibling]) {
      if (next && next.state !== "deleted" && next.state !== "failed") this.sas.set(next.initiatorSide() ? next.spiI : next.spiR, next);
    }
    if (sa.state === "failed" || sa.state === "deleted") {
      this.sas.delete(sa.initiatorSide() ? sa.spiI : sa.spiR);
    }
    const key = this.halfOpenKey.get(sa);
    if (key !== undefined && sa.state !== "init-answered") this.forgetHalfOpen(key, sa);
    return this.counted(step);
  }

  /**
   * §2.4: a peer that sends INITIAL_CONTACT has no other IKE SA with us any more;
   * every other SA authenticated with the same identity is deleted locally, without
   * a message (the peer would not answer it).
   */
  private initialContact(fresh: IkeSa, step: Step): void {
    const id = fresh.peerId;
    if (!id) return;
    for (const other of [...this.sas.values()]) {
      const o = other.peerId;
      if (other === fresh || !o || o.idType !== id.idType || !Buffer.from(o.data).equals(id.data)) continue;
      step.events.push(...other.abandon().events);
      this.sas.delete(other.initiatorSide() ? other.spiI : other.spiR);
    }
  }

  private counted(step: Step): Step {
    for (const e of step.events) if (e.type === "refused") this.count(e.reason);
    return step;
  }
}
