// What the control socket reports: counters and identities, never keys.
// Built by the worker that owns the core (only it may read SA records), as
// plain JSON-able numbers: 64-bit counters become numbers (exact below 2^53,
// i.e. for 9 peta-packets).
//
// Nothing here touches key material: SaState and Counters carry no key
// bytes, and the config's keys are not passed in.
import { totalDrops, type Core, type Counters } from "../core/core.ts";
import type { Pipeline, HostCounters, OffloadStatus, SocketRow } from "./pipeline.ts";
import type { Provisioned } from "./provision.ts";

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
}

export type SocketStatus = SocketRow;

export interface WorkerStatus {
  peers: PeerStatus[];
  global: { inbound: CounterBlock; outbound: CounterBlock };
  host: HostCounters;
  sockets: SocketStatus[];
  /** TUN TSO and UDP GSO/GRO as negotiated with the kernel (absent from pipelines without real fds). */
  offloads?: OffloadStatus;
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
  natDetected?: boolean;
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
  childSas: { spiIn: number; spiOut: number; rekeyInSeconds?: number }[];
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
}

export function block(c: Counters): CounterBlock {
  const drops: Record<string, number> = {};
  for (const [k, v] of Object.entries(c.drops)) if (k !== "NONE") drops[k] = Number(v);
  return { packets: Number(c.packets), bytes: Number(c.bytes), drops, dropped: Number(totalDrops(c)) };
}

function saStatus(core: Core, saId: number, spi: number, index: number, dir: "in" | "out", expired: Set<number>): SaStatus {
  const gone = expired.has(saId);
  // A removed SA's record is zeroed; its last counters are not kept.
  const st = gone ? null : core.saState(saId);
  const c = gone ? null : core.readCounters(saId);
  const zero: CounterBlock = { packets: 0, bytes: 0, drops: {}, dropped: 0 };
  return {
    spi, saId, index, live: st?.live ?? false, expired: gone,
    seq: st ? Number(dir === "out" ? st.seq : st.replayTop) : 0,
    counters: c ? block(c) : zero,
  };
}

/** The peer's current remote from a live SA record (outbound first), else the configured one. */
function remote(core: Core, p: Provisioned["peers"][number], expired: Set<number>): { address: string; port: number; learned: boolean } {
  for (const id of [p.out?.saId, ...p.in.map((s) => s.saId)]) {
    if (id === undefined || expired.has(id)) continue;
    const st = core.saState(id);
    if (st.live && st.remoteLearned) return { address: st.remote, port: st.remotePort, learned: true };
  }
  return { address: p.address, port: p.port, learned: false };
}

export function snapshot(core: Core, prov: Provisioned, pipe: Pipeline, expired: Set<number>): WorkerStatus {
  const g = core.globalCounters();
  return {
    peers: prov.peers.map((p) => ({
      name: p.name, peerId: p.peerId, mode: p.mode, encap: p.encap, suite: p.suite ?? null,
      ...remote(core, p, expired), configured: { address: p.address, port: p.port },
      outbound: p.out ? saStatus(core, p.out.saId, p.out.spi, 0, "out", expired) : null,
      inbound: p.in.map((s) => saStatus(core, s.saId, s.spi, s.index, "in", expired)),
    })),
    global: { inbound: block(g.inbound), outbound: block(g.outbound) },
    host: { ...pipe.counters },
    sockets: pipe.sockets(),
    offloads: typeof pipe.offloads === "function" ? pipe.offloads() : undefined,
  };
}
