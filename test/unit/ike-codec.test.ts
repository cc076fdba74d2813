// The IKEv2 message codec (host/ike/message.ts, payloads.ts, sa_payload.ts):
// bytes laid out by hand from RFC 7296 §3, a table of malformed inputs with the
// reason each must be refused for, and a fast-check round trip.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeHeader, decodeMessage, encodeMessage, type Message } from "../../host/ike/message.ts";
import { keyLength } from "../../host/ike/sa_payload.ts";
import { message } from "./ike-gen.ts";

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ""), "hex"));

// An IKE_SA_INIT request: SA (AES-GCM-16/128, HMAC-SHA-256, ECP-256), KE (group 19, 4 bytes of "key"),
// Nonce (16 bytes). Laid out by hand from §3.1–§3.9.
const SPI_I = "0102030405060708";
const SA =
  "22 00 0028" + // generic header: next = KE (34), length 40
  "00 00 0024 01 01 00 03" + // proposal: last, length 36, #1, IKE, no SPI, 3 transforms
  "03 00 000c 01 00 0014 800e 0080" + // ENCR AES_GCM_16 (20), Key Length (14, TV) = 128
  "03 00 0008 02 00 0005" + // PRF HMAC_SHA2_256 (5)
  "00 00 0008 04 00 0013"; // DH 19, last transform
const KE = "28 00 000c 0013 0000 deadbeef"; // next = Nonce (40), group 19
const NONCE = "00 00 0014" + "00112233445566778899aabbccddeeff";
const BODY = SA + KE + NONCE;
const LEN = 28 + hex(BODY).length;
const INIT = hex(SPI_I + "0000000000000000" + "21 20 22 08 00000000" + LEN.toString(16).padStart(8, "0") + BODY);

const INIT_MSG: Message = {
  header: { spiI: hex(SPI_I), spiR: new Uint8Array(8), version: 0x20, exchange: 34, flags: 0x08, messageId: 0 },
  payloads: [
    {
      kind: "sa",
      proposals: [{
        num: 1, protocol: 1, spi: new Uint8Array(0),
        transforms: [
          { type: 1, id: 20, attributes: [{ type: 14, value: 128 }] },
          { type: 2, id: 5, attributes: [] },
          { type: 4, id: 19, attributes: [] },
        ],
      }],
    },
    { kind: "ke", group: 19, data: hex("deadbeef") },
    { kind: "nonce", data: hex("00112233445566778899aabbccddeeff") },
  ],
};

test("a hand-built IKE_SA_INIT decodes to its fields and encodes back to the same bytes", () => {
  const r = decodeMessage(INIT);
  assert.ok(r.ok, r.ok ? "" : r.error.detail);
  assert.deepEqual(r.value, INIT_MSG);
  const sa = r.value.payloads[0];
  assert.equal(sa.kind === "sa" && keyLength(sa.proposals[0].transforms[0]), 128);
  assert.deepEqual(encodeMessage(INIT_MSG), INIT);
});

/** Applies `edit` to a copy of INIT. */
const edited = (edit: (b: Uint8Array) => Uint8Array | void) => {
  const b = INIT.slice();
  return edit(b) ?? b;
};
const setLen = (b: Uint8Array, n: number) => new DataView(b.buffer).setUint32(24, n);
const SA_OFF = 28; // generic header of the SA payload
const PROP_OFF = SA_OFF + 4;
const T1_OFF = PROP_OFF + 8;
const KE_OFF = SA_OFF + 40;
const NONCE_OFF = KE_OFF + 12;

const BAD: [string, string, Uint8Array][] = [
  ["27 bytes", "short-header", INIT.slice(0, 27)],
  ["major version 1", "bad-major-version", edited((b) => void (b[17] = 0x10))],
  ["major version 3", "bad-major-version", edited((b) => void (b[17] = 0x30))],
  ["header length one short", "length-mismatch", edited((b) => setLen(b, LEN - 1))],
  ["datagram longer than header length", "length-mismatch", (() => { const b = new Uint8Array(LEN + 1); b.set(INIT); return b; })()],
  ["header-only message naming a first payload", "payload-truncated", edited((b) => { const h = b.slice(0, 28); setLen(h, 28); return h; })],
  ["SA payload length 3", "payload-length", edited((b) => void (b[SA_OFF + 3] = 3))],
  ["SA payload length past the end", "payload-length", edited((b) => void (b[SA_OFF + 2] = 0x10))],
  ["Nonce says more payloads follow", "payload-truncated", edited((b) => void (b[NONCE_OFF] = 41))],
  ["4 bytes after the last payload", "trailing-bytes", (() => { const b = new Uint8Array(LEN + 4); b.set(INIT); setLen(b, LEN + 4); return b; })()],
  ["nonce of 15 bytes", "nonce-size", edited((b) => { b[NONCE_OFF + 3] -= 1; const c = b.slice(0, LEN - 1); setLen(c, LEN - 1); return c; })],
  ["KE body of 3 bytes", "body-short", edited((b) => { /* shrink KE to 7 bytes: header + 3 */ return shrink(b, KE_OFF, 5); })],
  ["proposal length beyond the SA payload", "proposal-length", edited((b) => void (b[PROP_OFF + 3] = 0x30))],
  ["proposal number 2 first", "proposal-number", edited((b) => void (b[PROP_OFF + 4] = 2))],
  ["proposal marked 'more' but last", "proposal-last", edited((b) => void (b[PROP_OFF] = 2))],
  ["proposal Last Substruc 1", "proposal-last", edited((b) => void (b[PROP_OFF] = 1))],
  ["4 transforms announced, 3 present", "transform-count", edited((b) => void (b[PROP_OFF + 7] = 4))],
  ["IKE proposal with a 4-byte SPI", "spi-size", edited((b) => void (b[PROP_OFF + 6] = 4))],
  ["transform length 7", "proposal-length", edited((b) => void (b[T1_OFF + 3] = 7))],
  ["last transform marked 'more'", "proposal-last", edited((b) => void (b[T1_OFF + 20] = 3))],
  ["TLV attribute longer than its transform", "proposal-length", edited((b) => { b[T1_OFF + 8] = 0x00; b[T1_OFF + 11] = 0x10; })],
];

/** Removes `n` bytes from the payload at `off` (its length and the header's adjusted). */
function shrink(b: Uint8Array, off: number, n: number): Uint8Array {
  const len = (b[off + 2] << 8) | b[off + 3];
  const out = new Uint8Array(b.length - n);
  out.set(b.subarray(0, off + len - n));
  out.set(b.subarray(off + len), off + len - n);
  out[off + 3] = len - n;
  setLen(out, out.length);
  return out;
}

for (const [what, reason, bytes] of BAD) {
  test(`refused with a reason: ${what} → ${reason}`, () => {
    const r = decodeMessage(bytes);
    assert.equal(r.ok, false, `${what} decoded`);
    if (!r.ok) {
      assert.equal(r.error.reason, reason, r.error.detail);
      assert.ok(r.error.detail.length > 0);
      assert.ok(r.error.offset >= 0 && r.error.offset <= bytes.length);
    }
  });
}

test("each payload body is checked: a table per payload type", () => {
  // Wraps one payload body after a header, as the only payload.
  const one = (type: number, body: string) => {
    const b = hex(body);
    const m = new Uint8Array(28 + 4 + b.length);
    m.set(hex(SPI_I), 0);
    m[16] = type;
    m[17] = 0x20;
    setLen(m, m.length);
    m[28 + 2] = (4 + b.length) >> 8;
    m[28 + 3] = 4 + b.length;
    m.set(b, 32);
    return decodeMessage(m);
  };
  const cases: [number, string, string | null][] = [
    [35, "01000000 0a000001", null], // IDi IPv4
    [35, "01000000 0a0000", "id-length"],
    [36, "05000000" + "00".repeat(15), "id-length"],
    [36, "020000", "body-short"],
    [39, "020000", "body-short"],
    [41, "00000000", null], // Notify, no SPI, no data
    [41, "03044000 aabbcc", "spi-size"], // 4-byte SPI but 3 bytes left
    [42, "01000001", null], // Delete IKE SA
    [42, "01040001 00000001", "spi-size"], // IKE with a 4-byte SPI
    [42, "03040002 00000001", "delete-count"],
    [44, "01000000 07000011 0000ffff 0a000000 0a0000ff 00", "ts-length"], // an IPv4 range is 16 bytes
    [44, "02000000 07000010 0000ffff 0a000000 0a0000ff", "ts-count"],
    [44, "01000000 09000010 0000ffff 0a000000 0a0000ff", "ts-type"],
    [44, "01000000 08000010 0000ffff 0a000000 0a0000ff", "ts-length"],
    [44, "01000000 07000010 0000ffff 0a000000 0a0000ff", null],
    [37, "", "body-short"],
    [33, "", "body-short"],
    [47, "01000000", null], // CP: opaque
  ];
  for (const [type, body, reason] of cases) {
    const r = one(type, body);
    if (reason === null) assert.ok(r.ok, `type ${type} ${body}: ${r.ok ? "" : r.error.detail}`);
    else assert.equal(r.ok ? "decoded" : r.error.reason, reason, `type ${type} ${body}`);
  }
});

test("the Encrypted payload must be last; its Next Payload names the first inner payload", () => {
  const m: Message = {
    header: INIT_MSG.header,
    payloads: [{ kind: "vendor", data: hex("cafe") }, { kind: "sk", type: 46, firstPayload: 35, body: hex("00".repeat(24)) }],
  };
  const bytes = encodeMessage(m);
  assert.equal(bytes[28 + 6], 35, "SK header's Next Payload = IDi");
  assert.deepEqual(decodeMessage(bytes), { ok: true, value: m });
  // the same SK followed by a vendor payload: refused
  const bad = encodeMessage({ header: m.header, payloads: [m.payloads[1], m.payloads[0]] });
  const r = decodeMessage(bad);
  assert.equal(r.ok ? "decoded" : r.error.reason, "sk-not-last");
});

test("decodeHeader alone reads SPIs and exchange from a message whose payloads are garbage", () => {
  const b = INIT.slice();
  b[SA_OFF + 3] = 1; // payload length 1
  assert.equal(decodeMessage(b).ok, false);
  const h = decodeHeader(b);
  assert.ok(h.ok);
  assert.deepEqual([h.value.exchange, h.value.messageId, h.value.flags, h.value.nextPayload], [34, 0, 8, 33]);
});

test("encode → decode is the identity on valid messages (fast-check)", () => {
  fc.assert(
    fc.property(message, (m) => {
      const r = decodeMessage(encodeMessage(m));
      assert.ok(r.ok, r.ok ? "" : `${r.error.reason}: ${r.error.detail}`);
      assert.deepEqual(r.value, m);
    }),
    { numRuns: 2000 },
  );
});
