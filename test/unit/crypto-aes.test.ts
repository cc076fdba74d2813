// AES-128/192/256 (FIPS-197), bitsliced eight blocks at a time: the
// standard's own examples (Appendix B, Appendix C.1–C.3), then differentially
// against node:crypto (OpenSSL) and @noble/ciphers for random keys and blocks,
// and the context layout the datapath relies on.
import { test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fc from "fast-check";
import { ecb } from "@noble/ciphers/aes.js";
import { loadCore, Scratch, hex, toHex } from "../../host/core/raw_exports.ts";

const ex = loadCore();
const s = new Scratch(ex, 1 << 20);
const CTX_SIZE: number = ex.AES_CTX_SIZE.value;

function init(key: Uint8Array): number {
  const ctx = s.alloc(CTX_SIZE);
  ex.aesInit(ctx, s.put(key), key.length);
  return ctx;
}

function encryptBlock(key: Uint8Array, block: Uint8Array): Uint8Array {
  s.reset();
  const ctx = init(key), p = s.put(block);
  ex.aesEncryptBlock(ctx, p, p);
  return s.get(p, 16);
}

function decryptBlock(key: Uint8Array, block: Uint8Array): Uint8Array {
  s.reset();
  const ctx = init(key), p = s.put(block);
  ex.aesDecryptBlock(ctx, p, p);
  return s.get(p, 16);
}

/** Eight blocks through aesEncrypt8 / aesDecrypt8, from src at offset `shift` to a separate dst. */
function batch(key: Uint8Array, blocks: Uint8Array, decrypt: boolean, shift = 0): Uint8Array {
  s.reset();
  const ctx = init(key);
  const src = s.alloc(128 + 16) + shift, dst = s.alloc(128 + 16) + ((shift * 7) & 15);
  s.u8().set(blocks, src);
  (decrypt ? ex.aesDecrypt8 : ex.aesEncrypt8)(ctx, src, dst);
  return s.get(dst, 128);
}

function nodeEcb(key: Uint8Array, data: Uint8Array, decrypt: boolean): string {
  const name = `aes-${key.length * 8}-ecb`;
  const c = decrypt ? crypto.createDecipheriv(name, key, null) : crypto.createCipheriv(name, key, null);
  c.setAutoPadding(false);
  return Buffer.concat([c.update(data), c.final()]).toString("hex");
}

// FIPS-197 Appendix C: plaintext 00112233…ff under keys 000102…
const PT = "00112233445566778899aabbccddeeff";
const APPENDIX_C = [
  { name: "C.1 AES-128", key: "000102030405060708090a0b0c0d0e0f", ct: "69c4e0d86a7b0430d8cdb78070b4c55a" },
  { name: "C.2 AES-192", key: "000102030405060708090a0b0c0d0e0f1011121314151617", ct: "dda97ca4864cdfe06eaf70a0ec0d7191" },
  { name: "C.3 AES-256", key: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", ct: "8ea2b7ca516745bfeafc49904b496089" },
];

for (const v of APPENDIX_C) {
  test(`FIPS-197 Appendix ${v.name}: encrypt and decrypt one block`, () => {
    assert.equal(toHex(encryptBlock(hex(v.key), hex(PT))), v.ct);
    assert.equal(toHex(decryptBlock(hex(v.key), hex(v.ct))), PT);
  });
}

test("FIPS-197 Appendix B cipher example (AES-128)", () => {
  const key = hex("2b7e151628aed2a6abf7158809cf4f3c");
  assert.equal(toHex(encryptBlock(key, hex("3243f6a8885a308d313198a2e0370734"))), "3925841d02dc09fbdc118597196a0b32");
});

test("context: fits the datapath's budget, Nr recorded, round keys bitsliced as 0x00/0xFF bytes", () => {
  assert.ok(CTX_SIZE <= 1984, `AES_CTX_SIZE ${CTX_SIZE} > 1984`);
  for (const [len, nr] of [[16, 10], [24, 12], [32, 14]]) {
    s.reset();
    const ctx = init(crypto.randomBytes(len));
    const bytes = s.get(ctx, CTX_SIZE);
    assert.equal(new DataView(bytes.buffer).getInt32(1920, true), nr);
    for (let i = 0; i < (nr + 1) * 128; i++) assert.ok(bytes[i] === 0 || bytes[i] === 0xff, `byte ${i} = ${bytes[i]}`);
    for (let i = (nr + 1) * 128; i < 1920; i++) assert.equal(bytes[i], 0, "unused round keys are zero");
  }
});

test("the same key gives the same context; different keys differ", () => {
  s.reset();
  const key = crypto.randomBytes(32);
  const a = init(key), b = init(key), c = init(crypto.randomBytes(32));
  assert.equal(toHex(s.get(a, CTX_SIZE)), toHex(s.get(b, CTX_SIZE)));
  assert.notEqual(toHex(s.get(a, CTX_SIZE)), toHex(s.get(c, CTX_SIZE)));
});

test("eight independent blocks per call, each equal to OpenSSL's ECB (all key sizes, unaligned)", () => {
  fc.assert(
    fc.property(
      fc.constantFrom(16, 24, 32).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
      fc.uint8Array({ minLength: 128, maxLength: 128 }),
      fc.integer({ min: 0, max: 15 }),
      (key, blocks, shift) => {
        const ct = batch(key, blocks, false, shift);
        assert.equal(toHex(ct), nodeEcb(key, blocks, false));
        assert.equal(toHex(batch(key, ct, true, shift)), toHex(blocks));
      },
    ),
    { numRuns: 300 },
  );
});

test("single-block encrypt/decrypt equal @noble/ciphers ECB, in place", () => {
  fc.assert(
    fc.property(
      fc.constantFrom(16, 24, 32).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
      (key, block) => {
        const want = ecb(key, { disablePadding: true }).encrypt(block);
        assert.equal(toHex(encryptBlock(key, block)), toHex(want));
        assert.equal(toHex(decryptBlock(key, want)), toHex(block));
      },
    ),
    { numRuns: 300 },
  );
});

test("one flipped input bit changes only its own block of the batch", () => {
  const key = crypto.randomBytes(16), blocks = crypto.randomBytes(128);
  const base = batch(key, blocks, false);
  for (const bit of [0, 7, 129, 512, 1023]) {
    const m = Uint8Array.from(blocks);
    m[bit >> 3] ^= 1 << (bit & 7);
    const out = batch(key, m, false);
    for (let b = 0; b < 8; b++) {
      const same = toHex(out.subarray(16 * b, 16 * b + 16)) === toHex(base.subarray(16 * b, 16 * b + 16));
      assert.equal(same, b !== bit >> 7, `bit ${bit}, block ${b}`);
    }
  }
});
