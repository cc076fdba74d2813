// The worker thread: owns one core (WASM instance + ring), the TUN fd and the
// WAN sockets, and runs the Pipeline on its own event loop. The main thread
// (forwarder.ts) only sends messages: status requests and stop.
//
// It loads the config itself from the path it is given, so key bytes never
// cross a thread boundary (a structured clone would turn KeyBytes, which
// print redacted, into plain arrays).
//
// Messages, main → worker:  { type: "status", id } | { type: "stop" }
//           worker → main:  { type: "ready", tun, sockets } | { type: "status", id, status }
//                           | { type: "error", message, code?, where } | { type: "stopped" }
//                           | { type: "log", message }
import { parentPort, workerData } from "node:worker_threads";
import { readFileSync } from "node:fs";
import { Core } from "../core/core.ts";
import { loadConfigSync } from "../config/load.ts";
import { Tun } from "../tun/tun_linux.ts";
import { UdpSocket } from "../net/udp_linux.ts";
import { PROTO_ESP, PROTO_GRE, PROTO_IPIP, PROTO_IPV6, RawSocket } from "../net/raw_linux.ts";
import { parseAddr } from "../core/addr.ts";
import type { Config } from "../config/model.ts";
import { coreSizing, provision, type Provisioned } from "./provision.ts";
import { Pipeline, type WanSockets } from "./pipeline.ts";
import { snapshot } from "./status.ts";

export interface WorkerData {
  configPath: string;
  /** Ring slots (default 256). */
  slots?: number;
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

/** Opens the sockets each WAN port needs for the peers that use it. */
function openWans(config: Config): WanSockets[] {
  const bufs = { rcvbuf: WAN_SOCKET_BUFFER, sndbuf: WAN_SOCKET_BUFFER };
  return config.node.wan.map((w, k) => {
    const peers = config.peers.filter((p) => p.wanIndex === k);
    const family = w.address.family;
    const ws: WanSockets = { name: w.name, raw: new Map() };
    const esp = (p: Config["peers"][number]) => p.mode !== "ipip" && p.mode !== "gre";
    // UDP 4500 only where an ESP peer uses it: a trusted port carrying plain tunnels needs none.
    if (peers.some((p) => esp(p) && p.encap === "udp")) {
      ws.udp = UdpSocket.bind({ family, address: w.address.text, port: w.port, pktinfo: true, ...bufs });
    }
    const protos = new Set<number>();
    for (const p of peers) {
      if (esp(p) && p.encap === "raw") protos.add(PROTO_ESP);
      // Plain IP-in-IP: the outer protocol names the inner family (RFC 2003: 4, RFC 2473: 41).
      if (p.mode === "ipip") (protos.add(PROTO_IPIP), protos.add(PROTO_IPV6));
      if (p.mode === "gre") protos.add(PROTO_GRE);
    }
    for (const protocol of protos) {
      ws.raw.set(protocol, RawSocket.open({ family, protocol, address: w.address.text, headerIncluded: true, pktinfo: true, ...bufs }));
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

/** Hard lifetimes (docs/config.md `lifetime`): an SA past one is removed and no longer used. */
function lifetimeCheck(core: Core, prov: Provisioned, started: number, expired: Set<number>, log: (m: string) => void): void {
  const age = (Date.now() - started) / 1000;
  for (const p of prov.peers) {
    const sas = [...(p.out ? [{ ...p.out, dir: "out" }] : []), ...p.in.map((s) => ({ ...s, dir: "in" }))];
    for (const sa of sas) {
      const lt = sa.lifetime;
      if (expired.has(sa.saId) || (!lt.seconds && !lt.bytes && !lt.packets)) continue;
      const c = core.readCounters(sa.saId);
      const over = (lt.seconds !== undefined && age >= lt.seconds) ||
        (lt.bytes !== undefined && c.bytes >= BigInt(lt.bytes)) ||
        (lt.packets !== undefined && c.packets >= BigInt(lt.packets));
      if (!over) continue;
      expired.add(sa.saId);
      core.removeSa(sa.saId);
      log(`peer ${p.name}: ${sa.dir}bound SA spi 0x${sa.spi.toString(16)} reached its lifetime and was removed`);
    }
  }
}

async function main(): Promise<void> {
  const { config } = loadConfigSync(data.configPath);
  const core = await Core.create({ slots: data.slots ?? 256, ...coreSizing(config) });
  const prov = provision(core, config);
  const started = Date.now();
  const expired = new Set<number>();
  const log = (message: string) => port.postMessage({ type: "log", message });

  let tun: Tun | undefined;
  let wans: WanSockets[] = [];
  const t = config.node.tun;
  try {
    // A persistent device must exist: opening a missing one would create a new, non-persistent one.
    if (t.persistent && !deviceExists(t.name)) {
      throw Object.assign(new Error(`tun.persistent is set but there is no device ${t.name} (ip tuntap add dev ${t.name} mode tun user U)`), { code: "ENODEV" });
    }
    tun = Tun.open({ name: t.name });
  } catch (e) {
    throw Object.assign(e as Error, { where: "tun" });
  }
  try {
    wans = openWans(config);
  } catch (e) {
    tun.close();
    closeAll(wans);
    throw Object.assign(e as Error, { where: "socket" });
  }
  const pipe = new Pipeline(core, tun, wans, prov);
  pipe.start((where, e) => fail(where, e));

  const timers: NodeJS.Timeout[] = [];
  for (const p of config.peers) {
    if (p.keepalive > 0 && p.natT) {
      const a = parseAddr(p.address.text);
      timers.push(setInterval(() => pipe.keepalive(p.wanIndex, a.family, a.bytes, p.port), p.keepalive * 1000));
    }
  }
  timers.push(setInterval(() => lifetimeCheck(core, prov, started, expired, log), 1000));

  port.on("message", (m: { type: string; id?: number }) => {
    if (m.type === "status") {
      port.postMessage({ type: "status", id: m.id, status: snapshot(core, prov, pipe, expired) });
    } else if (m.type === "stop") {
      for (const t of timers) clearInterval(t);
      pipe.close();
      port.postMessage({ type: "stopped" });
      port.close();
    }
  });
  port.postMessage({ type: "ready", tun: tun.name, sockets: pipe.sockets().map((s) => s.name) });
}

main().catch((e) => {
  fail("start", e);
  port.close();
});
