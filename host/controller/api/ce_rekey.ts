// The CE routes of controller-driven rekeying (RFC 9061 §4.1.2, the IKE-less
// case; store/rekey.ts has the order):
//
//   POST /v1/ce/sadb-expire  (mTLS) { "ipsec-sa-name", "soft-lifetime-expire"?,
//                            "lifetime-current"? }: the CE's SA reached a
//                            lifetime (ietf-i2nsf-ikeless `sadb-expire`, §5.3)
//   POST /v1/ce/applied      (mTLS) { version }: the CE runs that config now —
//                            the acknowledgement each rekey step waits for
//
// The site is the client certificate's: a CE can name only SAs it sends or
// receives on (any other is 404, as an unknown one). Bodies are hostile input,
// checked by schema (schemas.ts) before anything else. Keys are never logged.
import type { Controller } from "../controller.ts";
import { StoreError } from "../store/model.ts";
import type { RekeyStep, SaRef } from "../store/rekey.ts";
import { describeErrors, validators } from "./schemas.ts";
import { HttpError } from "./server.ts";

export const SADB_EXPIRE_ROUTE = "/v1/ce/sadb-expire";
export const APPLIED_ROUTE = "/v1/ce/applied";

/** The SAD entry name of one SA (ietf-i2nsf-ikeless `sad-entry/name`): sender/receiver/0xSPI; names hold no "/". */
export function saName(sa: SaRef): string {
  return `${sa.src}/${sa.dst}/0x${(sa.spi >>> 0).toString(16).padStart(8, "0")}`;
}

function parseSaName(name: string): SaRef {
  const [src, dst, spi] = name.split("/");
  return { src, dst, spi: parseInt(spi.slice(2), 16) };
}

function checked<T>(v: (typeof validators)[keyof typeof validators], body: unknown): T {
  if (!v(body)) throw new HttpError(400, "invalid-body", "the request body does not match its schema", describeErrors(v.errors));
  return body as T;
}

interface SadbExpire {
  "ipsec-sa-name": string;
  "soft-lifetime-expire"?: boolean;
  "lifetime-current"?: { time?: number; bytes?: number; packets?: number; idle?: number };
}

async function vpnOf(ctl: Controller, who: { vpn: string; site: string }) {
  const v = await ctl.store.getVpn(who.vpn);
  if (!v) throw new StoreError("not-found", `VPN "${who.vpn}" not found`);
  return v;
}

function logSteps(steps: RekeyStep[], log: (l: string) => void): void {
  for (const s of steps) {
    const what = s.step === "outbound" ? `generation ${s.generation} used outbound` : s.step === "removed" ? `old generation removed (generation ${s.generation} only)` : `generation ${s.generation} made (expired meanwhile), installed inbound`;
    log(`rekey ${s.a}<->${s.b}: ${what}, version ${s.version}`);
  }
}

/** POST /v1/ce/sadb-expire for CE `who`: 202 when it started a rekey, 200 otherwise, with what happened. */
export async function sadbExpire(ctl: Controller, who: { vpn: string; site: string }, body: unknown, log: (l: string) => void): Promise<[number, unknown]> {
  const b = checked<SadbExpire>(validators.sadbExpire, body);
  const sa = parseSaName(b["ipsec-sa-name"]);
  const soft = b["soft-lifetime-expire"] ?? true;
  const v = await vpnOf(ctl, who);
  const r = await ctl.store.saExpired(who.vpn, who.site, sa, ctl.keyMaker(v));
  const lc = b["lifetime-current"];
  const used = lc ? ` (used ${lc.time ?? 0} s, ${lc.bytes ?? 0} bytes, ${lc.packets ?? 0} packets)` : "";
  const what = r.outcome === "rekeying" ? `rekey started, generation ${r.generation} installed inbound first (version ${r.version})`
    : r.outcome === "pending" ? "a rekey of the pair runs; the next follows it"
    : r.outcome === "early" ? `early: generation ${r.generation} is too young to replace (a broken or hostile CE?); told to report again in ${r.retryAfter} s`
    : "already replaced";
  log(`sadb-expire from ${who.vpn}/${who.site}: SA ${b["ipsec-sa-name"]} ${soft ? "soft" : "hard"} lifetime${used}: ${what}`);
  return [r.outcome === "rekeying" ? 202 : 200, r];
}

/** POST /v1/ce/applied for CE `who`: records the version and takes the rekey steps it allows. */
export async function applied(ctl: Controller, who: { vpn: string; site: string }, body: unknown, log: (l: string) => void): Promise<[number, unknown]> {
  const { version } = checked<{ version: number }>(validators.applied, body);
  const v = await vpnOf(ctl, who);
  const steps = await ctl.store.reportApplied(who.vpn, who.site, version, ctl.keyMaker(v));
  logSteps(steps, log);
  return [200, { version, steps: steps.length }];
}
