// A CHILD_SA as the IKE SA remembers it, and the event that hands it to the
// SA-lifecycle module. Keys per RFC 7296 §2.17: KEYMAT = prf+(SK_d, [g^ir (new) |]
// Ni | Nr), where "initiator" and "responder" are the roles in the exchange that
// created the CHILD_SA (IKE_AUTH, or a later CREATE_CHILD_SA which either side
// may start), and Ni, Nr are that exchange's nonces.
import type { Chosen } from "./proposals.ts";
import type { Payload, TrafficSelector } from "./payloads.ts";
import { deriveChildSaKeys } from "./prf.ts";
import type { SaContext } from "./context.ts";
import type { ChildMode, ChildSaEstablished } from "./types.ts";

export interface ChildRecord {
  /** SPI we receive on (we chose it) and the peer's, which we send with. */
  spiIn: number;
  spiOut: number;
  chosen: Chosen;
  tsLocal: TrafficSelector[];
  tsRemote: TrafficSelector[];
}

export const spiBytes = (n: number): Uint8Array => Uint8Array.of(n >>> 24, n >>> 16, n >>> 8, n);
export const spiNumber = (b: Uint8Array): number => ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;

export interface NewChild {
  chosen: Chosen;
  spiIn: number;
  tsLocal: TrafficSelector[];
  tsRemote: TrafficSelector[];
  /** Nonces of the exchange that creates it. */
  ni: Uint8Array;
  nr: Uint8Array;
  /** We sent that exchange's request. */
  exchangeInitiator: boolean;
  /** g^ir of a CREATE_CHILD_SA with PFS. */
  pfsSecret?: Uint8Array;
  /** Our inbound SPI of the CHILD_SA this one replaces (a rekey, §1.3.3). */
  rekeyOf?: number;
  /** As negotiated (child_mode.ts). */
  mode: ChildMode;
}

/** Derives the keys, records the CHILD_SA on the IKE SA and returns its event. */
export function establishChild(ctx: SaContext, n: NewChild): ChildSaEstablished {
  const c = n.chosen;
  const k = deriveChildSaKeys(ctx.ike!.prf!, ctx.keys!.skD, c.encr, c.integ, n.ni, n.nr, n.pfsSecret);
  // i→r keys protect what the exchange's initiator sends
  const [encOut, integOut, encIn, integIn] = n.exchangeInitiator ? [k.encI, k.integI, k.encR, k.integR] : [k.encR, k.integR, k.encI, k.integI];
  const spiOut = spiNumber(c.spi);
  ctx.children.push({ spiIn: n.spiIn, spiOut, chosen: c, tsLocal: n.tsLocal, tsRemote: n.tsRemote });
  return {
    type: "childSaEstablished",
    ike: ctx.cfg.name,
    spiIn: n.spiIn,
    spiOut,
    suite: c.suite!,
    keyIn: encIn,
    keyOut: encOut,
    authKeyIn: c.integ ? integIn : undefined,
    authKeyOut: c.integ ? integOut : undefined,
    esn: c.esn,
    mode: n.mode,
    encap: ctx.natHere || ctx.natThere ? "udp" : "raw",
    path: { ...ctx.path },
    tsLocal: n.tsLocal,
    tsRemote: n.tsRemote,
    lifetime: ctx.cfg.lifetime,
    initiator: n.exchangeInitiator,
    ...(n.rekeyOf !== undefined ? { rekeyOf: n.rekeyOf } : {}),
  };
}

/**
 * A CHILD_SA the peer set up in a mode we did not ask for (§1.3.1): recorded without
 * keys, only so that the Delete that follows names it; never handed to the data plane.
 */
export function recordDoomedChild(ctx: SaContext, n: Pick<NewChild, "chosen" | "spiIn" | "tsLocal" | "tsRemote">): void {
  ctx.children.push({ spiIn: n.spiIn, spiOut: spiNumber(n.chosen.spi), chosen: n.chosen, tsLocal: n.tsLocal, tsRemote: n.tsRemote });
}

/** Removes CHILD_SAs by our inbound SPIs; returns those that existed. */
export function forgetChildren(ctx: SaContext, spisIn: readonly number[]): number[] {
  const gone = ctx.children.filter((c) => spisIn.includes(c.spiIn)).map((c) => c.spiIn);
  ctx.children = ctx.children.filter((c) => !gone.includes(c.spiIn));
  return gone;
}

/** The Nonce payload's data among `ps` (empty if none). */
export const nonceOf = (ps: readonly Payload[]): Uint8Array => ps.find((p) => p.kind === "nonce")?.data ?? new Uint8Array(0);

/** Octet-string order (§2.8.1 compares nonces "as octet strings"): bytewise, a prefix first. */
function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** §2.8.1: whether the lowest of the four nonces of two crossed rekeys is one of our exchange's. */
export function lowestNonceIsOurs(ours: readonly Uint8Array[], theirs: readonly Uint8Array[]): boolean {
  const lowest = [...ours, ...theirs].reduce((a, b) => (compareBytes(b, a) < 0 ? b : a));
  return ours.includes(lowest);
}
