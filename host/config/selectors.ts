// Which selectors a peer's SPD entries and CHILD_SAs carry beyond "our
// local_prefixes ↔ its prefixes": the two things a hub-and-spoke VPN with a
// backup hub needs (issue 8 item 7; net2cloud §5.4–§5.5).
//
// Transit (a hub). A packet from spoke A to spoke B arrives on A's SA with
// B's prefix as its destination. RFC 4301 §5.2 step 4 checks it against A's
// SA's selectors — local side = B's prefix — so A's local selectors must hold
// B's prefixes, and, leaving towards B, B's must hold A's. A `transit` peer's
// local selectors are therefore `local_prefixes` plus every other transit
// peer's prefixes, in the SPD (install.ts) and in the traffic selectors IKE
// proposes and narrows to (RFC 7296 §2.9: the spoke proposes TSr = the hub's
// and the other spokes' prefixes; the hub's TSr for that spoke is the same
// set, so neither side narrows anything away). A family without
// local_prefixes already has the whole family as its local selector
// (provision.ts) and gets nothing added.
//
// Backup (failover). `backup_for: P` on peer B: the prefixes B shares with P
// go to P while P has SAs and to B otherwise. The SPD is ordered and its
// first match wins (RFC 4301 §4.4.1), so B's entries sit behind everyone
// else's (BACKUP_PRIORITY); P's entries exist only while P has an SA
// (install.ts setPolicies, plan.ts leaves an IKE peer without CHILD_SA out),
// so P's liveness decides: IKE declares P dead after `dpd` seconds of silence
// and one more `dpd` of unanswered checks (ike/runtime.ts retransmitFor),
// removes its SAs and with them its entries — B's then match; when P is back
// its new CHILD_SA brings its entries back in front. Static (`sas`) or
// controller-made keys have no liveness signal, so the primary must be an
// IKE peer with dpd > 0 (checkFailover). B's entries are B's own, so
// traffic B carried in is checked against B's SA (policy.ts) only once P's
// entries are gone: while P is up, packets for the shared prefixes that B
// still sends us are dropped (POLICY) — the moments around a switch, while
// the two ends have not both moved.
import type { Config, PeerConfig, Prefix } from "./model.ts";
import type { PathSegments, RawIssue } from "./schema_errors.ts";

/** SPD priority of ordinary entries (core.ts addPolicy's default) and of a backup's, which match only when nothing else does. */
export const NORMAL_PRIORITY = 1000;
export const BACKUP_PRIORITY = 1100;

/** `p`'s local selectors: `local_prefixes`, and for a transit peer every other transit peer's prefixes of a family we list local prefixes of. */
export function localSelectors(config: Config, p: PeerConfig): Prefix[] {
  const own = config.node.localPrefixes;
  if (!p.transit) return own;
  const families = new Set(own.map((x) => x.family));
  const seen = new Set(own.map((x) => x.text));
  const out = [...own];
  for (const q of config.peers) {
    if (q === p || !q.transit) continue;
    for (const x of q.prefixes) {
      if (!families.has(x.family) || seen.has(x.text)) continue;
      seen.add(x.text);
      out.push(x);
    }
  }
  return out;
}

/** Whether prefixes of peers `a` and `b` may overlap: one backs the other up. */
export function backupPair(a: PeerConfig | undefined, b: PeerConfig | undefined): boolean {
  return !!a && !!b && a !== b && (a.backupFor === b.name || b.backupFor === a.name);
}

/**
 * The rules of `backup_for`: it names another peer; that primary has a
 * liveness signal (IKE with dpd > 0); no chains (a backup is nobody's
 * primary, a primary no backup) and one backup per primary.
 */
export function checkFailover(c: Config, errors: RawIssue[]): void {
  const byName = new Map(c.peers.map((p) => [p.name, p]));
  const taken = new Map<string, string>();
  c.peers.forEach((b, i) => {
    if (b.backupFor === undefined) return;
    const at: PathSegments = ["peers", i, "backup_for"];
    const p = byName.get(b.backupFor);
    if (!p) return void errors.push({ at, message: `names no peer of this node (have: ${c.peers.map((x) => x.name).join(", ")})` });
    if (p === b) return void errors.push({ at, message: "a peer cannot back itself up" });
    if (p.backupFor !== undefined) return void errors.push({ at, message: `${p.name} is itself a backup (of ${p.backupFor}): no chains` });
    if (c.peers.some((x) => x.backupFor === b.name)) return void errors.push({ at, message: `${b.name} is a primary (another peer backs it up): no chains` });
    if (!p.ike || !p.ike.dpd) {
      return void errors.push({ at, message: `${p.name} has no liveness signal: failover needs the primary to be an IKE peer with dpd > 0 (static or controller-made SAs never go down)` });
    }
    const other = taken.get(p.name);
    if (other !== undefined) return void errors.push({ at, message: `${p.name} already has a backup (${other}): one per primary` });
    taken.set(p.name, b.name);
  });
}
