// The reservation state of every tracked SA (seq_store.ts), as a struct of
// arrays indexed by the core's SA id: one column per field, numbers in typed
// arrays, instead of an object per SA with its own BigInts. SA ids are dense
// and small (the core hands out the lowest free one below maxSas), so the
// columns are as long as the highest id tracked, grown by doubling.
//
// Why: an install of 100,000 durable SAs made 100,000 such objects (about
// 300 bytes each with their BigInts and a map entry), all of which survive,
// so the young generation's collector copied them again and again; here an
// SA costs a few bytes in each column and nothing the collector walks but
// its DurableParams and a reference to its file's state (issue 9, docs/bench.md).
//
//   id:        0     1     2    …   (the core's SA id)
//   p          ·     ·     ·        DurableParams, undefined = not tracked
//   file       ·     ·     ·        its state file (seq_store.ts: its FileState, not a path)
//   epoch      ·     ·     ·        bumped at every track: a write that lands
//                                    after its SA was removed (and the id reused)
//                                    sees another epoch and leaves the slot alone
//   reserved, lastSeq, chaseSeq, basePackets, baseBytes   BigUint64Array
//   visitT, lastT, lastProgressT, rate, chaseT, created, unreserved   Float64Array
//   visitTick  Int32Array;  flags  Uint8Array (HOT, PENDING, FRESH)
import type { DurableParams } from "./seq_store.ts";

export const HOT = 1;
export const PENDING = 2;
/** Due its first look (SeqStore.fresh). */
export const FRESH = 4;

const FIRST = 64;

export class SaSlots<F = string> {
  /** How many ids the typed columns hold now. */
  cap = 0;
  readonly p: (DurableParams | undefined)[] = [];
  readonly file: F[] = [];
  /** Last write failure (reported once until a write succeeds). */
  readonly failed: (string | null)[] = [];
  epoch = new Uint32Array(0);
  reserved = new BigUint64Array(0);
  lastSeq = new BigUint64Array(0);
  /** Inbound: the top when the reservation was last raised for a peer ahead of it. */
  chaseSeq = new BigUint64Array(0);
  /** Counters of earlier runs, for lifetimes. */
  basePackets = new BigUint64Array(0);
  baseBytes = new BigUint64Array(0);
  /** When tick last looked (ms; -1: not yet). */
  visitT = new Float64Array(0);
  lastT = new Float64Array(0);
  lastProgressT = new Float64Array(0);
  rate = new Float64Array(0);
  /** Inbound: when the reservation was last raised for a peer ahead of it (0 = not chasing). */
  chaseT = new Float64Array(0);
  created = new Float64Array(0);
  /** Inbound: the SA's SEQ_UNRESERVED drop count at the last look. */
  unreserved = new Float64Array(0);
  /** The tick that last looked at it: one look per tick. */
  visitTick = new Int32Array(0);
  flags = new Uint8Array(0);

  /** Whether `id` is tracked. */
  live(id: number): boolean {
    return this.p[id] !== undefined;
  }

  /** Makes room for `id` (columns doubled until it fits; values kept). */
  room(id: number): void {
    if (!Number.isInteger(id) || id < 0) throw new RangeError(`SA id ${id}`);
    if (id < this.cap) return;
    let cap = Math.max(FIRST, this.cap);
    while (cap <= id) cap *= 2;
    const grow = <T extends { length: number; set(a: T): void }>(a: T, make: (n: number) => T): T => {
      const b = make(cap);
      b.set(a);
      return b;
    };
    this.epoch = grow(this.epoch, (n) => new Uint32Array(n));
    this.reserved = grow(this.reserved, (n) => new BigUint64Array(n));
    this.lastSeq = grow(this.lastSeq, (n) => new BigUint64Array(n));
    this.chaseSeq = grow(this.chaseSeq, (n) => new BigUint64Array(n));
    this.basePackets = grow(this.basePackets, (n) => new BigUint64Array(n));
    this.baseBytes = grow(this.baseBytes, (n) => new BigUint64Array(n));
    this.visitT = grow(this.visitT, (n) => new Float64Array(n));
    this.lastT = grow(this.lastT, (n) => new Float64Array(n));
    this.lastProgressT = grow(this.lastProgressT, (n) => new Float64Array(n));
    this.rate = grow(this.rate, (n) => new Float64Array(n));
    this.chaseT = grow(this.chaseT, (n) => new Float64Array(n));
    this.created = grow(this.created, (n) => new Float64Array(n));
    this.unreserved = grow(this.unreserved, (n) => new Float64Array(n));
    this.visitTick = grow(this.visitTick, (n) => new Int32Array(n));
    this.flags = grow(this.flags, (n) => new Uint8Array(n));
    this.cap = cap;
  }

  /** Starts tracking `id` with every field set (a slot's earlier values never leak into a new SA); its new epoch. */
  fill(id: number, p: DurableParams, file: F, reserved: bigint, lastSeq: bigint, base: { packets: bigint; bytes: bigint }, created: number, now: number, lastProgressT: number): number {
    this.room(id);
    this.p[id] = p;
    this.file[id] = file;
    this.failed[id] = null;
    this.reserved[id] = reserved;
    this.lastSeq[id] = lastSeq;
    this.chaseSeq[id] = 0n;
    this.basePackets[id] = base.packets;
    this.baseBytes[id] = base.bytes;
    this.visitT[id] = -1;
    this.lastT[id] = now;
    this.lastProgressT[id] = lastProgressT;
    this.rate[id] = 0;
    this.chaseT[id] = 0;
    this.created[id] = created;
    this.unreserved[id] = 0;
    this.visitTick[id] = -1;
    this.flags[id] = 0;
    return ++this.epoch[id];
  }

  /** Stops tracking `id` (its columns are overwritten by the next fill). */
  clear(id: number): void {
    this.p[id] = undefined;
    this.failed[id] = null;
    this.flags[id] = 0;
  }
}
