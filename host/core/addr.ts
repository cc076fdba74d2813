// IP addresses and prefixes as the core stores them: 16 bytes in network
// order, an IPv4 address in the first 4 bytes and zeros after.
import { isIPv4, isIPv6 } from "node:net";

export interface Addr {
  family: 4 | 6;
  /** 16 bytes; IPv4 uses the first 4. */
  bytes: Uint8Array;
}

export interface Prefix extends Addr {
  len: number;
}

/** Parses "192.0.2.1" or "2001:db8::1" (a Uint8Array of 4 or 16 bytes is taken as is). */
export function parseAddr(a: string | Uint8Array): Addr {
  const bytes = new Uint8Array(16);
  if (a instanceof Uint8Array) {
    if (a.length !== 4 && a.length !== 16) throw new Error(`address must be 4 or 16 bytes, got ${a.length}`);
    bytes.set(a);
    return { family: a.length === 4 ? 4 : 6, bytes };
  }
  if (isIPv4(a)) {
    a.split(".").forEach((o, i) => (bytes[i] = Number(o)));
    return { family: 4, bytes };
  }
  if (!isIPv6(a)) throw new Error(`not an IP address: ${a}`);
  let s = a.split("%")[0];
  // An embedded IPv4 tail (::ffff:192.0.2.1) becomes two hex groups.
  const m = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (m) {
    const o = m[2].split(".").map(Number);
    s = m[1] + ((o[0] << 8) | o[1]).toString(16) + ":" + ((o[2] << 8) | o[3]).toString(16);
  }
  const [head, tail] = s.includes("::") ? s.split("::") : [s, undefined];
  const hg = head ? head.split(":") : [];
  const tg = tail ? tail.split(":") : [];
  const groups = tail === undefined ? hg : [...hg, ...Array(8 - hg.length - tg.length).fill("0"), ...tg];
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    bytes[2 * i] = v >> 8;
    bytes[2 * i + 1] = v & 0xff;
  });
  return { family: 6, bytes };
}

/** Parses "10.0.0.0/8", "2001:db8::/32" or a bare address (a host prefix). */
export function parsePrefix(p: string): Prefix {
  const [a, l] = p.split("/");
  const addr = parseAddr(a);
  const max = addr.family === 4 ? 32 : 128;
  const len = l === undefined ? max : Number(l);
  if (!Number.isInteger(len) || len < 0 || len > max) throw new Error(`bad prefix length in ${p}`);
  return { ...addr, len };
}

/** Formats 16 core bytes of the given family as text. */
export function formatAddr(family: number, b: Uint8Array): string {
  if (family === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const g: string[] = [];
  for (let i = 0; i < 16; i += 2) g.push(((b[i] << 8) | b[i + 1]).toString(16));
  // Compress the longest run of zero groups (RFC 5952 §4.2).
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== "0") { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === "0") j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return g.join(":");
  return g.slice(0, best).join(":") + "::" + g.slice(best + bestLen).join(":");
}
