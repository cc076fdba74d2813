// A typed client of the controller's operator API (server.ts;
// docs/controller-openapi.yaml), used by `wesp ctl`. It trusts exactly the
// certificate(s) in `ca` and sends the operator token as a bearer token.
import { request } from "node:https";
import type { CeConfig } from "../render.ts";
import type { NewSite, NewVpn, Site, Topology, Vpn, WanPortUpdate } from "../store/model.ts";

export interface ClientOptions {
  /** https://host:port of the controller. */
  url: string;
  token: string;
  /** PEM certificate(s) to trust: the controller's CA (ca/ca.pem), or its TLS certificate file. */
  ca: string | Buffer;
  timeoutMs?: number;
}

/** A refusal from the controller: its HTTP status, error code, message and details. */
export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly details: string[] = []) {
    super(details.length ? `${message}: ${details.join("; ")}` : message);
    this.name = "ApiError";
  }
}

export class ControllerClient {
  constructor(private readonly opts: ClientOptions) {}

  get url(): string {
    return this.opts.url;
  }

  private call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const url = new URL(path, this.opts.url);
    const text = body === undefined ? undefined : JSON.stringify(body);
    return new Promise<T>((resolve, reject) => {
      const req = request(url, {
        method,
        ca: this.opts.ca,
        timeout: this.opts.timeoutMs ?? 15_000,
        headers: {
          authorization: `Bearer ${this.opts.token}`,
          accept: "application/json",
          ...(text !== undefined ? { "content-type": "application/json", "content-length": Buffer.byteLength(text) } : {}),
        },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const raw = Buffer.concat(chunks).toString("utf8");
          let parsed: unknown;
          try {
            parsed = raw ? JSON.parse(raw) : undefined;
          } catch {
            return reject(new ApiError(res.statusCode ?? 0, "bad-response", `the controller answered ${res.statusCode} with a body that is not JSON`));
          }
          if ((res.statusCode ?? 500) >= 400) {
            const e = (parsed as { error?: { code?: string; message?: string; details?: string[] } })?.error;
            return reject(new ApiError(res.statusCode ?? 0, e?.code ?? "error", e?.message ?? `HTTP ${res.statusCode}`, e?.details ?? []));
          }
          resolve(parsed as T);
        });
      });
      req.on("timeout", () => req.destroy(new Error(`no answer from ${url.origin} within ${this.opts.timeoutMs ?? 15_000} ms`)));
      req.on("error", reject);
      req.end(text);
    });
  }

  private static seg(s: string): string {
    return encodeURIComponent(s);
  }

  health(): Promise<{ ok: boolean; store: string }> {
    return this.call("GET", "/v1/health");
  }
  listVpns(): Promise<Vpn[]> {
    return this.call<{ vpns: Vpn[] }>("GET", "/v1/vpns").then((r) => r.vpns);
  }
  createVpn(v: NewVpn): Promise<Vpn> {
    return this.call("POST", "/v1/vpns", v);
  }
  getVpn(vpn: string): Promise<Vpn & { sites: Site[] }> {
    return this.call("GET", `/v1/vpns/${ControllerClient.seg(vpn)}`);
  }
  deleteVpn(vpn: string): Promise<void> {
    return this.call("DELETE", `/v1/vpns/${ControllerClient.seg(vpn)}`);
  }
  setTopology(vpn: string, t: Topology): Promise<Vpn> {
    return this.call("PUT", `/v1/vpns/${ControllerClient.seg(vpn)}/topology`, t);
  }
  listSites(vpn: string): Promise<Site[]> {
    return this.call<{ sites: Site[] }>("GET", `/v1/vpns/${ControllerClient.seg(vpn)}/sites`).then((r) => r.sites);
  }
  addSite(vpn: string, s: NewSite): Promise<Site> {
    return this.call("POST", `/v1/vpns/${ControllerClient.seg(vpn)}/sites`, s);
  }
  getSite(vpn: string, site: string): Promise<Site> {
    return this.call("GET", `/v1/vpns/${ControllerClient.seg(vpn)}/sites/${ControllerClient.seg(site)}`);
  }
  removeSite(vpn: string, site: string): Promise<void> {
    return this.call("DELETE", `/v1/vpns/${ControllerClient.seg(vpn)}/sites/${ControllerClient.seg(site)}`);
  }
  updateWanPort(vpn: string, site: string, port: string, u: WanPortUpdate): Promise<Site> {
    return this.call("PATCH", `/v1/vpns/${ControllerClient.seg(vpn)}/sites/${ControllerClient.seg(site)}/wan/${ControllerClient.seg(port)}`, u);
  }
  /** A one-time enrolment token for `site`, with the fingerprint of the CA the CE is to pin. */
  createEnrolmentToken(vpn: string, site: string, ttlSeconds?: number): Promise<{ token: string; expiresAt: number; caFingerprint?: string }> {
    return this.call("POST", `/v1/vpns/${ControllerClient.seg(vpn)}/sites/${ControllerClient.seg(site)}/enrolment-tokens`, ttlSeconds ? { ttlSeconds } : {});
  }
  /** Revokes the site's CE certificates; resolves to how many. */
  revokeSite(vpn: string, site: string): Promise<number> {
    return this.call<{ revoked: number }>("POST", `/v1/vpns/${ControllerClient.seg(vpn)}/sites/${ControllerClient.seg(site)}/revoke`, {}).then((r) => r.revoked);
  }
  /** The CE config of `site` — it holds keys: handle it as a secret. */
  siteConfig(vpn: string, site: string): Promise<CeConfig> {
    return this.call("GET", `/v1/vpns/${ControllerClient.seg(vpn)}/sites/${ControllerClient.seg(site)}/config`);
  }
}
