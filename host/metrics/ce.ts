// A CE's Prometheus metrics (docs/metrics.md lists every one).
//
// Everything is read on scrape from the forwarder's `status()` — the same
// snapshot `wesp status --json` prints (host/control/status.ts) — when
// prom-client's registry asks each metric for its values: nothing runs per
// packet, and one scrape is one status snapshot, so its numbers agree. The only
// state kept here is a count of SA lifecycle events (installs, removals,
// rekey requests, alarms), heard as they happen: they are not in the status.
//
// Cardinality is bounded by the config: label values are peer names, SPIs of
// SAs held now, drop reason names (host/core/abi.ts REASON_NAMES), socket
// names, and small fixed sets (direction, why). Per-SA and per-peer drop
// series appear only for reasons that counted something; the global ones
// for every reason, zeros included.
import { Counter, Registry, collectDefaultMetrics, type Metric } from "prom-client";
import type { CounterBlock, PeerStatus, SaStatus, Status } from "../control/status.ts";
import type { SaLifecycle } from "../sa/lifecycle.ts";
import type { MetricsListen } from "../config/model.ts";
import type { Logger } from "./log.ts";
import { MetricsServer } from "./http.ts";
import { Tally } from "./tally.ts";
import type { IkeTelemetry } from "../ike/runtime.ts";

/** The SPI as a label: 0x and 8 hex digits, as `wesp status` prints it. */
export const spiLabel = (spi: number) => `0x${(spi >>> 0).toString(16).padStart(8, "0")}`;

/**
 * An IKE peer as status.ike carries it (host/control/status.ts IkePeerStatus,
 * present when the config has IKE peers). Read field by field, each checked:
 * a status without IKE, or of another shape, just gives no IKE series.
 */
interface IkePeerView {
  name: string;
  state?: unknown;
  failures?: unknown;
  alarm?: unknown;
  childSas?: unknown;
  establishedSeconds?: unknown;
  lastHeardSeconds?: unknown;
}

/** The IKE peer states of status.ike (IkePeerStatus.state). */
export const IKE_STATES = ["up", "connecting", "retrying", "down", "waiting"] as const;

/** status.ike as a list of peers; [] when absent. */
export function ikePeers(s: Status): IkePeerView[] {
  const ike = (s as { ike?: unknown }).ike;
  if (!Array.isArray(ike)) return [];
  return ike.filter((p): p is IkePeerView => !!p && typeof p === "object" && typeof (p as IkePeerView).name === "string");
}

const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);
const snake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** A peer's SAs held now (removed ones carry no counters). */
function liveSas(p: PeerStatus): [SaStatus, "in" | "out"][] {
  const all: [SaStatus, "in" | "out"][] = [...(p.outbound ? [[p.outbound, "out"] as [SaStatus, "out"]] : []), ...p.inbound.map((s) => [s, "in"] as [SaStatus, "in"])];
  return all.filter(([s]) => !s.expired);
}

/** Tunnel state: a plain (ipip/gre) peer is up as configured; an ESP peer when it has a live SA each way. */
export function peerUp(p: PeerStatus): boolean {
  if (p.mode === "ipip" || p.mode === "gre") return true;
  return !!p.outbound?.live && !p.outbound.expired && p.inbound.some((s) => s.live && !s.expired);
}

type Labels = Record<string, string>;
/** Adds one sample. */
type Put = (labels: Labels, value: number) => void;

export class CeMetrics {
  readonly registry = new Registry();
  private status: Status | null = null;
  private scraping: Promise<unknown> = Promise.resolve();
  private readonly installs: Tally;
  private readonly removals: Tally;
  private readonly rekeyRequests: Counter;
  private readonly alarms: Counter;
  private readonly failoverSwitches: Counter;
  private readonly ikeEvents: Counter;
  private readonly answers: Counter;

  constructor(private readonly log?: Logger) {
    collectDefaultMetrics({ register: this.registry });
    const r = this.registry;
    // One gauge or counter whose values all come from the scrape's status.
    // A metric whose samples all come from the scrape's status: registered as a
    // snapshot (prom-client's Registry takes any object with get() returning
    // name, help, type and values), so a scrape costs one push per sample
    // rather than a Counter.inc() with its label validation and hashing each
    // (measured: 124 → 89 ms of CPU per scrape at 1,000 peers; docs/metrics.md).
    const from = (type: "counter" | "gauge", name: string, help: string, labelNames: string[], fill: (s: Status, set: Put) => void) => {
      const get = async () => {
        const values: { labels: Labels; value: number }[] = [];
        if (this.status) fill(this.status, (labels, value) => void values.push({ labels, value }));
        return { name, help, type, values, aggregator: "sum" as const };
      };
      r.registerMetric({ name, help, type, labelNames, aggregator: "sum", get, reset: () => {} } as unknown as Metric);
    };
    const eachSa = (f: (p: PeerStatus, sa: SaStatus, l: Labels) => void) => (s: Status) => {
      for (const p of s.peers) for (const [sa, direction] of liveSas(p)) f(p, sa, { peer: p.name, direction, spi: spiLabel(sa.spi) });
    };
    const drops = (c: CounterBlock, l: Labels, set: Put, zeros: boolean) => {
      for (const [reason, v] of Object.entries(c.drops)) if (zeros || v > 0) set({ ...l, reason }, v);
    };
    // A peer's totals: its live SAs' counters plus those of the SAs it had before (status
    // `retired`), so they never fall when a rekey or a lifetime replaces an SA.
    const perPeer = (s: Status, f: (l: Labels, c: CounterBlock[]) => void) => {
      for (const p of s.peers) for (const dir of ["in", "out"] as const) {
        const live = liveSas(p).filter(([, d]) => d === dir).map(([sa]) => sa.counters);
        f({ peer: p.name, direction: dir }, p.retired ? [...live, p.retired[dir]] : live);
      }
    };
    const sum = (cs: CounterBlock[], k: "packets" | "bytes") => cs.reduce((a, c) => a + c[k], 0);

    from("gauge", "wesp_info", "This CE: node name and TUN interface (value 1).", ["node", "tun"], (s, set) => set({ node: s.node, tun: s.tun }, 1));
    // Per SA.
    from("counter", "wesp_sa_packets_total", "Packets an SA passed (sealed outbound, authenticated inbound).", ["peer", "direction", "spi"], (s, set) => eachSa((_p, sa, l) => set(l, sa.counters.packets))(s));
    from("counter", "wesp_sa_bytes_total", "Bytes an SA passed (inner packets).", ["peer", "direction", "spi"], (s, set) => eachSa((_p, sa, l) => set(l, sa.counters.bytes))(s));
    from("counter", "wesp_sa_drops_total", "Packets dropped on an SA, by reason (reasons that counted something).", ["peer", "direction", "spi", "reason"], (s, set) => eachSa((_p, sa, l) => drops(sa.counters, l, set, false))(s));
    from("gauge", "wesp_sa_sequence", "Outbound: next sequence number; inbound: highest authenticated one.", ["peer", "direction", "spi"], (s, set) => eachSa((_p, sa, l) => set(l, sa.seq))(s));
    from("gauge", "wesp_sa_live", "1 while the SA's record is live in the core, else 0.", ["peer", "direction", "spi"], (s, set) => eachSa((_p, sa, l) => set(l, sa.live ? 1 : 0))(s));
    from("gauge", "wesp_sas", "SAs held now, by direction.", ["direction"], (s, set) => {
      for (const dir of ["in", "out"] as const) set({ direction: dir }, s.peers.reduce((n, p) => n + liveSas(p).filter(([sa, d]) => d === dir && sa.live).length, 0));
    });
    // Per peer: over every SA it has had since it was configured (perPeer).
    from("counter", "wesp_peer_packets_total", "Packets to/from a peer over every SA it has had (live and removed).", ["peer", "direction"], (s, set) => perPeer(s, (l, cs) => set(l, sum(cs, "packets"))));
    from("counter", "wesp_peer_bytes_total", "Bytes to/from a peer over every SA it has had (live and removed).", ["peer", "direction"], (s, set) => perPeer(s, (l, cs) => set(l, sum(cs, "bytes"))));
    from("counter", "wesp_peer_drops_total", "Drops on a peer's SAs, live and removed, by reason (reasons that counted something).", ["peer", "direction", "reason"], (s, set) => perPeer(s, (l, cs) => {
      const t: Record<string, number> = {};
      for (const c of cs) for (const [k, v] of Object.entries(c.drops)) t[k] = (t[k] ?? 0) + v;
      for (const [reason, v] of Object.entries(t)) if (v > 0) set({ ...l, reason }, v);
    }));
    from("gauge", "wesp_peer_up", "Tunnel state: 1 when the peer can carry traffic (an ESP peer: a live SA each way).", ["peer"], (s, set) => {
      for (const p of s.peers) set({ peer: p.name }, peerUp(p) ? 1 : 0);
    });
    from("gauge", "wesp_peer_info", "A peer's mode, encapsulation and suite (value 1).", ["peer", "mode", "encap", "suite"], (s, set) => {
      for (const p of s.peers) set({ peer: p.name, mode: p.mode, encap: p.encap, suite: p.suite ?? "none" }, 1);
    });
    from("gauge", "wesp_peer_remote_learned", "1 when the peer's address was learned by NAT-T (RFC 3948 §3.5), 0 when as configured.", ["peer"], (s, set) => {
      for (const p of s.peers) set({ peer: p.name }, p.learned ? 1 : 0);
    });
    from("gauge", "wesp_peers", "Peers configured.", [], (s, set) => set({}, s.peers.length));
    // Whole node, per direction: every packet the core processed is counted once, passed or dropped.
    from("counter", "wesp_packets_total", "Packets the core passed, by direction.", ["direction"], (s, set) => {
      set({ direction: "in" }, s.global.inbound.packets);
      set({ direction: "out" }, s.global.outbound.packets);
    });
    from("counter", "wesp_bytes_total", "Bytes the core passed, by direction.", ["direction"], (s, set) => {
      set({ direction: "in" }, s.global.inbound.bytes);
      set({ direction: "out" }, s.global.outbound.bytes);
    });
    from("counter", "wesp_drops_total", "Packets the core dropped, by direction and reason (every reason, zeros included).", ["direction", "reason"], (s, set) => {
      drops(s.global.inbound, { direction: "in" }, set, true);
      drops(s.global.outbound, { direction: "out" }, set, true);
    });
    // Per packet worker (node.workers > 1: status.perWorker, peers[].workers): which core carried what.
    // The series above sum the workers; an SA's there carry worker 0's SPI (host/pipeline/status_merge.ts).
    const workers = (s: Status) => (s.workers > 1 && Array.isArray(s.perWorker) ? s.perWorker : []);
    from("counter", "wesp_worker_packets_total", "Packets each packet worker's core passed, by direction (node.workers > 1).", ["worker", "direction"], (s, set) => {
      for (const w of workers(s)) {
        set({ worker: String(w.worker), direction: "in" }, w.global.inbound.packets);
        set({ worker: String(w.worker), direction: "out" }, w.global.outbound.packets);
      }
    });
    from("counter", "wesp_worker_drops_total", "Packets each worker's core dropped, by direction and reason (reasons that counted something; node.workers > 1).", ["worker", "direction", "reason"], (s, set) => {
      for (const w of workers(s)) {
        drops(w.global.inbound, { worker: String(w.worker), direction: "in" }, set, false);
        drops(w.global.outbound, { worker: String(w.worker), direction: "out" }, set, false);
      }
    });
    from("counter", "wesp_worker_sa_packets_total", "Packets each worker's own SA passed, with its own SPI (node.workers > 1: worker i's SAs are derived for it).", ["peer", "direction", "spi", "worker"], (s, set) => {
      if (workers(s).length === 0) return;
      for (const p of s.peers) for (const w of p.workers ?? []) {
        const l = { peer: p.name, worker: String(w.worker) };
        if (w.outbound?.live) set({ ...l, direction: "out", spi: spiLabel(w.outbound.spi) }, w.outbound.counters.packets);
        for (const sa of w.inbound) if (sa.live) set({ ...l, direction: "in", spi: spiLabel(sa.spi) }, sa.counters.packets);
      }
    });
    from("counter", "wesp_host_packets_total", "The host's packet counters (TUN reads and writes, datagrams sent and received, ICMP, fragments, keepalives).", ["counter"], (s, set) => {
      for (const [k, v] of Object.entries(s.host)) set({ counter: snake(k) }, v);
    });
    from("counter", "wesp_socket_datagrams_total", "Datagrams through each socket, by direction.", ["socket", "direction"], (s, set) => {
      for (const k of s.sockets) {
        set({ socket: k.name, direction: "in" }, k.received);
        set({ socket: k.name, direction: "out" }, k.sent);
      }
    });
    from("counter", "wesp_socket_errors_total", "Socket send failures (failed), datagrams given up (unsent) and truncated receives.", ["socket", "kind"], (s, set) => {
      for (const k of s.sockets) for (const kind of ["failed", "unsent", "truncated"] as const) set({ socket: k.name, kind }, k[kind]);
    });
    from("counter", "wesp_socket_kernel_drops_total", "Datagrams the kernel dropped on a full receive buffer (sockets that report it).", ["socket"], (s, set) => {
      for (const k of s.sockets) if (k.kernelDrops !== null) set({ socket: k.name }, k.kernelDrops);
    });
    // IKE (status.ike, present when IKE runs; absent otherwise).
    const ike = (f: (p: IkePeerView) => number | undefined) => (s: Status, set: Put) => {
      for (const p of ikePeers(s)) {
        const v = f(p);
        if (v !== undefined) set({ peer: p.name }, v);
      }
    };
    const bool = (v: unknown) => (typeof v === "boolean" ? (v ? 1 : 0) : undefined);
    from("gauge", "wesp_ike_up", "1 while the peer's IKE SA is established (state up).", ["peer"], ike((p) => (typeof p.state === "string" ? (p.state === "up" ? 1 : 0) : undefined)));
    from("gauge", "wesp_ike_state", "The peer's IKE state, one series per state, 1 for the current one.", ["peer", "state"], (s, set) => {
      for (const p of ikePeers(s)) if (typeof p.state === "string") for (const st of IKE_STATES) set({ peer: p.name, state: st }, p.state === st ? 1 : 0);
    });
    from("counter", "wesp_ike_drops_total", "IKE datagrams and messages dropped or refused, by reason (hostile or broken input; no peer label: most come from no known peer).", ["reason"], (s, set) => {
      const d = (s as { ikeDrops?: unknown }).ikeDrops;
      if (d && typeof d === "object") for (const [reason, v] of Object.entries(d)) if (typeof v === "number") set({ reason }, v);
    });
    from("gauge", "wesp_ike_failures", "Failed IKE set-ups in a row (0 once established).", ["peer"], ike((p) => num(p.failures)));
    from("gauge", "wesp_ike_alarm", "1 while the peer's failed set-ups have raised the alarm (retry.alarm_after in a row).", ["peer"], ike((p) => bool(p.alarm)));
    from("gauge", "wesp_ike_child_sas", "CHILD_SA pairs the peer's IKE SA holds.", ["peer"], ike((p) => (Array.isArray(p.childSas) ? p.childSas.length : undefined)));
    from("gauge", "wesp_ike_established_seconds", "Age of the peer's current IKE SA.", ["peer"], ike((p) => num(p.establishedSeconds)));
    from("gauge", "wesp_ike_last_heard_seconds", "Seconds since the peer's last authenticated IKE message.", ["peer"], ike((p) => num(p.lastHeardSeconds)));
    // Reservation journals (host/sa/journal.ts): normally gone seconds after an install. One
    // that stays means its keys' own state files are not being written (a full or read-only
    // state directory): alert on its age, since a restart then replays it instead.
    from("gauge", "wesp_sa_journals", "Reservation journals not yet retired (all workers); absent where no durable SA state is kept.", [], (s, set) => {
      if (s.journals) set({}, s.journals.count);
    });
    from("gauge", "wesp_sa_journal_pending_files", "Key state files the unretired journals still stand for.", [], (s, set) => {
      if (s.journals) set({}, s.journals.pendingFiles);
    });
    from("gauge", "wesp_sa_journal_oldest_seconds", "Age of the oldest unretired reservation journal (0 when none).", [], (s, set) => {
      if (s.journals) set({}, s.journals.oldestSeconds ?? 0);
    });
    from("gauge", "wesp_failover_via", "For each backup_for pair: 1 for the peer carrying the primary's prefixes now (host/sa/failover.ts).", ["primary", "via"], (s, set) => {
      for (const f of s.failover ?? []) set({ primary: f.primary, via: f.via ?? "" }, 1);
    });

    // Lifecycle events, counted as they happen (watch()).
    // one event per SA (a hub's start: 100,000): tallies, not Counters (tally.ts)
    this.installs = new Tally(r, "wesp_sa_installs_total", "SAs installed in the worker (start, reload, rekey), by peer and direction.", ["peer", "direction"]);
    this.removals = new Tally(r, "wesp_sa_removals_total", "SAs removed, by peer, direction and why (config, lifetime, peer-removed, tunnel-changed, stop).", ["peer", "direction", "why"]);
    this.rekeyRequests = new Counter({ name: "wesp_rekey_requests_total", help: "Rekeys the core asked for, by peer, direction and why (soft-lifetime, sequence-exhausted).", labelNames: ["peer", "direction", "why"], registers: [r] });
    this.alarms = new Counter({ name: "wesp_alarms_total", help: "Alarms raised (a person should look), by peer (\"\" when none).", labelNames: ["peer"], registers: [r] });
    this.failoverSwitches = new Counter({ name: "wesp_failover_switches_total", help: "A primary's prefixes moved to another carrier (backup_for), by primary and the peer now carrying them (\"\" for none).", labelNames: ["primary", "via"], registers: [r] });
    this.ikeEvents = new Counter({ name: "wesp_ike_events_total", help: "What happened to IKE peers' tunnels: up, down, failure (a set-up or IKE SA failed), alarm, child-rekey, ike-rekey; by peer.", labelNames: ["peer", "event"], registers: [r] });
    this.answers = new Counter({ name: "wesp_metrics_requests_total", help: "Requests to this metrics listener, by HTTP status (400: refused by the HTTP parser).", labelNames: ["code"], registers: [r] });
  }

  /** Serves GET /metrics on `listen`, each scrape one `status()` snapshot. */
  serve(listen: MetricsListen, status: () => Promise<Status>): Promise<MetricsServer> {
    return MetricsServer.listen(listen, {
      scrape: () => this.scrape(status),
      contentType: this.registry.contentType,
      onAnswer: (code) => this.answers.inc({ code: String(code) }),
    });
  }

  /** Counts the lifecycle's events (and logs each at debug); call before the worker starts (ForwarderOptions.onLifecycle). */
  watch(lifecycle: SaLifecycle): void {
    // the debug lines are built only at debug level: 100,000 of them at a hub's start
    const debug = this.log?.level === "debug" ? this.log : undefined;
    lifecycle.on("sa-installed", (e) => {
      this.installs.inc(e.peer, e.dir);
      debug?.debug(`peer ${e.peer}: ${e.dir}bound SA ${spiLabel(e.spi)} installed`, { peer: e.peer, direction: e.dir, spi: spiLabel(e.spi), saId: e.saId });
    });
    lifecycle.on("sa-removed", (e) => {
      this.removals.inc(e.peer, e.dir, e.why);
      debug?.debug(`peer ${e.peer}: ${e.dir}bound SA ${spiLabel(e.spi)} removed (${e.why})`, { peer: e.peer, direction: e.dir, spi: spiLabel(e.spi), why: e.why });
    });
    lifecycle.on("needs-rekey", (e) => this.rekeyRequests.inc({ peer: e.peer, direction: e.dir, why: e.why }));
    lifecycle.on("alarm", (e) => this.alarms.inc({ peer: e.peer ?? "" }));
    lifecycle.on("failover", (e) => this.failoverSwitches.inc({ primary: e.primary, via: e.via ?? "" }));
  }

  /** Counts IKE's events (host/ike/runtime.ts IkeRuntimeOptions.onIke). */
  readonly ike = (e: IkeTelemetry): void => {
    this.ikeEvents.inc({ peer: e.peer, event: e.event });
  };

  /**
   * `serve()` for `wesp up`: logs where it listens, or why it does not — a
   * listener that cannot bind leaves the CE forwarding without metrics.
   */
  async serveOrLog(listen: MetricsListen | undefined, status: () => Promise<Status>): Promise<MetricsServer | undefined> {
    if (!listen) return undefined;
    try {
      const m = await this.serve(listen, status);
      this.log?.info(`metrics on ${"path" in listen ? `unix:${m.where}` : `http://${m.where}`}/metrics`);
      return m;
    } catch (e) {
      this.log?.error(`metrics listener: ${(e as Error).message} (metrics off; forwarding goes on)`);
      return undefined;
    }
  }

  /** The exposition text for one status snapshot; scrapes run one at a time. */
  scrape(status: () => Promise<Status>): Promise<string> {
    const run = this.scraping.then(async () => {
      this.status = await status();
      try {
        return await this.registry.metrics();
      } finally {
        this.status = null;
      }
    });
    this.scraping = run.catch(() => {});
    return run;
  }
}
