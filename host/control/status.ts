// What the control socket's "status" command answers (wesp status --json,
// Ce.status(), the metrics' source): counters and identities, never keys.
// The shapes live here, with the protocol; the worker fills WorkerStatus
// (host/pipeline/status.ts), the main thread adds the node and IKE parts.
// 64-bit counters are plain numbers (exact below 2^53, i.e. 9 peta-packets).
import type { TsoCounters, TunOffloads, TunReader } from "../tun/tun_linux.ts";
import type { OffloadState } from "../io/native_linux.ts";

export interface CounterBlock {
  packets: number;
  bytes: number;
  /** Every drop reason of docs/core.md, including zeros. */
  drops: Record<string, number>;
  dropped: number;
}

export interface SaStatus {
  spi: number;
  saId: number;
  /** Position in the peer's `sas` (inbound; 0 for outbound). */
  index: number;
  live: boolean;
  expired: boolean;
  /** Outbound: next sequence number; inbound: highest authenticated one. */
  seq: number;
  counters: CounterBlock;
}

export interface PeerStatus {
  name: string;
  peerId: number;
  mode: string;
  encap: string;
  suite: string | null;
  /**
   * Where the peer's packets go now: learned by NAT-T from its authenticated
   * inbound packets (RFC 3948 §3.5) when `learned`, else as configured.
   */
  address: string;
  port: number;
  learned: boolean;
  /** The peer's address and port as the config gives them. */
  configured: { address: string; port: number };
  outbound: SaStatus | null;
  inbound: SaStatus[];
  /**
   * The final counters of the peer's SAs removed so far (rekeys, lifetimes,
   * reloads), per direction: its totals are these plus its live SAs'.
   */
  retired?: { in: CounterBlock; out: CounterBlock };
  /** With node.workers > 1: each worker's own SAs of this peer (the counters above are their sums). */
  workers?: { worker: number; outbound: SaStatus | null; inbound: SaStatus[] }[];
}

export type SocketStatus = SocketRow;

export interface WorkerStatus {
  peers: PeerStatus[];
  global: { inbound: CounterBlock; outbound: CounterBlock };
  host: HostCounters;
  sockets: SocketStatus[];
  /** TUN TSO and UDP GSO/GRO as negotiated with the kernel (absent from pipelines without real fds). */
  offloads?: OffloadStatus;
  /** With node.workers > 1: each worker's own global and host counters (the fields above are their sums). */
  perWorker?: { worker: number; global: { inbound: CounterBlock; outbound: CounterBlock }; host: HostCounters }[];
  /** Reservation journals not yet retired (absent where the worker keeps no durable state). */
  journals?: JournalStatus;
}

/**
 * Reservation journals (host/sa/journal.ts) not yet retired: one holds the
 * first reservations of an install batch, and is deleted once every key in
 * it has a newer record in its own state file — seconds, normally. Ones
 * that stay say the per-key writes are failing (an alarm names why).
 */
export interface JournalStatus {
  /** Journals on disk (with several workers: of all of them). */
  count: number;
  /** State files they still stand for: keys whose own file is not yet written past them. */
  pendingFiles: number;
  /** Age of the oldest one in seconds (with several workers: the oldest of all); null when none. */
  oldestSeconds: number | null;
}

/** One IKEv2 peer (host/ike/runtime.ts); times in seconds, relative to now. */
export interface IkePeerStatus {
  name: string;
  /** up; connecting (an IKE SA being set up); retrying (after a failure); down (not trying); waiting (for the peer to start). */
  state: "up" | "connecting" | "retrying" | "down" | "waiting";
  /** The current IKE SA, "SPIi_SPIr" in hex. */
  ikeSa?: string;
  role?: "initiator" | "responder";
  /** The IKE SA's transforms ("aes-gcm-128/prf-sha256/dh-19"). */
  proposal?: string;
  /** NAT-T in use: a NAT seen on either side, or pretended (`nat_t` forces it, RFC 7296 §2.23). */
  natDetected?: boolean;
  /** A NAT in front of this CE, as detected: the peer saw another address or port than ours (§2.23). */
  behindNat?: boolean;
  /** How the peer of the current IKE SA authenticated (its certificate's subject and serial, or its PSK). */
  peerAuth?: import("../ike/types.ts").PeerAuth;
  establishedSeconds?: number;
  ikeRekeyInSeconds?: number;
  /** Since the peer's last authenticated message (what a liveness check waits on). */
  lastHeardSeconds?: number;
  /** Failed set-ups in a row, and whether they raised the alarm (retry.alarm_after). */
  failures: number;
  alarm: boolean;
  retryInSeconds?: number;
  lastError?: string;
  /** Our inbound SPI and the peer's, the pair used outbound first. */
  /** `worker`: with node.workers > 1, the packet worker holding it (one CHILD_SA per worker, host/ike/manager.ts). */
  childSas: { spiIn: number; spiOut: number; mode?: "tunnel" | "transport"; rekeyInSeconds?: number; worker?: number }[];
}

/** The whole answer of the control socket's "status" command. */
export interface Status extends WorkerStatus {
  node: string;
  pid: number;
  startedAt: string;
  uptimeSeconds: number;
  tun: string;
  workers: number;
  control: string;
  /** IKEv2 peers (config `ike`), when there are any. */
  ike?: IkePeerStatus[];
  /** `backup_for` pairs, when there are any: who carries each primary's prefixes now (host/sa/failover.ts). */
  failover?: import("../sa/failover.ts").FailoverState[];
  /**
   * Journals of worker indexes this run does not have that the start's sweep
   * had to leave in place, and why (host/sa/state_sweep.ts); absent when none.
   */
  journalsKept?: { file: string; why: string }[];
  /** With `ike`: IKE datagrams and messages dropped or refused since the start, by reason (host/ike/endpoint.ts, transport.ts). */
  ikeDrops?: Record<string, number>;
}

/** The pipeline's own counters (host/pipeline/pipeline.ts Pipeline.counters). */
export interface HostCounters {
  tunRead: number;
  tunWritten: number;
  sent: number;
  received: number;
  toHost: number;
  icmpTooBig: number;
  icmpRateLimited: number;
  fragmented: number;
  bypassUnsent: number;
  keepalives: number;
}

/** One fd's row in status (see Pipeline.sockets). */
export interface SocketRow {
  name: string;
  received: number;
  sent: number;
  failed: number;
  lastErrno: number;
  unsent: number;
  truncated: number;
  /** What the kernel dropped on a full receive buffer (sk_drops: per skb, so a UDP_GRO train counts once, not per datagram); null for the TUN or when unknown. */
  kernelDrops: number | null;
  /** The TUN row: how this queue is read (io_uring, or readv and why). */
  reader?: TunReader;
}

/**
 * The offloads each fd negotiated with the kernel, and what they carried
 * (status: a refusal shows as "refused (ERRNO)" and the fd works without).
 */
export interface OffloadStatus {
  tun: TunOffloads & TsoCounters;
  udp: { name: string; gso: OffloadState; gro: OffloadState; trains: number; datagrams: number }[];
}
