// AES-GCM (NIST SP 800-38D) with the RFC 4106 nonce (salt ‖ explicit IV) and
// 16-byte ICV: the GCM specification's test cases 1–18 (McGrew & Viega,
// "The Galois/Counter Mode of Operation", Appendix B), the shared ESP vectors
// (draft-mcgrew-gcm-test-01), GHASH alone, the inc32 counter wrap, and
// differentially against node:crypto and @noble/ciphers. gcmOpen must reject
// any flipped byte of ciphertext, tag or AAD and leave the data untouched.
import { test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { gcm } from "@noble/ciphers/aes.js";
import { ghash } from "@noble/ciphers/_polyval.js";
import { loadCore, Scratch, hex, toHex } from "../../host/core/raw_exports.ts";
import { VECTOR_FILE } from "../helpers/vectors.ts";
import { guardsIntact, placeGuarded, type Guarded } from "../helpers/guard_bytes.ts";

const ex = loadCore();
const s = new Scratch(ex, 4 << 20);
const CTX_SIZE: number = ex.GCM_CTX_SIZE.value;
const MAX_LEN: number = ex.GCM_MAX_LEN.value;

/** Where a packet's pieces sit in wasm memory; `shift` misaligns data and tag on purpose. */
interface Placed extends Guarded { ctx: number; n: number; a: number }

function place(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, data: Uint8Array, tag: Uint8Array, shift: number): Placed {
  s.reset();
  const ctx = s.alloc(CTX_SIZE);
  ex.gcmInit(ctx, s.put(key), key.length);
  const n = s.put(nonce), a = s.put(aad);
  return { ctx, n, a, ...placeGuarded(s, data, tag, shift) };
}

/** Seals with a 12-byte nonce: returns ciphertext ‖ tag. */
function seal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, pt: Uint8Array, shift = 0): Uint8Array {
  const p = place(key, nonce, aad, pt, new Uint8Array(16), shift);
  ex.gcmSeal(p.ctx, p.n, p.a, aad.length, p.d, pt.length, p.t);
  assert.ok(guardsIntact(s, p), "seal wrote outside data and tag");
  return s.get(p.d, pt.length + 16);
}

/** Opens ciphertext ‖ tag: the plaintext, or null (after checking the buffer was left alone). */
function open(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array, shift = 0): Uint8Array | null {
  const len = sealed.length - 16;
  const p = place(key, nonce, aad, sealed.subarray(0, len), sealed.subarray(len), shift);
  const ok = ex.gcmOpen(p.ctx, p.n, p.a, aad.length, p.d, len, p.t);
  assert.ok(guardsIntact(s, p), "open wrote outside data and tag");
  if (!ok) {
    assert.equal(toHex(s.get(p.d, len + 16)), toHex(sealed), "a rejected packet must be left untouched");
    return null;
  }
  return s.get(p.d, len);
}

/** Seal/open with an IV of any length, through gcmIvToJ0 + gcmSealJ0/gcmOpenJ0. */
function sealIv(key: Uint8Array, iv: Uint8Array, aad: Uint8Array, pt: Uint8Array): Uint8Array {
  const p = place(key, iv, aad, pt, new Uint8Array(16), 0);
  const j0 = s.alloc(16);
  ex.gcmIvToJ0(p.ctx, p.n, iv.length, j0);
  ex.gcmSealJ0(p.ctx, j0, p.a, aad.length, p.d, pt.length, p.t);
  return s.get(p.d, pt.length + 16);
}

function openIv(key: Uint8Array, iv: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array | null {
  const len = sealed.length - 16;
  const p = place(key, iv, aad, sealed.subarray(0, len), sealed.subarray(len), 0);
  const j0 = s.alloc(16);
  ex.gcmIvToJ0(p.ctx, p.n, iv.length, j0);
  return ex.gcmOpenJ0(p.ctx, j0, p.a, aad.length, p.d, len, p.t) ? s.get(p.d, len) : null;
}

function nodeSeal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, pt: Uint8Array): string {
  const c = crypto.createCipheriv(`aes-${key.length * 8}-gcm` as crypto.CipherGCMTypes, key, nonce);
  c.setAAD(aad);
  return Buffer.concat([c.update(pt), c.final(), c.getAuthTag()]).toString("hex");
}

// The GCM specification's test cases (also NIST's GCM submission), transcribed.
const K1 = "feffe9928665731c6d6a8f9467308308";
const P60 = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
const P64 = P60 + "1aafd255";
const A20 = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
const IV12 = "cafebabefacedbaddecaf888", IV8 = "cafebabefacedbad";
const IV60 = "9313225df88406e555909c5aff5269aa6a7a9538534f7da1e4c303d2a318a728c3c0c95156809539fcf0e2429a6b525416aedbf5a0de6a57a637b39b";
const Z16 = "00000000000000000000000000000000", Z12 = "000000000000000000000000";
const SPEC = [
  { n: 1, key: Z16, p: "", a: "", iv: Z12, c: "", t: "58e2fccefa7e3061367f1d57a4e7455a" },
  { n: 2, key: Z16, p: Z16, a: "", iv: Z12, c: "0388dace60b6a392f328c2b971b2fe78", t: "ab6e47d42cec13bdf53a67b21257bddf" },
  { n: 3, key: K1, p: P64, a: "", iv: IV12, c: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985", t: "4d5c2af327cd64a62cf35abd2ba6fab4" },
  { n: 4, key: K1, p: P60, a: A20, iv: IV12, c: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091", t: "5bc94fbc3221a5db94fae95ae7121a47" },
  { n: 5, key: K1, p: P60, a: A20, iv: IV8, c: "61353b4c2806934a777ff51fa22a4755699b2a714fcdc6f83766e5f97b6c742373806900e49f24b22b097544d4896b424989b5e1ebac0f07c23f4598", t: "3612d2e79e3b0785561be14aaca2fccb" },
  { n: 6, key: K1, p: P60, a: A20, iv: IV60, c: "8ce24998625615b603a033aca13fb894be9112a5c3a211a8ba262a3cca7e2ca701e4a9a4fba43c90ccdcb281d48c7c6fd62875d2aca417034c34aee5", t: "619cc5aefffe0bfa462af43c1699d050" },
  { n: 7, key: Z16 + "0000000000000000", p: "", a: "", iv: Z12, c: "", t: "cd33b28ac773f74ba00ed1f312572435" },
  { n: 8, key: Z16 + "0000000000000000", p: Z16, a: "", iv: Z12, c: "98e7247c07f0fe411c267e4384b0f600", t: "2ff58d80033927ab8ef4d4587514f0fb" },
  { n: 9, key: K1 + "feffe9928665731c", p: P64, a: "", iv: IV12, c: "3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710acade256", t: "9924a7c8587336bfb118024db8674a14" },
  { n: 10, key: K1 + "feffe9928665731c", p: P60, a: A20, iv: IV12, c: "3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710", t: "2519498e80f1478f37ba55bd6d27618c" },
  { n: 11, key: K1 + "feffe9928665731c", p: P60, a: A20, iv: IV8, c: "0f10f599ae14a154ed24b36e25324db8c566632ef2bbb34f8347280fc4507057fddc29df9a471f75c66541d4d4dad1c9e93a19a58e8b473fa0f062f7", t: "65dcc57fcf623a24094fcca40d3533f8" },
  { n: 12, key: K1 + "feffe9928665731c", p: P60, a: A20, iv: IV60, c: "d27e88681ce3243c4830165a8fdcf9ff1de9a1d8e6b447ef6ef7b79828666e4581e79012af34ddd9e2f037589b292db3e67c036745fa22e7e9b7373b", t: "dcf566ff291c25bbb8568fc3d376a6d9" },
  { n: 13, key: Z16 + Z16, p: "", a: "", iv: Z12, c: "", t: "530f8afbc74536b9a963b4f1c4cb738b" },
  { n: 14, key: Z16 + Z16, p: Z16, a: "", iv: Z12, c: "cea7403d4d606b6e074ec5d3baf39d18", t: "d0d1c8a799996bf0265b98b5d48ab919" },
  { n: 15, key: K1 + K1, p: P64, a: "", iv: IV12, c: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad", t: "b094dac5d93471bdec1a502270e3cc6c" },
  { n: 16, key: K1 + K1, p: P60, a: A20, iv: IV12, c: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662", t: "76fc6ece0f4e1768cddf8853bb2d551b" },
  { n: 17, key: K1 + K1, p: P60, a: A20, iv: IV8, c: "c3762df1ca787d32ae47c13bf19844cbaf1ae14d0b976afac52ff7d79bba9de0feb582d33934a4f0954cc2363bc73f7862ac430e64abe499f47c9b1f", t: "3a337dbf46a792c45e454913fe2ea8f2" },
  { n: 18, key: K1 + K1, p: P60, a: A20, iv: IV60, c: "5a8def2f0c9e53f1f75d7853659e2a20eeb2b22aafde6419a058ab4f6f746bf40fc0c3b780f244452da3ebf1c5d82cdea2418997200ef82e44ae7e3f", t: "a44a8266ee1c8eb0c8b5d4cf5ae9f19a" },
];

for (const v of SPEC) {
  test(`GCM specification test case ${v.n} (AES-${v.key.length * 4}, ${v.iv.length / 2}-byte IV)`, () => {
    const key = hex(v.key), iv = hex(v.iv), a = hex(v.a), p = hex(v.p);
    assert.equal(toHex(sealIv(key, iv, a, p)), v.c + v.t);
    assert.equal(toHex(openIv(key, iv, a, hex(v.c + v.t))!), v.p);
    if (iv.length === 12) {
      assert.equal(toHex(seal(key, iv, a, p)), v.c + v.t);
      assert.equal(toHex(open(key, iv, a, hex(v.c + v.t))!), v.p);
    }
  });
}

test("context fits the datapath's budget", () => {
  assert.ok(CTX_SIZE <= 2048, `GCM_CTX_SIZE ${CTX_SIZE} > 2048`);
});

// The shared vectors beside the checkout, else the shipped copy held identical to them (test/helpers/vectors.ts).
const vectors = JSON.parse(readFileSync(VECTOR_FILE, "utf8"));
for (const v of vectors.vectors.filter((x: any) => x.suite === "aes-gcm-16")) {
  test(`ESP vector ${v.id}: RFC 4106 nonce, AAD and ICV reproduce expected_esp`, () => {
    const key = hex(v.key), nonce = hex(v.salt + v.iv), aad = hex(v.aad), pt = hex(v.esp_plaintext);
    const want = hex(v.expected_esp).subarray(16); // after SPI ‖ seq ‖ 8-byte IV
    assert.equal(toHex(seal(key, nonce, aad, pt)), toHex(want));
    assert.equal(toHex(open(key, nonce, aad, want)!), v.esp_plaintext);
  });
}

/** E(K, ·) via OpenSSL, and GCM from any J0 built on it with @noble/ciphers' GHASH. */
function ecb(key: Uint8Array, b: Uint8Array): Uint8Array {
  const c = crypto.createCipheriv(`aes-${key.length * 8}-ecb`, key, null);
  c.setAutoPadding(false);
  return new Uint8Array(Buffer.concat([c.update(b), c.final()]));
}

function refSealJ0(key: Uint8Array, j0: Uint8Array, aad: Uint8Array, pt: Uint8Array): Uint8Array {
  const out = new Uint8Array(pt.length + 16);
  const nb = Math.ceil(pt.length / 16);
  const ctrs = new Uint8Array(nb * 16);
  const dv = new DataView(ctrs.buffer);
  const low = new DataView(j0.buffer, j0.byteOffset).getUint32(12);
  for (let b = 0; b < nb; b++) {
    ctrs.set(j0, b * 16);
    dv.setUint32(b * 16 + 12, (low + b + 1) >>> 0); // inc32, SP 800-38D §6.2
  }
  const ks = nb ? ecb(key, ctrs) : new Uint8Array(0);
  for (let k = 0; k < pt.length; k++) out[k] = pt[k] ^ ks[k];
  const pad = (n: number) => new Uint8Array((16 - (n % 16)) % 16);
  const lens = new Uint8Array(16);
  new DataView(lens.buffer).setBigUint64(0, BigInt(aad.length * 8));
  new DataView(lens.buffer).setBigUint64(8, BigInt(pt.length * 8));
  const c = out.subarray(0, pt.length);
  const S = ghash(Buffer.concat([aad, pad(aad.length), c, pad(c.length), lens]), ecb(key, new Uint8Array(16)));
  const E = ecb(key, j0);
  for (let i = 0; i < 16; i++) out[pt.length + i] = S[i] ^ E[i];
  return out;
}

test("inc32 wraps the last 32 bits only (J0 near 2^32), against an OpenSSL-ECB + noble-GHASH reference", () => {
  const key = crypto.randomBytes(16), aad = crypto.randomBytes(12), pt = crypto.randomBytes(300);
  for (const low of ["fffffffe", "fffffff0", "ffffffff", "00000000"]) {
    const j0 = hex("cafebabefacedbaddecaf888" + low);
    const p = place(key, new Uint8Array(12), aad, pt, new Uint8Array(16), 3);
    const j = s.put(j0);
    ex.gcmSealJ0(p.ctx, j, p.a, aad.length, p.d, pt.length, p.t);
    assert.equal(toHex(s.get(p.d, pt.length + 16)), toHex(refSealJ0(key, j0, aad, pt)), `J0 low word ${low}`);
    assert.ok(ex.gcmOpenJ0(p.ctx, j, p.a, aad.length, p.d, pt.length, p.t));
    assert.equal(toHex(s.get(p.d, pt.length)), toHex(pt));
  }
});

test("long messages (4 KiB to GCM_MAX_LEN, counter runs crossing 256 blocks) from any J0 counter equal the reference; open inverts", () => {
  // Rounds 1 and 2 are cached per run of 256 counters, position 15's S-boxes per 16 batches
  // and round 2's varying column per 4 (aes_ctr_cache.ts R1C, R2C): lengths past 256 blocks and J0
  // counters at every offset cross all three.
  fc.assert(
    fc.property(
      keyArb,
      fc.oneof(fc.constantFrom(4095, 4096, 4097, 4111, 4112, 4113, 8191, 8192, 8193, MAX_LEN - 1, MAX_LEN), fc.integer({ min: 4080, max: MAX_LEN })),
      fc.oneof(fc.constantFrom(0, 1, 7, 8, 0xf8, 0xff, 0xef, 0x1ff, 0xfffffe00, 0xfffffff9, 0xffffffff), fc.integer({ min: 0, max: 0xffffffff })),
      fc.uint8Array({ maxLength: 40 }),
      (key, len, low, aad) => {
        const j0 = crypto.randomBytes(16);
        new DataView(j0.buffer, j0.byteOffset).setUint32(12, low);
        const pt = crypto.randomBytes(len);
        const p = place(key, new Uint8Array(12), aad, pt, new Uint8Array(16), low & 15);
        const j = s.put(j0);
        ex.gcmSealJ0(p.ctx, j, p.a, aad.length, p.d, len, p.t);
        assert.equal(toHex(s.get(p.d, len + 16)), toHex(refSealJ0(key, j0, aad, pt)), `len ${len}, J0 low word ${low.toString(16)}`);
        assert.ok(ex.gcmOpenJ0(p.ctx, j, p.a, aad.length, p.d, len, p.t));
        assert.equal(toHex(s.get(p.d, len)), toHex(pt));
      },
    ),
    { numRuns: 60 },
  );
});

test("packets whose counters start at every low byte (a 256-run wrap in every batch and round-2 slot) equal the reference; open inverts", () => {
  // A wrap refreshes R1C, R2C and round 2's 4-batch S-box group (aes_ctr_cache.ts R2C) mid-group
  // when J0's counter is not a multiple of 32: every low byte puts it in every slot.
  const key = crypto.randomBytes(16), aad = crypto.randomBytes(8), j0 = crypto.randomBytes(16);
  for (const len of [100, 300, 1400]) {
    const pt = crypto.randomBytes(len);
    for (let low = 0; low < 256; low++) {
      new DataView(j0.buffer, j0.byteOffset).setUint32(12, 0x1234500 + low);
      const p = place(key, new Uint8Array(12), aad, pt, new Uint8Array(16), 0);
      const j = s.put(j0);
      ex.gcmSealJ0(p.ctx, j, p.a, aad.length, p.d, len, p.t);
      assert.equal(toHex(s.get(p.d, len + 16)), toHex(refSealJ0(key, j0, aad, pt)), `len ${len}, J0 low byte ${low}`);
      assert.ok(ex.gcmOpenJ0(p.ctx, j, p.a, aad.length, p.d, len, p.t));
      assert.equal(toHex(s.get(p.d, len)), toHex(pt));
    }
  }
});

test("GHASH alone equals @noble/ciphers' GHASH for random keys and messages", () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ maxLength: 300 }), (h, msg) => {
      s.reset();
      const hp = s.put(h), mp = s.put(msg), zero = s.put(new Uint8Array(16)), out = s.alloc(16);
      ex.ghashStart(hp);
      ex.ghashBytes(mp, msg.length);
      ex.ghashFinish(zero, out);
      assert.equal(toHex(s.get(out, 16)), toHex(ghash(msg, h)));
    }),
    { numRuns: 300 },
  );
});

test("GHASH by monomial keys 1, x, x^4, x^32, x^63, x^64, x^95, x^96, x^127 (bit order and reduction)", () => {
  const msg = hex("0011223344556677 89abcdef01234567");
  // (key, expected (msg · key) mod P) as in GNU Nettle's ghash tests; cross-checked with noble below.
  const table = [
    ["80000000000000000000000000000000", "001122334455667789abcdef01234567"],
    ["40000000000000000000000000000000", "e1089119a22ab33bc4d5e6f78091a2b3"],
    ["08000000000000000000000000000000", "54e1122334455667789abcdef0123456"],
    ["00000000800000000000000000000000", "01f870078e1122334455667789abcdef"],
    ["00000000000000010000000000000000", "1e0f1ff13ff0e00f1c22446688aaccef"],
    ["00000000000000008000000000000000", "ee078ff89ff870078e11223344556677"],
    ["00000000000000000000000100000000", "efc44c3a800f1ff13ff0e00f1c224466"],
    ["00000000000000000000000080000000", "77e2261d40078ff89ff870078e112233"],
    ["00000000000000000000000000000001", "1503b3c4a3c44c3a800f1ff13ff0e00f"],
  ];
  for (const [h, want] of table) {
    s.reset();
    const hp = s.put(hex(h)), mp = s.put(msg), zero = s.put(new Uint8Array(16)), out = s.alloc(16);
    ex.ghashStart(hp);
    ex.ghashBytes(mp, 16);
    ex.ghashFinish(zero, out);
    assert.equal(toHex(s.get(out, 16)), want, `H = ${h}`);
    assert.equal(toHex(ghash(msg, hex(h))), want, `noble agrees for H = ${h}`);
  }
});

// Sizes around the 16-byte block and the 8-block (128-byte) batch, and long ones.
const edgeLen = fc.oneof(
  fc.integer({ min: 0, max: 2048 }),
  fc.constantFrom(0, 1, 15, 16, 17, 31, 32, 33, 111, 112, 113, 127, 128, 129, 143, 144, 145, 255, 256, 257, 1400, 2047, 2048),
);
const keyArb = fc.constantFrom(16, 24, 32).chain((n) => fc.uint8Array({ minLength: n, maxLength: n }));

test("seal equals node:crypto and @noble/ciphers; open inverts it (random keys, nonces, AAD 0..64, lengths 0..2048, misaligned)", () => {
  fc.assert(
    fc.property(
      keyArb, fc.uint8Array({ minLength: 12, maxLength: 12 }), fc.uint8Array({ maxLength: 64 }),
      edgeLen.chain((n) => fc.uint8Array({ minLength: n, maxLength: n })), fc.integer({ min: 0, max: 15 }),
      (key, nonce, aad, pt, shift) => {
        const sealed = seal(key, nonce, aad, pt, shift);
        assert.equal(toHex(sealed), nodeSeal(key, nonce, aad, pt));
        assert.equal(toHex(sealed), toHex(gcm(key, nonce, aad).encrypt(pt)));
        assert.equal(toHex(open(key, nonce, aad, sealed, (shift * 5) & 15)!), toHex(pt));
      },
    ),
    { numRuns: 400 },
  );
});

test("open accepts what @noble/ciphers seals", () => {
  fc.assert(
    fc.property(keyArb, fc.uint8Array({ minLength: 12, maxLength: 12 }), fc.uint8Array({ maxLength: 64 }),
      edgeLen.chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
      (key, nonce, aad, pt) => {
        assert.equal(toHex(open(key, nonce, aad, gcm(key, nonce, aad).encrypt(pt))!), toHex(pt));
      }),
    { numRuns: 200 },
  );
});

test("flipping any byte of ciphertext, tag or AAD makes open fail with the data untouched", () => {
  fc.assert(
    fc.property(
      keyArb, fc.uint8Array({ minLength: 12, maxLength: 12 }), fc.uint8Array({ minLength: 1, maxLength: 64 }),
      fc.uint8Array({ maxLength: 600 }), fc.nat(), fc.integer({ min: 1, max: 255 }), fc.boolean(),
      (key, nonce, aad, pt, where, bits, inAad) => {
        const sealed = seal(key, nonce, aad, pt);
        if (inAad) {
          const bad = Uint8Array.from(aad);
          bad[where % bad.length] ^= bits;
          assert.equal(open(key, nonce, bad, sealed), null);
        } else {
          const bad = Uint8Array.from(sealed);
          bad[where % bad.length] ^= bits;
          assert.equal(open(key, nonce, aad, bad), null);
        }
      },
    ),
    { numRuns: 400 },
  );
});

test("GCM_MAX_LEN covers a whole packet slot: the core never refuses an ESP packet it can hold as if forged", () => {
  assert.ok(MAX_LEN >= ex.layoutSlotSize(), `GCM_MAX_LEN ${MAX_LEN} < SLOT_SIZE ${ex.layoutSlotSize()}`);
});

test("a wrong nonce or key fails; the largest payload round-trips; lengths beyond GCM_MAX_LEN are refused", () => {
  const key = crypto.randomBytes(16), nonce = crypto.randomBytes(12), aad = crypto.randomBytes(8);
  const pt = crypto.randomBytes(MAX_LEN);
  const sealed = seal(key, nonce, aad, pt, 1);
  assert.equal(toHex(sealed), nodeSeal(key, nonce, aad, pt));
  assert.equal(toHex(open(key, nonce, aad, sealed, 2)!), toHex(pt));
  const n2 = Uint8Array.from(nonce);
  n2[11] ^= 1;
  assert.equal(open(key, n2, aad, sealed), null);
  assert.equal(open(crypto.randomBytes(16), nonce, aad, sealed), null);
  const p = place(key, nonce, aad, new Uint8Array(0), new Uint8Array(16), 0);
  assert.equal(ex.gcmOpen(p.ctx, p.n, p.a, aad.length, p.d, MAX_LEN + 1, p.t), 0);
  assert.equal(ex.gcmOpen(p.ctx, p.n, p.a, aad.length, p.d, -1, p.t), 0);
});

test("gcmWipeScratch and cbcWipeScratch leave no key-derived bytes in the module's static data", () => {
  // A fresh instance's static data (everything below the arena) is the reference.
  const fresh = loadCore();
  const staticEnd = fresh.arenaAlloc(64, 64);
  const reference = new Uint8Array(fresh.memory.buffer).slice(0, staticEnd);
  const used = loadCore();
  const t = new Scratch(used, 1 << 16);
  assert.ok(t.base >= staticEnd);
  const key = crypto.randomBytes(32), nonce = crypto.randomBytes(12), aad = crypto.randomBytes(12);
  const ctx = t.alloc(CTX_SIZE);
  used.gcmInit(ctx, t.put(key), 32);
  const pt = crypto.randomBytes(1000);
  const d = t.put(pt), tg = t.alloc(16), n = t.put(nonce), a = t.put(aad);
  used.gcmSeal(ctx, n, a, aad.length, d, pt.length, tg);
  assert.ok(used.gcmOpen(ctx, n, a, aad.length, d, pt.length, tg));
  const actx = t.alloc(used.AES_CTX_SIZE.value);
  used.aesInit(actx, t.put(key), 32);
  used.cbcEncrypt(actx, t.put(crypto.randomBytes(16)), d, 992);
  const dirty = new Uint8Array(used.memory.buffer).slice(0, staticEnd);
  assert.notEqual(toHex(dirty), toHex(reference), "the operations above should have used the scratch");
  used.gcmWipeScratch();
  used.cbcWipeScratch();
  assert.equal(toHex(new Uint8Array(used.memory.buffer).slice(0, staticEnd)), toHex(reference));
  // And the contexts still work afterwards.
  assert.equal(toHex(seal(key, nonce, aad, pt)), nodeSeal(key, nonce, aad, pt));
});
