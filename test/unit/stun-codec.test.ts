// The STUN codec (host/net/stun.ts) against RFC 5769's sample messages (§2.1
// request with MESSAGE-INTEGRITY and FINGERPRINT, §2.2/§2.3 responses with an
// IPv4 and an IPv6 XOR-MAPPED-ADDRESS), then a table of hostile messages, one
// per refusal reason, and the attribute-order rules of RFC 8489 §14.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ATTR, STUN_DECODE_REASONS, decodeStun, encodeStun, isStun, messageType, verifyIntegrity, type StunMessage,
} from "../../host/net/stun.ts";

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ""), "hex"));
const PASSWORD = new TextEncoder().encode("VOkJxbRl1RmTxUk/WvJxBt");
const TID = hex("b7e7a701 bc34d686 fa87dfae");

// RFC 5769 §2.1 (PRIORITY 0x0024 is comprehension-required and not ours: ICE's).
const SAMPLE_REQUEST = hex(`
  00010058 2112a442 b7e7a701 bc34d686 fa87dfae
  80220010 5354554e 20746573 7420636c 69656e74
  00240004 6e0001ff
  80290008 932ff9b1 51263b36
  00060009 6576746a 3a683676 59202020
  00080014 9aeaa70c bfd8cb56 781ef2b5 b2d3f249 c1b571a2
  80280004 e57a3bcf`);
// RFC 5769 §2.2: 192.0.2.1 port 32853 (SOFTWARE padded with 0x20, as the RFC does on purpose).
const SAMPLE_V4 = hex(`
  0101003c 2112a442 b7e7a701 bc34d686 fa87dfae
  8022000b 74657374 20766563 746f7220
  00200008 0001a147 e112a643
  00080014 2b91f599 fd9e90c3 8c7489f9 2af9ba53 f06be7d7
  80280004 c07d4c96`);
// RFC 5769 §2.3: 2001:db8:1234:5678:11:2233:4455:6677 port 32853.
const SAMPLE_V6 = hex(`
  01010048 2112a442 b7e7a701 bc34d686 fa87dfae
  8022000b 74657374 20766563 746f7220
  00200014 0002a147 0113a9fa a5d3f179 bc25f4b5 bed2b9d9
  00080014 a382954e 4be67bf1 1784c97c 8292c275 bfe3ed41
  80280004 c8fb0b4c`);

function decoded(b: Uint8Array) {
  const r = decodeStun(b);
  assert.ok(r.ok, r.ok ? "" : `${r.reason}: ${r.detail}`);
  return r.value;
}

test("RFC 5769 §2.1 sample request: fields, unknown comprehension-required PRIORITY, integrity and fingerprint", () => {
  const d = decoded(SAMPLE_REQUEST);
  assert.equal(d.message.cls, "request");
  assert.equal(d.message.method, 1);
  assert.deepEqual(d.message.transactionId, TID);
  assert.equal(d.message.software, "STUN test client");
  assert.equal(d.message.username, "evtj:h6vY");
  assert.deepEqual(d.unknownRequired, [0x0024]);
  assert.equal(d.fingerprint, true);
  assert.deepEqual(d.integrity, { kind: "sha1", offset: 20 + 20 + 8 + 12 + 16, length: 20 });
  assert.equal(verifyIntegrity(SAMPLE_REQUEST, d, PASSWORD), true);
  assert.equal(verifyIntegrity(SAMPLE_REQUEST, d, new TextEncoder().encode("VOkJxbRl1RmTxUk/WvJxBT")), false);
});

for (const [name, sample, family, addr] of [
  ["§2.2 IPv4", SAMPLE_V4, 4, "c0000201"],
  ["§2.3 IPv6", SAMPLE_V6, 6, "20010db8123456780011223344556677"],
] as const) {
  test(`RFC 5769 ${name} response: XOR-MAPPED-ADDRESS, integrity, fingerprint; our encoding of it`, () => {
    const d = decoded(sample);
    assert.equal(d.message.cls, "success");
    assert.equal(d.message.software, "test vector");
    assert.deepEqual(d.message.xorMappedAddress, { family, address: hex(addr), port: 32853 });
    assert.equal(d.fingerprint, true);
    assert.equal(verifyIntegrity(sample, d, PASSWORD), true);
    // Ours pads SOFTWARE with a zero where the RFC's has 0x20 (§14: padding is
    // ignored), so integrity and fingerprint differ there; all else is equal.
    const ours = encodeStun(d.message, { integrity: { key: PASSWORD, kind: "sha1" }, fingerprint: true });
    assert.equal(ours.length, sample.length);
    const patched = Uint8Array.from(ours);
    patched[20 + 4 + 11] = 0x20;
    const mi = sample.length - 8 - 20;
    assert.deepEqual(patched.subarray(0, mi), sample.subarray(0, mi));
    const again = decoded(ours);
    assert.deepEqual(again.message, d.message);
    assert.equal(verifyIntegrity(ours, again, PASSWORD), true);
  });
}

test("message types: class and method bits interleave per RFC 8489 §5", () => {
  assert.equal(messageType(1, "request"), 0x0001);
  assert.equal(messageType(1, "indication"), 0x0011);
  assert.equal(messageType(1, "success"), 0x0101);
  assert.equal(messageType(1, "error"), 0x0111);
  assert.equal(messageType(0xfff, "error"), 0x3fff);
  for (const cls of ["request", "indication", "success", "error"] as const) {
    for (const method of [0, 1, 0x7f, 0x80, 0xabc, 0xfff]) {
      const b = encodeStun({ cls, method, transactionId: TID });
      assert.deepEqual(decoded(b).message, { cls, method, transactionId: TID });
    }
  }
});

test("error responses: ERROR-CODE and UNKNOWN-ATTRIBUTES round-trip; SHA-256 integrity", () => {
  const m: StunMessage = {
    cls: "error", method: 1, transactionId: TID,
    errorCode: { code: 420, reason: "Unknown Attribute" }, unknownAttributes: [0x0024, 0x7fff, 0x0003], software: "wesp",
  };
  const key = new TextEncoder().encode("k");
  const b = encodeStun(m, { integrity: { key, kind: "sha256" }, fingerprint: true });
  const d = decoded(b);
  assert.deepEqual(d.message, m);
  assert.equal(d.integrity?.kind, "sha256");
  assert.equal(verifyIntegrity(b, d, key), true);
  assert.equal(verifyIntegrity(b, d, new TextEncoder().encode("K")), false);
  assert.equal(isStun(b), true);
});

/** A message with the attributes given as [type, value hex] (padded here), optional fingerprint. */
function build(attrs: [number, string][], opts: { cls?: number; lenDelta?: number; fingerprint?: boolean } = {}): Uint8Array {
  const parts = attrs.map(([t, v]) => {
    const val = hex(v);
    const a = new Uint8Array(4 + ((val.length + 3) & ~3));
    a[0] = t >> 8; a[1] = t; a[2] = val.length >> 8; a[3] = val.length;
    a.set(val, 4);
    return a;
  });
  const body = Buffer.concat(parts);
  const b = new Uint8Array(20 + body.length);
  b[1] = opts.cls ?? 1;
  const len = body.length + (opts.lenDelta ?? 0);
  b[2] = len >> 8; b[3] = len;
  b.set(hex("2112a442"), 4);
  b.set(TID, 8);
  b.set(body, 20);
  return b;
}

const HOSTILE: [string, Uint8Array, (typeof STUN_DECODE_REASONS)[number]][] = [
  ["19 bytes", new Uint8Array(19), "short"],
  ["no cookie", hex("0001000000000000" + "00".repeat(12)), "not-stun"],
  ["top bits set", hex("c0010000 2112a442" + "00".repeat(12)), "not-stun"],
  ["length not /4", build([], { lenDelta: 2 }), "length"],
  ["length past datagram", build([[ATTR.SOFTWARE, "61"]], { lenDelta: 4 }), "length"],
  ["attribute runs past end", (() => { const b = build([[ATTR.SOFTWARE, "61626364"]]); b[23] = 9; return b; })(), "attr-truncated"],
  ["attribute after FINGERPRINT", (() => {
    const m = encodeStun({ cls: "request", method: 1, transactionId: TID }, { fingerprint: true });
    const b = new Uint8Array(m.length + 4); b.set(m); b[3] += 4; b[b.length - 4] = 0x80; b[b.length - 3] = 0x22; return b;
  })(), "after-fingerprint"],
  ["FINGERPRINT wrong CRC", (() => {
    const b = encodeStun({ cls: "request", method: 1, transactionId: TID }, { fingerprint: true }); b[b.length - 1] ^= 1; return b;
  })(), "fingerprint"],
  ["FINGERPRINT 8 bytes", build([[ATTR.FINGERPRINT, "0000000000000000"]]), "fingerprint"],
  ["XOR-MAPPED-ADDRESS family 3", build([[ATTR.XOR_MAPPED_ADDRESS, "0003a147e112a643"]], { cls: 1 }), "bad-address"],
  ["XOR-MAPPED-ADDRESS IPv6 with 4 bytes", build([[ATTR.XOR_MAPPED_ADDRESS, "0002a147e112a643"]]), "bad-address"],
  ["MAPPED-ADDRESS 3 bytes", build([[ATTR.MAPPED_ADDRESS, "000100"]]), "bad-address"],
  ["ERROR-CODE class 7", build([[ATTR.ERROR_CODE, "00000714"]]), "bad-error-code"],
  ["ERROR-CODE number 100", build([[ATTR.ERROR_CODE, "00000464"]]), "bad-error-code"],
  ["ERROR-CODE 3 bytes", build([[ATTR.ERROR_CODE, "000004"]]), "bad-error-code"],
  ["UNKNOWN-ATTRIBUTES odd", build([[ATTR.UNKNOWN_ATTRIBUTES, "002400"]]), "bad-unknown-attributes"],
  ["SOFTWARE not UTF-8", build([[ATTR.SOFTWARE, "c328"]]), "bad-text"],
  ["SOFTWARE 128 characters", build([[ATTR.SOFTWARE, "61".repeat(128)]]), "bad-text"],
  ["MESSAGE-INTEGRITY 16 bytes", build([[ATTR.MESSAGE_INTEGRITY, "00".repeat(16)]]), "bad-integrity"],
  ["MESSAGE-INTEGRITY-SHA256 12 bytes", build([[ATTR.MESSAGE_INTEGRITY_SHA256, "00".repeat(12)]]), "bad-integrity"],
  ["MESSAGE-INTEGRITY-SHA256 18 bytes", build([[ATTR.MESSAGE_INTEGRITY_SHA256, "00".repeat(18)]]), "bad-integrity"],
  ["CHANGE-REQUEST 2 bytes", build([[ATTR.CHANGE_REQUEST, "0006"]]), "bad-change-request"],
  ["OTHER-ADDRESS family 0", build([[ATTR.OTHER_ADDRESS, "00000d960a000001"]]), "bad-address"],
];

test("hostile messages: each refused with its reason, never a throw", () => {
  for (const [name, b, want] of HOSTILE) {
    const r = decodeStun(b);
    assert.equal(r.ok, false, name);
    if (!r.ok) assert.equal(r.reason, want, `${name}: ${r.detail}`);
  }
  const seen = new Set(HOSTILE.map((h) => h[2] as string));
  for (const reason of STUN_DECODE_REASONS) assert.ok(seen.has(reason), `no hostile case for ${reason}`);
});

test("order rules (§14, §14.5): first occurrence wins; after MESSAGE-INTEGRITY only -SHA256 and FINGERPRINT count", () => {
  const twice = decoded(build([[ATTR.SOFTWARE, "61"], [ATTR.SOFTWARE, "62"]]));
  assert.equal(twice.message.software, "a");
  const after = decoded(build([
    [ATTR.MESSAGE_INTEGRITY, "00".repeat(20)], [ATTR.SOFTWARE, "62"], [0x0024, "00000000"],
    [ATTR.MESSAGE_INTEGRITY_SHA256, "00".repeat(32)], [ATTR.USERNAME, "61"],
  ]));
  assert.equal(after.message.software, undefined, "SOFTWARE after MESSAGE-INTEGRITY ignored");
  assert.equal(after.message.username, undefined, "USERNAME after MESSAGE-INTEGRITY-SHA256 ignored");
  assert.deepEqual(after.unknownRequired, [], "unknown attributes after MESSAGE-INTEGRITY are ignored, not 420");
  assert.equal(after.integrity?.kind, "sha256", "§9.1.3: SHA-256 preferred");
  const opt = decoded(build([[0x8099, "01"], [0x0024, "01"], [0x0024, "02"], [0x7fff, ""]]));
  assert.deepEqual(opt.unknownRequired, [0x0024, 0x7fff], "optional unknown skipped, required ones listed once");
  assert.equal(isStun(SAMPLE_V4), true);
  assert.equal(isStun(SAMPLE_V4.subarray(0, 40)), false, "length must match the datagram");
  assert.equal(isStun(hex("00000000 2112a442" + "00".repeat(12))), true);
});
