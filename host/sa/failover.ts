// Which peer carries a primary's prefixes now (`backup_for`, config/selectors.ts):
// the primary while the worker holds an outbound SA of it, else its backup
// while that has one, else nobody (traffic drops as NO_POLICY). Worked out
// from each applied desired state (lifecycle.ts commit), so that it is what
// the SPD does: plan.ts leaves an IKE peer without a CHILD_SA out, and with
// it its SPD entries, which is what moves the traffic.
import type { Config } from "../config/model.ts";
import type { PeerSpec } from "./spec.ts";

/** One primary and its backup; `via` is the one carrying the shared prefixes now (null: neither has an SA). */
export interface FailoverState {
  primary: string;
  backup: string;
  via: string | null;
}

/** Emitted on each change of `via` (and once at the first apply for every pair). */
export interface FailoverSwitch extends FailoverState {
  from: string | null;
}

/** The carrier of every (primary, backup) pair of `config` once `peers` is applied. */
export function failoverStates(config: Config, peers: readonly PeerSpec[]): FailoverState[] {
  const up = new Set(peers.filter((p) => p.sas.length > 0).map((p) => p.name));
  return config.peers
    .filter((b) => b.backupFor !== undefined)
    .map((b) => {
      const primary = b.backupFor!;
      return { primary, backup: b.name, via: up.has(primary) ? primary : up.has(b.name) ? b.name : null };
    });
}

/** The switches from `before` to `after` (pairs new in `after` count as switched from null). */
export function failoverSwitches(before: readonly FailoverState[], after: readonly FailoverState[]): FailoverSwitch[] {
  const old = new Map(before.map((s) => [`${s.primary}\n${s.backup}`, s.via]));
  const out: FailoverSwitch[] = [];
  for (const s of after) {
    const from = old.has(`${s.primary}\n${s.backup}`) ? old.get(`${s.primary}\n${s.backup}`)! : null;
    if (from !== s.via) out.push({ ...s, from });
  }
  return out;
}

/** The log line of a switch. */
export function describeSwitch(s: FailoverSwitch): string {
  const what = `failover: ${s.primary}'s prefixes`;
  if (s.via === null) return `${what} have no carrier (${s.primary} and its backup ${s.backup} both without SAs)`;
  if (s.via === s.backup) return `${what} now via the backup ${s.backup} (${s.primary} has no SA: dead or not up yet)${s.from ? `, was ${s.from}` : ""}`;
  return `${what} now via ${s.primary}${s.from ? ` again (was ${s.from})` : ""}`;
}
