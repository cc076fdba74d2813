// The TUN steering program (host/net/steer_linux.ts tunSteerProgram) on a
// real two-queue TUN: the kernel verifies and runs it, and every packet is
// read from the queue a plain reference of the same hash names — one flow,
// either direction, always on one queue; IPv4 and IPv6 UDP, a protocol
// without ports (GRE) and IPv4 fragments (hashed without ports); both queues
// used. Without the program the kernel's flow table picks the queues and this
// fails.
//
// Packets are sent with IP_HDRINCL raw sockets (any source address), to and
// from addresses routed into the TUN, so both directions of a flow enter it.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { Tun } from "../../host/tun/tun_linux.ts";
import { RawSocket } from "../../host/net/raw_linux.ts";
import { steerTun } from "../../host/net/steer_linux.ts";
import { inetChecksum, innerUdp, ipv4 } from "../unit/core-helpers.ts";
import { requireTools } from "../helpers/require.ts";
import { Lab, waitFor } from "../helpers/netns.ts";

const QUEUES = 2;

/** The program's hash, plainly (RFC 791 §3.1, RFC 8200 §3 offsets): the queue is its result mod the queue count. */
function referenceQueue(p: Uint8Array, queues: number): number {
  const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const v = p[0] >> 4;
  let h = 0, proto = 0, l4 = -1;
  if (v === 4) {
    h = (dv.getUint32(12) ^ dv.getUint32(16)) >>> 0;
    proto = p[9];
    if ((dv.getUint16(6) & 0x3fff) === 0) l4 = (p[0] & 0xf) * 4;
  } else if (v === 6) {
    for (let off = 8; off < 40; off += 4) h = (h ^ dv.getUint32(off)) >>> 0;
    proto = p[6];
    l4 = 40;
  } else return 0;
  if (l4 >= 0 && (proto === 6 || proto === 17)) h = (h ^ (dv.getUint16(l4) ^ dv.getUint16(l4 + 2))) >>> 0;
  h = (h ^ proto) >>> 0;
  h = Math.imul(h, 0x9e3779b1) >>> 16;
  return (h & 0xffff) % queues;
}

/** An IPv4 packet of protocol `proto` (no ports), or with `fragOffset8` a fragment of one (RFC 791 §3.1). */
function ipv4Packet(src: string, dst: string, proto: number, fragOffset8: number, payload: number): Uint8Array {
  const p = ipv4({ src, dst, proto, payload: new Uint8Array(payload) });
  const dv = new DataView(p.buffer, p.byteOffset);
  dv.setUint16(6, fragOffset8);
  dv.setUint16(10, 0);
  dv.setUint16(10, inetChecksum(p.subarray(0, 20)));
  return p;
}

/** A key naming the flow of a packet the same way in both directions. */
function flowKey(p: Uint8Array): string {
  const v = p[0] >> 4;
  const a = v === 4 ? p.subarray(12, 16) : p.subarray(8, 24);
  const b = v === 4 ? p.subarray(16, 20) : p.subarray(24, 40);
  const l4 = v === 4 ? (p[0] & 0xf) * 4 : 40;
  const proto = v === 4 ? p[9] : p[6];
  const frag = v === 4 && (new DataView(p.buffer, p.byteOffset).getUint16(6) & 0x3fff) !== 0;
  const ports = proto === 17 && !frag ? [p[l4] << 8 | p[l4 + 1], p[l4 + 2] << 8 | p[l4 + 3]] : [0, 0];
  const ends = [`${Buffer.from(a).toString("hex")}:${ports[0]}`, `${Buffer.from(b).toString("hex")}:${ports[1]}`].sort();
  return `${proto}|${frag ? "frag" : ""}|${ends.join("|")}`;
}

describe("TUN steering program", { skip: requireTools(["netns"], { why: "TUN steering (eBPF, two-queue TUN)" }) }, () => {
  test("each packet is read from the queue the reference hash names; a flow's two directions share it", async () => {
    const lab = new Lab();
    try {
      const ns = await lab.ns("st");
      const queues = Tun.openQueues({ name: "wst0", netns: ns.name }, QUEUES);
      try {
        steerTun(queues[0].fd);
        await ns.ip("link", "set", "dev", "wst0", "up");
        await ns.ip("route", "add", "10.8.0.0/16", "dev", "wst0");
        await ns.ip("-6", "route", "add", "fd00:8::/64", "dev", "wst0");
        const packets: Uint8Array[] = [];
        for (let k = 0; k < 24; k++) {
          const [a, b] = [`10.8.0.${2 + (k % 5)}`, `10.8.1.${2 + (k % 7)}`];
          const [c, d] = [`fd00:8::${(2 + (k % 3)).toString(16)}`, `fd00:8::1:${(2 + k).toString(16)}`];
          packets.push(innerUdp(a, b, 40, 1000 + k, 2000 + 3 * k), innerUdp(b, a, 40, 2000 + 3 * k, 1000 + k));
          packets.push(innerUdp(c, d, 40, 3000 + k, 53), innerUdp(d, c, 40, 53, 3000 + k));
          // a protocol without ports (GRE, 47), and a non-first fragment of a UDP packet (no ports in it)
          packets.push(ipv4Packet(a, b, 47, 0, 24), ipv4Packet(b, a, 47, 0, 24), ipv4Packet(a, b, 17, 100, 24));
        }
        const v4 = RawSocket.open({ family: 4, protocol: 255, headerIncluded: true, netns: ns.name });
        const v6 = RawSocket.open({ family: 6, protocol: 255, headerIncluded: true, netns: ns.name });
        try {
          for (const p of packets) {
            const fam = (p[0] >> 4) as 4 | 6;
            const addr = new Uint8Array(16);
            addr.set(fam === 4 ? p.subarray(16, 20) : p.subarray(24, 40));
            const sent = (fam === 4 ? v4 : v6).sendBatch(p, Uint32Array.of(0), Uint32Array.of(p.length), addr, Uint8Array.of(fam), 1);
            assert.equal(sent, 1, "the raw socket took the packet");
          }
        } finally {
          v4.close();
          v6.close();
        }
        // Read both queues until every packet is in (the kernel also sends its own, e.g. IPv6 router solicitations: not ours, skipped).
        const mem = new Uint8Array(64 * 2048);
        const offs = Uint32Array.from({ length: 64 }, (_, i) => i * 2048);
        const lens = new Uint32Array(64);
        const ours = new Set(packets.map((p) => Buffer.from(p).toString("hex")));
        const seen: { q: number; p: Uint8Array }[] = [];
        await waitFor(() => {
          for (let q = 0; q < QUEUES; q++) {
            for (let n = queues[q].readBatch(mem, offs, lens, 64, 2048); n > 0; n = queues[q].readBatch(mem, offs, lens, 64, 2048)) {
              for (let i = 0; i < n; i++) {
                const p = mem.slice(offs[i], offs[i] + lens[i]);
                if (ours.has(Buffer.from(p).toString("hex"))) seen.push({ q, p });
              }
            }
          }
          return seen.length >= packets.length;
        }, "every packet read from the TUN's queues", 10_000);
        assert.equal(seen.length, packets.length);
        const queueOf = new Map<string, number>();
        for (const { q, p } of seen) {
          assert.equal(q, referenceQueue(p, QUEUES), `packet of flow ${flowKey(p)} read from queue ${q}`);
          const k = flowKey(p);
          if (queueOf.has(k)) assert.equal(q, queueOf.get(k), `both directions of ${k} on one queue`);
          queueOf.set(k, q);
        }
        const used = new Set(seen.map((s) => s.q));
        assert.equal(used.size, QUEUES, "the flows spread over every queue");
      } finally {
        for (const t of queues) t.close();
      }
    } finally {
      await lab.teardown();
    }
  });
});
