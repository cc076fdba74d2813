// Poly1305 (RFC 8439 §2.5): the 26-bit-limb code against the RFC's vectors
// (A.3 includes the limb-carry and final-reduction corner cases) and against
// @noble/ciphers, with extra weight on all-0xff keys and messages.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { poly1305 } from "@noble/ciphers/_poly1305.js";
import { loadCore, Scratch, hex, toHex } from "../../host/core/raw_exports.ts";

const ex = loadCore();
const s = new Scratch(ex);

/** poly1305Mac (two-lane loop for long inputs) or poly1305MacRef (scalar loop only). */
function mac(key: Uint8Array, msg: Uint8Array, shift = 0, fn = ex.poly1305Mac): string {
  s.reset();
  const k = s.put(key);
  const m = s.alloc(msg.length + 16) + shift;
  s.u8().set(msg, m);
  const out = s.alloc(16);
  fn(k, m, msg.length, out);
  return toHex(s.get(out, 16));
}
const macRef = (key: Uint8Array, msg: Uint8Array, shift = 0) => mac(key, msg, shift, ex.poly1305MacRef);

const IETF_TEXT = Buffer.from("Any submission to the IETF intended by the Contributor for publication as all or part of an IETF " +
  "Internet-Draft or RFC and any statement made within the context of an IETF activity is considered an \"IETF " +
  "Contribution\". Such statements include oral statements in IETF sessions, as well as written and electronic " +
  "communications made at any time or place, which are addressed to");
const JABBERWOCKY = Buffer.from("'Twas brillig, and the slithy toves\nDid gyre and gimble in the wabe:\n" +
  "All mimsy were the borogoves,\nAnd the mome raths outgrabe.");
const z = (n: number) => "00".repeat(n);
const ff = (n: number) => "ff".repeat(n);

// RFC 8439 §2.5.2 and A.3: [name, key (r ‖ s), message, tag].
const vectors: [string, string, Uint8Array, string][] = [
  ["§2.5.2", "85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b",
    Buffer.from("Cryptographic Forum Research Group"), "a8061dc1305136c6c22b8baf0c0127a9"],
  ["A.3 #1", z(32), new Uint8Array(64), z(16)],
  ["A.3 #2", z(16) + "36e5f6b5c5e06070f0efca96227a863e", IETF_TEXT, "36e5f6b5c5e06070f0efca96227a863e"],
  ["A.3 #3", "36e5f6b5c5e06070f0efca96227a863e" + z(16), IETF_TEXT, "f3477e7cd95417af89a6b8794c310cf0"],
  ["A.3 #4", "1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0", JABBERWOCKY,
    "4541669a7eaaee61e708dc7cbcc5eb62"],
  ["A.3 #5 partially reduced result not fully reduced", "02" + z(15) + z(16), hex(ff(16)), "03" + z(15)],
  ["A.3 #6 s addition overflows 2^128", "02" + z(15) + ff(16), hex("02" + z(15)), "03" + z(15)],
  ["A.3 #7 all-ones limb with carry from below", "01" + z(15) + z(16),
    hex(ff(16) + "f0" + ff(15) + "11" + z(15)), "05" + z(15)],
  ["A.3 #8 result exactly 2^130-5", "01" + z(15) + z(16),
    hex(ff(16) + "fb" + "fe".repeat(15) + "01".repeat(16)), z(16)],
  ["A.3 #9 result exactly 2^130-6", "02" + z(15) + z(16), hex("fd" + ff(15)), "fa" + ff(15)],
  ["A.3 #10 5*H+L reduction gives a 131-bit intermediate", "01" + z(7) + "04" + z(7) + z(16),
    hex("e33594d7505e43b9" + z(8) + "3394d7505e4379cd" + "01" + z(7) + z(16) + "01" + z(15)),
    "14" + z(7) + "55" + z(7)],
  ["A.3 #11 5*H+L reduction gives a 131-bit final result", "01" + z(7) + "04" + z(7) + z(16),
    hex("e33594d7505e43b9" + z(8) + "3394d7505e4379cd" + "01" + z(7) + z(16)), "13" + z(15)],
];

test("poly1305: RFC 8439 §2.5.2 and A.3 #1–#11, both block loops", () => {
  for (const [name, key, msg, want] of vectors) {
    assert.equal(mac(hex(key), msg), want, name);
    assert.equal(mac(hex(key), msg, 3), want, `${name} (unaligned)`);
    assert.equal(macRef(hex(key), msg), want, `${name} (scalar loop)`);
  }
});

test("poly1305 two-lane loop equals the scalar loop, odd and even block counts, near-2^130 values", () => {
  fc.assert(fc.property(
    fc.oneof(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.constant(hex(ff(32))), fc.constant(hex(ff(16) + z(16)))),
    fc.oneof(fc.uint8Array({ maxLength: 700 }),
      fc.tuple(fc.integer({ min: 0, max: 700 }), fc.constantFrom(0xff, 0xfe, 0)).map(([n, b]) => new Uint8Array(n).fill(b))),
    fc.integer({ min: 0, max: 15 }),
    (key, msg, shift) => {
      assert.equal(mac(key, msg, shift), macRef(key, msg, shift));
    }), { numRuns: 600 });
});

test("poly1305 edge cases match @noble/ciphers: all-0xff keys and messages, every length 0..80", () => {
  const keys = [hex(ff(32)), hex(ff(16) + z(16)), hex(z(16) + ff(16)), hex("0f" + ff(15) + ff(16)), hex("ffffff0f".repeat(4) + ff(16))];
  for (const key of keys) {
    for (let len = 0; len <= 80; len++) {
      for (const fill of [0xff, 0xfe, 0x00]) {
        const msg = new Uint8Array(len).fill(fill);
        assert.equal(mac(key, msg), toHex(poly1305(msg, key)), `key ${toHex(key)} len ${len} fill ${fill}`);
      }
    }
  }
  // Long all-ones runs keep every limb near its top for many blocks in a row.
  for (const len of [1024, 4096, 9216]) {
    const msg = new Uint8Array(len).fill(0xff);
    assert.equal(mac(hex(ff(32)), msg), toHex(poly1305(msg, hex(ff(32)))), `len ${len}`);
  }
});

test("poly1305 matches @noble/ciphers on random keys and messages", () => {
  fc.assert(fc.property(
    fc.uint8Array({ minLength: 32, maxLength: 32 }),
    fc.oneof(fc.uint8Array({ maxLength: 600 }), fc.integer({ min: 0, max: 300 }).map((n) => new Uint8Array(n).fill(0xff))),
    fc.integer({ min: 0, max: 15 }),
    (key, msg, shift) => {
      assert.equal(mac(key, msg, shift), toHex(poly1305(msg, key)));
    }), { numRuns: 500 });
});
