// UDP through the offloads end to end (issue 9, USO): two `wesp up` between
// namespaces over ESP-in-UDP, the TUNs opened with TSO and USO. hostA sends
// UDP streams to hostB:
//   - one flow with UDP_SEGMENT (setsockopt 103): ceA's kernel hands wesp
//     UDP super-packets, which the TUN reader must cut into whole datagrams;
//   - two flows interleaved in runs of three (different source ports): ceB
//     coalesces runs on its TUN write and must never merge across flows;
//   - one flow of mixed sizes (9 bytes to the inner MTU), each size a run;
//   - one flow with a datagram whose UDP checksum is wrong (a raw socket
//     forges it with the flow's source port) in the middle of good ones: it
//     must not be coalesced and so not repaired — hostB's stack drops it.
// hostB's receiver checks every datagram: per flow consecutive sequence
// numbers (whole, in order, none lost or duplicated), the payload pattern
// and length, and one source port per flow. The sender waits for hostB's
// acknowledgement after each window (≤ 64 datagrams), so no queue on the way
// can overflow and the test waits for events, not time. Inner IPv4 and
// IPv6. `wesp status` must show USO on and UDP runs coalesced at ceB, UDP
// super-packets segmented at ceA, no malformed ones, no refused TUN write.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { waitFor } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { ADDR, startPair, status, stopPair, useSites, type Case, type Sites } from "./forwarder-util.ts";

const UDP4: Case = { name: "tunnel, ESP in UDP over IPv4, AES-128-GCM", mode: "tunnel", outer: 4, encap: "udp", suite: "aes-128-gcm" };
const PORT = 5400;

/** The datagram format both scripts share: flow u8, seq u32, upto u32 (datagrams sent when its window ends), then a pattern. */
const COMMON_PY = `
import json, socket, struct, sys
PAT = bytes(range(256)) * 300
def body(flow, seq, upto, size):
    h = struct.pack("!BII", flow, seq, upto)
    off = (seq * 7 + flow * 31) % 256
    return (h + PAT[off:off + size])[:size]
`;

/** hostB: receives until `want` good datagrams came, checks each, acks each completed window; prints a JSON summary. */
const RECV_PY = COMMON_PY + `
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE
s.bind((sys.argv[1], int(sys.argv[2])))
want = int(sys.argv[3])
print("listening", flush=True)
nxt, ports, errors, n, upto, forged, peers = {}, {}, [], 0, 0, 0, set()
while n < want:
    b, a = s.recvfrom(65535)
    if len(b) < 9:
        errors.append("short %d" % len(b)); continue
    flow, seq, up = struct.unpack("!BII", b[:9])
    if flow == 99:
        forged += 1; continue
    n += 1
    upto = max(upto, up)
    if b != body(flow, seq, up, len(b)):
        errors.append("flow %d seq %d: bytes differ" % (flow, seq))
    if seq != nxt.get(flow, 0):
        errors.append("flow %d: seq %d, expected %d" % (flow, seq, nxt.get(flow, 0)))
    nxt[flow] = seq + 1
    if ports.setdefault(flow, a[1]) != a[1]:
        errors.append("flow %d from port %d and %d" % (flow, ports[flow], a[1]))
    peers.add(a)
    if n >= upto:  # to every sender socket: whichever the sender waits on hears it
        for p in peers: s.sendto(struct.pack("!I", n), p)
print(json.dumps({"received": n, "flows": nxt, "errors": errors[:10], "forged": forged}), flush=True)
`;

/** hostA: the four phases of the file comment, each window acked before the next. */
const SEND_PY = COMMON_PY + `
dst, port = sys.argv[1], int(sys.argv[2])
v6 = ":" in dst
fam = socket.AF_INET6 if v6 else socket.AF_INET
big = 1400 - (48 if v6 else 28)  # the tunnel's inner MTU (1,400) minus IP and UDP headers
socks = {}
def sock(flow):
    if flow not in socks:
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.connect((dst, port)); s.settimeout(20)
        socks[flow] = s
    return socks[flow]
seqs, total = {}, [0]
def nextseq(flow):
    seqs[flow] = seqs.get(flow, -1) + 1
    return seqs[flow]
def window(items, gso=None):
    """items: (flow, size); sends them (one UDP_SEGMENT send when gso), then waits for the ack."""
    upto = total[0] + len(items)
    bodies = [(f, body(f, nextseq(f), upto, size)) for f, size in items]
    if gso:
        s = sock(bodies[0][0])
        s.setsockopt(17, 103, gso)  # UDP_SEGMENT
        s.send(b"".join(b for _, b in bodies))
        s.setsockopt(17, 103, 0)
    else:
        for f, b in bodies:
            sock(f).send(b)
    total[0] = upto
    ack = sock(items[-1][0])
    while True:
        try:
            got = struct.unpack("!I", ack.recv(16)[:4])[0]
        except socket.timeout:
            print(json.dumps({"stuck": total[0]}), flush=True); sys.exit(1)
        if got >= total[0]: return
def csum(b):
    b = b + b"\\0" * (len(b) & 1)
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s > 0xffff: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
def forge(flow, size):
    """A datagram of the flow's addresses and ports whose UDP checksum is wrong (RFC 768) but not 0 (= none), from
    an IPv4 raw socket (the kernel adds the IP header)."""
    src, sport = sock(flow).getsockname()[:2]
    data = body(99, 0, 0, size)
    ul = 8 + len(data)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 17, ul)
    good = csum(pseudo + struct.pack("!HHHH", sport, port, ul, 0) + data) or 0xffff
    bad = good ^ 0x5a5a or 0x1111
    r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
    r.sendto(struct.pack("!HHHH", sport, port, ul, bad) + data, (dst, 0))
    r.close()
# 1. UDP_SEGMENT: super-packets into ceA's TUN (sizes: the largest, a middle one, small; a shorter last one).
for size in (big, 1000, 64):
    n = min(40, 60000 // size)
    for _ in range(6):
        window([(1, size)] * n + [(1, size // 2 or 1)], gso=size)
# 2. Two flows interleaved in runs of three.
for _ in range(8):
    window([(2 + (i // 3) % 2, 200) for i in range(48)])
# 3. Mixed sizes, each a run of its own.
for size in (big, 700, 64, 9):  # 9: the header alone
    window([(4, size)] * 30)
# 4. A forged bad checksum in the middle of a run (IPv4 only: a raw IPv6 socket leaves no room to forge it the same way).
for _ in range(4):
    if not v6:
        for _ in range(8): sock(5).send(body(5, nextseq(5), total[0] + 16, 500))
        forge(5, 500)
        for _ in range(8): sock(5).send(body(5, nextseq(5), total[0] + 16, 500))
        total[0] += 16
        ack = sock(5)
        while struct.unpack("!I", ack.recv(16)[:4])[0] < total[0]: pass
print(json.dumps({"sent": total[0]}), flush=True)
`;

/** Datagrams SEND_PY sends for an inner family (kept in step with its phases). */
function expected(v6: boolean): number {
  const big = 1400 - (v6 ? 48 : 28);
  let n = 0;
  for (const size of [big, 1000, 64]) n += 6 * (Math.min(40, Math.floor(60000 / size)) + 1);
  n += 8 * 48 + 4 * 30;
  if (!v6) n += 4 * 16;
  return n;
}

async function stream(s: Sites, fam: "v4" | "v6"): Promise<void> {
  const want = expected(fam === "v6");
  const rx = s.hostB.spawn(["/usr/bin/python3", "-c", RECV_PY, ADDR.hostB[fam], String(PORT), String(want)]);
  try {
    await waitFor(() => /listening/.test(rx.stdout) || !rx.running, "UDP receiver");
    const sent = JSON.parse((await s.hostA.run(["/usr/bin/python3", "-c", SEND_PY, ADDR.hostB[fam], String(PORT)], { timeoutMs: 120_000 })).trim());
    assert.deepEqual(sent, { sent: want });
    await rx.exited;
    const got = JSON.parse(rx.stdout.trim().split("\n").pop()!);
    assert.deepEqual(got.errors, [], `${fam}: every datagram whole, per flow in order, one port per flow`);
    assert.equal(got.received, want);
    assert.equal(got.forged, 0, `${fam}: the datagram with a bad checksum was not repaired on the way`);
  } finally {
    await rx.stop();
  }
}

describe("offloads: UDP through the tunnel with USO", { skip: requireTools(["netns", "python3"], { why: "e2e UDP offloads" }) }, () => {
  let s!: Sites;
  useSites((x) => (s = x));

  it("UDP streams (UDP_SEGMENT, interleaved flows, mixed sizes, a bad checksum) arrive whole and in order", { timeout: 170_000 }, async () => {
    const r = await startPair(s, UDP4, "uso-udp");
    try {
      for (const fam of ["v4", "v6"] as const) await stream(s, fam);
      const a = (await status(r.sockA)).offloads, b = (await status(r.sockB)).offloads;
      process.stdout.write(`ceA tun ${JSON.stringify(a.tun)}\nceB tun ${JSON.stringify(b.tun)}\n`);
      for (const o of [a, b]) {
        assert.equal(o.tun.tso, "on");
        assert.equal(o.tun.uso, "on");
        assert.equal(o.tun.malformed, 0);
      }
      assert.ok(a.tun.superPackets > 0 && a.tun.segments > a.tun.superPackets, `ceA cut UDP super-packets: ${JSON.stringify(a.tun)}`);
      assert.ok(b.tun.udpCoalesced > 0 && b.tun.udpCoalescedDatagrams > b.tun.udpCoalesced, `ceB coalesced UDP runs: ${JSON.stringify(b.tun)}`);
      const st = await status(r.sockB);
      const tun = st.sockets.find((x: { name: string }) => x.name.startsWith("tun/"));
      assert.equal(tun.failed, 0, `TUN writes refused: errno ${tun.lastErrno}`);
      assert.equal(st.peers[0].inbound[0].counters.dropped, 0, "no inbound drops at ceB");
    } finally {
      await stopPair(s, r);
    }
  });
});
