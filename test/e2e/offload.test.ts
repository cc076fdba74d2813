// Offloads end to end (issue 9): two `wesp up` between namespaces, the TUN
// opened with IFF_VNET_HDR and TSO offered, ESP-in-UDP sent as UDP_SEGMENT
// trains and received with UDP_GRO. TCP crosses both ways (the echo returns
// every byte, compared at the client) with IPv4 and IPv6 inner packets, and
// `wesp status` must show that the offloads were on and carried the traffic:
// super-packets segmented at the sending CE, trains sent and received, TCP
// segments coalesced again into super-packets on the receiving TUN. A raw
// ESP pair (no UDP, so no GSO/GRO) still carries TCP with TSO on its TUN.
// Then the same with WESP_OFFLOADS=off: status says "off" and TCP still works.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { tcpEcho } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { ADDR, startPair, status, stopPair, useSites, type Case, type Sites } from "./forwarder-util.ts";

const BYTES = 8 << 20;

const UDP4: Case = { name: "tunnel, ESP in UDP over IPv4, AES-128-GCM", mode: "tunnel", outer: 4, encap: "udp", suite: "aes-128-gcm" };
const RAW6: Case = { name: "tunnel, raw ESP over IPv6, ChaCha20-Poly1305", mode: "tunnel", outer: 6, encap: "raw", suite: "chacha20-poly1305" };

async function echoBoth(s: Sites): Promise<void> {
  for (const fam of ["v4", "v6"] as const) {
    const ab = await tcpEcho(s.hostB, ADDR.hostB[fam], s.hostA, BYTES);
    assert.deepEqual(ab, { sent: BYTES, echoed: BYTES, equal: true }, `TCP ${fam} hostA → hostB and back`);
    const ba = await tcpEcho(s.hostA, ADDR.hostA[fam], s.hostB, BYTES, 5002);
    assert.deepEqual(ba, { sent: BYTES, echoed: BYTES, equal: true }, `TCP ${fam} hostB → hostA and back`);
  }
}

describe("offloads: TUN TSO, UDP GSO and GRO", { skip: requireTools(["netns"], { why: "e2e offloads" }) }, () => {
  let s!: Sites;
  useSites((x) => (s = x));

  it("TCP both ways, IPv4 and IPv6 inner, through ESP-in-UDP trains", { timeout: 150_000 }, async () => {
    const r = await startPair(s, UDP4, "off-udp");
    try {
      await echoBoth(s);
      for (const sock of [r.sockA, r.sockB]) {
        const o = (await status(sock)).offloads;
        assert.equal(o.tun.vnetHdr, true);
        assert.equal(o.tun.tso, "on");
        assert.ok(o.tun.superPackets > 0, `super-packets segmented: ${JSON.stringify(o.tun)}`);
        assert.ok(o.tun.segments > o.tun.superPackets, "a super-packet makes several segments");
        assert.equal(o.tun.malformed, 0);
        assert.ok(o.tun.coalesced > 0 && o.tun.coalescedSegments > o.tun.coalesced, `TCP runs coalesced on TUN write: ${JSON.stringify(o.tun)}`);
        assert.equal(o.udp.length, 1);
        assert.equal(o.udp[0].gso, "on");
        assert.equal(o.udp[0].gro, "on");
        assert.ok(o.udp[0].trains > 0 && o.udp[0].datagrams > o.udp[0].trains, `trains: ${JSON.stringify(o.udp[0])}`);
      }
      const st = await status(r.sockA);
      const p = st.peers[0];
      assert.equal(p.outbound.counters.dropped, 0, "no outbound drops");
      assert.equal(p.inbound[0].counters.dropped, 0, "no inbound drops");
      const tun = st.sockets.find((x: { name: string }) => x.name.startsWith("tun/"));
      assert.equal(tun.failed, 0, `TUN writes refused: errno ${tun.lastErrno}`);
    } finally {
      await stopPair(s, r);
    }
  });

  it("raw ESP (no UDP offloads) with TSO on the TUN", { timeout: 150_000 }, async () => {
    const r = await startPair(s, RAW6, "off-raw");
    try {
      await echoBoth(s);
      const o = (await status(r.sockA)).offloads;
      assert.equal(o.tun.tso, "on");
      assert.ok(o.tun.superPackets > 0);
      assert.equal(o.udp.length, 0, "no UDP socket");
    } finally {
      await stopPair(s, r);
    }
  });

  it("WESP_OFFLOADS=off: no vnet header, status says so, TCP still crosses", { timeout: 150_000 }, async () => {
    process.env.WESP_OFFLOADS = "off";
    let r;
    try {
      r = await startPair(s, UDP4, "off-none");
    } finally {
      delete process.env.WESP_OFFLOADS;
    }
    try {
      const ab = await tcpEcho(s.hostB, ADDR.hostB.v4, s.hostA, 1 << 20);
      assert.deepEqual(ab, { sent: 1 << 20, echoed: 1 << 20, equal: true });
      const o = (await status(r.sockA)).offloads;
      assert.equal(o.tun.vnetHdr, false);
      assert.equal(o.udp[0].gso, "off");
      assert.equal(o.udp[0].gro, "off");
      assert.equal(o.udp[0].trains, 0);
    } finally {
      await stopPair(s, r);
    }
  });
});
