// IKE_SA_INIT (RFC 7296 §1.2): HDR, SAi1, KEi, Ni [, N(NAT_DETECTION_*)] →
// ← HDR, SAr1, KEr, Nr [, N(NAT_DETECTION_*)]; then both sides derive the IKE
// SA's keys (§2.14). Also the two ways a responder may turn the first request
// down and the initiator retries: INVALID_KE_PAYLOAD (§1.2, the group it wants)
// and COOKIE (§2.6, echoed first in the retried request).
import { Exchange, Flag, Notify, Protocol, SPI_BYTES, VERSION } from "./constants.ts";
import { createKeyExchange, supportedGroup } from "./dh.ts";
import { encodeMessage, findNotify, type Header, type Message } from "./message.ts";
import { natHash } from "./nat.ts";
import { unsupportedCritical, type NotifyPayload, type Payload } from "./payloads.ts";
import { deriveIkeSaKeys } from "./prf.ts";
import { acceptResponse, selectProposal, toProposals } from "./proposals.ts";
import { CERT_X509_SIGNATURE, certReqData, parseCertReq } from "./certs.ts";
import { parseSigHashes, sigHashData } from "./signature.ts";
import type { SaContext } from "./context.ts";
import type { FailReason, Path } from "./types.ts";

const NONCE_BYTES = 32; // §2.10: at least half the PRF's key size, and at least 128 bits

const notify = (notifyType: number, data: Uint8Array = new Uint8Array(0)): NotifyPayload => ({
  kind: "notify", protocol: 0, spi: new Uint8Array(0), notifyType, data,
});

/** The NAT_DETECTION_SOURCE_IP / _DESTINATION_IP pair for a message on `path` (§2.23). */
function natNotifies(ctx: SaContext, spiR: Uint8Array, path: Path): NotifyPayload[] {
  const src = ctx.cfg.forceEncap
    ? ctx.deps.random(20) // a hash nobody can match: "pretend to be behind a NAT" (§2.23)
    : natHash(ctx.spiI, spiR, path.localAddress, path.localPort);
  return [notify(Notify.NAT_DETECTION_SOURCE_IP, src), notify(Notify.NAT_DETECTION_DESTINATION_IP, natHash(ctx.spiI, spiR, path.remoteAddress, path.remotePort))];
}

/**
 * §2.23: compares the peer's NAT_DETECTION hashes with the addresses the datagram
 * really had. Sets `natThere` when the peer's source was rewritten (or the peer pretends
 * so), `behindNat` when ours was, and `natHere` then or when we pretend so ourselves.
 */
function detectNat(ctx: SaContext, payloads: readonly Payload[], spiR: Uint8Array, path: Path): void {
  const srcs = payloads.filter((p): p is NotifyPayload => p.kind === "notify" && p.notifyType === Notify.NAT_DETECTION_SOURCE_IP);
  const dst = findNotify(payloads, Notify.NAT_DETECTION_DESTINATION_IP);
  if (!srcs.length || !dst) return; // the peer does no NAT detection: no NAT-T either
  const theirs = Buffer.from(natHash(ctx.spiI, spiR, path.remoteAddress, path.remotePort));
  ctx.natThere = !srcs.some((s) => theirs.equals(s.data));
  ctx.behindNat = !Buffer.from(natHash(ctx.spiI, spiR, path.localAddress, path.localPort)).equals(dst.data);
  ctx.natHere = ctx.behindNat || !!ctx.cfg.forceEncap;
}

/**
 * What we announce besides the exchange proper: RFC 7383 §2.3 fragmentation
 * support, and with certificates RFC 7427 §4 signature hashes and (responder,
 * RFC 7296 §1.2 "[CERTREQ]") the CAs we trust. A responder answers only what
 * the initiator announced.
 */
function capabilities(ctx: SaContext, request?: readonly Payload[]): Payload[] {
  const out: Payload[] = [];
  const cert = ctx.cfg.certs;
  if (cert?.cas.length && request) out.push({ kind: "cert", type: 38, encoding: CERT_X509_SIGNATURE, data: certReqData(cert.cas) });
  if (ctx.cfg.fragmentSize !== 0 && (!request || findNotify(request, Notify.IKEV2_FRAGMENTATION_SUPPORTED))) out.push(notify(Notify.IKEV2_FRAGMENTATION_SUPPORTED));
  if (cert && (!request || findNotify(request, Notify.SIGNATURE_HASH_ALGORITHMS))) out.push(notify(Notify.SIGNATURE_HASH_ALGORITHMS, sigHashData()));
  return out;
}

/** Notes what the peer announced in its IKE_SA_INIT message (see `capabilities`). */
function peerCapabilities(ctx: SaContext, ps: readonly Payload[]): void {
  ctx.fragmentation = ctx.cfg.fragmentSize !== 0 && !!findNotify(ps, Notify.IKEV2_FRAGMENTATION_SUPPORTED);
  const hashes = findNotify(ps, Notify.SIGNATURE_HASH_ALGORITHMS);
  ctx.peerSigHashes = hashes ? parseSigHashes(hashes.data) : [];
  const req = ps.find((p) => p.kind === "cert" && p.type === 38 && p.encoding === CERT_X509_SIGNATURE);
  if (req?.kind === "cert") ctx.peerCertReq = parseCertReq(req.data) ?? [];
}

function header(ctx: SaContext, response: boolean): Header {
  return {
    spiI: ctx.spiI, spiR: ctx.spiR, version: VERSION, exchange: Exchange.IKE_SA_INIT,
    flags: (ctx.initiator ? Flag.INITIATOR : 0) | (response ? Flag.RESPONSE : 0), messageId: 0,
  };
}

/** Builds (or rebuilds, after a COOKIE or INVALID_KE_PAYLOAD) the initiator's request; it becomes RealMessage1. */
export function initRequest(ctx: SaContext): Uint8Array {
  ctx.ke = createKeyExchange(ctx.group)!;
  ctx.ni ??= ctx.deps.random(NONCE_BYTES);
  const zero = new Uint8Array(SPI_BYTES);
  const payloads: Payload[] = [
    ...(ctx.cookie ? [notify(Notify.COOKIE, ctx.cookie)] : []), // §2.6: "the COOKIE notification MUST be the first payload"
    { kind: "sa", proposals: toProposals(ctx.cfg.ikeProposals, new Uint8Array(0)) },
    { kind: "ke", group: ctx.group, data: ctx.ke.publicValue },
    { kind: "nonce", data: ctx.ni },
    ...natNotifies(ctx, zero, ctx.path),
    ...capabilities(ctx),
  ];
  ctx.msg1 = encodeMessage({ header: header(ctx, false), payloads });
  return ctx.msg1;
}

export type InitOutcome =
  | { kind: "done" }
  | { kind: "retry" } // send initRequest(ctx) again
  | { kind: "fail"; reason: FailReason; detail: string; notify?: number };

/** The initiator's handling of the IKE_SA_INIT response. */
export function onInitResponse(ctx: SaContext, m: Message, raw: Uint8Array): InitOutcome {
  const ps = m.payloads;
  const cookie = findNotify(ps, Notify.COOKIE);
  if (cookie) {
    if (ctx.cookie) return { kind: "fail", reason: "protocol", detail: "second COOKIE request" };
    ctx.cookie = cookie.data;
    return { kind: "retry" };
  }
  const invalidKe = findNotify(ps, Notify.INVALID_KE_PAYLOAD);
  if (invalidKe) {
    // §1.2: the responder names the group it wants; we retry only with a group we offered, and only once
    const g = invalidKe.data.length === 2 ? (invalidKe.data[0] << 8) | invalidKe.data[1] : -1;
    const offered = ctx.cfg.ikeProposals.some((p) => p.dh.includes(g));
    if (!offered || g === ctx.group || !supportedGroup(g)) return { kind: "fail", reason: "bad-ke", detail: `INVALID_KE_PAYLOAD asks for group ${g}` };
    ctx.group = g;
    return { kind: "retry" };
  }
  const err = ps.find((p): p is NotifyPayload => p.kind === "notify" && p.notifyType < 16384);
  if (err) return { kind: "fail", reason: "peer-error", detail: `IKE_SA_INIT refused with notify ${err.notifyType}`, notify: err.notifyType };
  const sa = ps.find((p) => p.kind === "sa");
  const ke = ps.find((p) => p.kind === "ke");
  const nr = ps.find((p) => p.kind === "nonce");
  if (!sa || !ke || !nr) return { kind: "fail", reason: "protocol", detail: "IKE_SA_INIT response without SA, KE or Nonce" };
  if (m.header.spiR.every((b) => b === 0)) return { kind: "fail", reason: "protocol", detail: "responder SPI is zero" };
  const chosen = acceptResponse(sa.proposals, ctx.cfg.ikeProposals);
  if (!chosen) return { kind: "fail", reason: "no-proposal", detail: "the responder chose something we did not offer" };
  if (chosen.dh !== ctx.group || ke.group !== ctx.group) return { kind: "fail", reason: "bad-ke", detail: `KE group ${ke.group}, proposal group ${chosen.dh}, ours ${ctx.group}` };
  const secret = ctx.ke!.secret(ke.data);
  if (!secret.ok) return { kind: "fail", reason: "bad-ke", detail: secret.error.detail };
  ctx.spiR = m.header.spiR;
  ctx.nr = nr.data;
  ctx.ike = chosen;
  ctx.msg2 = raw;
  detectNat(ctx, ps, ctx.spiR, ctx.path);
  peerCapabilities(ctx, ps);
  ctx.keys = deriveIkeSaKeys({ prf: chosen.prf!, encr: chosen.encr, integ: chosen.integ, sharedSecret: secret.secret, ni: ctx.ni!, nr: ctx.nr, spiI: ctx.spiI, spiR: ctx.spiR }).keys;
  return { kind: "done" };
}

export type InitAnswer =
  | { kind: "accept"; response: Uint8Array }
  | { kind: "refuse"; response: Uint8Array; reason: FailReason; detail: string };

/**
 * The responder's handling of an IKE_SA_INIT request (ctx.spiI set from the
 * header, ctx.spiR freshly chosen). On refusal the answer carries only the
 * notification and no state is kept (§2.6: the responder stays stateless).
 */
export function onInitRequest(ctx: SaContext, m: Message, raw: Uint8Array): InitAnswer {
  const ps = m.payloads;
  const refuse = (type: number, reason: FailReason, detail: string, data?: Uint8Array): InitAnswer => {
    const h = { ...header(ctx, true), spiR: new Uint8Array(SPI_BYTES) };
    return { kind: "refuse", response: encodeMessage({ header: h, payloads: [notify(type, data)] }), reason, detail };
  };
  const critical = unsupportedCritical(ps);
  if (critical !== undefined) return refuse(Notify.UNSUPPORTED_CRITICAL_PAYLOAD, "protocol", `critical payload type ${critical}`, Uint8Array.of(critical));
  const sa = ps.find((p) => p.kind === "sa");
  const ke = ps.find((p) => p.kind === "ke");
  const ni = ps.find((p) => p.kind === "nonce");
  if (!sa || !ke || !ni) return refuse(Notify.INVALID_SYNTAX, "protocol", "IKE_SA_INIT request without SA, KE or Nonce");
  const chosen = selectProposal(sa.proposals.filter((p) => p.protocol === Protocol.IKE && p.spi.length === 0), ctx.cfg.ikeProposals);
  if (!chosen) return refuse(Notify.NO_PROPOSAL_CHOSEN, "no-proposal", "no acceptable IKE proposal");
  if (ke.group !== chosen.dh) {
    // §1.2: "the responder MUST reject the message and indicate its preferred DH group in the INVALID_KE_PAYLOAD"
    return refuse(Notify.INVALID_KE_PAYLOAD, "bad-ke", `KE for group ${ke.group}, chose ${chosen.dh}`, Uint8Array.of(chosen.dh! >> 8, chosen.dh!));
  }
  ctx.group = chosen.dh!;
  ctx.ke = createKeyExchange(ctx.group)!;
  const secret = ctx.ke.secret(ke.data);
  if (!secret.ok) return refuse(Notify.INVALID_KE_PAYLOAD, "bad-ke", secret.error.detail, Uint8Array.of(ctx.group >> 8, ctx.group));
  ctx.ni = ni.data;
  ctx.nr = ctx.deps.random(NONCE_BYTES);
  ctx.ike = chosen;
  ctx.msg1 = raw;
  detectNat(ctx, ps, new Uint8Array(SPI_BYTES), ctx.path);
  peerCapabilities(ctx, ps);
  const payloads: Payload[] = [
    { kind: "sa", proposals: [chosen.proposal] },
    { kind: "ke", group: ctx.group, data: ctx.ke.publicValue },
    { kind: "nonce", data: ctx.nr },
    // §2.23: NAT detection only if the initiator did it
    ...(findNotify(ps, Notify.NAT_DETECTION_SOURCE_IP) ? natNotifies(ctx, ctx.spiR, ctx.path) : []),
    ...capabilities(ctx, ps),
  ];
  ctx.msg2 = encodeMessage({ header: header(ctx, true), payloads });
  ctx.keys = deriveIkeSaKeys({ prf: chosen.prf!, encr: chosen.encr, integ: chosen.integ, sharedSecret: secret.secret, ni: ctx.ni, nr: ctx.nr, spiI: ctx.spiI, spiR: ctx.spiR }).keys;
  return { kind: "accept", response: ctx.msg2 };
}

