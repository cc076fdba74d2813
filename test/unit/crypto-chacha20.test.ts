// ChaCha20 (RFC 8439 §2.3–§2.4, §2.6): the 4-lane SIMD code and its scalar
// reference twin against the RFC's vectors, against each other, and against
// @noble/ciphers.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { chacha20 } from "@noble/ciphers/chacha.js";
import { loadCore, Scratch, hex, toHex } from "../../host/core/raw_exports.ts";

const ex = loadCore();
const s = new Scratch(ex);

const KEY_SEQ = hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
const KEY_ZERO = new Uint8Array(32);
const KEY_ONE = hex("0000000000000000000000000000000000000000000000000000000000000001");
const KEY_1C = hex("1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0");
const NONCE_ZERO = new Uint8Array(12);
const NONCE_TWO = hex("000000000000000000000002");

type Impl = "simd" | "ref";
const impls: Impl[] = ["simd", "ref"];

function block(impl: Impl, key: Uint8Array, nonce: Uint8Array, counter: number): string {
  s.reset();
  const out = s.alloc(64);
  (impl === "simd" ? ex.chacha20Block : ex.chacha20BlockRef)(s.put(key), s.put(nonce), counter >>> 0, out);
  return toHex(s.get(out, 64));
}

function xor(impl: Impl, key: Uint8Array, nonce: Uint8Array, counter: number, data: Uint8Array, shift = 0): Uint8Array {
  s.reset();
  const k = s.put(key), n = s.put(nonce);
  const p = s.alloc(data.length + 64) + shift; // shift makes the buffer unaligned on purpose
  s.u8().set(data, p);
  (impl === "simd" ? ex.chacha20Xor : ex.chacha20XorRef)(k, n, counter >>> 0, p, data.length);
  return s.get(p, data.length);
}

// RFC 8439 §2.3.2 and Appendix A.1: [key, nonce, counter, serialized block].
const blockVectors: [string, Uint8Array, Uint8Array, number, string][] = [
  ["§2.3.2", KEY_SEQ, hex("000000090000004a00000000"), 1,
    "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e" +
    "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e"],
  ["A.1 #1", KEY_ZERO, NONCE_ZERO, 0,
    "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7" +
    "da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586"],
  ["A.1 #2", KEY_ZERO, NONCE_ZERO, 1,
    "9f07e7be5551387a98ba977c732d080dcb0f29a048e3656912c6533e32ee7aed" +
    "29b721769ce64e43d57133b074d839d531ed1f28510afb45ace10a1f4b794d6f"],
  ["A.1 #3", KEY_ONE, NONCE_ZERO, 1,
    "3aeb5224ecf849929b9d828db1ced4dd832025e8018b8160b82284f3c949aa5a" +
    "8eca00bbb4a73bdad192b5c42f73f2fd4e273644c8b36125a64addeb006c13a0"],
  ["A.1 #4", hex("00ff" + "00".repeat(30)), NONCE_ZERO, 2,
    "72d54dfbf12ec44b362692df94137f328fea8da73990265ec1bbbea1ae9af0ca" +
    "13b25aa26cb4a648cb9b9d1be65b2c0924a66c54d545ec1b7374f4872e99f096"],
  ["A.1 #5", KEY_ZERO, NONCE_TWO, 0,
    "c2c64d378cd536374ae204b9ef933fcd1a8b2288b3dfa49672ab765b54ee27c7" +
    "8a970e0e955c14f3a88e741b97c286f75f8fc299e8148362fa198a39531bed6d"],
];

for (const impl of impls) {
  test(`chacha20 block function (${impl}): RFC 8439 §2.3.2 and A.1`, () => {
    for (const [name, key, nonce, counter, want] of blockVectors) {
      assert.equal(block(impl, key, nonce, counter), want, name);
    }
  });
}

// RFC 8439 §2.6.2 and A.4: the Poly1305 one-time key is the first 32 bytes of block 0.
const keyGenVectors: [string, Uint8Array, Uint8Array, string][] = [
  ["§2.6.2", hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"), hex("000000000001020304050607"),
    "8ad5a08b905f81cc815040274ab29471a833b637e3fd0da508dbb8e2fdd1a646"],
  ["A.4 #1", KEY_ZERO, NONCE_ZERO, "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"],
  ["A.4 #2", KEY_ONE, NONCE_TWO, "ecfa254f845f647473d3cb140da9e87606cb33066c447b87bc2666dde3fbb739"],
  ["A.4 #3", KEY_1C, NONCE_TWO, "965e3bc6f9ec7ed9560808f4d229f94b137ff275ca9b3fcbdd59deaad23310ae"],
  ["A.5", KEY_1C, hex("000000000102030405060708"), "bdf04aa95ce4de8995b14bb6a18fecaf26478f50c054f563dbc0a21e261572aa"],
];

test("chacha20 Poly1305 key generation: RFC 8439 §2.6.2 and A.4", () => {
  for (const impl of impls) {
    for (const [name, key, nonce, want] of keyGenVectors) {
      assert.equal(block(impl, key, nonce, 0).slice(0, 64), want, `${name} (${impl})`);
    }
  }
});

const SUNSCREEN = "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
const IETF_TEXT = "Any submission to the IETF intended by the Contributor for publication as all or part of an IETF " +
  "Internet-Draft or RFC and any statement made within the context of an IETF activity is considered an \"IETF " +
  "Contribution\". Such statements include oral statements in IETF sessions, as well as written and electronic " +
  "communications made at any time or place, which are addressed to";
const JABBERWOCKY = "'Twas brillig, and the slithy toves\nDid gyre and gimble in the wabe:\n" +
  "All mimsy were the borogoves,\nAnd the mome raths outgrabe.";

// RFC 8439 §2.4.2 and A.2: [key, nonce, counter, plaintext, ciphertext].
const encVectors: [string, Uint8Array, Uint8Array, number, Uint8Array, string][] = [
  ["§2.4.2", KEY_SEQ, hex("000000000000004a00000000"), 1, Buffer.from(SUNSCREEN),
    "6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0b" +
    "f91b65c5524733ab8f593dabcd62b3571639d624e65152ab8f530c359f0861d8" +
    "07ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab7793736" +
    "5af90bbf74a35be6b40b8eedf2785e42874d"],
  ["A.2 #1", KEY_ZERO, NONCE_ZERO, 0, new Uint8Array(64),
    "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7" +
    "da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586"],
  ["A.2 #2", KEY_ONE, NONCE_TWO, 1, Buffer.from(IETF_TEXT),
    "a3fbf07df3fa2fde4f376ca23e82737041605d9f4f4f57bd8cff2c1d4b7955ec" +
    "2a97948bd3722915c8f3d337f7d370050e9e96d647b7c39f56e031ca5eb6250d" +
    "4042e02785ececfa4b4bb5e8ead0440e20b6e8db09d881a7c6132f420e527950" +
    "42bdfa7773d8a9051447b3291ce1411c680465552aa6c405b7764d5e87bea85a" +
    "d00f8449ed8f72d0d662ab052691ca66424bc86d2df80ea41f43abf937d3259d" +
    "c4b2d0dfb48a6c9139ddd7f76966e928e635553ba76c5c879d7b35d49eb2e62b" +
    "0871cdac638939e25e8a1e0ef9d5280fa8ca328b351c3c765989cbcf3daa8b6c" +
    "cc3aaf9f3979c92b3720fc88dc95ed84a1be059c6499b9fda236e7e818b04b0b" +
    "c39c1e876b193bfe5569753f88128cc08aaa9b63d1a16f80ef2554d7189c411f" +
    "5869ca52c5b83fa36ff216b9c1d30062bebcfd2dc5bce0911934fda79a86f6e6" +
    "98ced759c3ff9b6477338f3da4f9cd8514ea9982ccafb341b2384dd902f3d1ab" +
    "7ac61dd29c6f21ba5b862f3730e37cfdc4fd806c22f221"],
  ["A.2 #3", KEY_1C, NONCE_TWO, 42, Buffer.from(JABBERWOCKY),
    "62e6347f95ed87a45ffae7426f27a1df5fb69110044c0d73118effa95b01e5cf" +
    "166d3df2d721caf9b21e5fb14c616871fd84c54f9d65b283196c7fe4f60553eb" +
    "f39c6402c42234e32a356b3e764312a61a5532055716ead6962568f87d3f3f77" +
    "04c6a8d1bcd1bf4d50d6154b6da731b187b58dfd728afa36757a797ac188d1"],
];

for (const impl of impls) {
  test(`chacha20 encryption (${impl}): RFC 8439 §2.4.2 and A.2, in place, unaligned too`, () => {
    assert.equal(IETF_TEXT.length, 375);
    assert.equal(JABBERWOCKY.length, 127);
    for (const [name, key, nonce, counter, pt, want] of encVectors) {
      for (const shift of [0, 1, 3]) {
        assert.equal(toHex(xor(impl, key, nonce, counter, pt, shift)), want, `${name} shift ${shift}`);
      }
    }
  });
}

const lengths = fc.oneof(
  fc.integer({ min: 0, max: 1100 }),
  fc.constantFrom(1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 191, 192, 193, 255, 256, 257, 511, 512, 513, 1024, 1400),
);

test("chacha20 SIMD equals the scalar reference twin (any counter, including the 2^32 wrap)", () => {
  fc.assert(fc.property(
    fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 12, maxLength: 12 }),
    fc.oneof(fc.nat(), fc.integer({ min: 0xffff_fff0, max: 0xffff_ffff })), lengths, fc.integer({ min: 0, max: 15 }),
    (key, nonce, counter, len, shift) => {
      const pt = Uint8Array.from({ length: len }, (_, i) => (i * 7 + len) & 255);
      assert.equal(toHex(xor("simd", key, nonce, counter, pt, shift)), toHex(xor("ref", key, nonce, counter, pt, shift)));
    }), { numRuns: 300 });
});

test("chacha20 matches @noble/ciphers chacha20", () => {
  fc.assert(fc.property(
    fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 12, maxLength: 12 }),
    fc.integer({ min: 0, max: 1 << 20 }), lengths.chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
    (key, nonce, counter, pt) => {
      assert.equal(toHex(xor("simd", key, nonce, counter, pt)), toHex(chacha20(key, nonce, pt, undefined, counter)));
    }), { numRuns: 300 });
});

test("chacha20Xor writes exactly len bytes", () => {
  for (const len of [0, 1, 63, 64, 200, 256, 300]) {
    s.reset();
    const k = s.put(KEY_SEQ), n = s.put(NONCE_TWO);
    const p = s.alloc(len + 512);
    s.u8().fill(0xa5, p, p + len + 512);
    ex.chacha20Xor(k, n, 1, p, len);
    const after = s.get(p + len, 512);
    assert.ok(after.every((b) => b === 0xa5), `bytes after ${len} untouched`);
  }
});
