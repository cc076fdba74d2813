// CREATE_CHILD_SA for CHILD_SAs (RFC 7296 §1.3.1 new, §1.3.3 rekey):
//   HDR, SK {[N(REKEY_SA)], SA, Ni, [KEi], TSi, TSr} →
//   ← HDR, SK {SA, Nr, [KEr], TSi, TSr}
// Either side may start it. A rekey names the CHILD_SA it replaces by the SPI
// its sender receives on (§1.3.3) and keeps its traffic selectors (§2.9.2).
// With a DH transform in the chosen proposal the exchange carries KE payloads
// and KEYMAT includes the new g^ir (PFS, §2.17). Rekeying the IKE SA itself
// (§1.3.2) is exchange_ike_rekey.ts. The mode: N(USE_TRANSPORT_MODE) in request
// and response, for a rekey as for a new CHILD_SA (§1.3.1, §1.3.3; child_mode.ts).
import { Notify, PayloadType, Protocol } from "./constants.ts";
import { establishChild, recordDoomedChild, spiBytes, spiNumber } from "./child_sa.ts";
import { initiatorMode, modeRequest, responderMode } from "./child_mode.ts";
import { createKeyExchange, type KeyExchange } from "./dh.ts";
import { findNotify } from "./message.ts";
import { selectorsOf, type NotifyPayload, type Payload, type TrafficSelector } from "./payloads.ts";
import { acceptResponse, selectProposal, toProposals } from "./proposals.ts";
import { narrow, within } from "./ts.ts";
import type { SaContext } from "./context.ts";
import type { IkeEvent } from "./types.ts";

const NONCE_BYTES = 32;
const notify = (notifyType: number, data: Uint8Array = new Uint8Array(0)): NotifyPayload => ({ kind: "notify", protocol: 0, spi: new Uint8Array(0), notifyType, data });

/** What the initiator of a CREATE_CHILD_SA keeps until the response. */
export interface PendingChild {
  spiIn: number;
  ni: Uint8Array;
  ke?: KeyExchange;
  rekeyOf?: number;
  tsLocal: TrafficSelector[];
  tsRemote: TrafficSelector[];
  /** This request already follows an INVALID_KE_PAYLOAD (retried once only). */
  retried?: boolean;
  /** A new CHILD_SA's packet worker as asked (createChild), kept for a retry. */
  worker?: number;
}

/**
 * The request for a new CHILD_SA (for packet worker `worker`, when given), or for
 * a rekey of ours with inbound SPI `rekeyOf` (on the same worker as it).
 * PFS when our first ESP proposal names a DH group (its first group goes in KEi).
 */
export function childRequest(ctx: SaContext, rekeyOf?: number, group = ctx.cfg.espProposals[0].dh[0], worker?: number): { payloads: Payload[]; pending: PendingChild } {
  const old = rekeyOf === undefined ? undefined : ctx.children.find((c) => c.spiIn === rekeyOf);
  const pending: PendingChild = {
    spiIn: ctx.deps.allocateSpi(ctx.cfg.name, old?.spiIn ?? worker),
    ni: ctx.deps.random(NONCE_BYTES),
    rekeyOf: old?.spiIn,
    tsLocal: old?.tsLocal ?? ctx.cfg.localTs,
    tsRemote: old?.tsRemote ?? ctx.cfg.remoteTs,
  };
  if (group !== undefined) pending.ke = createKeyExchange(group);
  const payloads: Payload[] = [
    ...(old ? [{ kind: "notify" as const, protocol: Protocol.ESP, spi: spiBytes(old.spiIn), notifyType: Notify.REKEY_SA, data: new Uint8Array(0) }] : []),
    ...modeRequest(ctx.cfg.mode),
    { kind: "sa", proposals: toProposals(ctx.cfg.espProposals, spiBytes(pending.spiIn)) },
    { kind: "nonce", data: pending.ni },
    ...(pending.ke ? [{ kind: "ke" as const, group: pending.ke.group, data: pending.ke.publicValue }] : []),
    { kind: "ts", type: PayloadType.TSi, selectors: pending.tsLocal },
    { kind: "ts", type: PayloadType.TSr, selectors: pending.tsRemote },
  ];
  return { payloads, pending };
}

/**
 * The responder's side: the response payloads and what happened. `closing`: our inbound
 * SPIs of CHILD_SAs our outstanding DELETE names (§2.25.1: a rekey of one is TEMPORARY_FAILURE).
 */
export function onChildRequest(ctx: SaContext, ps: readonly Payload[], closing: readonly number[] = []): { payloads: Payload[]; events: IkeEvent[] } {
  const refuse = (n: number, detail: string, data?: Uint8Array) => ({
    payloads: [notify(n, data)],
    events: [{ type: "childSaFailed" as const, ike: ctx.cfg.name, notify: n, detail, peerRequest: true as const }],
  });
  const sa = ps.find((p) => p.kind === "sa");
  const ni = ps.find((p) => p.kind === "nonce");
  if (!sa || !ni) return refuse(Notify.INVALID_SYNTAX, "CREATE_CHILD_SA without SA or Nonce");
  const rekey = findNotify(ps, Notify.REKEY_SA);
  // §1.3.3: the notify's SPI is the one its sender receives on, i.e. our outbound SPI
  const old = rekey ? ctx.children.find((c) => rekey.spi.length === 4 && c.spiOut === spiNumber(rekey.spi)) : undefined;
  if (rekey && !old) return refuse(Notify.CHILD_SA_NOT_FOUND, "REKEY_SA names no CHILD_SA of ours");
  if (old && closing.includes(old.spiIn)) return refuse(Notify.TEMPORARY_FAILURE, "REKEY_SA names a CHILD_SA we are deleting");
  const tsi = selectorsOf(ps, PayloadType.TSi);
  const tsr = selectorsOf(ps, PayloadType.TSr);
  if (!tsi || !tsr) return refuse(Notify.INVALID_SYNTAX, "CREATE_CHILD_SA without TSi or TSr");
  const chosen = selectProposal(sa.proposals.filter((p) => p.protocol === Protocol.ESP), ctx.cfg.espProposals, "optional");
  if (!chosen) return refuse(Notify.NO_PROPOSAL_CHOSEN, "no acceptable ESP proposal");
  const ke = ps.find((p) => p.kind === "ke");
  let ours: KeyExchange | undefined;
  let pfsSecret: Uint8Array | undefined;
  if (chosen.dh !== undefined) {
    const g = Uint8Array.of(chosen.dh >> 8, chosen.dh);
    // §1.3: the KE must be of the chosen group, or INVALID_KE_PAYLOAD names the one we want
    if (!ke || ke.group !== chosen.dh) return refuse(Notify.INVALID_KE_PAYLOAD, `KE for group ${ke?.group}, chose ${chosen.dh}`, g);
    ours = createKeyExchange(chosen.dh)!;
    const s = ours.secret(ke.data);
    if (!s.ok) return refuse(Notify.INVALID_KE_PAYLOAD, s.error.detail, g);
    pfsSecret = s.secret;
  }
  const remote = narrow(tsi, old?.tsRemote ?? ctx.cfg.remoteTs);
  const local = narrow(tsr, old?.tsLocal ?? ctx.cfg.localTs);
  if (!remote.length || !local.length) return refuse(Notify.TS_UNACCEPTABLE, "traffic selectors do not meet ours");
  const mode = responderMode(ctx.cfg.mode, ps);
  if (!mode.ok) return refuse(mode.notify, mode.detail);
  // a rekey stays on its CHILD_SA's worker; a new one goes where the peer has fewest (RFC 9611 §2)
  const spiIn = ctx.deps.allocateSpi(ctx.cfg.name, old?.spiIn);
  const nr = ctx.deps.random(NONCE_BYTES);
  const event = establishChild(ctx, { chosen, spiIn, tsLocal: local, tsRemote: remote, ni: ni.data, nr, exchangeInitiator: false, pfsSecret, rekeyOf: old?.spiIn, mode: mode.mode });
  return {
    payloads: [
      ...mode.payloads,
      { kind: "sa", proposals: [{ ...chosen.proposal, spi: spiBytes(spiIn) }] },
      { kind: "nonce", data: nr },
      ...(ours ? [{ kind: "ke" as const, group: ours.group, data: ours.publicValue }] : []),
      { kind: "ts", type: PayloadType.TSi, selectors: remote },
      { kind: "ts", type: PayloadType.TSr, selectors: local },
    ],
    events: [event],
  };
}

/**
 * §1.3 / §1.2: a CREATE_CHILD_SA answered INVALID_KE_PAYLOAD is retried once with
 * the group the responder names, if we offered it for PFS. Returns that group, or undefined.
 */
export function retryGroup(ctx: SaContext, pending: PendingChild, ps: readonly Payload[]): number | undefined {
  const n = findNotify(ps, Notify.INVALID_KE_PAYLOAD);
  if (!n || n.data.length !== 2 || pending.retried) return undefined;
  const g = (n.data[0] << 8) | n.data[1];
  const offered = ctx.cfg.espProposals.some((p) => p.dh.includes(g));
  return offered && g !== pending.ke?.group ? g : undefined;
}

/** The initiator's side: the CHILD_SA from the response, or why there is none. */
export function onChildResponse(ctx: SaContext, pending: PendingChild, ps: readonly Payload[]): IkeEvent[] {
  const rekeyOf = pending.rekeyOf !== undefined ? { rekeyOf: pending.rekeyOf } : {};
  const failed = (n: number, detail: string): IkeEvent[] => [{ type: "childSaFailed", ike: ctx.cfg.name, notify: n, detail, ...rekeyOf }];
  const err = ps.find((p): p is NotifyPayload => p.kind === "notify" && p.notifyType < 16384);
  if (err) return failed(err.notifyType, `CREATE_CHILD_SA refused with notify ${err.notifyType}`);
  const sa = ps.find((p) => p.kind === "sa");
  const nr = ps.find((p) => p.kind === "nonce");
  const tsi = selectorsOf(ps, PayloadType.TSi);
  const tsr = selectorsOf(ps, PayloadType.TSr);
  const chosen = sa && acceptResponse(sa.proposals, ctx.cfg.espProposals, "optional");
  if (!chosen || !nr || chosen.spi.length !== 4) return failed(0, "the response's SA or Nonce is missing or not one we offered");
  if (!tsi || !tsr || !tsi.length || !tsr.length || !within(tsi, pending.tsLocal) || !within(tsr, pending.tsRemote)) {
    return failed(0, "the response's traffic selectors are not within ours");
  }
  let pfsSecret: Uint8Array | undefined;
  if (chosen.dh !== undefined) {
    const ke = ps.find((p) => p.kind === "ke");
    if (!pending.ke || !ke || ke.group !== pending.ke.group || chosen.dh !== pending.ke.group) return failed(0, "PFS group or KE payload does not match ours");
    const s = pending.ke.secret(ke.data);
    if (!s.ok) return failed(0, s.error.detail);
    pfsSecret = s.secret;
  }
  const mode = initiatorMode(ctx.cfg.mode, ps);
  if (!mode.ok) {
    recordDoomedChild(ctx, { chosen, spiIn: pending.spiIn, tsLocal: tsi, tsRemote: tsr });
    return [{ type: "childSaFailed", ike: ctx.cfg.name, notify: 0, detail: mode.detail, deleting: pending.spiIn, ...rekeyOf }];
  }
  return [establishChild(ctx, { chosen, spiIn: pending.spiIn, tsLocal: tsi, tsRemote: tsr, ni: pending.ni, nr: nr.data, exchangeInitiator: true, pfsSecret, rekeyOf: pending.rekeyOf, mode: ctx.cfg.mode })];
}
