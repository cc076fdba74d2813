// The worker's part of what the control socket reports (its shapes are in
// host/control/status.ts): counters and identities, never keys. Built by the worker that owns the core (only it may read SA records), as
// plain JSON-able numbers: 64-bit counters become numbers (exact below 2^53,
// i.e. for 9 peta-packets).
//
// Nothing here touches key material: SaState and Counters carry no key
// bytes, and the config's keys are not passed in.
import { totalDrops, type Core, type Counters } from "../core/core.ts";
import type { Pipeline } from "./pipeline.ts";
import type { CounterBlock, JournalStatus, SaStatus, WorkerStatus } from "../control/status.ts";
import type { Provisioned } from "./provision.ts";

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

const ZERO: Counters = { packets: 0n, bytes: 0n, drops: {} as Counters["drops"] };

/** A SeqStore's journalStats as status shows them, at `now` (ms). */
export function journalStatus(j: { journals: number; pending: number; oldest: number | null }, now = Date.now()): JournalStatus {
  return { count: j.journals, pendingFiles: j.pending, oldestSeconds: j.oldest === null ? null : Math.max(0, Math.round((now - j.oldest) / 1000)) };
}

export function snapshot(
  core: Core, prov: Provisioned, pipe: Pipeline, expired: Set<number>,
  retired: ReadonlyMap<string, { in: Counters; out: Counters }> = new Map(),
  journals?: JournalStatus,
): WorkerStatus {
  const g = core.globalCounters();
  return {
    peers: prov.peers.map((p) => ({
      name: p.name, peerId: p.peerId, mode: p.mode, encap: p.encap, suite: p.suite ?? null,
      ...remote(core, p, expired), configured: { address: p.address, port: p.port },
      outbound: p.out ? saStatus(core, p.out.saId, p.out.spi, 0, "out", expired) : null,
      inbound: p.in.map((s) => saStatus(core, s.saId, s.spi, s.index, "in", expired)),
      retired: { in: block(retired.get(p.name)?.in ?? ZERO), out: block(retired.get(p.name)?.out ?? ZERO) },
    })),
    global: { inbound: block(g.inbound), outbound: block(g.outbound) },
    host: { ...pipe.counters },
    sockets: pipe.sockets(),
    offloads: typeof pipe.offloads === "function" ? pipe.offloads() : undefined,
    ...(journals ? { journals } : {}),
  };
}
