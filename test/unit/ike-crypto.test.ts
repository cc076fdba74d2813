// IKEv2 crypto (host/ike/dh.ts, prf.ts, sk.ts, auth.ts, nat.ts): Diffie-Hellman
// against published vectors (RFC 5903 §8.1, RFC 7748 §6.1) and, for MODP-2048,
// against BigInt arithmetic; prf+ and the §2.14/§2.17 key schedules against a
// naive @noble/hashes rendering of the RFC's formulas; the SK payload
// (§3.14) against @noble/ciphers and under tampering.
import { test } from "node:test";
import assert from "node:assert/strict";
import { getDiffieHellman, randomBytes } from "node:crypto";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256, sha384, sha512 } from "@noble/hashes/sha2.js";
import { sha1 } from "@noble/hashes/legacy.js";
import { gcm, cbc } from "@noble/ciphers/aes.js";
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { createKeyExchange } from "../../host/ike/dh.ts";
import { encrAlg, espSuite, integAlg, prfAlg, type EncrAlg, type PrfAlg } from "../../host/ike/algorithms.ts";
import { deriveChildSaKeys, deriveIkeSaKeys, prf, prfPlus } from "../../host/ike/prf.ts";
import { openMessage, sealMessage, type SkKeys } from "../../host/ike/sk.ts";
import { decodeMessage } from "../../host/ike/message.ts";
import { pskAuth, signedOctets } from "../../host/ike/auth.ts";
import { natHash } from "../../host/ike/nat.ts";
import { concatBytes } from "../../host/ike/result.ts";
import type { Payload } from "../../host/ike/payloads.ts";

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ""), "hex"));
const rnd = (n: number) => new Uint8Array(randomBytes(n));
const toHex = (b: Uint8Array) => Buffer.from(b).toString("hex");

test("ECP-256 (group 19) reproduces RFC 5903 §8.1: gi, gr as x‖y and g^ir = x of the shared point", () => {
  const i = hex("C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433");
  const r = hex("C6EF9C5D78AE012A011164ACB397CE2088685D8F06BF9BE0B283AB46476BEE53");
  const gi = "dad0b65394221cf9b051e1feca5787d098dfe637fc90b9ef945d0c3772581180" + "5271a0461cdb8252d61f1c456fa3e59ab1f45b33accf5f58389e0577b8990bb3";
  const gr = "d12dfb5289c8d4f81208b70270398c342296970a0bccb74c736fc7554494bf63" + "56fbf3ca366cc23e8157854c13c58d6aac23f046ada30f8353e74f33039872ab";
  const girx = "d6840f6b42f6edafd13116e0e12565202fef8e9ece7dce03812464d04b9442de";
  const I = createKeyExchange(19, i)!;
  const R = createKeyExchange(19, r)!;
  assert.equal(toHex(I.publicValue), gi);
  assert.equal(toHex(R.publicValue), gr);
  const a = I.secret(R.publicValue);
  const b = R.secret(I.publicValue);
  assert.ok(a.ok && b.ok);
  assert.equal(toHex(a.secret), girx);
  assert.equal(toHex(b.secret), girx);
});

test("Curve25519 (group 31) reproduces RFC 7748 §6.1", () => {
  const A = createKeyExchange(31, hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))!;
  const B = createKeyExchange(31, hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"))!;
  assert.equal(toHex(A.publicValue), "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
  assert.equal(toHex(B.publicValue), "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
  const k = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
  const a = A.secret(B.publicValue);
  const b = B.secret(A.publicValue);
  assert.ok(a.ok && b.ok);
  assert.equal(toHex(a.secret), k);
  assert.equal(toHex(b.secret), k);
});

const big = (b: Uint8Array) => BigInt("0x" + toHex(b));
function modpow(b: bigint, e: bigint, m: bigint): bigint {
  let r = 1n;
  for (b %= m; e > 0n; e >>= 1n, b = (b * b) % m) if (e & 1n) r = (r * b) % m;
  return r;
}
const pad256 = (x: bigint) => x.toString(16).padStart(512, "0");

test("MODP-2048 (group 14): public values and secret equal BigInt g^x mod p, zero-padded to 256 bytes (§3.4, §2.14)", () => {
  const p = big(getDiffieHellman("modp14").getPrime());
  // a small private value makes a public value with leading zero bytes: padding must show
  const xs = [hex("03"), rnd(32), rnd(32)];
  const kx = xs.map((x) => createKeyExchange(14, x)!);
  xs.forEach((x, i) => assert.equal(toHex(kx[i].publicValue), pad256(modpow(2n, big(x), p))));
  assert.equal(kx[0].publicValue.length, 256);
  assert.equal(kx[0].publicValue[0], 0, "2^3 is padded on the left");
  const s = kx[1].secret(kx[2].publicValue);
  const t = kx[2].secret(kx[1].publicValue);
  assert.ok(s.ok && t.ok);
  assert.equal(toHex(s.secret), pad256(modpow(2n, big(xs[1]) * big(xs[2]), p)));
  assert.deepEqual(s.secret, t.secret);
});

test("hostile KE data is refused with a reason, never thrown (RFC 6989, RFC 8031 §2.3)", () => {
  const p = getDiffieHellman("modp14").getPrime();
  const pMinus1 = Uint8Array.from(p);
  pMinus1[255] -= 1;
  const one = new Uint8Array(256);
  one[255] = 1;
  const cases: [number, Uint8Array, string][] = [
    [14, new Uint8Array(255), "public-length"],
    [14, one, "public-value"],
    [14, pMinus1, "public-value"],
    [14, new Uint8Array(256), "public-value"],
    [19, new Uint8Array(65), "public-length"],
    [19, new Uint8Array(64).fill(7), "public-value"], // not on the curve
    [19, new Uint8Array(64), "public-value"], // (0, 0)
    [31, new Uint8Array(31), "public-length"],
    [31, new Uint8Array(32), "public-value"], // u = 0: all-zero shared secret
    [31, hex("0100000000000000000000000000000000000000000000000000000000000000"), "public-value"], // u = 1, order 1
  ];
  for (const [g, peer, reason] of cases) {
    const r = createKeyExchange(g)!.secret(peer);
    assert.equal(r.ok ? "accepted" : r.error.reason, reason, `group ${g} peer ${toHex(peer).slice(0, 16)}…`);
  }
  assert.equal(createKeyExchange(2), undefined, "MODP-1024 is not offered");
});

const NOBLE = { sha256, sha384, sha512 } as const;
/** prf+ written the way §2.13 states it, on @noble/hashes. */
function naivePrfPlus(alg: PrfAlg, k: Uint8Array, s: Uint8Array, n: number): Uint8Array {
  const ts: Uint8Array[] = [];
  let t = new Uint8Array(0);
  for (let i = 1; ts.length * alg.bytes < n; i++) ts.push((t = hmac(NOBLE[alg.hash], k, concatBytes(t, s, Uint8Array.of(i)))));
  return concatBytes(...ts).slice(0, n);
}

test("prf (HMAC-SHA2) matches RFC 4231 §4.3; prf+ matches §2.13 written naively, for all three PRFs and odd lengths", () => {
  const jefe = new TextEncoder().encode("Jefe");
  const data = new TextEncoder().encode("what do ya want for nothing?");
  assert.equal(toHex(prf(prfAlg(5)!, jefe, data)), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  for (const id of [5, 6, 7]) {
    const alg = prfAlg(id)!;
    for (const n of [1, alg.bytes - 1, alg.bytes, alg.bytes + 1, 3 * alg.bytes + 7, 1000]) {
      const k = rnd(40);
      const s = rnd(70);
      assert.equal(toHex(prfPlus(alg, k, s, n)), toHex(naivePrfPlus(alg, k, s, n)), `prf ${id}, ${n} bytes`);
    }
  }
  assert.throws(() => prfPlus(prfAlg(5)!, new Uint8Array(32), new Uint8Array(0), 255 * 32 + 1), RangeError);
});

test("IKE SA keys (§2.14) and CHILD_SA KEYMAT (§2.17): order and sizes, against the formulas written out", () => {
  const alg = prfAlg(5)!;
  const [ni, nr, spiI, spiR, gir, gir2] = [rnd(32), rnd(32), rnd(8), rnd(8), rnd(32), rnd(32)];
  const skeyseed = hmac(sha256, concatBytes(ni, nr), gir);
  for (const [encr, integ, e, a] of [[encrAlg(20, 128)!, undefined, 20, 0], [encrAlg(12, 256)!, integAlg(12)!, 32, 32]] as const) {
    const r = deriveIkeSaKeys({ prf: alg, encr, integ, sharedSecret: gir, ni, nr, spiI, spiR });
    assert.equal(toHex(r.skeyseed), toHex(skeyseed));
    const stream = naivePrfPlus(alg, skeyseed, concatBytes(ni, nr, spiI, spiR), 3 * 32 + 2 * e + 2 * a);
    const k = r.keys;
    assert.equal(toHex(concatBytes(k.skD, k.skAi, k.skAr, k.skEi, k.skEr, k.skPi, k.skPr)), toHex(stream));
    assert.deepEqual([k.skD.length, k.skAi.length, k.skEi.length, k.skPr.length], [32, a, e, 32]);
    const c = deriveChildSaKeys(alg, k.skD, encr, integ, ni, nr);
    const km = naivePrfPlus(alg, k.skD, concatBytes(ni, nr), 2 * (e + a));
    assert.equal(toHex(concatBytes(c.encI, c.integI, c.encR, c.integR)), toHex(km));
    assert.deepEqual([c.encI.length, c.integI.length, c.encR.length, c.integR.length], [e, a, e, a]);
    const pfs = deriveChildSaKeys(alg, k.skD, encr, integ, ni, nr, gir2);
    assert.equal(toHex(pfs.encI), toHex(naivePrfPlus(alg, k.skD, concatBytes(gir2, ni, nr), e)), "PFS: g^ir (new) | Ni | Nr");
  }
});

test("ESP transforms map to the core's suites (host/config/model.ts Suite)", () => {
  assert.equal(espSuite(encrAlg(20, 128)!, undefined), "aes-128-gcm");
  assert.equal(espSuite(encrAlg(20, 256)!, undefined), "aes-256-gcm");
  assert.equal(espSuite(encrAlg(28, undefined)!, undefined), "chacha20-poly1305");
  assert.equal(espSuite(encrAlg(12, 128)!, integAlg(12)), "aes-128-cbc-hmac-sha256");
  assert.equal(espSuite(encrAlg(12, 256)!, integAlg(12)), "aes-256-cbc-hmac-sha256");
  assert.equal(espSuite(encrAlg(12, 128)!, undefined), undefined, "CBC without integrity is not negotiated");
  assert.equal(espSuite(encrAlg(20, 128)!, integAlg(12)), undefined, "AEAD with an integrity transform");
  assert.equal(encrAlg(28, 256), undefined, "RFC 7634: no Key Length attribute for ChaCha20-Poly1305");
  assert.equal(encrAlg(12, undefined), undefined, "AES-CBC needs a Key Length");
});

const SUITES: [string, EncrAlg, ReturnType<typeof integAlg>][] = [
  ["AES-GCM-16-128", encrAlg(20, 128)!, undefined],
  ["AES-GCM-16-256", encrAlg(20, 256)!, undefined],
  ["ChaCha20-Poly1305", encrAlg(28, undefined)!, undefined],
  ["AES-CBC-128 + HMAC-SHA-256-128", encrAlg(12, 128)!, integAlg(12)],
  ["AES-CBC-256 + HMAC-SHA-512-256", encrAlg(12, 256)!, integAlg(14)],
];
const HEADER = { spiI: hex("0011223344556677"), spiR: hex("8899aabbccddeeff"), version: 0x20, exchange: 35, flags: 0x08, messageId: 1 };
const INNER: Payload[] = [
  { kind: "id", type: 35, idType: 1, data: hex("0a630001") },
  { kind: "auth", method: 2, data: rnd(32) },
  { kind: "notify", protocol: 0, spi: new Uint8Array(0), notifyType: 16384, data: new Uint8Array(0) },
];

for (const [name, encr, integ] of SUITES) {
  test(`SK payload with ${name}: seals, opens, agrees with @noble/ciphers, refuses every flipped byte`, () => {
    const k: SkKeys = { encr, integ, encKey: rnd(encr.keymatBytes), integKey: rnd(integ?.keyBytes ?? 0) };
    const iv = rnd(encr.ivBytes);
    const msg = sealMessage(HEADER, INNER, k, [], iv);
    const d = decodeMessage(msg);
    assert.ok(d.ok);
    const sk = d.value.payloads[0];
    assert.equal(sk.kind === "sk" && sk.firstPayload, 35, "SK's Next Payload = IDi");
    const opened = openMessage(msg, sk, k);
    assert.ok(opened.ok, opened.ok ? "" : opened.error.detail);
    assert.deepEqual(opened.value, INNER);

    // independent decryption of the same bytes
    const ivOff = 28 + 4;
    const icv = encr.aead ? 16 : integ!.icvBytes;
    const ct = msg.subarray(ivOff + encr.ivBytes, msg.length - (encr.aead ? 0 : icv));
    let plain: Uint8Array;
    if (encr.aead) {
      const key = k.encKey.subarray(0, -4);
      const nonce = concatBytes(k.encKey.subarray(-4), iv);
      const aad = msg.subarray(0, ivOff);
      plain = encr.cipher === "aes-gcm" ? gcm(key, nonce, aad).decrypt(ct) : chacha20poly1305(key, nonce, aad).decrypt(ct);
    } else {
      const h = { sha256, sha384, sha512 }[integ!.hash];
      assert.equal(toHex(hmac(h, k.integKey, msg.subarray(0, msg.length - icv)).subarray(0, icv)), toHex(msg.subarray(msg.length - icv)));
      plain = cbc(k.encKey, iv, { disablePadding: true }).decrypt(ct);
      assert.equal(plain.length % 16, 0);
    }
    const padLen = plain[plain.length - 1];
    if (encr.aead) assert.equal(padLen, 0, "no padding needed for an AEAD");

    // every single flipped byte after the SPIs is caught (header, SK header, IV, ciphertext, ICV)
    for (let i = 16; i < msg.length; i++) {
      const bad = msg.slice();
      bad[i] ^= 0x01;
      const dm = decodeMessage(bad);
      if (!dm.ok) continue; // the codec already refused it (length fields)
      const r = openMessage(bad, dm.value.payloads[dm.value.payloads.length - 1], k);
      assert.equal(r.ok, false, `flip at ${i} accepted`);
    }
    // too short to hold IV and ICV
    const short = sealMessage(HEADER, [], k, [], iv);
    const ds = decodeMessage(short);
    assert.ok(ds.ok);
    const body = (ds.value.payloads[0] as { body: Uint8Array }).body;
    const cut = { kind: "sk" as const, type: 46 as const, firstPayload: 0, body: body.subarray(0, encr.ivBytes + icv) };
    const r = openMessage(concatBytes(short.subarray(0, 32), cut.body), cut, k);
    assert.equal(r.ok ? "opened" : r.error.reason, "sk-length");
    // the wrong key
    const wrong = { ...k, encKey: rnd(k.encKey.length), integKey: rnd(k.integKey.length) };
    const w = openMessage(msg, sk, wrong);
    assert.equal(w.ok ? "opened" : w.error.reason, "integrity");
  });
}

test("PSK AUTH (§2.15) equals prf(prf(PSK, \"Key Pad for IKEv2\"), RealMessage | Nonce | prf(SK_p, ID body))", () => {
  const alg = prfAlg(5)!;
  const [msg1, nr, skPi, psk] = [rnd(300), rnd(32), rnd(32), new TextEncoder().encode("secret")];
  const id = { kind: "id" as const, type: 35 as const, idType: 1, data: hex("0a630001") };
  const octets = signedOctets(alg, msg1, nr, skPi, id);
  const want = hmac(sha256, hmac(sha256, psk, new TextEncoder().encode("Key Pad for IKEv2")), concatBytes(msg1, nr, hmac(sha256, skPi, hex("01000000 0a630001"))));
  assert.equal(toHex(pskAuth(alg, psk, octets)), toHex(want));
});

test("NAT detection hash (§2.23) = SHA-1(SPIi | SPIr | IP | Port), IPv4 and IPv6", () => {
  const [i, r] = [hex("0102030405060708"), new Uint8Array(8)];
  assert.equal(toHex(natHash(i, r, "10.99.0.1", 500)), toHex(sha1(concatBytes(i, r, hex("0a630001"), hex("01f4")))));
  assert.equal(toHex(natHash(i, r, "2001:db8::1", 4500)), toHex(sha1(concatBytes(i, r, hex("20010db8000000000000000000000001"), hex("1194")))));
});
