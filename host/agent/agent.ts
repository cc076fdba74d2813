// The CE agent (issue 8, item 3; draft-ietf-l3vpn-ce-based-02 §3.3–§3.6):
// keeps one CE's data plane in step with its controller.
//
//   controller ──SSE "change"──► pull GET /v1/ce/config ──► apply() ──► IkeRuntime.apply ──► lifecycle.apply
//        (mTLS)   on connect, on every notification, every pollMs     (atomic; only the peers that changed)
//
// - The config is pulled whole (§3.5 notify-then-pull): an event only says
//   "something changed", so a lost event costs nothing but a timer's wait.
// - apply() is the one step from a controller's config to the data plane,
//   whatever made its SAs (controller-made keys now, IKE peers later): the
//   node fields the CE decides (TUN, control socket, state dir) are merged in,
//   the result is checked like any config file and handed to the SA
//   lifecycle's apply, then saved (0600) for a restart without the controller.
// - Controller down: forwarding goes on with what was applied; the push
//   channel reconnects with exponential backoff and jitter.
// - Site removed or certificate revoked (403 site-removed / certificate-
//   revoked): every peer is removed (the lifecycle zeroes their keys), the
//   saved config, key and certificate are shredded, and the agent stops (§3.6).
// - Controller-made keys are rekeyed by the controller (RFC 9061 §4.1.2):
//   the agent reports each SA that reaches a lifetime (sadb_expire.ts) and,
//   after every pull, the config version it runs — each rekey step waits for
//   both CEs of the pair to have applied the previous one.
// - NAT (issue 8 item 5): once the data plane runs, each Internet-facing WAN
//   port's public address and port are learned with STUN through it and
//   registered with the controller when they change (wan_register.ts) — at
//   start, every `wanMs`, and after each applied config.
import { X509Certificate } from "node:crypto";
import { parseConfig } from "../config/load.ts";
import type { Config } from "../config/model.ts";
import type { ApplyReport } from "../sa/lifecycle.ts";
import { CeClient, ControllerError } from "./ce_client.ts";
import { renew } from "./enrol.ts";
import type { AgentState, Enrolment, SavedConfig } from "./state.ts";
import type { StunDataPlane } from "../net/stun_client.ts";
import { WanRegistrar } from "./wan_register.ts";
import { ExpiryReporter } from "./sadb_expire.ts";
import type { SaLifecycle } from "../sa/lifecycle.ts";

/** The node fields the CE decides for itself (docs/config.md `node`), merged over the controller's. */
export interface LocalNode {
  tun?: { name?: string; addresses?: string[]; mtu?: number; persistent?: boolean };
  control?: { socket: string };
  workers?: number;
}

/**
 * What applies a whole config to the running data plane: `wesp up`'s IKE
 * runtime (host/ike/runtime.ts), whose apply hands static peers (controller-
 * made keys) to the SA lifecycle and starts or stops IKE for `ike` peers — so
 * the agent's one apply step serves both kinds of config.
 */
export interface Applier {
  apply(config: Config): Promise<ApplyReport>;
  /** The controller says peer `name`'s CE came up: an IKE peer we initiate to is tried now (IkeRuntime.peerOnline). */
  peerOnline?(name: string): void;
}

export interface AgentOptions {
  state: AgentState;
  enrolment: Enrolment;
  local: LocalNode;
  /** Pull the config this often even without a notification (default 60 s). */
  pollMs?: number;
  /** Reconnect backoff: first delay and ceiling (default 500 ms, 30 s). */
  backoffMs?: [number, number];
  /** Learn and register the WAN ports' public side this often (default 60 s). */
  wanMs?: number;
  log: (line: string) => void;
}

/** The 403 codes that mean this CE is no longer part of its VPN. */
const GONE = new Set(["site-removed", "certificate-revoked"]);
/** Seconds of silence after which the push channel counts as dead (3 missed keepalives). */
const PUSH_IDLE_MS = 45_000;

export function isRemoval(e: unknown): e is ControllerError {
  return e instanceof ControllerError && e.status === 403 && GONE.has(e.code);
}

interface ConfigAnswer {
  vpn: string;
  site: string;
  version: number;
  /** The controller's STUN responder: its API host, this UDP port. */
  stun?: { port?: unknown };
  config: Record<string, unknown>;
}

export class Agent {
  private client: CeClient;
  private plane?: Applier;
  private appliedText = "";
  private pulling?: Promise<void>;
  private pullAgain = false;
  private stopped = false;
  private push?: { close(): void };
  private timers = new Set<NodeJS.Timeout>();
  private failures = 0;
  private running?: Config;
  private stunPort?: number;
  private wan?: WanRegistrar;
  /** Resolves when the controller removed this site (after its state was dropped). */
  readonly removed: Promise<string>;
  private onRemoved: (why: string) => void = () => {};
  /** Push-channel connections made (for status and tests). */
  connects = 0;
  /** The config version last reported applied to the controller. */
  private reported = -1;
  private expiries?: ExpiryReporter;

  constructor(private readonly opts: AgentOptions) {
    this.client = this.clientFor(opts.enrolment);
    this.removed = new Promise((r) => (this.onRemoved = r));
  }

  private clientFor(e: Enrolment): CeClient {
    return new CeClient(e.url, { ca: e.caPem, cert: e.certPem, key: e.keyPem });
  }

  get identity(): string {
    return this.opts.enrolment.identity;
  }

  /** The controller's config for this CE now. Rejects with ControllerError or a network error. */
  fetch(): Promise<SavedConfig> {
    return this.client.call<ConfigAnswer>("GET", "/v1/ce/config").then((r) => {
      if (!r || typeof r.config !== "object" || r.config === null || typeof r.version !== "number") {
        throw new ControllerError(0, "bad-response", "the config answer has no config");
      }
      const sp = r.stun?.port;
      this.stunPort = typeof sp === "number" && Number.isInteger(sp) && sp > 0 && sp < 65536 ? sp : undefined;
      return { version: r.version, config: r.config };
    });
  }

  /** The first config: the controller's (one try), else the saved one, else the controller's once it answers. */
  async firstConfig(): Promise<SavedConfig> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.fetch();
      } catch (e) {
        if (isRemoval(e)) throw e;
        const saved = attempt === 0 ? this.opts.state.loadConfig() : undefined;
        if (saved) {
          this.opts.log(`controller unreachable (${(e as Error).message}): starting with the last config applied (version ${saved.version})`);
          return saved;
        }
        const wait = this.backoff(attempt);
        this.opts.log(`no config yet and the controller does not answer (${(e as Error).message}); retrying in ${wait} ms`);
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  /** `saved` with this CE's own node fields, checked as a config file is (throws ConfigError). */
  configOf(saved: SavedConfig): Config {
    const c = saved.config as { node?: Record<string, unknown> };
    const local = this.opts.local;
    const doc = {
      ...saved.config,
      node: {
        ...(c.node ?? {}),
        ...(local.tun ? { tun: local.tun } : {}),
        ...(local.control ? { control: local.control } : {}),
        ...(local.workers ? { workers: local.workers } : {}),
        state_dir: this.opts.state.seqDir,
      },
    };
    return parseConfig(JSON.stringify(doc), { baseDir: this.opts.state.dir, source: `controller config v${saved.version}` }).config;
  }

  /** Hands the running data plane (started with `first`) to the agent: from now on configs are applied to it. */
  attach(plane: Applier, first: SavedConfig): void {
    this.plane = plane;
    this.running = this.configOf(first);
    this.appliedText = JSON.stringify(first.config);
    this.opts.state.saveConfig(first);
  }

  /**
   * The one "apply a config" step: an unchanged config is left alone; a new
   * one goes through the SA lifecycle (atomic, touching only changed peers)
   * and is saved once applied. A refusal leaves the running config in place.
   */
  async apply(saved: SavedConfig, why: string): Promise<ApplyReport | undefined> {
    const text = JSON.stringify(saved.config);
    if (!this.plane || text === this.appliedText) return undefined;
    const cfg = this.configOf(saved);
    const r = await this.plane.apply(cfg);
    this.running = cfg;
    this.appliedText = text;
    this.opts.state.saveConfig(saved);
    this.opts.log(`applied config version ${saved.version} (${why}): added [${r.added.join(", ")}] removed [${r.removed.join(", ")}] changed [${r.changed.join(", ")}] unchanged ${r.unchanged.length}`);
    return r;
  }

  /** `wesp reload` on an agent: pull now and apply; rejects (the running config stays) when that fails. */
  async reload(): Promise<ApplyReport> {
    const saved = await this.fetch();
    const r = await this.apply(saved, "wesp reload");
    const peers = ((saved.config as { peers?: { name?: unknown }[] }).peers ?? []).map((p) => String(p.name));
    return r ?? { added: [], removed: [], changed: [], unchanged: peers };
  }

  /** Pulls and applies; calls made while a pull runs are folded into one more pull after it. */
  pull(why: string): Promise<void> {
    if (this.pulling) {
      this.pullAgain = true;
      return this.pulling;
    }
    this.pulling = (async () => {
      do {
        this.pullAgain = false;
        try {
          const saved = await this.fetch();
          if (await this.apply(saved, why)) void this.registerWan();
          await this.reportApplied(saved.version);
          await this.renewIfDue();
        } catch (e) {
          if (isRemoval(e)) return this.drop(e);
          this.opts.log(`pull (${why}) failed, the running config stays: ${(e as Error).message}`);
        }
      } while (this.pullAgain && !this.stopped);
    })().finally(() => (this.pulling = undefined));
    return this.pulling;
  }

  /**
   * Tells the controller this CE runs config `version` now (only when it
   * rose): the acknowledgement rekey steps wait for. Also sends any SA
   * expiry a failed attempt left. Failures are logged; the next pull retries.
   */
  private async reportApplied(version: number): Promise<void> {
    if (!this.plane || this.stopped) return;
    try {
      if (version > this.reported) {
        await this.client.call("POST", "/v1/ce/applied", { version });
        this.reported = version;
      }
      await this.expiries?.flush(this.client);
    } catch (e) {
      if (isRemoval(e)) throw e;
      this.opts.log(`reporting applied config version ${version} failed (retried at the next pull): ${(e as Error).message}`);
    }
  }

  /** Reports the SAs of controller-made peers that reach a lifetime (sadb_expire.ts). */
  watchSas(lifecycle: SaLifecycle): void {
    this.expiries = new ExpiryReporter(lifecycle, () => this.running, () => this.client, this.opts.log);
  }

  /** Starts the push channel and the fallback timer. */
  start(): void {
    const poll = setInterval(() => void this.pull("timer"), this.opts.pollMs ?? 60_000);
    poll.unref();
    this.timers.add(poll);
    void this.connect();
  }

  /**
   * Learns the WAN ports' public side through `dp` (the running data plane)
   * and registers changes: now, every `wanMs`, and after each applied config.
   * Nothing when the controller names no STUN port.
   */
  learnWan(dp: StunDataPlane): void {
    this.wan = new WanRegistrar(dp, this.opts.log);
    const t = setInterval(() => void this.registerWan(), this.opts.wanMs ?? 60_000);
    t.unref();
    this.timers.add(t);
    void this.registerWan();
  }

  /** One learn-and-register round (resolves when done; failures are logged, never thrown). */
  async registerWan(): Promise<void> {
    if (!this.wan || !this.running || this.stopped) return;
    if (this.stunPort === undefined) return;
    try {
      const host = await WanRegistrar.serverHost(this.opts.enrolment.url);
      await this.wan.round(this.client, this.running.node.wan, { host, port: this.stunPort });
    } catch (e) {
      this.opts.log(`WAN port registration failed: ${(e as Error).message}`);
    }
  }

  /** "peer-online" {peer}: hostile input like every event — a known IKE peer's name or nothing happens. */
  private peerOnline(data: string): void {
    let peer: unknown;
    try {
      peer = (JSON.parse(data) as { peer?: unknown })?.peer;
    } catch {
      return;
    }
    if (typeof peer !== "string" || !this.running?.peers.some((p) => p.name === peer && p.ike)) return;
    this.plane?.peerOnline?.(peer);
  }

  private backoff(n: number): number {
    const [min, max] = this.opts.backoffMs ?? [500, 30_000];
    const d = Math.min(max, min * 2 ** Math.min(n, 16));
    return Math.round(d / 2 + (Math.random() * d) / 2);
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    try {
      this.push = await this.client.events("/v1/ce/events", (ev) => {
        if (ev.event === "hello") {
          this.failures = 0;
          this.connects++;
          this.opts.log(`push channel connected to ${this.opts.enrolment.url} (${this.connects === 1 ? "first time" : `reconnect ${this.connects - 1}`})`);
          void this.pull("connect");
        } else if (ev.event === "change") void this.pull("notification");
        else if (ev.event === "peer-online") this.peerOnline(ev.data);
      }, (why) => this.retry(why), PUSH_IDLE_MS);
    } catch (e) {
      if (isRemoval(e)) return void this.drop(e);
      this.retry(e as Error);
    }
  }

  private retry(why: Error): void {
    this.push = undefined;
    if (this.stopped) return;
    const wait = this.backoff(this.failures++);
    this.opts.log(`push channel down (${why.message}); forwarding goes on; reconnecting in ${wait} ms`);
    const t = setTimeout(() => {
      this.timers.delete(t);
      void this.connect();
    }, wait);
    this.timers.add(t);
  }

  /** Renews the certificate once half its lifetime is gone (it is short-lived: ca.ts CE_VALIDITY_MS). */
  private async renewIfDue(): Promise<void> {
    const c = new X509Certificate(this.opts.enrolment.certPem);
    const from = Date.parse(c.validFrom);
    const to = Date.parse(c.validTo);
    if (Date.now() < from + (to - from) / 2) return;
    const next = await renew(this.opts.enrolment);
    this.opts.state.saveEnrolment(next);
    this.opts.enrolment = next;
    this.client = this.clientFor(next);
    this.opts.log(`certificate renewed (valid until ${new X509Certificate(next.certPem).validTo})`);
    // IKE peers (keying `ike`) sign with the certificate loaded with the config: apply it again, so
    // that they load the new one (a changed certificate restarts them: runtime.ts fingerprint).
    this.appliedText = "";
    this.pullAgain = true;
  }

  /** §3.6: the controller refused us for good — remove every peer (keys zeroed), shred what is stored. */
  private async drop(e: ControllerError): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.closeChannels();
    let removed: string[] = [];
    if (this.plane) {
      const cur = JSON.parse(this.appliedText || "{}") as SavedConfig["config"];
      const r = await this.plane.apply(this.configOf({ version: -1, config: { ...cur, peers: [] } })).catch(() => undefined);
      removed = r?.removed ?? [];
    }
    this.opts.state.dropVpnState();
    this.appliedText = "";
    const why = `the controller refused this CE (${e.code}: ${e.message}); dropped its VPN state: removed peers [${removed.join(", ")}], keys zeroed, stored config, key and certificate shredded`;
    this.opts.log(why);
    this.onRemoved(why);
  }

  private closeChannels(): void {
    this.push?.close();
    this.push = undefined;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  /** Stops pulling and closes the push channel (the forwarder is the caller's). */
  stop(): void {
    this.stopped = true;
    this.expiries?.stop();
    this.closeChannels();
  }
}
