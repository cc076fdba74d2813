// Proposals (RFC 7296 §2.7, §3.3): what we offer or accept, written the way
// strongSwan's swanctl.conf writes them ("aes128gcm16-prfsha256-ecp256",
// "aes256-sha256-modp2048", "chacha20poly1305"), turned into SA payload
// proposals, and the choice of one of them.
//
// The responder "MUST choose a single suite" (§2.7) and answers with exactly one
// proposal holding one transform of each type (§3.3.6). Like strongSwan's
// default, the responder's own order of preference decides among what both
// sides allow. The initiator checks the answer the same way, against what it
// offered: a response naming anything it did not offer is refused.
import { Attribute, DhGroup, Encr, Esn, Integ, Prf, Protocol, TransformType } from "./constants.ts";
import { encrAlg, espSuite, integAlg, prfAlg, type EncrAlg, type IntegAlg, type PrfAlg } from "./algorithms.ts";
import { keyLength, type Proposal, type Transform } from "./sa_payload.ts";
import type { Suite } from "../config/model.ts";

/** One proposal as configured: for each transform type, the acceptable values in order of preference. */
export interface ProposalSpec {
  protocol: number;
  encr: { id: number; keyBits?: number }[];
  integ: number[];
  prf: number[];
  dh: number[];
  esn: number[];
}

const ENCR_WORDS: Record<string, { id: number; keyBits?: number }> = {
  aes128: { id: Encr.AES_CBC, keyBits: 128 },
  aes192: { id: Encr.AES_CBC, keyBits: 192 },
  aes256: { id: Encr.AES_CBC, keyBits: 256 },
  aes128gcm16: { id: Encr.AES_GCM_16, keyBits: 128 },
  aes192gcm16: { id: Encr.AES_GCM_16, keyBits: 192 },
  aes256gcm16: { id: Encr.AES_GCM_16, keyBits: 256 },
  chacha20poly1305: { id: Encr.CHACHA20_POLY1305 },
};
const INTEG_WORDS: Record<string, number> = { sha256: Integ.HMAC_SHA2_256_128, sha384: Integ.HMAC_SHA2_384_192, sha512: Integ.HMAC_SHA2_512_256 };
const PRF_WORDS: Record<string, number> = { prfsha256: Prf.HMAC_SHA2_256, prfsha384: Prf.HMAC_SHA2_384, prfsha512: Prf.HMAC_SHA2_512 };
/** strongSwan uses the integrity algorithm's hash as PRF when none is named. */
const PRF_OF_INTEG: Record<number, number> = { [Integ.HMAC_SHA2_256_128]: Prf.HMAC_SHA2_256, [Integ.HMAC_SHA2_384_192]: Prf.HMAC_SHA2_384, [Integ.HMAC_SHA2_512_256]: Prf.HMAC_SHA2_512 };
const DH_WORDS: Record<string, number> = { modp2048: DhGroup.MODP_2048, ecp256: DhGroup.ECP_256, x25519: DhGroup.CURVE25519, curve25519: DhGroup.CURVE25519 };

/**
 * Parses a proposal string ("-"-separated keywords) for IKE or ESP; returns the
 * spec or a message naming the first problem.
 */
export function parseProposal(text: string, protocol: "ike" | "esp"): { ok: true; spec: ProposalSpec } | { ok: false; message: string } {
  const spec: ProposalSpec = { protocol: protocol === "ike" ? Protocol.IKE : Protocol.ESP, encr: [], integ: [], prf: [], dh: [], esn: [] };
  for (const w of text.toLowerCase().split("-")) {
    if (ENCR_WORDS[w]) spec.encr.push(ENCR_WORDS[w]);
    else if (INTEG_WORDS[w] !== undefined) spec.integ.push(INTEG_WORDS[w]);
    else if (PRF_WORDS[w] !== undefined && protocol === "ike") spec.prf.push(PRF_WORDS[w]);
    else if (DH_WORDS[w] !== undefined) spec.dh.push(DH_WORDS[w]);
    else if ((w === "esn" || w === "noesn") && protocol === "esp") spec.esn.push(w === "esn" ? Esn.YES : Esn.NO);
    else return { ok: false, message: `"${w}" in "${text}" is not a known ${protocol.toUpperCase()} algorithm keyword` };
  }
  if (spec.encr.length === 0) return { ok: false, message: `"${text}" names no encryption algorithm` };
  const aead = spec.encr.map((e) => encrAlg(e.id, e.keyBits)!.aead);
  if (aead.some((a) => a) && spec.integ.length) return { ok: false, message: `"${text}" mixes an AEAD with an integrity algorithm` };
  if (aead.some((a) => !a) && spec.integ.length === 0) return { ok: false, message: `"${text}" needs an integrity algorithm for its non-AEAD cipher` };
  if (protocol === "ike") {
    if (spec.prf.length === 0) spec.prf = spec.integ.map((i) => PRF_OF_INTEG[i]);
    if (spec.prf.length === 0) return { ok: false, message: `"${text}" names no PRF (e.g. prfsha256)` };
    if (spec.dh.length === 0) return { ok: false, message: `"${text}" names no Diffie-Hellman group` };
  } else if (spec.esn.length === 0) {
    spec.esn = [Esn.NO];
  }
  return { ok: true, spec };
}

/** The SA payload proposals for `specs`, numbered from 1 (§3.3.1), each with `spi`. */
export function toProposals(specs: readonly ProposalSpec[], spi: Uint8Array): Proposal[] {
  return specs.map((s, i) => ({ num: i + 1, protocol: s.protocol, spi, transforms: specTransforms(s) }));
}

function specTransforms(s: ProposalSpec): Transform[] {
  const t = (type: number, id: number, keyBits?: number): Transform => ({
    type, id, attributes: keyBits === undefined ? [] : [{ type: Attribute.KEY_LENGTH, value: keyBits }],
  });
  return [
    ...s.encr.map((e) => t(TransformType.ENCR, e.id, e.keyBits)),
    ...s.prf.map((p) => t(TransformType.PRF, p)),
    ...s.integ.map((i) => t(TransformType.INTEG, i)),
    ...s.dh.map((d) => t(TransformType.DH, d)),
    ...s.esn.map((e) => t(TransformType.ESN, e)),
  ];
}

/** What a negotiation settled on. */
export interface Chosen {
  /** Number of the proposal taken (echoed in the response, §3.3.6). */
  num: number;
  protocol: number;
  /** The proposal's SPI (the peer's, for ESP: what we send with). */
  spi: Uint8Array;
  encr: EncrAlg;
  integ?: IntegAlg;
  prf?: PrfAlg;
  dh?: number;
  esn: boolean;
  /** For ESP: the core's suite. */
  suite?: Suite;
  /** The single proposal to put in a response (one transform per type). */
  proposal: Proposal;
}

/** Can we use this transform? Unknown attributes make it unusable (§3.3.6). */
function usable(t: Transform): boolean {
  return t.attributes.every((a) => a.type === Attribute.KEY_LENGTH);
}

/**
 * What to do with Diffie-Hellman transforms: IKE SAs need one ("required");
 * CREATE_CHILD_SA has one exactly when both sides want PFS ("optional"); IKE_AUTH has no KE
 * payloads, so its CHILD_SA proposals' DH transforms are left out of the choice
 * and of the answer ("ignore", as strongSwan does: §1.2 creates that CHILD_SA
 * from the IKE_SA_INIT keying material alone).
 */
export type DhMode = "required" | "optional" | "ignore";

/**
 * Picks one proposal among `offered` that `mine` allows, by `mine`'s order of
 * preference. Returns undefined when none fits (NO_PROPOSAL_CHOSEN, §2.7).
 */
export function selectProposal(offered: readonly Proposal[], mine: readonly ProposalSpec[], dh: DhMode = "required"): Chosen | undefined {
  for (const spec of mine) {
    for (const p of offered) {
      if (p.protocol !== spec.protocol) continue;
      const c = match(p, spec, dh);
      if (c) return c;
    }
  }
  return undefined;
}

function match(p: Proposal, s: ProposalSpec, dhMode: DhMode): Chosen | undefined {
  const of = (type: number) => p.transforms.filter((t) => t.type === type && usable(t));
  // §3.3.6: a proposal with a transform type we do not know is rejected as a whole
  if (p.transforms.some((t) => t.type < TransformType.ENCR || t.type > TransformType.ESN)) return undefined;
  const pick = <T>(wanted: readonly T[], id: (w: T) => number, eq: (w: T, t: Transform) => boolean, ts: Transform[]) => {
    for (const w of wanted) {
      const t = ts.find((x) => x.id === id(w) && eq(w, x));
      if (t) return { w, t };
    }
    return undefined;
  };
  const encrs = of(TransformType.ENCR);
  const e = pick(s.encr, (w) => w.id, (w, t) => keyLength(t) === w.keyBits, encrs);
  if (!e) return undefined;
  const encr = encrAlg(e.w.id, e.w.keyBits)!;
  const chosen: Transform[] = [e.t];

  const integs = of(TransformType.INTEG).filter((t) => t.id !== Integ.NONE);
  let integ: IntegAlg | undefined;
  if (encr.aead) {
    // RFC 5282 §8 / RFC 4106 §8.1: no integrity with an AEAD; only "none" may be offered
    if (integs.length) return undefined;
  } else {
    const i = pick(s.integ, (w) => w, () => true, integs);
    if (!i) return undefined;
    integ = integAlg(i.w)!;
    chosen.push(i.t);
  }

  let prf: PrfAlg | undefined;
  if (s.protocol === Protocol.IKE) {
    const f = pick(s.prf, (w) => w, () => true, of(TransformType.PRF));
    if (!f) return undefined;
    prf = prfAlg(f.w)!;
    chosen.splice(1, 0, f.t);
  } else if (of(TransformType.PRF).length) {
    return undefined;
  }

  let dh: number | undefined;
  const dhs = of(TransformType.DH).filter((t) => t.id !== 0);
  // "optional": PFS on one side only is a mismatch, as any other transform type would be
  if (dhMode === "required" || (dhMode === "optional" && (dhs.length || s.dh.length))) {
    const d = pick(s.dh, (w) => w, () => true, dhs);
    if (!d) return undefined;
    dh = d.w;
    chosen.push(d.t);
  }

  let esn = false;
  if (s.protocol !== Protocol.IKE) {
    const n = pick(s.esn, (w) => w, () => true, of(TransformType.ESN));
    if (!n) return undefined;
    esn = n.w === Esn.YES;
    chosen.push(n.t);
  } else if (of(TransformType.ESN).length) {
    return undefined;
  }

  const suite = s.protocol === Protocol.ESP ? espSuite(encr, integ) : undefined;
  if (s.protocol === Protocol.ESP && !suite) return undefined;
  return {
    num: p.num, protocol: p.protocol, spi: p.spi, encr, integ, prf, dh, esn, suite,
    proposal: { num: p.num, protocol: p.protocol, spi: p.spi, transforms: chosen },
  };
}

/**
 * The initiator's check of a response's SA payload (§3.3.6, §2.7): exactly one
 * proposal, one transform per type, all of it among what we offered in the
 * proposal with that number.
 */
export function acceptResponse(answer: readonly Proposal[], offered: readonly ProposalSpec[], dh: DhMode = "required"): Chosen | undefined {
  if (answer.length !== 1) return undefined;
  const p = answer[0];
  const spec = offered[p.num - 1];
  if (!spec || p.protocol !== spec.protocol) return undefined;
  const types = p.transforms.map((t) => t.type);
  if (new Set(types).size !== types.length) return undefined;
  return match(p, spec, dh);
}
