// ESP framing through the core: every suite and mode round-trips between two
// cores; padding, next header, TFC, dummy packets, sequence exhaustion, MTU,
// replay, authentication, padding checks, NAT-T, counters and SA removal.
// Padding and trailers are checked by opening the core's output with
// node:crypto, independently of the core.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from "node:crypto";
import { Core, KIND, VERDICT, type Mode, type SaParams, type Suite } from "../../host/core/core.ts";
import { dropSum, hexOf, inetChecksum, innerUdp, keysFor, makeCore, nodeOpenEsp, u32, type Keys } from "./core-helpers.ts";

const A_NET4 = "10.1.0.0/16", B_NET4 = "10.2.0.0/16";
const A_NET6 = "fd00:a::/32", B_NET6 = "fd00:b::/32";
const A4 = "192.0.2.1", B4 = "198.51.100.2", A6 = "2001:db8::a", B6 = "2001:db8::b";

interface Link { a: Core; b: Core; out: number; inb: number; keys: Keys; params: SaParams }

/** Core a sends to core b over one SA (same SPI and keys on both sides). */
async function link(p: Partial<SaParams> & { suite: Suite; mode: Mode }, outer6 = false, inner6 = false): Promise<Link> {
  const a = await makeCore(), b = await makeCore();
  const keys = keysFor(p.suite, p.key?.length ?? 16);
  const params: SaParams = {
    direction: "out", spi: 0x1000 + (Math.random() * 0xffff | 0), peerId: 3, ...keys,
    local: outer6 ? A6 : A4, remote: outer6 ? B6 : B4, ...p,
  } as SaParams;
  const out = a.addSa(params);
  const inb = b.addSa({ ...params, direction: "in", local: params.remote, remote: params.local, udp: p.udp });
  const [la, lb] = inner6 ? [A_NET6, B_NET6] : [A_NET4, B_NET4];
  a.addPolicy({ action: "protect", local: la, remote: lb, saId: out, peerId: 3 });
  b.addPolicy({ action: "protect", local: lb, remote: la, saId: -1, peerId: 3 });
  return { a, b, out, inb, keys: { ...keys, key: params.key ?? keys.key }, params };
}

const srcA = (inner6: boolean) => (inner6 ? "fd00:a::5" : "10.1.0.5");
const dstB = (inner6: boolean) => (inner6 ? "fd00:b::9" : "10.2.0.9");

/** a seals `pkt`; returns the wire packet. */
function seal(l: Link, pkt: Uint8Array): Uint8Array {
  l.a.writePacket(0, pkt);
  l.a.processOutbound(1);
  assert.equal(l.a.verdictName(0), "TO_NETWORK", `outbound: ${l.a.reasonName(0)}`);
  return l.a.packet(0).slice();
}

/** Sends `pkt` from a to b; returns a's wire packet and b's result. */
function carry(l: Link, pkt: Uint8Array): { wire: Uint8Array; verdict: number; reason: string; inner: Uint8Array } {
  l.a.writePacket(0, pkt);
  l.a.processOutbound(1);
  assert.equal(l.a.verdictName(0), "TO_NETWORK", `outbound: ${l.a.reasonName(0)}`);
  const wire = l.a.packet(0).slice();
  l.b.writePacket(0, wire, KIND.IP);
  l.b.processInbound(1);
  return { wire, verdict: l.b.verdict(0), reason: l.b.reasonName(0), inner: l.b.packet(0).slice() };
}

const SUITES: [Suite, number][] = [["aes-gcm-16", 16], ["aes-gcm-16", 24], ["aes-gcm-16", 32], ["chacha20-poly1305", 32], ["aes-cbc-hmac-sha256", 16], ["aes-cbc-hmac-sha256", 32]];
const MODES: Mode[] = ["tunnel", "transport-ipip", "transport-gre"];

test("every suite × mode × outer/inner family × NAT-T × ESN round-trips", async () => {
  let n = 0;
  for (const [suite, keyLen] of SUITES) for (const mode of MODES) for (const outer6 of [false, true]) for (const inner6 of [false, true]) {
    const udpOn = (n & 1) === 1, esn = (n & 2) === 2;
    n++;
    const l = await link({ suite, mode, key: randomBytes(suite === "chacha20-poly1305" ? 32 : keyLen), udp: udpOn, esn, greKey: mode === "transport-gre" ? 77 : undefined, greSeq: true }, outer6, inner6);
    for (const size of [0, 1, 63, 1400]) {
      const pkt = innerUdp(srcA(inner6), dstB(inner6), size);
      const r = carry(l, pkt);
      const what = `${suite}/${keyLen} ${mode} outer${outer6 ? 6 : 4} inner${inner6 ? 6 : 4} udp=${udpOn} esn=${esn} size=${size}`;
      assert.equal(r.verdict, VERDICT.TO_TUN, `${what}: ${r.reason}`);
      assert.equal(hexOf(r.inner), hexOf(pkt), what);
      // hdrLen: outer IP (+ UDP); the ESP header follows with our SPI.
      const hl = l.a.hdrLen(0);
      assert.equal(hl, (outer6 ? 40 : 20) + (udpOn ? 8 : 0), what);
      assert.equal(new DataView(r.wire.buffer).getUint32(hl), l.params.spi, what);
    }
    assert.equal(l.b.readCounters(l.inb).packets, 4n);
    assert.equal(l.a.readCounters(l.out).packets, 4n);
  }
});

test("transport mode: the IP header is kept, protocol 50 and lengths rewritten, and restored on open", async () => {
  for (const inner6 of [false, true]) {
    const l = await link({ suite: "chacha20-poly1305", mode: "transport" }, inner6, inner6);
    const pkt = innerUdp(srcA(inner6), dstB(inner6), 100);
    const r = carry(l, pkt);
    assert.equal(r.verdict, VERDICT.TO_TUN, r.reason);
    assert.equal(hexOf(r.inner), hexOf(pkt));
    if (!inner6) {
      assert.equal(r.wire[9], 50);
      assert.equal((r.wire[2] << 8) | r.wire[3], r.wire.length);
      assert.equal(inetChecksum(r.wire.subarray(0, 20)), 0);
      assert.equal(hexOf(r.wire.subarray(12, 20)), hexOf(pkt.subarray(12, 20)));
    } else {
      assert.equal(r.wire[6], 50);
      assert.equal((r.wire[4] << 8) | r.wire[5], r.wire.length - 40);
    }
    const plain = nodeOpenEsp(r.wire.subarray(inner6 ? 40 : 20), "chacha20-poly1305", l.keys);
    assert.equal(plain.at(-1), 17, "next header = the transport protocol (UDP)");
  }
});

test("padding is 1, 2, 3, … to 4-byte alignment (AEAD) and next header is 4 / 41 / 47", async () => {
  for (const [mode, inner6, nh] of [["tunnel", false, 4], ["tunnel", true, 41], ["transport-gre", false, 47]] as const) {
    const l = await link({ suite: "aes-gcm-16", mode }, false, inner6);
    for (let size = 0; size < 12; size++) {
      const pkt = innerUdp(srcA(inner6), dstB(inner6), size);
      const r = carry(l, pkt);
      assert.equal(r.verdict, VERDICT.TO_TUN, r.reason);
      const plain = nodeOpenEsp(r.wire.subarray(20), "aes-gcm-16", l.keys);
      const padLen = plain.at(-2)!;
      const payload = plain.length - 2 - padLen;
      assert.equal(plain.at(-1), nh);
      assert.equal(plain.length % 4, 0, "ESP payload 4-byte aligned");
      assert.ok(padLen < 4, "minimal padding");
      assert.equal(payload, pkt.length + (mode === "transport-gre" ? 4 : 0), "payload = inner (+ 4-byte GRE header)");
      for (let k = 0; k < padLen; k++) assert.equal(plain[payload + k], k + 1);
    }
  }
});

test("AES-CBC + HMAC: 16-byte padding, per-packet unpredictable IVs, ICV = HMAC-SHA-256 truncated to 128 bits", async () => {
  const l = await link({ suite: "aes-cbc-hmac-sha256", mode: "tunnel" });
  const ivs = new Set<string>();
  for (let size = 0; size < 40; size++) {
    const pkt = innerUdp(srcA(false), dstB(false), size);
    const r = carry(l, pkt);
    assert.equal(r.verdict, VERDICT.TO_TUN, r.reason);
    const esp = r.wire.subarray(20);
    const icv = esp.subarray(esp.length - 16);
    const mac = createHmac("sha256", l.keys.hmacKey!).update(esp.subarray(0, esp.length - 16)).digest().subarray(0, 16);
    assert.equal(hexOf(icv), hexOf(mac));
    const iv = esp.subarray(8, 24);
    ivs.add(hexOf(iv));
    const d = createDecipheriv("aes-128-cbc", l.keys.key, iv).setAutoPadding(false);
    const plain = Buffer.concat([d.update(esp.subarray(24, esp.length - 16)), d.final()]);
    assert.equal(plain.length % 16, 0);
    const padLen = plain.at(-2)!;
    assert.ok(padLen < 16);
    assert.equal(plain.length - 2 - padLen, pkt.length);
    for (let k = 0; k < padLen; k++) assert.equal(plain[pkt.length + k], k + 1);
  }
  assert.equal(ivs.size, 40, "no IV repeats");
});

test("GCM/ChaCha explicit IV is the 64-bit sequence number; ESN high bits go in the AAD only", async () => {
  for (const suite of ["aes-gcm-16", "chacha20-poly1305"] as const) {
    const l = await link({ suite, mode: "tunnel", esn: true, initialSeq: (5n << 32n) | 0xfffffffen });
    for (const seq of [(5n << 32n) | 0xfffffffen, (5n << 32n) | 0xffffffffn, 6n << 32n]) {
      const r = carry(l, innerUdp(srcA(false), dstB(false), 30));
      assert.equal(r.verdict, VERDICT.TO_TUN, r.reason);
      const esp = r.wire.subarray(20);
      const dv = new DataView(esp.buffer, esp.byteOffset);
      assert.equal(BigInt(dv.getUint32(4)), seq & 0xffffffffn, "low 32 bits on the wire");
      assert.equal(dv.getBigUint64(8), seq, "IV = seq64");
      nodeOpenEsp(esp, suite, l.keys, Number(seq >> 32n)); // throws unless the AAD had the high bits
    }
  }
});

test("TFC padding pads tunnel payloads up to the target; the receiver trims by the inner length", async () => {
  const l = await link({ suite: "chacha20-poly1305", mode: "tunnel", tfcPad: 1000 });
  const pkt = innerUdp(srcA(false), dstB(false), 10);
  const r = carry(l, pkt);
  assert.equal(r.verdict, VERDICT.TO_TUN, r.reason);
  assert.equal(hexOf(r.inner), hexOf(pkt));
  const plain = nodeOpenEsp(r.wire.subarray(20), "chacha20-poly1305", l.keys);
  assert.ok(plain.length >= 1000 + 2);
  assert.ok(plain.subarray(pkt.length, 1000).every((b) => b === 0), "TFC bytes are zero");
  const big = innerUdp(srcA(false), dstB(false), 1200);
  const plain2 = nodeOpenEsp(carry(l, big).wire.subarray(20), "chacha20-poly1305", l.keys);
  assert.equal(plain2.length - 2 - plain2.at(-2)!, big.length, "no TFC beyond the target");
});

test("dummy packets (next header 59) are authenticated, counted and dropped", async () => {
  const b = await makeCore(), a = await makeCore();
  const keys = keysFor("chacha20-poly1305");
  const common = { suite: "chacha20-poly1305" as const, spi: 0x5959, ...keys, peerId: 1 };
  const inb = b.addSa({ ...common, direction: "in", mode: "tunnel" });
  const out = a.addSa({ ...common, direction: "out", mode: "payload" });
  a.writePacket(0, randomBytes(20), 0, out, 59);
  a.processOutbound(1);
  b.writePacket(0, a.packet(0), KIND.PAYLOAD);
  b.setRemote(0, "192.0.2.1");
  b.processInbound(1);
  assert.equal(b.verdict(0), VERDICT.DROP);
  assert.equal(b.reasonName(0), "DUMMY");
  assert.equal(b.readCounters(inb).drops.DUMMY, 1n);
  assert.equal(b.globalCounters().inbound.drops.DUMMY, 1n);
  assert.equal(b.saState(inb).replayTop, 1n, "a dummy packet still advances the window (it authenticated)");
});

test("sequence numbers never wrap: the SA stops and asks for a rekey", async () => {
  for (const [esn, last] of [[false, 0xffffffffn], [true, 0xffffffffffffffffn]] as const) {
    const l = await link({ suite: "aes-gcm-16", mode: "tunnel", esn, initialSeq: last - 1n });
    assert.equal(carry(l, innerUdp(srcA(false), dstB(false), 8)).verdict, VERDICT.TO_TUN);
    assert.equal(l.a.saState(l.out).needsRekey, false);
    assert.equal(l.a.needsRekey(l.out), false, "the one-flag read the lifetime check polls says the same");
    const r = carry(l, innerUdp(srcA(false), dstB(false), 8));
    assert.equal(r.verdict, VERDICT.TO_TUN, `the last number ${last} is still sent`);
    assert.equal(new DataView(r.wire.buffer).getUint32(24), Number(last & 0xffffffffn));
    assert.equal(l.a.saState(l.out).needsRekey, true);
    assert.equal(l.a.needsRekey(l.out), true);
    l.a.writePacket(0, innerUdp(srcA(false), dstB(false), 8));
    l.a.processOutbound(1);
    assert.equal(l.a.reasonName(0), "SEQ_EXHAUSTED");
    assert.equal(l.a.readCounters(l.out).drops.SEQ_EXHAUSTED, 1n);
  }
});

test("path MTU: a packet that would exceed it drops as TOO_BIG without using a sequence number", async () => {
  const l = await link({ suite: "chacha20-poly1305", mode: "tunnel", mtu: 576 });
  const seq0 = l.a.saState(l.out).seq;
  l.a.writePacket(0, innerUdp(srcA(false), dstB(false), 600));
  l.a.processOutbound(1);
  assert.equal(l.a.reasonName(0), "TOO_BIG");
  assert.equal(l.a.mtu(0), 576);
  assert.equal(l.a.saState(l.out).seq, seq0);
  const ok = carry(l, innerUdp(srcA(false), dstB(false), 400));
  assert.ok(ok.wire.length <= 576);
  assert.equal(ok.verdict, VERDICT.TO_TUN);
});

test("replay, forgery and bad padding are dropped with their reasons; the window moves only after authentication", async () => {
  const l = await link({ suite: "chacha20-poly1305", mode: "tunnel", replayWindow: 32 });
  const wires: Uint8Array[] = [];
  for (let i = 0; i < 40; i++) wires.push(carry(l, innerUdp(srcA(false), dstB(false), 20)).wire);
  const feed = (w: Uint8Array) => { l.b.writePacket(0, w, KIND.IP); l.b.processInbound(1); return l.b.reasonName(0); };
  assert.equal(feed(wires[39]), "REPLAY");
  assert.equal(feed(wires[0]), "REPLAY_OLD");
  // A forged packet far ahead: AUTH, and the window does not move.
  const ahead = seal(l, innerUdp(srcA(false), dstB(false), 20)); // seq 41, not seen by b yet
  const forged = ahead.slice();
  forged[forged.length - 1] ^= 1;
  assert.equal(feed(forged), "AUTH");
  assert.equal(l.b.saState(l.inb).replayTop, 40n);
  assert.equal(feed(ahead), "NONE");
  assert.equal(l.b.verdict(0), VERDICT.TO_TUN);
  const c = l.b.readCounters(l.inb);
  assert.deepEqual([c.drops.REPLAY, c.drops.REPLAY_OLD, c.drops.AUTH, c.packets], [1n, 1n, 1n, 41n]);

  // Bad padding, sealed by node:crypto so the ICV is right.
  const spi = l.params.spi!;
  const inner = innerUdp(srcA(false), dstB(false), 21);
  // 49 + 5 + 2 = 56: aligned, pad length 5 (longer than needed is allowed), but not 1,2,3,4,5.
  const trailer = Buffer.concat([inner, Uint8Array.of(1, 2, 3, 5, 5), Uint8Array.of(5, 4)]);
  const seq = 100;
  const iv = Buffer.alloc(8); iv.writeBigUInt64BE(BigInt(seq));
  const hdr = Buffer.concat([u32(spi), u32(seq)]);
  const c2 = createCipheriv("chacha20-poly1305", l.keys.key, Buffer.concat([l.keys.salt, iv]), { authTagLength: 16 });
  c2.setAAD(hdr, { plaintextLength: trailer.length });
  const ct = Buffer.concat([c2.update(trailer), c2.final()]);
  const esp = Buffer.concat([hdr, iv, ct, c2.getAuthTag()]);
  l.b.writePacket(0, esp, KIND.PAYLOAD);
  l.b.setRemote(0, B4);
  l.b.processInbound(1);
  assert.equal(l.b.reasonName(0), "PADDING");
});

test("counters: for each direction, passed + dropped = processed", async () => {
  const l = await link({ suite: "aes-gcm-16", mode: "tunnel" });
  let sent = 0;
  for (let i = 0; i < 20; i++) { carry(l, innerUdp(srcA(false), dstB(false), i * 7)); sent++; }
  // Junk through both directions.
  for (let i = 0; i < 8; i++) l.a.writePacket(i, randomBytes(i * 5));
  l.a.processOutbound(8);
  for (let i = 0; i < 8; i++) l.b.writePacket(i, randomBytes(i * 9 + 1), i % 3);
  l.b.processInbound(8);
  const ga = l.a.globalCounters().outbound, gb = l.b.globalCounters().inbound;
  assert.equal(ga.packets + dropSum(ga), BigInt(sent + 8));
  assert.equal(gb.packets + dropSum(gb), BigInt(sent + 8));
  assert.equal(gb.packets, BigInt(sent));
});

test("two inbound SAs of one peer work at once (make-before-break rekey)", async () => {
  const l = await link({ suite: "chacha20-poly1305", mode: "tunnel" });
  const keys2 = keysFor("chacha20-poly1305");
  const spi2 = l.params.spi! + 1;
  const out2 = l.a.addSa({ ...l.params, ...keys2, spi: spi2 });
  const in2 = l.b.addSa({ ...l.params, ...keys2, spi: spi2, direction: "in", local: l.params.remote, remote: l.params.local });
  const pkt = innerUdp(srcA(false), dstB(false), 50);
  assert.equal(carry(l, pkt).verdict, VERDICT.TO_TUN); // old SA via the SPD
  l.a.writePacket(0, pkt, KIND.IP, out2);
  l.a.processOutbound(1);
  l.b.writePacket(0, l.a.packet(0), KIND.IP);
  l.b.processInbound(1);
  assert.equal(l.b.verdictName(0), "TO_TUN", l.b.reasonName(0));
  assert.equal(l.b.saId(0), in2);
  assert.equal(l.b.readCounters(l.inb).packets, 1n);
  assert.equal(l.b.readCounters(in2).packets, 1n);
});

test("inner policy check: an authenticated packet outside the SA's selectors is dropped (RFC 4301 §5.2)", async () => {
  const l = await link({ suite: "chacha20-poly1305", mode: "tunnel" });
  l.a.addPolicy({ action: "protect", local: "0.0.0.0/0", remote: "0.0.0.0/0", saId: l.out, peerId: 3, priority: 2000 });
  const spoof = innerUdp("10.9.0.1", dstB(false), 20); // source not behind the peer
  const r = carry(l, spoof);
  assert.equal(r.verdict, VERDICT.DROP);
  assert.equal(r.reason, "POLICY");
  // Another peer's selectors do not help either.
  l.b.addPolicy({ action: "protect", local: B_NET4, remote: "10.9.0.0/16", saId: -1, peerId: 4 });
  assert.equal(carry(l, spoof).reason, "POLICY");
  // The first matching entry decides: one for peer 3 placed after peer 4's changes nothing...
  l.b.addPolicy({ action: "protect", local: B_NET4, remote: "10.9.0.0/16", saId: -1, peerId: 3 });
  assert.equal(carry(l, spoof).reason, "POLICY");
  // ...ahead of it (lower priority number) it admits the packet.
  l.b.addPolicy({ action: "protect", local: B_NET4, remote: "10.9.0.0/16", saId: -1, peerId: 3, priority: 10 });
  assert.equal(carry(l, spoof).verdict, VERDICT.TO_TUN);
});

test("transport-ipip checks the delivery header's addresses", async () => {
  const l = await link({ suite: "aes-gcm-16", mode: "transport-ipip" });
  const r = carry(l, innerUdp(srcA(false), dstB(false), 20));
  assert.equal(r.verdict, VERDICT.TO_TUN);
  const moved = r.wire.slice();
  moved.set([203, 0, 113, 7], 12); // outer source not the SA's remote
  new DataView(moved.buffer).setUint16(10, 0);
  new DataView(moved.buffer).setUint16(10, inetChecksum(moved.subarray(0, 20)));
  const b2 = await makeCore();
  const in2 = b2.addSa({ ...l.params, direction: "in", local: l.params.remote, remote: l.params.local });
  b2.addPolicy({ action: "protect", local: B_NET4, remote: A_NET4, peerId: 3 });
  b2.writePacket(0, moved, KIND.IP);
  b2.processInbound(1);
  assert.equal(b2.reasonName(0), "POLICY");
  assert.equal(b2.readCounters(in2).drops.POLICY, 1n);
});

test("outbound SPD actions: BYPASS leaves the packet alone, DISCARD and no match drop", async () => {
  const l = await link({ suite: "chacha20-poly1305", mode: "tunnel" });
  l.a.addPolicy({ action: "bypass", local: A_NET4, remote: "10.3.0.0/16" });
  l.a.addPolicy({ action: "discard", local: A_NET4, remote: "10.4.0.0/16" });
  const p1 = innerUdp("10.1.0.1", "10.3.0.1", 10), p2 = innerUdp("10.1.0.1", "10.4.0.1", 10), p3 = innerUdp("10.1.0.1", "10.5.0.1", 10);
  l.a.writePacket(0, p1); l.a.writePacket(1, p2); l.a.writePacket(2, p3);
  assert.equal(l.a.processOutbound(3), 1);
  assert.equal(l.a.verdictName(0), "BYPASS");
  assert.equal(hexOf(l.a.packet(0)), hexOf(p1));
  // The bypass socket is chosen from the descriptor: the packet's family, protocol and destination
  assert.deepEqual([l.a.destFamily(0), l.a.proto(0), l.a.destAddress(0), l.a.destPort(0)], [4, 17, "10.3.0.1", 0]);
  l.a.addPolicy({ action: "bypass", local: "::/0", remote: "fd03::/16" });
  l.a.writePacket(0, innerUdp("fd01::1", "fd03::7", 10));
  assert.equal(l.a.processOutbound(1), 1);
  assert.deepEqual([l.a.verdictName(0), l.a.destFamily(0), l.a.destAddress(0)], ["BYPASS", 6, "fd03::7"]);
  l.a.writePacket(0, p1); l.a.writePacket(1, p2); l.a.writePacket(2, p3);
  l.a.processOutbound(3);
  assert.equal(l.a.reasonName(1), "DISCARD");
  assert.equal(l.a.reasonName(2), "NO_POLICY");
});

test("NAT-T: IPv4 UDP checksum 0, IPv6 checksum valid; the peer's address is learned from authenticated packets", async () => {
  for (const outer6 of [false, true]) {
    const l = await link({ suite: "chacha20-poly1305", mode: "tunnel", udp: { sport: 4500, dport: 4500 } }, outer6);
    const r = carry(l, innerUdp(srcA(false), dstB(false), 33));
    assert.equal(r.verdict, VERDICT.TO_TUN, r.reason);
    const ipl = outer6 ? 40 : 20;
    const u = r.wire.subarray(ipl);
    assert.equal((u[0] << 8) | u[1], 4500);
    assert.equal((u[4] << 8) | u[5], u.length);
    assert.equal(l.a.destPort(0), 4500);
    assert.equal(l.a.destAddress(0), outer6 ? B6 : B4);
    if (!outer6) assert.equal((u[6] << 8) | u[7], 0);
    else {
      let s = 0;
      for (let i = 8; i < 40; i += 2) s += (r.wire[i] << 8) | r.wire[i + 1];
      s += u.length + 17;
      assert.equal(inetChecksum(u, s), 0, "IPv6 UDP checksum verifies");
      assert.notEqual((u[6] << 8) | u[7], 0);
    }
  }
  // Learning: b's inbound SA receives from a new address/port (kind 1); b's outbound SA for the same peer follows.
  const l = await link({ suite: "chacha20-poly1305", mode: "tunnel", udp: true });
  const backOut = l.b.addSa({ ...l.params, spi: 0x7777, local: B4, remote: A4, udp: true });
  l.b.addPolicy({ action: "protect", local: B_NET4, remote: A_NET4, saId: backOut, peerId: 3, priority: 1 });
  l.a.writePacket(0, innerUdp(srcA(false), dstB(false), 10));
  l.a.processOutbound(1);
  const esp = l.a.packet(0).slice(l.a.hdrLen(0));
  l.b.writePacket(0, esp, KIND.UDP);
  l.b.setRemote(0, "203.0.113.50", 61000, B4);
  l.b.processInbound(1);
  assert.equal(l.b.verdictName(0), "TO_TUN", l.b.reasonName(0));
  l.b.writePacket(0, innerUdp(dstB(false), srcA(false), 10));
  l.b.processOutbound(1);
  assert.equal(l.b.verdictName(0), "TO_NETWORK", l.b.reasonName(0));
  assert.equal(l.b.destAddress(0), "203.0.113.50");
  assert.equal(l.b.destPort(0), 61000);
  const w = l.b.packet(0);
  assert.equal(hexOf(w.subarray(16, 20)), "cb007132", "outer destination rewritten");
  assert.equal(inetChecksum(w.subarray(0, 20)), 0);
  // A replayed (older) packet from elsewhere does not move the peer back.
  l.b.writePacket(0, esp, KIND.UDP);
  l.b.setRemote(0, "203.0.113.99", 5, B4);
  l.b.processInbound(1);
  assert.equal(l.b.reasonName(0), "REPLAY");
  l.b.writePacket(0, innerUdp(dstB(false), srcA(false), 10));
  l.b.processOutbound(1);
  assert.equal(l.b.destAddress(0), "203.0.113.50");
});

test("removing an SA wipes its record (keys included) and forgets its SPI", async () => {
  const l = await link({ suite: "aes-cbc-hmac-sha256", mode: "tunnel" });
  const rec = l.b.ex.saRecord(l.inb);
  const wire = carry(l, innerUdp(srcA(false), dstB(false), 10)).wire;
  const mem = new Uint8Array(l.b.ex.memory.buffer);
  assert.ok(mem.subarray(rec, rec + 2048).some((x) => x !== 0));
  l.b.removeSa(l.inb);
  // Everything but the free-list link (SA_NEXT, 4 bytes at 2096) is zero: keys, salt, IV seed, HMAC pads, counters.
  assert.ok(mem.subarray(rec, rec + 2096).every((x) => x === 0), "crypto context zeroed");
  assert.ok(mem.subarray(rec + 2100, rec + 2624).every((x) => x === 0), "rest of the record zeroed");
  assert.equal(l.b.ex.sadLookup(l.params.spi), -1);
  l.b.writePacket(0, wire, KIND.IP);
  l.b.processInbound(1);
  assert.equal(l.b.reasonName(0), "NO_SA");
  assert.throws(() => l.b.readCounters(l.inb));
});

test("parameter checks: no integrity refused unless allowed, bad key lengths, duplicate SPIs, large windows from the pool", async () => {
  const c = await makeCore({ largeWindowBlocks: 1 });
  const k = keysFor("aes-gcm-16");
  assert.throws(() => c.addSa({ direction: "in", suite: "aes-cbc", mode: "tunnel", spi: 1, key: k.key }), /without integrity/);
  assert.ok(c.addSa({ direction: "in", suite: "aes-cbc", mode: "tunnel", spi: 1, key: k.key, allowNoIntegrity: true }) >= 0);
  assert.throws(() => c.addSa({ direction: "in", suite: "aes-gcm-16", mode: "tunnel", spi: 2, key: randomBytes(20), salt: k.salt }), /invalid parameter/);
  assert.throws(() => c.addSa({ direction: "in", suite: "chacha20-poly1305", mode: "tunnel", spi: 1, key: randomBytes(32) }), /duplicate inbound SPI/);
  assert.throws(() => c.addSa({ direction: "in", suite: "chacha20-poly1305", mode: "tunnel", spi: 0, key: randomBytes(32) }), /invalid parameter/);
  assert.throws(() => c.addSa({ direction: "in", suite: "none", mode: "tunnel", spi: 3 }), /invalid parameter/);
  assert.throws(() => c.addSa({ direction: "in", suite: "chacha20-poly1305", mode: "tunnel", spi: 3, key: randomBytes(32), replayWindow: 16 }), /invalid parameter/);
  const big = c.addSa({ direction: "in", suite: "chacha20-poly1305", mode: "tunnel", spi: 4, key: randomBytes(32), replayWindow: 65536 });
  assert.equal(c.ex.saLargeBlocksFree(), 0);
  assert.throws(() => c.addSa({ direction: "in", suite: "chacha20-poly1305", mode: "tunnel", spi: 5, key: randomBytes(32), replayWindow: 4096 }), /large replay-window/);
  assert.ok(c.addSa({ direction: "in", suite: "chacha20-poly1305", mode: "tunnel", spi: 5, key: randomBytes(32), replayWindow: 960 }) >= 0, "960 fits inline");
  c.removeSa(big);
  assert.equal(c.ex.saLargeBlocksFree(), 1);
});

test("descriptors that lie about offset/length are dropped as BAD_SLOT, never trap", async () => {
  const c = await makeCore();
  for (const [off, len] of [[9000, 1000], [0xffffffff, 10], [10, 0xffffffff], [9472, 1]]) {
    c.setPacket(0, off, len);
    c.processOutbound(1);
    assert.equal(c.reasonName(0), "BAD_SLOT");
    c.setPacket(0, off, len, KIND.IP);
    c.processInbound(1);
    assert.equal(c.reasonName(0), "BAD_SLOT");
  }
  c.setPacket(0, 128, 10, 7);
  c.processInbound(1);
  assert.equal(c.reasonName(0), "BAD_SLOT", "unknown kind");
});
