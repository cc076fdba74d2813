// Certificates for the IKE certificate tests: a root CA, an intermediate CA and
// end-entity certificates, made with @peculiar/x509 over node's WebCrypto, for
// RSA, ECDSA P-256/P-384 and Ed25519. Returned as node:crypto objects and PEM.
import "reflect-metadata";
import { KeyObject, X509Certificate, webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export type KeyAlg = "rsa" | "p256" | "p384" | "ed25519";

const ALGS: Record<KeyAlg, { gen: RsaHashedKeyGenParams | EcKeyGenParams | { name: string }; sign: object }> = {
  rsa: { gen: { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" }, sign: { name: "RSASSA-PKCS1-v1_5" } },
  p256: { gen: { name: "ECDSA", namedCurve: "P-256" }, sign: { name: "ECDSA", hash: "SHA-256" } },
  p384: { gen: { name: "ECDSA", namedCurve: "P-384" }, sign: { name: "ECDSA", hash: "SHA-384" } },
  ed25519: { gen: { name: "Ed25519" }, sign: { name: "Ed25519" } },
};

export interface Issued {
  cert: X509Certificate;
  key: KeyObject;
  /** PEM of the certificate and of the PKCS#8 private key. */
  certPem: string;
  keyPem: string;
  /** For issuing below it. */
  x: x509.X509Certificate;
  keys: CryptoKeyPair;
}

const DAY = 86_400_000;
let serial = 1;

export interface IssueOpts {
  subject: string;
  alg: KeyAlg;
  /** Signed by this; self-signed (a root) when absent. */
  issuer?: Issued;
  ca?: boolean;
  /** subjectAltNames. */
  dns?: string[];
  ip?: string[];
  email?: string[];
  notBefore?: Date;
  notAfter?: Date;
  /** keyUsage flags (x509.KeyUsageFlags); default: CA keyCertSign|cRLSign, end-entity digitalSignature. */
  keyUsage?: number;
}

export async function issue(o: IssueOpts): Promise<Issued> {
  const a = ALGS[o.alg];
  const keys = (await webcrypto.subtle.generateKey(a.gen as EcKeyGenParams, true, ["sign", "verify"])) as CryptoKeyPair;
  const signer = o.issuer ?? { keys, x: undefined };
  const signAlg = o.issuer ? ALGS[algOf(o.issuer)].sign : a.sign;
  const sans: x509.JsonGeneralName[] = [
    ...(o.dns ?? []).map((value) => ({ type: "dns" as const, value })),
    ...(o.ip ?? []).map((value) => ({ type: "ip" as const, value })),
    ...(o.email ?? []).map((value) => ({ type: "email" as const, value })),
  ];
  const usage = o.keyUsage ?? (o.ca ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign : x509.KeyUsageFlags.digitalSignature);
  const x = await x509.X509CertificateGenerator.create({
    serialNumber: (serial++).toString(16).padStart(4, "0"),
    subject: o.subject,
    issuer: o.issuer ? o.issuer.x.subject : o.subject,
    notBefore: o.notBefore ?? new Date(Date.now() - DAY),
    notAfter: o.notAfter ?? new Date(Date.now() + 30 * DAY),
    signingAlgorithm: signAlg as Algorithm,
    publicKey: keys.publicKey,
    signingKey: signer.keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(!!o.ca, undefined, true),
      new x509.KeyUsagesExtension(usage, true),
      ...(sans.length ? [new x509.SubjectAlternativeNameExtension(sans)] : []),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
  const key = KeyObject.from(keys.privateKey as unknown as webcrypto.CryptoKey);
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString("base64").replace(/(.{64})/g, "$1\n")}\n-----END PRIVATE KEY-----\n`;
  const out: Issued = { cert: new X509Certificate(Buffer.from(x.rawData)), key, certPem: x.toString("pem"), keyPem: keyPem.replace(/\n\n/, "\n"), x, keys };
  algs.set(out, o.alg);
  return out;
}

const algs = new WeakMap<Issued, KeyAlg>();
const algOf = (i: Issued): KeyAlg => algs.get(i)!;

/** A PEM CRL by `issuer` revoking `serials` (hex), next update in a day unless `nextUpdate`. */
export async function crl(issuer: Issued, serials: string[], nextUpdate = new Date(Date.now() + DAY)): Promise<string> {
  const c = await x509.X509CrlGenerator.create({
    issuer: issuer.x.subject,
    signingAlgorithm: ALGS[algOf(issuer)].sign as Algorithm,
    signingKey: issuer.keys.privateKey,
    thisUpdate: new Date(nextUpdate.getTime() - 2 * DAY),
    nextUpdate,
    entries: serials.map((serialNumber) => ({ serialNumber })),
  });
  return c.toString("pem");
}

/** root → intermediate → end-entity, all of one key type; the end-entity names in `ee`. */
export async function chain(alg: KeyAlg, tag: string, ee: Omit<IssueOpts, "alg" | "issuer">) {
  const root = await issue({ subject: `C=CH, O=wesp, CN=${tag} Root CA`, alg, ca: true });
  const mid = await issue({ subject: `C=CH, O=wesp, CN=${tag} Intermediate CA`, alg, ca: true, issuer: root });
  const leaf = await issue({ ...ee, alg, issuer: mid });
  return { root, mid, leaf };
}
