// Status of N packet workers as one (docs/forwarder.md "Workers"): what the
// control socket, `wesp status` and the metrics read is the sum, and
// `perWorker` keeps each worker's own view so one can see which worker
// carried what.
//
//   global, host        summed over workers
//   peers[k]            static peer: worker 0's entry; its outbound and
//                       inbound[j] counters are summed over the workers' SAs
//                       at the same place (worker i's SA there is the one
//                       derived for it, host/sa/worker_sas.ts), its SPI and
//                       seq are worker 0's
//                       IKE peer (one CHILD_SA per worker, its own SPIs): every
//                       worker's inbound SAs, the first worker's outbound SA
//                       with the outbound counters of all; listed if any
//                       worker holds it
//   peers[k].workers    per worker: its own outbound and inbound SAs
//   sockets             every worker's rows, names of worker i ≥ 1 with "@wi"
//   offloads            worker 0's (every worker negotiates the same)
import type { CounterBlock, HostCounters, JournalStatus, PeerStatus, SaStatus, WorkerStatus } from "../control/status.ts";

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

/** Whether worker i's SAs of a peer are worker 0's derived ones (SPI + i at each place), not SAs of their own. */
function derived(mine: (PeerStatus | undefined)[]): boolean {
  const [p] = mine;
  return !!p && mine.every((q, i) => q && q.inbound.length === p.inbound.length && q.inbound.every((s, j) => s.spi === ((p.inbound[j].spi + i) >>> 0)));
}

function mergePeer(name: string, all: WorkerStatus[]): PeerStatus {
  const mine = all.map((w) => w.peers.find((q) => q.name === name));
  const p = mine.find((q): q is PeerStatus => !!q)!;
  const outbound = mine.map((q) => q?.outbound).find((s): s is SaStatus => !!s);
  const own = !derived(mine);
  return {
    ...p,
    outbound: outbound ? summed(outbound, mine.map((q) => q?.outbound)) : null,
    inbound: own ? mine.flatMap((q) => q?.inbound ?? []) : p.inbound.map((s, j) => summed(s, mine.map((q) => q?.inbound[j]))),
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
  const names = [...new Set(all.flatMap((w) => w.peers.map((p) => p.name)))];
  return {
    peers: names.map((n) => mergePeer(n, all)),
    global: { inbound: sumBlocks(all.map((w) => w.global.inbound)), outbound: sumBlocks(all.map((w) => w.global.outbound)) },
    host: sumHost(all.map((w) => w.host)),
    sockets: all.flatMap((w, i) => w.sockets.map((s) => (i === 0 ? s : { ...s, name: `${s.name}@w${i}` }))),
    ...(w0.offloads ? { offloads: w0.offloads } : {}),
    perWorker: all.map((w, worker) => ({ worker, global: w.global, host: w.host })),
    ...mergeJournals(all),
  };
}

/** Every worker's journals: counts summed, the oldest of all. */
function mergeJournals(all: WorkerStatus[]): { journals?: JournalStatus } {
  const js = all.flatMap((w) => (w.journals ? [w.journals] : []));
  if (!js.length) return {};
  const ages = js.flatMap((j) => (j.oldestSeconds === null ? [] : [j.oldestSeconds]));
  return {
    journals: {
      count: js.reduce((n, j) => n + j.count, 0),
      pendingFiles: js.reduce((n, j) => n + j.pendingFiles, 0),
      oldestSeconds: ages.length ? Math.max(...ages) : null,
    },
  };
}
