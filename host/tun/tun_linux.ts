// TUN devices (Linux): open or attach, read and write batches of IP packets
// straight into the WASM ring.
//
// Packets are bare IPv4/IPv6 (IFF_TUN | IFF_NO_PI: no 4-byte packet-info
// prefix). Linux has no batched TUN read, so a batch is a loop of read(2)s
// inside one addon call; what the batch saves is the JS↔C crossing and the
// per-packet JS work. With `reader: "auto"` a multishot io_uring read
// (native/tun_uring_linux.c) reads for us instead and a batch reaps its
// completions without a syscall per packet; where the kernel refuses
// io_uring the readv loop is used, and `reader` says which and why. If the
// kernel later refuses to re-arm the multishot read, nothing would wake the
// reader again, so the queue drops to readv for good (readiness moves to the
// TUN fd) and `reader.why` names the refusal. See docs/io.md for the numbers.
//
// Ring slots, as the pipeline lays them out in WASM memory:
//
//   mem ─┬─ headroom ─┬──────── packet (≤ slotCap) ────────┬─ tailroom ─┬─ next slot…
//        │            ^ offs[i]                            │            │
//        │            └────────── lens[i] bytes ───────────┘            │
//
// The addon only touches [offs[i], offs[i] + slotCap) on read and
// [offs[i], offs[i] + lens[i]) on write, and throws a RangeError when such a
// range falls outside `mem`, so headroom for in-place encapsulation is safe.
//
// Running without CAP_NET_ADMIN: an administrator makes a persistent device
// for the user once,
//     ip tuntap add dev wesp0 mode tun user wesp [multi_queue]
// and wesp attaches to it by name (multiQueue must match how it was made).
import {
  errnoName, io, offloadState, type UringHandle, ST_BAD, ST_REARM_ERRNO, ST_COALESCED, ST_COALESCED_SEGS, ST_COALESCED_UDP, ST_COALESCED_UDP_SEGS, ST_CSUM, ST_SEGMENTS, ST_SUPER, type OffloadState,
} from "../io/native_linux.ts";
import { PacketFd } from "../io/packet_fd_linux.ts";
import { withNetns } from "../io/netns_linux.ts";

export interface TunOptions {
  /** Interface name (≤ 15 bytes); may contain "%d" for the kernel to number it. */
  name: string;
  /** IFF_MULTI_QUEUE: each open adds one queue; must match a persistent device. */
  multiQueue?: boolean;
  /**
   * Create/attach inside this network namespace (name from `ip netns add` or a
   * path; needs CAP_SYS_ADMIN). The device stays there; the fd works from here.
   */
  netns?: string;
  /**
   * IFF_VNET_HDR with TSO4/TSO6, USO4/USO6 (Linux 6.2) and checksum offload
   * offered to the kernel (TUNSETOFFLOAD): reads may return TCP or UDP
   * super-packets of up to 64 KiB, which readBatch segments into MTU-sized
   * packets (native/gso_linux.c), and writeBatch coalesces runs of one flow
   * into such super-packets. A kernel that refuses falls back: see `offloads`.
   */
  offload?: boolean;
  /**
   * How packets are read: "auto" = a multishot io_uring read where the
   * kernel allows it (Linux 6.7), else readv; "readv" = one read(2) per
   * packet (default here; the forwarder takes config `tun.reader`).
   */
  reader?: TunReaderChoice;
  /** What chose `reader`, for status's why (default "tun.reader"; the worker says "WESP_TUN_READER" when that overrides the config). */
  readerFrom?: string;
}

export type TunReaderChoice = "auto" | "readv";

/** Which reader a TUN queue uses, and why not io_uring when it does not (status shows it). */
export interface TunReader {
  reader: "io_uring" | "readv";
  /** Why readv: "tun.reader readv" (or "WESP_TUN_READER readv"), or the step the kernel refused with its errno name ("io_uring re-arm: EAGAIN" when it refused mid-run). */
  why?: string;
}

/** What the kernel granted a TUN queue (status shows it). */
export interface TunOffloads {
  /** IFF_VNET_HDR: every read and write carries a virtio_net_hdr. */
  vnetHdr: boolean;
  /** TUNSETOFFLOAD(CSUM | TSO4 | TSO6): TCP super-packets both ways. */
  tso: OffloadState;
  /** TUN_F_USO4 | USO6 on top (Linux 6.2): UDP super-packets both ways (UDP runs coalesced on write). */
  uso: OffloadState;
}

/** Segmentation and coalescing counters of a vnet TUN (running totals, wrap at 2^32). */
export interface TsoCounters {
  /** Read: super-packets segmented, the segments they made, malformed ones dropped, partial checksums finished. */
  superPackets: number;
  segments: number;
  malformed: number;
  checksums: number;
  /** Write: super-packets written from coalesced TCP segments, and the segments they held. */
  coalesced: number;
  coalescedSegments: number;
  /** Write: super-packets written from coalesced UDP datagrams (USO), and the datagrams they held. */
  udpCoalesced: number;
  udpCoalescedDatagrams: number;
}

export class Tun extends PacketFd {
  /** The kernel's name for the device (resolves a "%d" pattern). */
  readonly name: string;
  readonly multiQueue: boolean;
  readonly offloads: TunOffloads;
  /** A vnet read's landing buffer: one super-packet, kept between batches when it did not fit. */
  private readonly scratch: Uint8Array | null;
  /** The scratch buffer's first word: bytes of a super-packet held for the next batch, 0 = none (tun_offload_linux.c). */
  private readonly pending: Uint32Array | null;
  /** The kernel took USO: UDP runs are coalesced on write. */
  private readonly uso: boolean;
  /** Which reader this queue uses (io_uring can turn into readv: see leaveUring). */
  #reader: TunReader;
  /** The io_uring reader and its ring fd (readiness), when reader is io_uring. */
  private uring: UringHandle | null = null;
  private readonly ringFd: number = -1;

  private constructor(fd: number, name: string, multiQueue: boolean, vnet: boolean, offloadErrno: number, usoErrno: number, choice: TunReaderChoice, from: string) {
    super(fd);
    this.name = name;
    this.multiQueue = multiQueue;
    this.offloads = { vnetHdr: vnet, tso: vnet ? offloadState(offloadErrno) : "off", uso: vnet ? offloadState(usoErrno) : "off" };
    this.scratch = vnet ? new Uint8Array(io.TUN_SCRATCH) : null;
    this.pending = this.scratch === null ? null : new Uint32Array(this.scratch.buffer, 0, 1);
    this.uso = this.offloads.uso === "on";
    if (choice === "readv") {
      this.#reader = { reader: "readv", why: `${from} readv` };
      return;
    }
    const [u, ringFd, why, errno] = io.tunUringOpen(fd, vnet);
    this.uring = u;
    this.ringFd = ringFd;
    this.#reader = u !== null ? { reader: "io_uring" } : { reader: "readv", why: `${why}: ${errnoName(errno)}` };
  }

  /** Which reader this queue uses, and why readv when it does (status shows it). */
  get reader(): TunReader {
    return this.#reader;
  }

  /**
   * The kernel refused to re-arm the multishot read (native
   * stats[ST_REARM_ERRNO]): no completion will ever make the ring fd
   * readable again, so this queue is read with readv from now on. The ring
   * holds no unread packet at that point (the multishot's last completion
   * was the last one reaped), so nothing is lost or reordered: what came
   * after waits in the TUN queue, and the poll moves to the TUN fd.
   */
  private leaveUring(u: UringHandle): void {
    const errno = this.stats[ST_REARM_ERRNO];
    this.moveReadiness(() => {
      io.tunUringClose(u);
      this.uring = null;
    });
    this.#reader = { reader: "readv", why: `io_uring re-arm: ${errnoName(errno)}` };
  }

  /** TEST HOOK (unreachable from config and the CLI): the io_uring reader's next re-arm is refused with `errno`. */
  failNextRearmForTest(errno: number): void {
    if (this.uring === null) throw new Error("Tun: not reading through io_uring");
    io.tunUringFailRearm(this.uring, errno);
  }

  /** The ring fd when reading through io_uring (it polls readable while completions wait), else the TUN fd. */
  override get readyFd(): number {
    const fd = this.live();
    return this.uring !== null ? this.ringFd : fd;
  }

  /** Stops polling, ends the io_uring read (its buffers freed once the kernel let go), closes the fd. */
  override close(): void {
    if (this.closed) return;
    this.offReadable();
    if (this.uring !== null) {
      io.tunUringClose(this.uring);
      this.uring = null;
    }
    super.close();
  }

  tsoCounters(): TsoCounters {
    const s = this.stats;
    return {
      superPackets: s[ST_SUPER], segments: s[ST_SEGMENTS], malformed: s[ST_BAD], checksums: s[ST_CSUM],
      coalesced: s[ST_COALESCED], coalescedSegments: s[ST_COALESCED_SEGS],
      udpCoalesced: s[ST_COALESCED_UDP], udpCoalescedDatagrams: s[ST_COALESCED_UDP_SEGS],
    };
  }

  /**
   * Opens (creating it when absent — needs CAP_NET_ADMIN) or attaches to the
   * TUN device `opts.name`, one queue. The fd is non-blocking: readiness
   * comes from onReadable or waitReadable. A non-persistent device vanishes
   * when its last fd is closed.
   */
  static open(opts: TunOptions): Tun {
    const mq = opts.multiQueue ?? false;
    const [fd, name, vnet, offloadErrno, usoErrno] = withNetns(opts.netns, () => io.tunOpen(opts.name, mq, opts.offload ?? false));
    try {
      return new Tun(fd, name, mq, vnet === 1, offloadErrno, usoErrno, opts.reader ?? "readv", opts.readerFrom ?? "tun.reader");
    } catch (e) {
      io.close(fd);
      throw e;
    }
  }

  /**
   * Opens `queues` queues of one multi-queue device (one per worker; the
   * kernel spreads flows over them by hash). All or nothing: on failure the
   * queues opened so far are closed.
   */
  static openQueues(opts: TunOptions, queues: number): Tun[] {
    if (!Number.isInteger(queues) || queues < 1) throw new RangeError("queues: a positive integer");
    const out: Tun[] = [];
    try {
      const first = Tun.open({ ...opts, multiQueue: true });
      out.push(first);
      // The others attach by the resolved name (a "%d" pattern would make new devices).
      for (let i = 1; i < queues; i++) out.push(Tun.open({ ...opts, name: first.name, multiQueue: true }));
    } catch (e) {
      for (const t of out) t.close();
      throw e;
    }
    return out;
  }

  /**
   * Reads up to `max` packets (at most io.MAX_BATCH = 256 per call): packet i
   * into mem[offs[i], offs[i] + slotCap), its length into lens[i]. Returns
   * how many slots were filled; 0 = nothing ready. A packet longer than
   * slotCap is dropped (lens[i] = 0, counters().truncated). `offs` and `lens`
   * need ≥ max elements; slotCap should be ≥ the device MTU. With offloads a
   * TCP or UDP super-packet fills one slot per segment; one that needs more slots
   * than are left waits for the next call (never split across batches).
   */
  readBatch(mem: Uint8Array, offs: Uint32Array, lens: Uint32Array, max: number, slotCap: number): number {
    const u = this.uring;
    if (u !== null) {
      try {
        return io.readBatchUring(u, mem, offs, lens, max, slotCap, this.stats);
      } finally {
        if (this.stats[ST_REARM_ERRNO] !== 0) this.leaveUring(u);
      }
    }
    const sc = this.scratch;
    if (sc !== null) return io.readBatchVnet(this.live(), mem, offs, lens, max, slotCap, this.stats, sc);
    return io.readBatch(this.live(), mem, offs, lens, max, slotCap, this.stats);
  }

  /** A super-packet read whose segments did not fit the last batch waits in the scratch buffer for the next. */
  override holding(): boolean {
    const p = this.pending;
    return p !== null && p[0] !== 0;
  }

  /**
   * Writes packets 0..n-1, packet i = mem[offs[i], offs[i] + lens[i]);
   * lens[i] = 0 skips the slot (a dropped packet). Returns how many the
   * kernel took; refused ones (malformed, link down) are counted in
   * counters().failed and not retried. TUN writes never block. With the
   * vnet header, consecutive TCP segments of one flow (checksums valid) are
   * written as one super-packet (tsoCounters().coalesced), and with USO
   * consecutive UDP datagrams of one flow too (udpCoalesced); the count is
   * still of packets.
   */
  writeBatch(mem: Uint8Array, offs: Uint32Array, lens: Uint32Array, n: number): number {
    return io.writeBatch(this.live(), mem, offs, lens, n, this.stats, this.offloads.vnetHdr, this.uso);
  }
}
