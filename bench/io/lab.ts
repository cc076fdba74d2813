// The benchmark's network: two namespaces joined by a veth pair, a TUN device
// in the first, a WASM memory laid out as a ring, and packet builders.
//
//   ns a                                         ns b
//   ┌───────────────────────────┐   veth         ┌──────────────────────────┐
//   │ wbt0 (TUN) 10.9.0.1/24    │ a0 ═════════ b0│ 10.1.0.2/24               │
//   │ a0 10.1.0.1/24            │                │ forwarding off            │
//   │ 10.77.0.0/16 via 10.1.0.2 │                │ (10.77/16 dropped on      │
//   └───────────────────────────┘                │  arrival, no ICMP)        │
//                                                 └──────────────────────────┘
//
// Sends that should cost only the sender's side go to 10.77.0.1: b drops them
// at its routing step (forwarding off: no ICMP error either). Packets written
// into the TUN go to 10.9.0.200, which a drops the same way.
//
// A lab of host/lab/ (bench/lab.ts): namespaces `wbench-<pid>-<n>-{a,b}`,
// removed at the end, on failure, on Ctrl-C and SIGTERM, and by the next run
// after a SIGKILL. The TUN lives in a, so it goes with the namespace.
import type { Lab } from "../../host/lab/lab.ts";
import type { Netns } from "../../host/lab/namespace.ts";
import { benchLab } from "../lab.ts";
import { ipv4Header } from "../../host/lab/packets.ts";
import { Ring as TestRing } from "../../host/lab/slot_ring.ts";

export interface BenchNet {
  lab: Lab;
  a: Netns;
  b: Netns;
  tunName: string;
}

/** Builds the diagram's namespaces; `say` hears what dead runs left and the sweep removed. */
export async function buildNet(say: (line: string) => void): Promise<BenchNet> {
  const lab = benchLab(say);
  try {
    const a = await lab.ns("a");
    const b = await lab.ns("b");
    await lab.veth(a, "a0", b, "b0");
    await a.addr("a0", "10.1.0.1/24");
    await b.addr("b0", "10.1.0.2/24");
    await a.route("10.77.0.0/16", "10.1.0.2");
    for (const ns of [a, b]) await ns.run(["sysctl", "-qw", "net.ipv4.ip_forward=0"]);
    // Resolve the neighbour once so the first timed send does not wait on ARP.
    await a.run(["ip", "neigh", "replace", "10.1.0.2", "lladdr", await mac(b, "b0"), "dev", "a0", "nud", "permanent"]);
    return { lab, a, b, tunName: "wbt0" };
  } catch (e) {
    await lab.teardown();
    throw e;
  }
}

async function mac(ns: Netns, ifname: string): Promise<string> {
  const out = await ns.ip("-j", "link", "show", ifname);
  return JSON.parse(out)[0].address as string;
}

/**
 * The end-to-end tests' ring (256 slots of 2 KiB, 128 B headroom: 512 KiB, well
 * inside its 1 MiB memory) with a bulk fill for send benchmarks.
 */
export class Ring extends TestRing {
  constructor(slots = 256, stride = 2048, headroom = 128) {
    super(slots, stride, headroom);
  }
  /** Every slot: `len` bytes of pattern, to 4-byte IPv4 `dst`:`port`. */
  fill(len: number, dst: number[], port: number): void {
    for (let i = 0; i < this.slots; i++) {
      this.lens[i] = len;
      this.addrs.set(dst, i * 16);
      this.ports[i] = port;
      this.fams[i] = 4;
      this.mem.fill(i & 0xff, this.offs[i], this.offs[i] + len);
    }
  }
}

/**
 * Writes an IPv4/UDP packet of `total` bytes (RFC 791 header, RFC 768 UDP
 * with checksum 0 = none, zero payload) into b at off.
 */
export function ipv4Udp(b: Uint8Array, off: number, total: number, src: number[], dst: number[], dport: number): void {
  const ulen = total - 20;
  b.fill(0, off, off + total);
  b.set(ipv4Header(Uint8Array.from(src), Uint8Array.from(dst), 17, ulen), off);
  b[off + 20] = 0x30; // sport 12345
  b[off + 21] = 0x39;
  b[off + 22] = dport >> 8;
  b[off + 23] = dport & 0xff;
  b[off + 24] = ulen >> 8;
  b[off + 25] = ulen & 0xff;
}
