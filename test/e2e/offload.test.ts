// Offloads end to end (issue 9): two `wesp up` between namespaces, the TUN
// opened with IFF_VNET_HDR and TSO offered, ESP-in-UDP sent as UDP_SEGMENT
// trains and received with UDP_GRO. TCP crosses both ways (the echo returns
// every byte, compared at the client) with IPv4 and IPv6 inner packets, and
// `wesp status` must show that the offloads were on and carried the traffic:
// super-packets segmented at the sending CE, trains sent and received, TCP
// segments coalesced again into super-packets on the receiving TUN; with an
// MSS of 100 a super-packet outgrows a whole batch and still crosses. A raw
// ESP pair (no UDP, so no GSO/GRO) still carries TCP with TSO on its TUN.
// Then the same with WESP_OFFLOADS=off: status says "off" and TCP still works.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { tcpEcho, waitFor } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { ADDR, startPair, status, stopPair, useSites, type Case, type Sites } from "./forwarder-util.ts";

const BYTES = 8 << 20;

const UDP4: Case = { name: "tunnel, ESP in UDP over IPv4, AES-128-GCM", mode: "tunnel", outer: 4, encap: "udp", suite: "aes-128-gcm" };
const RAW6: Case = { name: "tunnel, raw ESP over IPv6, ChaCha20-Poly1305", mode: "tunnel", outer: 6, encap: "raw", suite: "chacha20-poly1305" };

const SMALL_MSS_BYTES = 2 << 20;
/** Receives one connection on :5301, answers the SHA-256 of everything it read. */
const SHA_SERVER_PY = `
import hashlib, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5301)); s.listen(1); print("listening", flush=True)
c, _ = s.accept(); h = hashlib.sha256()
while True:
    b = c.recv(65536)
    if not b: break
    h.update(b)
c.sendall(h.hexdigest().encode()); c.close()
`;
/** Sends N pseudo-random bytes with an MSS of 100 (TCP_MAXSEG before connect); prints its SHA-256 and the server's. */
const SHA_CLIENT_PY = `
import hashlib, os, socket, sys
data = os.urandom(int(sys.argv[2]))
c = socket.socket(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 100)
c.connect((sys.argv[1], 5301)); c.sendall(data); c.shutdown(socket.SHUT_WR)
got = b""
while True:
    b = c.recv(256)
    if not b: break
    got += b
print(hashlib.sha256(data).hexdigest(), got.decode())
`;

async function echoBoth(s: Sites): Promise<void> {
  for (const fam of ["v4", "v6"] as const) {
    const ab = await tcpEcho(s.hostB, ADDR.hostB[fam], s.hostA, BYTES);
    assert.deepEqual(ab, { sent: BYTES, echoed: BYTES, equal: true }, `TCP ${fam} hostA → hostB and back`);
    const ba = await tcpEcho(s.hostA, ADDR.hostA[fam], s.hostB, BYTES, 5002);
    assert.deepEqual(ba, { sent: BYTES, echoed: BYTES, equal: true }, `TCP ${fam} hostB → hostA and back`);
  }
}

describe("offloads: TUN TSO, UDP GSO and GRO", { skip: requireTools(["netns", "python3"], { why: "e2e offloads" }) }, () => {
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
      // A tiny MSS: a 64 KiB super-packet then holds more segments than a whole batch of slots (256),
      // and the TUN reader spreads it over consecutive batches.
      const srv = s.hostB.spawn(["/usr/bin/python3", "-c", SHA_SERVER_PY, ADDR.hostB.v4]);
      await waitFor(() => /listening/.test(srv.stdout) || !srv.running, "sha256 server");
      const out = await s.hostA.run(["/usr/bin/python3", "-c", SHA_CLIENT_PY, ADDR.hostB.v4, String(SMALL_MSS_BYTES)], { timeoutMs: 90_000 });
      const [mine, theirs] = out.trim().split(" ");
      assert.equal(theirs, mine, "SHA-256 of the MSS-100 transfer at hostB equals the sender's");
      await srv.stop();
      const st = await status(r.sockA);
      assert.equal(st.offloads.tun.malformed, 0);
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
