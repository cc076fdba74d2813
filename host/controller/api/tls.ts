// The controller's TLS certificate until it is a CA of its own (issue 8,
// item 2): a self-signed ECDSA P-256 certificate made once with the `openssl`
// command, valid for localhost and 127.0.0.1 (plus the names asked for).
// Clients trust it by holding the certificate file itself (`wesp ctl --ca`).
import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

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
