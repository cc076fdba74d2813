// What every packet file descriptor of the host shares: readiness callbacks on
// the owning thread's event loop (uv_poll inside the addon), per-fd drop
// counters, and an idempotent close that stops polling before the fd number
// can be reused.
//
// Threading: an instance belongs to the thread (main or worker) that opened
// it. A worker opens its own TUN queue and its own SO_REUSEPORT socket; fds
// are not handed between threads.
import { io, newStats, ST_ERRNO, ST_FAILED, ST_TRUNCATED, ST_UNSENT, type PollHandle } from "./native_linux.ts";

/** Snapshot of an fd's drop counters (running totals, wrap at 2^32). */
export interface IoCounters {
  /** Packets the kernel refused on write/send (skipped, not retried). */
  failed: number;
  /** errno of the last refusal (0 when none). */
  lastErrno: number;
  /** Packets left unsent because the socket stayed full past its send timeout. */
  unsent: number;
  /** Received packets longer than the slot capacity, dropped with length 0. */
  truncated: number;
}

export abstract class PacketFd {
  /** Raw counters the addon adds to; see `counters()` and native_linux ST_*. */
  readonly stats: Uint32Array = newStats();
  #fd: number;
  #poll: PollHandle | null = null;
  /** The onReadable callback, kept so that a change of readyFd can move the poll (moveReadiness). */
  #onReady: ((err?: Error) => void) | null = null;
  #keepAlive = true;

  protected constructor(fd: number) {
    this.#fd = fd;
  }

  /** The file descriptor; -1 once closed. */
  get fd(): number {
    return this.#fd;
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  /** Throws when closed, so a late batch call never reads someone else's fd. */
  protected live(): number {
    if (this.#fd < 0) throw new Error(`${this.constructor.name}: closed`);
    return this.#fd;
  }

  /**
   * The descriptor that polls readable when a read would find packets: the
   * fd itself, or what a subclass reads through (the TUN's io_uring ring).
   * Put this, not `fd`, into waitReadable.
   */
  get readyFd(): number {
    return this.live();
  }

  /**
   * Calls `cb` on this thread's event loop whenever the fd is readable
   * (level-triggered: if `cb` leaves packets queued, it is called again on the
   * next loop turn, after timers and messages had their chance). `cb(err)`
   * gets an Error when the poll itself fails (e.g. the fd was closed under it).
   * A second call replaces the callback.
   */
  onReadable(cb: (err?: Error) => void): void {
    const fd = this.readyFd;
    this.offReadable();
    this.#onReady = cb;
    this.#poll = io.pollStart(fd, (status) => {
      if (status < 0) cb(Object.assign(new Error(`poll failed (libuv ${status})`), { status }));
      else cb();
    });
    if (!this.#keepAlive) io.pollRef(this.#poll, false);
  }

  /** Stops readiness callbacks (no-op when none). */
  offReadable(): void {
    this.#onReady = null;
    this.#stopPoll();
  }

  #stopPoll(): void {
    if (this.#poll !== null) {
      io.pollStop(this.#poll);
      this.#poll = null;
    }
  }

  /**
   * For a subclass whose readyFd changes (the TUN leaving io_uring): `swap`
   * runs with the poll stopped (so it may close the old descriptor), then
   * the onReadable callback, if any, polls the new readyFd. Level-triggered,
   * so packets already waiting there call it on the next loop turn.
   */
  protected moveReadiness(swap: () => void): void {
    const cb = this.#onReady;
    this.#stopPoll();
    swap();
    if (cb !== null && !this.closed) this.onReadable(cb);
  }

  /**
   * Whether a pending onReadable keeps this thread's event loop alive
   * (default true, like a listening socket). false = unref.
   */
  keepAlive(on: boolean): void {
    this.#keepAlive = on;
    if (this.#poll !== null) io.pollRef(this.#poll, on);
  }

  /**
   * Whether packets already taken from the fd wait in a buffer of ours for
   * the next batch (UdpSocket: the rest of the UDP_GRO trains one recvmmsg
   * brought; Tun: a super-packet whose segments did not fit the batch). They
   * do not make the fd readable, so a reader that stops while this is true
   * must come back by itself (Pipeline does); none here.
   */
  holding(): boolean {
    return false;
  }

  counters(): IoCounters {
    const s = this.stats;
    return { failed: s[ST_FAILED], lastErrno: s[ST_ERRNO], unsent: s[ST_UNSENT], truncated: s[ST_TRUNCATED] };
  }

  /** Stops polling and closes the fd. Safe to call twice. */
  close(): void {
    if (this.#fd < 0) return;
    this.offReadable();
    const fd = this.#fd;
    this.#fd = -1;
    io.close(fd);
  }
}
