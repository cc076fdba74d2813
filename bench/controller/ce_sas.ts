// One CE holding many SAs: a config shaped as the controller renders a hub's
// (render.ts: one peer per spoke, one SA pair each, inline keys), loaded as
// the agent loads it (parseConfig of its JSON, the caps of `wesp check`) and
// installed as a worker installs it (plan, SaTable.apply into a Core sized by
// coreSizing, durable sequence reservations through SeqStore in a state
// directory) — without the TUN and sockets, so no root is needed. Each peer
// has one SA pair; "SAs" below counts both directions.
import { mkdtempSync, rmSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KEY_BYTES } from "../../host/controller/keys.ts";
import { ConfigError, MAX_CONFIG_BYTES, MAX_VALUES, parseConfig } from "../../host/config/load.ts";
import type { Config } from "../../host/config/model.ts";
import { Core } from "../../host/core/core.ts";
import { coreSizing } from "../../host/pipeline/provision.ts";
import { plan } from "../../host/sa/plan.ts";
import { SaTable } from "../../host/sa/install.ts";
import { SeqStore } from "../../host/sa/seq_store.ts";
import { ensureStateDir } from "../../host/sa/state_file.ts";

/** Most ticks (10 ms apart) the journals are given to empty after an install (≥ 10 minutes of migration). */
const MIGRATE_TICKS = 60_000;

/** AES-256-GCM key material as configs write it: 32 key bytes and the 4-byte salt (RFC 4106 §8.1). */
export const KEYMAT_BYTES = KEY_BYTES["aes-256-gcm"];

/**
 * `n` independent keys of `bytes` bytes each, in hex, from one randomBytes
 * call (one call per config rather than one per key: 131,070 calls for the
 * largest hub). Each key is its own slice of the CSPRNG's output, so they
 * are as independent as separate calls would make them.
 */
export function keyHexes(n: number, bytes = KEYMAT_BYTES): string[] {
  const all = randomBytes(n * bytes).toString("hex");
  const w = 2 * bytes;
  return Array.from({ length: n }, (_, i) => all.slice(i * w, (i + 1) * w));
}

/** A hub's config with `peers` peers (≤ 65,535), each one SA pair of AES-256-GCM. */
export function hubConfig(peers: number, stateDir?: string, replayWindow?: number): Record<string, unknown> {
  const keys = keyHexes(2 * peers);
  return {
    version: 1,
    node: {
      name: "hub",
      wan: [{ name: "inet", address: "198.19.255.254", port: 4500, encap: "udp", trusted: false }],
      local_prefixes: ["172.16.0.0/16"],
      ...(stateDir ? { state_dir: stateDir } : {}),
    },
    peers: Array.from({ length: peers }, (_, j) => {
      const i = j + 1;
      return {
        name: `s${String(i).padStart(5, "0")}`, address: `198.${18 + ((i >> 16) & 1)}.${(i >> 8) & 255}.${i & 255}`, port: 4500,
        wan: "inet", nat_t: true, keepalive: 0, prefixes: [`10.${(i >> 8) & 255}.${i & 255}.0/24`], mode: "tunnel",
        sas: [{ spi_in: 0x1000 + i, spi_out: 0x100000 + i, suite: "aes-256-gcm", key_in: keys[2 * j], key_out: keys[2 * j + 1], ...(replayWindow ? { replay_window: replayWindow } : {}) }],
      };
    }),
  };
}

export interface LoadResult {
  peers: number;
  bytes: number;
  ok: boolean;
  /** Why the loader refused it (the cap and its value). */
  refused?: string;
  loadMs?: number;
}

function rssMiB(): number {
  return process.memoryUsage().rss / 2 ** 20;
}

/** Loads a `peers`-peer hub config as the agent does; the refusal when a cap stops it. */
export function tryLoad(peers: number, stateDir?: string): LoadResult & { config?: Config } {
  const text = JSON.stringify(hubConfig(peers, stateDir));
  const bytes = Buffer.byteLength(text);
  const t0 = performance.now();
  try {
    const r = parseConfig(text, { baseDir: process.cwd(), source: "<hub>" });
    return { peers, bytes, ok: true, loadMs: performance.now() - t0, config: r.config };
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return { peers, bytes, ok: false, refused: e.issues.map((i) => i.message).join("; ").slice(0, 200) };
  }
}

/** The largest peer count (±1 %) whose config loads, by bisection between a loading and a refused count. */
export function largestLoadable(lo: number, hi: number): LoadResult {
  let best = tryLoad(lo);
  if (!best.ok) return best;
  while (hi - lo > lo / 100) {
    const mid = Math.floor((lo + hi) / 2);
    const r = tryLoad(mid);
    if (r.ok) (lo = mid), (best = r);
    else hi = mid;
  }
  delete (best as { config?: Config }).config;
  return best;
}

export interface InstallResult {
  peers: number;
  sas: number;
  /** The SAs' replay window (undefined: the default, 1,024, which takes a 16 KiB pool block each). */
  replayWindow?: number;
  /** Why the core or the table refused it, when it did. */
  refused?: string;
  /** How the config was loaded: one file, or chunks under the caps, concatenated. */
  loadedAs: string;
  loadMs: number;
  planMs: number;
  installMs: number;
  /** One SeqStore.tick over every SA (the worker runs it every 10 ms). */
  tickMs: number;
  /**
   * From the install's end until every first reservation left its journal
   * for the key's own file (host/sa/migration.ts: ticks every 10 ms, as the
   * worker runs them, at the install's time so no idle inbound SA shrinks
   * its reservation meanwhile) and the journal was deleted.
   */
  migrateMs: number;
  rssBeforeMiB: number;
  rssAfterMiB: number;
  heapAfterMiB: number;
  coreMemoryMiB: number;
}

/**
 * `peers` peers installed into one core with durable sequence state. When one
 * config of that size is over the loader's caps, it is loaded as chunks of
 * `chunk` peers (each a config of its own) and their peers concatenated.
 */
export async function install(peers: number, chunk: number, replayWindow?: number): Promise<InstallResult> {
  const stateDir = mkdtempSync(join(tmpdir(), "wesp-bench-sas-"));
  // as the worker does at start (pipeline/worker.ts): without it every durable SA is refused
  ensureStateDir(stateDir);
  try {
    const rssBeforeMiB = rssMiB();
    const t0 = performance.now();
    let config: Config | undefined;
    const whole = peers <= chunk && !replayWindow ? tryLoad(peers, stateDir) : undefined;
    if (whole?.ok) config = whole.config;
    else {
      for (let from = 0; from < peers; from += chunk) {
        const part = hubConfig(Math.min(peers, from + chunk), stateDir, replayWindow);
        (part.peers as unknown[]).splice(0, from);
        const r = parseConfig(JSON.stringify(part), { baseDir: process.cwd(), source: "<hub part>" });
        if (!config) config = r.config;
        else config.peers.push(...r.config.peers);
      }
    }
    const loadMs = performance.now() - t0;
    const t1 = performance.now();
    const specs = plan(config!, { sas: new Set(), tunnels: new Map() }).peers;
    const planMs = performance.now() - t1;
    const sizing = coreSizing(specs);
    let core: Core;
    try {
      core = await Core.create({ slots: 256, ...sizing });
    } catch (e) {
      return { peers, sas: 2 * peers, replayWindow, refused: `${(e as Error).message} (coreSizing: ${JSON.stringify(sizing)})`, loadedAs: "", loadMs, planMs, installMs: NaN, tickMs: NaN, migrateMs: NaN, rssBeforeMiB, rssAfterMiB: rssMiB(), heapAfterMiB: NaN, coreMemoryMiB: NaN };
    }
    const store = new SeqStore((m) => process.stderr.write(`alarm: ${m}\n`));
    const refused: string[] = [];
    const table = new SaTable(core, { store, stateDir, emit: (e) => void (e.event === "alarm" && refused.push(e.message)) });
    const t2 = performance.now();
    table.apply(specs);
    const installMs = performance.now() - t2;
    // a refused SA installs nothing: its time is not an install's
    if (refused.length) throw new Error(`${refused.length} SAs refused, e.g. ${refused[0]}`);
    const installed = table.prov.peers.reduce((n, rt) => n + (rt.out ? 1 : 0) + rt.in.length, 0);
    if (installed !== 2 * peers) throw new Error(`${installed} SAs installed, not ${2 * peers}`);
    const t3 = performance.now();
    store.tick(core);
    const tickMs = performance.now() - t3;
    const t4 = performance.now(), frozen = Date.now();
    for (let i = 0; i < MIGRATE_TICKS && store.journalStats().journals > 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
      store.tick(core, frozen); // no SA goes idle meanwhile: the migration alone is timed
    }
    if (store.journalStats().journals > 0) throw new Error(`journals still hold ${store.journalStats().pending} keys after ${MIGRATE_TICKS} ticks`);
    const migrateMs = performance.now() - t4;
    const m = process.memoryUsage();
    const r: InstallResult = {
      peers, sas: 2 * peers, replayWindow, loadedAs: whole?.ok ? "one config" : `${Math.ceil(peers / chunk)} configs of ≤ ${chunk} peers`,
      loadMs, planMs, installMs, tickMs, migrateMs, rssBeforeMiB, rssAfterMiB: m.rss / 2 ** 20, heapAfterMiB: m.heapUsed / 2 ** 20,
      coreMemoryMiB: core.memory.byteLength / 2 ** 20,
    };
    table.clear();
    return r;
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
}

export const CAPS = { MAX_CONFIG_BYTES, MAX_VALUES };
