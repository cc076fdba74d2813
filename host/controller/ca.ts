// The controller's certificate authority (issue 8, item 2; draft-ietf-l3vpn-
// ce-based-02 §3.2: a CE proves who it is before it gets its configuration).
// One ECDSA P-256 key and a self-signed CA certificate, made at first start in
// the CA directory (key 0600). It issues:
//   - the controller's own TLS server certificate (EKU serverAuth; SAN = the
//     names and addresses it is reached at), served with the CA behind it;
//   - one certificate per enrolled CE, from a CSR whose key was made on the CE
//     (EKU clientAuth; SAN rfc822Name = the site identity `site@vpn`, which is
//     also its IKEv2 identity, ID_RFC822_ADDR of RFC 7296 §3.5: `@` is not in
//     names, so no two sites share one);
//   - a CRL of revoked CE certificates (RFC 5280 §5), which the TLS server
//     checks client certificates against.
// OpenSSL checks the EKU of a TLS peer, so a CE certificate cannot serve as
// the controller to another CE, nor the server certificate as a client.
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { join } from "node:path";
import {
  SIGN_ALG, fingerprintOf, importPrivateKey, keyPairPem, newKeyPair, readPrivateFile, writePrivateFile, x509,
} from "../util/pki.ts";

export { siteIdentity } from "../util/pki.ts";

/** A CSR larger than this is not one of ours (a P-256 CSR is about 400 bytes of PEM). */
export const MAX_CSR_BYTES = 4096;
const CA_VALIDITY_MS = 10 * 365 * 86400_000;
const SERVER_VALIDITY_MS = 397 * 86400_000;
/** CE certificates are short-lived: a CE renews at half-life (host/agent/). */
export const CE_VALIDITY_MS = 30 * 86400_000;
/** Clock skew allowed between controller and CEs. */
const BACKDATE_MS = 5 * 60_000;
const OID_EXTENSION_REQUEST = "1.2.840.113549.1.9.14";
const OID_SAN = "2.5.29.17";

/** A refusal of a CSR or of a CA file; the message names the reason, never key material. */
export class CaError extends Error {
  constructor(readonly code: "bad-csr" | "wrong-identity" | "ca-file", message: string) {
    super(message);
    this.name = "CaError";
  }
}

/** A positive random 128-bit serial number (RFC 5280 §4.1.2.2: positive, at most 20 octets), as hex. */
function newSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0] & 0x7f) | 0x01;
  return b.toString("hex");
}

export interface IssuedCertificate {
  /** The certificate, PEM. */
  pem: string;
  serial: string;
  notAfter: number;
}

export class ControllerCa {
  private constructor(
    readonly cert: x509.X509Certificate,
    private readonly key: CryptoKey,
    /** The CA certificate, PEM: what a CE pins (by fingerprint) and trusts. */
    readonly pem: string,
  ) {}

  /** SHA-256 of the CA certificate, lower-case hex: what operators hand to CEs out of band. */
  get fingerprint(): string {
    return fingerprintOf(this.pem);
  }

  /** Loads `dir`/ca.key and ca.pem, making both at first start (key 0600, directory 0700). */
  static async open(dir: string): Promise<ControllerCa> {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const keyPath = join(dir, "ca.key");
    const certPath = join(dir, "ca.pem");
    if (!existsSync(keyPath)) {
      const keys = await newKeyPair();
      const cert = await x509.X509CertificateGenerator.createSelfSigned({
        serialNumber: newSerial(),
        name: `CN=wesp controller CA ${randomBytes(4).toString("hex")}`,
        notBefore: new Date(Date.now() - BACKDATE_MS),
        notAfter: new Date(Date.now() + CA_VALIDITY_MS),
        keys,
        signingAlgorithm: SIGN_ALG,
        extensions: [
          new x509.BasicConstraintsExtension(true, 0, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
          await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        ],
      });
      writePrivateFile(keyPath, await keyPairPem(keys));
      writeFileSync(certPath, cert.toString("pem") + "\n", { mode: 0o644 });
    }
    const pem = readFileSync(certPath, "utf8");
    const key = await importPrivateKey(readPrivateFile(keyPath));
    return new ControllerCa(new x509.X509Certificate(pem), key, pem.trim() + "\n");
  }

  private async issue(subject: string, publicKey: x509.PublicKey | CryptoKey, validityMs: number, extensions: x509.Extension[]): Promise<IssuedCertificate> {
    const serial = newSerial();
    const notAfter = Math.min(Date.now() + validityMs, this.cert.notAfter.getTime());
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial,
      subject,
      issuer: this.cert.subjectName,
      notBefore: new Date(Date.now() - BACKDATE_MS),
      notAfter: new Date(notAfter),
      publicKey,
      signingKey: this.key,
      signingAlgorithm: SIGN_ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        await x509.AuthorityKeyIdentifierExtension.create(this.cert, false),
        await x509.SubjectKeyIdentifierExtension.create(publicKey),
        ...extensions,
      ],
    });
    return { pem: cert.toString("pem") + "\n", serial, notAfter };
  }

  /**
   * The controller's TLS server certificate and key, valid for `names` (DNS
   * names or IP addresses). `pem` holds the certificate followed by the CA, so
   * the server sends its chain and a client trusting that file trusts the CA.
   */
  async issueServer(names: string[]): Promise<{ pem: string; keyPem: string }> {
    const keys = await newKeyPair();
    const san = [...new Set(names)].map((n) => (isIP(n) ? { type: "ip" as const, value: n } : { type: "dns" as const, value: n }));
    const c = await this.issue("CN=wesp-controller", keys.publicKey, SERVER_VALIDITY_MS, [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension(san, false),
    ]);
    return { pem: c.pem + this.pem, keyPem: await keyPairPem(keys) };
  }

  /**
   * Signs a CE's CSR (PKCS #10, RFC 2986) for `identity` (siteIdentity). The
   * CSR must be signed by its own P-256 key (proof of possession), name
   * exactly CN=identity, and ask for nothing but, optionally, that identity as
   * its one rfc822Name. The certificate is built here, copying nothing from
   * the CSR but its public key. Throws CaError saying what is wrong.
   */
  async signCsr(csrPem: string, identity: string, validityMs = CE_VALIDITY_MS): Promise<IssuedCertificate> {
    const csr = await parseCsr(csrPem);
    checkCsrIdentity(csr, identity);
    return this.issue(`CN=${identity}`, csr.publicKey, validityMs, [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false),
      new x509.SubjectAlternativeNameExtension([{ type: "email", value: identity }], false),
    ]);
  }

  /** A CRL (RFC 5280 §5) listing `revoked` serials (hex), valid a year (remade at every change). */
  async crl(revoked: { serial: string; revokedAt: number }[]): Promise<string> {
    const c = await x509.X509CrlGenerator.create({
      issuer: this.cert.subjectName,
      thisUpdate: new Date(Date.now() - BACKDATE_MS),
      nextUpdate: new Date(Date.now() + 365 * 86400_000),
      signingKey: this.key,
      signingAlgorithm: SIGN_ALG,
      entries: revoked.map((r) => ({ serialNumber: r.serial, revocationDate: new Date(r.revokedAt), reason: x509.X509CrlReason.cessationOfOperation })),
    });
    // OpenSSL reads only the "X509 CRL" PEM label (RFC 7468 §6), not the library's "CRL".
    return x509.PemConverter.encode(c.rawData, "X509 CRL") + "\n";
  }
}

async function parseCsr(pem: string): Promise<x509.Pkcs10CertificateRequest> {
  if (typeof pem !== "string" || pem.length > MAX_CSR_BYTES) throw new CaError("bad-csr", `the CSR must be a PEM string of at most ${MAX_CSR_BYTES} bytes`);
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(pem);
  } catch {
    throw new CaError("bad-csr", "the CSR is not a PKCS #10 certificate request in PEM");
  }
  const alg = csr.publicKey.algorithm as EcKeyAlgorithm;
  if (alg.name !== "ECDSA" || alg.namedCurve !== "P-256") throw new CaError("bad-csr", "the CSR's key must be ECDSA P-256");
  let ok = false;
  try {
    ok = await csr.verify();
  } catch {
    ok = false;
  }
  if (!ok) throw new CaError("bad-csr", "the CSR's signature does not verify with its own key (no proof of possession)");
  return csr;
}

/** The CSR names exactly `identity` and nothing else (subject CN, optional one-entry rfc822Name SAN). */
function checkCsrIdentity(csr: x509.Pkcs10CertificateRequest, identity: string): void {
  if (csr.subject !== `CN=${identity}`) {
    throw new CaError("wrong-identity", `the CSR's subject must be exactly CN=${identity} (this token's site), not ${csr.subject.slice(0, 80) || "empty"}`);
  }
  for (const a of csr.attributes) {
    if (a.type !== OID_EXTENSION_REQUEST) throw new CaError("wrong-identity", `the CSR carries attribute ${a.type.slice(0, 40)}: only the site identity may be asked for`);
  }
  for (const e of csr.extensions) {
    if (e.type !== OID_SAN) throw new CaError("wrong-identity", `the CSR asks for extension ${e.type.slice(0, 40)}: only the site identity may be asked for`);
    const names = new x509.SubjectAlternativeNameExtension(e.rawData).names.toJSON();
    if (names.length !== 1 || names[0].type !== "email" || names[0].value !== identity) {
      throw new CaError("wrong-identity", `the CSR's subjectAltName must be exactly email:${identity} (this token's site)`);
    }
  }
}
