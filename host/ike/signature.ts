// Digital Signature authentication, RFC 7427 (AUTH method 14). The AUTH data is
//
//   ┌ ASN.1 Length (1) ┬ AlgorithmIdentifier (DER, ASN.1 Length bytes) ┬ Signature … ┐
//
// over the same InitiatorSignedOctets / ResponderSignedOctets as RFC 7296 §2.15
// (auth.ts `signedOctets`), signed with the private key of the end-entity
// certificate. The hashes each side accepts are announced in IKE_SA_INIT with
// N(SIGNATURE_HASH_ALGORITHMS) (RFC 7427 §4): we send SHA2-256/384/512 and
// Identity (RFC 8420, for Ed25519), and refuse SHA-1 on receipt.
//
// Signatures: RSA PKCS#1 v1.5 (RFC 7427 A.1), RSASSA-PSS (A.4, the RFC 4055
// parameters parsed and honoured), ECDSA with DER Ecdsa-Sig-Value (A.3) and
// Ed25519/Ed448 (RFC 8420).
import { constants, sign, verify, type KeyObject } from "node:crypto";
import { AsnConvert } from "@peculiar/asn1-schema";
import { AlgorithmIdentifier } from "@peculiar/asn1-x509";
import { RsaSaPssParams, id_RSASSA_PSS, id_mgf1 } from "@peculiar/asn1-rsa";
import { concatBytes } from "./result.ts";

/** IANA "IKEv2 Hash Algorithms" (RFC 7427 §7). */
export const SigHash = { SHA1: 1, SHA2_256: 2, SHA2_384: 3, SHA2_512: 4, IDENTITY: 5 } as const;

/** What we announce in SIGNATURE_HASH_ALGORITHMS and accept in a peer's AUTH. */
export const OUR_SIG_HASHES: readonly number[] = [SigHash.SHA2_256, SigHash.SHA2_384, SigHash.SHA2_512, SigHash.IDENTITY];

const HASH_OID: Record<string, string> = {
  "2.16.840.1.101.3.4.2.1": "sha256",
  "2.16.840.1.101.3.4.2.2": "sha384",
  "2.16.840.1.101.3.4.2.3": "sha512",
};
const OID_OF_HASH: Record<string, string> = Object.fromEntries(Object.entries(HASH_OID).map(([o, h]) => [h, o]));
const HASH_ID: Record<string, number> = { sha256: SigHash.SHA2_256, sha384: SigHash.SHA2_384, sha512: SigHash.SHA2_512 };
const HASH_BYTES: Record<string, number> = { sha256: 32, sha384: 48, sha512: 64 };

/** The signature algorithms of RFC 7427 Appendix A we read, by OID. */
const SIG_OID: Record<string, { key: "rsa" | "ec" | "ed25519" | "ed448"; hash?: string }> = {
  "1.2.840.113549.1.1.11": { key: "rsa", hash: "sha256" },
  "1.2.840.113549.1.1.12": { key: "rsa", hash: "sha384" },
  "1.2.840.113549.1.1.13": { key: "rsa", hash: "sha512" },
  "1.2.840.10045.4.3.2": { key: "ec", hash: "sha256" },
  "1.2.840.10045.4.3.3": { key: "ec", hash: "sha384" },
  "1.2.840.10045.4.3.4": { key: "ec", hash: "sha512" },
  "1.3.101.112": { key: "ed25519" },
  "1.3.101.113": { key: "ed448" },
};
const OID_OF_SIG: Record<string, string> = Object.fromEntries(Object.entries(SIG_OID).map(([o, s]) => [`${s.key}-${s.hash ?? ""}`, o]));

/** The hash for our key: the curve's own for ECDSA (P-384 → SHA-384), else SHA-256, if the peer accepts it. */
function pickHash(key: KeyObject, peer: readonly number[]): string {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  const want = curve === "secp384r1" ? ["sha384", "sha512", "sha256"] : curve === "secp521r1" ? ["sha512", "sha384", "sha256"] : ["sha256", "sha384", "sha512"];
  // RFC 7427 §4: without the notify the peer said nothing; SHA-256 is what every implementation
  // takes. A peer that announced none of ours gets our first choice and refuses it itself.
  return want.find((h) => peer.includes(HASH_ID[h])) ?? want[0];
}

function algId(oid: string, parameters: ArrayBuffer | null | undefined): Uint8Array {
  return new Uint8Array(AsnConvert.serialize(new AlgorithmIdentifier({ algorithm: oid, ...(parameters === undefined ? {} : { parameters }) })));
}

function pssParams(hash: string): RsaSaPssParams {
  const h = new AlgorithmIdentifier({ algorithm: OID_OF_HASH[hash], parameters: null });
  return new RsaSaPssParams({
    hashAlgorithm: h,
    maskGenAlgorithm: new AlgorithmIdentifier({ algorithm: id_mgf1, parameters: AsnConvert.serialize(h) }),
    saltLength: HASH_BYTES[hash],
  });
}

/**
 * Our AUTH data for method 14: signs `octets` with `key` (RSA, EC, Ed25519, Ed448).
 * `peerHashes` from the peer's SIGNATURE_HASH_ALGORITHMS (what it accepts is its
 * business: we sign with our best choice and let it refuse); `pss` picks RSASSA-PSS
 * for RSA keys. Throws RangeError only for a key type that cannot sign (a config error).
 */
export function signAuth(key: KeyObject, octets: Uint8Array, peerHashes: readonly number[], pss = false): Uint8Array {
  const type = key.asymmetricKeyType;
  if (type === "ed25519" || type === "ed448") {
    // RFC 8420 §2: EdDSA signs the octets themselves, the "Identity" hash
    return withAlgId(algId(OID_OF_SIG[`${type}-`], undefined), sign(null, octets, key));
  }
  const hash = pickHash(key, peerHashes);
  if (type === "rsa" && pss) {
    const sig = sign(hash, octets, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: HASH_BYTES[hash] });
    return withAlgId(algId(id_RSASSA_PSS, AsnConvert.serialize(pssParams(hash))), sig);
  }
  if (type !== "rsa" && type !== "ec") throw new RangeError(`key type ${type} cannot sign IKE AUTH`);
  return withAlgId(algId(OID_OF_SIG[`${type}-${hash}`], type === "rsa" ? null : undefined), sign(hash, octets, key));
}

function withAlgId(id: Uint8Array, sig: Uint8Array): Uint8Array {
  return concatBytes(Uint8Array.of(id.length), id, sig);
}

interface ParsedSig {
  key: "rsa" | "ec" | "ed25519" | "ed448" | "rsa-pss";
  hash?: string;
  saltLength?: number;
}

/** RFC 4055 §2.1 / RFC 5758 §3.2: hash and RSA parameters are NULL or absent, ECDSA's and EdDSA's absent; nothing else. */
const nullOrAbsent = (p: ArrayBuffer | null | undefined) => p === null || p === undefined;

/** Reads the AlgorithmIdentifier of RFC 7427 §3; a reason when it is not one we accept. */
function parseAlgId(der: Uint8Array): ParsedSig | string {
  let a: AlgorithmIdentifier;
  try {
    a = AsnConvert.parse(der, AlgorithmIdentifier);
  } catch {
    return "AUTH AlgorithmIdentifier is not valid DER";
  }
  const known = SIG_OID[a.algorithm];
  if (known) {
    const ok = known.key === "rsa" ? nullOrAbsent(a.parameters) : a.parameters === undefined;
    return ok ? { ...known } : `signature algorithm ${a.algorithm} with parameters it does not take`;
  }
  if (a.algorithm !== id_RSASSA_PSS) return `signature algorithm ${a.algorithm} is not supported`;
  if (!a.parameters) return "RSASSA-PSS without parameters (SHA-1) is not accepted";
  let p: RsaSaPssParams;
  try {
    p = AsnConvert.parse(a.parameters, RsaSaPssParams);
  } catch {
    return "RSASSA-PSS parameters are not valid DER";
  }
  const hash = HASH_OID[p.hashAlgorithm.algorithm];
  if (!hash || !nullOrAbsent(p.hashAlgorithm.parameters)) return `RSASSA-PSS hash ${p.hashAlgorithm.algorithm} is not accepted`;
  // MGF1 with the same hash is all node:crypto (OpenSSL's default) does
  let mgfHash: string | undefined;
  try {
    const inner = p.maskGenAlgorithm.algorithm === id_mgf1 && p.maskGenAlgorithm.parameters
      ? AsnConvert.parse(p.maskGenAlgorithm.parameters, AlgorithmIdentifier) : undefined;
    mgfHash = inner && nullOrAbsent(inner.parameters) ? HASH_OID[inner.algorithm] : undefined;
  } catch {
    mgfHash = undefined;
  }
  if (mgfHash !== hash) return "RSASSA-PSS with an MGF1 hash other than the message hash";
  if (p.saltLength > 1024 || p.trailerField !== 1) return `RSASSA-PSS salt length ${p.saltLength}, trailer field ${p.trailerField}`;
  return { key: "rsa-pss", hash, saltLength: p.saltLength };
}

/**
 * Verifies the peer's method-14 AUTH `data` over `octets` with the public key of its
 * end-entity certificate. Returns a reason when it does not hold.
 */
export function verifyAuth(pub: KeyObject, data: Uint8Array, octets: Uint8Array): string | undefined {
  if (data.length < 1 || data[0] < 2 || data.length < 1 + data[0] + 1) return "AUTH too short for an AlgorithmIdentifier and a signature";
  const alg = parseAlgId(data.subarray(1, 1 + data[0]));
  if (typeof alg === "string") return alg;
  const sig = data.subarray(1 + data[0]);
  const type = pub.asymmetricKeyType;
  const keyFits = alg.key === type || (alg.key === "rsa-pss" && (type === "rsa" || type === "rsa-pss"));
  if (!keyFits) return `signature algorithm for ${alg.key} keys, the certificate holds a ${type} key`;
  // RFC 7427 §4: the hash must be one we announced (no SHA-1)
  if (alg.hash && !OUR_SIG_HASHES.includes(HASH_ID[alg.hash])) return `hash ${alg.hash} was not announced`;
  let good = false;
  try {
    if (alg.key === "ed25519" || alg.key === "ed448") good = verify(null, octets, pub, sig);
    else if (alg.key === "rsa-pss") good = verify(alg.hash!, octets, { key: pub, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: alg.saltLength }, sig);
    else good = verify(alg.hash!, octets, pub, sig);
  } catch {
    good = false; // a malformed signature (e.g. DER that is not an Ecdsa-Sig-Value) is a bad one
  }
  return good ? undefined : `${alg.key}${alg.hash ? `/${alg.hash}` : ""} signature does not verify`;
}

/** The SIGNATURE_HASH_ALGORITHMS notify data: 2-byte hash numbers (RFC 7427 §4). */
export function sigHashData(hashes: readonly number[] = OUR_SIG_HASHES): Uint8Array {
  const out = new Uint8Array(hashes.length * 2);
  hashes.forEach((h, i) => { out[2 * i] = h >>> 8; out[2 * i + 1] = h; });
  return out;
}

/** The peer's hashes from its notify data; an odd trailing byte is ignored. */
export function parseSigHashes(data: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i + 1 < data.length; i += 2) out.push((data[i] << 8) | data[i + 1]);
  return out;
}
