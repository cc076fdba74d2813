// Inbound policy check after decapsulation (RFC 4301 §5.2 step 4; net2cloud
// §4.2): a packet that authenticated under an SA must also be one that SA is
// allowed to carry, or any peer could inject traffic for any address behind
// us ("spoofing" through a legitimate tunnel).
//
// The check asks the SPD the question an outbound reply would ask: with the
// inner packet's sides swapped (its destination is our local side, its
// source the remote side), the first matching entry must be PROTECT and
// belong to the same peer as the SA the packet arrived on. This reuses the
// SPD's order and its flow cache, so it costs one cached lookup per packet,
// and it accepts traffic on either of a peer's inbound SAs during a rekey.
import { ACTION_PROTECT, SA_PEER } from "./layout";
import { FLOW_KEY, flowKeyFromPacket, polAction, polPeer, spdLookup } from "./spd";

/**
 * True when the inner IP packet at `p` (`len` bytes) may arrive on the SA
 * whose record is `sa`. A packet that does not parse fails the check.
 */
export function inboundPolicyOk(sa: usize, p: usize, len: i32): bool {
  if (!flowKeyFromPacket(p, len, true)) return false;
  const i = spdLookup(FLOW_KEY);
  return i >= 0 && polAction(i) == ACTION_PROTECT && polPeer(i) == load<u32>(sa + SA_PEER);
}
