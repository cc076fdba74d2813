// The NAT in front of site C: a namespace doing source NAT with nftables
// (masquerade on its outside interface), as a home or carrier-grade NAT would.
//
// UDP flows get a source port from 20000-20999 instead of keeping their own,
// so C's ESP-in-UDP (RFC 3948) leaves as 192.0.2.3:20xxx, not :4500. A and B
// are configured with 192.0.2.3:4500 and must follow the real mapping from
// authenticated packets: this is what makes the NAT traversal visible.
// Nothing is forwarded from outside in: only replies to flows C opened pass.
import { IF, NAT_INSIDE, NAT_OUTSIDE, NAT_PORTS, NS, SITES, WAN_LEN } from "./plan.ts";
import type { Lab } from "../lab/lab.ts";

/**
 * nftables rules for a masquerading NAT leaving by interface `outside`: UDP
 * flows get a source port from NAT_PORTS (so a translated flow is visibly not
 * its own port), everything else keeps its port. Also the NAT of the tests.
 */
export function masqueradeRules(outside: string): string {
  return `
table ip nat {
  chain post {
    type nat hook postrouting priority srcnat;
    oifname "${outside}" meta l4proto udp masquerade to :${NAT_PORTS.first}-${NAT_PORTS.last}
    oifname "${outside}" masquerade
  }
}
`;
}

/**
 * The NAT namespace's addresses and, with `translate` (nft is installed), its
 * masquerade. Without it the namespace is a plain router: A and B get a route
 * to C's private network through it, and learn C's untranslated address from
 * C's authenticated packets just as they would learn the NAT's mapping.
 */
export async function setUpNat(lab: Lab, translate = true): Promise<void> {
  await lab.at(NS.nat).ip("addr", "add", `${NAT_OUTSIDE}/${WAN_LEN}`, "dev", IF.natOutside);
  await lab.at(NS.nat).ip("addr", "add", `${NAT_INSIDE.nat}/${NAT_INSIDE.len}`, "dev", IF.natInside);
  if (translate) {
    await lab.at(NS.nat).run(["nft", "-f", "-"], { input: masqueradeRules(IF.natOutside) });
    return;
  }
  const inside = `${NAT_INSIDE.nat.replace(/\.\d+$/, ".0")}/${NAT_INSIDE.len}`;
  for (const s of SITES) if (!s.behindNat) await lab.at(NS.ce(s)).ip("route", "add", inside, "via", NAT_OUTSIDE);
}

export interface NatMapping {
  /** Inside source as C sent it. */
  inside: string;
  /** The same flow as the outside sees it. */
  outside: string;
  /** Where it goes. */
  remote: string;
}

/**
 * The NAT's UDP mappings, from its connection tracking table
 * (`/proc/net/nf_conntrack`, read inside the NAT namespace): the original
 * tuple's source, and the reply tuple's destination, which is the translated source.
 */
export async function natMappings(lab: Lab): Promise<NatMapping[]> {
  const r = await lab.at(NS.nat).exec(["cat", "/proc/net/nf_conntrack"]);
  if (r.code !== 0) return [];
  return parseConntrack(r.stdout);
}

export function parseConntrack(text: string): NatMapping[] {
  const out: NatMapping[] = [];
  for (const line of text.split("\n")) {
    if (!/\budp\b/.test(line)) continue;
    const kv = [...line.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1], m[2]] as const);
    const get = (k: string, n: number) => kv.filter(([key]) => key === k)[n]?.[1];
    const src = get("src", 0), dst = get("dst", 0), sport = get("sport", 0), dport = get("dport", 0);
    const rdst = get("dst", 1), rdport = get("dport", 1);
    if (!src || !rdst) continue;
    out.push({ inside: `${src}:${sport}`, outside: `${rdst}:${rdport}`, remote: `${dst}:${dport}` });
  }
  return out;
}

