// Public-key plumbing shared by the controller's CA (host/controller/ca.ts)
// and the CE agent (host/agent/): ECDSA P-256 keys through WebCrypto,
// @peculiar/x509 (which needs reflect-metadata loaded first), private key
// files of mode 0600, certificate fingerprints, and the site identity.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { X509Certificate as NodeCertificate, webcrypto } from "node:crypto";
import { closeSync, fstatSync, openSync, readFileSync, writeSync } from "node:fs";

export { x509 };

export const KEY_ALG: EcKeyGenParams = { name: "ECDSA", namedCurve: "P-256" };
export const SIGN_ALG: EcdsaParams = { name: "ECDSA", hash: "SHA-256" };

/** A private key file that is not ours alone, or not a key. */
export class KeyFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KeyFileError";
  }
}

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

/** The identity of site `site` of VPN `vpn`: its certificate's CN and rfc822Name SAN, and its IKEv2 ID. */
export function siteIdentity(vpn: string, site: string): string {
  return `${site}@${vpn}`;
}

/** "AA:BB:…" or "aabb…" as lower-case hex without colons. */
export function normaliseFingerprint(fp: string): string {
  return fp.replace(/:/g, "").toLowerCase();
}

/**
 * Hex as colon-separated pairs ("0f:a3:…"), the way openssl prints
 * fingerprints and serials — and the form for logs, whose redaction layer
 * (host/config/redact.ts) hides any long unbroken hex run as key-shaped.
 */
export function colonHex(hex: string): string {
  return hex.toLowerCase().replace(/(..)(?!$)/g, "$1:");
}

/** SHA-256 fingerprint of a PEM certificate, as lower-case hex. */
export function fingerprintOf(pem: string): string {
  return normaliseFingerprint(new NodeCertificate(pem).fingerprint256);
}

export async function exportKeyPem(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey("pkcs8", key as webcrypto.CryptoKey), "PRIVATE KEY");
}

/** A new P-256 key pair (extractable private key: it is written to a 0600 file). */
export async function newKeyPair(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(KEY_ALG, true, ["sign", "verify"])) as unknown as CryptoKeyPair;
}

export async function keyPairPem(keys: CryptoKeyPair): Promise<string> {
  return exportKeyPem(keys.privateKey);
}

/** Reads a private key file, refusing one that group or others can read (whoever reads it is us). */
export function readPrivateFile(path: string): string {
  const fd = openSync(path, "r");
  try {
    const mode = fstatSync(fd).mode & 0o777;
    if (mode & 0o077) throw new KeyFileError(`${path}: mode ${mode.toString(8).padStart(4, "0")} lets group or others read a private key; chmod 600 it`);
    return readFileSync(fd, "utf8");
  } finally {
    closeSync(fd);
  }
}

/** Writes `text` to a new file of mode 0600 (refusing to overwrite: "wx"), or over an existing one. */
export function writePrivateFile(path: string, text: string, overwrite = false): void {
  const fd = openSync(path, overwrite ? "w" : "wx", 0o600);
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

export async function importPrivateKey(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decode(pem)[0];
  if (!der) throw new KeyFileError("no PEM private key");
  return (await webcrypto.subtle.importKey("pkcs8", der, KEY_ALG, false, ["sign"])) as unknown as CryptoKey;
}

/** A CE's CSR for `identity`, signed with `keys` (the agent's half of enrolment). */
export async function makeCsr(identity: string, keys: CryptoKeyPair): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${identity}`,
    keys,
    signingAlgorithm: SIGN_ALG,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: "email", value: identity }], false)],
  });
  return csr.toString("pem") + "\n";
}
