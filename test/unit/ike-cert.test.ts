// Certificate authentication (RFC 7427 Digital Signatures, CERT/CERTREQ of RFC
// 7296 §3.6/§3.7) between two in-memory wesp endpoints, with chains root →
// intermediate → end-entity made by test/helpers/pki.ts: every key type both
// ways, and each way a proof can be wrong refused with AUTHENTICATION_FAILED and
// a reason that names it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { A, B, assertMirrored, child, config, kinds, lab } from "./ike-harness.ts";
import { chain, crl, issue, type Issued, type KeyAlg } from "../helpers/pki.ts";
import { crlBlocks, parseCrl } from "../../host/ike/crl.ts";
import { IdType } from "../../host/ike/constants.ts";
import { caKeyHash, certAuthOf, chainToSend, dnToDer, verifyChain, type CertAuth } from "../../host/ike/certs.ts";
import type { Identity, IkeEvent, IkeSaConfig } from "../../host/ike/types.ts";

const fqdn = (s: string): Identity => ({ idType: IdType.FQDN, data: new TextEncoder().encode(s) });
const dn = (s: string): Identity => ({ idType: IdType.DER_ASN1_DN, data: dnToDer(s) });
const DN_B = "C=CH, O=wesp, CN=b.wesp.test";

interface Side { leaf: Issued; mid: Issued; root: Issued }

async function pair(alg: KeyAlg): Promise<{ a: Side; b: Side }> {
  return {
    a: await chain(alg, `${alg}-a`, { subject: "C=CH, O=wesp, CN=a.wesp.test", dns: ["a.wesp.test"] }),
    b: await chain(alg, `${alg}-b`, { subject: DN_B, dns: ["b.wesp.test"] }),
  };
}

const auth = (own: Side, trusted: Issued[], o: Partial<CertAuth> = {}): CertAuth => ({ chain: [own.leaf.cert, own.mid.cert], key: own.leaf.key, cas: trusted.map((t) => t.cert), ...o });

/** A (initiator, FQDN identity) and B (responder, DN identity), each trusting the other's root. */
function certLab(a: CertAuth, b: CertAuth, o: { aWants?: Identity; bWants?: Identity } = {}) {
  const cfgA: IkeSaConfig = { ...config("to-b", A, B), certs: a, localId: fqdn("a.wesp.test"), remoteId: o.aWants ?? dn(DN_B) };
  const cfgB: IkeSaConfig = { ...config("to-a", B, A), certs: b, localId: dn(DN_B), remoteId: o.bWants ?? fqdn("a.wesp.test") };
  return lab(cfgA, cfgB);
}

const failure = (es: IkeEvent[]) => es.find((e) => e.type === "failed") as Extract<IkeEvent, { type: "failed" }> | undefined;
const SKF = 53;

for (const alg of ["rsa", "p256", "p384", "ed25519"] as const) {
  test(`${alg} chains both ways: IKE SA and CHILD_SA up, keys mirrored, the peer's certificate kept`, async () => {
    const { a, b } = await pair(alg);
    const l = certLab(auth(a, [b.root]), auth(b, [a.root]));
    const sa = l.start();
    assert.deepEqual(kinds(l.events.a), ["ikeSaEstablished", "childSaEstablished"], JSON.stringify(l.events.a));
    assert.deepEqual(kinds(l.events.b), ["ikeSaEstablished", "childSaEstablished"], JSON.stringify(l.events.b));
    assertMirrored(child(l.events.a)[0], child(l.events.b)[0]);
    assert.equal(sa.ctx.peerCert?.fingerprint256, b.leaf.cert.fingerprint256);
    const bSa = [...l.b.sas.values()][0];
    assert.equal(bSa.ctx.peerCert?.fingerprint256, a.leaf.cert.fingerprint256);
    // RSA-2048 chains do not fit 1280 bytes: IKE_AUTH went in fragments (RFC 7383)
    if (alg === "rsa") assert.ok(l.wire.some((w) => w.out.bytes[16] === SKF), "IKE_AUTH fragmented");
  });
}

test("rsa with RSASSA-PSS signatures (RFC 7427 A.4) both ways", async () => {
  const { a, b } = await pair("rsa");
  const l = certLab(auth(a, [b.root], { rsaPss: true }), auth(b, [a.root], { rsaPss: true }));
  l.start();
  assert.deepEqual(kinds(l.events.a), ["ikeSaEstablished", "childSaEstablished"], JSON.stringify(l.events.a));
});

test("mixed key types: an ECDSA initiator and an Ed25519 responder", async () => {
  const a = (await pair("p256")).a;
  const b = (await pair("ed25519")).b;
  const l = certLab(auth(a, [b.root]), auth(b, [a.root]));
  l.start();
  assert.deepEqual(kinds(l.events.b), ["ikeSaEstablished", "childSaEstablished"], JSON.stringify(l.events.b));
});

/** The responder refuses the initiator (AUTHENTICATION_FAILED back), with a reason matching `why`. */
function refusedByB(l: ReturnType<typeof certLab>, why: RegExp) {
  l.start();
  const f = failure(l.events.b);
  assert.equal(f?.reason, "auth", JSON.stringify(l.events.b));
  assert.match(f!.detail, why);
  const fa = failure(l.events.a);
  assert.equal(fa?.reason, "peer-error");
  assert.match(fa!.detail, /AUTHENTICATION_FAILED/);
  assert.ok(!l.events.b.some((e) => e.type === "ikeSaEstablished"));
}

test("refused: an expired end-entity certificate", async () => {
  const { a, b } = await pair("p256");
  const old = await issue({ subject: "C=CH, O=wesp, CN=a.wesp.test", dns: ["a.wesp.test"], alg: "p256", issuer: a.mid, notBefore: new Date(Date.now() - 20 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) });
  refusedByB(certLab(auth({ ...a, leaf: old }, [b.root]), auth(b, [a.root])), /expired/);
});

test("refused: a chain to a CA the responder does not trust", async () => {
  const { a, b } = await pair("p256");
  const other = await pair("p256");
  refusedByB(certLab(auth(a, [b.root]), auth(b, [other.a.root])), /no trusted CA issued/);
});

test("refused: an identity the certificate does not hold (FQDN not in subjectAltName)", async () => {
  const { a, b } = await pair("p256");
  // A claims a name its certificate does not carry
  const l2 = lab({ ...config("to-b", A, B), certs: auth(a, [b.root]), localId: fqdn("x.wesp.test"), remoteId: dn(DN_B) },
    { ...config("to-a", B, A), certs: auth(b, [a.root]), localId: dn(DN_B), remoteId: undefined });
  l2.start();
  const f = failure(l2.events.b);
  assert.equal(f?.reason, "auth");
  assert.match(f!.detail, /ID FQDN "x.wesp.test" is not a dNSName/);
});

test("refused: a DN identity that is not the certificate's subject (the initiator refuses the responder)", async () => {
  const { a, b } = await pair("p256");
  const l = lab({ ...config("to-b", A, B), certs: auth(a, [b.root]), localId: fqdn("a.wesp.test"), remoteId: undefined },
    { ...config("to-a", B, A), certs: auth(b, [a.root]), localId: dn("C=CH, O=wesp, CN=someone-else"), remoteId: fqdn("a.wesp.test") });
  l.start();
  const f = failure(l.events.a);
  assert.equal(f?.reason, "auth");
  assert.match(f!.detail, /not the certificate's subject/);
});

test("refused: a signature by a key that is not the certificate's (tampered AUTH)", async () => {
  const { a, b } = await pair("p256");
  const stranger = await issue({ subject: "CN=stranger", alg: "p256" });
  refusedByB(certLab(auth(a, [b.root], { key: stranger.key }), auth(b, [a.root])), /ec\/sha256 signature does not verify/);
});

test("refused: an end-entity certificate whose issuer signature was tampered with", async () => {
  const { a, b } = await pair("p256");
  const raw = Buffer.from(a.leaf.cert.raw);
  raw[raw.length - 3] ^= 0x01; // inside the signature BIT STRING
  const { X509Certificate } = await import("node:crypto");
  const bent = new X509Certificate(raw);
  refusedByB(certLab({ ...auth(a, [b.root]), chain: [bent, a.mid.cert] }, auth(b, [a.root])), /signature on .* does not verify/);
});

test("refused: a revoked certificate (isRevoked hook) and an intermediate that is not a CA", async () => {
  const { a, b } = await pair("p256");
  refusedByB(certLab(auth(a, [b.root]), auth(b, [a.root], { isRevoked: (c) => c.serialNumber === a.leaf.cert.serialNumber })), /is revoked/);
  const notCa = await issue({ subject: "C=CH, O=wesp, CN=not a ca", alg: "p256", issuer: a.root, ca: false, keyUsage: 0x20 | 0x01 });
  const leaf = await issue({ subject: "C=CH, O=wesp, CN=a.wesp.test", dns: ["a.wesp.test"], alg: "p256", issuer: notCa });
  refusedByB(certLab({ ...auth(a, [b.root]), chain: [leaf.cert, notCa.cert], key: leaf.key }, auth(b, [a.root])), /is not a CA/);
});

test("refused: an intermediate on its root's CRL (RFC 5280 §5), through the config's path (certAuthOf)", async () => {
  const { a, b } = await pair("p256");
  const parsed = parseCrl(crlBlocks(Buffer.from(await crl(a.root, [a.mid.cert.serialNumber])))[0], [a.root.cert]);
  assert.ok(parsed.ok);
  const bAuth = certAuthOf({ chain: [b.leaf.cert, b.mid.cert], key: b.leaf.key, cas: [a.root.cert], revokedSerials: [], crls: [parsed.crl], rsaPss: false, files: { cert: "", key: "", ca: "" } });
  refusedByB(certLab(auth(a, [b.root]), bAuth), /intermediate "C=CH, O=wesp, CN=p256-a Intermediate CA" \(serial [0-9A-F]+\) is revoked/);
});

test("refused: a PSK peer meets a certificate peer (AUTH method 2 where 14 is configured)", async () => {
  const { b } = await pair("p256");
  const l = lab(config("to-b", A, B), { ...config("to-a", B, A), certs: auth(b, []) });
  l.start();
  assert.match(failure(l.events.b)!.detail, /AUTH method 2, only Digital Signature \(14\)/);
});

test("CERTREQ (§3.7): the chain sent stops at the CA the peer asked for; with no match it goes whole", async () => {
  const { a } = await pair("p256");
  const mine = auth(a, [a.root]);
  assert.deepEqual(chainToSend(mine, [caKeyHash(a.mid.cert)]).map((c) => c.subject), [a.leaf.cert.subject]);
  assert.equal(chainToSend(mine, [caKeyHash(a.root.cert)]).length, 2);
  assert.equal(chainToSend(mine, [new Uint8Array(20)]).length, 2);
  assert.equal(chainToSend(mine, []).length, 2);
  // an intermediate given by the peer in any order is found; one missing breaks the chain
  const r = verifyChain([a.leaf.cert.raw], { ...mine, cas: [a.root.cert] }, Date.now());
  assert.equal(r.ok, false);
  assert.ok(verifyChain([a.leaf.cert.raw, a.mid.cert.raw], mine, Date.now()).ok);
  assert.ok(verifyChain([a.leaf.cert.raw], { ...mine, cas: [a.mid.cert] }, Date.now()).ok, "an intermediate can be the trust anchor");
  assert.deepEqual(verifyChain([Uint8Array.of(0x30, 0x03, 1, 2, 3)], mine, Date.now()), { ok: false, reason: "CERT payload 1 is not an X.509 certificate" });
});
