// Authentication with a pre-shared key, RFC 7296 §2.15:
//
//   InitiatorSignedOctets = RealMessage1 | NonceRData | MACedIDForI
//   MACedIDForI           = prf(SK_pi, RestOfInitIDPayload)
//   ResponderSignedOctets = RealMessage2 | NonceIData | MACedIDForR
//   MACedIDForR           = prf(SK_pr, RestOfRespIDPayload)
//   AUTH = prf( prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>)
//
// RealMessage1/2 are the IKE_SA_INIT request/response exactly as sent (bytes,
// not a re-encoding); RestOf…IDPayload is the ID payload after its generic
// header: ID Type, RESERVED, Identification Data.
import { timingSafeEqual } from "node:crypto";
import type { PrfAlg } from "./algorithms.ts";
import { encodeBody, type IdPayload } from "./payloads.ts";
import { prf } from "./prf.ts";
import { concatBytes } from "./result.ts";

/** §2.15: "The pad string is ... 17 ASCII characters without null termination." */
const KEY_PAD = new TextEncoder().encode("Key Pad for IKEv2");

/** The octets AUTH signs for one side (§2.15). */
export function signedOctets(alg: PrfAlg, realMessage: Uint8Array, peerNonce: Uint8Array, skP: Uint8Array, id: IdPayload): Uint8Array {
  return concatBytes(realMessage, peerNonce, prf(alg, skP, encodeBody(id)));
}

/** AUTH for the shared-key method (Auth Method 2). */
export function pskAuth(alg: PrfAlg, psk: Uint8Array, octets: Uint8Array): Uint8Array {
  return prf(alg, prf(alg, psk, KEY_PAD), octets);
}

/** Constant-time check of a received AUTH against the expected value. */
export function authEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
