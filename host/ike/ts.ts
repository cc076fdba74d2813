// Traffic selectors (RFC 7296 §2.9, §3.13.1) from the config's prefixes, and
// narrowing: the responder answers with the intersection of what was proposed
// and what its policy allows, never more (§2.9: "the responder is allowed to
// narrow the choices by selecting a subset of the traffic").
import { TsType } from "./constants.ts";
import type { TrafficSelector } from "./payloads.ts";
import { formatAddress, parsePrefix } from "../config/addr.ts";
import type { Prefix } from "../config/model.ts";

/** The address range of a prefix as a selector for all protocols and ports. */
export function prefixToTs(p: Prefix): TrafficSelector {
  const n = p.bytes.length;
  const start = Uint8Array.from(p.bytes);
  const end = Uint8Array.from(p.bytes);
  for (let bit = p.length; bit < n * 8; bit++) end[bit >> 3] |= 0x80 >> (bit & 7);
  return { tsType: n === 4 ? TsType.IPV4_ADDR_RANGE : TsType.IPV6_ADDR_RANGE, ipProtocol: 0, startPort: 0, endPort: 0xffff, start, end };
}

/**
 * Transport mode (RFC 4301 §4.4.1.1, RFC 7296 §2.9): the SA protects what the two
 * hosts send each other, so its selectors are the outer addresses themselves,
 * one per next-layer protocol the virtual link carries (GRE 47; IP-in-IP 4 and
 * IPv6-in-IP 41), all ports (0–65535, §3.13.1: these protocols have none).
 */
export function hostTs(address: Uint8Array, protocols: readonly number[]): TrafficSelector[] {
  const tsType = address.length === 4 ? TsType.IPV4_ADDR_RANGE : TsType.IPV6_ADDR_RANGE;
  return protocols.map((ipProtocol) => ({ tsType, ipProtocol, startPort: 0, endPort: 0xffff, start: Uint8Array.from(address), end: Uint8Array.from(address) }));
}

/** Selectors from CIDR texts ("10.1.0.0/16"); throws on a bad prefix (config is checked before). */
export function tsFromCidrs(cidrs: readonly string[]): TrafficSelector[] {
  return cidrs.map((c) => {
    const p = parsePrefix(c);
    if (!p.ok) throw new RangeError(p.message);
    return prefixToTs(p.value);
  });
}

const cmp = (a: Uint8Array, b: Uint8Array) => {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
};

/** The intersection of two selectors, or undefined when they share nothing. */
export function intersect(a: TrafficSelector, b: TrafficSelector): TrafficSelector | undefined {
  if (a.tsType !== b.tsType) return undefined;
  // IP protocol 0 means "any" (§3.13.1)
  if (a.ipProtocol !== 0 && b.ipProtocol !== 0 && a.ipProtocol !== b.ipProtocol) return undefined;
  const startPort = Math.max(a.startPort, b.startPort);
  const endPort = Math.min(a.endPort, b.endPort);
  if (startPort > endPort) return undefined;
  const start = cmp(a.start, b.start) >= 0 ? a.start : b.start;
  const end = cmp(a.end, b.end) <= 0 ? a.end : b.end;
  if (cmp(start, end) > 0) return undefined;
  return { tsType: a.tsType, ipProtocol: a.ipProtocol || b.ipProtocol, startPort, endPort, start: start.slice(), end: end.slice() };
}

/** Every non-empty intersection of a proposed selector with an allowed one (§2.9 narrowing). */
export function narrow(proposed: readonly TrafficSelector[], allowed: readonly TrafficSelector[]): TrafficSelector[] {
  const out: TrafficSelector[] = [];
  for (const p of proposed) for (const a of allowed) {
    const x = intersect(p, a);
    if (x && !out.some((o) => sameTs(o, x))) out.push(x);
  }
  return out;
}

/** True if `inner` lies within one of `outer` (the initiator's check of a narrowed answer). */
export function within(inner: readonly TrafficSelector[], outer: readonly TrafficSelector[]): boolean {
  return inner.every((i) => outer.some((o) => { const x = intersect(i, o); return !!x && sameTs(x, i); }));
}

export function sameTs(a: TrafficSelector, b: TrafficSelector): boolean {
  return a.tsType === b.tsType && a.ipProtocol === b.ipProtocol && a.startPort === b.startPort && a.endPort === b.endPort && cmp(a.start, b.start) === 0 && cmp(a.end, b.end) === 0;
}

/** Text form: a CIDR when the range is one ("192.168.1.0/24"), else "start-end"; protocol/ports when not "any". */
export function tsText(t: TrafficSelector): string {
  const fmt = formatAddress;
  let range = `${fmt(t.start)}-${fmt(t.end)}`;
  const len = prefixLength(t.start, t.end);
  if (len !== undefined) range = `${fmt(t.start)}/${len}`;
  const proto = t.ipProtocol === 0 && t.startPort === 0 && t.endPort === 0xffff ? "" : `[${t.ipProtocol}/${t.startPort}-${t.endPort}]`;
  return range + proto;
}

/** The prefix length if [start, end] is exactly one prefix. */
export function prefixLength(start: Uint8Array, end: Uint8Array): number | undefined {
  let len = 0;
  while (len < start.length * 8) {
    const bit = 0x80 >> (len & 7);
    const s = start[len >> 3] & bit;
    const e = end[len >> 3] & bit;
    if (s !== e) break;
    len++;
  }
  for (let b = len; b < start.length * 8; b++) {
    const bit = 0x80 >> (b & 7);
    if ((start[b >> 3] & bit) !== 0 || (end[b >> 3] & bit) === 0) return undefined;
  }
  return len;
}
