// IKE_AUTH (RFC 7296 §1.2), creating the first CHILD_SA:
//   HDR, SK {IDi, [CERT+,] [CERTREQ,] AUTH, [N(INITIAL_CONTACT),] SAi2, TSi, TSr} →
//   ← HDR, SK {IDr, [CERT+,] AUTH, SAr2, TSi, TSr}
// AUTH per §2.15: a pre-shared key (method 2), or with certificates a Digital
// Signature (RFC 7427, method 14) under the end-entity certificate's key, whose
// chain is checked against our CAs and whose names must hold the peer's ID
// (certs.ts, signature.ts). The CHILD_SA's proposal (§2.7), traffic selectors
// narrowed by the responder (§2.9), its keys from KEYMAT (§2.17, no PFS here:
// Ni and Nr are IKE_SA_INIT's). A CHILD_SA failure (NO_PROPOSAL_CHOSEN,
// TS_UNACCEPTABLE) does not fail the IKE SA (§1.2: "the IKE SA is still created").
// The mode: N(USE_TRANSPORT_MODE) beside SAi2/SAr2 (§1.3.1, child_mode.ts).
import { AuthMethod, IdType, Notify, PayloadType, Protocol } from "./constants.ts";
import { authEqual, pskAuth, signedOctets } from "./auth.ts";
import { CERT_X509_SIGNATURE, certReqData, chainToSend, idInCert, parseCertReq, sameDn, verifyChain } from "./certs.ts";
import { findNotify } from "./message.ts";
import { selectorsOf, type IdPayload, type NotifyPayload, type Payload } from "./payloads.ts";
import { establishChild, recordDoomedChild, spiBytes } from "./child_sa.ts";
import { initiatorMode, modeRequest, responderMode } from "./child_mode.ts";
import { acceptResponse, selectProposal, toProposals } from "./proposals.ts";
import { signAuth, verifyAuth } from "./signature.ts";
import { narrow, within } from "./ts.ts";
import type { SaContext } from "./context.ts";
import type { FailReason, Identity, IkeEvent } from "./types.ts";

const notify = (notifyType: number): NotifyPayload => ({ kind: "notify", protocol: 0, spi: new Uint8Array(0), notifyType, data: new Uint8Array(0) });

/** Our ID payload: IDi (35) as initiator, IDr (36) as responder. */
function ourId(ctx: SaContext): IdPayload {
  return { kind: "id", type: ctx.initiator ? PayloadType.IDi : PayloadType.IDr, idType: ctx.cfg.localId.idType, data: ctx.cfg.localId.data };
}

/**
 * §2.15: our AUTH over RealMessage1 (initiator) / RealMessage2 (responder), the
 * peer's nonce, prf(SK_p, ID'); with certificates preceded by our CERTs (§3.6)
 * and, from the initiator, a CERTREQ naming our CAs (§3.7).
 */
function ourProof(ctx: SaContext, id: IdPayload): Payload[] {
  const k = ctx.keys!;
  const prf = ctx.ike!.prf!;
  const octets = ctx.initiator ? signedOctets(prf, ctx.msg1!, ctx.nr!, k.skPi, id) : signedOctets(prf, ctx.msg2!, ctx.ni!, k.skPr, id);
  const c = ctx.cfg.certs;
  if (!c) return [{ kind: "auth", method: AuthMethod.SHARED_KEY_MIC, data: pskAuth(prf, ctx.cfg.psk, octets) }];
  return [
    ...chainToSend(c, ctx.peerCertReq ?? []).map((x): Payload => ({ kind: "cert", type: 37, encoding: CERT_X509_SIGNATURE, data: new Uint8Array(x.raw) })),
    ...(ctx.initiator && c.cas.length ? [{ kind: "cert", type: 38, encoding: CERT_X509_SIGNATURE, data: certReqData(c.cas) } as Payload] : []),
    { kind: "auth", method: AuthMethod.DIGITAL_SIGNATURE, data: signAuth(c.key, octets, ctx.peerSigHashes ?? [], c.rsaPss) },
  ];
}

/** Whether the peer's ID is the configured one: bytes equal, or for DNs the same RDNs (string types may differ). */
function sameId(want: Identity, got: Identity): boolean {
  if (want.idType !== got.idType) return false;
  return want.idType === IdType.DER_ASN1_DN ? sameDn(want.data, got.data) : Buffer.from(want.data).equals(got.data);
}

/** RFC 7427: the peer's certificate chain, its ID in the certificate, and its signature. */
function checkSignature(ctx: SaContext, ps: readonly Payload[], id: IdPayload, data: Uint8Array, octets: Uint8Array): string | undefined {
  const ders = ps.filter((p) => p.kind === "cert" && p.type === PayloadType.CERT && p.encoding === CERT_X509_SIGNATURE).map((p) => (p as { data: Uint8Array }).data);
  const certs = ctx.cfg.certs!;
  const chain = verifyChain(ders, certs, certs.now?.() ?? Date.now());
  if (!chain.ok) return chain.reason;
  const notOurs = idInCert(id, chain.cert);
  if (notOurs) return notOurs;
  const bad = verifyAuth(chain.cert.publicKey, data, octets);
  if (bad) return bad;
  ctx.peerCert = chain.cert;
  return undefined;
}

/** Checks the peer's ID and AUTH; returns a reason when they do not hold. */
function checkPeer(ctx: SaContext, ps: readonly Payload[]): string | undefined {
  const idType = ctx.initiator ? PayloadType.IDr : PayloadType.IDi;
  const id = ps.find((p): p is IdPayload => p.kind === "id" && p.type === idType);
  const auth = ps.find((p) => p.kind === "auth");
  if (!id || !auth) return "no ID or AUTH payload";
  const want = ctx.cfg.remoteId;
  if (want && !sameId(want, id)) return `peer identity (type ${id.idType}) is not the configured one`;
  const method = ctx.cfg.certs ? AuthMethod.DIGITAL_SIGNATURE : AuthMethod.SHARED_KEY_MIC;
  if (auth.method !== method) return `AUTH method ${auth.method}, only ${ctx.cfg.certs ? "Digital Signature (14)" : "shared key (2)"} is configured`;
  const k = ctx.keys!;
  const prf = ctx.ike!.prf!;
  // the peer signed the message it sent and our nonce (§2.15)
  const octets = ctx.initiator ? signedOctets(prf, ctx.msg2!, ctx.ni!, k.skPr, id) : signedOctets(prf, ctx.msg1!, ctx.nr!, k.skPi, id);
  if (ctx.cfg.certs) {
    const bad = checkSignature(ctx, ps, id, auth.data, octets);
    if (bad) return bad;
  } else if (!authEqual(pskAuth(prf, ctx.cfg.psk, octets), auth.data)) return "AUTH does not verify";
  ctx.peerId = { idType: id.idType, data: id.data };
  return undefined;
}

/** The initiator's IKE_AUTH request payloads (inside SK). */
export function authRequest(ctx: SaContext): Payload[] {
  ctx.childSpiIn = ctx.deps.allocateSpi(ctx.cfg.name);
  const id = ourId(ctx);
  return [
    id,
    ...ourProof(ctx, id),
    ...(ctx.cfg.initialContact === false ? [] : [notify(Notify.INITIAL_CONTACT)]),
    ...modeRequest(ctx.cfg.mode),
    { kind: "sa", proposals: toProposals(ctx.cfg.espProposals, spiBytes(ctx.childSpiIn)) },
    { kind: "ts", type: PayloadType.TSi, selectors: ctx.cfg.localTs },
    { kind: "ts", type: PayloadType.TSr, selectors: ctx.cfg.remoteTs },
  ];
}

export type AuthAnswer =
  | { kind: "accept"; payloads: Payload[]; events: IkeEvent[] }
  | { kind: "refuse"; payloads: Payload[]; reason: FailReason; detail: string };

/** The responder's handling of the IKE_AUTH request (already opened). */
export function onAuthRequest(ctx: SaContext, ps: readonly Payload[]): AuthAnswer {
  const bad = checkPeer(ctx, ps);
  // §2.21.2: AUTHENTICATION_FAILED in the response, and the IKE SA is not kept
  if (bad) return { kind: "refuse", payloads: [notify(Notify.AUTHENTICATION_FAILED)], reason: "auth", detail: bad };
  ctx.peerInitialContact = !!findNotify(ps, Notify.INITIAL_CONTACT);
  // §3.7: the initiator's CERTREQ says which CA our chain should lead to
  const req = ps.find((p) => p.kind === "cert" && p.type === PayloadType.CERTREQ && p.encoding === CERT_X509_SIGNATURE);
  if (req?.kind === "cert") ctx.peerCertReq = parseCertReq(req.data) ?? [];
  const id = ourId(ctx);
  const payloads: Payload[] = [id, ...ourProof(ctx, id)];
  const events: IkeEvent[] = [];
  const sa = ps.find((p) => p.kind === "sa");
  const tsi = selectorsOf(ps, PayloadType.TSi);
  const tsr = selectorsOf(ps, PayloadType.TSr);
  if (!sa || !tsi || !tsr) {
    // an IKE SA without a CHILD_SA (RFC 6023 childless) is not something we offer yet
    return { kind: "accept", payloads, events };
  }
  const childFail = (n: number, detail: string) => {
    payloads.push(notify(n));
    events.push({ type: "childSaFailed", ike: ctx.cfg.name, notify: n, detail, peerRequest: true });
    return { kind: "accept" as const, payloads, events };
  };
  const chosen = selectProposal(sa.proposals.filter((p) => p.protocol === Protocol.ESP), ctx.cfg.espProposals, "ignore");
  if (!chosen) return childFail(Notify.NO_PROPOSAL_CHOSEN, "no acceptable ESP proposal");
  // §2.9: TSi is the initiator's side (our remote), TSr ours
  const remote = narrow(tsi, ctx.cfg.remoteTs);
  const local = narrow(tsr, ctx.cfg.localTs);
  if (!remote.length || !local.length) return childFail(Notify.TS_UNACCEPTABLE, "traffic selectors do not meet the configured prefixes");
  const mode = responderMode(ctx.cfg.mode, ps);
  if (!mode.ok) return childFail(mode.notify, mode.detail);
  ctx.childSpiIn = ctx.deps.allocateSpi(ctx.cfg.name);
  payloads.push(
    ...mode.payloads,
    { kind: "sa", proposals: [{ ...chosen.proposal, spi: spiBytes(ctx.childSpiIn) }] },
    { kind: "ts", type: PayloadType.TSi, selectors: remote },
    { kind: "ts", type: PayloadType.TSr, selectors: local },
  );
  events.push(establishChild(ctx, { chosen, spiIn: ctx.childSpiIn, tsLocal: local, tsRemote: remote, ni: ctx.ni!, nr: ctx.nr!, exchangeInitiator: false, mode: mode.mode }));
  return { kind: "accept", payloads, events };
}

export type AuthResult = { kind: "done"; events: IkeEvent[] } | { kind: "fail"; reason: FailReason; detail: string; notify?: number };

/** The initiator's handling of the IKE_AUTH response (already opened). */
export function onAuthResponse(ctx: SaContext, ps: readonly Payload[]): AuthResult {
  const authFail = findNotify(ps, Notify.AUTHENTICATION_FAILED);
  if (authFail) return { kind: "fail", reason: "peer-error", detail: "the responder sent AUTHENTICATION_FAILED", notify: Notify.AUTHENTICATION_FAILED };
  // an error without AUTH refuses the whole exchange (e.g. UNSUPPORTED_CRITICAL_PAYLOAD, INVALID_SYNTAX)
  const refusal = ps.find((p): p is NotifyPayload => p.kind === "notify" && p.notifyType < 16384);
  if (refusal && !ps.some((p) => p.kind === "auth")) {
    return { kind: "fail", reason: "peer-error", detail: `IKE_AUTH refused with notify ${refusal.notifyType}`, notify: refusal.notifyType };
  }
  const bad = checkPeer(ctx, ps);
  if (bad) return { kind: "fail", reason: "auth", detail: bad };
  const events: IkeEvent[] = [];
  const err = ps.find((p): p is NotifyPayload => p.kind === "notify" && p.notifyType < 16384);
  if (err) {
    events.push({ type: "childSaFailed", ike: ctx.cfg.name, notify: err.notifyType, detail: `the responder refused the CHILD_SA with notify ${err.notifyType}` });
    return { kind: "done", events };
  }
  const sa = ps.find((p) => p.kind === "sa");
  const tsi = selectorsOf(ps, PayloadType.TSi);
  const tsr = selectorsOf(ps, PayloadType.TSr);
  const chosen = sa && acceptResponse(sa.proposals, ctx.cfg.espProposals, "ignore");
  if (!chosen || chosen.spi.length !== 4) {
    events.push({ type: "childSaFailed", ike: ctx.cfg.name, notify: 0, detail: "the responder's CHILD_SA proposal is not one we offered" });
    return { kind: "done", events };
  }
  // the responder may narrow, never widen (§2.9)
  if (!tsi || !tsr || !tsi.length || !tsr.length || !within(tsi, ctx.cfg.localTs) || !within(tsr, ctx.cfg.remoteTs)) {
    events.push({ type: "childSaFailed", ike: ctx.cfg.name, notify: 0, detail: "the responder's traffic selectors are not within ours" });
    return { kind: "done", events };
  }
  const mode = initiatorMode(ctx.cfg.mode, ps);
  if (!mode.ok) {
    recordDoomedChild(ctx, { chosen, spiIn: ctx.childSpiIn!, tsLocal: tsi, tsRemote: tsr });
    events.push({ type: "childSaFailed", ike: ctx.cfg.name, notify: 0, detail: mode.detail, deleting: ctx.childSpiIn! });
    return { kind: "done", events };
  }
  events.push(establishChild(ctx, { chosen, spiIn: ctx.childSpiIn!, tsLocal: tsi, tsRemote: tsr, ni: ctx.ni!, nr: ctx.nr!, exchangeInitiator: true, mode: ctx.cfg.mode }));
  return { kind: "done", events };
}
