// Moving an SA to a new remote in place (core moveSa, the saSetRemote
// export): the outer header template is rebuilt, an inbound plain tunnel is
// found by its new remote address and no longer by the old one, an ESP SA
// keeps its sequence number and replay window, and nothing is allocated.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { KIND } from "../../host/core/core.ts";
import { coreAddr } from "../../host/config/addr.ts";
import { hexOf, inetChecksum, innerUdp, ipv4, ipv6, keysFor, makeCore } from "./core-helpers.ts";

const L4 = "192.0.2.1", R4 = "192.0.2.2", M4 = "192.0.2.77";
const L6 = "2001:db8::1", R6 = "2001:db8::2", M6 = "2001:db8::77";

/** The outer packet `inner` makes when sent from `from` to the local end, for mode `mode`. */
function outer(mode: "ipip" | "gre", outer6: boolean, from: string, inner: Uint8Array, greKey?: number): Uint8Array {
  let payload = inner, proto = 4;
  if (mode === "gre") {
    const h = new Uint8Array(greKey === undefined ? 4 : 8);
    const dv = new DataView(h.buffer);
    dv.setUint16(0, greKey === undefined ? 0 : 0x2000); // RFC 2890 §2: K bit
    dv.setUint16(2, 0x0800);
    if (greKey !== undefined) dv.setUint32(4, greKey);
    payload = Buffer.concat([h, inner]);
    proto = 47;
  }
  return outer6 ? ipv6({ src: from, dst: L6, proto, payload }) : ipv4({ src: from, dst: L4, proto, payload });
}

test("plain IPIP / GRE moved: template to the new remote, SAD finds the new remote and not the old", async () => {
  for (const mode of ["ipip", "gre"] as const) for (const outer6 of [false, true]) {
    const c = await makeCore();
    const [l, r, m] = outer6 ? [L6, R6, M6] : [L4, R4, M4];
    const greKey = mode === "gre" ? 0x1234 : undefined;
    const extra = greKey !== undefined ? { greKey } : {};
    const out = c.addSa({ direction: "out", suite: "none", mode, peerId: 2, local: l, remote: r, ...extra });
    const inb = c.addSa({ direction: "in", suite: "none", mode, peerId: 2, local: l, remote: r, ...extra });
    c.addPolicy({ action: "protect", local: "10.1.0.0/16", remote: "10.2.0.0/16", saId: out, peerId: 2 });
    c.moveSa(out, m);
    c.moveSa(inb, m);
    const tag = `${mode} outer IPv${outer6 ? 6 : 4}`;

    c.writePacket(0, innerUdp("10.1.0.5", "10.2.0.9", 20));
    c.processOutbound(1);
    assert.equal(c.verdictName(0), "TO_NETWORK", c.reasonName(0));
    assert.equal(c.destAddress(0), m, tag);
    const w = c.packet(0);
    const dst = outer6 ? w.subarray(24, 40) : w.subarray(16, 20);
    assert.equal(hexOf(dst), hexOf(coreAddr(m).bytes.subarray(0, outer6 ? 16 : 4)), `${tag}: outer destination`);
    if (!outer6) assert.equal(inetChecksum(w.subarray(0, 20)), 0, `${tag}: header checksum`);

    const reply = innerUdp("10.2.0.9", "10.1.0.5", 20);
    c.writePacket(0, outer(mode, outer6, m, reply, greKey), KIND.IP);
    c.processInbound(1);
    assert.equal(c.verdictName(0), "TO_TUN", `${tag}: from the new remote: ${c.reasonName(0)}`);
    assert.equal(c.saId(0), inb);
    c.writePacket(0, outer(mode, outer6, r, reply, greKey), KIND.IP);
    c.processInbound(1);
    assert.equal(c.reasonName(0), "NO_SA", `${tag}: the old remote no longer matches`);

    // Another tunnel now at the old address: each remote finds its own SA (the SAD chain stayed whole).
    const other = c.addSa({ direction: "in", suite: "none", mode, peerId: 3, local: l, remote: r, ...extra });
    for (const [from, want] of [[r, other], [m, inb]] as const) {
      c.writePacket(0, outer(mode, outer6, from, reply, greKey), KIND.IP);
      c.processInbound(1);
      assert.equal(c.saId(0), want, `${tag}: from ${from}`);
    }
  }
});

test("ESP over UDP moved: new address and port, sequence and replay window kept, learned address reset by forgetPeer", async () => {
  const a = await makeCore(), b = await makeCore();
  const keys = keysFor("chacha20-poly1305", 32);
  const sa = { suite: "chacha20-poly1305" as const, mode: "tunnel" as const, spi: 0x4242, peerId: 3, ...keys };
  const out = a.addSa({ ...sa, direction: "out", local: L4, remote: R4, udp: { sport: 4500, dport: 4500 } });
  const inb = b.addSa({ ...sa, direction: "in", local: R4, remote: L4, udp: { sport: 4500, dport: 4500 }, replayWindow: 64 });
  const back = b.addSa({ ...sa, spi: 0x4343, direction: "out", local: R4, remote: L4, udp: { sport: 4500, dport: 4500 } });
  a.addPolicy({ action: "protect", local: "10.1.0.0/16", remote: "10.2.0.0/16", saId: out, peerId: 3 });
  b.addPolicy({ action: "protect", local: "10.2.0.0/16", remote: "10.1.0.0/16", saId: back, peerId: 3 });

  const send = (): Uint8Array => {
    a.writePacket(0, innerUdp("10.1.0.5", "10.2.0.9", 30));
    a.processOutbound(1);
    assert.equal(a.verdictName(0), "TO_NETWORK", a.reasonName(0));
    return a.packet(0).slice(a.hdrLen(0));
  };
  const receive = (esp: Uint8Array, from: string, port: number): string => {
    b.writePacket(0, esp, KIND.UDP);
    b.setRemote(0, from, port, R4);
    b.processInbound(1);
    return b.verdictName(0) === "DROP" ? b.reasonName(0) : b.verdictName(0);
  };
  const first = send();
  assert.equal(receive(first, "203.0.113.50", 61000), "TO_TUN");
  for (let i = 0; i < 4; i++) assert.equal(receive(send(), "203.0.113.50", 61000), "TO_TUN");
  assert.equal(b.saState(back).remote, "203.0.113.50", "learned through the NAT");

  a.moveSa(out, M4, 4501);
  assert.equal(a.saState(out).seq, 6n, "outbound sequence kept");
  const esp = send();
  assert.equal(a.destAddress(0), M4);
  assert.equal(a.destPort(0), 4501);
  assert.equal(new DataView(esp.buffer, esp.byteOffset).getUint32(4), 6, "ESP sequence number continues (RFC 4303 §3.3.3)");

  b.moveSa(inb, "198.51.100.9", 4600);
  b.moveSa(back, "198.51.100.9", 4600);
  b.forgetPeer(3);
  const st = b.saState(back);
  assert.deepEqual([st.remote, st.remotePort, st.remoteLearned], ["198.51.100.9", 4600, false], "the learned address is gone");
  assert.equal(b.saState(inb).replayTop, 5n, "replay window kept");
  assert.equal(receive(first, "198.51.100.9", 4600), "REPLAY", "an old packet is still a replay");
  assert.equal(receive(esp, "198.51.100.9", 4600), "TO_TUN");
  b.writePacket(0, innerUdp("10.2.0.9", "10.1.0.5", 10));
  b.processOutbound(1);
  assert.equal(b.destAddress(0), "198.51.100.9", "outbound follows the configured address, not the forgotten learned one");
  assert.equal(b.destPort(0), 4600);
});

test("moveSa refuses what it cannot do and allocates nothing", async () => {
  const c = await makeCore({ slots: 4, maxSas: 8, maxPolicies: 4, largeWindowBlocks: 0 });
  const key = randomBytes(32);
  const udpOut = c.addSa({ direction: "out", suite: "chacha20-poly1305", mode: "tunnel", spi: 0x900, key, local: L4, remote: R4, udp: true });
  const inb = c.addSa({ direction: "in", suite: "none", mode: "ipip", local: L4, remote: R4 });
  assert.throws(() => c.moveSa(udpOut, M6, 4500), /invalid parameter/, "another family");
  assert.throws(() => c.moveSa(udpOut, M4, 0), /invalid parameter/, "UDP port 0");
  assert.throws(() => c.moveSa(udpOut, M4, 70000), /invalid parameter/, "port out of range");
  assert.throws(() => c.moveSa(7, M4), /not found/);
  assert.equal(c.ex.saSetRemote(-1, 4, 0), -9);
  assert.equal(c.saState(udpOut).remote, R4, "a refused move changes nothing");

  const top = c.ex.memoryTop(), bytes = c.ex.memory.buffer.byteLength;
  const reply = innerUdp("10.2.0.9", "10.1.0.5", 8);
  for (let i = 0; i < 10_000; i++) {
    const to = `192.0.2.${(i % 200) + 10}`;
    c.moveSa(inb, to);
    if (i % 997 !== 0) continue;
    c.writePacket(0, ipv4({ src: to, dst: L4, proto: 4, payload: reply }), KIND.IP);
    c.processInbound(1);
    assert.equal(c.saId(0), inb, `lookup after move ${i}`);
  }
  assert.equal(c.ex.memoryTop(), top, "no arena allocation");
  assert.equal(c.ex.memory.buffer.byteLength, bytes, "linear memory not grown");
});
