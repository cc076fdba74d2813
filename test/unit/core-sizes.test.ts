// Inbound ESP as large as a slot holds (layout.ts: SLOT_SIZE 9,472 bytes).
// A size limit of a cipher's scratch must never show up as AUTH: that counter
// means forgeries (RFC 4303 §3.4.4), and an operator reads it as an attack.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { KIND, SLOT_SIZE } from "../../host/core/core.ts";
import { sealEsp, suiteSizes, type RefSuite } from "../helpers/ref_esp.ts";
import { hexOf, makeCore } from "./core-helpers.ts";

const CASES: [RefSuite, "aes-gcm-16" | "chacha20-poly1305" | "aes-cbc-hmac-sha256"][] = [
  ["aes-gcm-16", "aes-gcm-16"],
  ["chacha20-poly1305", "chacha20-poly1305"],
  ["aes-cbc-hmac-sha256-128", "aes-cbc-hmac-sha256"],
];

test("inbound ESP filling the whole slot opens for every suite with integrity (AES-GCM: ciphertexts above 9,216 bytes too)", async () => {
  for (const [ref, suite] of CASES) {
    const c = await makeCore({ slots: 2 });
    const sa = { suite: ref, spi: 0x4242, key: randomBytes(suite === "chacha20-poly1305" ? 32 : 16), salt: randomBytes(4), authKey: randomBytes(32), esn: false };
    const inb = c.addSa({ direction: "in", suite, mode: "payload", spi: sa.spi, key: sa.key, salt: sa.salt, hmacKey: sa.authKey, peerId: 1 });
    const { ivLen, icvLen, align } = suiteSizes(ref);
    // From 9,216 bytes of ciphertext (the old AES-GCM limit) up to the whole slot
    // (HEADROOM onwards, as received; then from offset 0).
    for (const room of [8 + ivLen + 9216 + icvLen, 9344, SLOT_SIZE]) {
      const ctLen = Math.floor((room - 8 - ivLen - icvLen) / align) * align;
      const payload = randomBytes(ctLen - 2);
      const esp = sealEsp(sa, { seq: 7n, iv: randomBytes(ivLen), payload, nextHeader: 4 });
      const why = `${suite}: ESP ${esp.length} bytes, ciphertext ${ctLen}`;
      assert.equal(esp.length, 8 + ivLen + ctLen + icvLen, why);
      c.slot(0).set(esp, SLOT_SIZE - esp.length);
      c.setPacket(0, SLOT_SIZE - esp.length, esp.length, KIND.PAYLOAD);
      c.setRemote(0, "192.0.2.2", 0, "192.0.2.1");
      c.processInbound(1);
      assert.equal(c.verdictName(0), "TO_TUN", `${why}: ${c.reasonName(0)}`);
      assert.equal(hexOf(c.packet(0)), hexOf(payload), why);
      c.removeSa(inb);
      c.addSa({ direction: "in", suite, mode: "payload", spi: sa.spi, key: sa.key, salt: sa.salt, hmacKey: sa.authKey, peerId: 1 }); // fresh window, same id
    }
    assert.equal(c.globalCounters().inbound.drops.AUTH, 0n, `${suite}: a size counted as a forgery`);
  }
});
