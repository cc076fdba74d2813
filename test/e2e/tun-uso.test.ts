// UDP super-packets on a real TUN with USO (TUN_F_USO4 | USO6, Linux 6.2;
// native/udp_coalesce_linux.c, native/gso_linux.c), both ways:
//
//   ns u:  UDP socket ◄── kernel (segments a GSO_UDP_L4 write) ◄── Tun.writeBatch (runs coalesced)
//          UDP socket ──UDP_SEGMENT train──► wuso* ──► Tun.readBatch (super-packet cut into datagrams)
//
// Write: batches crafted to hit each run rule — a smaller last datagram ends
// a run, a larger one does not join, interleaved flows never merge, 64
// datagrams and 64 KiB cap a run, a bad checksum (first or in the middle) is
// neither coalesced nor repaired (the receiving stack drops it and counts
// InCsumErrors), an IPv4 checksum of 0 is never coalesced — and the counters
// must show exactly the super-packets the rules make, while the local
// socket gets every good datagram whole, per flow in order. Read: a
// UDP_SEGMENT train routed into the TUN must arrive as one super-packet
// (tsoCounters().superPackets) and come out as whole datagrams with valid
// checksums.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { release } from "node:os";
import { Lab, type Netns } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { Tun } from "../../host/tun/tun_linux.ts";
import { UdpSocket } from "../../host/net/udp_linux.ts";
import { waitReadable } from "../../host/io/wait_linux.ts";
import { assertNoNamespacesLeft, collect, parseUdp, payload, Ring, udpPacket, v4, v6 } from "./io-util.ts";

const [major, minor] = release().split(".").map(Number);
const USO_KERNEL = {
  name: "Linux ≥ 6.2 (TUN_F_USO4/USO6)",
  present: () => major > 6 || (major === 6 && minor >= 2),
  install: "boot a Linux 6.2 or newer kernel",
};

const ADDR = {
  4: { here: "10.37.0.1", peer: "10.37.0.2", v: v4 },
  6: { here: "fd37::1", peer: "fd37::2", v: v6 },
} as const;

/**
 * One datagram of a crafted batch: its flow (source port), payload size and
 * checksum treatment; IPv4 ones carry DF unless `id` gives them an ID
 * without DF (then a run needs consecutive IDs).
 */
interface D { sport: number; size: number; csum?: "bad" | "zero"; id?: number }

/** RFC 1071 sum of big-endian words, folded, of several parts. */
function sum(parts: Uint8Array[]): number {
  let s = 0;
  for (const b of parts) for (let i = 0; i < b.length; i += 2) s += (b[i] << 8) | (i + 1 < b.length ? b[i + 1] : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** Whether an IP/UDP packet's UDP checksum verifies over the pseudo-header (RFC 768, RFC 8200 §8.1). */
function udpChecksumOk(p: Uint8Array): boolean {
  const six = p[0] >> 4 === 6;
  const l4 = six ? 40 : (p[0] & 15) * 4;
  const ul = p.length - l4;
  const pseudo = six ? [p.subarray(8, 40), Uint8Array.of(0, 0, ul >> 8, ul & 0xff, 0, 0, 0, 17)] : [p.subarray(12, 20), Uint8Array.of(0, 17, ul >> 8, ul & 0xff)];
  return sum([...pseudo, p.subarray(l4)]) === 0xffff;
}

/** The UDP InCsumErrors counter of the namespace (/proc/net/snmp, /proc/net/snmp6). */
async function csumErrors(ns: Netns, family: 4 | 6): Promise<number> {
  if (family === 6) return Number(/^Udp6InCsumErrors\s+(\d+)/m.exec(await ns.run(["cat", "/proc/net/snmp6"]))?.[1] ?? NaN);
  const lines = (await ns.run(["cat", "/proc/net/snmp"])).split("\n").filter((l) => l.startsWith("Udp:"));
  const names = lines[0].split(/\s+/), values = lines[1].split(/\s+/);
  return Number(values[names.indexOf("InCsumErrors")]);
}

describe("TUN with USO: UDP runs coalesced on write, UDP super-packets cut on read", { skip: requireTools(["netns", USO_KERNEL], { why: "TUN USO" }) }, () => {
  const lab = new Lab();
  let u: Netns;
  let tun: Tun;

  before(async () => {
    u = await lab.ns("uso");
    tun = Tun.open({ name: "wuso%d", netns: u.name, offload: true });
    await u.addr(tun.name, "10.37.0.1/24");
    await u.addr(tun.name, "fd37::1/64");
    await u.up(tun.name);
  });
  after(async () => {
    tun?.close();
    await lab.teardown();
    assertNoNamespacesLeft(lab);
  });

  it("the kernel takes USO along with TSO", () => {
    assert.deepEqual(tun.offloads, { vnetHdr: true, tso: "on", uso: "on" });
  });

  /**
   * Writes `ds` as one batch from peer:sport to here:port and returns what the
   * socket received per source port (payloads in arrival order), the
   * coalescing counters' growth and the socket's InCsumErrors growth.
   */
  async function writeRun(family: 4 | 6, ds: D[]) {
    const a = ADDR[family];
    const s = UdpSocket.bind({ family, port: 0, netns: u.name, rcvbuf: 8 << 20 });
    try {
      const w = new Ring(256, 2048);
      const sent = new Map<number, Uint8Array[]>();
      ds.forEach((d, i) => {
        const data = payload(family * 100_000 + i, d.size);
        const p = udpPacket(a.v(a.peer), a.v(a.here), d.sport, s.port, data);
        const l4 = family === 4 ? 20 : 40;
        if (family === 4) {
          if (d.id === undefined) p[6] = 0x40; // DF
          else (p[4] = d.id >> 8), (p[5] = d.id & 0xff);
          p[10] = p[11] = 0;
          const c = ~sum([p.subarray(0, 20)]) & 0xffff;
          (p[10] = c >> 8), (p[11] = c & 0xff);
        }
        if (d.csum === "bad") p[l4 + 7] ^= 0x5a;
        if (d.csum === "zero") p[l4 + 6] = p[l4 + 7] = 0; // RFC 768: "no checksum" (IPv4 only)
        w.put(i, p);
        if (d.csum !== "bad") sent.set(d.sport, [...(sent.get(d.sport) ?? []), data]);
      });
      const t0 = tun.tsoCounters(), c0 = await csumErrors(u, family), f0 = tun.counters().failed;
      assert.equal(tun.writeBatch(w.mem, w.offs, w.lens, ds.length), ds.length);
      assert.equal(tun.counters().failed, f0, `no write refused (errno ${tun.counters().lastErrno})`);
      const want = [...sent.values()].reduce((n, l) => n + l.length, 0);
      const r = new Ring(256, 2048);
      const n = await collect(want, (g) => {
        const v = r.from(g);
        return s.recvBatch(r.mem, v.offs, v.lens, v.addrs, v.ports, want - g, 2000);
      });
      assert.equal(n, want, "every good datagram reached the socket");
      const got = new Map<number, Uint8Array[]>();
      for (let i = 0; i < n; i++) got.set(r.ports[i], [...(got.get(r.ports[i]) ?? []), r.packet(i)]);
      const t1 = tun.tsoCounters();
      return {
        sent, got,
        writes: t1.udpCoalesced - t0.udpCoalesced,
        datagrams: t1.udpCoalescedDatagrams - t0.udpCoalescedDatagrams,
        csumErrors: (await csumErrors(u, family)) - c0,
      };
    } finally {
      s.close();
    }
  }

  for (const family of [4, 6] as const) {
    it(`IPv${family}: each run of one flow is one super-packet; every datagram arrives whole, per flow in order`, async () => {
      const big = family === 4 ? 1372 : 1352; // fills the TUN's 1,500-byte MTU minus headers
      const ds: D[] = [
        ...Array.from({ length: 10 }, () => ({ sport: 5001, size: 1000 })), { sport: 5001, size: 300 }, // 11: a smaller last one ends the run
        ...Array.from({ length: 5 }, () => ({ sport: 5001, size: 64 })), // 5: the next run of the same flow
        ...Array.from({ length: 12 }, (_, i) => ({ sport: 5002 + (i & 1), size: 200 })), // interleaved flows: nothing to join
        ...[5002, 5003, 5002].flatMap((sport) => Array.from({ length: 3 }, () => ({ sport, size: 200 }))), // 3 runs of 3
        { sport: 5004, size: 500 }, { sport: 5004, size: 600 }, // larger after smaller: not joined
        ...Array.from({ length: 70 }, () => ({ sport: 5005, size: 100 })), // 64 + 6: at most 64 per run
        ...Array.from({ length: 50 }, () => ({ sport: 5006, size: big })), // the 16-bit IP length caps a run
        // IPv4 without DF: consecutive IDs make a run (the IDs the kernel gives the segments), equal ones do not.
        ...(family === 4 ? [...[100, 101, 102, 103].map((id) => ({ sport: 5007, size: 80, id })), ...[7, 7, 7].map((id) => ({ sport: 5008, size: 80, id }))] : []),
      ];
      // IPv4 total length / IPv6 payload length ≤ 65,535 (RFC 791 / RFC 8200): that many big datagrams per run.
      const perRun = Math.floor((65535 - (family === 4 ? 28 : 8)) / big);
      const r = await writeRun(family, ds);
      const noDf = family === 4 ? 1 : 0;
      assert.equal(r.writes, 1 + 1 + 3 + 2 + 2 + noDf, "super-packets written");
      assert.equal(r.datagrams, 11 + 5 + 9 + 70 + 50 + 4 * noDf, "datagrams they held");
      assert.ok(perRun < 50 && perRun > 40, `${perRun} per run`);
      for (const [sport, list] of r.sent) assert.deepEqual(r.got.get(sport), list, `flow ${sport}: whole and in order`);
      assert.equal(r.csumErrors, 0);
    });

    it(`IPv${family}: a bad checksum is neither coalesced nor repaired${family === 4 ? "; a zero checksum goes out alone" : ""}`, async () => {
      const ds: D[] = [
        ...Array.from({ length: 4 }, () => ({ sport: 6001, size: 500 })),
        { sport: 6001, size: 500, csum: "bad" as const }, // in the middle of a run
        ...Array.from({ length: 4 }, () => ({ sport: 6001, size: 500 })),
        { sport: 6003, size: 400, csum: "bad" as const }, // first of a run
        ...Array.from({ length: 3 }, () => ({ sport: 6003, size: 400 })),
        ...(family === 4 ? Array.from({ length: 3 }, () => ({ sport: 6002, size: 300, csum: "zero" as const })) : []),
      ];
      const r = await writeRun(family, ds);
      assert.equal(r.writes, 3, "4 and 4 around the bad one, 3 after the bad first one; zero checksums alone");
      assert.equal(r.datagrams, 11);
      assert.equal(r.csumErrors, 2, "the receiving stack dropped both bad datagrams (not repaired on the way)");
      for (const [sport, list] of r.sent) assert.deepEqual(r.got.get(sport), list, `flow ${sport}`);
    });

    it(`IPv${family}: a UDP_SEGMENT train routed into the TUN arrives as one super-packet, cut into whole datagrams`, async () => {
      const a = ADDR[family];
      const s = UdpSocket.bind({ family, port: 0, netns: u.name, gso: true });
      try {
        assert.equal(s.offloads.gso, "on");
        const sizes = [...Array.from({ length: 20 }, () => 1000), 123];
        const out = new Ring(64, 2048);
        sizes.forEach((n, i) => {
          out.put(i, payload(family * 7 + i, n));
          out.addr(i, a.v(a.peer), family, 7000);
        });
        const before = tun.tsoCounters();
        assert.equal(s.sendBatch(out.mem, out.offs, out.lens, out.addrs, out.ports, out.fams, sizes.length), sizes.length);
        const r = new Ring(256, 2048);
        const got: Uint8Array[] = [];
        for (let idle = 0; got.length < sizes.length && idle < 100; ) {
          const n = tun.readBatch(r.mem, r.offs, r.lens, 256, 2000);
          for (let i = 0; i < n; i++) {
            const p = r.packet(i);
            if ((p[0] >> 4 === 4 ? p[9] : p[6]) !== 17 || parseUdp(p).sport !== s.port) continue; // e.g. MLD reports
            got.push(p);
          }
          if (n === 0) {
            idle++;
            waitReadable(Int32Array.of(tun.fd), 20);
          } else idle = 0;
        }
        assert.equal(got.length, sizes.length, "every datagram of the train");
        got.forEach((p, i) => {
          assert.ok(udpChecksumOk(p), `datagram ${i}: UDP checksum verifies`);
          const d = parseUdp(p);
          assert.equal(d.dport, 7000);
          assert.deepEqual(d.data, payload(family * 7 + i, sizes[i]), `datagram ${i} whole, in order`);
        });
        const after = tun.tsoCounters();
        assert.ok(after.superPackets > before.superPackets, `the train came as a UDP super-packet: ${JSON.stringify(after)}`);
        assert.equal(after.segments - before.segments, sizes.length, "cut into its datagrams");
        assert.equal(after.malformed, before.malformed);
      } finally {
        s.close();
      }
    });
  }
});
