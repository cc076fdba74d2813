// The self-test's IV override (Core.katSetIv → katArmIv) ships in the
// release core, since `wesp up` runs the self-test on it. It must never
// touch traffic: it is bound to one SA and to the next outbound call, which
// disarms it whether that call sealed, dropped or never reached the SA.
// A leaked override would seal a real packet under a fixed, published IV:
// for AES-GCM and ChaCha20-Poly1305 a repeated (key, nonce) (RFC 4106 §3.1,
// RFC 7634 §2), for CBC a predictable IV (RFC 3602 §2.4).
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Core } from "../../host/core/core.ts";
import { seqIv } from "../helpers/ref_esp.ts";
import { hexOf, innerUdp, makeCore } from "./core-helpers.ts";

const KAT_IV = Uint8Array.from([0xca, 0xfe, 0xba, 0xbe, 0xfa, 0xce, 0xdb, 0xad]);

function gcmOut(c: Core, spi: number): number {
  return c.addSa({ direction: "out", suite: "aes-gcm-16", mode: "payload", spi, key: randomBytes(16), salt: randomBytes(4), peerId: 1 });
}

/** Seals one payload on `sa` in slot `i` (not processed); the IV is at bytes 8..16 of the output. */
function put(c: Core, i: number, sa: number): void {
  c.writePacket(i, randomBytes(40), 0, sa, 4);
}

function ivOf(c: Core, i: number): string {
  assert.equal(c.verdictName(i), "TO_NETWORK", c.reasonName(i));
  return hexOf(c.packet(i).subarray(8, 16));
}

test("KAT IV: an outbound call that drops disarms it (no SA, no policy, or a drop on the armed SA itself)", async () => {
  const c = await makeCore();
  const a = gcmOut(c, 0x1001);
  // Each call is armed for SA A, then fed only what drops (or nothing).
  const drops: [string, () => void][] = [
    ["NO_POLICY", () => c.writePacket(0, innerUdp("10.1.0.1", "10.2.0.1", 20))], // no SPD entries: dropped before any SA
    ["NO_SA", () => put(c, 0, 63)], // an unknown SA id
    ["TOO_BIG", () => c.writePacket(0, randomBytes(9001), 0, a, 4)], // the armed SA itself, dropped before its seal
    ["", () => {}], // an empty call
  ];
  let seq = 1n;
  for (const [reason, feed] of drops) {
    c.katSetIv(a, KAT_IV);
    feed();
    assert.equal(c.processOutbound(reason ? 1 : 0), 0);
    if (reason) assert.equal(c.reasonName(0), reason);
    put(c, 0, a);
    c.processOutbound(1);
    assert.equal(ivOf(c, 0), hexOf(seqIv(seq++)), `the KAT IV outlived a call that dropped (${reason || "empty"})`);
  }
});

test("KAT IV: armed for SA A it never reaches SA B, and it is used once", async () => {
  const c = await makeCore();
  const a = gcmOut(c, 0x1001), b = gcmOut(c, 0x1002);
  c.katSetIv(a, KAT_IV);
  put(c, 0, b); // B first in the batch: its IV stays its sequence number
  put(c, 1, a); // then the next seal on A takes the KAT IV
  put(c, 2, a); // and only that one
  assert.equal(c.processOutbound(3), 3);
  assert.equal(ivOf(c, 0), hexOf(seqIv(1n)), "SA B sealed with the IV armed for SA A");
  assert.equal(ivOf(c, 1), hexOf(KAT_IV));
  assert.equal(ivOf(c, 2), hexOf(seqIv(2n)));
  // Armed for B, a call that only seals on A: A is untouched, and B is disarmed afterwards.
  c.katSetIv(b, KAT_IV);
  put(c, 0, a);
  c.processOutbound(1);
  assert.equal(ivOf(c, 0), hexOf(seqIv(3n)));
  put(c, 0, b);
  c.processOutbound(1);
  assert.equal(ivOf(c, 0), hexOf(seqIv(2n)));
  // Only ids of live outbound SAs can be armed; the IV must fit.
  assert.throws(() => c.katSetIv(40, KAT_IV), /KAT/);
  assert.throws(() => c.katSetIv(a, new Uint8Array(17)), /KAT IV too long/);
});
