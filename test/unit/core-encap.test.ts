// IP-in-IP (RFC 2003/2473), GRE (RFC 2784/2890) and UDP encapsulation
// (RFC 3948) at the byte level.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { KIND, VERDICT } from "../../host/core/core.ts";
import { hexOf, inetChecksum, innerUdp, ipv4, ipv6, makeCore, udp } from "./core-helpers.ts";

const L4 = "192.0.2.1", R4 = "192.0.2.2", L6 = "2001:db8::1", R6 = "2001:db8::2";

async function plainPair(mode: "ipip" | "gre", outer6: boolean, extra: { greKey?: number; greSeq?: boolean } = {}) {
  const c = await makeCore();
  const [l, r] = outer6 ? [L6, R6] : [L4, R4];
  const out = c.addSa({ direction: "out", suite: "none", mode, peerId: 2, local: l, remote: r, ...extra });
  const inb = c.addSa({ direction: "in", suite: "none", mode, peerId: 2, local: l, remote: r, ...extra });
  // outbound 10.1/16 -> 10.2/16; inbound from 10.2/16 to 10.1/16
  c.addPolicy({ action: "protect", local: "10.1.0.0/16", remote: "10.2.0.0/16", saId: out, peerId: 2 });
  c.addPolicy({ action: "protect", local: "fd01::/16", remote: "fd02::/16", saId: out, peerId: 2 });
  return { c, out, inb };
}

test("plain IP-in-IP: outer protocol 4 / 41 from the inner version, id/ttl from the SA, back by outer addresses", async () => {
  for (const outer6 of [false, true]) for (const inner6 of [false, true]) {
    const { c, inb } = await plainPair("ipip", outer6);
    const pkt = inner6 ? innerUdp("fd01::5", "fd02::9", 40) : innerUdp("10.1.0.5", "10.2.0.9", 40);
    c.writePacket(0, pkt);
    c.processOutbound(1);
    assert.equal(c.verdictName(0), "TO_NETWORK", c.reasonName(0));
    const w = c.packet(0).slice();
    const hl = outer6 ? 40 : 20;
    assert.equal(c.hdrLen(0), hl);
    assert.equal(c.destPort(0), 0);
    assert.equal(w[outer6 ? 6 : 9], inner6 ? 41 : 4);
    assert.equal(c.proto(0), inner6 ? 41 : 4, "the descriptor names the outer protocol");
    assert.equal(hexOf(w.subarray(hl)), hexOf(pkt));
    if (!outer6) assert.equal(inetChecksum(w.subarray(0, 20)), 0);
    // Inbound: the reply direction (swap outer and inner addresses).
    const reply = inner6 ? innerUdp("fd02::9", "fd01::5", 40) : innerUdp("10.2.0.9", "10.1.0.5", 40);
    const back = outer6 ? ipv6({ src: R6, dst: L6, proto: inner6 ? 41 : 4, payload: reply }) : ipv4({ src: R4, dst: L4, proto: inner6 ? 41 : 4, payload: reply });
    c.writePacket(0, back, KIND.IP);
    c.processInbound(1);
    assert.equal(c.verdictName(0), "TO_TUN", c.reasonName(0));
    assert.equal(c.saId(0), inb);
    assert.equal(hexOf(c.packet(0)), hexOf(reply));
    // From an address no SA has: NO_SA. Protocol 4 carrying IPv6: MALFORMED.
    const stranger = outer6 ? ipv6({ src: "2001:db8::99", dst: L6, proto: 4, payload: reply }) : ipv4({ src: "192.0.2.99", dst: L4, proto: 4, payload: reply });
    c.writePacket(0, stranger, KIND.IP);
    c.processInbound(1);
    assert.equal(c.reasonName(0), "NO_SA");
    const lie = outer6 ? ipv6({ src: R6, dst: L6, proto: inner6 ? 4 : 41, payload: reply }) : ipv4({ src: R4, dst: L4, proto: inner6 ? 4 : 41, payload: reply });
    c.writePacket(0, lie, KIND.IP);
    c.processInbound(1);
    assert.equal(c.reasonName(0), "MALFORMED");
  }
});

test("GRE: header with key and sequence (RFC 2890), sequence counts up from 0", async () => {
  const { c } = await plainPair("gre", false, { greKey: 0xdeadbeef, greSeq: true });
  for (let n = 0; n < 3; n++) {
    c.writePacket(0, innerUdp("10.1.0.5", "10.2.0.9", 10));
    c.processOutbound(1);
    const w = c.packet(0);
    assert.equal(w[9], 47);
    assert.equal(c.proto(0), 47, "the descriptor names the outer protocol");
    assert.equal(hexOf(w.subarray(20, 32)), "30000800" + "deadbeef" + n.toString(16).padStart(8, "0"));
  }
  const { c: c6 } = await plainPair("gre", true);
  c6.writePacket(0, innerUdp("fd01::5", "fd02::9", 10));
  c6.processOutbound(1);
  assert.equal(hexOf(c6.packet(0).subarray(40, 44)), "000086dd", "no key, no sequence; IPv6 payload");
});

/** Recomputes the IPv4 header checksum after a test edited the header. */
function fixSum(p: Uint8Array): void {
  p[10] = p[11] = 0;
  const c = inetChecksum(p.subarray(0, 20));
  p[10] = c >> 8;
  p[11] = c & 0xff;
}

function gre(bits: number, proto: number, opts: { csum?: boolean; key?: number; seq?: number }, payload: Uint8Array): Uint8Array {
  const words: number[] = [];
  if (opts.csum) words.push(0);
  if (opts.key !== undefined) words.push(opts.key);
  if (opts.seq !== undefined) words.push(opts.seq);
  const h = new Uint8Array(4 + 4 * words.length + payload.length);
  const dv = new DataView(h.buffer);
  dv.setUint16(0, bits | (opts.csum ? 0x8000 : 0) | (opts.key !== undefined ? 0x2000 : 0) | (opts.seq !== undefined ? 0x1000 : 0));
  dv.setUint16(2, proto);
  words.forEach((w, i) => dv.setUint32(4 + 4 * i, w >>> 0));
  h.set(payload, 4 + 4 * words.length);
  if (opts.csum) dv.setUint16(4, inetChecksum(h));
  return h;
}

test("GRE inbound: checksum verified, key must match, RFC 1701 bits and versions refused", async () => {
  const { c } = await plainPair("gre", false, { greKey: 7 });
  const inner = innerUdp("10.2.0.9", "10.1.0.5", 30);
  const feed = (g: Uint8Array) => {
    c.writePacket(0, ipv4({ src: R4, dst: L4, proto: 47, payload: g }), KIND.IP);
    c.processInbound(1);
    return c.verdict(0) === VERDICT.TO_TUN ? "TO_TUN" : c.reasonName(0);
  };
  assert.equal(feed(gre(0, 0x0800, { key: 7 }, inner)), "TO_TUN");
  assert.equal(hexOf(c.packet(0)), hexOf(inner));
  assert.equal(feed(gre(0, 0x0800, { key: 7, seq: 99, csum: true }, inner)), "TO_TUN");
  const bad = gre(0, 0x0800, { key: 7, csum: true }, inner);
  bad[bad.length - 1] ^= 0x55;
  assert.equal(feed(bad), "GRE", "bad checksum");
  assert.equal(feed(gre(0, 0x0800, { key: 8 }, inner)), "NO_SA", "wrong key");
  assert.equal(feed(gre(0, 0x0800, {}, inner)), "NO_SA", "key missing");
  assert.equal(feed(gre(0x4000, 0x0800, { key: 7 }, inner)), "GRE", "routing present (RFC 1701)");
  assert.equal(feed(gre(0x0001, 0x0800, { key: 7 }, inner)), "GRE", "version 1");
  assert.equal(feed(gre(0, 0x6558, { key: 7 }, inner)), "MALFORMED", "not IP inside");
  assert.equal(feed(gre(0, 0x0800, { key: 7 }, innerUdp("10.9.0.9", "10.1.0.5", 30))), "POLICY", "inner source not the peer's");
  assert.equal(feed(Uint8Array.of(0, 0)), "GRE", "truncated");
});

test("NAT-T: non-ESP marker goes to the host untouched, keepalives are counted, short datagrams dropped", async () => {
  const c = await makeCore();
  const ike = Uint8Array.from([0, 0, 0, 0, ...randomBytes(60)]);
  c.writePacket(0, ike, KIND.UDP);
  c.setRemote(0, R4, 4500, L4);
  c.writePacket(1, Uint8Array.of(0xff), KIND.UDP);
  c.setRemote(1, R4, 4500, L4);
  c.writePacket(2, Uint8Array.of(1, 2, 3), KIND.UDP);
  c.setRemote(2, R4, 4500, L4);
  const full = ipv4({ src: R4, dst: L4, proto: 17, payload: udp(4500, 4500, ike) });
  c.writePacket(3, full, KIND.IP);
  const esp = ipv4({ src: R4, dst: L4, proto: 17, payload: udp(4500, 4500, Uint8Array.from([0, 0, 0, 9, ...randomBytes(40)])) });
  c.writePacket(4, esp, KIND.IP);
  assert.equal(c.processInbound(5), 2);
  assert.equal(c.verdictName(0), "TO_HOST");
  assert.equal(hexOf(c.packet(0)), hexOf(ike), "untouched");
  assert.equal(c.reasonName(1), "KEEPALIVE");
  assert.equal(c.reasonName(2), "MALFORMED");
  assert.equal(c.verdictName(3), "TO_HOST");
  assert.equal(hexOf(c.packet(3)), hexOf(full), "whole packet untouched");
  assert.equal(c.reasonName(4), "NO_SA", "UDP-encapsulated ESP with an unknown SPI");
  const g = c.globalCounters().inbound;
  assert.equal(g.drops.KEEPALIVE, 1n);
  assert.equal(g.packets, 2n);
});

test("inbound kinds: ICMP is NOT_ESP, fragments, lying lengths and bad IPv4 header checksums are MALFORMED, kind 2 takes the protocol from the descriptor", async () => {
  const c = await makeCore();
  c.writePacket(0, ipv4({ src: R4, dst: L4, proto: 1, payload: randomBytes(20) }), KIND.IP);
  const frag = ipv4({ src: R4, dst: L4, proto: 50, payload: randomBytes(40) });
  frag[6] = 0x20; // MF
  fixSum(frag);
  c.writePacket(1, frag, KIND.IP);
  const lying = ipv4({ src: R4, dst: L4, proto: 50, payload: randomBytes(40) });
  lying[3] += 10; // total length beyond the packet
  fixSum(lying);
  c.writePacket(2, lying, KIND.IP);
  c.writePacket(3, Uint8Array.from([0x40, 0, 8, 0, ...randomBytes(26)]), KIND.PAYLOAD, -1, 47); // GRE with R set
  c.setRemote(3, R4, 0, L4);
  c.writePacket(4, ipv4({ src: R4, dst: L4, proto: 17, payload: udp(1, 4500, new Uint8Array(0)).subarray(0, 6) }), KIND.IP);
  const badSum = ipv4({ src: R4, dst: L4, proto: 1, payload: randomBytes(20) });
  badSum[10] ^= 0x80;
  c.writePacket(5, badSum, KIND.IP);
  c.processInbound(6);
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((i) => c.reasonName(i)), ["NOT_ESP", "MALFORMED", "MALFORMED", "GRE", "MALFORMED", "MALFORMED"]);
});
