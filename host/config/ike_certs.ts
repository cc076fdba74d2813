// A peer's `ike.auth` certificate files (docs/config.md "peers[].ike"): `cert`
// (PEM: ours first, then intermediates), `key` (PEM private key, the mode rule of
// key files) and `ca` (PEM: the CAs the peer's chain must lead to), read and
// checked once, errors and warnings at their field paths. What host/ike does
// with them: certs.ts, signature.ts.
import { X509Certificate, createPrivateKey, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { crlBlocks, normalSerial, parseCrl, type Crl } from "../ike/crl.ts";
import { readFileAndMode, secretFileMode } from "./keys.ts";
import type { IkeCertConfig } from "./model.ts";
import type { PathSegments, RawIssue } from "./schema_errors.ts";

export interface RawIkeCertAuth { cert?: string; key?: string; ca?: string; crl?: string; revoked_serials?: string[]; rsa_pss?: boolean }

interface Ctx { baseDir: string; errors: RawIssue[]; warnings: RawIssue[] }

const MAX_PEM_BYTES = 1 << 20;
const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
/** Key types host/ike signs with (RFC 7427 Appendix A, RFC 8420). */
const SIGNING_KEYS = new Set(["rsa", "rsa-pss", "ec", "ed25519", "ed448"]);

/** True if any certificate field is given: the block authenticates with certificates, not a PSK. */
export const usesCerts = (a: RawIkeCertAuth): boolean => a.cert !== undefined || a.key !== undefined || a.ca !== undefined;

function readText(path: string, at: PathSegments, what: string, ctx: Ctx, secret: boolean): string | undefined {
  try {
    const f = readFileAndMode(path, MAX_PEM_BYTES);
    if (secret) {
      const rule = secretFileMode(`${what} ${path}`, f.mode);
      if (rule.error) { ctx.errors.push({ at, message: rule.error }); return undefined; }
      if (rule.warning) ctx.warnings.push({ at, message: rule.warning });
    }
    return f.text;
  } catch (e) {
    ctx.errors.push({ at, message: `cannot read ${what} ${path} (${(e as NodeJS.ErrnoException).code ?? "error"})` });
    return undefined;
  }
}

function certsIn(text: string, path: string, at: PathSegments, ctx: Ctx): X509Certificate[] | undefined {
  const pems = text.match(PEM_CERT) ?? [];
  if (!pems.length) { ctx.errors.push({ at, message: `${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)` }); return undefined; }
  const out: X509Certificate[] = [];
  for (const [i, pem] of pems.entries()) {
    try {
      out.push(new X509Certificate(pem));
    } catch {
      ctx.errors.push({ at, message: `certificate ${i + 1} in ${path} is not a valid X.509 certificate` });
      return undefined;
    }
  }
  return out;
}

const oneLine = (dn: string) => dn.split("\n").join(", ");

/** Validity now: a certificate outside it will be refused by the peer (ours) or refuses every peer (a CA). */
function validityWarnings(certs: X509Certificate[], at: PathSegments, ctx: Ctx): void {
  const now = Date.now();
  for (const c of certs) {
    if (now > Date.parse(c.validTo)) ctx.warnings.push({ at, message: `certificate "${oneLine(c.subject)}" expired ${c.validTo}` });
    else if (now < Date.parse(c.validFrom)) ctx.warnings.push({ at, message: `certificate "${oneLine(c.subject)}" is not valid before ${c.validFrom}` });
  }
}

/**
 * Reads and checks `cert`, `key` and `ca` under `at` (the `auth` block): each must be
 * readable PEM, the key a signing key matching the first certificate. Undefined when
 * any of them is missing or bad (the errors say which).
 */
export function loadIkeCerts(a: RawIkeCertAuth, at: PathSegments, ctx: Ctx): IkeCertConfig | undefined {
  let missing = false;
  for (const f of ["cert", "key", "ca"] as const) {
    if (a[f] === undefined) { ctx.errors.push({ at: [...at, f], message: "is required with certificate authentication (cert, key and ca together)" }); missing = true; }
  }
  if (missing) return undefined;
  const files = { cert: resolve(ctx.baseDir, a.cert!), key: resolve(ctx.baseDir, a.key!), ca: resolve(ctx.baseDir, a.ca!) };
  const certText = readText(files.cert, [...at, "cert"], "certificate file", ctx, false);
  const chain = certText === undefined ? undefined : certsIn(certText, files.cert, [...at, "cert"], ctx);
  const caText = readText(files.ca, [...at, "ca"], "CA file", ctx, false);
  const cas = caText === undefined ? undefined : certsIn(caText, files.ca, [...at, "ca"], ctx);
  const keyText = readText(files.key, [...at, "key"], "private key file", ctx, true);
  let key: KeyObject | undefined;
  if (keyText !== undefined) {
    try {
      key = createPrivateKey(keyText);
    } catch {
      ctx.errors.push({ at: [...at, "key"], message: `${files.key} is not a PEM private key (PKCS#8, PKCS#1 or SEC1; encrypted keys are not read)` });
    }
  }
  if (key && !SIGNING_KEYS.has(key.asymmetricKeyType ?? "")) {
    ctx.errors.push({ at: [...at, "key"], message: `a ${key.asymmetricKeyType} key cannot sign IKE AUTH: use RSA, ECDSA or Ed25519` });
    key = undefined;
  }
  if (!chain || !cas || !key) return undefined;
  if (!chain[0].checkPrivateKey(key)) {
    ctx.errors.push({ at: [...at, "key"], message: `does not match the certificate "${oneLine(chain[0].subject)}" in ${files.cert}` });
    return undefined;
  }
  for (let i = 1; i < chain.length; i++) {
    if (!chain[i - 1].checkIssued(chain[i])) ctx.warnings.push({ at: [...at, "cert"], message: `certificate ${i + 1} in ${files.cert} did not issue certificate ${i}: the file should hold ours first, then its issuers in order` });
  }
  validityWarnings(chain, [...at, "cert"], ctx);
  validityWarnings(cas, [...at, "ca"], ctx);
  const revokedSerials = (a.revoked_serials ?? []).map(normalSerial);
  const crls = a.crl === undefined ? [] : loadCrls(resolve(ctx.baseDir, a.crl), cas, [...at, "crl"], ctx);
  if (!crls) return undefined;
  return { chain, key, cas, revokedSerials, crls, files, rsaPss: a.rsa_pss ?? false };
}

/** The CRLs in `path` (PEM "X509 CRL" blocks, or one DER), each signed by one of `cas`; a stale one is a warning. */
function loadCrls(path: string, cas: X509Certificate[], at: PathSegments, ctx: Ctx): Crl[] | undefined {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(readFileSync(path));
  } catch (e) {
    ctx.errors.push({ at, message: `cannot read CRL file ${path} (${(e as NodeJS.ErrnoException).code ?? "error"})` });
    return undefined;
  }
  const out: Crl[] = [];
  for (const [i, der] of crlBlocks(bytes).entries()) {
    const r = parseCrl(der, cas);
    if (!r.ok) { ctx.errors.push({ at, message: `CRL ${i + 1} in ${path}: ${r.reason}` }); return undefined; }
    if (r.crl.nextUpdate !== undefined && r.crl.nextUpdate < Date.now()) {
      ctx.warnings.push({ at, message: `CRL ${i + 1} in ${path} (by "${oneLine(r.crl.issuer.subject)}") was due to be replaced ${new Date(r.crl.nextUpdate).toISOString()}` });
    }
    out.push(r.crl);
  }
  return out;
}
