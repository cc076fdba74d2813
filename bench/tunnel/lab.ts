// The tunnel benchmark's network: four namespaces in a line, built once and
// shared by every contender, so each one crosses the same veths and the same
// kernel forwarding.
//
//   hA ──lan── eA ══════ wan ══════ eB ──lan── hB
//   10.1.0.2   10.1.0.1  192.0.2.1  192.0.2.2  10.2.0.1  10.2.0.2
//   iperf3 -c  endpoint A (core 0)  endpoint B (core 1)  iperf3 -s
//              + iperf3 client's    + iperf3 server's
//                core               core
//
// hA and hB are the sites; eA and eB are the tunnel endpoints (forwarding on).
// A contender joins 10.1.0.0/24 and 10.2.0.0/24 across the wan link, routed
// into its own tunnel device; the bare veth routes them over `wan` directly.
// The lan links have MTU 1,400 so that every inner packet, TCP or UDP, fits
// every contender's tunnel unfragmented: strongSwan's libipsec TUN is fixed at
// 1,400 bytes (kernel_libipsec_plugin.c, TUN_DEFAULT_MTU).
//
// A lab of host/lab/ under the benchmarks' prefix (bench/lab.ts): namespaces
// are named `wbench-<pid>-<n>-<label>`; `teardown()` removes them and every
// process started in them, and the process-exit / SIGINT / SIGTERM hooks do
// the same, so nothing outlives a failed or interrupted run. `sweepStale(NS_PREFIX)`
// removes what a run killed with SIGKILL left behind.
import { Lab } from "../../host/lab/lab.ts";
import { ownerTag } from "../../host/lab/leftovers.ts";
import type { Netns } from "../../host/lab/namespace.ts";
import { NS_PREFIX } from "../lab.ts";

export { NS_PREFIX };

export const ADDR = {
  hA: "10.1.0.2", eAlan: "10.1.0.1", eAwan: "192.0.2.1",
  eBwan: "192.0.2.2", eBlan: "10.2.0.1", hB: "10.2.0.2",
  netA: "10.1.0.0/24", netB: "10.2.0.0/24",
} as const;

/** Inner MTU of every path through the lab (see the file comment). */
export const INNER_MTU = 1400;

/**
 * UDP datagrams `ns`'s own stack received, by its SNMP counters
 * (/proc/net/snmp): delivered or dropped at a full socket (InDatagrams +
 * InErrors). Unlike an interface's rx_packets this counts a UDP GSO
 * super-packet by its datagrams: a tunnel that writes coalesced UDP to its TUN
 * (USO) crosses the veth as one. (TCP's InSegs counts a super-packet once, so
 * TCP packets are counted from bytes in workload.ts.)
 */
export async function stackPackets(ns: Netns): Promise<number> {
  const lines = (await ns.run(["cat", "/proc/net/snmp"])).split("\n").filter((l) => l.startsWith("Udp: "));
  if (lines.length < 2) throw new Error(`no UDP counters in /proc/net/snmp of ${ns.name}`);
  const names = lines[0].split(/\s+/).slice(1), values = lines[1].split(/\s+/).slice(1).map(Number);
  const get = (n: string) => {
    const i = names.indexOf(n);
    if (i < 0) throw new Error(`no ${n} in /proc/net/snmp`);
    return values[i];
  };
  return get("InDatagrams") + get("InErrors");
}

export class BenchLab extends Lab {
  hA!: Netns;
  eA!: Netns;
  eB!: Netns;
  hB!: Netns;

  /** `prefix`: what starts every name, before this process's pid (default NS_PREFIX). */
  constructor(prefix = NS_PREFIX) {
    super(ownerTag(prefix));
  }

  /** Builds the four namespaces and three links of the file comment. */
  async build(): Promise<void> {
    this.hA = await this.ns("hA");
    this.eA = await this.ns("eA");
    this.eB = await this.ns("eB");
    this.hB = await this.ns("hB");
    await this.veth(this.hA, "lan", this.eA, "lan", { mtu: INNER_MTU });
    await this.veth(this.eA, "wan", this.eB, "wan", { mtu: 1500 });
    await this.veth(this.eB, "lan", this.hB, "lan", { mtu: INNER_MTU });
    await this.hA.addr("lan", `${ADDR.hA}/24`);
    await this.eA.addr("lan", `${ADDR.eAlan}/24`);
    await this.eA.addr("wan", `${ADDR.eAwan}/24`);
    await this.eB.addr("wan", `${ADDR.eBwan}/24`);
    await this.eB.addr("lan", `${ADDR.eBlan}/24`);
    await this.hB.addr("lan", `${ADDR.hB}/24`);
    await this.hA.ip("route", "add", "default", "via", ADDR.eAlan);
    await this.hB.ip("route", "add", "default", "via", ADDR.eBlan);
    for (const e of [this.eA, this.eB]) await e.run(["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  }
}
