// An IKE SA's configuration from plain text values (addresses, CIDRs, proposal
// strings, a PSK or PEM certificates), for tests and tools. A wesp config's `peers[].ike` block
// becomes one through manager.ts `managedPeer` instead.
import { X509Certificate, createPrivateKey } from "node:crypto";
import { parseAddress } from "../config/addr.ts";
import { dnToDer } from "./certs.ts";
import { IdType } from "./constants.ts";
import { parseProposal, type ProposalSpec } from "./proposals.ts";
import { tsFromCidrs } from "./ts.ts";
import type { Identity, IkeSaConfig } from "./types.ts";

export interface IkePeerText {
  name: string;
  /** Our address and the peer's; identities default to them (ID_IPV4_ADDR / ID_IPV6_ADDR, §3.5). */
  local: string;
  remote: string;
  /** Identities as text, read as strongSwan does: an IP address, a DN ("C=CH, O=wesp, CN=x"), user@domain (RFC822), else an FQDN ("@" before it optional). */
  localId?: string;
  remoteId?: string;
  psk: string;
  /** Certificates (PEM) instead of the PSK: ours first then intermediates, our key, the CAs we trust. */
  certs?: { chain: string[]; key: string; cas: string[]; rsaPss?: boolean };
  /** RFC 7383 fragment size (types.ts `fragmentSize`). */
  fragmentSize?: number;
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

/** ID payload contents for an address, a DN, an e-mail address or a name (§3.5); throws RangeError for a DN it cannot read. */
export function identity(text: string): Identity {
  const a = parseAddress(text);
  if (a.ok) return { idType: a.value.family === 4 ? IdType.IPV4_ADDR : IdType.IPV6_ADDR, data: a.value.bytes };
  const utf8 = (s: string) => new TextEncoder().encode(s);
  if (text.includes("=")) return { idType: IdType.DER_ASN1_DN, data: dnToDer(text) };
  if (text.startsWith("@")) return { idType: IdType.FQDN, data: utf8(text.slice(1)) };
  if (text.includes("@")) return { idType: IdType.RFC822_ADDR, data: utf8(text) };
  return { idType: IdType.FQDN, data: utf8(text) };
}

/** A config file's typed identity (host/config/model.ts IkeIdentity) as ID payload contents (§3.5); throws RangeError for a bad DN or address. */
export function configIdentity(id: { type: "ipv4" | "ipv6" | "fqdn" | "rfc822" | "dn"; value: string }): Identity {
  const utf8 = new TextEncoder().encode(id.value);
  switch (id.type) {
    case "ipv4":
    case "ipv6": {
      const a = parseAddress(id.value);
      if (!a.ok) throw new RangeError(`${id.value} is not an address`);
      return { idType: a.value.family === 4 ? IdType.IPV4_ADDR : IdType.IPV6_ADDR, data: a.value.bytes };
    }
    case "fqdn": return { idType: IdType.FQDN, data: utf8 };
    case "rfc822": return { idType: IdType.RFC822_ADDR, data: utf8 };
    case "dn": return { idType: IdType.DER_ASN1_DN, data: dnToDer(id.value) };
  }
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
    ...(t.certs ? {
      certs: {
        chain: t.certs.chain.map((p) => new X509Certificate(p)), key: createPrivateKey(t.certs.key),
        cas: t.certs.cas.map((p) => new X509Certificate(p)), rsaPss: t.certs.rsaPss,
      },
    } : {}),
    fragmentSize: t.fragmentSize,
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
