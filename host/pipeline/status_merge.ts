// Status of N packet workers as one (docs/forwarder.md "Workers"): what the
// control socket, `wesp status` and the metrics read is the sum, and
// `perWorker` keeps each worker's own view so one can see which worker
// carried what.
//
//   global, host        summed over workers
//   peers[k]            worker 0's entry; its outbound and inbound[j] counters
//                       are summed over the workers' SAs at the same place
//                       (worker i's SA there is the one derived for it,
//                       host/sa/worker_sas.ts), its SPI and seq are worker 0's
//   peers[k].workers    per worker: its own outbound and inbound SAs
//   sockets             every worker's rows, names of worker i ≥ 1 with "@wi"
//   offloads            worker 0's (every worker negotiates the same)
import type { CounterBlock, HostCounters, PeerStatus, SaStatus, WorkerStatus } from "../control/status.ts";

export function sumBlocks(blocks: CounterBlock[]): CounterBlock {
  const out: CounterBlock = { packets: 0, bytes: 0, drops: {}, dropped: 0 };
  for (const b of blocks) {
    out.packets += b.packets;
    out.bytes += b.bytes;
    out.dropped += b.dropped;
    for (const [k, v] of Object.entries(b.drops)) out.drops[k] = (out.drops[k] ?? 0) + v;
  }
  return out;
}

function sumHost(hs: HostCounters[]): HostCounters {
  const out = { ...hs[0] };
  for (const h of hs.slice(1)) for (const k of Object.keys(out) as (keyof HostCounters)[]) out[k] += h[k];
  return out;
}

function summed(first: SaStatus, all: (SaStatus | null | undefined)[]): SaStatus {
  return { ...first, counters: sumBlocks(all.filter((s): s is SaStatus => !!s).map((s) => s.counters)) };
}

function mergePeer(p: PeerStatus, all: WorkerStatus[]): PeerStatus {
  const mine = all.map((w) => w.peers.find((q) => q.name === p.name));
  return {
    ...p,
    outbound: p.outbound ? summed(p.outbound, mine.map((q) => q?.outbound)) : null,
    inbound: p.inbound.map((s, j) => summed(s, mine.map((q) => q?.inbound[j]))),
    retired: {
      in: sumBlocks(mine.map((q) => q?.retired?.in).filter((b): b is CounterBlock => !!b)),
      out: sumBlocks(mine.map((q) => q?.retired?.out).filter((b): b is CounterBlock => !!b)),
    },
    workers: mine.map((q, worker) => ({ worker, outbound: q?.outbound ?? null, inbound: q?.inbound ?? [] })),
  };
}

/** One WorkerStatus from several (index = worker). */
export function mergeStatus(all: WorkerStatus[]): WorkerStatus {
  const [w0] = all;
  return {
    peers: w0.peers.map((p) => mergePeer(p, all)),
    global: { inbound: sumBlocks(all.map((w) => w.global.inbound)), outbound: sumBlocks(all.map((w) => w.global.outbound)) },
    host: sumHost(all.map((w) => w.host)),
    sockets: all.flatMap((w, i) => w.sockets.map((s) => (i === 0 ? s : { ...s, name: `${s.name}@w${i}` }))),
    ...(w0.offloads ? { offloads: w0.offloads } : {}),
    perWorker: all.map((w, worker) => ({ worker, global: w.global, host: w.host })),
  };
}
