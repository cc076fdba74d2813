// AEAD_CHACHA20_POLY1305 (RFC 8439 §2.8, as ESP uses it per RFC 7634):
// seal and open against the RFC's vectors and, differentially, against
// @noble/ciphers; open must reject any single flipped byte of ciphertext,
// tag or AAD without touching the data (authenticate before decrypt).
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { loadCore, Scratch, hex, toHex } from "../../host/core/raw_exports.ts";
import { guardsIntact, placeGuarded, type Guarded } from "../helpers/guard_bytes.ts";

const ex = loadCore();
const s = new Scratch(ex, 4 << 20);

/** Where a packet's pieces sit in wasm memory; `shift` misaligns data and tag on purpose. */
interface Placed extends Guarded { k: number; n: number; a: number }

function place(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, data: Uint8Array, tag: Uint8Array, shift: number): Placed {
  s.reset();
  const k = s.put(key), n = s.put(nonce), a = s.put(aad);
  return { k, n, a, ...placeGuarded(s, data, tag, shift) };
}

function seal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, pt: Uint8Array, shift = 0): Uint8Array {
  const p = place(key, nonce, aad, pt, new Uint8Array(16), shift);
  ex.chachaPolySeal(p.k, p.n, p.a, aad.length, p.d, pt.length, p.t);
  assert.ok(guardsIntact(s, p), "seal wrote outside data and tag");
  return s.get(p.d, pt.length + 16);
}

/** Returns [accepted, data after the call]. */
function open(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array, shift = 0): [boolean, Uint8Array] {
  const ct = sealed.subarray(0, sealed.length - 16), tag = sealed.subarray(sealed.length - 16);
  const p = place(key, nonce, aad, ct, tag, shift);
  const ok = ex.chachaPolyOpen(p.k, p.n, p.a, aad.length, p.d, ct.length, p.t) === 1;
  assert.ok(guardsIntact(s, p), "open wrote outside data and tag");
  return [ok, s.get(p.d, ct.length)];
}

const KEY_80 = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
const SUNSCREEN = Buffer.from("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.");

test("seal: RFC 8439 §2.8.2", () => {
  const nonce = hex("07000000" + "4041424344454647"); // 32-bit fixed-common part ‖ IV
  const aad = hex("50515253c0c1c2c3c4c5c6c7");
  const want =
    "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6" +
    "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36" +
    "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc" +
    "3ff4def08e4b7a9de576d26586cec64b6116" +
    "1ae10b594f09e26a7e902ecbd0600691";
  for (const shift of [0, 1, 2, 3]) assert.equal(toHex(seal(KEY_80, nonce, aad, SUNSCREEN, shift)), want, `shift ${shift}`);
  const [ok, pt] = open(KEY_80, nonce, aad, hex(want));
  assert.ok(ok);
  assert.equal(toHex(pt), toHex(SUNSCREEN));
});

test("open: RFC 8439 A.5", () => {
  const key = hex("1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0");
  const nonce = hex("000000000102030405060708");
  const aad = hex("f33388860000000000004e91");
  const ct = hex(
    "64a0861575861af460f062c79be643bd5e805cfd345cf389f108670ac76c8cb2" +
    "4c6cfc18755d43eea09ee94e382d26b0bdb7b73c321b0100d4f03b7f355894cf" +
    "332f830e710b97ce98c8a84abd0b948114ad176e008d33bd60f982b1ff37c855" +
    "9797a06ef4f0ef61c186324e2b3506383606907b6a7c02b0f9f6157b53c867e4" +
    "b9166c767b804d46a59b5216cde7a4e99040c5a40433225ee282a1b0a06c523e" +
    "af4534d7f83fa1155b0047718cbc546a0d072b04b3564eea1b422273f548271a" +
    "0bb2316053fa76991955ebd63159434ecebb4e466dae5a1073a6727627097a10" +
    "49e617d91d361094fa68f0ff77987130305beaba2eda04df997b714d6c6f2c29" +
    "a6ad5cb4022b02709b");
  const tag = hex("eead9d67890cbb22392336fea1851f38");
  const want = Buffer.from("Internet-Drafts are draft documents valid for a maximum of six months and may be " +
    "updated, replaced, or obsoleted by other documents at any time. It is inappropriate to use Internet-Drafts " +
    "as reference material or to cite them other than as /\u201cwork in progress./\u201d");
  assert.equal(ct.length, 265);
  assert.equal(want.length, 265);
  const sealed = new Uint8Array([...ct, ...tag]);
  for (const shift of [0, 1, 3]) {
    const [ok, pt] = open(key, nonce, aad, sealed, shift);
    assert.ok(ok, `shift ${shift}`);
    assert.equal(toHex(pt), toHex(want));
  }
  // And sealing the plaintext gives the ciphertext and tag back.
  assert.equal(toHex(seal(key, nonce, aad, want)), toHex(sealed));
});

const BOUNDARIES = [0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 191, 192, 193, 255, 256, 257, 447, 448, 449,
  511, 512, 513, 1023, 1024, 1400, 1472, 2047, 2048];
const sizes = fc.oneof(fc.integer({ min: 0, max: 2048 }), fc.constantFrom(...BOUNDARIES));
const packet = fc.record({
  key: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  nonce: fc.uint8Array({ minLength: 12, maxLength: 12 }),
  aad: fc.uint8Array({ maxLength: 64 }),
  pt: sizes.chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
  shift: fc.integer({ min: 0, max: 7 }),
});

test("seal equals @noble/ciphers (ciphertext and tag); open takes noble's output back", () => {
  fc.assert(fc.property(packet, ({ key, nonce, aad, pt, shift }) => {
    const theirs = chacha20poly1305(key, nonce, aad).encrypt(pt);
    assert.equal(toHex(seal(key, nonce, aad, pt, shift)), toHex(theirs));
    const [ok, back] = open(key, nonce, aad, theirs, shift);
    assert.ok(ok);
    assert.equal(toHex(back), toHex(pt));
  }), { numRuns: 400 });
});

test("every block-boundary size round-trips and matches noble, for AAD lengths 0..64", () => {
  const key = Uint8Array.from({ length: 32 }, (_, i) => i * 13);
  const nonce = Uint8Array.from({ length: 12 }, (_, i) => 200 - i);
  for (const len of BOUNDARIES) {
    for (const aadLen of [0, 1, 8, 12, 15, 16, 17, 64]) {
      const pt = Uint8Array.from({ length: len }, (_, i) => (i * 31 + aadLen) & 255);
      const aad = Uint8Array.from({ length: aadLen }, (_, i) => i ^ 0x5a);
      const ours = seal(key, nonce, aad, pt);
      assert.equal(toHex(ours), toHex(chacha20poly1305(key, nonce, aad).encrypt(pt)), `len ${len} aad ${aadLen}`);
      const [ok, back] = open(key, nonce, aad, ours);
      assert.ok(ok, `len ${len} aad ${aadLen}`);
      assert.equal(toHex(back), toHex(pt));
    }
  }
});

test("open rejects any single flipped byte of ciphertext, tag or AAD and leaves data untouched", () => {
  fc.assert(fc.property(packet, fc.nat(), fc.integer({ min: 1, max: 255 }), fc.constantFrom("ct", "tag", "aad"),
    ({ key, nonce, aad, pt, shift }, at, mask, where) => {
      const sealed = chacha20poly1305(key, nonce, aad).encrypt(pt);
      const badAad = aad.slice();
      const bad = sealed.slice();
      if (where === "aad") {
        if (aad.length === 0) return; // nothing to flip
        badAad[at % aad.length] ^= mask;
      } else if (where === "ct") {
        if (pt.length === 0) return;
        bad[at % pt.length] ^= mask;
      } else {
        bad[pt.length + (at % 16)] ^= mask;
      }
      const [ok, after] = open(key, nonce, badAad, bad, shift);
      assert.equal(ok, false);
      assert.equal(toHex(after), toHex(bad.subarray(0, pt.length)), "data must be untouched");
    }), { numRuns: 600 });
});

test("open rejects a wrong key, a wrong nonce and a truncated length", () => {
  const key = new Uint8Array(32).fill(7), nonce = new Uint8Array(12).fill(9), aad = hex("0000100000000001");
  const pt = new Uint8Array(300).fill(0x42);
  const sealed = chacha20poly1305(key, nonce, aad).encrypt(pt);
  const otherKey = key.slice(); otherKey[31] ^= 1;
  const otherNonce = nonce.slice(); otherNonce[0] ^= 0x80;
  assert.equal(open(otherKey, nonce, aad, sealed)[0], false);
  assert.equal(open(key, otherNonce, aad, sealed)[0], false);
  // Same bytes, one ciphertext byte fewer: the tag no longer covers what is claimed.
  const short = new Uint8Array([...sealed.subarray(0, 299), ...sealed.subarray(300)]);
  assert.equal(open(key, nonce, aad, short)[0], false);
});

test("jumbo and larger payloads (up to 20,000 bytes) match noble; a flipped last byte is refused", () => {
  for (const len of [9216, 9217, 12000, 20000]) {
    const key = Uint8Array.from({ length: 32 }, (_, i) => i + len);
    const nonce = Uint8Array.from({ length: 12 }, (_, i) => i * 3);
    const aad = hex("deadbeef00000001");
    const pt = Uint8Array.from({ length: len }, (_, i) => (i * 17) & 255);
    const theirs = chacha20poly1305(key, nonce, aad).encrypt(pt);
    assert.equal(toHex(seal(key, nonce, aad, pt)), toHex(theirs), `seal ${len}`);
    const [ok, back] = open(key, nonce, aad, theirs);
    assert.ok(ok, `open ${len}`);
    assert.equal(toHex(back), toHex(pt));
    const bad = theirs.slice(); bad[len - 1] ^= 1;
    const [ok2, after] = open(key, nonce, aad, bad);
    assert.equal(ok2, false);
    assert.equal(toHex(after), toHex(bad.subarray(0, len)));
  }
});
