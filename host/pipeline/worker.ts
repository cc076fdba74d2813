// The worker thread: owns one core (WASM instance + ring), the TUN fd and the
// WAN sockets, and runs the Pipeline on its own event loop. The main thread
// (forwarder.ts) sends messages: SA applies, status requests and stop.
//
// It never reads the config file: the main thread validated it and hands over
// the node settings and the desired peers (host/sa/spec.ts). Key bytes arrive
// in transferred buffers, are copied into the core and wiped (install.ts).
//
// Messages, main → worker:  { type: "apply", id, peers } | { type: "status", id } | { type: "stop" }
//                           | { type: "send-host", packet }   (IKE out of the NAT-T socket)
//           worker → main:  { type: "tun", tun }   (the TUN is open: the main thread configures it
//                                                   while the SAs are installed)
//                           | { type: "ready", tun, sockets } | { type: "applied", id, error? }
//                           | { type: "status", id, status } | { type: "event", event }
//                           | { type: "host-packet", packet }   (IKE that arrived behind the non-ESP marker)
//                           | { type: "error", message, code?, where } | { type: "stopped" }
//                           | { type: "log", message }
import { parentPort, workerData } from "node:worker_threads";
import { readFileSync } from "node:fs";
import { Core } from "../core/core.ts";
import { Tun } from "../tun/tun_linux.ts";
import { UdpSocket } from "../net/udp_linux.ts";
import { PROTO_ESP, PROTO_GRE, PROTO_IPIP, PROTO_IPV6, RawSocket } from "../net/raw_linux.ts";
import { coreAddr } from "../config/addr.ts";
import type { NodeConfig } from "../config/model.ts";
import { coreSizing } from "./provision.ts";
import { Pipeline, type HostPacket, type WanSockets } from "./pipeline.ts";
import { journalStatus, snapshot } from "./status.ts";
import { SaTable } from "../sa/install.ts";
import { SeqStore } from "../sa/seq_store.ts";
import { ensureStateDir } from "../sa/state_file.ts";
import type { EventBatch, PeerSpec, SaEvent } from "../sa/spec.ts";
import { espFilterProgram, filterRaw, NONE, steerTun, steerUdp } from "../net/steer_linux.ts";
import { secondsSince } from "../util/elapsed.ts";

export interface WorkerData {
  node: NodeConfig;
  peers: PeerSpec[];
  /** Ring slots (default 256). */
  slots?: number;
  /**
   * IKE peers (config `ike`) are in `peers` only once they have a CHILD_SA: the
   * carriers their SAs will need, opened at start like the others' (and the
   * NAT-T port's socket is where IKE itself arrives after IKE_SA_INIT).
   */
  carriers?: { wanIndex: number; encap: "udp" | "raw" }[];
  /**
   * This worker's place among `count` packet workers (absent: the only one).
   * With count > 1 the TUN is multi-queue, the NAT-T socket joins an
   * SO_REUSEPORT group and inbound is steered by SPI (net/steer_linux.ts).
   */
  worker?: { index: number; count: number };
  /** The TUN worker 0 made (its name may come from a pattern): the others attach a queue to it. */
  tunName?: string;
  /** Date.now() when the main thread created this worker: the start-up log says how long its start took. */
  createdAt?: number;
}

const port = parentPort!;
const data = workerData as WorkerData;

function fail(where: string, e: unknown): void {
  const err = e as NodeJS.ErrnoException & { where?: string };
  port.postMessage({ type: "error", where: err?.where ?? where, message: err?.message ?? String(e), code: err?.code });
}

/** Whether this network namespace has an interface `name` (/proc/net/dev is per namespace). */
function deviceExists(name: string): boolean {
  return readFileSync("/proc/net/dev", "utf8").split("\n").some((l) => l.trim().startsWith(name + ":"));
}

/**
 * SO_RCVBUF / SO_SNDBUF of every WAN socket. The kernel default (212,992
 * bytes, net.core.rmem_default) holds ~140 full-size datagrams: a TCP burst
 * arriving while the worker is busy with a batch overflowed it (the demo lost
 * ~4 % of ESP packets as UdpRcvbufErrors). 4 MiB holds ~2,800. The addon sets
 * it with SO_RCVBUFFORCE (CAP_NET_ADMIN: beyond net.core.rmem_max), else
 * SO_RCVBUF, which the kernel caps at rmem_max (then raise that sysctl).
 */
export const WAN_SOCKET_BUFFER = 4 << 20;

const isEsp = (p: PeerSpec) => p.mode !== "ipip" && p.mode !== "gre";

/**
 * TUN TSO and UDP GSO/GRO (docs/io.md): on unless WESP_OFFLOADS=off — for
 * comparisons (bench/tunnel's "no offloads" contender) and for a kernel
 * whose offloads misbehave. Each one the kernel refuses falls back on its own.
 */
export const OFFLOADS = process.env.WESP_OFFLOADS !== "off";

/**
 * WESP_TUN_READER=readv|auto overrides config tun.reader (docs/io.md "io_uring
 * TUN reader"): for comparisons of both readers with one config, as WESP_OFFLOADS.
 */
const env = process.env.WESP_TUN_READER;
const READER_OVERRIDE = env === "readv" || env === "auto" ? env : undefined;

/** Opens the sockets each WAN port needs for the peers that use it. */
function openWans(node: NodeConfig, peers: PeerSpec[], carriers: WorkerData["carriers"] = [], w: { index: number; count: number } = { index: 0, count: 1 }): WanSockets[] {
  const bufs = { rcvbuf: WAN_SOCKET_BUFFER, sndbuf: WAN_SOCKET_BUFFER };
  const many = w.count > 1;
  return node.wan.map((wan, k) => {
    const mine = peers.filter((p) => p.wanIndex === k);
    const ike = carriers.filter((c) => c.wanIndex === k);
    const family = wan.address.family;
    const ws: WanSockets = { name: wan.name, raw: new Map() };
    // UDP 4500 only where an ESP peer uses it: a trusted port carrying plain tunnels needs none.
    if (mine.some((p) => isEsp(p) && p.encap === "udp") || ike.some((c) => c.encap === "udp")) {
      ws.udp = UdpSocket.bind({ family, address: wan.address.text, port: wan.port, pktinfo: true, gso: OFFLOADS, gro: OFFLOADS, ...bufs, ...(many ? { reusePort: true } : {}) });
      if (many) steerUdp(ws.udp.fd, w.count);
    }
    const protos = new Set<number>(ike.some((c) => c.encap === "raw") ? [PROTO_ESP] : []);
    for (const p of mine) {
      if (isEsp(p) && p.encap === "raw") protos.add(PROTO_ESP);
      // Plain IP-in-IP: the outer protocol names the inner family (RFC 2003: 4, RFC 2473: 41).
      if (p.mode === "ipip") (protos.add(PROTO_IPIP), protos.add(PROTO_IPV6));
      if (p.mode === "gre") protos.add(PROTO_GRE);
    }
    for (const protocol of protos) {
      const sock = RawSocket.open({ family, protocol, address: wan.address.text, headerIncluded: true, pktinfo: true, ...bufs });
      ws.raw.set(protocol, sock);
      // Raw sockets get every packet of their protocol: steer ESP by SPI, plain tunnels to worker 0 only.
      if (many && protocol === PROTO_ESP) filterRaw(sock.fd, espFilterProgram(family, w.index, w.count));
      else if (many && w.index > 0) filterRaw(sock.fd, NONE);
    }
    return ws;
  });
}

function closeAll(wans: WanSockets[]): void {
  for (const w of wans) {
    w.udp?.close();
    for (const s of w.raw.values()) s.close();
  }
}

/** Whether the sockets opened at start can carry a peer (a reload cannot open new ones yet). */
function carrierCheck(wans: WanSockets[]) {
  return (wanIndex: number, carrier: PeerSpec["carrier"], mode: PeerSpec["mode"]): boolean => {
    const w = wans[wanIndex];
    if (!w) return false;
    if (carrier === "udp") return w.udp !== undefined;
    if (carrier === "raw-esp") return w.raw.has(PROTO_ESP);
    return mode === "gre" ? w.raw.has(PROTO_GRE) : w.raw.has(PROTO_IPIP) && w.raw.has(PROTO_IPV6);
  };
}

/** How often reservations are renewed (seq_store.ts): short enough that a block's spare half covers it. */
const RESERVE_TICK_MS = 10;

async function main(): Promise<void> {
  // The thread's start before this: its workerData (every peer and key) and its modules.
  const started = performance.now();
  const boot = data.createdAt === undefined ? "" : `worker started in ${((Date.now() - data.createdAt) / 1000).toFixed(2)} s, `;
  const node = data.node;
  const core = await Core.create({ slots: data.slots ?? 256, ...coreSizing(data.peers) });
  const emit = (event: SaEvent) => port.postMessage({ type: "event", event });
  const log = (message: string) => port.postMessage({ type: "log", message });
  // journals named after this worker (its keys are its own: host/sa/journal.ts "Owners")
  const store = new SeqStore((message) => emit({ event: "alarm", message }), `w${data.worker?.index ?? 0}`);
  try {
    ensureStateDir(node.stateDir);
  } catch (e) {
    // Every durable SA will be refused with its file named; say why once here.
    emit({ event: "alarm", message: `state directory ${node.stateDir}: ${(e as Error).message}` });
  }

  let tun: Tun | undefined;
  let wans: WanSockets[] = [];
  const t = node.tun;
  try {
    // A persistent device must exist: opening a missing one would create a new, non-persistent one.
    if (t.persistent && !deviceExists(t.name)) {
      throw Object.assign(new Error(`tun.persistent is set but there is no device ${t.name} (ip tuntap add dev ${t.name} mode tun user U)`), { code: "ENODEV" });
    }
    const many = (data.worker?.count ?? 1) > 1;
    tun = Tun.open({ name: data.tunName ?? t.name, offload: OFFLOADS, reader: READER_OVERRIDE ?? t.reader, readerFrom: READER_OVERRIDE ? "WESP_TUN_READER" : "tun.reader", ...(many ? { multiQueue: true } : {}) });
  } catch (e) {
    throw Object.assign(e as Error, { where: "tun" });
  }
  port.postMessage({ type: "tun", tun: tun.name });
  // Worker 0 gives the multi-queue TUN its steering program (one per device): the kernel then
  // stops hashing every packet we write into its flow table (net/steer_linux.ts). Refused
  // (no CAP_BPF / CAP_SYS_ADMIN, an old kernel): the flow table picks the queues, as before.
  if ((data.worker?.count ?? 1) > 1 && data.worker?.index === 0) {
    try {
      steerTun(tun.fd);
    } catch (e) {
      log(`TUN ${tun.name}: steering program refused (${(e as Error).message}); the kernel's flow table picks each flow's queue`);
    }
  }
  try {
    wans = openWans(node, data.peers, data.carriers, data.worker);
  } catch (e) {
    tun.close();
    closeAll(wans);
    throw Object.assign(e as Error, { where: "socket" });
  }
  // an apply's events in one message (a hub's start installs 100,000 SAs: one sa-installed each)
  const emitBatch = (batch: EventBatch) => port.postMessage({ type: "events", batch });
  const table = new SaTable(core, { store, stateDir: node.stateDir, hasCarrier: carrierCheck(wans), emit, emitBatch });
  const installStart = performance.now();
  table.apply(data.peers);
  const sas = data.peers.reduce((n, p) => n + 2 * p.sas.length, 0);
  log(`${boot}core, TUN and sockets in ${((installStart - started) / 1000).toFixed(2)} s, ${sas} SAs installed in ${secondsSince(installStart)} s; core ${core.build}`);
  // Each SA a batch used: its reservation (seq_store.ts) and its sequence numbers' end (checkLifetimes).
  const pipe = new Pipeline(core, tun, wans, table.prov, [], (c, saId) => {
    store.ensure(c, saId);
    table.used(saId);
  });
  // IKE behind the non-ESP marker goes to the main thread's IKE daemon, STUN to its STUN client; answers come back as send-host.
  pipe.onHost = (p) => port.postMessage({ type: "host-packet", packet: p }, [p.bytes.buffer as ArrayBuffer]);
  pipe.start((where, e) => fail(where, e));

  // NAT-keepalives (RFC 3948 §2.3) for every NAT-T peer held now, whatever its age.
  // The peers that want them are listed at each apply: the timer runs four
  // times a second and must not walk (and copy) every peer a hub holds.
  const lastKeepalive = new Map<string, number>();
  const keepalivePeers = () => table.peers().map((p) => p.spec).filter((spec) => spec.keepalive > 0 && spec.natT);
  let kaPeers = keepalivePeers();
  const keepalives = () => {
    const now = Date.now();
    for (const spec of kaPeers) {
      if (now - (lastKeepalive.get(spec.name) ?? 0) < spec.keepalive * 1000) continue;
      lastKeepalive.set(spec.name, now);
      const a = coreAddr(spec.address);
      pipe.keepalive(spec.wanIndex, a.family, a.bytes, spec.port);
    }
  };
  const timers: NodeJS.Timeout[] = [
    // One keepalive per peer is enough: worker 0 sends them.
    ...((data.worker?.index ?? 0) === 0 ? [setInterval(keepalives, 250)] : []),
    setInterval(() => table.checkLifetimes(), 1000),
    setInterval(() => store.tick(core), RESERVE_TICK_MS),
  ];

  port.on("message", (m: { type: string; id?: number; peers?: PeerSpec[]; packet?: HostPacket }) => {
    if (m.type === "send-host") {
      const p = m.packet!;
      if (!pipe.sendHost(p.wanIndex, p.family, p.address, p.port, p.bytes, !p.stun)) log(`send-host: WAN port ${p.wanIndex} has no UDP socket, or the datagram was refused`);
    } else if (m.type === "status") {
      port.postMessage({ type: "status", id: m.id, status: snapshot(core, table.prov, pipe, table.expired, table.retired, journalStatus(store.journalStats())) });
    } else if (m.type === "apply") {
      try {
        table.apply(m.peers!);
        pipe.refreshRoutes();
        kaPeers = keepalivePeers();
        port.postMessage({ type: "applied", id: m.id });
      } catch (e) {
        port.postMessage({ type: "applied", id: m.id, error: (e as Error).message });
      }
    } else if (m.type === "stop") {
      for (const t of timers) clearInterval(t);
      pipe.close();
      table.clear(); // final counters to the state files, keys wiped in the core
      port.postMessage({ type: "stopped" });
      port.close();
    }
  });
  log(`state: ${node.stateDir}`);
  port.postMessage({ type: "ready", tun: tun.name, sockets: pipe.sockets().map((s) => s.name) });
}

main().catch((e) => {
  fail("start", e);
  port.close();
});
