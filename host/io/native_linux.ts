// Loads the wesp_io addon (native/*.c) and describes its raw functions.
//
// This folder (host/io) is the base host/tun and host/net share: only they
// call these directly; everything else uses the typed classes there (Tun,
// UdpSocket, RawSocket). The addon is context-aware,
// so each node:worker_threads worker that imports this gets its own instance
// bound to its own event loop.
//
// Build: `npm run build:native` → native/build/Release/wesp_io.node.
// Override the path with WESP_IO_ADDON=/abs/path/wesp_io.node.
import { createRequire } from "node:module";
import { constants as osConstants } from "node:os";
import { existsSync } from "node:fs";
import { packagePath } from "../util/package_root.ts";

/** Opaque uv_poll handle returned by pollStart. */
export type PollHandle = { readonly __brand: "wesp_io.poll" };

/** Opaque io_uring TUN reader returned by tunUringOpen (native/tun_uring_linux.c). */
export type UringHandle = { readonly __brand: "wesp_io.uring" };

/**
 * Counters each batch call adds to (a Uint32Array(13) per fd, newStats; running
 * totals that wrap at 2^32). Indices match native/io_util.h, gso_linux.h, tun_uring_linux.c.
 */
export const ST_FAILED = 0; // packets the kernel refused, skipped
export const ST_ERRNO = 1; // errno of the last refusal
export const ST_UNSENT = 2; // left unsent: socket still full after its send timeout
export const ST_TRUNCATED = 3; // received packets longer than slotCap, dropped (len 0)
// Offloading fds only (native/gso_linux.h):
export const ST_SUPER = 4; // TUN: super-packets segmented; UDP: GSO trains sent + GRO trains received
export const ST_SEGMENTS = 5; // the segments / datagrams those held
export const ST_BAD = 6; // TUN: super-packets refused as malformed (dropped)
export const ST_CSUM = 7; // TUN: partial checksums completed
export const ST_COALESCED = 8; // TUN: TCP super-packets written (segments coalesced)
export const ST_COALESCED_SEGS = 9; // the segments they held
export const ST_COALESCED_UDP = 10; // TUN: UDP super-packets written (datagrams coalesced, USO)
export const ST_COALESCED_UDP_SEGS = 11; // the datagrams they held
// The io_uring TUN reader only (native/tun_uring_linux.c):
export const ST_REARM_ERRNO = 12; // errno of the multishot re-arm the kernel refused (0 = none): the reader is spent, read with readv

/** sockOpen flag bits (native/sock_linux.c). */
export const F_REUSEPORT = 1;
export const F_V6ONLY = 2;
export const F_PKTINFO = 4;
export const F_HDRINCL = 8;

/** memAdvise kinds (native/mem_linux.c). */
export const MEM_HUGE_PAGES = 1;

export interface WespIo {
  readonly MAX_BATCH: number;
  close(fd: number): void;
  eventfdOpen(): number;
  eventfdSignal(fd: number): void;
  eventfdDrain(fd: number): number;
  waitReadable(fds: Int32Array, timeoutMs: number): number;
  netnsEnter(path: string): number;
  netnsRestore(prevFd: number): void;

  /**
   * vnet: whether IFF_VNET_HDR took; offloadErrno: 0 = TSO/csum offloads on, -1 = not asked, else the kernel's errno;
   * usoErrno: the same for TUN_F_USO4|USO6 (UDP super-packets, Linux 6.2).
   */
  tunOpen(name: string, multiQueue: boolean, vnetHdr?: boolean): [fd: number, name: string, vnet: number, offloadErrno: number, usoErrno: number];
  readonly TUN_SCRATCH: number;
  readBatchVnet(fd: number, mem: Uint8Array, offs: Uint32Array, lens: Uint32Array, max: number, slotCap: number, stats: Uint32Array, scratch: Uint8Array): number;
  /** Segments `first`.. of one vnet TUN read (header + packet) into up to `max` slots: slots filled, -1 = malformed. */
  gsoSplit(packet: Uint8Array, mem: Uint8Array, offs: Uint32Array, lens: Uint32Array, max: number, slotCap: number, stats: Uint32Array, first?: number): number;
  /** [gsoErrno, groErrno]: 0 on, -1 not asked, else the kernel's errno. */
  udpOffload(fd: number, gso: boolean, gro: boolean): [gso: number, gro: number];
  readonly GRO_LANDING_HEAD: number;
  readonly GRO_LANDING_PER_MSG: number;
  recvBatchGro(
    fd: number, mem: Uint8Array, offs: Uint32Array, lens: Uint32Array,
    addrs: Uint8Array | null, ports: Uint16Array | null, locals: Uint8Array | null,
    max: number, slotCap: number, stats: Uint32Array, landing: Uint8Array,
  ): number;
  readBatch(fd: number, mem: Uint8Array, offs: Uint32Array, lens: Uint32Array, max: number, slotCap: number, stats: Uint32Array): number;
  /**
   * A multishot io_uring read on a TUN fd: [reader, ringFd, "", 0], or [null, -1, why, errno] when
   * io_uring cannot be used here (why names the step the kernel refused).
   */
  tunUringOpen(tunFd: number, vnet: boolean): [reader: UringHandle | null, ringFd: number, why: string, errno: number];
  /** Cancels the read, waits for its last completion and frees the buffers (idempotent). */
  tunUringClose(reader: UringHandle): void;
  /**
   * As readBatch / readBatchVnet, from the reader's completions (stats: 13 elements). A re-arm the
   * kernel refused is not thrown: stats[ST_REARM_ERRNO] gets its errno and the TUN fd must be read directly.
   */
  readBatchUring(reader: UringHandle, mem: Uint8Array, offs: Uint32Array, lens: Uint32Array, max: number, slotCap: number, stats: Uint32Array): number;
  /** TEST HOOK (never called from config or the CLI): the reader's next re-arm is refused with `errno`. */
  tunUringFailRearm(reader: UringHandle, errno: number): void;
  /** vnet: the fd has IFF_VNET_HDR (TCP runs are coalesced; stats needs 12 elements); uso: it took USO (UDP runs too). */
  writeBatch(fd: number, mem: Uint8Array, offs: Uint32Array, lens: Uint32Array, n: number, stats: Uint32Array, vnet?: boolean, uso?: boolean): number;

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
    /** UDP_SEGMENT trains (stats needs 12 elements). */
    gso?: boolean,
  ): number;

  /**
   * Hands a classic-BPF program (2 words per instruction, steer_linux.ts) to
   * the kernel: SO_ATTACH_REUSEPORT_CBPF when `reuseport`, else
   * SO_ATTACH_FILTER. With `drain`, discards what was queued before; returns
   * how many datagrams that was.
   */
  sockAttachFilter(fd: number, reuseport: boolean, program: Uint32Array, drain: boolean): number;

  /**
   * Loads an eBPF program (2 words per struct bpf_insn, steer_linux.ts) and
   * makes it the TUN's queue selector (TUNSETSTEERINGEBPF); throws with the
   * errno and the verifier's first line when refused.
   */
  tunAttachSteering(fd: number, program: Uint32Array): void;

  /**
   * Advice to the kernel about `length` bytes of `mem` from `offset`
   * (native/mem_linux.c); kind MEM_HUGE_PAGES: back them with transparent
   * huge pages when touched. Bytes advised; 0 when the kernel has no THP.
   */
  memAdvise(mem: Uint8Array, offset: number, length: number, kind: number): number;
  /**
   * Has the kernel back `length` bytes of `mem` from `offset` as if written
   * (MADV_POPULATE_WRITE), on a thread of libuv's pool; resolves with the
   * bytes populated, 0 where the kernel cannot.
   */
  memPopulate(mem: Uint8Array, offset: number, length: number): Promise<number>;

  pollStart(fd: number, cb: (status: number) => void): PollHandle;
  pollStop(h: PollHandle): void;
  pollRef(h: PollHandle, keepAlive: boolean): void;
}

function addonPath(): string {
  const env = process.env.WESP_IO_ADDON;
  if (env) return env;
  return packagePath("native", "build", "Release", "wesp_io.node");
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

/** A fresh stats array for one fd (see ST_*; those from ST_SUPER on count only on offloading fds). */
export function newStats(): Uint32Array {
  return new Uint32Array(13);
}

/** An offload as negotiated: on, off (not asked), or refused with the kernel's errno name. */
export type OffloadState = "on" | "off" | `refused (${string})`;

/** The state an addon result code (0 on, -1 not asked, else errno) stands for. */
export function offloadState(code: number): OffloadState {
  if (code === 0) return "on";
  if (code < 0) return "off";
  return `refused (${errnoName(code)})`;
}

/** EPERM for 1, …; "errno N" for a number Node does not name. */
export function errnoName(code: number): string {
  return Object.entries(osConstants.errno).find(([, v]) => v === code)?.[0] ?? `errno ${code}`;
}
