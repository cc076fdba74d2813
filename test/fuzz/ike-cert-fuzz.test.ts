// Hostile bytes through what certificate authentication and RFC 7383
// fragmentation read: mutated SKF fragments of a real IKE_AUTH exchange
// (./ike-mutate.ts) into a responder waiting for them, mutated certificates into
// the chain check, mutated RFC 7427 AUTH data into the signature check, random
// CERTREQ bodies and DN texts. Nothing may throw (dnToDer: only RangeError);
// nothing changed may authenticate or verify; the genuine fragments still complete
// the exchange afterwards. A failure prints its seed; WESP_SEED=<n> replays it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { A, B, config, kinds, lab } from "../unit/ike-harness.ts";
import { chain, crl } from "../helpers/pki.ts";
import { crlBlocks, normalSerial, parseCrl } from "../../host/ike/crl.ts";
import { Rng, seedFromEnv } from "../helpers/gen.ts";
import { mutate, payloadOffsets } from "./ike-mutate.ts";
import { IdType } from "../../host/ike/constants.ts";
import { chainToSend, dnToDer, parseCertReq, verifyChain, type CertAuth } from "../../host/ike/certs.ts";
import { signAuth, verifyAuth } from "../../host/ike/signature.ts";
import type { Path } from "../../host/ike/types.ts";

const FRAGMENT_ROUNDS = 10_000;
const CERT_ROUNDS = 10_000;
const AUTH_ROUNDS = 20_000;
const DN_ROUNDS = 5_000;

const a = await chain("rsa", "fuzz-a", { subject: "C=CH, O=wesp, CN=a.wesp.test", dns: ["a.wesp.test"] });
const b = await chain("p256", "fuzz-b", { subject: "C=CH, O=wesp, CN=b.wesp.test", dns: ["b.wesp.test"] });
const fqdn = (s: string) => ({ idType: IdType.FQDN, data: new TextEncoder().encode(s) });
const certsA: CertAuth = { chain: [a.leaf.cert, a.mid.cert], key: a.leaf.key, cas: [b.root.cert] };
const certsB: CertAuth = { chain: [b.leaf.cert, b.mid.cert], key: b.leaf.key, cas: [a.root.cert] };
const same = (x: Uint8Array, y: Uint8Array) => Buffer.from(x).equals(y);

test(`SKF: ${FRAGMENT_ROUNDS.toLocaleString("en")} mutated fragments into a waiting responder, nothing thrown or completed; then the real ones complete`, () => {
  const seed = seedFromEnv();
  const r = new Rng(seed);
  const l = lab(
    { ...config("to-b", A, B), certs: certsA, localId: fqdn("a.wesp.test"), remoteId: fqdn("b.wesp.test") },
    { ...config("to-a", B, A), certs: certsB, localId: fqdn("b.wesp.test"), remoteId: fqdn("a.wesp.test") },
  );
  const held: { bytes: Uint8Array; path: Path }[] = [];
  l.setNet((d) => {
    if (d.from === "a" && d.bytes[16] === 53) { held.push({ bytes: d.bytes, path: d.path }); return undefined; }
    return d;
  });
  l.start();
  assert.ok(held.length >= 2, "the RSA chain needs fragments");
  const offsets = held.map((h) => payloadOffsets(h.bytes));
  for (let i = 0; i < FRAGMENT_ROUNDS; i++) {
    const k = r.int(0, held.length - 1);
    const x = mutate(r, held[k].bytes, offsets[k], r.pick(held).bytes);
    if (held.some((h) => same(h.bytes, x))) continue;
    let step;
    try {
      step = l.b.receive(x, held[k].path);
    } catch (e) {
      assert.fail(`seed ${seed} round ${i}: threw ${(e as Error).stack}\ninput ${Buffer.from(x).toString("hex")}`);
    }
    assert.ok(!step.events.some((e) => e.type === "ikeSaEstablished"), `seed ${seed} round ${i}: a mutated fragment completed IKE_AUTH`);
  }
  const drops = [...l.b.counters].filter(([k]) => k.startsWith("fragment-") || k.startsWith("decode:"));
  assert.ok(drops.length > 0, "mutations were counted");
  l.setNet((d) => d);
  for (const h of held) l.inject("b", l.b.receive(h.bytes, h.path));
  assert.deepEqual(kinds(l.events.a).filter((k) => k !== "refused"), ["ikeSaEstablished", "childSaEstablished"], `seed ${seed}`);
});

test(`CERT: ${CERT_ROUNDS.toLocaleString("en")} mutated certificates into the chain check: no exception, nothing changed verifies`, () => {
  const seed = seedFromEnv();
  const r = new Rng(seed);
  const ders = [new Uint8Array(a.leaf.cert.raw), new Uint8Array(a.mid.cert.raw)];
  const now = Date.now();
  for (let i = 0; i < CERT_ROUNDS; i++) {
    const k = r.int(0, 1);
    const x = mutate(r, ders[k], [], r.pick(ders));
    if (same(x, ders[k])) continue;
    const input = k === 0 ? [x, ders[1]] : [ders[0], x];
    let res;
    try {
      res = verifyChain(input, certsB, now);
    } catch (e) {
      assert.fail(`seed ${seed} round ${i}: threw ${(e as Error).stack}\ninput ${Buffer.from(x).toString("hex")}`);
    }
    // a change outside the signed part (e.g. the outer SEQUENCE length form) could still parse to the same certificate
    if (res.ok) assert.equal(res.cert.fingerprint256, a.leaf.cert.fingerprint256, `seed ${seed} round ${i}: a changed certificate verified`);
    else assert.ok(res.reason.length > 0);
  }
});

test(`AUTH: ${AUTH_ROUNDS.toLocaleString("en")} mutated RFC 7427 AUTH payloads (RSA, RSASSA-PSS, ECDSA, Ed25519): no exception, no changed signature verifies`, async () => {
  const seed = seedFromEnv();
  const r = new Rng(seed);
  const ed = await chain("ed25519", "fuzz-ed", { subject: "CN=ed" });
  const octets = new Uint8Array(200).map((_, i) => i);
  const signed = [
    { key: a.leaf, data: signAuth(a.leaf.key, octets, [2]) },
    { key: a.leaf, data: signAuth(a.leaf.key, octets, [2], true) },
    { key: b.leaf, data: signAuth(b.leaf.key, octets, [2]) },
    { key: ed.leaf, data: signAuth(ed.leaf.key, octets, [5]) },
  ];
  for (const s of signed) assert.equal(verifyAuth(s.key.cert.publicKey, s.data, octets), undefined, "genuine AUTH verifies");
  for (let i = 0; i < AUTH_ROUNDS; i++) {
    const s = r.pick(signed);
    const x = mutate(r, s.data, [], r.pick(signed).data);
    if (same(x, s.data)) continue;
    let why;
    try {
      why = verifyAuth(s.key.cert.publicKey, x, octets);
    } catch (e) {
      assert.fail(`seed ${seed} round ${i}: threw ${(e as Error).stack}\ninput ${Buffer.from(x).toString("hex")}`);
    }
    // only another encoding of the same AlgorithmIdentifier (BER leniency of the ASN.1 reader) may
    // still verify: the signature itself and what it is checked with must be untouched
    if (!why) assert.ok(same(x.subarray(1 + x[0]), s.data.subarray(1 + s.data[0])), `seed ${seed} round ${i}: a changed signature verified: ${Buffer.from(x).toString("hex")}`);
  }
});

test(`CERTREQ, CRL and DN text: random bodies, mutated CRLs and ${DN_ROUNDS.toLocaleString("en")} strings, no exception but RangeError`, async () => {
  const seed = seedFromEnv();
  const r = new Rng(seed);
  const list = crlBlocks(Buffer.from(await crl(b.root, [b.mid.cert.serialNumber, "0badc0de"])))[0];
  for (let i = 0; i < DN_ROUNDS; i++) {
    const body = new Uint8Array(r.int(0, 100)).map(() => r.int(0, 255));
    const hashes = parseCertReq(body);
    assert.equal(hashes === undefined, body.length % 20 !== 0);
    assert.ok(chainToSend(certsA, hashes ?? []).length >= 1);
    const x = mutate(r, list, [], list);
    try {
      const got = parseCrl(x, [b.root.cert]);
      // a change that still verifies can only be outside what is signed: the same revocations
      if (got.ok) assert.deepEqual(got.crl.serials, ["BADC0DE", normalSerial(b.mid.cert.serialNumber)].sort(), `seed ${seed} round ${i}`);
    } catch (e) {
      assert.fail(`seed ${seed} round ${i}: CRL threw ${(e as Error).stack}`);
    }
    const alphabet = "CN=O,OU+\\\"#= abcé,=\u0000";
    const text = Array.from({ length: r.int(0, 40) }, () => alphabet[r.int(0, alphabet.length - 1)]).join("");
    try {
      dnToDer(text);
    } catch (e) {
      assert.ok(e instanceof RangeError, `seed ${seed} round ${i}: ${JSON.stringify(text)} threw ${(e as Error).stack}`);
    }
  }
});
