// What a wesp endpoint did during one measurement, from its own status (the
// control socket, host/control/client.ts) taken before and after: how many
// packets each TUN read and write carried (TSO segmentation and coalescing)
// and how many datagrams each UDP GSO/GRO train held. The per-CPU-second
// figure of a round moves with these when batching changes (a round whose
// TCP super-packets or trains came smaller pays more syscalls per byte), and
// does not when the cost of the same work changed; the samples carry them so
// a slow round can be told apart from a differently batched one.
import { requestStatus } from "../../host/control/client.ts";
import type { Status } from "../../host/control/status.ts";

export interface EndpointCounters {
  /** Inner packets read from the TUN and written to it (after segmentation, before coalescing). */
  tunRead: number;
  tunWritten: number;
  /** Outer packets sent and received on the sockets. */
  sent: number;
  received: number;
  /** TUN reads that were super-packets, and the segments they made. */
  superPackets: number;
  segments: number;
  /** TUN writes of coalesced TCP segments, and the segments they held. */
  coalesced: number;
  coalescedSegments: number;
  /** UDP GSO/GRO trains on the sockets (both ways), and the datagrams they held. */
  trains: number;
  datagrams: number;
}

/** The counters of a status answer (totals since start; zeros for what the instance does not report). */
export function countersOf(s: Status): EndpointCounters {
  const w = s as Partial<Status> & { host?: Status["host"]; offloads?: Status["offloads"] };
  const tun = w.offloads?.tun;
  const udp = w.offloads?.udp ?? [];
  return {
    tunRead: w.host?.tunRead ?? 0,
    tunWritten: w.host?.tunWritten ?? 0,
    sent: w.host?.sent ?? 0,
    received: w.host?.received ?? 0,
    superPackets: tun?.superPackets ?? 0,
    segments: tun?.segments ?? 0,
    coalesced: tun?.coalesced ?? 0,
    coalescedSegments: tun?.coalescedSegments ?? 0,
    trains: udp.reduce((a, u) => a + u.trains, 0),
    datagrams: udp.reduce((a, u) => a + u.datagrams, 0),
  };
}

/** after − before, field by field; the offload counters are 32-bit running totals, so modulo 2^32. */
export function countersDelta(before: EndpointCounters, after: EndpointCounters): EndpointCounters {
  const out = {} as EndpointCounters;
  for (const k of Object.keys(after) as (keyof EndpointCounters)[]) {
    const d = after[k] - before[k];
    out[k] = d >= 0 ? d : d + 2 ** 32;
  }
  return out;
}

/** Asks each control socket for its status; null for an endpoint that did not answer (the bench goes on without). */
export async function snapshot(sockets: string[]): Promise<(EndpointCounters | null)[]> {
  return Promise.all(sockets.map((p) => requestStatus(p, 2000).then(countersOf, () => null)));
}

/** One line for the log: what a TUN read and write and a train carried at each endpoint. */
export function describeCounters(sides: (EndpointCounters | null)[]): string {
  const r = (a: number, b: number) => (b > 0 ? (a / b).toFixed(1) : "–");
  return sides.map((c, i) => {
    const n = "AB"[i] ?? String(i);
    if (!c) return `${n}: no status`;
    return `${n}: ${r(c.segments, c.superPackets)} segments per TUN super-packet read, ${r(c.coalescedSegments, c.coalesced)} per coalesced write, ${r(c.datagrams, c.trains)} datagrams per train`;
  }).join("; ");
}
