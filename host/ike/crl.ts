// Certificate revocation lists (RFC 5280 §5) for the peer's chain: a CRL file is
// read once (at config load), its signature checked against the CA that issued
// it, and its revoked serial numbers kept; `isRevoked` (certs.ts CertAuth) then
// refuses a certificate of that issuer with one of them. No fetching (no CRL
// distribution points, no OCSP), no delta CRLs, no reason codes.
import { X509Certificate, verify as verifySig } from "node:crypto";
import { AsnConvert } from "@peculiar/asn1-schema";
import { CertificateList } from "@peculiar/asn1-x509";
import { sameDn, subjectDer } from "./certs.ts";

export interface Crl {
  /** The CA that signed it (one of the configured `ca` certificates). */
  issuer: X509Certificate;
  /**
   * Revoked serial numbers, sorted: hex, upper case, no leading zeros (as `normalSerial`).
   * An array, not a Set, so that a config's JSON fingerprint (runtime.ts) sees a changed CRL.
   */
  serials: string[];
  /** When the CRL says the next one is due (ms), if it says. */
  nextUpdate?: number;
}

/** Signature algorithms a CRL may be signed with (RFC 5280 §4.1.1.2 via RFC 4055, 5758, 8410). */
const CRL_SIG: Record<string, string | null> = {
  "1.2.840.113549.1.1.11": "sha256", "1.2.840.113549.1.1.12": "sha384", "1.2.840.113549.1.1.13": "sha512",
  "1.2.840.10045.4.3.2": "sha256", "1.2.840.10045.4.3.3": "sha384", "1.2.840.10045.4.3.4": "sha512",
  "1.3.101.112": null, "1.3.101.113": null,
};

/** A serial number as compared here: hex, upper case, without colons or leading zeros. */
export const normalSerial = (s: string): string => s.replace(/:/g, "").toUpperCase().replace(/^0+(?=.)/, "");

/** The bytes of the first element inside the DER SEQUENCE `der` (the signed tbsCertList). */
function firstElement(der: Uint8Array): Uint8Array | undefined {
  const len = (o: number): [number, number] | undefined => {
    const b = der[o];
    if (b === undefined) return undefined;
    if (b < 0x80) return [b, 1];
    const n = b & 0x7f;
    if (n < 1 || n > 4 || o + 1 + n > der.length) return undefined;
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 256 + der[o + 1 + i];
    return [v, 1 + n];
  };
  if (der[0] !== 0x30) return undefined;
  const outer = len(1);
  if (!outer) return undefined;
  const start = 1 + outer[1];
  if (der[start] !== 0x30) return undefined;
  const inner = len(start + 1);
  if (!inner) return undefined;
  const end = start + 1 + inner[1] + inner[0];
  return end <= der.length ? der.subarray(start, end) : undefined;
}

/** PEM ("X509 CRL", or "CRL") or DER bytes to DER blocks. */
export function crlBlocks(bytes: Uint8Array): Uint8Array[] {
  const text = Buffer.from(bytes).toString("latin1");
  const pems = text.match(/-----BEGIN (?:X509 )?CRL-----[\s\S]+?-----END (?:X509 )?CRL-----/g);
  if (!pems) return [bytes];
  return pems.map((p) => new Uint8Array(Buffer.from(p.replace(/-----[A-Z0-9 ]+-----/g, "").replace(/\s+/g, ""), "base64")));
}

/** Parses one DER CRL and checks it was signed by one of `cas`; a reason when not. */
export function parseCrl(der: Uint8Array, cas: readonly X509Certificate[]): { ok: true; crl: Crl } | { ok: false; reason: string } {
  let list: CertificateList;
  try {
    list = AsnConvert.parse(der, CertificateList);
  } catch {
    return { ok: false, reason: "not a DER or PEM X.509 CRL" };
  }
  // The reader is lenient (BER), but turning what it read back into DER can still throw on a
  // hostile value (a string type holding characters it may not): a refusal, never an exception.
  try {
    return checkCrl(der, list, cas);
  } catch (e) {
    return { ok: false, reason: `not a well-formed X.509 CRL (${(e as Error).message})` };
  }
}

function checkCrl(der: Uint8Array, list: CertificateList, cas: readonly X509Certificate[]): { ok: true; crl: Crl } | { ok: false; reason: string } {
  const tbs = firstElement(der);
  const alg = list.signatureAlgorithm.algorithm;
  if (!tbs || !(alg in CRL_SIG)) return { ok: false, reason: `CRL signature algorithm ${alg} is not supported` };
  const issuerDer = new Uint8Array(AsnConvert.serialize(list.tbsCertList.issuer));
  const sig = new Uint8Array(list.signature);
  const issuer = cas.find((ca) => {
    if (!sameDn(issuerDer, subjectDer(ca))) return false;
    try {
      return verifySig(CRL_SIG[alg], tbs, ca.publicKey, sig);
    } catch {
      return false;
    }
  });
  if (!issuer) return { ok: false, reason: "CRL is not signed by any of the ca certificates" };
  const serials = [...new Set((list.tbsCertList.revokedCertificates ?? []).map((r) => normalSerial(Buffer.from(r.userCertificate).toString("hex"))))].sort();
  const next = list.tbsCertList.nextUpdate?.getTime().getTime();
  return { ok: true, crl: { issuer, serials, ...(next !== undefined ? { nextUpdate: next } : {}) } };
}

/** True if `cert` was issued by a CRL's issuer and is on its list. */
export function revokedByCrl(crls: readonly Crl[], cert: X509Certificate): boolean {
  const serial = normalSerial(cert.serialNumber);
  return crls.some((c) => c.serials.includes(serial) && cert.checkIssued(c.issuer) && cert.verify(c.issuer.publicKey));
}
