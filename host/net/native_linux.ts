// Loads the wesp_io addon (native/*.c) and describes its raw functions.
//
// Only host/tun and host/net call these directly; everything else uses the
// typed classes there (Tun, UdpSocket, RawSocket). The addon is context-aware,
// so each node:worker_threads worker that imports this gets its own instance
// bound to its own event loop.
//
// Build: `npm run build:native` → native/build/Release/wesp_io.node.
// Override the path with WESP_IO_ADDON=/abs/path/wesp_io.node.
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

/** Opaque uv_poll handle returned by pollStart. */
export type PollHandle = { readonly __brand: "wesp_io.poll" };

/**
 * Counters each batch call adds to (a Uint32Array(4) per fd; running totals
 * that wrap at 2^32). Indices match native/io_util.h.
 */
export const ST_FAILED = 0; // packets the kernel refused, skipped
export const ST_ERRNO = 1; // errno of the last refusal
export const ST_UNSENT = 2; // left unsent: socket still full after its send timeout
export const ST_TRUNCATED = 3; // received packets longer than slotCap, dropped (len 0)

/** sockOpen flag bits (native/sock_linux.c). */
export const F_REUSEPORT = 1;
export const F_V6ONLY = 2;
export const F_PKTINFO = 4;
export const F_HDRINCL = 8;

export interface WespIo {
  readonly MAX_BATCH: number;
  close(fd: number): void;
  eventfdOpen(): number;
  eventfdSignal(fd: number): void;
  eventfdDrain(fd: number): number;
  waitReadable(fds: Int32Array, timeoutMs: number): number;
  netnsEnter(path: string): number;
  netnsRestore(prevFd: number): void;

  tunOpen(name: string, multiQueue: boolean): [fd: number, name: string];
  readBatch(fd: number, mem: Uint8Array, offs: Uint32Array, lens: Uint32Array, max: number, slotCap: number, stats: Uint32Array): number;
  writeBatch(fd: number, mem: Uint8Array, offs: Uint32Array, lens: Uint32Array, n: number, stats: Uint32Array): number;

  sockOpen(
    raw: boolean, family: 4 | 6, protocol: number, address: string | null, port: number,
    flags: number, rcvbuf: number, sndbuf: number, sndTimeoutMs: number,
  ): number;
  sockName(fd: number): [address: string, port: number];
  recvBatch(
    fd: number, mem: Uint8Array, offs: Uint32Array, lens: Uint32Array,
    addrs: Uint8Array | null, ports: Uint16Array | null, locals: Uint8Array | null,
    max: number, slotCap: number, stats: Uint32Array,
  ): number;
  sendBatch(
    fd: number, sockFamily: 4 | 6, mem: Uint8Array, offs: Uint32Array, lens: Uint32Array,
    addrs: Uint8Array, ports: Uint16Array, fams: Uint8Array, n: number, stats: Uint32Array,
  ): number;

  pollStart(fd: number, cb: (status: number) => void): PollHandle;
  pollStop(h: PollHandle): void;
  pollRef(h: PollHandle, keepAlive: boolean): void;
}

function addonPath(): string {
  const env = process.env.WESP_IO_ADDON;
  if (env) return env;
  const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
  return join(root, "native", "build", "Release", "wesp_io.node");
}

function load(): WespIo {
  if (process.platform !== "linux") throw new Error("wesp_io: Linux only");
  const path = addonPath();
  if (!existsSync(path)) {
    throw new Error(`wesp_io addon not built (${path}); run \`npm run build:native\``);
  }
  return createRequire(import.meta.url)(path) as WespIo;
}

/** The addon, loaded once per thread (module instances are per worker). */
export const io: WespIo = load();

/** A fresh stats array for one fd (see ST_*). */
export function newStats(): Uint32Array {
  return new Uint32Array(4);
}
