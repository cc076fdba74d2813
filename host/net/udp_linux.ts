// UDP sockets for UDP-encapsulated ESP (RFC 3948; IKE's NAT-T port 4500 by
// default), with batched receive (recvmmsg) and send (sendmmsg) straight
// between the socket and the WASM ring.
//
// Per-slot side arrays (slot i of each goes with ring slot i):
//
//   addrs  Uint8Array(16·n)  peer address: IPv4 socket → 4 bytes + 12 zero;
//                            IPv6 socket → 16 bytes (an IPv4 peer of a
//                            dual-stack socket appears as ::ffff:a.b.c.d)
//   ports  Uint16Array(n)    peer port, host byte order
//   fams   Uint8Array(n)     send only: 4 or 6 (4 on an IPv6 socket = mapped)
//   locals Uint8Array(16·n)  receive, optional: the address the peer sent to
//                            (IP_PKTINFO; needs `pktinfo: true`)
//
// Sends block while the socket's send buffer is full — backpressure for the
// pipeline — but at most sendTimeoutMs; what is left then is counted in
// counters().unsent and not sent. Receives never block.
import { F_PKTINFO, F_REUSEPORT, F_V6ONLY, io, offloadState, ST_SEGMENTS, ST_SUPER, type OffloadState } from "../io/native_linux.ts";
import { PacketFd } from "../io/packet_fd_linux.ts";
import { withNetns } from "../io/netns_linux.ts";

export const DEFAULT_PORT = 4500;

export interface UdpOptions {
  family: 4 | 6;
  /** Local address to bind (default: any). */
  address?: string;
  /** Local port (default 4500; 0 = any free port, see `.port`). */
  port?: number;
  /** SO_REUSEPORT: one socket per worker on the same port; the kernel spreads flows. */
  reusePort?: boolean;
  /** IPv6 only (default true), so an IPv4 socket may share the port. false = dual stack. */
  v6only?: boolean;
  /** Report each datagram's local (destination) address in recvBatch's `locals`. */
  pktinfo?: boolean;
  /** SO_RCVBUF / SO_SNDBUF in bytes (beyond net.core.*mem_max only with CAP_NET_ADMIN). */
  rcvbuf?: number;
  sndbuf?: number;
  /** Longest a send waits for room in a full send buffer (default 20 ms, ≥ 1). */
  sendTimeoutMs?: number;
  /** Create the socket inside this network namespace (see host/io/netns_linux.ts). */
  netns?: string;
  /**
   * UDP_SEGMENT: runs of same-size datagrams to one peer leave as one GSO
   * train per sendmmsg entry (native/udp_offload_linux.c).
   */
  gso?: boolean;
  /** UDP_GRO: the kernel may coalesce a flow's datagrams; recvBatch cuts them back, one per slot. */
  gro?: boolean;
}

/** GRO messages held per socket: 64 × 64 KiB of landing area (4 MiB), allocated once. */
const GRO_MESSAGES = 64;

export class UdpSocket extends PacketFd {
  readonly family: 4 | 6;
  /** Bound local address and port (the port the kernel chose when asked for 0). */
  readonly address: string;
  readonly port: number;
  /** UDP_SEGMENT / UDP_GRO as the kernel granted them (status shows it). */
  readonly offloads: { gso: OffloadState; gro: OffloadState };
  private readonly gso: boolean;
  /** Where coalesced GRO trains land before they are cut into slots (null: GRO off). */
  private readonly landing: Uint8Array | null;
  /** The landing area's head as the addon keeps it: messages held, the next one to cut (udp_offload_linux.c). */
  private readonly landingHead: Uint32Array | null;

  private constructor(fd: number, family: 4 | 6, gso: boolean, gro: boolean) {
    super(fd);
    this.family = family;
    const [address, port] = io.sockName(fd);
    this.address = address;
    this.port = port;
    const [g, r] = gso || gro ? io.udpOffload(fd, gso, gro) : [-1, -1];
    this.offloads = { gso: offloadState(g), gro: offloadState(r) };
    this.gso = g === 0;
    this.landing = r === 0 ? new Uint8Array(io.GRO_LANDING_HEAD + GRO_MESSAGES * io.GRO_LANDING_PER_MSG) : null;
    this.landingHead = this.landing === null ? null : new Uint32Array(this.landing.buffer, 0, 2);
  }

  /** Trains sent with UDP_SEGMENT plus trains received coalesced, and the datagrams they held. */
  trainCounters(): { trains: number; datagrams: number } {
    return { trains: this.stats[ST_SUPER], datagrams: this.stats[ST_SEGMENTS] };
  }

  // (Shadows Function.prototype.bind on the class object, as the API sketch names it.)
  static override bind(opts: UdpOptions): UdpSocket {
    const flags =
      (opts.reusePort ? F_REUSEPORT : 0) | ((opts.v6only ?? true) ? F_V6ONLY : 0) | (opts.pktinfo ? F_PKTINFO : 0);
    const fd = withNetns(opts.netns, () =>
      io.sockOpen(
        false, opts.family, 0, opts.address ?? null, opts.port ?? DEFAULT_PORT,
        flags, opts.rcvbuf ?? 0, opts.sndbuf ?? 0, opts.sendTimeoutMs ?? 20,
      ),
    );
    return new UdpSocket(fd, opts.family, opts.gso ?? false, opts.gro ?? false);
  }

  /**
   * Receives up to `max` datagrams (≤ io.MAX_BATCH = 256 per call), datagram i
   * into mem[offs[i], offs[i] + slotCap), length in lens[i], sender in
   * addrs[16i..16i+16) / ports[i], local address in locals[16i..] when given.
   * Returns the count; 0 = nothing queued. A datagram longer than slotCap gets
   * lens[i] = 0 (counters().truncated). addrs/ports/locals may be null.
   */
  recvBatch(
    mem: Uint8Array, offs: Uint32Array, lens: Uint32Array,
    addrs: Uint8Array | null, ports: Uint16Array | null,
    max: number, slotCap: number, locals: Uint8Array | null = null,
  ): number {
    const land = this.landing;
    if (land !== null) return io.recvBatchGro(this.live(), mem, offs, lens, addrs, ports, locals, max, slotCap, this.stats, land);
    return io.recvBatch(this.live(), mem, offs, lens, addrs, ports, locals, max, slotCap, this.stats);
  }

  /**
   * Datagrams of trains an earlier recvBatch received wait in the landing
   * area: one recvmmsg takes up to 64 trains (thousands of datagrams), a
   * batch hands out at most its slots, and the rest open the next batch.
   */
  override holding(): boolean {
    const h = this.landingHead;
    return h !== null && h[1] < h[0];
  }

  /**
   * Sends slots 0..n-1 (n ≤ 256; lens[i] = 0 skips a slot) to addrs[16i..] /
   * ports[i] of family fams[i]. Returns how many the kernel took; refused
   * ones (EMSGSIZE, unreachable, firewall) go to counters().failed, and ones
   * left when the buffer stayed full to counters().unsent.
   */
  sendBatch(
    mem: Uint8Array, offs: Uint32Array, lens: Uint32Array,
    addrs: Uint8Array, ports: Uint16Array, fams: Uint8Array, n: number,
  ): number {
    return io.sendBatch(this.live(), this.family, mem, offs, lens, addrs, ports, fams, n, this.stats, this.gso);
  }
}
