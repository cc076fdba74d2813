// STUN on the NAT-T port (assembly/udp_encap.ts): a STUN message — top two
// bits zero, magic cookie 0x2112A442 at bytes 4-7, Message Length the rest
// of the datagram (RFC 8489 §5, RFC 7983 §7) — goes to the host untouched
// with D_PROTO = HOST_STUN, so the WAN port's own socket can learn its NAT
// mapping; IKE behind the marker keeps HOST_IKE; anything that misses one of
// the three tests is ESP (here: an unknown SPI).
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { KIND } from "../../host/core/core.ts";
import { HOST_IKE, HOST_STUN } from "../../host/core/abi.ts";
import { encodeStun } from "../../host/net/stun.ts";
import { hexOf, ipv4, makeCore, udp } from "./core-helpers.ts";

const R4 = Uint8Array.of(192, 0, 2, 9), L4 = Uint8Array.of(192, 0, 2, 1);
const TID = randomBytes(12);
const response = encodeStun(
  { cls: "success", method: 1, transactionId: TID, xorMappedAddress: { family: 4, address: L4, port: 20001 }, software: "wesp controller" },
  { fingerprint: true },
);

test("STUN messages on the NAT-T socket go to the host as STUN; near misses are ESP", async () => {
  const c = await makeCore();
  const cases: [string, Uint8Array, string][] = [
    ["Binding success response", response, "STUN"],
    ["Binding request, no attributes", encodeStun({ cls: "request", method: 1, transactionId: TID }), "STUN"],
    ["IKE behind the marker", Uint8Array.from([0, 0, 0, 0, ...randomBytes(40)]), "IKE"],
    ["cookie off by one bit", (() => { const b = Uint8Array.from(response); b[7] ^= 1; return b; })(), "NO_SA"],
    ["top bit set", (() => { const b = Uint8Array.from(response); b[0] |= 0x80; return b; })(), "NO_SA"],
    ["length one word short", (() => { const b = Uint8Array.from(response); b[3] -= 4; return b; })(), "NO_SA"],
    ["trailing byte", Uint8Array.from([...response, 0]), "NO_SA"],
  ];
  cases.forEach(([, b], i) => {
    c.writePacket(i, b, KIND.UDP);
    c.setRemote(i, R4, 3478, L4);
  });
  const full = ipv4({ src: "192.0.2.9", dst: "192.0.2.1", proto: 17, payload: udp(3478, 4500, response) });
  c.writePacket(cases.length, full, KIND.IP);
  c.processInbound(cases.length + 1);
  cases.forEach(([name, b, want], i) => {
    const got = c.verdictName(i) === "TO_HOST" ? (c.proto(i) === HOST_STUN ? "STUN" : c.proto(i) === HOST_IKE ? "IKE" : "?") : c.reasonName(i);
    assert.equal(got, want, name);
    if (want !== "NO_SA") assert.equal(hexOf(c.packet(i)), hexOf(b), `${name}: untouched`);
  });
  const n = cases.length;
  assert.equal(c.verdictName(n), "TO_HOST", "a raw-socket IPv4 packet carrying STUN over UDP");
  assert.equal(c.proto(n), HOST_STUN);
  assert.equal(hexOf(c.packet(n)), hexOf(full));
});
