// The controller's TLS server certificate. `wesp controller` has its CA
// (../ca.ts) issue one for localhost, 127.0.0.1, ::1 and the names it is
// reached at, and keeps it in tls/cert.pem followed by the CA certificate:
// the server sends that chain, and a client that trusts the file (`wesp ctl
// --ca`) trusts the CA. `ensureSelfSigned` (the `openssl` command) makes a
// stand-alone self-signed one, for tests of the operator API without a CA.
import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { join } from "node:path";
import type { ControllerCa } from "../ca.ts";
import { writePrivateFile } from "../../util/pki.ts";

export interface TlsFiles {
  certPath: string;
  keyPath: string;
  cert: Buffer;
  key: Buffer;
  /** SHA-256 fingerprint of the certificate, as openssl prints it (AA:BB:…). */
  fingerprint: string;
}

/** Loads `dir`/cert.pem and key.pem, making them first when missing. */
export function ensureSelfSigned(dir: string, names: string[] = []): TlsFiles {
  const certPath = join(dir, "cert.pem");
  const keyPath = join(dir, "key.pem");
  if (!existsSync(certPath) || !existsSync(keyPath)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const san = ["DNS:localhost", "IP:127.0.0.1", "IP:::1", ...names.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`))];
    execFileSync("openssl", [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "825",
      "-subj", "/CN=wesp-controller", "-addext", `subjectAltName=${san.join(",")}`,
      "-keyout", keyPath, "-out", certPath,
    ], { stdio: ["ignore", "ignore", "pipe"] });
    chmodSync(keyPath, 0o600);
  }
  return loadTls(certPath, keyPath);
}

export function loadTls(certPath: string, keyPath: string): TlsFiles {
  const cert = readFileSync(certPath);
  const key = readFileSync(keyPath);
  return { certPath, keyPath, cert, key, fingerprint: new X509Certificate(cert).fingerprint256 };
}

/** Names every server certificate covers besides those asked for. */
const LOCAL_NAMES = ["localhost", "127.0.0.1", "::1"];
/** A server certificate closer than this to its end is issued again at start. */
const RENEW_BEFORE_MS = 30 * 86400_000;

/**
 * Loads `dir`/cert.pem and key.pem when `ca` issued them for every one of
 * `names` and they are not near their end; issues them again otherwise.
 */
export async function ensureServerCert(dir: string, ca: ControllerCa, names: string[]): Promise<TlsFiles> {
  const certPath = join(dir, "cert.pem");
  const keyPath = join(dir, "key.pem");
  const want = [...new Set([...LOCAL_NAMES, ...names])];
  if (existsSync(certPath) && existsSync(keyPath)) {
    const cur = new X509Certificate(readFileSync(certPath));
    const covers = want.every((n) => (isIP(n) ? cur.checkIP(n) : cur.checkHost(n, { wildcards: false, subject: "never" })) !== undefined);
    if (cur.checkIssued(new X509Certificate(ca.pem)) && covers && Date.parse(cur.validTo) - Date.now() > RENEW_BEFORE_MS) return loadTls(certPath, keyPath);
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const issued = await ca.issueServer(want);
  writePrivateFile(keyPath, issued.keyPem, true);
  chmodSync(keyPath, 0o600);
  writeFileSync(certPath, issued.pem, { mode: 0o644 });
  return loadTls(certPath, keyPath);
}
