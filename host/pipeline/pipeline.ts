// The packet loop: TUN and sockets in, one core call per batch, each slot out
// per its verdict. One Pipeline = one core (one WASM instance, one ring) and
// the fds that feed it, all owned by the thread that runs it (worker.ts).
//
// Outbound (TUN → network):
//   tun.readBatch → slots at HEADROOM (straight into WASM memory)
//   → core.processOutbound(n)
//   → TO_NETWORK: queued on the SA's socket — UDP takes packet[hdrLen..] to
//     the descriptor's address:port, a raw socket (IP_HDRINCL) the whole
//     packet; BYPASS: the bypass socket of its family, if one was given;
//     ICMP (an inner packet over the SA's path MTU): the error the core built
//     in place, queued for the TUN under the rate limit; FRAGMENT (IPv4, DF
//     clear): the core's fragments, sealed behind the ring, sent after the batch
//   → one sendmmsg per socket, one TUN write batch.
//   With offloads (tun.offload, udp gso/gro) the TUN read cuts TCP
//   super-packets into one slot per segment and the UDP send joins each run
//   of same-size datagrams to one peer into a UDP_SEGMENT train; inbound,
//   UDP_GRO trains are cut back into one slot per datagram. The loop itself
//   does not change: it still sees one inner packet per slot.
// Inbound (socket → TUN):
//   recvBatch → slots at HEADROOM (kind UDP with the sender's address:port;
//   IPv4 raw: kind IP, the header is there; IPv6 raw: kind PAYLOAD with the
//   protocol, addresses from the socket) → core.processInbound(n)
//   → TO_TUN: one TUN write batch; TO_HOST (IKE behind the RFC 3948
//   non-ESP marker, or a STUN message: the core says which in D_PROTO):
//   counted, copied out and given to onHost (the worker posts it to the main
//   thread's IKE side, or STUN client); sendHost answers from 4500.
//
// Readiness comes from onReadable (uv_poll on this thread's loop,
// level-triggered): each callback handles batches until the fd is drained
// (a batch short of the ring, nothing held), at most BATCHES_PER_WAKE, and
// returns, so status requests and the stop message are never starved, and
// nothing ever sits in a blocking read (shutdown cannot hang on one). What a
// reader already took from the kernel and holds for its next batch (the rest
// of the UDP_GRO trains one recvmmsg brought, a TUN super-packet that did not
// fit) does not make the fd readable: the callback comes back for it itself,
// after one turn of the loop, instead of waiting for the next datagram.
import { Core, HEADROOM, KIND, MAX_PACKET, SLOT_SIZE, VERDICT } from "../core/core.ts";
import type { Tun } from "../tun/tun_linux.ts";
import type { HostCounters, OffloadStatus, SocketRow } from "../control/status.ts";
import { HOST_STUN } from "../core/abi.ts";
import type { UdpSocket } from "../net/udp_linux.ts";
import type { RawSocket } from "../net/raw_linux.ts";
import type { Provisioned, OutSa } from "./provision.ts";
import { RateLimit } from "./icmp_rate.ts";
import { kernelDrops } from "./sockstat_linux.ts";

/** Most a received datagram may fill: the slot after its headroom. */
const RECV_CAP = SLOT_SIZE - HEADROOM;

/**
 * Most batches one readiness callback runs before it yields to the event
 * loop: 4 × 256 packets, a few milliseconds of work, so the reservation tick
 * (10 ms), status and the stop message wait at most that long; under a flood
 * a wake-up (epoll_wait, the callback's way into JS) then serves up to four
 * batches instead of one.
 */
export const BATCHES_PER_WAKE = 4;

/** The sockets of one WAN port (any may be absent). */
export interface WanSockets {
  name: string;
  udp?: UdpSocket;
  /** Raw sockets by IP protocol (50 ESP, 4/41 IP-in-IP, 47 GRE), IP_HDRINCL. */
  raw: Map<number, RawSocket>;
}

/** Per-socket send queue: side arrays in the addon's per-slot layout (docs/io.md). */
class SendQueue {
  n = 0;
  readonly offs: Uint32Array;
  readonly lens: Uint32Array;
  readonly addrs: Uint8Array;
  readonly ports: Uint16Array;
  readonly fams: Uint8Array;
  sent = 0;
  constructor(readonly name: string, readonly sock: UdpSocket | RawSocket, readonly udp: boolean, slots: number) {
    this.offs = new Uint32Array(slots);
    this.lens = new Uint32Array(slots);
    this.addrs = new Uint8Array(slots * 16);
    this.ports = new Uint16Array(slots);
    this.fams = new Uint8Array(slots);
  }
  flush(mem: Uint8Array): void {
    if (this.n === 0) return;
    const s = this.sock;
    this.sent += this.udp
      ? (s as UdpSocket).sendBatch(mem, this.offs, this.lens, this.addrs, this.ports, this.fams, this.n)
      : (s as RawSocket).sendBatch(mem, this.offs, this.lens, this.addrs, this.fams, this.n);
    this.n = 0;
  }
}

/** A socket the pipeline receives from, and what its slots hold. */
interface Receiver {
  name: string;
  /** Index of its WAN port in `wans`. */
  wan: number;
  sock: UdpSocket | RawSocket;
  kind: number;
  proto: number;
  family: 4 | 6;
  received: number;
}

/** An IKE datagram that arrived on a WAN port's NAT-T socket (see Pipeline.onHost). */
export interface HostPacket {
  wanIndex: number;
  family: 4 | 6;
  /** Sender address (16 bytes; IPv4 in the first 4) and UDP port. */
  address: Uint8Array;
  port: number;
  /** Local address it arrived on (16 bytes, IP_PKTINFO). */
  local: Uint8Array;
  /** The IKE message, without the non-ESP marker; or the whole STUN message. */
  bytes: Uint8Array;
  /** A STUN message (RFC 8489; assembly/udp_encap.ts), not IKE: sent and received without the marker. */
  stun?: boolean;
}

export class Pipeline {
  readonly counters: HostCounters = {
    tunRead: 0, tunWritten: 0, sent: 0, received: 0, toHost: 0,
    icmpTooBig: 0, icmpRateLimited: 0, fragmented: 0, bypassUnsent: 0, keepalives: 0,
  };
  private readonly mem: Uint8Array;
  private readonly slots: number;
  /** Fixed receive offsets: slot i at HEADROOM. */
  private readonly inOffs: Uint32Array;
  private readonly inLens: Uint32Array;
  private readonly inAddrs: Uint8Array;
  private readonly inPorts: Uint16Array;
  private readonly inLocals: Uint8Array;
  private readonly tunQ: { n: number; offs: Uint32Array; lens: Uint32Array };
  private readonly queues: SendQueue[] = [];
  /** Outbound SA id → its queue (UDP / raw ESP), or the WAN's raw sockets by protocol (plain tunnels). */
  private readonly bySa = new Map<number, { q?: SendQueue; byProto?: Map<number, SendQueue>; out: OutSa }>();
  private readonly receivers: Receiver[] = [];
  private readonly bypass = new Map<number, SendQueue>();
  /** Each WAN port's send queues, for routing outbound SAs (refreshRoutes). */
  private readonly wanQ: { udp?: SendQueue; raw: Map<number, SendQueue> }[];
  private readonly icmpLimit = new RateLimit();
  /** FRAGMENT verdicts in the batch just dispatched (their fragments follow). */
  private fragSources = 0;
  private started = false;
  private closed = false;

  constructor(
    readonly core: Core,
    readonly tun: Tun,
    readonly wans: WanSockets[],
    readonly prov: Provisioned,
    bypass: RawSocket[] = [],
    /**
     * Called for each SA a batch's packets were matched to — sent, received,
     * or dropped after the SA was found (a replay, a number past the
     * reservation, a failed ICV) — once per run of the same SA, before the
     * next batch: the durable-reservation check (host/sa/seq_store.ts
     * `ensure`), whose timer looks only at the SAs reported. Absent in tests
     * without state.
     */
    private readonly afterBatch?: (core: Core, saId: number) => void,
  ) {
    this.mem = core.memory;
    this.slots = core.slots;
    const n = this.slots;
    this.inOffs = Uint32Array.from({ length: n }, (_, i) => core.slotBase(i) + HEADROOM);
    this.inLens = new Uint32Array(n);
    this.inAddrs = new Uint8Array(n * 16);
    this.inPorts = new Uint16Array(n);
    this.inLocals = new Uint8Array(n * 16);
    this.tunQ = { n: 0, offs: new Uint32Array(n), lens: new Uint32Array(n) };
    this.wanQ = wans.map((w, wan) => {
      const udp = w.udp ? this.queue(`${w.name}/udp`, w.udp, true) : undefined;
      const raw = new Map<number, SendQueue>();
      for (const [proto, s] of w.raw) raw.set(proto, this.queue(`${w.name}/raw${s.family === 6 ? "6" : ""}-${proto}`, s, false));
      if (w.udp) this.receivers.push({ name: `${w.name}/udp`, wan, sock: w.udp, kind: KIND.UDP, proto: 0, family: w.udp.family, received: 0 });
      for (const [proto, s] of w.raw) {
        // raw(7): IPv4 delivers the IP header, IPv6 only the payload (RFC 3542 §3).
        const kind = s.receivesIpHeader ? KIND.IP : KIND.PAYLOAD;
        this.receivers.push({ name: `${w.name}/raw${s.family === 6 ? "6" : ""}-${proto}`, wan, sock: s, kind, proto, family: s.family, received: 0 });
      }
      return { udp, raw };
    });
    this.refreshRoutes();
    for (const s of bypass) this.bypass.set(s.family, this.queue(`bypass${s.family}`, s, false));
  }

  /** Re-reads which queue each outbound SA sends on (after SAs were added or removed: host/sa/install.ts). */
  refreshRoutes(): void {
    this.bySa.clear();
    for (const out of this.prov.outBySa.values()) {
      const w = this.wanQ[out.wanIndex];
      if (out.carrier === "udp") this.bySa.set(out.saId, { q: w.udp, out });
      else if (out.carrier === "raw-esp") this.bySa.set(out.saId, { q: w.raw.get(50), out });
      else this.bySa.set(out.saId, { byProto: w.raw, out });
    }
  }

  private queue(name: string, sock: UdpSocket | RawSocket, udp: boolean): SendQueue {
    const q = new SendQueue(name, sock, udp, this.slots);
    this.queues.push(q);
    return q;
  }

  /** Starts reading: the TUN and every receiving socket on this thread's event loop. */
  start(onError: (where: string, e: Error) => void): void {
    if (this.started) return;
    this.started = true;
    // The readers are made once here, not per readiness callback.
    const tun = this.tun;
    const outbound = this.reader("tun", tun, onError, () => this.outboundBatch());
    tun.onReadable((err) => (err ? onError("tun", err) : outbound()));
    for (const r of this.receivers) {
      const inbound = this.reader(r.name, r.sock, onError, () => this.inboundBatch(r));
      r.sock.onReadable((err) => (err ? onError(r.name, err) : inbound()));
    }
  }

  /**
   * The readiness callback of one fd: `batch` until the fd is drained — a
   * batch short of the ring with nothing held means the kernel had no more
   * (recvmmsg / read said EAGAIN) — at most BATCHES_PER_WAKE times. When
   * the budget ends with packets still held (fd.holding()), it runs again
   * after this turn of the loop (setImmediate): the fd may never become
   * readable again for them (the sender paused, a TCP sender waits for the
   * ACK of exactly those segments). What is left in the kernel needs
   * nothing: the level-triggered poll calls again.
   */
  private reader(where: string, fd: { holding(): boolean }, onError: (where: string, e: Error) => void, batch: () => number): () => void {
    let queued = false;
    const again = (): void => {
      queued = false;
      run();
    };
    const run = (): void => {
      if (this.closed) return;
      try {
        for (let b = 1; ; b++) {
          const n = batch();
          if (n < this.slots && !fd.holding()) return;
          if (b === BATCHES_PER_WAKE) break;
        }
      } catch (e) {
        onError(where, e as Error);
        return;
      }
      if (fd.holding() && !queued) {
        queued = true;
        setImmediate(again);
      }
    };
    return run;
  }

  /** Stops reading and closes every fd (idempotent). */
  close(): void {
    this.closed = true;
    this.tun.close();
    for (const w of this.wans) {
      w.udp?.close();
      for (const s of w.raw.values()) s.close();
    }
    for (const q of this.bypass.values()) q.sock.close();
  }

  /** One TUN batch outbound. Returns how many packets were read. */
  outboundBatch(): number {
    const core = this.core;
    const n = this.tun.readBatch(this.mem, this.inOffs, this.inLens, this.slots, MAX_PACKET);
    if (n === 0) return 0;
    this.counters.tunRead += n;
    for (let i = 0; i < n; i++) core.setPacket(i, HEADROOM, this.inLens[i]);
    core.processOutbound(n);
    this.dispatchOutbound(0, n, true);
    this.flush();
    // IPv4 packets with DF clear that were too big: the core cuts them into
    // fragments (RFC 791) and seals those in the fragment slots behind the ring.
    if (this.fragSources > 0) {
      this.fragSources = 0;
      for (let k = core.fragmentOutbound(n); k > 0; k = core.fragmentOutbound(n)) {
        this.dispatchOutbound(this.slots, this.slots + k, false);
        this.flush();
      }
    }
    return n;
  }

  /** Slots [from, to) after processOutbound / fragmentOutbound: each to its socket, the TUN, or answered. */
  private dispatchOutbound(from: number, to: number, mayFragment: boolean): void {
    const core = this.core;
    let lastSa = -1, timed = false;
    for (let i = from; i < to; i++) {
      const v = core.verdict(i);
      if (v === VERDICT.TO_NETWORK) {
        const sa = core.saId(i);
        if (sa !== lastSa && this.afterBatch) this.afterBatch(core, (lastSa = sa));
        const route = this.bySa.get(sa);
        // Plain IP-in-IP / GRE: the socket of the outer protocol the core names.
        const q = route?.byProto ? route.byProto.get(core.proto(i)) : route?.q;
        if (!q) continue; // no socket for it: cannot happen with a provisioned config
        const k = q.n++;
        const skip = q.udp ? core.hdrLen(i) : 0;
        q.offs[k] = core.slotBase(i) + core.offset(i) + skip;
        q.lens[k] = core.length(i) - skip;
        core.destAddrInto(i, q.addrs, k * 16);
        q.ports[k] = core.destPort(i);
        q.fams[k] = core.destFamily(i);
      } else if (v === VERDICT.TO_TUN) {
        this.toTun(core.slotBase(i) + core.offset(i), core.length(i));
      } else if (v === VERDICT.BYPASS) {
        // The packet's own family and destination, from the descriptor: with
        // IP_HDRINCL the address only steers routing.
        const q = this.bypass.get(core.destFamily(i));
        if (!q) {
          this.counters.bypassUnsent++;
          continue;
        }
        const k = q.n++;
        q.offs[k] = core.slotBase(i) + core.offset(i);
        q.lens[k] = core.length(i);
        q.fams[k] = core.destFamily(i);
        core.destAddrInto(i, q.addrs, k * 16);
      } else if (v === VERDICT.ICMP) {
        // The core built the ICMP error in place (assembly/too_big.ts); the rate limit is ours,
        // its clock read once per batch (Date.now() allocates).
        if (!timed) {
          this.icmpLimit.advance(Date.now());
          timed = true;
        }
        if (!this.icmpLimit.take()) {
          this.counters.icmpRateLimited++;
          continue;
        }
        this.counters.icmpTooBig++;
        this.toTun(core.slotBase(i) + core.offset(i), core.length(i));
      } else if (v === VERDICT.FRAGMENT && mayFragment) {
        this.counters.fragmented++;
        this.fragSources++;
      } else if (v === VERDICT.DROP && this.afterBatch) {
        const sa = core.saId(i); // -1 when no SA was found (no policy, …)
        if (sa >= 0 && sa !== lastSa) this.afterBatch(core, (lastSa = sa));
      }
    }
  }

  private toTun(off: number, len: number): void {
    const t = this.tunQ;
    t.offs[t.n] = off;
    t.lens[t.n] = len;
    t.n++;
  }

  private flush(): void {
    // Indexed, not for-of: the array iterator was allocated per call (test/unit/pipeline-noalloc).
    const qs = this.queues;
    for (let k = 0; k < qs.length; k++) {
      const q = qs[k];
      const before = q.sent;
      q.flush(this.mem);
      this.counters.sent += q.sent - before;
    }
    const t = this.tunQ;
    if (t.n > 0) {
      this.counters.tunWritten += this.tun.writeBatch(this.mem, t.offs, t.lens, t.n);
      t.n = 0;
    }
  }

  /** One receive batch from `r` inbound. Returns how many packets were received. */
  inboundBatch(r: Receiver): number {
    const core = this.core;
    const udp = r.kind === KIND.UDP;
    const n = udp
      ? (r.sock as UdpSocket).recvBatch(this.mem, this.inOffs, this.inLens, this.inAddrs, this.inPorts, this.slots, RECV_CAP, this.inLocals)
      : (r.sock as RawSocket).recvBatch(this.mem, this.inOffs, this.inLens, this.inAddrs, this.slots, RECV_CAP, this.inLocals);
    if (n === 0) return 0;
    r.received += n;
    this.counters.received += n;
    for (let i = 0; i < n; i++) {
      core.setPacket(i, HEADROOM, this.inLens[i], r.kind, -1, r.proto);
      if (r.kind !== KIND.IP) {
        core.setRemoteBytes(i, r.family, this.inAddrs, udp ? this.inPorts[i] : 0, this.inLocals, i * 16, i * 16);
      }
    }
    core.processInbound(n);
    let lastSa = -1;
    for (let i = 0; i < n; i++) {
      const v = core.verdict(i);
      if (v === VERDICT.TO_TUN) {
        this.toTun(core.slotBase(i) + core.offset(i), core.length(i));
        const sa = core.saId(i);
        if (sa !== lastSa && this.afterBatch) this.afterBatch(core, (lastSa = sa));
      }
      else if (v === VERDICT.TO_HOST) {
        this.counters.toHost++;
        if (this.onHost && udp) this.toHost(r, i);
      } else if (v === VERDICT.DROP && this.afterBatch) {
        // after the SA was found: a peer past our reservation is chased from here (seq_store.ts)
        const sa = core.saId(i);
        if (sa >= 0 && sa !== lastSa) this.afterBatch(core, (lastSa = sa));
      }
    }
    this.flush();
    return n;
  }

  /**
   * The IKE daemon's side of the NAT-T port (RFC 3948 §2.2; RFC 7296 §2.23):
   * IKE messages behind the four-zero-byte non-ESP marker arrive on the same
   * UDP socket as ESP, and the core hands them up untouched (TO_HOST). Each is
   * copied out of the ring — IKE is control traffic, rare next to ESP — with
   * the marker taken off, and given to `onHost` with where it came from.
   */
  onHost?: (p: HostPacket) => void;

  private toHost(r: Receiver, i: number): void {
    const core = this.core;
    const base = core.slotBase(i) + core.offset(i), len = core.length(i);
    if (len < 4) return;
    const a = i * 16;
    const stun = core.proto(i) === HOST_STUN;
    this.onHost!({
      wanIndex: r.wan, family: r.family,
      address: this.inAddrs.slice(a, a + 16), port: this.inPorts[i], local: this.inLocals.slice(a, a + 16),
      bytes: this.mem.slice(base + (stun ? 0 : 4), base + len),
      ...(stun ? { stun } : {}),
    });
  }

  /**
   * Sends an IKE message from WAN port `wanIndex`'s NAT-T socket, behind the
   * non-ESP marker (RFC 3948 §2.2) — or, `marker` false, a STUN message as
   * it is. Returns false when that port has no UDP socket or the kernel
   * refused the datagram.
   */
  sendHost(wanIndex: number, family: 4 | 6, address: Uint8Array, port: number, bytes: Uint8Array, marker = true): boolean {
    const s = this.wans[wanIndex]?.udp;
    if (!s) return false;
    const skip = marker ? 4 : 0;
    const mem = new Uint8Array(skip + bytes.length);
    mem.set(bytes, skip);
    const addrs = new Uint8Array(16);
    addrs.set(address.subarray(0, 16));
    return s.sendBatch(mem, Uint32Array.of(0), Uint32Array.of(mem.length), addrs, Uint16Array.of(port), Uint8Array.of(family), 1) === 1;
  }

  /**
   * Sends one NAT-keepalive (RFC 3948 §2.3: a single 0xFF byte) to `addr`
   * (4 or 16 bytes) : `port` from WAN port `wanIndex`'s UDP socket.
   */
  keepalive(wanIndex: number, family: 4 | 6, addr: Uint8Array, port: number): void {
    const s = this.wans[wanIndex]?.udp;
    if (!s) return;
    const ka = keepaliveBuf;
    ka.addrs.fill(0);
    ka.addrs.set(addr);
    ka.ports[0] = port;
    ka.fams[0] = family;
    this.counters.keepalives += s.sendBatch(ka.mem, ka.offs, ka.lens, ka.addrs, ka.ports, ka.fams, 1);
  }

  /** What the TUN and the UDP sockets negotiated with the kernel (control path). */
  offloads(): OffloadStatus {
    const udp: OffloadStatus["udp"] = [];
    for (const w of this.wans) if (w.udp) udp.push({ name: `${w.name}/udp`, ...w.udp.offloads, ...w.udp.trainCounters() });
    return { tun: { ...this.tun.offloads, ...this.tun.tsoCounters() }, udp };
  }

  /**
   * Per-fd view for status: packets received/sent, the addon's drop counters,
   * and for sockets the kernel's receive-buffer drops (sockstat_linux.ts; null
   * for the TUN or when unreadable). Control path: reads /proc.
   */
  sockets(): SocketRow[] {
    const rows = new Map<string, SocketRow>();
    const row = (name: string, sock: UdpSocket | RawSocket): SocketRow =>
      ({ name, received: 0, sent: 0, ...sock.counters(), kernelDrops: kernelDrops(sock.fd) });
    for (const q of this.queues) rows.set(q.name, { ...row(q.name, q.sock), sent: q.sent });
    for (const r of this.receivers) {
      const x = rows.get(r.name) ?? row(r.name, r.sock);
      x.received = r.received;
      rows.set(r.name, x);
    }
    const t = this.tun.counters();
    return [{ name: `tun/${this.tun.name}`, received: this.counters.tunRead, sent: this.counters.tunWritten, ...t, kernelDrops: null, reader: this.tun.reader }, ...rows.values()];
  }
}

/** One-byte NAT-keepalive datagram (RFC 3948 §2.3), outside WASM memory: it never meets the core. */
const keepaliveBuf = {
  mem: Uint8Array.of(0xff),
  offs: Uint32Array.of(0),
  lens: Uint32Array.of(1),
  addrs: new Uint8Array(16),
  ports: new Uint16Array(1),
  fams: new Uint8Array(1),
};
