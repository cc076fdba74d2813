// What bench/workers/inbound.ts reads from `wesp status`, summed over every
// worker: status lists each worker's socket rows, worker 0's as `wan/udp`,
// `tun/wesp0`, worker i's with `@wi` appended (host/pipeline/status_merge.ts).
// Before 2026-12-06 20:30 the bench matched drops by `endsWith("/udp")`, i.e.
// worker 0's socket only: with two workers it showed about half the drops.
import type { SocketRow } from "../../host/control/status.ts";

/** A NAT-T socket row of any worker. */
export const isUdpRow = (name: string): boolean => /\/udp(@w\d+)?$/.test(name);

/** A TUN queue row of any worker. */
export const isTunRow = (name: string): boolean => /^tun\/[^@]+(@w\d+)?$/.test(name);

/** Packets every worker wrote to its TUN queue: forwarded inbound packets. */
export const tunWritten = (rows: SocketRow[]): number => rows.filter((s) => isTunRow(s.name)).reduce((a, s) => a + s.sent, 0);

/** Datagrams the kernel dropped at every worker's NAT-T socket (receive buffer full). */
export const udpKernelDrops = (rows: SocketRow[]): number => rows.filter((s) => isUdpRow(s.name)).reduce((a, s) => a + (s.kernelDrops ?? 0), 0);
