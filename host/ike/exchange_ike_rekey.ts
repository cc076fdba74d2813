// Rekeying the IKE SA with CREATE_CHILD_SA (RFC 7296 §1.3.2, §2.18):
//   HDR, SK {SA, Ni, KEi} →  ← HDR, SK {SA, Nr, KEr}
// The SA payload's proposals are for protocol IKE and carry the sender's SPI for
// the new IKE SA (8 bytes, §3.3.1). The side that starts the rekey is the new IKE
// SA's initiator (§2.18), its SPI the new SPIi. Keys: SKEYSEED = prf(SK_d (old),
// g^ir (new) | Ni | Nr), then §2.14 with the new SPIs; message IDs start again
// at 0. The CHILD_SAs move to the new IKE SA; the rekey's initiator then deletes
// the old one. Simultaneous IKE SA rekeys (§2.8.2) are resolved in ike_sa.ts.
import { Notify, Protocol, SPI_BYTES } from "./constants.ts";
import { createKeyExchange, type KeyExchange } from "./dh.ts";
import type { NotifyPayload, Payload } from "./payloads.ts";
import { deriveIkeSaKeys } from "./prf.ts";
import { acceptResponse, selectProposal, toProposals, type Chosen } from "./proposals.ts";
import type { SaContext } from "./context.ts";

const NONCE_BYTES = 32;

/** A CREATE_CHILD_SA whose SA payload proposes protocol IKE rekeys the IKE SA (§1.3.2). */
export const isIkeRekey = (ps: readonly Payload[]): boolean => ps.some((p) => p.kind === "sa" && p.proposals.some((q) => q.protocol === Protocol.IKE));

export interface PendingIkeRekey {
  spi: Uint8Array;
  ni: Uint8Array;
  ke: KeyExchange;
}

export type IkeRekeyOutcome = { ok: true; next: SaContext } | { ok: false; notify: number; detail: string };

function freshSpi(ctx: SaContext): Uint8Array {
  let spi = ctx.deps.random(SPI_BYTES);
  while (spi.every((b) => b === 0)) spi = ctx.deps.random(SPI_BYTES);
  return spi;
}

/** The new IKE SA's state: keys per §2.18, everything else carried over from the old one. */
function successor(old: SaContext, o: { initiator: boolean; spiI: Uint8Array; spiR: Uint8Array; chosen: Chosen; secret: Uint8Array; ni: Uint8Array; nr: Uint8Array }): SaContext {
  const { keys } = deriveIkeSaKeys({
    prf: o.chosen.prf!, encr: o.chosen.encr, integ: o.chosen.integ, sharedSecret: o.secret, ni: o.ni, nr: o.nr, spiI: o.spiI, spiR: o.spiR,
    rekey: { prf: old.ike!.prf!, skD: old.keys!.skD },
  });
  return {
    cfg: old.cfg, deps: old.deps, initiator: o.initiator, spiI: o.spiI, spiR: o.spiR, path: { ...old.path },
    ni: o.ni, nr: o.nr, group: o.chosen.dh!, ike: o.chosen, keys,
    natHere: old.natHere, natThere: old.natThere, behindNat: old.behindNat, peerId: old.peerId, peerCert: old.peerCert,
    fragmentation: old.fragmentation, // RFC 7383 §2.3: negotiated for the IKE SA, kept by its rekeyed successor
    children: [], // moved by the IKE SA once the exchange is complete
  };
}

/** Our request: proposals with our new SPI, a nonce, KE in the group the current IKE SA uses. */
export function ikeRekeyRequest(ctx: SaContext): { payloads: Payload[]; pending: PendingIkeRekey } {
  const pending: PendingIkeRekey = { spi: freshSpi(ctx), ni: ctx.deps.random(NONCE_BYTES), ke: createKeyExchange(ctx.group)! };
  return {
    payloads: [
      { kind: "sa", proposals: toProposals(ctx.cfg.ikeProposals, pending.spi) },
      { kind: "nonce", data: pending.ni },
      { kind: "ke", group: pending.ke.group, data: pending.ke.publicValue },
    ],
    pending,
  };
}

/** The responder's side: the response payloads and, when accepted, the new IKE SA's state. */
export function onIkeRekeyRequest(ctx: SaContext, ps: readonly Payload[]): { payloads: Payload[]; outcome: IkeRekeyOutcome } {
  const refuse = (n: number, detail: string, data: Uint8Array = new Uint8Array(0)) => ({
    payloads: [{ kind: "notify", protocol: 0, spi: new Uint8Array(0), notifyType: n, data } as NotifyPayload],
    outcome: { ok: false as const, notify: n, detail },
  });
  const sa = ps.find((p) => p.kind === "sa");
  const ni = ps.find((p) => p.kind === "nonce");
  const ke = ps.find((p) => p.kind === "ke");
  if (!sa || !ni || !ke) return refuse(Notify.INVALID_SYNTAX, "IKE SA rekey without SA, Nonce or KE");
  const chosen = selectProposal(sa.proposals.filter((p) => p.protocol === Protocol.IKE && p.spi.length === SPI_BYTES), ctx.cfg.ikeProposals);
  if (!chosen) return refuse(Notify.NO_PROPOSAL_CHOSEN, "no acceptable IKE proposal for the rekey");
  const g = Uint8Array.of(chosen.dh! >> 8, chosen.dh!);
  if (ke.group !== chosen.dh) return refuse(Notify.INVALID_KE_PAYLOAD, `KE for group ${ke.group}, chose ${chosen.dh}`, g);
  const ours = createKeyExchange(chosen.dh!)!;
  const secret = ours.secret(ke.data);
  if (!secret.ok) return refuse(Notify.INVALID_KE_PAYLOAD, secret.error.detail, g);
  const spi = freshSpi(ctx);
  const nr = ctx.deps.random(NONCE_BYTES);
  const next = successor(ctx, { initiator: false, spiI: chosen.spi, spiR: spi, chosen, secret: secret.secret, ni: ni.data, nr });
  return {
    payloads: [
      { kind: "sa", proposals: [{ ...chosen.proposal, spi }] },
      { kind: "nonce", data: nr },
      { kind: "ke", group: ours.group, data: ours.publicValue },
    ],
    outcome: { ok: true, next },
  };
}

/** The initiator's side: the new IKE SA's state from the response. */
export function onIkeRekeyResponse(ctx: SaContext, pending: PendingIkeRekey, ps: readonly Payload[]): IkeRekeyOutcome {
  const err = ps.find((p): p is NotifyPayload => p.kind === "notify" && p.notifyType < 16384);
  if (err) return { ok: false, notify: err.notifyType, detail: `IKE SA rekey refused with notify ${err.notifyType}` };
  const sa = ps.find((p) => p.kind === "sa");
  const nr = ps.find((p) => p.kind === "nonce");
  const ke = ps.find((p) => p.kind === "ke");
  const chosen = sa && acceptResponse(sa.proposals, ctx.cfg.ikeProposals);
  if (!chosen || !nr || !ke || chosen.spi.length !== SPI_BYTES || chosen.spi.every((b) => b === 0)) {
    return { ok: false, notify: 0, detail: "the rekey response's SA, Nonce or KE is missing or not one we offered" };
  }
  if (chosen.dh !== pending.ke.group || ke.group !== pending.ke.group) return { ok: false, notify: 0, detail: `rekey KE group ${ke.group}, ours ${pending.ke.group}` };
  const secret = pending.ke.secret(ke.data);
  if (!secret.ok) return { ok: false, notify: 0, detail: secret.error.detail };
  return { ok: true, next: successor(ctx, { initiator: true, spiI: pending.spi, spiR: chosen.spi, chosen, secret: secret.secret, ni: pending.ni, nr: nr.data }) };
}
