// Controller-driven rekeying of one SA pair, in the order of RFC 9061 §4.1.2
// ("Rekeying process", IKE-less case) — the SQL half, run inside the store's
// transactions (sql_store.ts) with the VPN's row locked, so two replicas
// hearing the same sadb-expire, or the same CE report, make one generation and
// take each step once.
//
//   sadb-expire (soft) of the pair's newest SA
//     │  generation g+1 made, both directions "new": both CEs install them
//     ▼  inbound only (config version N+1 lists g first, g+1 second)
//   both CEs report applied ≥ N+1
//     │  g+1 "active", g "old": outbound switches (N+2 lists g+1 first)
//     ▼
//   both CEs report applied ≥ N+2
//     │  g deleted (N+3): the CEs remove it; if an SA of g+1 was reported
//     ▼  expired meanwhile, generation g+2 starts at once
//
// A step waits for *both* CEs: a sender may switch to the new SA only once
// its receiver accepts it, and the old inbound SA goes only once nothing is
// sent on it any more. SA rows are one per direction; both directions of a
// pair always share a generation's state.
//
// Each rekey costs three VPN versions, so every CE of the VPN pulls three
// configs: a CE (broken, or hostile) reporting each new generation expired at
// once would have the whole VPN pull without end. RFC 9061 leaves the pace to
// the controller; here a generation is replaced no sooner than
// minGenerationAgeMs after it was made (an earlier report is "early", and the
// CE sends it again after `retryAfter` seconds).
import type { Sql } from "./db.ts";
import { StoreError, type SaLifetime, type SaState } from "./model.ts";
import type { SiteRow, VpnRow } from "./sql_store.ts";
import type { SaSeal } from "./store.ts";

/** One SA as a CE names it: its sender, its receiver, the receiver's SPI. */
export interface SaRef {
  src: string;
  dst: string;
  spi: number;
}

/** Seals the key of a new SA (the controller makes it: ../keys.ts). */
export type RekeySeal = (d: { src: string; dst: string; spi: number; generation: number }) => SaSeal;

/**
 * What a sadb-expire did: "rekeying" — the next generation was made;
 * "pending" — the pair is mid-rekey, the next one starts when it ends;
 * "superseded" — the SA is of an older generation, already replaced.
 */
export type ExpireOutcome =
  | { outcome: "rekeying"; generation: number; version: number }
  | { outcome: "pending" | "superseded"; generation: number }
  /** Reported sooner than minGenerationAgeMs after the generation was made: nothing done; report again after `retryAfter` s. */
  | { outcome: "early"; generation: number; retryAfter: number };

/** The floor between two generations when byte or packet limits set the pace (the controller cannot see it). */
export const MIN_REKEY_INTERVAL_S = 10;

/**
 * How old a generation must be before a report replaces it: half the time the
 * VPN's lifetimes give it (its soft lifetime, else 90 % of its hard one, where
 * CEs raise needs-rekey: docs/config.md) — a CE counts from the key's first
 * use, never before the controller made it, so an honest report is never
 * early, and no CE can make rekeys come more than twice as often as the
 * operator asked. Byte and packet limits may be reached sooner: then no more
 * than MIN_REKEY_INTERVAL_S (or that half, if less).
 */
export function minGenerationAgeMs(l: SaLifetime): number {
  const seconds = l.softSeconds ?? (l.seconds !== undefined ? l.seconds * 0.9 : undefined);
  const byVolume = [l.bytes, l.packets, l.softBytes, l.softPackets].some((v) => v !== undefined);
  const half = seconds !== undefined ? (seconds * 1000) / 2 : Infinity;
  return byVolume || seconds === undefined ? Math.min(half, MIN_REKEY_INTERVAL_S * 1000) : half;
}

/** A step taken for a pair (for the log): `to` is the state the newer generation entered, "removed" for the old one's deletion. */
export interface RekeyStep {
  a: string;
  b: string;
  generation: number;
  step: "outbound" | "removed" | "started";
  version: number;
}

/** What the store lends these functions inside its transaction. */
export interface RekeyCtx {
  q: Sql;
  now: number;
  bump(row: VpnRow): Promise<number>;
  freeSpi(dst: number): Promise<number>;
  siteRow(vpnId: number, name: string): Promise<SiteRow>;
}

interface PairRow { src_site: number; dst_site: number; generation: number; state: string; state_version: number; expired_at: number | null }

const PAIR = "((src_site = ? AND dst_site = ?) OR (src_site = ? AND dst_site = ?))";

/** CE `site` says SA `sa` reached a lifetime (RFC 9061 §5.3, ietf-i2nsf-ikeless `sadb-expire`); `lifetime`: the VPN's. */
export async function saExpired(c: RekeyCtx, vpn: VpnRow, lifetime: SaLifetime, site: string, sa: SaRef, seal: RekeySeal): Promise<ExpireOutcome> {
  if (sa.src !== site && sa.dst !== site) throw new StoreError("not-found", "no such SA of this site");
  const src = await c.siteRow(vpn.id, sa.src);
  const dst = await c.siteRow(vpn.id, sa.dst);
  const row = await c.q.get<{ generation: number; created_at: number }>("SELECT generation, created_at FROM sas WHERE src_site = ? AND dst_site = ? AND spi = ?", [src.id, dst.id, sa.spi]);
  if (!row) throw new StoreError("not-found", "no such SA of this site");
  const generation = Number(row.generation);
  const rows = await pairRows(c, src.id, dst.id);
  const newest = Math.max(...rows.map((r) => Number(r.generation)));
  if (generation < newest) return { outcome: "superseded", generation };
  const due = Number(row.created_at) + minGenerationAgeMs(lifetime);
  if (c.now < due) return { outcome: "early", generation, retryAfter: Math.ceil((due - c.now) / 1000) };
  await c.q.run("UPDATE sas SET expired_at = ? WHERE src_site = ? AND dst_site = ? AND spi = ? AND expired_at IS NULL", [c.now, src.id, dst.id, sa.spi]);
  if (rows.some((r) => r.state !== "active")) return { outcome: "pending", generation };
  const version = await c.bump(vpn);
  await makeGeneration(c, vpn, [src, dst], generation + 1, version, seal);
  return { outcome: "rekeying", generation: generation + 1, version };
}

/**
 * CE `site` applied the config of `version`: records it and takes every
 * rekey step that both CEs of a pair have now applied the previous step of.
 */
export async function reportApplied(c: RekeyCtx, vpn: VpnRow, site: string, version: number, seal: RekeySeal): Promise<RekeyStep[]> {
  if (!Number.isSafeInteger(version) || version < 0 || version > Number(vpn.version)) {
    throw new StoreError("invalid", `version: VPN "${vpn.name}" is at version ${vpn.version}`);
  }
  const me = await c.siteRow(vpn.id, site);
  await c.q.run("UPDATE sites SET applied_version = ? WHERE id = ? AND applied_version < ?", [version, me.id, version]);
  const moving = await c.q.all<PairRow>("SELECT src_site, dst_site, generation, state, state_version, expired_at FROM sas WHERE vpn_id = ? AND state <> 'active'", [vpn.id]);
  const sites = new Map((await c.q.all<{ id: number; name: string; applied_version: number }>(
    "SELECT id, name, applied_version FROM sites WHERE vpn_id = ?", [vpn.id])).map((s) => [Number(s.id), s]));
  const done = new Set<string>();
  const steps: RekeyStep[] = [];
  let version2: number | undefined;
  for (const r of moving) {
    const [lo, hi] = [Number(r.src_site), Number(r.dst_site)].sort((x, y) => x - y);
    const key = `${lo}:${hi}`;
    const a = sites.get(lo)!;
    const b = sites.get(hi)!;
    if (done.has(key)) continue;
    done.add(key);
    const applied = Math.min(Number(a.applied_version), Number(b.applied_version));
    if (Number(r.state_version) > applied) continue;
    version2 ??= await c.bump(vpn);
    const v = version2;
    const gen = Number(r.generation);
    const state = r.state as SaState;
    if (state === "new") {
      // RFC 9061 §4.1.2 step 3: both receivers hold generation g+1 inbound, so senders switch to it.
      await c.q.run(`UPDATE sas SET state = 'old', state_version = ? WHERE state = 'active' AND ${PAIR}`, [v, lo, hi, hi, lo]);
      await c.q.run(`UPDATE sas SET state = 'active', state_version = ? WHERE state = 'new' AND ${PAIR}`, [v, lo, hi, hi, lo]);
      steps.push({ a: a.name, b: b.name, generation: gen, step: "outbound", version: v });
    } else {
      // Step 4: nothing is sent on the old generation any more; remove it.
      await c.q.run(`DELETE FROM sas WHERE state = 'old' AND ${PAIR}`, [lo, hi, hi, lo]);
      steps.push({ a: a.name, b: b.name, generation: gen, step: "removed", version: v });
      const rest = await pairRows(c, lo, hi);
      if (rest.some((x) => x.expired_at !== null)) {
        const next = Math.max(...rest.map((x) => Number(x.generation))) + 1;
        await makeGeneration(c, vpn, [siteRef(a), siteRef(b)], next, v, seal);
        steps.push({ a: a.name, b: b.name, generation: next, step: "started", version: v });
      }
    }
  }
  return steps;
}

function siteRef(s: { id: number; name: string }): { id: number; name: string } {
  return { id: Number(s.id), name: s.name };
}

async function pairRows(c: RekeyCtx, x: number, y: number): Promise<PairRow[]> {
  return c.q.all<PairRow>(`SELECT src_site, dst_site, generation, state, state_version, expired_at FROM sas WHERE ${PAIR}`, [x, y, y, x]);
}

/** Both directions of `generation`, "new" (inbound only), each with a fresh SPI its receiver does not use and a fresh sealed key. */
async function makeGeneration(c: RekeyCtx, vpn: VpnRow, [x, y]: { id: number; name: string }[], generation: number, version: number, seal: RekeySeal): Promise<void> {
  for (const [src, dst] of [[x, y], [y, x]]) {
    const spi = await c.freeSpi(dst.id);
    const s = seal({ src: src.name, dst: dst.name, spi, generation });
    await c.q.run(
      `INSERT INTO sas (vpn_id, src_site, dst_site, generation, spi, suite, sealed_key, created_at, state, state_version)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'new', ?)`,
      [vpn.id, src.id, dst.id, generation, spi, s.suite, s.sealedKey, c.now, version]);
  }
}
