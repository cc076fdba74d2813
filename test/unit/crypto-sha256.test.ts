// SHA-256 (FIPS 180-4): the unrolled compression against the FIPS 180-4 examples
// and against @noble/hashes at every padding boundary and random lengths 0..3000,
// from aligned and unaligned addresses.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js";
import { loadCore, Scratch, toHex } from "../../host/core/raw_exports.ts";

const ex = loadCore();
const s = new Scratch(ex, 2 << 20);

function digest(msg: Uint8Array, shift = 0): string {
  s.reset();
  const p = s.alloc(msg.length + 64) + shift;
  s.u8().set(msg, p);
  const out = s.alloc(32);
  ex.sha256(p, msg.length, out);
  return toHex(s.get(out, 32));
}

// FIPS 180-4 examples (NIST CSRC "SHA256.pdf" example values; also RFC 6234 §8.5 TEST1, TEST2_1, TEST3).
const fips: [string, Uint8Array, string][] = [
  ["\"abc\" (one block)", Buffer.from("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"],
  ["448-bit message (padding spills into a second block)",
    Buffer.from("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"],
  ["one million 'a'", new Uint8Array(1_000_000).fill(0x61),
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"],
  ["empty message", new Uint8Array(0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],
];

for (const [name, msg, want] of fips) {
  test(`SHA-256 FIPS 180-4: ${name}`, () => {
    assert.equal(digest(msg), want);
  });
}

test("SHA-256 equals @noble/hashes at every length 0..300 (all padding boundaries)", () => {
  const msg = Uint8Array.from({ length: 300 }, (_, i) => (i * 151 + 7) & 0xff);
  for (let len = 0; len <= 300; len++) {
    const m = msg.subarray(0, len);
    assert.equal(digest(m, len & 7), toHex(nobleSha256(m)), `length ${len}`);
  }
});

test("SHA-256 equals @noble/hashes on random messages of 0..3000 bytes at any alignment", () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 3000 }), fc.integer({ min: 0, max: 15 }), (msg, shift) => {
      assert.equal(digest(msg, shift), toHex(nobleSha256(msg)));
    }),
    { numRuns: 400 },
  );
});

test("SHA-256 does not write past its 32-byte output", () => {
  s.reset();
  const p = s.put(Buffer.from("abc"));
  const out = s.alloc(64);
  s.u8().fill(0xee, out, out + 64);
  ex.sha256(p, 3, out);
  assert.deepEqual([...s.get(out + 32, 32)], new Array(32).fill(0xee));
});
