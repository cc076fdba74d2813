// Shared pieces of the io-*.test.ts end-to-end tests: a ring over real WASM
// memory (host/lab/slot_ring.ts), IP/UDP packet builders and parsers with
// their checksums, and a check that a lab left no namespace behind.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import type { Lab } from "../helpers/netns.ts";
import { ipv4Header } from "../../host/lab/packets.ts";

// The ring and the IPv4 header builder live in host/lab (bench/io uses them too).
export { Ring } from "../../host/lab/slot_ring.ts";
export { ipv4Header };

/** Deterministic, slot-specific payload of `len` bytes. */
export function payload(seed: number, len: number): Uint8Array {
  const b = new Uint8Array(len);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

export function v4(s: string): Uint8Array {
  return Uint8Array.from(s.split(".").map(Number));
}

/** IPv6 text (with at most one "::") to 16 bytes. */
export function v6(s: string): Uint8Array {
  const [head, tail] = s.includes("::") ? s.split("::") : [s, ""];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

/** RFC 1071 one's-complement sum (not yet inverted), folded to 16 bits. */
function sum16(parts: Uint8Array[]): number {
  let s = 0;
  for (const b of parts) {
    for (let i = 0; i < b.length; i += 2) s += (b[i] << 8) | (i + 1 < b.length ? b[i + 1] : 0);
  }
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

const be16 = (v: number) => Uint8Array.of(v >> 8, v & 0xff);

/** An IPv6 header (RFC 8200) for `payloadLen` bytes with next header `proto`. */
export function ipv6Header(src: Uint8Array, dst: Uint8Array, proto: number, payloadLen: number, hops = 64): Uint8Array {
  const h = new Uint8Array(40);
  h[0] = 0x60;
  h.set(be16(payloadLen), 4);
  h[6] = proto;
  h[7] = hops;
  h.set(src, 8);
  h.set(dst, 24);
  return h;
}

/**
 * A whole IPv4 or IPv6 UDP packet. The UDP checksum covers the pseudo-header
 * (RFC 768; RFC 8200 section 8.1, where it is mandatory for IPv6).
 */
export function udpPacket(src: Uint8Array, dst: Uint8Array, sport: number, dport: number, data: Uint8Array): Uint8Array {
  const ulen = 8 + data.length;
  const udp = new Uint8Array(ulen);
  udp.set(be16(sport), 0);
  udp.set(be16(dport), 2);
  udp.set(be16(ulen), 4);
  udp.set(data, 8);
  const six = src.length === 16;
  const pseudo = six
    ? [src, dst, Uint8Array.of(0, 0, ulen >> 8, ulen & 0xff, 0, 0, 0, 17)]
    : [src, dst, Uint8Array.of(0, 17), be16(ulen)];
  let c = ~sum16([...pseudo, udp]) & 0xffff;
  if (c === 0) c = 0xffff;
  udp.set(be16(c), 6);
  const ip = six ? ipv6Header(src, dst, 17, ulen) : ipv4Header(src, dst, 17, ulen);
  const out = new Uint8Array(ip.length + ulen);
  out.set(ip);
  out.set(udp, ip.length);
  return out;
}

export interface ParsedUdp {
  version: 4 | 6;
  src: Uint8Array;
  dst: Uint8Array;
  sport: number;
  dport: number;
  data: Uint8Array;
}

/** Parses an IPv4 (any IHL) or IPv6 (no extension headers) UDP packet; asserts its shape. */
export function parseUdp(p: Uint8Array): ParsedUdp {
  const version = p[0] >> 4;
  let off: number;
  let src: Uint8Array;
  let dst: Uint8Array;
  if (version === 4) {
    off = (p[0] & 15) * 4;
    assert.equal(p[9], 17, "IPv4 protocol is UDP");
    assert.equal((p[2] << 8) | p[3], p.length, "IPv4 total length matches the read");
    src = p.slice(12, 16);
    dst = p.slice(16, 20);
  } else {
    assert.equal(version, 6, "IP version");
    off = 40;
    assert.equal(p[6], 17, "IPv6 next header is UDP");
    assert.equal(((p[4] << 8) | p[5]) + 40, p.length, "IPv6 payload length matches the read");
    src = p.slice(8, 24);
    dst = p.slice(24, 40);
  }
  const ulen = (p[off + 4] << 8) | p[off + 5];
  return {
    version: version as 4 | 6,
    src,
    dst,
    sport: (p[off] << 8) | p[off + 1],
    dport: (p[off + 2] << 8) | p[off + 3],
    data: p.slice(off + 8, off + ulen),
  };
}

/** Asserts that none of the lab's namespaces is still listed by `ip netns list`. */
export function assertNoNamespacesLeft(lab: Lab): void {
  const list = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
  for (const ns of lab.namespaces) assert.ok(!list.includes(ns.name), `namespace ${ns.name} left behind`);
}

/**
 * Calls `step(got)` until `want` packets came or `tries` consecutive empty
 * rounds (10 ms apart) passed; returns the total. `step` should fill slots
 * from index `got` on (e.g. through subarrays), so no packet is overwritten.
 */
export async function collect(want: number, step: (got: number) => number, tries = 100): Promise<number> {
  let got = 0;
  for (let idle = 0; got < want && idle < tries; ) {
    const k = step(got);
    got += k;
    if (k === 0) {
      idle++;
      await new Promise((r) => setTimeout(r, 10));
    } else {
      idle = 0;
    }
  }
  return got;
}
