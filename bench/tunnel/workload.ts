// The workloads and one measurement: iperf3 from hA (pinned to endpoint A's
// core) to the iperf3 server in hB (endpoint B's core), bracketed by readings
// of the endpoints' process-tree CPU (cpu.ts) and of hB's received-packet
// counter.
//
//   tcp1     TCP, one stream                       Mbit/s = iperf3 receiver goodput
//   tcp4     TCP, four streams (-P 4)
//   udp1400  UDP, 1,372-byte payloads: 1,400-byte  Mbit/s = datagrams received
//            inner packets, the lab's inner MTU      × payload bits / duration
//   udp64    UDP, 64-byte payloads (92-byte packets)
//
// UDP is offered with `-b 0` (no rate limit): as fast as the sender can, above
// what any tunnel carries here. UDP sockets get 4 MiB buffers (`-w`, on both
// ends: the client sends it to the server): with the default 208 KiB, iperf3's
// server dropped more than half of what a fast tunnel delivered in bursts
// (RcvbufErrors in hB's /proc/net/snmp) — the sink, not the tunnel, set the
// figure (sockbuf.ts lifts the kernel's ceiling for the run); TCP keeps its
// autotuning. kpps counts inner packets: for UDP what hB's stack received,
// datagrams delivered or dropped at iperf3's full socket (lab.ts stackPackets);
// for TCP the bytes received over the MSS iperf3 reports, because hB's InSegs
// counts a GRO/GSO super-packet once however many segments it holds.
import type { EndpointCounters } from "./endpoint_counters.ts";
import { cpuTimes, cpuTimesDelta, treeCpuSplit, type CpuTimes } from "./cpu.ts";
import { ADDR, INNER_MTU, stackPackets, type BenchLab } from "./lab.ts";
import type { LabProcess } from "../../host/lab/process.ts";

export const WORKLOADS = ["tcp1", "tcp4", "udp1400", "udp64"] as const;
export type Workload = (typeof WORKLOADS)[number];

export const WORKLOAD_LABEL: Record<Workload, string> = {
  tcp1: "TCP, 1 stream",
  tcp4: "TCP, 4 streams",
  udp1400: "UDP 1,400 B",
  udp64: "UDP 64 B",
};

const PAYLOAD: Partial<Record<Workload, number>> = { udp1400: 1372, udp64: 64 };
const IPERF_PORT = 5201;
/** Socket buffer of both UDP ends (iperf3 `-w`). */
export const UDP_BUFFER_BYTES = 4 << 20;
const UDP_BUFFER = String(UDP_BUFFER_BYTES);

export interface Sample {
  contender: string;
  workload: Workload;
  run: number;
  /** Seconds iperf3 measured. */
  seconds: number;
  mbps: number;
  kpps: number;
  /** UDP: datagrams lost, percent; TCP: retransmitted segments. */
  lossPercent: number | null;
  retransmits: number | null;
  /** CPU seconds of endpoint A's and B's process trees over the interval; [] for the veth. */
  cpu: number[];
  /** The user part of cpu, per endpoint (the rest is system time, including softirq work charged to it). */
  cpuUser?: number[];
  /** Each CPU's time over the interval (/proc/stat): where softirq, steal and idle went, per core. */
  cores?: CpuTimes[];
  /** Mbit delivered per endpoint CPU-second (A+B); null without endpoint processes. */
  mbitPerCpuS: number | null;
  /** Thousand packets delivered per endpoint CPU-second (A+B). */
  kppsPerCpuS: number | null;
  /** wesp: what each endpoint's TUN reads, writes and trains carried over the interval (endpoint_counters.ts); null where one did not answer. */
  endpoints?: (EndpointCounters | null)[];
}

/** The iperf3 server in hB, pinned to endpoint B's core; restarted when it has died. */
export class IperfServer {
  private proc?: LabProcess;
  constructor(private readonly lab: BenchLab, private readonly core: number) {}
  async ensure(): Promise<void> {
    if (this.proc?.running) return;
    this.proc = this.lab.hB.spawn(["iperf3", "-s", "--forceflush", "-B", ADDR.hB, "-p", String(IPERF_PORT)], { core: this.core });
    const end = Date.now() + 10_000;
    while (!/Server listening/.test(this.proc.output)) {
      if (!this.proc.running || Date.now() > end) throw new Error(`iperf3 server: ${this.proc.output.trim()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  async restart(): Promise<void> {
    await this.proc?.stop("SIGTERM", 2000);
    this.proc = undefined;
    await this.ensure();
  }
}

function clientArgs(w: Workload, seconds: number): string[] {
  const base = ["iperf3", "-c", ADDR.hB, "-p", String(IPERF_PORT), "-J", "-t", String(seconds), "--connect-timeout", "5000"];
  switch (w) {
    case "tcp1": return base;
    case "tcp4": return [...base, "-P", "4"];
    case "udp1400": return [...base, "-u", "-b", "0", "-w", UDP_BUFFER, "-l", String(PAYLOAD.udp1400)];
    case "udp64": return [...base, "-u", "-b", "0", "-w", UDP_BUFFER, "-l", String(PAYLOAD.udp64)];
  }
}

/**
 * Sends a little TCP through the tunnel until it gets through (handshakes,
 * ARP, routes settle); throws if nothing passes within `ms`.
 */
export async function warmUp(lab: BenchLab, server: IperfServer, core: number, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  let last = "";
  while (Date.now() < end) {
    await server.ensure();
    const r = await lab.hA.exec(["taskset", "-c", String(core), "iperf3", "-c", ADDR.hB, "-p", String(IPERF_PORT), "-n", "1M", "-J", "--connect-timeout", "2000"], { timeoutMs: 15_000 });
    if (r.code === 0) return;
    last = (JSON.parse(r.stdout || "{}").error ?? r.stderr) as string;
    if (/busy/.test(last)) await server.restart();
    await new Promise((res) => setTimeout(res, 300));
  }
  throw new Error(`no traffic through the tunnel after ${ms / 1000} s: ${last}`);
}

/** One measurement of `w` for `seconds`; endpoint trees rooted at `pids`. */
export async function measure(lab: BenchLab, server: IperfServer, pids: number[], core: number, w: Workload, seconds: number): Promise<Omit<Sample, "contender" | "run">> {
  await server.ensure();
  const udp = PAYLOAD[w] !== undefined;
  const rx0 = udp ? await stackPackets(lab.hB) : 0;
  const cores0 = cpuTimes();
  const cpu0 = treeCpuSplit(pids);
  const r = await lab.hA.exec(["taskset", "-c", String(core), ...clientArgs(w, seconds)], { timeoutMs: (seconds + 30) * 1000 });
  const cpu1 = treeCpuSplit(pids);
  const cores = cpuTimesDelta(cores0, cpuTimes());
  const rx1 = udp ? await stackPackets(lab.hB) : 0;
  let j: any;
  try {
    j = JSON.parse(r.stdout);
  } catch {
    throw new Error(`iperf3 (${w}) exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  }
  if (j.error) {
    if (/busy/.test(j.error)) await server.restart();
    throw new Error(`iperf3 (${w}): ${j.error}`);
  }
  const cpu = cpu1.map((c, i) => Math.max(0, c.user + c.system - cpu0[i].user - cpu0[i].system));
  const cpuUser = cpu1.map((c, i) => Math.max(0, c.user - cpu0[i].user));
  const cpuSum = cpu.reduce((a, b) => a + b, 0);
  let secs: number, bits: number, packets: number, lossPercent: number | null = null, retransmits: number | null = null;
  if (udp) {
    const s = j.end.sum;
    secs = s.seconds;
    const got = s.packets - s.lost_packets;
    bits = got * PAYLOAD[w]! * 8;
    lossPercent = s.packets > 0 ? (100 * s.lost_packets) / s.packets : 0;
    packets = rx1 - rx0;
  } else {
    secs = j.end.sum_received.seconds;
    bits = j.end.sum_received.bytes * 8;
    retransmits = j.end.sum_sent.retransmits ?? null;
    // IPv4 + TCP with timestamps: 52 bytes of headers under the inner MTU.
    const mss = Number(j.start?.tcp_mss_default) || INNER_MTU - 52;
    packets = Math.ceil(j.end.sum_received.bytes / mss);
  }
  const per = (x: number) => (pids.length && cpuSum > 0 ? x / cpuSum : null);
  return {
    workload: w,
    seconds: secs,
    mbps: bits / secs / 1e6,
    kpps: packets / secs / 1e3,
    lossPercent,
    retransmits,
    cpu,
    ...(pids.length ? { cpuUser } : {}),
    cores,
    mbitPerCpuS: per(bits / 1e6),
    kppsPerCpuS: per(packets / 1e3),
  };
}
