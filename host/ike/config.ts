// An IKE SA's configuration from plain text values (addresses, CIDRs, proposal
// strings, a PSK), for tests and tools. A wesp config's `peers[].ike` block
// becomes one through manager.ts `managedPeer` instead.
import { parseAddress } from "../config/addr.ts";
import { IdType } from "./constants.ts";
import { parseProposal, type ProposalSpec } from "./proposals.ts";
import { tsFromCidrs } from "./ts.ts";
import type { Identity, IkeSaConfig } from "./types.ts";

export interface IkePeerText {
  name: string;
  /** Our address and the peer's; identities default to them (ID_IPV4_ADDR / ID_IPV6_ADDR, §3.5). */
  local: string;
  remote: string;
  /** Identities as text: an IP address, or an FQDN. */
  localId?: string;
  remoteId?: string;
  psk: string;
  ike: string[];
  esp: string[];
  localTs: string[];
  remoteTs: string[];
  ports?: { ike: number; natt: number };
  forceEncap?: boolean;
  keepaliveSeconds?: number;
  dpdSeconds?: number;
  lifetimeSeconds?: number;
  retransmit?: { baseMs: number; tries: number };
}

/** ID payload contents for an address or a name (§3.5). */
export function identity(text: string): Identity {
  const a = parseAddress(text);
  if (a.ok) return { idType: a.value.family === 4 ? IdType.IPV4_ADDR : IdType.IPV6_ADDR, data: a.value.bytes };
  return { idType: IdType.FQDN, data: new TextEncoder().encode(text) };
}

function proposals(texts: string[], p: "ike" | "esp"): ProposalSpec[] {
  return texts.map((t) => {
    const r = parseProposal(t, p);
    if (!r.ok) throw new RangeError(r.message);
    return r.spec;
  });
}

/** Builds the state machine's configuration; throws RangeError naming the first bad value. */
export function ikeSaConfig(t: IkePeerText): IkeSaConfig {
  if (!t.ike.length || !t.esp.length) throw new RangeError(`${t.name}: at least one IKE and one ESP proposal`);
  return {
    name: t.name,
    localId: identity(t.localId ?? t.local),
    remoteId: identity(t.remoteId ?? t.remote),
    psk: new TextEncoder().encode(t.psk),
    ikeProposals: proposals(t.ike, "ike"),
    espProposals: proposals(t.esp, "esp"),
    localTs: tsFromCidrs(t.localTs),
    remoteTs: tsFromCidrs(t.remoteTs),
    mode: "tunnel",
    lifetime: t.lifetimeSeconds ? { seconds: t.lifetimeSeconds } : {},
    ports: t.ports ?? { ike: 500, natt: 4500 },
    forceEncap: t.forceEncap,
    keepaliveSeconds: t.keepaliveSeconds,
    dpdSeconds: t.dpdSeconds,
    retransmit: t.retransmit,
  };
}
