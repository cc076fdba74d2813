// The demo's IKEv2 checks (checks.ts adds them with IKE, the default mode):
// every planned IKE SA up with one CHILD_SA that both ends and the key logs
// agree on, and NAT detection (RFC 7296 §2.23) pointing at site C alone.
//
// `natDetected` cannot tell the NAT apart: every demo peer has `nat_t`, which
// forces NAT-T (both ends then report it). `behindNat` can: it comes only from
// the peer's NAT_DETECTION_DESTINATION_IP hash, i.e. from the address and port
// the peer really saw (host/ike/exchange_init.ts).
import { PAIRS, SITES, siteById, type SiteId } from "./plan.ts";
import type { Check } from "./checks.ts";
import type { DemoResult } from "./run.ts";
import type { IkePeerStatus } from "../control/status.ts";

const hex = (spi: number) => "0x" + (spi >>> 0).toString(16).padStart(8, "0");
const name = (id: SiteId) => siteById(id).name;

function ikeOf(r: DemoResult, at: SiteId, peer: SiteId): IkePeerStatus | undefined {
  return r.status[at]?.ike?.find((p) => p.name === name(peer));
}

/** What is wrong with one planned pair (initiator i, responder j); empty when nothing. */
function pairProblems(r: DemoResult, i: SiteId, j: SiteId, suite: string): string[] {
  const at = `${name(i)} → ${name(j)}`;
  const [si, sj] = [ikeOf(r, i, j), ikeOf(r, j, i)];
  if (!si || !sj) return [`${at}: no IKE status from ${!si ? name(i) : name(j)}`];
  const out: string[] = [];
  for (const [s, who, role] of [[si, i, "initiator"], [sj, j, "responder"]] as const) {
    if (s.state !== "up") out.push(`${at}: ${name(who)} says ${s.state}${s.lastError ? ` (${s.lastError})` : ""}`);
    else if (s.role !== role) out.push(`${at}: ${name(who)} is ${s.role}, not ${role}`);
    if (s.alarm) out.push(`${at}: ${name(who)} raised the alarm`);
    if (s.childSas.length !== 1) out.push(`${at}: ${name(who)} has ${s.childSas.length} CHILD_SAs`);
  }
  const [ci, cj] = [si.childSas[0], sj.childSas[0]];
  if (!ci || !cj) return out;
  if (ci.spiOut !== cj.spiIn || ci.spiIn !== cj.spiOut) out.push(`${at}: SPIs not mirrored (${hex(ci.spiIn)}/${hex(ci.spiOut)} vs ${hex(cj.spiIn)}/${hex(cj.spiOut)})`);
  for (const [who, peer, c] of [[i, j, ci], [j, i, cj]] as const) {
    const sending = r.status[who]?.peers.find((p) => p.name === name(peer))?.outbound?.spi;
    if (sending !== c.spiOut) out.push(`${at}: ${name(who)}'s data plane sends on ${sending === undefined ? "nothing" : hex(sending)}, not the CHILD_SA's ${hex(c.spiOut)}`);
    const logged = r.sas.find((s) => s.spi === c.spiOut);
    if (!logged || logged.from !== who || logged.to !== peer || logged.suite !== suite) {
      out.push(`${at}: SPI ${hex(c.spiOut)} (${name(who)} → ${name(peer)}, ${suite}) ${logged ? `logged as ${name(logged.from)} → ${name(logged.to)}, ${logged.suite}` : "in no key log"}`);
    }
  }
  return out;
}

export function ikeChecks(r: DemoResult): Check[] {
  const checks: Check[] = [];
  const add = (n: string, ok: boolean, detail: string) => checks.push({ name: n, ok, detail });

  const wanted = PAIRS.length * 2; // SA directions, and key log lines: each CHILD_SA logged by both ends
  const problems = [
    ...PAIRS.flatMap((p) => pairProblems(r, p.ike.initiator, p.ike.initiator === p.a.id ? p.b.id : p.a.id, p.suite)),
    ...(r.keyLog?.problems ?? ["no key log read"]),
    ...(r.sas.length !== wanted ? [`${r.sas.length} SA directions in the key logs, not ${wanted}`] : []),
    ...(r.keyLog && r.keyLog.lines !== wanted ? [`${r.keyLog.lines} key log lines, not ${wanted}`] : []),
  ];
  const plan = PAIRS.map((p) => `${name(p.ike.initiator)} → ${name(p.ike.initiator === p.a.id ? p.b.id : p.a.id)}`).join(", ");
  add("IKE: every SA established", problems.length === 0, problems.join("; ")
    || `${PAIRS.length} IKE SAs, one initiator each (${plan}); each up at both ends with one CHILD_SA of its suite, SPIs mirrored, the data plane sending on it, both ends' key logs alike`);

  // §2.23: a NAT in front of C towards each peer, in front of nobody else. Without
  // nft C is routed, not translated: then nobody may claim a NAT.
  const c = SITES.find((s) => s.behindNat)!;
  const translated = r.tools.nft;
  const seen = SITES.flatMap((s) => SITES.filter((p) => p.id !== s.id).map((p) => ({ s, p, st: ikeOf(r, s.id, p.id) })));
  const wrong = seen.filter(({ s, st }) => st?.behindNat !== (translated && s.id === c.id) || (s.id === c.id && translated && !st?.natDetected));
  const says = (x: (typeof seen)[number]) => `${x.s.name} → ${x.p.name}: ${x.st?.behindNat === undefined ? "not established" : x.st.behindNat ? "behind a NAT" : "not behind a NAT"}`;
  add(translated ? `IKE: NAT detected for ${c.name}` : `IKE: no NAT in front of ${c.name}`, wrong.length === 0,
    wrong.length ? wrong.map(says).join("; ")
      : translated ? `${c.name} behind a NAT towards ${SITES.filter((s) => s.id !== c.id).map((s) => s.name).join(" and ")}, nobody else (RFC 7296 §2.23 NAT_DETECTION_DESTINATION_IP)`
        : `nobody behind a NAT (no nft: ${c.name} is routed), though every IKE SA uses NAT-T (nat_t forces it)`);
  return checks;
}
