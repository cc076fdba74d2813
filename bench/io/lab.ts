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
import { Lab, type Netns } from "../../test/helpers/netns.ts";

export interface BenchNet {
  lab: Lab;
  a: Netns;
  b: Netns;
  tunName: string;
}

export async function buildNet(): Promise<BenchNet> {
  const lab = new Lab();
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
}

async function mac(ns: Netns, ifname: string): Promise<string> {
  const out = await ns.ip("-j", "link", "show", ifname);
  return JSON.parse(out)[0].address as string;
}

/** A ring over real WASM linear memory: `slots` slots of `stride` bytes after `headroom`. */
export class Ring {
  readonly memory = new WebAssembly.Memory({ initial: 128 }); // 8 MiB
  readonly mem = new Uint8Array(this.memory.buffer);
  readonly offs: Uint32Array;
  readonly lens: Uint32Array;
  readonly addrs: Uint8Array;
  readonly ports: Uint16Array;
  readonly fams: Uint8Array;
  constructor(readonly slots = 256, readonly stride = 2048, readonly headroom = 128) {
    this.offs = new Uint32Array(slots);
    this.lens = new Uint32Array(slots);
    this.addrs = new Uint8Array(slots * 16);
    this.ports = new Uint16Array(slots);
    this.fams = new Uint8Array(slots);
    for (let i = 0; i < slots; i++) this.offs[i] = i * stride + headroom;
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

/** RFC 1071 checksum of b[off, off+len). */
function csum(b: Uint8Array, off: number, len: number): number {
  let s = 0;
  for (let i = 0; i < len; i += 2) s += (b[off + i] << 8) | (i + 1 < len ? b[off + i + 1] : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/**
 * Writes an IPv4/UDP packet of `total` bytes (RFC 791 header, RFC 768 UDP
 * with checksum 0 = none) into b at off.
 */
export function ipv4Udp(b: Uint8Array, off: number, total: number, src: number[], dst: number[], dport: number): void {
  b.fill(0, off, off + total);
  b[off] = 0x45;
  b[off + 2] = total >> 8;
  b[off + 3] = total & 0xff;
  b[off + 8] = 64; // TTL
  b[off + 9] = 17; // UDP
  b.set(src, off + 12);
  b.set(dst, off + 16);
  const c = csum(b, off, 20);
  b[off + 10] = c >> 8;
  b[off + 11] = c & 0xff;
  const ulen = total - 20;
  b[off + 20] = 0x30; // sport 12345
  b[off + 21] = 0x39;
  b[off + 22] = dport >> 8;
  b[off + 23] = dport & 0xff;
  b[off + 24] = ulen >> 8;
  b[off + 25] = ulen & 0xff;
}
