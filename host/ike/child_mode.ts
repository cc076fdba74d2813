// The CHILD_SA's mode (RFC 7296 §1.3.1, §3.10.1 USE_TRANSPORT_MODE), the same
// rule in IKE_AUTH and CREATE_CHILD_SA (new or rekey):
//
//   we want      request carries          responder (config)        response carries
//   tunnel       nothing                  tunnel    → tunnel        nothing
//                                         transport → refused       NO_PROPOSAL_CHOSEN
//   transport    N(USE_TRANSPORT_MODE)    transport → transport     N(USE_TRANSPORT_MODE)
//                                         tunnel    → declined      nothing (tunnel mode)
//
// §1.3.1: "If the responder declines the request, the CHILD_SA will be
// established in tunnel mode. If this is unacceptable to the initiator, the
// initiator MUST delete the SA." A wesp peer's mode is its config's (the data
// plane encapsulates per peer mode), so a declined request is always deleted.
// §1.3.1 names no notify for a responder that wants transport mode and is
// asked for tunnel mode; we refuse it with NO_PROPOSAL_CHOSEN, as strongSwan
// does when no child config accepts the requested mode.
import { Notify } from "./constants.ts";
import { findNotify } from "./message.ts";
import type { NotifyPayload, Payload } from "./payloads.ts";
import type { ChildMode } from "./types.ts";

/** §3.10.1: no SPI, Protocol ID 0, no data. */
export const useTransportMode = (): NotifyPayload => ({ kind: "notify", protocol: 0, spi: new Uint8Array(0), notifyType: Notify.USE_TRANSPORT_MODE, data: new Uint8Array(0) });

/** What a request (IKE_AUTH or CREATE_CHILD_SA) carries for our mode. */
export const modeRequest = (mode: ChildMode): Payload[] => (mode === "transport" ? [useTransportMode()] : []);

export type ResponderMode =
  | { ok: true; mode: ChildMode; payloads: Payload[] }
  | { ok: false; notify: number; detail: string };

/** The responder's decision on the request `ps` given its configured mode; `payloads` go into the response. */
export function responderMode(mine: ChildMode, ps: readonly Payload[]): ResponderMode {
  const asked = !!findNotify(ps, Notify.USE_TRANSPORT_MODE);
  if (mine === "transport") {
    if (asked) return { ok: true, mode: "transport", payloads: [useTransportMode()] };
    return { ok: false, notify: Notify.NO_PROPOSAL_CHOSEN, detail: "the initiator asked for tunnel mode; this peer is configured for transport mode (RFC 7296 §1.3.1)" };
  }
  // §1.3.1: declined by answering without the notify; the initiator deletes the SA if it minds
  return { ok: true, mode: "tunnel", payloads: [] };
}

/** The initiator's check of the response `ps`: the mode we asked for, or why the CHILD_SA must be deleted. */
export function initiatorMode(mine: ChildMode, ps: readonly Payload[]): { ok: true } | { ok: false; detail: string } {
  const granted = !!findNotify(ps, Notify.USE_TRANSPORT_MODE);
  if (mine === "transport" && !granted) return { ok: false, detail: "the responder declined transport mode (no USE_TRANSPORT_MODE in its response, RFC 7296 §1.3.1): deleting the tunnel-mode CHILD_SA" };
  if (mine === "tunnel" && granted) return { ok: false, detail: "the responder answered USE_TRANSPORT_MODE to a tunnel-mode request (RFC 7296 §1.3.1 allows it only in answer to one): deleting the CHILD_SA" };
  return { ok: true };
}
