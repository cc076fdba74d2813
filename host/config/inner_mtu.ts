// The room a peer's outbound SA leaves for inner packets within its path MTU.
// Asked of the core (host/core innerMtu → assembly/too_big.ts), where the
// usable-MTU arithmetic is defined once, for the SA's own size check and its
// ICMP "too big" answers; nothing is recomputed here. `wesp check` uses it to
// refuse a tunnel narrower than IPv6's 1280 bytes (semantic.ts).
import { innerMtu } from "../core/core.ts";
import type { PeerConfig, Suite, WanPort } from "./model.ts";
import { SUITES } from "./suites.ts";

/**
 * The largest inner packet of `innerFamily` that an outbound SA of peer `p`
 * (with `suite`, for the ESP modes) carries within `mtu` outer bytes on `wan`
 * — the SA as host/sa/install.ts would install it.
 */
export function innerRoom(p: PeerConfig, wan: WanPort, suite: Suite | undefined, mtu: number, innerFamily: 4 | 6): number {
  const plain = p.mode === "ipip" || p.mode === "gre";
  const gre = p.mode === "gre" || p.mode === "transport-gre";
  const params = {
    suite: plain ? ("none" as const) : SUITES[suite!].core,
    mode: p.mode,
    udp: !plain && p.encap === "udp", // RFC 3948 §2.1; plain tunnels are never UDP-encapsulated
    ...(gre && p.gre.key !== undefined ? { greKey: p.gre.key } : {}),
    greSeq: gre && p.gre.sequence,
  };
  return innerMtu(params, wan.address.family, mtu, innerFamily);
}
