// Zero-touch enrolment of a CE (draft-ietf-l3vpn-ce-based-02 §3.2; issue 8,
// item 2). The CE holds the controller's URL, the fingerprint of its CA
// (given out of band) and a one-time token. It:
//   1. fetches the CA certificate and refuses it unless its SHA-256 matches
//      the pinned fingerprint; from then on TLS trusts that CA alone, so the
//      token is only ever sent to a server the CA vouches for;
//   2. makes an ECDSA P-256 key pair here — the private key never leaves the
//      CE — and a CSR for its site identity (`site@vpn`, learnt from the token
//      file, or from a first refusal that names it);
//   3. posts { token, csr } and receives its certificate, which it keeps with
//      the key (0600) in its state directory (state.ts).
import { readFileSync } from "node:fs";
import { fingerprintOf, keyPairPem, makeCsr, newKeyPair, normaliseFingerprint, siteIdentity } from "../util/pki.ts";
import { CeClient, ControllerError } from "./ce_client.ts";
import type { Enrolment } from "./state.ts";

/** What a token file holds (`wesp ctl token … --out FILE`), or a bare token. */
export interface TokenFile {
  token: string;
  url?: string;
  caFingerprint?: string;
  vpn?: string;
  site?: string;
}

/** Reads a token file: the JSON `wesp ctl token --out` writes, or one line holding the token. */
export function readTokenFile(path: string): TokenFile {
  const text = readFileSync(path, "utf8").trim();
  if (text.startsWith("{")) {
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new Error(`${path}: not valid JSON`);
    }
    if (typeof j.token !== "string") throw new Error(`${path}: no "token" string`);
    const str = (k: string) => (typeof j[k] === "string" ? (j[k] as string) : undefined);
    return { token: j.token, url: str("url"), caFingerprint: str("caFingerprint"), vpn: str("vpn"), site: str("site") };
  }
  if (!/^[\x21-\x7e]{1,256}$/.test(text)) throw new Error(`${path}: expected one token (printable, at most 256 characters) or JSON`);
  return { token: text };
}

/** The controller's CA, accepted only when its fingerprint is the pinned one. */
export async function fetchPinnedCa(url: string, pin: string): Promise<string> {
  const want = normaliseFingerprint(pin);
  if (!/^[0-9a-f]{64}$/.test(want)) throw new Error("the CA fingerprint must be a SHA-256: 64 hex digits (colons allowed)");
  const r = await new CeClient(url, {}).call<{ certificate?: unknown }>("GET", "/v1/ca");
  if (typeof r?.certificate !== "string") throw new ControllerError(0, "bad-response", "GET /v1/ca: no certificate in the answer");
  let got: string;
  try {
    got = fingerprintOf(r.certificate);
  } catch {
    throw new ControllerError(0, "bad-response", "GET /v1/ca: the certificate does not parse");
  }
  if (got !== want) throw new ControllerError(0, "ca-mismatch", `the controller's CA has fingerprint ${got}, not the pinned ${want}: refusing to talk to it`);
  return r.certificate;
}

interface EnrolAnswer {
  certificate: string;
  ca: string;
  vpn: string;
  site: string;
  identity: string;
}

/**
 * Enrols with `token` at `url`, pinning the CA by `caFingerprint`. `vpn` and
 * `site` name the identity the CSR asks for (the token file says them).
 */
export async function enrol(url: string, caFingerprint: string, t: TokenFile): Promise<Enrolment> {
  if (!t.vpn || !t.site) throw new Error("the token file does not name its VPN and site (write it with 'wesp ctl token VPN SITE --out FILE')");
  const ca = await fetchPinnedCa(url, caFingerprint);
  const keys = await newKeyPair();
  const identity = siteIdentity(t.vpn, t.site);
  const csr = await makeCsr(identity, keys);
  const r = await new CeClient(url, { ca }).call<EnrolAnswer>("POST", "/v1/enrol", { token: t.token, csr });
  if (typeof r?.certificate !== "string" || r.identity !== identity) {
    throw new ControllerError(0, "bad-response", "the enrolment answer carries no certificate for our identity");
  }
  return { url, vpn: r.vpn, site: r.site, identity, caPem: ca, certPem: r.certificate, keyPem: await keyPairPem(keys) };
}

/** A new key and certificate for an enrolled CE (renewal at half-life), over mTLS with the current one. */
export async function renew(e: Enrolment): Promise<Enrolment> {
  const keys = await newKeyPair();
  const csr = await makeCsr(e.identity, keys);
  const r = await new CeClient(e.url, { ca: e.caPem, cert: e.certPem, key: e.keyPem }).call<{ certificate?: unknown }>("POST", "/v1/ce/certificate", { csr });
  if (typeof r?.certificate !== "string") throw new ControllerError(0, "bad-response", "the renewal answer carries no certificate");
  return { ...e, certPem: r.certificate, keyPem: await keyPairPem(keys) };
}
