// Property (host/sa/seq_store.ts, journal.ts): across random sequences of
// installs (in batches: journals; alone: a file), traffic (the pipeline's
// `ensure` after each batch), ticks (renewals, idle lowering, the journal
// migration) with the disk left to catch up or not, removals, clean stops and
// crashes (the store abandoned mid-flight, as kill -9 leaves it), no
// sequence number is ever reserved below one that may have been used:
//   - at every step, what a restart would read (durableState: the max over a
//     key's file and the journals) is at or above every live SA's limit in
//     the core — the most it may have used;
//   - every install resumes above every limit that key's SAs ever ended at,
//     and above every number it sent.
// A real core seals the packets; the files are real, in a temporary state
// directory. FC_SEED=… FC_PATH=… replay a reported failure (and print its error).
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { Core } from "../../host/core/core.ts";
import { SeqStateError, SeqStore, type DurableParams, type Resume } from "../../host/sa/seq_store.ts";
import { durableState } from "../../host/sa/journal.ts";
import { ensureStateDir, statePath } from "../../host/sa/state_file.ts";
import { keyId } from "../../host/sa/key_id.ts";
import { innerUdp, makeCore } from "./core-helpers.ts";
import { sendOut } from "./sa-state-helpers.ts";

/** Keys 0–3 outbound (they send), 4–5 inbound (idle: their reservations shrink). */
const KEYS = 6;
const OUT = 4;

type Op =
  | { op: "install"; mask: number }
  | { op: "send"; key: number; n: number }
  | { op: "tick"; dt: number }
  | { op: "settle"; ms: number }
  | { op: "remove"; key: number }
  | { op: "crash" }
  | { op: "stop" };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant("install" as const), mask: fc.integer({ min: 1, max: (1 << KEYS) - 1 }) }),
  fc.record({ op: fc.constant("send" as const), key: fc.integer({ min: 0, max: OUT - 1 }), n: fc.integer({ min: 1, max: 9000 }) }),
  fc.record({ op: fc.constant("tick" as const), dt: fc.integer({ min: 0, max: 3000 }) }),
  fc.record({ op: fc.constant("settle" as const), ms: fc.integer({ min: 0, max: 15 }) }),
  fc.record({ op: fc.constant("remove" as const), key: fc.integer({ min: 0, max: KEYS - 1 }) }),
  fc.constant({ op: "crash" as const }),
  fc.constant({ op: "stop" as const }),
);

interface Key { p: DurableParams; key: Buffer; salt: Buffer }
interface Live { saId: number; policy?: number }

class World {
  core!: Core;
  store = new SeqStore(() => {});
  now = 1_000_000;
  readonly live = new Map<number, Live>();
  /** Per key: the most one of its SAs may have used when it ended (end), and the highest number it sent. */
  readonly ended: bigint[] = Array(KEYS).fill(0n);
  readonly sent: bigint[] = Array(KEYS).fill(0n);
  readonly keys: Key[];

  constructor(readonly dir: string) {
    this.keys = Array.from({ length: KEYS }, (_, i) => {
      const key = randomBytes(16), salt = randomBytes(4), d = i < OUT ? "out" : "in";
      return { key, salt, p: { stateDir: dir, dir: d, keyId: keyId(d, Buffer.concat([key, salt])), spi: 0x1000 + i, suite: "aes-128-gcm", peer: "p", esn: false } };
    });
  }

  async start(): Promise<void> {
    this.core = await makeCore({ slots: 64, maxSas: 16, maxPolicies: 16 });
    this.store = new SeqStore(() => {});
    this.live.clear();
  }

  install(mask: number): void {
    const want = this.keys.map((k, i) => ({ k, i })).filter(({ i }) => mask & (1 << i) && !this.live.has(i));
    if (!want.length) return;
    const got = new Map<number, Resume | SeqStateError>();
    if (want.length === 1) got.set(want[0].i, this.store.prepare(want[0].k.p, this.now));
    else {
      const all = this.store.prepareAll(want.map(({ k }) => k.p), this.now);
      for (const { k, i } of want) got.set(i, all.get(statePath(k.p.stateDir, k.p.dir, k.p.keyId))!);
    }
    for (const { k, i } of want) {
      const r = got.get(i)!;
      assert.ok(!(r instanceof SeqStateError), String(r));
      assert.ok(r.initialSeq > this.ended[i], `key ${i} resumes at ${r.initialSeq}, but an SA of it may have used ${this.ended[i]}`);
      assert.ok(r.initialSeq > this.sent[i], `key ${i} resumes at ${r.initialSeq}, but ${this.sent[i]} was sent`);
      const common = { suite: "aes-gcm-16" as const, mode: "tunnel" as const, spi: k.p.spi, key: k.key, salt: k.salt, peerId: 1, initialSeq: r.initialSeq, seqLimit: r.seqLimit };
      const saId = i < OUT
        ? this.core.addSa({ ...common, direction: "out", local: "192.0.2.1", remote: "192.0.2.2" })
        : this.core.addSa({ ...common, direction: "in", local: "192.0.2.2", remote: "192.0.2.1", replayWindow: 64, priorSeen: r.priorSeen });
      const policy = i < OUT ? this.core.addPolicy({ action: "protect", local: "10.1.0.0/16", remote: `10.2.${i}.0/24`, saId, peerId: 1 }) : undefined;
      this.store.track(saId, k.p, r, this.now);
      this.live.set(i, { saId, policy });
    }
  }

  send(i: number, n: number): void {
    const sa = this.live.get(i);
    if (!sa) return;
    const top = sendOut(this.core, this.store, sa.saId, innerUdp("10.1.0.1", `10.2.${i}.1`, 16), n);
    if (top > this.sent[i]) this.sent[i] = top;
  }

  /**
   * An SA of key `i` ends: outbound, whatever its limit allowed may have been
   * sealed; inbound, what it accepted must stay counted as received (its
   * limit may be given back: nothing above the top was accepted).
   */
  private end(i: number): void {
    const id = this.live.get(i)!.saId;
    const used = i < OUT ? this.core.saState(id).seqLimit : this.core.seqOf(id, false);
    if (used > this.ended[i]) this.ended[i] = used;
  }

  remove(i: number): void {
    const sa = this.live.get(i);
    if (!sa) return;
    this.end(i);
    this.store.untrack(this.core, sa.saId);
    if (sa.policy !== undefined) this.core.removePolicy(sa.policy);
    this.core.removeSa(sa.saId);
    this.live.delete(i);
  }

  async crash(): Promise<void> {
    for (const i of this.live.keys()) this.end(i);
    this.store.abandon();
    await this.start();
  }

  async stop(): Promise<void> {
    for (const i of this.live.keys()) this.end(i);
    this.store.untrackAll(this.core, [...this.live.values()].map((sa) => sa.saId));
    await this.start();
  }

  /** What a restart would read covers every live SA's limit. */
  check(step: string): void {
    for (const [i, sa] of this.live) {
      const d = durableState(this.dir, this.keys[i].p.dir, this.keys[i].p.keyId);
      const lim = this.core.saState(sa.saId).seqLimit;
      assert.ok(d.kind === "ok" && d.record.reserved >= lim, `${step}: key ${i} may use up to ${lim}, a restart would resume from ${d.kind === "ok" ? d.record.reserved : d.kind}`);
    }
  }
}

test("no sequence number is ever reserved below one that may have been used, across installs, renewals, migration, crashes and restarts", { timeout: 600_000 }, async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 30 }), async (ops) => {
      const dir = mkdtempSync(join(tmpdir(), "wesp-jrnp-"));
      ensureStateDir(dir);
      const w = new World(dir);
      try {
        await w.start();
        for (const [n, o] of ops.entries()) {
          if (o.op === "install") w.install(o.mask);
          else if (o.op === "send") w.send(o.key, o.n);
          else if (o.op === "tick") w.store.tick(w.core, (w.now += o.dt));
          else if (o.op === "settle") await new Promise((r) => setTimeout(r, o.ms));
          else if (o.op === "remove") w.remove(o.key);
          else if (o.op === "crash") await w.crash();
          else await w.stop();
          w.check(`step ${n} (${JSON.stringify(o)})`);
        }
        // a last crash, then every key installed again: each resumes above all it may have used
        await w.crash();
        w.install((1 << KEYS) - 1);
      } catch (e) {
        if (process.env.FC_SEED) console.error(e);
        throw e;
      } finally {
        w.store.abandon();
        rmSync(dir, { recursive: true, force: true });
      }
    }),
    { numRuns: 40, ...(process.env.FC_SEED ? { seed: Number(process.env.FC_SEED), path: process.env.FC_PATH, endOnFailure: true, verbose: 2 } : {}) },
  );
});
