// Raw IP sockets for ESP without UDP (IP protocol 50, RFC 4303), IP-in-IP
// (4 = IPv4, 41 = IPv6 payload; RFC 2003 / RFC 2473) and GRE (47, RFC 2784)
// on ports that face a trusted network. Needs CAP_NET_RAW.
//
// What a receive puts in a slot differs by family, and the pipeline must
// know it (Linux raw(7) / RFC 3542 section 3):
//
//   IPv4 socket:  ┌ IPv4 header (IHL·4 bytes) ┬ ESP / inner packet / GRE … ┐
//   IPv6 socket:  ┌ ESP / inner packet / GRE … ┐   (no header: the source is
//                   in addrs, the destination in locals with pktinfo)
//
// On send the kernel writes the outer header unless `headerIncluded`
// (IP_HDRINCL / IPV6_HDRINCL): then each slot must start with a complete
// IP header, which the kernel sends as written (IPv4: it fills in the total
// length, checksum and — when zero — the ID and source).
//
// Why this and not the `raw-socket` package: raw-socket delivers one packet
// per callback, copied into a fresh Buffer, and sends one per call;
// docs/io.md has the measured difference. The batched path here lands
// packets in ring slots without a copy.
import { F_HDRINCL, F_PKTINFO, io } from "../io/native_linux.ts";
import { PacketFd } from "../io/packet_fd_linux.ts";
import { withNetns } from "../io/netns_linux.ts";

export const PROTO_IPIP = 4;
export const PROTO_IPV6 = 41;
export const PROTO_GRE = 47;
export const PROTO_ESP = 50;

export interface RawOptions {
  family: 4 | 6;
  /** IP protocol number to receive and send (50, 4, 41, 47, …). */
  protocol: number;
  /** Receive only packets sent to this local address (default: all). */
  address?: string;
  /** Slots carry the outer IP header on send (IP_HDRINCL / IPV6_HDRINCL). */
  headerIncluded?: boolean;
  /** Report each packet's destination address in recvBatch's `locals`. */
  pktinfo?: boolean;
  rcvbuf?: number;
  sndbuf?: number;
  /** Longest a send waits for room in a full send buffer (default 20 ms). */
  sendTimeoutMs?: number;
  /** Open inside this network namespace (see host/io/netns_linux.ts). */
  netns?: string;
}

export class RawSocket extends PacketFd {
  readonly family: 4 | 6;
  readonly protocol: number;
  readonly headerIncluded: boolean;
  /** IPv4 raw sockets receive the IP header in front of the payload; IPv6 ones do not. */
  readonly receivesIpHeader: boolean;
  /** Port numbers mean nothing to raw sockets; sendBatch passes zeros. */
  readonly #zeroPorts = new Uint16Array(io.MAX_BATCH);

  private constructor(fd: number, opts: RawOptions) {
    super(fd);
    this.family = opts.family;
    this.protocol = opts.protocol;
    this.headerIncluded = opts.headerIncluded ?? false;
    this.receivesIpHeader = opts.family === 4;
  }

  static open(opts: RawOptions): RawSocket {
    const flags = (opts.headerIncluded ? F_HDRINCL : 0) | (opts.pktinfo ? F_PKTINFO : 0);
    const fd = withNetns(opts.netns, () =>
      io.sockOpen(
        true, opts.family, opts.protocol, opts.address ?? null, 0,
        flags, opts.rcvbuf ?? 0, opts.sndbuf ?? 0, opts.sendTimeoutMs ?? 20,
      ),
    );
    return new RawSocket(fd, opts);
  }

  /**
   * Receives up to `max` packets (≤ 256 per call) into the ring, as
   * UdpSocket.recvBatch; addrs[16i..] = the source address. IPv4: the slot
   * starts with the IP header (see the file comment).
   */
  recvBatch(
    mem: Uint8Array, offs: Uint32Array, lens: Uint32Array, addrs: Uint8Array | null,
    max: number, slotCap: number, locals: Uint8Array | null = null,
  ): number {
    return io.recvBatch(this.live(), mem, offs, lens, addrs, null, locals, max, slotCap, this.stats);
  }

  /**
   * Sends slots 0..n-1 (n ≤ 256; lens[i] = 0 skips) to addrs[16i..] of family
   * fams[i] (must equal the socket's family). With headerIncluded the slot
   * starts with the IP header and addrs only steers routing.
   */
  sendBatch(mem: Uint8Array, offs: Uint32Array, lens: Uint32Array, addrs: Uint8Array, fams: Uint8Array, n: number): number {
    return io.sendBatch(this.live(), this.family, mem, offs, lens, addrs, this.#zeroPorts, fams, n, this.stats);
  }
}
