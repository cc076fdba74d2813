// The CE side of the controller's HTTPS API (docs/controller.md "Enrolment",
// "The CE API"; draft-ietf-l3vpn-ce-based-02 §3.2–§3.6):
//
//   GET  /v1/ca              the CA certificate (public; the CE checks it
//                            against the fingerprint it was given out of band)
//   POST /v1/enrol           { token, csr } → { certificate, ca, vpn, site, identity }
//   GET  /v1/ce/config       (mTLS) this CE's config and the VPN's version
//   GET  /v1/ce/ikeless      (mTLS) the same SAs as SPD and SAD entries shaped
//                            after ietf-i2nsf-ikeless (RFC 9061; ../ikeless.ts)
//   GET  /v1/ce/events       (mTLS) server-sent events: "hello", then "change"
//                            whenever the CE's VPN changes (§3.5 notify-then-pull),
//                            and "peer-online" {peer} when a CE it initiates IKE
//                            towards opens its own channel (it runs now: try it)
//   POST /v1/ce/certificate  (mTLS) { csr } → a renewed certificate
//   PUT  /v1/ce/wan/{port}   (mTLS) { publicAddress, publicPort, natType? }:
//                            what STUN told the CE of its own port (ce_wan.ts)
//   POST /v1/ce/sadb-expire  (mTLS) an SA reached a lifetime; POST /v1/ce/applied
//                            (mTLS) the config version the CE runs (ce_rekey.ts)
//
// A CE authenticates with the client certificate the CA issued it: the TLS
// layer checks its chain, validity and the CRL; then the store says whether
// its serial is still good (revoked, site removed) and which site it is. A
// CE sees only its own site's config. Operators are not CEs: an operator token
// opens nothing here, and a CE certificate opens nothing of the operator API
// (server.ts). Every refusal is logged with its reason, never a token or key.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";
import { CaError, siteIdentity, type ControllerCa } from "../ca.ts";
import { colonHex } from "../../util/pki.ts";
import type { Controller } from "../controller.ts";
import { StoreError, type Change } from "../store/model.ts";
import { HttpError, readBody } from "./server.ts";
import { WAN_ROUTE, registerWan } from "./ce_wan.ts";
import { APPLIED_ROUTE, SADB_EXPIRE_ROUTE, applied, sadbExpire } from "./ce_rekey.ts";
import { ikelessOf } from "../ikeless.ts";

/** Seconds between SSE keepalive comments; a CE that hears nothing for three of them reconnects. */
export const SSE_KEEPALIVE_S = 15;

/** Who is on the other end of a TLS connection, by its client certificate. */
export interface Peer {
  /** A client certificate was presented (valid or not). */
  presented: boolean;
  serial?: string;
  /** Why TLS did not accept it (CERT_REVOKED, CERT_HAS_EXPIRED, …), when it did not. */
  tlsError?: string;
}

export function peerOf(req: IncomingMessage): Peer {
  const sock = req.socket as TLSSocket;
  const cert = typeof sock.getPeerCertificate === "function" ? sock.getPeerCertificate() : undefined;
  if (!cert || !cert.serialNumber) return { presented: false };
  return { presented: true, serial: cert.serialNumber.toLowerCase(), ...(sock.authorized ? {} : { tlsError: String(sock.authorizationError ?? "unverified") }) };
}

interface Stream {
  vpn: string;
  site: string;
  res: ServerResponse;
}

export class CeApi {
  private readonly streams = new Set<Stream>();
  private readonly unwatch: () => void;
  private readonly keepalive: NodeJS.Timeout;
  private revokedKey = "";

  constructor(
    private readonly ctl: Controller,
    readonly ca: ControllerCa,
    private readonly log: (line: string) => void,
    /** Called with a new CRL whenever the revoked serials change (the server reloads its TLS context). */
    private readonly onCrl: (crl: string) => void,
    /** The UDP port of the controller's STUN responder, told to CEs with their config (they use the API's host). */
    private readonly stunPort?: number,
  ) {
    this.unwatch = ctl.store.watch((c) => this.changed(c));
    this.keepalive = setInterval(() => {
      for (const s of this.streams) s.res.write(": keepalive\n\n");
    }, SSE_KEEPALIVE_S * 1000);
    this.keepalive.unref();
  }

  /** The CRL of every revoked serial now (the server's first TLS context takes it). */
  async currentCrl(): Promise<string> {
    const revoked = await this.ctl.store.listRevoked();
    this.revokedKey = revoked.map((r) => r.serial).join(",");
    return this.ca.crl(revoked);
  }

  private changed(c: Change): void {
    if (c.online !== undefined) return void this.peerOnline(c.vpn, c.online);
    // A change anywhere may be a revocation (made through any replica): remake the CRL when the list moved.
    void this.ctl.store.listRevoked().then(async (revoked) => {
      const key = revoked.map((r) => r.serial).join(",");
      if (key === this.revokedKey) return;
      this.revokedKey = key;
      this.onCrl(await this.ca.crl(revoked));
    }).catch((e) => this.log(`CRL refresh failed: ${(e as Error).message}`));
    for (const s of this.streams) {
      if (s.vpn === c.vpn) s.res.write(`event: change\ndata: ${JSON.stringify({ version: c.version })}\n\n`);
    }
  }

  /**
   * CE `site` of `vpn` opened its push channel (on this replica or another):
   * the CEs held here that initiate towards it hear "peer-online" and try now
   * (Controller.initiatorsTowards). No version moved, so nobody pulls.
   */
  private async peerOnline(vpn: string, site: string): Promise<void> {
    try {
      const to = new Set(await this.ctl.initiatorsTowards(vpn, site));
      if (to.size === 0) return;
      const event = `event: peer-online\ndata: ${JSON.stringify({ peer: site })}\n\n`;
      for (const s of this.streams) if (s.vpn === vpn && to.has(s.site)) s.res.write(event);
    } catch (e) {
      this.log(`peer-online ${vpn}/${site}: ${(e as Error).message}`);
    }
  }

  close(): void {
    this.unwatch();
    clearInterval(this.keepalive);
    for (const s of this.streams) s.res.end();
    this.streams.clear();
  }

  /** Whether `path` is one of this file's routes. */
  static owns(path: string): boolean {
    return path === "/v1/ca" || path === "/v1/enrol" || path.startsWith("/v1/ce/");
  }

  /** Serves one CE route; resolves to [status, body], or to undefined when it took the response over (SSE). */
  async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<[number, unknown] | undefined> {
    const method = req.method ?? "GET";
    const allow = (m: string) => {
      if (method !== m) throw new HttpError(405, "method-not-allowed", `allowed: ${m}`);
    };
    switch (path) {
      case "/v1/ca":
        allow("GET");
        return [200, { certificate: this.ca.pem, fingerprint: this.ca.fingerprint }];
      case "/v1/enrol":
        allow("POST");
        return [201, await this.enrol(req)];
      case "/v1/ce/config": {
        allow("GET");
        const who = await this.authenticate(req, path);
        const v = await this.ctl.store.getVpn(who.vpn);
        const stun = this.stunPort ? { stun: { port: this.stunPort } } : {};
        return [200, { vpn: who.vpn, site: who.site, version: v?.version ?? 0, ...stun, config: await this.ctl.configFor(who.vpn, who.site) }];
      }
      case "/v1/ce/ikeless": {
        // The same SAs as /v1/ce/config, as ietf-i2nsf-ikeless SPD and SAD entries (ikeless.ts); read-only.
        allow("GET");
        const who = await this.authenticate(req, path);
        const v = await this.ctl.store.getVpn(who.vpn);
        return [200, { vpn: who.vpn, site: who.site, version: v?.version ?? 0, ...ikelessOf(await this.ctl.configFor(who.vpn, who.site)) }];
      }
      case "/v1/ce/events": {
        allow("GET");
        const who = await this.authenticate(req, path);
        this.openStream(res, who);
        return undefined;
      }
      case "/v1/ce/certificate": {
        allow("POST");
        const who = await this.authenticate(req, path);
        const body = await readBody(req);
        const csr = (body as { csr?: unknown }).csr;
        const c = await this.sign(csr, siteIdentity(who.vpn, who.site)).catch((e: Error) => {
          this.log(`certificate renewal refused for ${siteIdentity(who.vpn, who.site)}: ${e.message}`);
          throw e;
        });
        await this.ctl.store.recordCertificate(who.vpn, who.site, c.serial, c.notAfter);
        this.log(`certificate renewed for ${siteIdentity(who.vpn, who.site)} (serial ${colonHex(c.serial)})`);
        return [201, { certificate: c.pem, ca: this.ca.pem, notAfter: c.notAfter }];
      }
      case SADB_EXPIRE_ROUTE:
      case APPLIED_ROUTE: {
        allow("POST");
        const who = await this.authenticate(req, path);
        const body = await readBody(req);
        return path === APPLIED_ROUTE ? applied(this.ctl, who, body, this.log) : sadbExpire(this.ctl, who, body, this.log);
      }
      default:
        if (path.startsWith(WAN_ROUTE)) {
          allow("PUT");
          const who = await this.authenticate(req, path);
          return registerWan(this.ctl, who, path, await readBody(req), this.log);
        }
        throw new HttpError(404, "no-route", "no such resource");
    }
  }

  private async sign(csr: unknown, identity: string) {
    try {
      return await this.ca.signCsr(csr as string, identity);
    } catch (e) {
      if (e instanceof CaError) throw new HttpError(e.code === "bad-csr" ? 400 : 403, e.code, e.message);
      throw e;
    }
  }

  /** §3.2: a token (one use, not expired) and a CSR naming that token's site and nothing else. */
  private async enrol(req: IncomingMessage): Promise<unknown> {
    const body = (await readBody(req)) as { token?: unknown; csr?: unknown };
    if (typeof body !== "object" || body === null || typeof body.token !== "string" || typeof body.csr !== "string") {
      throw new HttpError(400, "invalid-body", "enrolment needs { token, csr } (strings)");
    }
    const from = req.socket.remoteAddress ?? "?";
    let pem = "";
    let serial = "";
    try {
      const site = await this.ctl.store.enrol(body.token, async (s) => {
        const c = await this.sign(body.csr, siteIdentity(s.vpn, s.site));
        pem = c.pem;
        serial = c.serial;
        return c;
      });
      const identity = siteIdentity(site.vpn, site.site);
      this.log(`enrolled ${identity} from ${from} (certificate serial ${colonHex(serial)})`);
      return { certificate: pem, ca: this.ca.pem, vpn: site.vpn, site: site.site, identity };
    } catch (e) {
      const why = e instanceof HttpError || e instanceof StoreError ? e.message : "internal error";
      this.log(`enrolment refused from ${from}: ${why}`);
      throw e;
    }
  }

  /** The site of a CE request's client certificate, or a 401/403 saying why not (logged). */
  private async authenticate(req: IncomingMessage, path: string): Promise<{ vpn: string; site: string }> {
    const p = peerOf(req);
    const from = req.socket.remoteAddress ?? "?";
    const refuse = (status: number, code: string, message: string): never => {
      this.log(`CE API ${path} refused from ${from}${p.serial ? ` (certificate serial ${colonHex(p.serial)})` : ""}: ${message}`);
      throw new HttpError(status, code, message);
    };
    if (!p.presented) return refuse(401, "certificate-required", "the CE API needs the client certificate this controller issued at enrolment");
    // CERT_REVOKED: the chain verified and the CRL lists it; the store then says whether its site is gone too.
    if (p.tlsError && p.tlsError !== "CERT_REVOKED") return refuse(403, "certificate-invalid", `the client certificate is not accepted (${p.tlsError})`);
    const st = await this.ctl.store.certificateStatus(p.serial!);
    if (st.status === "site-removed") return refuse(403, "site-removed", `site ${siteIdentity(st.vpn, st.site)} was removed from its VPN: drop its VPN state`);
    if (p.tlsError || st.status === "revoked") return refuse(403, "certificate-revoked", `this certificate is revoked${p.tlsError ? " (TLS: the CRL lists it)" : ""}`);
    if (st.status === "unknown") return refuse(403, "certificate-unknown", "the client certificate was not issued to a site of this controller");
    return { vpn: st.vpn, site: st.site };
  }

  private openStream(res: ServerResponse, who: { vpn: string; site: string }): void {
    const s: Stream = { ...who, res };
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store", connection: "keep-alive" });
    void this.ctl.store.getVpn(who.vpn).then((v) => {
      res.write(`event: hello\ndata: ${JSON.stringify({ vpn: who.vpn, site: who.site, version: v?.version ?? 0 })}\n\n`);
      // its CE runs (the agent opens the channel once its data plane forwards): peers waiting to initiate may go now
      // (IKE-keyed VPNs only: no transaction per connect for the others)
      if (v?.keying === "ike") return this.ctl.store.announceOnline(who.vpn, v.version, who.site);
    }).catch((e) => this.log(`push channel of ${who.vpn}/${who.site}: ${(e as Error).message}`));
    this.streams.add(s);
    res.on("close", () => this.streams.delete(s));
  }
}
