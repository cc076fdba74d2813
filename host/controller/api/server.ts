// The controller's HTTPS API (node:https; docs/controller-openapi.yaml).
// Operators authenticate with a bearer token (Store.checkOperatorToken); CEs
// with the client certificate the controller's CA issued them (ce_api.ts).
// The two never mix: a request that presents a client certificate is refused
// on every operator route, and an operator token opens no CE route.
//
// Every body is JSON of at most 64 KiB, checked against its schema
// (schemas.ts) before the controller sees it; every refusal is a 4xx with a
// JSON reason `{ error: { code, message, details? } }`; a failure of ours is
// a 500 that names no internals. Nothing logged carries a token or a key.
import { createServer, type Server, type ServerOptions } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { hostText } from "../../config/addr.ts";
import type { ControllerCa } from "../ca.ts";
import { KeySealError } from "../keys.ts";
import { CeApi, peerOf } from "./ce_api.ts";
import type { Controller } from "../controller.ts";
import { StoreError, type NewSite, type NewVpn, type Topology, type WanPortUpdate } from "../store/model.ts";
import { describeErrors, validators } from "./schemas.ts";
import type { ApiObserver } from "../../metrics/controller.ts";
import type { ValidateFunction } from "ajv/dist/2020.js";

export const MAX_BODY = 64 * 1024;
/** Default lifetime of an enrolment token. */
export const DEFAULT_TOKEN_TTL_S = 7 * 86400;

export class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly details?: string[]) {
    super(message);
  }
}

export interface ApiOptions {
  controller: Controller;
  tls: { cert: string | Buffer; key: string | Buffer };
  /** The controller's CA: enables enrolment and the CE API (mTLS). */
  ca?: ControllerCa;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 8443; 0 picks a free port. */
  port?: number;
  log?: (line: string) => void;
  /** Told of every request and connection (host/metrics/controller.ts). */
  observer?: ApiObserver;
  /** The UDP port CEs reach the controller's STUN responder on (same host as the API); none when off. */
  stunPort?: number;
}

export interface RunningApi {
  url: string;
  port: number;
  close(): Promise<void>;
}

interface Ctx {
  method: string;
  parts: string[];
  query: URLSearchParams;
  body: () => Promise<unknown>;
  operator: string;
  caFingerprint?: string;
}

type Handler = (c: Ctx, ctl: Controller) => Promise<[number, unknown]>;

function check<T>(v: ValidateFunction, body: unknown): T {
  if (!v(body)) throw new HttpError(400, "invalid-body", "the request body does not match its schema", describeErrors(v.errors));
  return body as T;
}

/** Routes: [method, path pattern (":x" is a name), handler]. */
const ROUTES: [string, string, Handler][] = [
  ["GET", "/v1/vpns", async (_c, ctl) => [200, { vpns: await ctl.store.listVpns() }]],
  ["POST", "/v1/vpns", async (c, ctl) => [201, await ctl.createVpn(check<NewVpn>(validators.newVpn, await c.body()))]],
  ["GET", "/v1/vpns/:vpn", async (c, ctl) => {
    const vpn = await ctl.store.getVpn(c.parts[2]);
    if (!vpn) throw new StoreError("not-found", `VPN "${c.parts[2]}" not found`);
    return [200, { ...vpn, sites: await ctl.store.listSites(vpn.name) }];
  }],
  ["DELETE", "/v1/vpns/:vpn", async (c, ctl) => {
    if (!(await ctl.store.deleteVpn(c.parts[2]))) throw new StoreError("not-found", `VPN "${c.parts[2]}" not found`);
    return [204, undefined];
  }],
  ["PUT", "/v1/vpns/:vpn/topology", async (c, ctl) => [200, await ctl.setTopology(c.parts[2], check<Topology>(validators.topology, await c.body()))]],
  ["GET", "/v1/vpns/:vpn/sites", async (c, ctl) => [200, { sites: await ctl.store.listSites(c.parts[2]) }]],
  ["POST", "/v1/vpns/:vpn/sites", async (c, ctl) => [201, await ctl.addSite(c.parts[2], check<NewSite>(validators.newSite, await c.body()))]],
  ["GET", "/v1/vpns/:vpn/sites/:site", async (c, ctl) => {
    const s = await ctl.store.getSite(c.parts[2], c.parts[4]);
    if (!s) throw new StoreError("not-found", `site "${c.parts[4]}" not found in VPN "${c.parts[2]}"`);
    return [200, s];
  }],
  ["DELETE", "/v1/vpns/:vpn/sites/:site", async (c, ctl) => {
    if (!(await ctl.removeSite(c.parts[2], c.parts[4]))) throw new StoreError("not-found", `site "${c.parts[4]}" not found in VPN "${c.parts[2]}"`);
    return [204, undefined];
  }],
  ["PATCH", "/v1/vpns/:vpn/sites/:site/wan/:port", async (c, ctl) => {
    const u = check<WanPortUpdate>(validators.portUpdate, await c.body());
    const s = await ctl.store.updateWanPort(c.parts[2], c.parts[4], c.parts[6], u);
    return [200, s];
  }],
  ["POST", "/v1/vpns/:vpn/sites/:site/enrolment-tokens", async (c, ctl) => {
    const r = check<{ ttlSeconds?: number }>(validators.tokenRequest, await c.body());
    const t = await ctl.store.createEnrolmentToken(c.parts[2], c.parts[4], (r.ttlSeconds ?? DEFAULT_TOKEN_TTL_S) * 1000);
    return [201, { ...t, ...(c.caFingerprint ? { caFingerprint: c.caFingerprint } : {}) }];
  }],
  ["POST", "/v1/vpns/:vpn/sites/:site/revoke", async (c, ctl) => [200, { revoked: await ctl.revokeSite(c.parts[2], c.parts[4]) }]],
  ["GET", "/v1/vpns/:vpn/sites/:site/config", async (c, ctl) => [200, await ctl.configFor(c.parts[2], c.parts[4])]],
];

function match(pattern: string, parts: string[]): boolean {
  const p = pattern.split("/").slice(1);
  return p.length === parts.length && p.every((x, i) => x.startsWith(":") || x === parts[i]);
}

/** Paths answered outside ROUTES: health and the CE API (ce_api.ts), each its own label. */
const FIXED_ROUTES = new Set(["/v1/health", "/v1/ca", "/v1/enrol", "/v1/ce/config", "/v1/ce/events", "/v1/ce/certificate", "/v1/ce/ikeless", "/v1/ce/sadb-expire", "/v1/ce/applied"]);

/** The route pattern `pathname` falls under, a bounded metrics label: "other" when none. */
export function routeOf(pathname: string): string {
  if (FIXED_ROUTES.has(pathname)) return pathname;
  const parts = pathname.split("/").slice(1);
  return ROUTES.find(([, p]) => match(p, parts))?.[1] ?? "other";
}

export function readBody(req: IncomingMessage): Promise<unknown> {
  const type = (req.headers["content-type"] ?? "").split(";")[0].trim().toLowerCase();
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > MAX_BODY) return Promise.reject(new HttpError(413, "too-large", `the body is over ${MAX_BODY} bytes`));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new HttpError(413, "too-large", `the body is over ${MAX_BODY} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on("error", reject);
    req.on("end", () => {
      if (size > MAX_BODY) return;
      const text = Buffer.concat(chunks).toString("utf8");
      if (text.length === 0) return resolve({});
      if (type !== "application/json") return reject(new HttpError(415, "unsupported-media-type", "the body must be application/json"));
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new HttpError(400, "bad-json", "the body is not valid JSON"));
      }
    });
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  const text = body === undefined ? "" : JSON.stringify(body) + "\n";
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
    ...(status === 401 ? { "www-authenticate": 'Bearer realm="wesp-controller"' } : {}),
  });
  res.end(text);
}

const STORE_STATUS: Record<StoreError["code"], number> = { "not-found": 404, conflict: 409, invalid: 400, "token-invalid": 401 };

function toHttp(e: unknown): HttpError {
  if (e instanceof HttpError) return e;
  if (e instanceof StoreError) return new HttpError(STORE_STATUS[e.code], e.code, e.message);
  if (e instanceof KeySealError) return new HttpError(500, "sealed-key", "a stored key does not open under this controller's master key");
  return new HttpError(500, "internal", "internal error");
}

async function handle(req: IncomingMessage, res: ServerResponse, ctl: Controller, log: (l: string) => void, ce?: CeApi): Promise<void> {
  const method = req.method ?? "GET";
  let url: URL;
  try {
    url = new URL(req.url ?? "/", "https://controller");
  } catch {
    return send(res, 400, { error: { code: "bad-url", message: "unreadable request target" } });
  }
  let parts: string[];
  try {
    parts = url.pathname.split("/").slice(1).map(decodeURIComponent);
  } catch {
    return send(res, 400, { error: { code: "bad-url", message: "bad percent-encoding in the path" } });
  }
  if (method === "GET" && url.pathname === "/v1/health") return send(res, 200, { ok: true, store: ctl.store.kind });
  if (ce && CeApi.owns(url.pathname)) {
    try {
      const r = await ce.handle(req, res, url.pathname);
      if (r) send(res, r[0], r[1]);
    } catch (e) {
      replyError(req, res, method, url.pathname, e, log);
    }
    return;
  }
  const routes = ROUTES.filter(([, p]) => match(p, parts));
  const route = routes.find(([m]) => m === method);
  try {
    if (routes.length === 0) throw new HttpError(404, "no-route", "no such resource");
    if (!route) throw new HttpError(405, "method-not-allowed", `allowed: ${routes.map(([m]) => m).join(", ")}`);
    if (peerOf(req).presented) {
      log(`operator API ${method} ${url.pathname} refused from ${req.socket.remoteAddress ?? "?"}: a client (CE) certificate was presented`);
      throw new HttpError(403, "ce-certificate", "CE certificates open nothing of the operator API: operators use a bearer token without a client certificate");
    }
    const auth = req.headers.authorization ?? "";
    const token = /^Bearer [\x21-\x7e]{1,256}$/.test(auth) ? auth.slice(7) : "";
    const operator = token ? await ctl.store.checkOperatorToken(token) : undefined;
    if (!operator) throw new HttpError(401, "unauthenticated", "an operator token is required (Authorization: Bearer …)");
    const ctx = { method, parts, query: url.searchParams, body: () => readBody(req), operator, caFingerprint: ce?.ca.fingerprint };
    const [status, body] = await route[2](ctx, ctl);
    if (method !== "GET") log(`${operator} ${method} ${url.pathname} → ${status}`);
    send(res, status, body);
  } catch (e) {
    replyError(req, res, method, url.pathname, e, log);
  }
}

function replyError(req: IncomingMessage, res: ServerResponse, method: string, path: string, e: unknown, log: (l: string) => void): void {
  const h = toHttp(e);
  if (h.status >= 500) log(`${method} ${path}: ${e instanceof Error ? e.name : "error"} → ${h.status}`);
  if (h.status === 413) drain(req, res);
  send(res, h.status, { error: { code: h.code, message: h.message, ...(h.details ? { details: h.details } : {}) } });
}

/** Answers a too-large body once the client is done sending (so it reads the 413), reading at most 1 MiB more. */
function drain(req: IncomingMessage, res: ServerResponse): void {
  res.setHeader("connection", "close");
  let more = 0;
  req.on("data", (c: Buffer) => {
    if ((more += c.length) > 1024 * 1024) req.destroy();
  });
  req.resume();
}

/** Serves the API until `close()`. */
export async function startApi(opts: ApiOptions): Promise<RunningApi> {
  const log = opts.log ?? (() => {});
  const base: ServerOptions = { cert: opts.tls.cert, key: opts.tls.key, minVersion: "TLSv1.2" };
  // With a CA: ask for a client certificate (CEs have one, operators none) and
  // check it against the CA and its CRL; refusals are answered by ce_api.ts.
  const secure = (crl: string): ServerOptions => ({ ...base, requestCert: true, rejectUnauthorized: false, ca: opts.ca!.pem, crl });
  let server: Server | undefined;
  const ce = opts.ca ? new CeApi(opts.controller, opts.ca, log, (crl) => server?.setSecureContext(secure(crl)), opts.stunPort) : undefined;
  server = createServer(ce ? secure(await ce.currentCrl()) : base, (req, res) => {
    handle(req, res, opts.controller, log, ce).catch(() => send(res, 500, { error: { code: "internal", message: "internal error" } }));
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  opts.observer?.attach(server);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 8443, opts.host ?? "127.0.0.1", () => resolve());
  });
  const { port, address } = server.address() as AddressInfo;
  return {
    url: `https://${hostText(address)}:${port}`,
    port,
    close: () => new Promise<void>((resolve) => {
      ce?.close();
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
