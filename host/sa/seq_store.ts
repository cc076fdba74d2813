// Durable sequence reservations, in the worker that owns the SAs (one writer
// per SA). The rule that keeps a (key, nonce) pair from ever being used twice
// and a replay window from ever reopening across kill -9 (RFC 4303 §3.3.3,
// §3.4.3; RFC 4106 §3.1; RFC 7634 §2):
//
//   the core never uses a sequence number above SA_SEQLIMIT (outbound: never
//   seals with it; inbound: never accepts it), and the host raises SA_SEQLIMIT
//   only after the state file promising that much is on disk.
//
// So after any crash the file's `reserved` is at or above every number used:
// outbound resumes at reserved + 1; inbound resumes with every number up to
// reserved counted as received (FLAG_PRIOR_SEEN).
//
// Reservations are made ahead in blocks of about half a second of the SA's
// traffic, never fewer than MIN_BLOCK numbers, and renewed when half the
// block is used, so the packet path never waits on the disk. An inbound SA
// that went idle gives back most of its block (lowering the limit in the
// core first, then the file): after a restart the peer's next packets,
// numbered just past what we accepted, are dropped as replays only up to the
// reservation, so a small one loses little.
//
// An inbound SA must also follow a peer that jumped past its reservation:
// a peer that restarted resumes past its own (outbound) reservation, up to a
// whole block ahead, and a peer that kept sending while we were down is ahead
// by what we missed. Its packets then authenticate but are dropped as
// SEQ_UNRESERVED, the window never moves, and — without more — the SA would
// stay shut for good. So when an inbound SA makes no progress while its
// SEQ_UNRESERVED count grows (only authenticated packets count there), the
// reservation is raised, doubling the distance ahead each time until the
// peer's numbers fit; once traffic flows again an oversized reservation is
// lowered back to one block (core first, then the file), so a later crash
// costs few replay drops.
import type { Core } from "../core/core.ts";
import { readState, statePath, writeState, writeStateSync, type SaStateRecord } from "./state_file.ts";

/** Fewest numbers reserved at a time: outbound skipping ahead on restart costs nothing, inbound costs replay drops. */
export const MIN_BLOCK = { out: 8192n, in: 1024n } as const;
const MAX_BLOCK = 1n << 24n;
/** Seconds of traffic a block should last. */
const BLOCK_SECONDS = 0.5;
/** An inbound SA without progress for this long shrinks its reservation to IDLE_BLOCK. */
const IDLE_MS = 2000;
const IDLE_BLOCK = 256n;
/** How long a reservation raised for a peer ahead of it waits for that peer's next packet before it may shrink. */
const CHASE_MS = 10_000;
const SEQ32_MAX = 0xffffffffn;

export class SeqStateError extends Error {
  constructor(readonly file: string, why: string) {
    super(`state file ${file} ${why}`);
    this.name = "SeqStateError";
  }
}

export interface DurableParams {
  stateDir: string;
  dir: "in" | "out";
  keyId: string;
  spi: number;
  suite: string;
  peer: string;
  esn: boolean;
}

/** Where an SA starts, from its key's state (what `addSa` needs). */
export interface Resume {
  file: string;
  initialSeq: bigint;
  priorSeen: boolean;
  seqLimit: bigint;
  /** Counters of earlier runs, for lifetimes. */
  base: { packets: bigint; bytes: bigint };
  created: number;
  /** True when an earlier run's state was found. */
  resumed: boolean;
  /**
   * An earlier SA of this key (removed by this apply) still has a write in
   * flight: nothing may be used until it has landed, so the SA starts with its
   * limit at `initialSeq - 1` and track() makes the first reservation after.
   */
  waitFor?: Promise<void>;
}

interface Tracked {
  saId: number;
  p: DurableParams;
  file: string;
  reserved: bigint;
  base: { packets: bigint; bytes: bigint };
  created: number;
  lastSeq: bigint;
  lastT: number;
  lastProgressT: number;
  rate: number;
  pending: boolean;
  /** Last write failure (reported once until a write succeeds). */
  failed: string | null;
  /** Inbound: the SA's SEQ_UNRESERVED drop count at the last tick (authenticated packets past the limit). */
  unreserved: number;
  /** Inbound: when the reservation was last raised for a peer ahead of it (0 = not chasing), and the top then. */
  chaseT: number;
  chaseSeq: bigint;
}

export class SeqStore {
  private readonly sas = new Map<number, Tracked>();
  /**
   * Asynchronous writes not yet durable, by file: a later SA of the same key
   * (peer removed and added back, tunnel changed) must not write a promise
   * that this older write, renamed into place after it, would lower.
   */
  private readonly inflight = new Map<string, { reserved: bigint; done: Promise<void> }>();

  constructor(private readonly alarm: (message: string, saId: number) => void) {}

  /**
   * Reads the key's state and makes the first reservation durable (synchronously:
   * nothing may be sent before it is on disk). Throws SeqStateError naming the
   * file when the state is unreadable, corrupt, another key's, or cannot be written.
   */
  prepare(p: DurableParams, now = Date.now()): Resume {
    const file = statePath(p.stateDir, p.dir, p.keyId);
    const r = readState(file, { dir: p.dir, keyId: p.keyId });
    if (r.kind === "bad") throw new SeqStateError(file, `${r.why}: refusing this SA (never restart its numbers at 1; replace the key, or remove the file only if the key is new)`);
    const prev = r.kind === "ok" ? r.record : null;
    // Every number ≤ top may have been used; the file is always at or above
    // what the core was allowed (a write in flight only raises it further).
    const top = prev ? prev.reserved : 0n;
    const fly = this.inflight.get(file);
    const max = p.esn ? (1n << 64n) - 1n : SEQ32_MAX;
    if (top >= max) throw new SeqStateError(file, `shows this key's sequence numbers used up (RFC 4303 §3.3.3): replace the key`);
    let reserved = top + MIN_BLOCK[p.dir];
    if (reserved > max) reserved = max;
    const rec: SaStateRecord = {
      dir: p.dir, keyId: p.keyId, spi: p.spi, suite: p.suite, peer: p.peer, reserved,
      packets: prev?.packets ?? 0n, bytes: prev?.bytes ?? 0n, created: prev?.created ?? now,
    };
    if (fly && top > 0n) {
      // Wait for the older write (it may land after anything written now); use nothing until then.
      return {
        file, initialSeq: top + 1n, priorSeen: true, seqLimit: top,
        base: { packets: rec.packets, bytes: rec.bytes }, created: rec.created, resumed: true, waitFor: fly.done,
      };
    }
    try {
      writeStateSync(file, rec);
    } catch (e) {
      throw new SeqStateError(file, `cannot be written (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): refusing to send on this SA`);
    }
    return {
      file, initialSeq: top + 1n, priorSeen: prev !== null, seqLimit: reserved,
      base: { packets: rec.packets, bytes: rec.bytes }, created: rec.created, resumed: prev !== null,
    };
  }

  /** Starts renewing SA `saId`'s reservation (after addSa with `res`). */
  track(saId: number, p: DurableParams, res: Resume, now = Date.now()): void {
    const t: Tracked = {
      saId, p, file: res.file, reserved: res.seqLimit, base: res.base, created: res.created,
      lastSeq: res.initialSeq - 1n, lastT: now, lastProgressT: now, rate: 0, pending: res.waitFor !== undefined, failed: null, unreserved: 0, chaseT: 0, chaseSeq: 0n,
    };
    this.sas.set(saId, t);
    // Its limit leaves nothing to use: the next tick reserves a block once the older write is down.
    res.waitFor?.then(() => (t.pending = false));
  }

  /** Counters of earlier runs and first-install time of a tracked SA (lifetimes). */
  history(saId: number): { base: { packets: bigint; bytes: bigint }; created: number } | undefined {
    const t = this.sas.get(saId);
    return t && { base: t.base, created: t.created };
  }

  /**
   * Before removeSa: writes the final counters (sync) and stops tracking. The
   * outbound reservation stays. An inbound SA's is lowered to the highest
   * number it accepted: it accepts nothing more (it is removed next, on this
   * thread), so that is exact, and the same key installed again (a peer
   * removed and added back by a reload) resumes just past it — else the peer's
   * next packets would be dropped as replays up to the whole reservation.
   */
  untrack(core: Core, saId: number): void {
    const t = this.sas.get(saId);
    if (!t) return;
    this.sas.delete(saId);
    const top = t.p.dir === "in" ? core.seqOf(saId, false) : -1n;
    const reserved = top >= 1n && top < t.reserved ? top : t.reserved; // never 0: a limit of 0 means none
    const rec = this.record(core, t, reserved);
    try {
      writeStateSync(t.file, rec);
    } catch {
      // The reservation on disk is still a valid upper bound; only counters are lost.
    }
    // A renewal still in flight lands after this (with its larger promise, still true):
    // write the lowered one again after it. A new SA of this key waits for that (prepare).
    const fly = this.inflight.get(t.file);
    if (fly && reserved < fly.reserved) {
      const next = { reserved, done: fly.done.then(() => writeState(t.file, rec)).then(() => {}, () => {}) };
      this.inflight.set(t.file, next);
      void next.done.then(() => {
        if (this.inflight.get(t.file) === next) this.inflight.delete(t.file);
      });
    }
  }

  /** Writes every tracked SA's counters (clean stop). */
  flush(core: Core): void {
    for (const t of this.sas.values()) {
      try {
        writeStateSync(t.file, this.record(core, t, t.reserved));
      } catch {
        /* as in untrack */
      }
    }
  }

  private record(core: Core, t: Tracked, reserved: bigint): SaStateRecord {
    let packets = t.base.packets, bytes = t.base.bytes;
    try {
      const c = core.readCounters(t.saId);
      packets += c.packets;
      bytes += c.bytes;
    } catch {
      /* removed already */
    }
    return { dir: t.p.dir, keyId: t.p.keyId, spi: t.p.spi, suite: t.p.suite, peer: t.p.peer, reserved, packets, bytes, created: t.created };
  }

  /**
   * Renews reservations that are half used (and shrinks idle inbound ones).
   * Call every few milliseconds between batches; never blocks on the disk.
   */
  tick(core: Core, now = Date.now()): void {
    for (const t of this.sas.values()) {
      if (t.pending) continue;
      const cur = t.p.dir === "out" ? core.seqOf(t.saId, true) - 1n : core.seqOf(t.saId, false);
      if (cur < 0n) continue;
      const dt = now - t.lastT;
      if (dt >= 50) {
        const inst = Number(cur - t.lastSeq) * 1000 / dt;
        t.rate = t.rate === 0 ? inst : t.rate * 0.5 + inst * 0.5;
        if (cur !== t.lastSeq) t.lastProgressT = now;
        t.lastSeq = cur;
        t.lastT = now;
      }
      const block = this.blockFor(t);
      const left = t.reserved - cur;
      const stuck = t.p.dir === "in" && this.peerAhead(core, t);
      // Chasing ends when the window moves (the peer's numbers fit), or after CHASE_MS without.
      if (t.chaseT !== 0 && (cur > t.chaseSeq || now - t.chaseT > CHASE_MS)) t.chaseT = 0;
      if (stuck) {
        // The peer sends past the limit (it restarted, or sent while we were
        // down): reach at least a whole outbound block (what a restarted wesp
        // skips), further each time, until its numbers fit. No shrink below
        // undoes this while chasing.
        let ahead = left > block ? left : block;
        if (ahead < MIN_BLOCK.out) ahead = MIN_BLOCK.out;
        t.chaseT = now;
        t.chaseSeq = cur;
        this.renew(core, t, cur + 2n * ahead);
      } else if (left < block / 2n) {
        this.renew(core, t, cur + block);
      } else if (t.chaseT !== 0) {
        // waiting for the peer's next packet
      } else if (t.p.dir === "in" && now - t.lastProgressT <= IDLE_MS && left > block * 4n) {
        // Flowing again after a raise: lower an oversized reservation to one
        // block (core first, as for an idle SA below).
        const lower = cur + block;
        core.setSeqLimit(t.saId, lower);
        t.reserved = lower;
        this.renew(core, t, lower);
      } else if (t.p.dir === "in" && now - t.lastProgressT > IDLE_MS && left > IDLE_BLOCK * 2n) {
        // Lower the core first: from here on nothing above cur + IDLE_BLOCK is
        // accepted, so writing the smaller promise afterwards is safe.
        const lower = cur + IDLE_BLOCK;
        core.setSeqLimit(t.saId, lower);
        t.reserved = lower;
        this.renew(core, t, lower);
      }
    }
  }

  /** Whether authenticated packets past the limit arrived since the last look (inbound). */
  private peerAhead(core: Core, t: Tracked): boolean {
    const n = core.dropCount(t.saId, "SEQ_UNRESERVED");
    if (n < 0) return false;
    const grew = n > t.unreserved;
    t.unreserved = n;
    return grew;
  }


  private blockFor(t: Tracked): bigint {
    const want = BigInt(Math.ceil(t.rate * BLOCK_SECONDS));
    const min = MIN_BLOCK[t.p.dir];
    return want < min ? min : want > MAX_BLOCK ? MAX_BLOCK : want;
  }

  private renew(core: Core, t: Tracked, target: bigint): void {
    const max = t.p.esn ? (1n << 64n) - 1n : SEQ32_MAX;
    const reserved = target > max ? max : target;
    t.pending = true;
    const rec = this.record(core, t, reserved);
    const done = writeState(t.file, rec);
    const fly = { reserved, done: done.then(() => {}, () => {}) };
    this.inflight.set(t.file, fly);
    void fly.done.then(() => {
      if (this.inflight.get(t.file) === fly) this.inflight.delete(t.file);
    });
    done.then(
      () => {
        t.pending = false;
        t.failed = null;
        // Removed meanwhile (its id may already name another SA): nothing to raise.
        if (this.sas.get(t.saId) !== t) return;
        t.reserved = reserved;
        core.setSeqLimit(t.saId, reserved);
      },
      (e: NodeJS.ErrnoException) => {
        t.pending = false;
        const why = `state file ${t.file} cannot be written (${e.code ?? e.message}): SA spi 0x${(t.p.spi >>> 0).toString(16)} (${t.p.dir}) stops at sequence number ${t.reserved}`;
        if (t.failed !== why) this.alarm(why, t.saId);
        t.failed = why;
      },
    );
  }
}
