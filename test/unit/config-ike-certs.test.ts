// A peer's `ike.auth` with certificates (docs/config.md "peers[].ike"): cert,
// key and ca files read relative to the config, checked at their field paths
// (unreadable, not PEM, key not the certificate's, key mode, identity not in the
// certificate, PSK and certificates both), defaults (our identity = the
// certificate's subject), and the IkeSaConfig manager.ts makes of them.
import assert from "node:assert/strict";
import { chmodSync } from "node:fs";
import { test } from "node:test";
import { ConfigError, parseConfig } from "../../host/config/load.ts";
import { describeConfig } from "../../host/config/redact.ts";
import { managedPeer } from "../../host/ike/manager.ts";
import { IdType } from "../../host/ike/constants.ts";
import { subjectDer } from "../../host/ike/certs.ts";
import { baseConfig, tempDir, toYaml, type Doc } from "../helpers/config_fixture.ts";
import { chain, crl, issue } from "../helpers/pki.ts";

const opts = { uid: 1000, env: {} };
const ours = await chain("p256", "cfg", { subject: "C=CH, O=wesp, CN=ce1", dns: ["ce1.wesp.test"] });
const stranger = await issue({ subject: "CN=stranger", alg: "p256" });
/** The root revokes the intermediate; a CRL by a stranger; a stale one. */
const crls = {
  good: await crl(ours.root, [ours.mid.cert.serialNumber]),
  foreign: await crl(stranger, [ours.mid.cert.serialNumber]),
  stale: await crl(ours.root, [], new Date(Date.now() - 3_600_000)),
};

/** A temp dir with ours.pem (leaf + intermediate), ours.key (0600), ca.pem, and a doc using them. */
function setup(auth: Doc = {}, ike: Doc = {}) {
  const dir = tempDir();
  dir.write("ours.pem", ours.leaf.certPem + ours.mid.certPem);
  chmodSync(dir.write("ours.key", ours.leaf.keyPem), 0o600);
  chmodSync(dir.write("stranger.key", stranger.keyPem), 0o600);
  dir.write("ca.pem", ours.root.certPem);
  dir.write("junk.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
  dir.write("root.crl", crls.good);
  dir.write("foreign.crl", crls.foreign);
  dir.write("stale.crl", crls.stale);
  const c = baseConfig();
  delete c.peers[0].sas;
  c.peers[0].ike = { auth: { cert: "ours.pem", key: "ours.key", ca: "ca.pem", ...auth }, ...ike };
  return { dir, doc: c };
}

const bad: { name: string; auth?: Doc; ike?: Doc; path: string; message: RegExp }[] = [
  { name: "cert missing", auth: { cert: "nope.pem" }, path: "peers[0].ike.auth.cert", message: /cannot read certificate file .*nope\.pem \(ENOENT\)/ },
  { name: "cert not PEM", auth: { cert: "ours.key" }, path: "peers[0].ike.auth.cert", message: /holds no PEM certificate/ },
  { name: "cert PEM that is not X.509", auth: { cert: "junk.pem" }, path: "peers[0].ike.auth.cert", message: /certificate 1 in .*junk\.pem is not a valid X\.509 certificate/ },
  { name: "key not the certificate's", auth: { key: "stranger.key" }, path: "peers[0].ike.auth.key", message: /does not match the certificate "C=CH, O=wesp, CN=ce1"/ },
  { name: "key not a key", auth: { key: "ca.pem" }, path: "peers[0].ike.auth.key", message: /is not a PEM private key/ },
  { name: "ca missing", auth: { ca: "none.pem" }, path: "peers[0].ike.auth.ca", message: /cannot read CA file/ },
  { name: "ca without key", auth: { key: undefined }, path: "peers[0].ike.auth.key", message: /is required with certificate authentication/ },
  { name: "psk and cert", auth: { psk: "x".repeat(24) }, path: "peers[0].ike.auth.psk", message: /either a PSK or certificates/ },
  { name: "local_id not in the certificate", ike: { local_id: { type: "fqdn", value: "other.wesp.test" } }, path: "peers[0].ike.local_id", message: /ID FQDN "other\.wesp\.test" is not a dNSName of the certificate: the peer would refuse it/ },
  { name: "fragment_size too small", ike: { fragment_size: 300 }, path: "peers[0].ike.fragment_size", message: /below 576/ },
  { name: "CRL missing", auth: { crl: "none.crl" }, path: "peers[0].ike.auth.crl", message: /cannot read CRL file .*none\.crl \(ENOENT\)/ },
  { name: "CRL not signed by a ca", auth: { crl: "foreign.crl" }, path: "peers[0].ike.auth.crl", message: /CRL 1 in .*foreign\.crl: CRL is not signed by any of the ca certificates/ },
  { name: "CRL that is not one", auth: { crl: "ca.pem" }, path: "peers[0].ike.auth.crl", message: /not a DER or PEM X\.509 CRL/ },
  { name: "revoked serial not hex", auth: { revoked_serials: ["xyz"] }, path: "peers[0].ike.auth.revoked_serials[0]", message: /bad format/ },
];

for (const c of bad) {
  test(`refused: ${c.name} → ${c.path}`, () => {
    const { dir, doc } = setup(c.auth, c.ike);
    if (c.auth && "key" in c.auth && c.auth.key === undefined) delete doc.peers[0].ike.auth.key;
    try {
      assert.throws(() => parseConfig(toYaml(doc), { baseDir: dir.path, source: "c.yaml", ...opts }), (e: unknown) => {
        assert.ok(e instanceof ConfigError, String(e));
        const hit = e.issues.find((i) => i.path === c.path);
        assert.ok(hit, `no issue at "${c.path}"; got:\n${e.message}`);
        assert.match(hit.message, c.message);
        assert.ok(!e.message.includes("PRIVATE KEY"), "no key material in messages");
        return true;
      });
    } finally {
      dir.remove();
    }
  });
}

test("a key file readable by others is a warning, writable an error (the key-file mode rule)", () => {
  const { dir, doc } = setup();
  try {
    chmodSync(`${dir.path}/ours.key`, 0o640);
    const w = parseConfig(toYaml(doc), { baseDir: dir.path, ...opts }).warnings;
    assert.match(w.find((x) => x.path === "peers[0].ike.auth.key")!.message, /readable by group or others/);
    chmodSync(`${dir.path}/ours.key`, 0o622);
    assert.throws(() => parseConfig(toYaml(doc), { baseDir: dir.path, ...opts }), (e: unknown) => e instanceof ConfigError && e.issues.some((i) => i.path === "peers[0].ike.auth.key" && /writable/.test(i.message)));
  } finally {
    dir.remove();
  }
});

test("a CRL signed by the ca: its serials are refused (isRevoked), only for certificates of its issuer; a stale CRL warns", () => {
  const { dir, doc } = setup({ crl: "root.crl" });
  try {
    const { config, warnings } = parseConfig(toYaml(doc), { baseDir: dir.path, ...opts });
    assert.deepEqual(warnings, []);
    const m = managedPeer(config, config.peers[0], (t) => Uint8Array.from(t.split(".").map(Number)));
    assert.equal(m.ike.certs!.isRevoked!(ours.mid.cert), true, "the intermediate is on the root's CRL");
    assert.equal(m.ike.certs!.isRevoked!(ours.leaf.cert), false);
    assert.equal(m.ike.certs!.isRevoked!(stranger.cert), false, "another issuer's certificate with any serial is not");
    doc.peers[0].ike.auth.crl = "stale.crl";
    const stale = parseConfig(toYaml(doc), { baseDir: dir.path, ...opts });
    assert.match(stale.warnings.find((w) => w.path === "peers[0].ike.auth.crl")!.message, /was due to be replaced/);
    // a reload compares peers by their JSON (host/ike/runtime.ts): a new CRL shows, the key never does
    const json = (c: typeof config) => JSON.stringify(c.peers[0].ike);
    assert.notEqual(json(stale.config), json(config));
    assert.ok(!json(config).includes("PRIVATE") && !json(config).includes(ours.leaf.keyPem.split("\n")[1]), "no key material");
  } finally {
    dir.remove();
  }
});

test("valid: our identity defaults to the certificate's subject, sent as its own DER; a DN remote_id; revoked serials become isRevoked", () => {
  const { dir, doc } = setup({ revoked_serials: [ours.mid.cert.serialNumber.toLowerCase()] }, { remote_id: { type: "dn", value: "C=CH, O=wesp, CN=ce2" }, fragment_size: 1400 });
  try {
    const { config, warnings } = parseConfig(toYaml(doc), { baseDir: dir.path, ...opts });
    assert.deepEqual(warnings, []);
    const k = config.peers[0].ike!;
    assert.equal(k.psk.length, 0);
    assert.equal(k.certs!.chain.length, 2);
    assert.equal(k.certs!.cas.length, 1);
    assert.deepEqual(k.localId, { type: "dn", value: "C=CH, O=wesp, CN=ce1" });
    assert.equal(k.fragmentSize, 1400);
    const m = managedPeer(config, config.peers[0], (t) => Uint8Array.from(t.split(".").map(Number)));
    assert.equal(m.ike.localId.idType, IdType.DER_ASN1_DN);
    assert.deepEqual(Buffer.from(m.ike.localId.data), Buffer.from(subjectDer(ours.leaf.cert)), "the certificate's bytes");
    assert.equal(m.ike.remoteId!.idType, IdType.DER_ASN1_DN);
    assert.equal(m.ike.fragmentSize, 1400);
    assert.equal(m.ike.certs!.rsaPss, false, "PKCS#1 v1.5 unless rsa_pss");
    assert.equal(m.ike.certs!.isRevoked!(ours.mid.cert), true);
    assert.equal(m.ike.certs!.isRevoked!(ours.leaf.cert), false);
    assert.match(describeConfig(config), /ike: certificate "C=CH, O=wesp, CN=ce1" \(\+1 intermediates, 1 CAs\), dn C=CH, O=wesp, CN=ce1 -> dn C=CH, O=wesp, CN=ce2/);
  } finally {
    dir.remove();
  }
});
