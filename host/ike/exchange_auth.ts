// IKE_AUTH (RFC 7296 §1.2) with a pre-shared key, creating the first CHILD_SA:
//   HDR, SK {IDi, AUTH, [N(INITIAL_CONTACT),] SAi2, TSi, TSr} →
//   ← HDR, SK {IDr, AUTH, SAr2, TSi, TSr}
// AUTH per §2.15; the CHILD_SA's proposal (§2.7), traffic selectors narrowed
// by the responder (§2.9), its keys from KEYMAT (§2.17, no PFS here: Ni and Nr
// are IKE_SA_INIT's). A CHILD_SA failure (NO_PROPOSAL_CHOSEN, TS_UNACCEPTABLE)
// does not fail the IKE SA (§1.2: "the IKE SA is still created").
import { AuthMethod, Notify, PayloadType, Protocol } from "./constants.ts";
import { authEqual, pskAuth, signedOctets } from "./auth.ts";
import { findNotify } from "./message.ts";
import { selectorsOf, type IdPayload, type NotifyPayload, type Payload } from "./payloads.ts";
import { establishChild, spiBytes } from "./child_sa.ts";
import { acceptResponse, selectProposal, toProposals } from "./proposals.ts";
import { narrow, within } from "./ts.ts";
import type { SaContext } from "./context.ts";
import type { FailReason, IkeEvent } from "./types.ts";

const notify = (notifyType: number): NotifyPayload => ({ kind: "notify", protocol: 0, spi: new Uint8Array(0), notifyType, data: new Uint8Array(0) });

/** Our ID payload: IDi (35) as initiator, IDr (36) as responder. */
function ourId(ctx: SaContext): IdPayload {
  return { kind: "id", type: ctx.initiator ? PayloadType.IDi : PayloadType.IDr, idType: ctx.cfg.localId.idType, data: ctx.cfg.localId.data };
}

/** §2.15: our AUTH over RealMessage1 (initiator) / RealMessage2 (responder), the peer's nonce, prf(SK_p, ID'). */
function ourAuth(ctx: SaContext, id: IdPayload): Payload {
  const k = ctx.keys!;
  const prf = ctx.ike!.prf!;
  const octets = ctx.initiator ? signedOctets(prf, ctx.msg1!, ctx.nr!, k.skPi, id) : signedOctets(prf, ctx.msg2!, ctx.ni!, k.skPr, id);
  return { kind: "auth", method: AuthMethod.SHARED_KEY_MIC, data: pskAuth(prf, ctx.cfg.psk, octets) };
}

/** Checks the peer's ID and AUTH; returns a reason when they do not hold. */
function checkPeer(ctx: SaContext, ps: readonly Payload[]): string | undefined {
  const idType = ctx.initiator ? PayloadType.IDr : PayloadType.IDi;
  const id = ps.find((p): p is IdPayload => p.kind === "id" && p.type === idType);
  const auth = ps.find((p) => p.kind === "auth");
  if (!id || !auth) return "no ID or AUTH payload";
  const want = ctx.cfg.remoteId;
  if (want && (want.idType !== id.idType || !Buffer.from(want.data).equals(id.data))) return `peer identity (type ${id.idType}) is not the configured one`;
  if (auth.method !== AuthMethod.SHARED_KEY_MIC) return `AUTH method ${auth.method}, only shared key (2) is configured`;
  const k = ctx.keys!;
  const prf = ctx.ike!.prf!;
  // the peer signed the message it sent and our nonce (§2.15)
  const octets = ctx.initiator ? signedOctets(prf, ctx.msg2!, ctx.ni!, k.skPr, id) : signedOctets(prf, ctx.msg1!, ctx.nr!, k.skPi, id);
  if (!authEqual(pskAuth(prf, ctx.cfg.psk, octets), auth.data)) return "AUTH does not verify";
  ctx.peerId = { idType: id.idType, data: id.data };
  return undefined;
}

/** The initiator's IKE_AUTH request payloads (inside SK). */
export function authRequest(ctx: SaContext): Payload[] {
  ctx.childSpiIn = ctx.deps.allocateSpi();
  const id = ourId(ctx);
  return [
    id,
    ourAuth(ctx, id),
    ...(ctx.cfg.initialContact === false ? [] : [notify(Notify.INITIAL_CONTACT)]),
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
  const id = ourId(ctx);
  const payloads: Payload[] = [id, ourAuth(ctx, id)];
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
    events.push({ type: "childSaFailed", ike: ctx.cfg.name, notify: n, detail });
    return { kind: "accept" as const, payloads, events };
  };
  const chosen = selectProposal(sa.proposals.filter((p) => p.protocol === Protocol.ESP), ctx.cfg.espProposals, "ignore");
  if (!chosen) return childFail(Notify.NO_PROPOSAL_CHOSEN, "no acceptable ESP proposal");
  // §2.9: TSi is the initiator's side (our remote), TSr ours
  const remote = narrow(tsi, ctx.cfg.remoteTs);
  const local = narrow(tsr, ctx.cfg.localTs);
  if (!remote.length || !local.length) return childFail(Notify.TS_UNACCEPTABLE, "traffic selectors do not meet the configured prefixes");
  ctx.childSpiIn = ctx.deps.allocateSpi();
  payloads.push(
    { kind: "sa", proposals: [{ ...chosen.proposal, spi: spiBytes(ctx.childSpiIn) }] },
    { kind: "ts", type: PayloadType.TSi, selectors: remote },
    { kind: "ts", type: PayloadType.TSr, selectors: local },
  );
  events.push(establishChild(ctx, { chosen, spiIn: ctx.childSpiIn, tsLocal: local, tsRemote: remote, ni: ctx.ni!, nr: ctx.nr!, exchangeInitiator: false }));
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
  events.push(establishChild(ctx, { chosen, spiIn: ctx.childSpiIn!, tsLocal: tsi, tsRemote: tsr, ni: ctx.ni!, nr: ctx.nr!, exchangeInitiator: true }));
  return { kind: "done", events };
}
