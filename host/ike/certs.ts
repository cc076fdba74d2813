// X.509 certificates for IKEv2 (RFC 7296 §3.6, §3.7, RFC 4945 the PKI profile):
// the CERT payloads we send, the CERTREQ hashes we ask with, the peer's chain
// checked against our trust anchors, and the peer's ID payload checked against
// its end-entity certificate. node:crypto does the signatures (X509Certificate
// `verify`); @peculiar/asn1-x509 reads what node does not expose (validity as
// dates, keyUsage, the subject's RDNs).
import { X509Certificate, createHash } from "node:crypto";
import { AsnConvert } from "@peculiar/asn1-schema";
import {
  AttributeTypeAndValue, AttributeValue, Certificate, KeyUsage, KeyUsageFlags, Name, RelativeDistinguishedName, id_ce_keyUsage,
} from "@peculiar/asn1-x509";
import { formatAddress } from "../config/addr.ts";
import type { IkeCertConfig } from "../config/model.ts";
import { IdType } from "./constants.ts";
import { normalSerial, revokedByCrl } from "./crl.ts";
import type { Identity } from "./types.ts";

/** CERT Encoding 4, "X.509 Certificate - Signature" (RFC 7296 §3.6): the DER of one certificate. */
export const CERT_X509_SIGNATURE = 4;
/** RFC 7296 §3.7: a CERTREQ's Certification Authority is a list of 20-byte SHA-1 hashes. */
const CA_HASH_BYTES = 20;
/** Longest chain we follow from the end-entity to a trust anchor (RFC 4945 leaves it to policy). */
const MAX_DEPTH = 8;

/** What signature authentication needs: our credentials and whom we trust. */
export interface CertAuth {
  /** Our end-entity certificate first, then intermediates toward the peer's trust anchor. */
  chain: X509Certificate[];
  /** The private key of chain[0] (RSA, EC P-256/P-384, Ed25519). */
  key: import("node:crypto").KeyObject;
  /** Trust anchors for the peer's chain. */
  cas: X509Certificate[];
  /** RSA keys sign with RSASSA-PSS instead of PKCS#1 v1.5 (RFC 7427 A.4). */
  rsaPss?: boolean;
  /** A revocation check (a CRL, a serial list): true refuses a certificate of the peer's chain. */
  isRevoked?: (cert: X509Certificate) => boolean;
  /** Wall-clock time for validity periods (ms since 1970); Date.now by default (the SA's clock may be a test's). */
  now?: () => number;
}

/** RFC 7296 §3.7: SHA-1 of the CA's DER SubjectPublicKeyInfo. */
export function caKeyHash(ca: X509Certificate): Uint8Array {
  return createHash("sha1").update(ca.publicKey.export({ type: "spki", format: "der" })).digest();
}

/** CERTREQ data for our trust anchors. */
export function certReqData(cas: readonly X509Certificate[]): Uint8Array {
  return Buffer.concat(cas.map(caKeyHash));
}

/** The 20-byte hashes of a received CERTREQ body; undefined if the length is not a multiple of 20. */
export function parseCertReq(data: Uint8Array): Uint8Array[] | undefined {
  if (data.length % CA_HASH_BYTES !== 0) return undefined;
  const out: Uint8Array[] = [];
  for (let i = 0; i < data.length; i += CA_HASH_BYTES) out.push(data.subarray(i, i + CA_HASH_BYTES));
  return out;
}

/**
 * The certificates to send (§3.6: "the first certificate provided MUST contain the
 * public key used to verify the AUTH field"). If the peer asked for a CA that issued
 * one of ours, the chain stops there (§3.7: send what leads to a requested CA);
 * otherwise it goes whole.
 */
export function chainToSend(auth: CertAuth, requested: readonly Uint8Array[]): X509Certificate[] {
  if (!requested.length) return auth.chain;
  const asked = new Set(requested.map((h) => Buffer.from(h).toString("hex")));
  const known = [...auth.chain, ...auth.cas];
  for (let i = 0; i < auth.chain.length; i++) {
    const issuer = known.find((c) => c !== auth.chain[i] && auth.chain[i].checkIssued(c) && asked.has(Buffer.from(caKeyHash(c)).toString("hex")));
    if (issuer) return auth.chain.slice(0, i + 1);
  }
  return auth.chain;
}

interface Parsed {
  cert: X509Certificate;
  notBefore: number;
  notAfter: number;
  keyUsage?: number;
}

function parse(der: Uint8Array): Parsed | undefined {
  try {
    const cert = new X509Certificate(der);
    const asn = AsnConvert.parse(der, Certificate);
    const v = asn.tbsCertificate.validity;
    const ku = asn.tbsCertificate.extensions?.find((e) => e.extnID === id_ce_keyUsage);
    return {
      cert,
      notBefore: v.notBefore.getTime().getTime(),
      notAfter: v.notAfter.getTime().getTime(),
      keyUsage: ku ? AsnConvert.parse(ku.extnValue, KeyUsage).toNumber() : undefined,
    };
  } catch {
    return undefined;
  }
}

const when = (ms: number) => new Date(ms).toISOString();

/** Validity, revocation, and the key usage `need` if the certificate restricts it (RFC 5280 §4.2.1.3). */
function usable(p: Parsed, now: number, need: number, what: string, auth: CertAuth): string | undefined {
  const name = `${what} "${p.cert.subject.replace(/\n/g, ", ")}"`;
  if (now < p.notBefore) return `${name} is not valid before ${when(p.notBefore)}`;
  if (now > p.notAfter) return `${name} expired ${when(p.notAfter)}`;
  if (p.keyUsage !== undefined && (p.keyUsage & need) === 0) return `${name} keyUsage does not allow ${need === KeyUsageFlags.keyCertSign ? "keyCertSign" : "digitalSignature"}`;
  if (auth.isRevoked?.(p.cert)) return `${name} (serial ${p.cert.serialNumber}) is revoked`;
  return undefined;
}

/**
 * Verifies the peer's chain: `ders[0]` its end-entity certificate, the rest
 * intermediates in any order. Walks issuer by issuer (each signature checked,
 * each issuer a CA by basicConstraints with keyCertSign if keyUsage is present,
 * each certificate within its validity at `now`) until a trust anchor signed
 * the last one. Returns the end-entity certificate, or a reason.
 */
export function verifyChain(ders: readonly Uint8Array[], auth: CertAuth, now: number): { ok: true; cert: X509Certificate } | { ok: false; reason: string } {
  if (!ders.length) return { ok: false, reason: "no CERT payload (X.509 signature, encoding 4)" };
  const parsed: Parsed[] = [];
  for (const [i, d] of ders.entries()) {
    const p = parse(d);
    if (!p) return { ok: false, reason: `CERT payload ${i + 1} is not an X.509 certificate` };
    parsed.push(p);
  }
  const ee = parsed[0];
  const bad = usable(ee, now, KeyUsageFlags.digitalSignature, "certificate", auth);
  if (bad) return { ok: false, reason: bad };
  let current = ee;
  const used = new Set<Parsed>([ee]);
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    const anchor = auth.cas.find((ca) => current.cert.checkIssued(ca) && current.cert.verify(ca.publicKey));
    if (anchor) {
      const a = parse(anchor.raw)!;
      if (now < a.notBefore || now > a.notAfter) return { ok: false, reason: `CA "${anchor.subject.replace(/\n/g, ", ")}" is outside its validity` };
      return { ok: true, cert: ee.cert };
    }
    const issuer = parsed.find((p) => !used.has(p) && current.cert.checkIssued(p.cert));
    if (!issuer) return { ok: false, reason: `no trusted CA issued "${current.cert.subject.replace(/\n/g, ", ")}" (issuer "${current.cert.issuer.replace(/\n/g, ", ")}")` };
    if (!current.cert.verify(issuer.cert.publicKey)) return { ok: false, reason: `the signature on "${current.cert.subject.replace(/\n/g, ", ")}" does not verify` };
    // RFC 5280 §4.2.1.9: only a CA certificate may issue certificates
    if (!issuer.cert.ca) return { ok: false, reason: `intermediate "${issuer.cert.subject.replace(/\n/g, ", ")}" is not a CA (basicConstraints)` };
    const why = usable(issuer, now, KeyUsageFlags.keyCertSign, "intermediate", auth);
    if (why) return { ok: false, reason: why };
    used.add(issuer);
    current = issuer;
  }
  return { ok: false, reason: `chain longer than ${MAX_DEPTH} certificates` };
}

// --- identities and names ----------------------------------------------------

/** The DN attribute names we read in config text, and their OIDs (RFC 4514 §3, plus strongSwan's E). */
const DN_ATTR: Record<string, string> = {
  CN: "2.5.4.3", SN: "2.5.4.4", SERIALNUMBER: "2.5.4.5", C: "2.5.4.6", L: "2.5.4.7", ST: "2.5.4.8", STREET: "2.5.4.9",
  O: "2.5.4.10", OU: "2.5.4.11", T: "2.5.4.12", TITLE: "2.5.4.12", DC: "0.9.2342.19200300.100.1.25", UID: "0.9.2342.19200300.100.1.1",
  E: "1.2.840.113549.1.9.1", EMAIL: "1.2.840.113549.1.9.1", EMAILADDRESS: "1.2.840.113549.1.9.1",
};
const PRINTABLE_ATTRS = new Set(["2.5.4.6", "2.5.4.5"]);
const IA5_ATTRS = new Set(["1.2.840.113549.1.9.1", "0.9.2342.19200300.100.1.25"]);

/** Splits at unescaped `sep`, keeping backslash escapes for the caller. */
function splitUnescaped(s: string, sep: string): string[] {
  const out: string[] = [];
  let cur = "";
  for (let i = 0; i < s.length; i++) {
    if (s[i] === "\\" && i + 1 < s.length) { cur += s[i] + s[i + 1]; i++; continue; }
    if (s[i] === sep) { out.push(cur); cur = ""; continue; }
    cur += s[i];
  }
  out.push(cur);
  return out;
}

/**
 * A DN as written in config, most significant first as strongSwan and OpenSSL print
 * it ("C=CH, O=wesp, CN=ce1"), to the DER of its Name (RFC 5280 §4.1.2.4): the
 * identification data of ID_DER_ASN1_DN (RFC 7296 §3.5). Throws RangeError naming
 * what it cannot read.
 */
export function dnToDer(text: string): Uint8Array {
  const rdns = splitUnescaped(text, ",").map((r) => r.trim()).filter((r) => r.length);
  if (!rdns.length) throw new RangeError("an empty DN");
  const name = new Name(rdns.map((rdn) => new RelativeDistinguishedName(splitUnescaped(rdn, "+").map((atv) => {
    const eq = atv.indexOf("=");
    if (eq < 1) throw new RangeError(`"${atv.trim()}" is not TYPE=value`);
    const key = atv.slice(0, eq).trim().toUpperCase();
    const oid = DN_ATTR[key] ?? (/^\d+(\.\d+)+$/.test(key) ? key : undefined);
    if (!oid) throw new RangeError(`unknown DN attribute "${atv.slice(0, eq).trim()}"`);
    const value = atv.slice(eq + 1).trim().replace(/\\(.)/g, "$1");
    if (!value) throw new RangeError(`empty value for ${key}`);
    const v = PRINTABLE_ATTRS.has(oid) ? { printableString: value } : IA5_ATTRS.has(oid) ? { ia5String: value } : { utf8String: value };
    return new AttributeTypeAndValue({ type: oid, value: new AttributeValue(v) });
  }))));
  return new Uint8Array(AsnConvert.serialize(name));
}

/** A DN's RDNs as comparable text (types by OID, values case-folded): string types may differ between encoders. */
function rdnKey(der: Uint8Array): string | undefined {
  try {
    const n = AsnConvert.parse(der, Name);
    return n.map((rdn) => rdn.map((a) => `${a.type}=${a.value.toString().trim().toLowerCase()}`).sort().join("+")).join(",");
  } catch {
    return undefined;
  }
}

/** True if two DER DNs name the same subject (bytes equal, or the same RDNs, string types aside). */
export function sameDn(a: Uint8Array, b: Uint8Array): boolean {
  if (Buffer.from(a).equals(b)) return true;
  const ka = rdnKey(a);
  return ka !== undefined && ka === rdnKey(b);
}

/** The DER of a certificate's subject Name. */
export function subjectDer(cert: X509Certificate): Uint8Array {
  const asn = AsnConvert.parse(cert.raw, Certificate);
  return new Uint8Array(AsnConvert.serialize(asn.tbsCertificate.subject));
}

/**
 * RFC 4945 §3.1 / RFC 7296 §3.5: the ID payload must be in the certificate: the
 * subject for ID_DER_ASN1_DN, a subjectAltName (dNSName, rfc822Name, iPAddress)
 * for FQDN, RFC822 and IP identities. Returns a reason when it is not.
 */
export function idInCert(id: Identity, cert: X509Certificate): string | undefined {
  const text = new TextDecoder().decode(id.data);
  const opts = { subject: "never" as const, wildcards: false };
  switch (id.idType) {
    case IdType.DER_ASN1_DN:
      return sameDn(id.data, subjectDer(cert)) ? undefined : `ID (DN) is not the certificate's subject "${cert.subject.replace(/\n/g, ", ")}"`;
    case IdType.FQDN:
      return cert.checkHost(text, opts) ? undefined : `ID FQDN "${text}" is not a dNSName of the certificate`;
    case IdType.RFC822_ADDR:
      return cert.checkEmail(text, { subject: "never" }) ? undefined : `ID RFC822 "${text}" is not an rfc822Name of the certificate`;
    case IdType.IPV4_ADDR:
    case IdType.IPV6_ADDR:
      // payloads.ts holds ID_IPV4_ADDR to 4 bytes and ID_IPV6_ADDR to 16 (§3.5)
      return cert.checkIP(formatAddress(id.data)) ? undefined : `ID address ${formatAddress(id.data)} is not an iPAddress of the certificate`;
    default:
      return `ID type ${id.idType} cannot be matched against a certificate`;
  }
}

/** A config's certificate files (host/config/ike_certs.ts) as an SA takes them; revoked serials and CRLs become `isRevoked`. */
export function certAuthOf(c: IkeCertConfig): CertAuth {
  const revoked = new Set(c.revokedSerials);
  const crls = c.crls ?? [];
  return {
    chain: c.chain, key: c.key, cas: c.cas, rsaPss: c.rsaPss,
    ...(revoked.size || crls.length ? { isRevoked: (x: X509Certificate) => revoked.has(normalSerial(x.serialNumber)) || revokedByCrl(crls, x) } : {}),
  };
}

/** Our DN identity, when it names our certificate's subject, as the certificate's own DER (the string types its CA chose). */
export function ownCertIdentity(cert: X509Certificate | undefined, id: Identity): Identity {
  if (!cert || id.idType !== IdType.DER_ASN1_DN) return id;
  const subject = subjectDer(cert);
  return sameDn(id.data, subject) ? { idType: id.idType, data: subject } : id;
}
