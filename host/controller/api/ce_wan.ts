// PUT /v1/ce/wan/{port} (mTLS): a CE registers what STUN told it of one of its
// own WAN ports — the public address and port a NAT maps it to (net2cloud §3,
// §5.2) — and the controller hands that to the CE's peers in their configs
// (render.ts `reachable`). The site is the client certificate's, never the
// request's: a CE can name only its own ports. The body is hostile input:
// unknown fields, a malformed address, a port out of 1..65535, an address of
// another family than the port's own are refused (400); an unknown port is
// 404. A registration equal to what is stored changes nothing (no version
// bump, no notification), so a CE re-registering on a timer costs its peers
// nothing.
import type { Controller } from "../controller.ts";
import { NAME } from "../store/rules.ts";
import { NAT_TYPES, type NatType, type Site, type WanPortUpdate } from "../store/model.ts";
import { parseAddress } from "../../config/addr.ts";
import { HttpError } from "./server.ts";

export const WAN_ROUTE = "/v1/ce/wan/";

export interface WanRegistration {
  publicAddress: string;
  publicPort: number;
  natType?: NatType;
}

const FIELDS = new Set(["publicAddress", "publicPort", "natType"]);

function bad(message: string): never {
  throw new HttpError(400, "invalid-body", message);
}

/** The body as a registration, or a 400 saying what is wrong with it. */
export function checkRegistration(body: unknown): WanRegistration {
  if (typeof body !== "object" || body === null || Array.isArray(body)) bad("a WAN registration is { publicAddress, publicPort, natType? }");
  const o = body as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!FIELDS.has(k)) bad(`unknown field "${k.slice(0, 40)}"`);
  if (typeof o.publicAddress !== "string" || o.publicAddress.length > 64) bad("publicAddress: must be an IPv4 or IPv6 address");
  const a = parseAddress(o.publicAddress);
  if (!a.ok) bad(`publicAddress: ${a.message}`);
  if (typeof o.publicPort !== "number" || !Number.isInteger(o.publicPort) || o.publicPort < 1 || o.publicPort > 65535) bad("publicPort: an integer 1..65535");
  if (o.natType !== undefined && !NAT_TYPES.includes(o.natType as NatType)) bad(`natType: one of ${NAT_TYPES.join(", ")}`);
  return { publicAddress: a.value.text, publicPort: o.publicPort, ...(o.natType !== undefined ? { natType: o.natType as NatType } : {}) };
}

/**
 * What a registration changes on `port` of `site`. A mapping equal to the
 * port's own address and port means no NAT: the public side is cleared (peers
 * use the configured one) and natType becomes "none" unless given. A
 * translated mapping without a natType turns a stored "none" into "unknown"
 * (the CE then sends NAT keepalives) and keeps any other type.
 */
export function updateFor(site: Site, port: string, r: WanRegistration): WanPortUpdate | undefined {
  const p = site.wan.find((w) => w.name === port);
  if (!p) throw new HttpError(404, "not-found", `site "${site.name}" has no WAN port "${port}"`);
  const fam = (t: string) => (t.includes(":") ? 6 : 4);
  if (fam(r.publicAddress) !== fam(p.privateAddress)) bad(`publicAddress: port "${port}" is IPv${fam(p.privateAddress)}`);
  const direct = r.publicAddress === p.privateAddress && r.publicPort === p.privatePort;
  const u: WanPortUpdate = direct
    ? { publicAddress: null, publicPort: null, natType: r.natType ?? "none" }
    : { publicAddress: r.publicAddress, publicPort: r.publicPort, natType: r.natType ?? (p.natType === "none" ? "unknown" : p.natType) };
  const same = (p.publicAddress ?? null) === u.publicAddress && (p.publicPort ?? null) === u.publicPort && p.natType === u.natType;
  return same ? undefined : u;
}

/** Serves PUT /v1/ce/wan/{port} for the CE `who`: [status, the port as stored]. */
export async function registerWan(ctl: Controller, who: { vpn: string; site: string }, path: string, body: unknown, log: (l: string) => void): Promise<[number, unknown]> {
  const port = path.slice(WAN_ROUTE.length); // names need no %-escapes (rules.ts NAME)
  if (!NAME.test(port)) throw new HttpError(404, "not-found", "no such WAN port");
  const r = checkRegistration(body);
  const site = await ctl.store.getSite(who.vpn, who.site);
  if (!site) throw new HttpError(404, "not-found", `site "${who.site}" is not in VPN "${who.vpn}"`);
  const u = updateFor(site, port, r);
  const now = u ? await ctl.store.updateWanPort(who.vpn, who.site, port, u) : site;
  if (u) log(`WAN port ${who.vpn}/${who.site}/${port} registered: public ${u.publicAddress ?? "(none)"}${u.publicPort ? `:${u.publicPort}` : ""}, NAT ${u.natType}`);
  const p = now.wan.find((w) => w.name === port)!;
  return [200, { port: p, changed: u !== undefined }];
}
