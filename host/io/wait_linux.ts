// A blocking alternative to onReadable, for a worker that would rather run a
// plain loop: block in poll(2) on its fds for at most a timeout, and let any
// other thread end the wait at once through an eventfd (a Waker), e.g. to
// shut down. Nothing here can block forever, so shutdown never hangs.
//
//   worker:  for (;;) { const m = waitReadable(fds, -1); if (m & WAKE) break; ... }
//   main:    waker.signal()
import { io } from "./native_linux.ts";

/** Largest number of fds one wait takes (bits of the returned mask). */
export const MAX_WAIT_FDS = 31;

/** Longest one waitReadable blocks, whatever its timeout (native WIO_WAIT_SLICE_MS). */
export const WAIT_SLICE_MS = 200;

/**
 * Blocks the calling thread until one of `fds` is readable (or has an error
 * or hangup, so the next read reports it) or `timeoutMs` passes. Returns a
 * mask: bit i set = fds[i] ready; 0 on timeout. `fds` holds 1 to 31
 * descriptors. A wait never lasts longer than WAIT_SLICE_MS (-1 means that
 * too): Worker.terminate() only takes effect when the thread runs JS again,
 * so an endless wait would make a worker unkillable. Loop on 0.
 */
export function waitReadable(fds: Int32Array, timeoutMs: number): number {
  return io.waitReadable(fds, timeoutMs);
}

/** An eventfd: signal() from any thread makes `fd` readable until drain(). */
export class Waker {
  #fd: number;
  private constructor(fd: number) {
    this.#fd = fd;
  }
  static create(): Waker {
    return new Waker(io.eventfdOpen());
  }
  /** The descriptor number: put it into another thread's waitReadable set. */
  get fd(): number {
    return this.#fd;
  }
  signal(): void {
    io.eventfdSignal(this.#fd);
  }
  /** Signals a Waker created by another thread, given its fd number. */
  static signalFd(fd: number): void {
    io.eventfdSignal(fd);
  }
  /** Clears the signal; returns how many signals were pending. */
  drain(): number {
    return io.eventfdDrain(this.#fd);
  }
  close(): void {
    if (this.#fd >= 0) io.close(this.#fd);
    this.#fd = -1;
  }
}
