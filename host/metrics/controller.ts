// The controller's Prometheus metrics (docs/metrics.md, docs/controller.md):
// API requests by route pattern, method and status; store call latency by
// operation; open API connections, those of them holding a verified CE
// certificate; VPN and site counts, read from the store on scrape; the STUN
// responder's counters.
//
// Served on their own plain-HTTP listener (`wesp controller --metrics
// HOST:PORT|PATH`, off by default, meant for 127.0.0.1 or a Unix socket), not
// on the HTTPS API: a scraper then needs no operator token, which could also
// create and delete VPNs. Nothing here is secret — names and counts only.
//
// Cardinality: route labels are the API's route patterns ("/v1/vpns/:vpn"),
// never raw paths ("other" for any path no route matches); store operations
// are the Store interface's method names; VPN names label the site counts.
import type { Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { Store } from "../controller/store/store.ts";
import type { MetricsListen } from "../config/model.ts";
import { MetricsServer } from "./http.ts";

/** What the API server tells its observer (host/controller/api/server.ts `observer`). */
export interface ApiObserver {
  /** Called once per HTTP server the API runs. */
  attach(server: Server): void;
}

const STORE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export class ControllerMetrics implements ApiObserver {
  readonly registry = new Registry();
  private store: Store | null = null;
  private open = 0;
  private ce = 0;
  private readonly requests: Counter;
  private readonly requestSeconds: Histogram;
  private readonly storeSeconds: Histogram;
  private readonly storeErrors: Counter;
  private stunCounters: object | null = null;

  /** `routeOf` maps a request path to its route pattern (server.ts routeOf). */
  constructor(private readonly routeOf: (pathname: string) => string) {
    collectDefaultMetrics({ register: this.registry });
    const r = this.registry;
    this.requests = new Counter({ name: "wesp_controller_requests_total", help: "API requests answered, by route pattern, method and HTTP status.", labelNames: ["route", "method", "code"], registers: [r] });
    this.requestSeconds = new Histogram({ name: "wesp_controller_request_seconds", help: "Time from a request's arrival to its answer, by route pattern.", labelNames: ["route"], registers: [r] });
    this.storeSeconds = new Histogram({ name: "wesp_controller_store_seconds", help: "Store call latency, by operation (the Store interface's methods).", labelNames: ["op"], buckets: STORE_BUCKETS, registers: [r] });
    this.storeErrors = new Counter({ name: "wesp_controller_store_errors_total", help: "Store calls that failed (refusals such as not-found or conflict included), by operation.", labelNames: ["op"], registers: [r] });
    const self = this;
    new Gauge({ name: "wesp_controller_api_connections", help: "Open connections to the HTTPS API.", registers: [r], collect() { this.set(self.open); } });
    new Gauge({ name: "wesp_controller_ce_connections", help: "Open API connections that presented a CE certificate the controller's CA verified.", registers: [r], collect() { this.set(self.ce); } });
    new Counter({
      name: "wesp_controller_stun_requests_total", help: "STUN Binding requests (RFC 8489) by what became of them: answered, errors (400/420 answers), rate_limited, malformed, ignored.", labelNames: ["result"], registers: [r],
      collect() {
        this.reset();
        for (const [k, v] of Object.entries(self.stunCounters ?? {})) if (typeof v === "number") this.inc({ result: k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`) }, v);
      },
    });
    new Gauge({
      name: "wesp_controller_vpns", help: "VPNs in the database.", registers: [r],
      async collect() {
        this.reset();
        if (self.store) this.set((await self.store.listVpns()).length);
      },
    });
    new Gauge({
      name: "wesp_controller_sites", help: "Sites in the database, by VPN.", labelNames: ["vpn"], registers: [r],
      async collect() {
        this.reset();
        if (!self.store) return;
        for (const v of await self.store.listVpns()) this.set({ vpn: v.name }, (await self.store.listSites(v.name)).length);
      },
    });
  }

  /**
   * The store with every call timed (a Proxy: the Store interface is all
   * methods and `kind`). Scrapes read VPN and site counts through it too.
   */
  timeStore(store: Store): Store {
    const observe = (op: string, t0: bigint, failed: boolean) => {
      this.storeSeconds.observe({ op }, Number(process.hrtime.bigint() - t0) / 1e9);
      if (failed) this.storeErrors.inc({ op });
    };
    const timed = new Proxy(store, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver);
        if (typeof v !== "function" || typeof prop !== "string" || prop === "watch" || prop === "close") return v;
        return (...args: unknown[]) => {
          const t0 = process.hrtime.bigint();
          const out = (v as (...a: unknown[]) => unknown).apply(target, args);
          if (out instanceof Promise) return out.then((x) => (observe(prop, t0, false), x), (e) => { observe(prop, t0, true); throw e; });
          observe(prop, t0, false);
          return out;
        };
      },
    });
    this.store = timed;
    return timed;
  }

  /** Reads the STUN responder's counters (controller/stun_server.ts) on each scrape. */
  stun(counters: object): void {
    this.stunCounters = counters;
  }

  attach(server: Server): void {
    server.on("connection", (s) => {
      this.open++;
      s.once("close", () => this.open--);
    });
    server.on("secureConnection", (s: TLSSocket) => {
      if (!s.authorized || Object.keys(s.getPeerCertificate() ?? {}).length === 0) return;
      this.ce++;
      s.once("close", () => this.ce--);
    });
    server.on("request", (req: IncomingMessage, res: ServerResponse) => {
      const t0 = process.hrtime.bigint();
      let route = "other";
      try {
        route = this.routeOf(new URL(req.url ?? "/", "https://controller").pathname);
      } catch {
        /* unreadable target: "other" */
      }
      res.once("finish", () => {
        this.requests.inc({ route, method: METHODS.has(req.method ?? "") ? req.method! : "other", code: String(res.statusCode) });
        this.requestSeconds.observe({ route }, Number(process.hrtime.bigint() - t0) / 1e9);
      });
    });
  }

  /** Serves GET /metrics on `listen` (plain HTTP; see the file comment). */
  serve(listen: MetricsListen): Promise<MetricsServer> {
    return MetricsServer.listen(listen, { scrape: () => this.registry.metrics(), contentType: this.registry.contentType });
  }
}

/** Methods counted by name; anything else a client sends is "other" (bounded labels). */
const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);
