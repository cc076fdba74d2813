// What the VPN database accepts, checked before anything is written — the
// same rules whatever the backend. A site is refused here when the configs the
// controller would make from it could not pass `wesp check` (docs/config.md
// "Rules"): bad names, addresses or prefixes, duplicate ports, prefixes that
// overlap another site's (every peer's prefixes must be disjoint on a CE).
import { parseAddress, parsePrefix, prefixesOverlap } from "../../config/addr.ts";
import type { Prefix } from "../../config/model.ts";
import {
  CONTROLLER_MODES, CONTROLLER_SUITES, DEFAULT_SA_LIFETIME, IKE_LIFETIME, KEYINGS, NAT_TYPES, StoreError, type SaLifetime,
  type NewSite, type NewVpn, type Site, type Topology, type WanPortUpdate,
} from "./model.ts";

/** docs/config.md "name": 1–32 of A-Z a-z 0-9 _ . -, starting with a letter or digit. */
export const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;
export const MAX_WAN_PORTS = 16;
export const MAX_PREFIXES = 256;
const SYSTEM_ID = /^[\x21-\x7e]{1,128}$/;

function invalid(message: string): never {
  throw new StoreError("invalid", message);
}

export function checkName(what: string, name: unknown): string {
  if (typeof name !== "string" || !NAME.test(name)) invalid(`${what}: must be 1–32 of A-Z a-z 0-9 _ . - starting with a letter or digit`);
  return name;
}

function checkPort(what: string, port: unknown): number {
  if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535) invalid(`${what}: must be a port number 1..65535`);
  return port as number;
}

function checkAddress(what: string, text: unknown): string {
  if (typeof text !== "string") invalid(`${what}: must be an IPv4 or IPv6 address`);
  const a = parseAddress(text);
  if (!a.ok) invalid(`${what}: ${a.message}`);
  return a.value.text;
}

export function checkTopology(t: unknown): Topology {
  const o = t as Record<string, unknown>;
  if (o?.kind === "full-mesh") return { kind: "full-mesh" };
  if (o?.kind === "hub-and-spoke") {
    const hub = checkName("topology.hub", o.hub);
    let dpd: number | undefined;
    if (o.dpd !== undefined && o.dpd !== null) {
      if (typeof o.dpd !== "number" || !Number.isInteger(o.dpd) || o.dpd < 1 || o.dpd > 3600) invalid("topology.dpd: an integer 1..3600 (seconds)");
      dpd = o.dpd;
    }
    const withDpd = dpd !== undefined ? { dpd } : {};
    if (o.backupHub === undefined || o.backupHub === null) return { kind: "hub-and-spoke", hub, ...withDpd };
    const backupHub = checkName("topology.backupHub", o.backupHub);
    if (backupHub === hub) invalid("topology.backupHub: must differ from the hub");
    return { kind: "hub-and-spoke", hub, backupHub, ...withDpd };
  }
  invalid('topology.kind: must be "full-mesh" or "hub-and-spoke"');
}

export function checkNewVpn(v: NewVpn): Required<NewVpn> {
  const suite = v.suite ?? "aes-256-gcm";
  const mode = v.mode ?? "tunnel";
  if (!CONTROLLER_SUITES.includes(suite)) invalid(`suite: must be one of ${CONTROLLER_SUITES.join(", ")}`);
  const keying = v.keying ?? "ike";
  if (!CONTROLLER_MODES.includes(mode)) invalid(`mode: must be one of ${CONTROLLER_MODES.join(", ")}`);
  if (!KEYINGS.includes(keying)) invalid(`keying: must be one of ${KEYINGS.join(", ")}`);
  const saLifetime = checkSaLifetime(v.saLifetime ?? DEFAULT_SA_LIFETIME);
  if (keying === "ike") checkIkeLifetime(saLifetime);
  return { name: checkName("name", v.name), topology: checkTopology(v.topology ?? { kind: "full-mesh" }), suite, mode, keying, saLifetime };
}

/** What render_ike.ts ikeLifetime can hand a CE's IKE (docs/config.md `peers[].ike.lifetime`). */
function checkIkeLifetime(l: SaLifetime): void {
  const { minSeconds, maxSeconds, defaultChildSeconds } = IKE_LIFETIME;
  if (l.seconds !== undefined && (l.seconds < minSeconds || l.seconds > maxSeconds)) {
    invalid(`saLifetime.seconds: with IKE keying, ${minSeconds}..${maxSeconds} (a CHILD_SA's lifetime)`);
  }
  if (l.seconds === undefined && l.softSeconds !== undefined && l.softSeconds >= defaultChildSeconds) {
    invalid(`saLifetime.softSeconds: must be less than the CHILD_SA lifetime (${defaultChildSeconds} s without saLifetime.seconds)`);
  }
}

const LIFETIME_FIELDS = ["seconds", "bytes", "packets", "softSeconds", "softBytes", "softPackets"] as const;

/**
 * SA lifetimes a CE can load (docs/config.md `lifetime`): positive integers
 * (seconds at least 2, at most a year), each soft limit below its hard one.
 */
export function checkSaLifetime(l: SaLifetime): SaLifetime {
  if (typeof l !== "object" || l === null || Array.isArray(l)) invalid("saLifetime: an object of seconds, bytes, packets, softSeconds, softBytes, softPackets");
  for (const k of Object.keys(l)) if (!(LIFETIME_FIELDS as readonly string[]).includes(k)) invalid(`saLifetime: unknown field "${k.slice(0, 40)}"`);
  const out: SaLifetime = {};
  for (const k of LIFETIME_FIELDS) {
    const v = l[k];
    if (v === undefined) continue;
    const max = k.endsWith("econds") ? 366 * 86400 : Number.MAX_SAFE_INTEGER;
    const min = k.endsWith("econds") ? 2 : 1;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max) invalid(`saLifetime.${k}: an integer ${min}..${max}`);
    out[k] = v;
  }
  for (const [soft, hard] of [["softSeconds", "seconds"], ["softBytes", "bytes"], ["softPackets", "packets"]] as const) {
    if (out[soft] !== undefined && out[hard] !== undefined && out[soft]! >= out[hard]!) invalid(`saLifetime.${soft}: must be less than ${hard}`);
  }
  return out;
}

/** `s` with canonical addresses and prefixes and defaults filled in; refused when invalid or overlapping `others`. */
export function checkNewSite(vpn: string, s: NewSite, others: Site[]): Required<NewSite> {
  const name = checkName("name", s.name);
  const systemId = s.systemId ?? `${vpn}/${name}`;
  if (typeof systemId !== "string" || !SYSTEM_ID.test(systemId)) invalid("systemId: must be 1–128 printable ASCII characters");
  if (!Array.isArray(s.prefixes) || s.prefixes.length < 1 || s.prefixes.length > MAX_PREFIXES) invalid(`prefixes: 1..${MAX_PREFIXES} CIDR prefixes`);
  const mine: Prefix[] = s.prefixes.map((t, i) => {
    const p = typeof t === "string" ? parsePrefix(t) : ({ ok: false, message: "must be a CIDR prefix" } as const);
    if (!p.ok) invalid(`prefixes[${i}]: ${p.message}`);
    return p.value;
  });
  mine.forEach((p, i) => mine.slice(0, i).forEach((q) => {
    if (prefixesOverlap(p, q)) invalid(`prefixes[${i}]: ${p.text} overlaps ${q.text}`);
  }));
  for (const o of others) {
    for (const t of o.prefixes) {
      const q = parsePrefix(t);
      if (!q.ok) continue;
      const hit = mine.find((p) => prefixesOverlap(p, q.value));
      if (hit) invalid(`prefixes: ${hit.text} overlaps ${q.value.text} of site "${o.name}": a CE could not tell the two peers apart`);
    }
  }
  if (!Array.isArray(s.wan) || s.wan.length < 1 || s.wan.length > MAX_WAN_PORTS) invalid(`wan: 1..${MAX_WAN_PORTS} WAN ports`);
  const wan = s.wan.map((w, i) => {
    const at = `wan[${i}]`;
    if (typeof w !== "object" || w === null) invalid(`${at}: must be an object`);
    const natType = w.natType ?? (w.publicAddress ? "unknown" : "none");
    if (!NAT_TYPES.includes(natType)) invalid(`${at}.natType: must be one of ${NAT_TYPES.join(", ")}`);
    if (w.trusted !== undefined && typeof w.trusted !== "boolean") invalid(`${at}.trusted: must be true or false`);
    return {
      name: checkName(`${at}.name`, w.name),
      privateAddress: checkAddress(`${at}.privateAddress`, w.privateAddress),
      privatePort: w.privatePort === undefined ? 4500 : checkPort(`${at}.privatePort`, w.privatePort),
      ...(w.publicAddress !== undefined ? { publicAddress: checkAddress(`${at}.publicAddress`, w.publicAddress) } : {}),
      ...(w.publicPort !== undefined ? { publicPort: checkPort(`${at}.publicPort`, w.publicPort) } : {}),
      natType,
      trusted: w.trusted ?? false,
    };
  });
  wan.forEach((w, i) => {
    if (wan.slice(0, i).some((x) => x.name === w.name)) invalid(`wan[${i}].name: "${w.name}" is used by another port`);
    if (wan.slice(0, i).some((x) => x.privateAddress === w.privateAddress && x.privatePort === w.privatePort)) {
      invalid(`wan[${i}]: address and port used by another port`);
    }
  });
  return { name, systemId, prefixes: mine.map((p) => p.text), wan };
}

export function checkPortUpdate(u: WanPortUpdate): WanPortUpdate {
  const out: WanPortUpdate = {};
  if (u.publicAddress !== undefined) out.publicAddress = u.publicAddress === null ? null : checkAddress("publicAddress", u.publicAddress);
  if (u.publicPort !== undefined) out.publicPort = u.publicPort === null ? null : checkPort("publicPort", u.publicPort);
  if (u.natType !== undefined) {
    if (!NAT_TYPES.includes(u.natType)) invalid(`natType: must be one of ${NAT_TYPES.join(", ")}`);
    out.natType = u.natType;
  }
  return out;
}

/**
 * The first two overlapping prefixes of `list` (each tagged with its site), or
 * undefined: sorted by family, network address, then length, a prefix that
 * contains another comes before it, and before everything between them, which
 * it contains too — so checking neighbours finds an overlap when there is one.
 * O(n log n), where checking every new site against every other (checkNewSite)
 * made adding 10,000 sites quadratic.
 */
export function firstOverlap(list: { site: string; prefix: Prefix }[]): [{ site: string; prefix: Prefix }, { site: string; prefix: Prefix }] | undefined {
  const sorted = [...list].sort((x, y) => {
    const a = x.prefix, b = y.prefix;
    if (a.family !== b.family) return a.family - b.family;
    for (let i = 0; i < a.bytes.length; i++) if (a.bytes[i] !== b.bytes[i]) return a.bytes[i] - b.bytes[i];
    return a.length - b.length;
  });
  for (let i = 1; i < sorted.length; i++) if (prefixesOverlap(sorted[i - 1].prefix, sorted[i].prefix)) return [sorted[i - 1], sorted[i]];
  return undefined;
}

