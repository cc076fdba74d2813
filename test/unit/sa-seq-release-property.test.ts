// Property (host/sa/seq_store.ts "A file's generations live in its
// FileState"): across random sequences of installs (alone: a file; in
// batches: a journal), Resumes handed out and tracked later (the journal
// migration may let go of their state in between), traffic (outbound sealed,
// inbound sealed by a peer core and opened), ticks, removals, key rotations
// (a slot's key replaced by a new one, as a reload or controller push does),
// clean stops and crashes (the store abandoned mid-flight, as kill -9 leaves
// it), with the disk left to catch up or not:
//   - at every step, what a restart would read (durableState) is at or above
//     every live SA's limit in the core, and the store holds no more states
//     than its tracked keys, its Resumes not yet tracked and the keys with
//     uncovered journal records;
//   - once the migration is done, exactly one state per tracked key;
//   - after a last crash, every key ever used (rotated out or not) resumes
//     above every number it sent (outbound) or accepted (inbound).
// FC_SEED=… FC_PATH=… replay a reported failure (and print its error).
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { randomBytes } from "node:crypto";
import type { Core } from "../../host/core/core.ts";
import { SeqStateError, SeqStore, type DurableParams, type Resume } from "../../host/sa/seq_store.ts";
import { durableState } from "../../host/sa/journal.ts";
import { statePath } from "../../host/sa/state_file.ts";
import { keyId } from "../../host/sa/key_id.ts";
import { VERDICT } from "../../host/core/core.ts";
import { innerUdp, makeCore } from "./core-helpers.ts";
import { inStateDir, sendOut } from "./sa-state-helpers.ts";

/** Slots 0–1 outbound, 2 inbound (a peer core sends to it). */
const SLOTS = 3;
const OUT = 2;

type Op =
  | { op: "install"; mask: number }
  | { op: "hand"; slot: number }
  | { op: "take"; slot: number; migrated: boolean }
  | { op: "send"; slot: number; n: number }
  | { op: "tick"; dt: number }
  | { op: "settle"; ms: number }
  | { op: "remove"; slot: number }
  | { op: "rotate"; slot: number }
  | { op: "crash" }
  | { op: "stop" };

const slot = fc.integer({ min: 0, max: SLOTS - 1 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant("install" as const), mask: fc.integer({ min: 1, max: (1 << SLOTS) - 1 }) }),
  // twice as likely as the rest: a Resume handed out and taken after the migration is what track's defence is for
  { arbitrary: fc.record({ op: fc.constant("hand" as const), slot }), weight: 2 },
  { arbitrary: fc.record({ op: fc.constant("take" as const), slot, migrated: fc.boolean() }), weight: 2 },
  fc.record({ op: fc.constant("send" as const), slot, n: fc.integer({ min: 1, max: 9000 }) }),
  fc.record({ op: fc.constant("tick" as const), dt: fc.integer({ min: 0, max: 3000 }) }),
  fc.record({ op: fc.constant("settle" as const), ms: fc.integer({ min: 0, max: 15 }) }),
  fc.record({ op: fc.constant("remove" as const), slot }),
  fc.record({ op: fc.constant("rotate" as const), slot }),
  fc.constant({ op: "crash" as const }),
  fc.constant({ op: "stop" as const }),
);

/** A key ever used: its parameters and material, the most its SAs may have used when they ended, and the most sent (outbound) or accepted (inbound). */
interface Key { p: DurableParams; key: Buffer; salt: Buffer; ended: bigint; used: bigint }
/** A live SA of a slot: its id in the core, its policy (outbound), the peer's sending SA and policy (inbound). */
interface Live { k: Key; saId: number; policy?: number; tx?: { saId: number; policy: number } }

class World {
  core!: Core;
  /** The peer that sends to the inbound slot. */
  tx!: Core;
  store = new SeqStore(() => {});
  now = 1_000_000;
  readonly keys: Key[] = [];
  /** Each slot's current key (index into keys). */
  readonly slotKey: number[] = [];
  readonly live = new Map<number, Live>();
  /** Resumes handed out (prepared in a batch of one: a journal record) and not tracked yet, by slot. */
  readonly handed = new Map<number, Resume>();

  constructor(readonly dir: string) {
    for (let s = 0; s < SLOTS; s++) this.slotKey.push(this.newKey(s));
  }

  private newKey(s: number): number {
    const key = randomBytes(16), salt = randomBytes(4), d = s < OUT ? "out" : "in";
    const i = this.keys.length;
    this.keys.push({ key, salt, ended: 0n, used: 0n, p: { stateDir: this.dir, dir: d, keyId: keyId(d, Buffer.concat([key, salt])), spi: 0x1000 + i, suite: "aes-128-gcm", peer: "p", esn: false } });
    return i;
  }

  async start(): Promise<void> {
    this.core = await makeCore({ slots: 64, maxSas: 16, maxPolicies: 16 });
    this.tx = await makeCore({ slots: 64, maxSas: 16, maxPolicies: 16 });
    this.core.addPolicy({ action: "protect", local: "10.2.0.0/16", remote: "10.1.0.0/16", saId: -1, peerId: 1 }); // inbound's inner check
    this.store = new SeqStore(() => {});
    this.live.clear();
    this.handed.clear();
  }

  private resumeOf(got: Map<string, Resume | SeqStateError>, p: DurableParams): Resume {
    const r = got.get(statePath(p.stateDir, p.dir, p.keyId));
    assert.ok(r && !(r instanceof SeqStateError), String(r));
    return r;
  }

  /** Installs the slots in `mask` that have no SA and no Resume handed out: one alone, several in a batch. */
  install(mask: number): void {
    const want = [...Array(SLOTS).keys()].filter((s) => mask & (1 << s) && !this.live.has(s) && !this.handed.has(s));
    if (!want.length) return;
    const ps = want.map((s) => this.keys[this.slotKey[s]].p);
    if (want.length === 1) return this.track(want[0], this.store.prepare(ps[0], this.now));
    const got = this.store.prepareAll(ps, this.now);
    want.forEach((s, i) => this.track(s, this.resumeOf(got, ps[i])));
  }

  /** A Resume made now, tracked by a later `take` (ticks in between may migrate its record and let go of its state). */
  hand(s: number): void {
    if (this.live.has(s) || this.handed.has(s)) return;
    const p = this.keys[this.slotKey[s]].p;
    this.handed.set(s, this.resumeOf(this.store.prepareAll([p], this.now), p));
  }

  /** Tracks slot `slot`'s Resume handed out (else any one's); `migrated`: once the migration has covered every journal record (its state let go of, unless an SA holds it). */
  async take(slot: number, migrated: boolean): Promise<void> {
    const s = this.handed.has(slot) ? slot : [...this.handed.keys()][0]; // any handed out: drawn slots rarely match
    const r = s === undefined ? undefined : this.handed.get(s);
    if (s === undefined || !r) return;
    if (migrated) await this.migrated(`take ${s}`);
    this.handed.delete(s);
    this.track(s, r);
    // nothing uncovered: one state per tracked key, the one just tracked included (its own, or its key's current one)
    if (migrated) assert.equal(this.store.fileCount(), this.live.size, `take ${s}: one state per tracked key`);
  }

  private track(s: number, r: Resume): void {
    const k = this.keys[this.slotKey[s]];
    assert.ok(r.initialSeq > k.ended, `key ${k.p.spi}: resumes at ${r.initialSeq}, an SA of it may have used ${k.ended}`);
    assert.ok(r.initialSeq > k.used, `key ${k.p.spi}: resumes at ${r.initialSeq}, ${k.used} was used`);
    const common = { suite: "aes-gcm-16" as const, mode: "tunnel" as const, spi: k.p.spi, key: k.key, salt: k.salt, peerId: 1, initialSeq: r.initialSeq, seqLimit: r.seqLimit };
    let live: Live;
    if (s < OUT) {
      const saId = this.core.addSa({ ...common, direction: "out", local: "192.0.2.1", remote: "192.0.2.2" });
      live = { k, saId, policy: this.core.addPolicy({ action: "protect", local: "10.1.0.0/16", remote: `10.3.${s}.0/24`, saId, peerId: 1 }) };
    } else {
      const saId = this.core.addSa({ ...common, direction: "in", local: "192.0.2.2", remote: "192.0.2.1", replayWindow: 64, priorSeen: r.priorSeen });
      // the peer sends from where we resume (as a peer that kept its own count would, roughly)
      const txSa = this.tx.addSa({ suite: "aes-gcm-16", mode: "tunnel", spi: k.p.spi, key: k.key, salt: k.salt, peerId: 1, initialSeq: r.initialSeq, direction: "out", local: "192.0.2.1", remote: "192.0.2.2" });
      live = { k, saId, tx: { saId: txSa, policy: this.tx.addPolicy({ action: "protect", local: "10.1.0.0/16", remote: "10.2.0.0/16", saId: txSa, peerId: 1 }) } };
    }
    this.store.track(live.saId, k.p, r, this.now);
    this.live.set(s, live);
  }

  send(s: number, n: number): void {
    const sa = this.live.get(s);
    if (!sa) return;
    if (sa.tx) return this.receive(sa, n);
    const top = sendOut(this.core, this.store, sa.saId, innerUdp("10.1.0.1", `10.3.${s}.1`, 16), n);
    if (top > sa.k.used) sa.k.used = top;
  }

  /** The peer seals `n` packets, we open them (those past our limit drop: the chase in tick follows). */
  private receive(sa: Live, n: number): void {
    const pkt = innerUdp("10.1.0.1", "10.2.0.1", 16);
    for (let left = Math.min(n, 3000); left > 0; ) {
      const b = Math.min(left, 64);
      for (let j = 0; j < b; j++) this.tx.writePacket(j, pkt);
      this.tx.processOutbound(b);
      let m = 0;
      for (let j = 0; j < b; j++) if (this.tx.verdict(j) === VERDICT.TO_NETWORK) this.core.writePacket(m++, this.tx.packet(j), 0);
      this.core.processInbound(m);
      this.store.ensure(this.core, sa.saId);
      left -= b;
    }
    const top = this.core.seqOf(sa.saId, false);
    if (top > sa.k.used) sa.k.used = top;
  }

  /** Slot `s`'s SA ends: what its limit allowed may have been used (outbound); what it accepted stays counted (inbound). */
  private end(sa: Live): void {
    const used = sa.tx ? this.core.seqOf(sa.saId, false) : this.core.saState(sa.saId).seqLimit;
    if (used > sa.k.ended) sa.k.ended = used;
  }

  private drop(s: number, sa: Live): void {
    if (sa.policy !== undefined) this.core.removePolicy(sa.policy);
    this.core.removeSa(sa.saId);
    if (sa.tx) (this.tx.removePolicy(sa.tx.policy), this.tx.removeSa(sa.tx.saId));
    this.live.delete(s);
  }

  remove(s: number): void {
    const sa = this.live.get(s);
    if (!sa) return;
    this.end(sa);
    this.store.untrack(this.core, sa.saId);
    this.drop(s, sa);
  }

  /** A new key for slot `s` (its SA removed first, a Resume handed out for the old key never tracked). */
  rotate(s: number): void {
    this.remove(s);
    this.handed.delete(s);
    this.slotKey[s] = this.newKey(s);
  }

  async crash(): Promise<void> {
    for (const sa of this.live.values()) this.end(sa);
    this.store.abandon();
    await this.start();
  }

  async stop(): Promise<void> {
    for (const sa of this.live.values()) this.end(sa);
    this.store.untrackAll(this.core, [...this.live.values()].map((sa) => sa.saId));
    this.store.abandon(); // the process ends: its migration in flight writes nothing more (two stores of one owner would share temporary names)
    await this.start();
  }

  check(step: string): void {
    for (const sa of this.live.values()) {
      const d = durableState(this.dir, sa.k.p.dir, sa.k.p.keyId);
      const lim = this.core.saState(sa.saId).seqLimit;
      assert.ok(d.kind === "ok" && d.record.reserved >= lim, `${step}: key ${sa.k.p.spi} may use up to ${lim}, a restart would resume from ${d.kind === "ok" ? d.record.reserved : d.kind}`);
    }
    const bound = this.live.size + this.handed.size + this.store.journalStats().pending;
    assert.ok(this.store.fileCount() <= bound, `${step}: ${this.store.fileCount()} states held, at most ${bound} may be needed`);
  }

  /** Ticks until the migration has covered every journal record. */
  private async migrated(step: string): Promise<void> {
    for (let i = 0; i < 1000 && this.store.journalStats().pending > 0; i++) {
      this.store.tick(this.core, (this.now += 10));
      await new Promise((r) => setTimeout(r, 2));
    }
    assert.equal(this.store.journalStats().pending, 0, `${step}: the migration finished`);
  }

  /** Once migrated, the store holds exactly its tracked keys' states. */
  async quiet(step: string): Promise<void> {
    await this.migrated(step);
    assert.equal(this.store.fileCount(), this.live.size, `${step}: one state per tracked key, none for the rest`);
  }
}

test("letting go of a key's state never lets a key resume below what it used, and the store holds only the states that may be needed", { timeout: 600_000 }, async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 30 }), async (ops) => {
      await inStateDir("wesp-seqrelp-", async (dir) => {
        const w = new World(dir);
        try {
          await w.start();
          for (const [n, o] of ops.entries()) {
            if (o.op === "install") w.install(o.mask);
            else if (o.op === "hand") w.hand(o.slot);
            else if (o.op === "take") await w.take(o.slot, o.migrated);
            else if (o.op === "send") w.send(o.slot, o.n);
            else if (o.op === "tick") w.store.tick(w.core, (w.now += o.dt));
            else if (o.op === "settle") await new Promise((r) => setTimeout(r, o.ms));
            else if (o.op === "remove") w.remove(o.slot);
            else if (o.op === "rotate") w.rotate(o.slot);
            else if (o.op === "crash") await w.crash();
            else await w.stop();
            w.check(`step ${n} (${JSON.stringify(o)})`);
          }
          await w.quiet("at the end");
          // a last crash, then every key ever used installed again: each resumes above all it used
          await w.crash();
          const got = w.store.prepareAll(w.keys.map((k) => k.p), w.now);
          for (const k of w.keys) {
            const r = got.get(statePath(dir, k.p.dir, k.p.keyId));
            assert.ok(r && !(r instanceof SeqStateError), String(r));
            assert.ok(r.initialSeq > k.ended && r.initialSeq > k.used, `key ${k.p.spi} resumes at ${r.initialSeq}: ended at ${k.ended}, used ${k.used}`);
          }
        } catch (e) {
          if (process.env.FC_SEED) console.error(e);
          throw e;
        } finally {
          w.store.abandon();
        }
      });
    }),
    { numRuns: 100, ...(process.env.FC_SEED ? { seed: Number(process.env.FC_SEED), path: process.env.FC_PATH, endOnFailure: true, verbose: 2 } : {}) },
  );
});
