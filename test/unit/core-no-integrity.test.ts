// An inbound SA without integrity (suite "aes-cbc", allowNoIntegrity): its
// sequence number and the datagram's source are not authenticated, so they
// must change nothing. RFC 4303 §3.4.3: anti-replay "MUST NOT be enabled
// unless integrity service also is enabled"; and a NAT mapping is only
// followed on a packet that authenticates (as IKE does, RFC 7296 §2.23).
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { KIND, VERDICT } from "../../host/core/core.ts";
import { sealEsp } from "../helpers/ref_esp.ts";
import { innerUdp, makeCore } from "./core-helpers.ts";

const L = "192.0.2.1", R = "192.0.2.2", PEER = 5, SPI = 0x5005;

async function noIntegrityPeer() {
  const c = await makeCore();
  const key = randomBytes(16);
  const inb = c.addSa({ direction: "in", suite: "aes-cbc", allowNoIntegrity: true, mode: "tunnel", spi: SPI, key, peerId: PEER, local: L, remote: R, udp: true, replayWindow: 64 });
  const out = c.addSa({ direction: "out", suite: "aes-cbc", allowNoIntegrity: true, mode: "tunnel", spi: 0x6006, key: randomBytes(16), peerId: PEER, local: L, remote: R, udp: true });
  c.addPolicy({ action: "protect", local: "10.1.0.0/16", remote: "10.2.0.0/16", saId: out, peerId: PEER });
  return { c, inb, out, key };
}

function espHead(seq: number): Uint8Array {
  const h = new Uint8Array(8);
  new DataView(h.buffer).setUint32(0, SPI);
  new DataView(h.buffer).setUint32(4, seq);
  return h;
}

test("no integrity: a datagram carrying the SPI neither moves the peer's address nor the replay window", async () => {
  const { c, inb, out, key } = await noIntegrityPeer();
  const top0 = c.saState(inb).replayTop;
  // Anyone who knows the SPI: sequence number near the top of the space, random IV and "ciphertext".
  for (let k = 0; k < 16; k++) {
    c.writePacket(0, Uint8Array.from([...espHead(0xfffffff0 + k), ...randomBytes(16 + 32)]), KIND.UDP);
    c.setRemote(0, "203.0.113.66", 40000 + k, L);
    c.processInbound(1);
  }
  const st = c.saState(out);
  assert.equal(st.remoteLearned, false, "address learned from an unauthenticated datagram");
  assert.equal(st.remote, R);
  assert.equal(c.saState(inb).replayTop, top0, "replay window advanced by an unauthenticated sequence number");
  // The peer's outbound traffic still goes where it was configured.
  c.writePacket(0, innerUdp("10.1.0.5", "10.2.0.9", 20));
  c.processOutbound(1);
  assert.equal(c.verdictName(0), "TO_NETWORK", c.reasonName(0));
  assert.equal(c.destAddress(0), R);
  assert.equal(c.destPort(0), 4500);
  // A genuine packet with a low number is not refused as old, and a genuine one
  // from a new address (the peer's own, but unprovable) does not move it either.
  const inner = innerUdp("10.2.0.9", "10.1.0.5", 30);
  const esp = sealEsp({ suite: "aes-cbc", spi: SPI, key, esn: false }, { seq: 5n, iv: randomBytes(16), payload: inner, nextHeader: 4 });
  c.writePacket(0, esp, KIND.UDP);
  c.setRemote(0, "198.51.100.7", 61000, L);
  c.processInbound(1);
  assert.equal(c.verdict(0), VERDICT.TO_TUN, c.reasonName(0));
  assert.deepEqual(c.packet(0), inner);
  assert.equal(c.saState(out).remoteLearned, false);
  assert.equal(c.saState(inb).replayTop, top0);
});

/** An AES-GCM SA pair over UDP, and one authenticated packet (seq 9) from a new address: the SAs' state after it. */
async function gcmPacketFromElsewhere(fixedRemote: boolean) {
  const c = await makeCore();
  const key = randomBytes(16), salt = randomBytes(4);
  const inb = c.addSa({ direction: "in", suite: "aes-gcm-16", mode: "tunnel", spi: SPI, key, salt, peerId: PEER, local: L, remote: R, udp: true, fixedRemote });
  const out = c.addSa({ direction: "out", suite: "aes-gcm-16", mode: "tunnel", spi: 0x6006, key: randomBytes(16), salt: randomBytes(4), peerId: PEER, local: L, remote: R, udp: true, fixedRemote });
  c.addPolicy({ action: "protect", local: "10.1.0.0/16", remote: "10.2.0.0/16", saId: out, peerId: PEER });
  const inner = innerUdp("10.2.0.9", "10.1.0.5", 30);
  const esp = sealEsp({ suite: "aes-gcm-16", spi: SPI, key, salt, esn: false }, { seq: 9n, iv: randomBytes(8), payload: inner, nextHeader: 4 });
  c.writePacket(0, esp, KIND.UDP);
  c.setRemote(0, "198.51.100.7", 61000, L);
  c.processInbound(1);
  assert.equal(c.verdict(0), VERDICT.TO_TUN, c.reasonName(0));
  return { top: c.saState(inb).replayTop, out: c.saState(out) };
}

test("with integrity the same SA shape still learns and advances (the check is on the ICV, not on NAT-T)", async () => {
  const { top, out: st } = await gcmPacketFromElsewhere(false);
  assert.equal(top, 9n);
  assert.equal(st.remoteLearned, true);
  assert.equal(st.remote, "198.51.100.7");
  assert.equal(st.remotePort, 61000);
});

test("fixedRemote (nat_t: false on a UDP port): an authenticated packet from another address does not move the peer", async () => {
  const { top, out: st } = await gcmPacketFromElsewhere(true);
  assert.equal(top, 9n, "the window still advances");
  assert.equal(st.remoteLearned, false);
  assert.equal(st.remote, R);
  assert.equal(st.remotePort, 4500);
});
