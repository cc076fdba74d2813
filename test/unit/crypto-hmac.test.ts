// HMAC-SHA-256 (RFC 2104, RFC 4868 for ESP): RFC 4231 test cases 1–7 and a
// differential test against @noble/hashes with random keys (0..200 bytes, so
// short, block-sized and hashed keys) and messages split in two segments the way
// ESP passes "SPI … ciphertext" and the ESN high bits.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { loadCore, Scratch, hex, toHex } from "../../host/core/raw_exports.ts";

const ex = loadCore();
const s = new Scratch(ex);
const CTX = ex.HMAC_CTX_SIZE.value as number;

function mac(key: Uint8Array, m1: Uint8Array, m2: Uint8Array = new Uint8Array(0), shift = 0): string {
  s.reset();
  const ctx = s.alloc(CTX);
  ex.hmacSha256Init(ctx, s.put(key), key.length);
  const p1 = s.alloc(m1.length + 16) + shift;
  s.u8().set(m1, p1);
  const p2 = s.alloc(m2.length + 16) + (shift >> 1);
  s.u8().set(m2, p2);
  const out = s.alloc(32);
  ex.hmacSha256(ctx, p1, m1.length, p2, m2.length, out);
  return toHex(s.get(out, 32));
}

const rep = (byte: number, n: number) => new Uint8Array(n).fill(byte);
const txt = (t: string) => Uint8Array.from(Buffer.from(t));

// RFC 4231 §4.2–§4.8, HMAC-SHA-256 results. Case 5's result is given truncated to 128 bits.
const rfc4231: [number, Uint8Array, Uint8Array, string][] = [
  [1, rep(0x0b, 20), txt("Hi There"), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"],
  [2, txt("Jefe"), txt("what do ya want for nothing?"), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"],
  [3, rep(0xaa, 20), rep(0xdd, 50), "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"],
  [4, hex("0102030405060708090a0b0c0d0e0f10111213141516171819"), rep(0xcd, 50),
    "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"],
  [5, rep(0x0c, 20), txt("Test With Truncation"), "a3b6167473100ee06e0c796c2955552b"],
  [6, rep(0xaa, 131), txt("Test Using Larger Than Block-Size Key - Hash Key First"),
    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"],
  [7, rep(0xaa, 131), txt("This is a test using a larger than block-size key and a larger than block-size data. " +
    "The key needs to be hashed before being used by the HMAC algorithm."),
    "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"],
];

test("HMAC context is 64 bytes (two SHA-256 chaining states)", () => {
  assert.equal(CTX, 64);
});

for (const [n, key, data, want] of rfc4231) {
  test(`HMAC-SHA-256 RFC 4231 test case ${n}`, () => {
    const got = mac(key, data);
    assert.equal(got.slice(0, want.length), want);
    // The same bytes split at every point give the same MAC (two-segment API).
    for (let cut = 0; cut <= data.length; cut += 7) {
      assert.equal(mac(key, data.subarray(0, cut), data.subarray(cut)).slice(0, want.length), want, `cut at ${cut}`);
    }
  });
}

test("HMAC-SHA-256 equals @noble/hashes for random keys (0..200 B) and two-segment messages", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 200 }),
      fc.uint8Array({ minLength: 0, maxLength: 1600 }),
      fc.oneof(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.uint8Array({ minLength: 0, maxLength: 300 })),
      fc.integer({ min: 0, max: 15 }),
      (key, m1, m2, shift) => {
        const both = new Uint8Array(m1.length + m2.length);
        both.set(m1);
        both.set(m2, m1.length);
        assert.equal(mac(key, m1, m2, shift), toHex(hmac(sha256, key, both)));
      },
    ),
    { numRuns: 500 },
  );
});

test("HMAC-SHA-256 at every split around the block boundaries (ESP: ciphertext ‖ ESN high bits)", () => {
  const key = Uint8Array.from({ length: 32 }, (_, i) => i * 3 + 1); // RFC 4868 key size
  for (let len1 = 0; len1 <= 200; len1++) {
    for (const len2 of [0, 4, 63, 64, 65, 130]) {
      const m = Uint8Array.from({ length: len1 + len2 }, (_, i) => (i * 29 + len1) & 0xff);
      assert.equal(mac(key, m.subarray(0, len1), m.subarray(len1)), toHex(hmac(sha256, key, m)), `${len1}+${len2}`);
    }
  }
});

test("one context serves many messages and the ctx is not modified by hmacSha256", () => {
  s.reset();
  const key = rep(0x42, 32);
  const ctx = s.alloc(CTX);
  ex.hmacSha256Init(ctx, s.put(key), 32);
  const before = s.get(ctx, CTX);
  const out = s.alloc(32);
  for (const m of [txt("one"), rep(7, 1400), txt("three")]) {
    const p = s.put(m);
    ex.hmacSha256(ctx, p, m.length, 0, 0, out);
    assert.equal(toHex(s.get(out, 32)), toHex(hmac(sha256, key, m)));
  }
  assert.deepEqual(s.get(ctx, CTX), before);
});

test("hmacSha256Init leaves no plain copy of the key, K0 ⊕ ipad or K0 ⊕ opad in memory", () => {
  for (const len of [32, 100]) {
    s.reset();
    const key = Uint8Array.from({ length: len }, (_, i) => (i * 73 + 41) & 0xff);
    const ctx = s.alloc(CTX);
    const kp = s.put(key);
    ex.hmacSha256Init(ctx, kp, len);
    s.u8().fill(0, kp, kp + len); // the caller's own copy
    const k0 = new Uint8Array(64);
    k0.set(len > 64 ? sha256(key) : key);
    const mem = Buffer.from(ex.memory.buffer);
    const needles = [key.subarray(len - 16), k0.map((b) => b ^ 0x36).subarray(0, 16), k0.map((b) => b ^ 0x5c).subarray(0, 16)];
    if (len > 64) needles.push(k0.subarray(0, 16)); // H(K)
    for (const n of needles) assert.equal(mem.indexOf(Buffer.from(n)), -1, `key length ${len}: ${toHex(n)} found`);
  }
});
