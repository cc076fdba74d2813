// Proves the oracle: the reference ESP (test/helpers/ref_esp.ts) reproduces
// every published vector of the shared file bit for bit, opens each back to
// its plaintext, and rejects each vector with any single byte changed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { hex, toHex } from "../../host/core/raw_exports.ts";
import { frame, minPadLen, monotonicPad, openEsp, PROTO, sealEsp, sealTransport, suiteSizes, type Outer } from "../helpers/ref_esp.ts";
import { loadVectors, vectorSa, vectorSeq } from "../helpers/vectors.ts";

const vectors = loadVectors();

test("the vector file holds the 21 vectors the issue names", () => {
  assert.equal(vectors.length, 21);
  assert.equal(new Set(vectors.map((v) => v.id)).size, 21);
});

/** The outer header fields a vector's expected_packet carries (they are the vector's own). */
function outerOf(pkt: Uint8Array): Outer {
  assert.equal(pkt[0], 0x45, "vectors' outer headers are IPv4 without options");
  const dv = new DataView(pkt.buffer, pkt.byteOffset);
  return { src: pkt.slice(12, 16), dst: pkt.slice(16, 20), ttl: pkt[8], tos: pkt[1], id: dv.getUint16(4), df: (dv.getUint16(6) & 0x4000) !== 0 };
}

for (const v of vectors) {
  test(`reference ESP reproduces ${v.id}`, () => {
    const sa = vectorSa(v);
    const seq = vectorSeq(v);
    const payload = hex(v.plaintext_payload);
    const esp = sealEsp(sa, { seq, iv: hex(v.iv), payload, nextHeader: v.next_header });
    assert.equal(toHex(esp), v.expected_esp, "seal");
    if (v.padding !== undefined) {
      assert.equal(v.padlen, minPadLen(sa.suite, payload.length), "the vector uses minimum padding");
      assert.equal(v.padding, toHex(monotonicPad(v.padlen!)));
    }

    const opened = openEsp(sa, hex(v.expected_esp), Number(seq >> 32n));
    assert.ok(opened.ok, `open: ${!opened.ok && opened.reason}`);
    assert.equal(toHex(opened.payload), v.plaintext_payload);
    assert.equal(opened.nextHeader, v.next_header);

    if (v.expected_packet) {
      const expected = hex(v.expected_packet);
      const got = v.mode === "transport"
        ? sealTransport(sa, hex(v.input_packet!), seq, hex(v.iv))
        : frame(outerOf(expected), PROTO.ESP, esp);
      assert.equal(toHex(got), v.expected_packet, "whole packet");
    }
  });

  if (v.integrity !== null || v.suite !== "aes-cbc") {
    test(`reference ESP rejects ${v.id} with any byte after the SPI changed`, () => {
      const sa = vectorSa(v);
      const seqHi = Number(vectorSeq(v) >> 32n);
      const good = hex(v.expected_esp);
      for (let i = 4; i < good.length; i++) {
        const bad = good.slice();
        bad[i] ^= 1 << (i % 8);
        const r = openEsp(sa, bad, seqHi);
        assert.deepEqual(r, { ok: false, reason: "auth" }, `byte ${i}`);
      }
      // The ESN high half is authenticated too though never sent (RFC 4303 §2.2.1).
      if (sa.esn) assert.deepEqual(openEsp(sa, good, (seqHi + 1) >>> 0), { ok: false, reason: "auth" });
      // A truncated packet is malformed or fails authentication, never opens.
      const { ivLen, icvLen } = suiteSizes(sa.suite);
      for (let n = 0; n < good.length; n++) assert.equal(openEsp(sa, good.subarray(0, n), seqHi).ok, false, `length ${n}`);
      assert.ok(8 + ivLen + icvLen + 2 <= good.length);
    });
  }
}
