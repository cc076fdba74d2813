// Raw IP sockets (ESP = 50, IP-in-IP = 4 / 41, GRE = 47) with recvmmsg and
// sendmmsg batches between two real namespaces over veth:
//
//   ns a  a0 10.32.0.1/24 fd32::1/64  ═══ veth ═══  b0 10.32.0.2/24 fd32::2/64  ns b
//
// What each family hands back differs (raw(7), RFC 3542 section 3): IPv4 raw
// sockets deliver the IP header in front of the payload, IPv6 ones only the
// payload. The tests pin both, since the pipeline parses accordingly.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Lab, type Netns } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { RawSocket, PROTO_ESP, PROTO_GRE, PROTO_IPIP, PROTO_IPV6 } from "../../host/net/raw_linux.ts";
import { assertNoNamespacesLeft, collect, ipv4Header, ipv6Header, payload, Ring, udpPacket, v4, v6 } from "./io-util.ts";

/** An ESP-shaped payload (RFC 4303 section 2: SPI, sequence number, opaque rest). */
function espLike(i: number, len: number): Uint8Array {
  const p = payload(500 + i, len);
  new DataView(p.buffer).setUint32(0, 0x1000 + i);
  new DataView(p.buffer).setUint32(4, i + 1);
  return p;
}

const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};

describe("raw IP sockets over veth", { skip: requireTools(["netns"], { why: "e2e raw IP sockets over veth" }) }, () => {
  const lab = new Lab();
  let a: Netns;
  let b: Netns;
  const A4 = v4("10.32.0.1");
  const B4 = v4("10.32.0.2");
  const A6 = v6("fd32::1");
  const B6 = v6("fd32::2");

  before(async () => {
    a = await lab.ns("ra");
    b = await lab.ns("rb");
    await lab.veth(a, "a0", b, "b0");
    await a.addr("a0", "10.32.0.1/24");
    await b.addr("b0", "10.32.0.2/24");
    await a.addr("a0", "fd32::1/64");
    await b.addr("b0", "fd32::2/64");
  });
  after(async () => {
    await lab.teardown();
    assertNoNamespacesLeft(lab);
  });

  it("ESP over IPv4: a batch arrives with its IPv4 header in front, protocol 50, from a to b", async () => {
    const rx = RawSocket.open({ family: 4, protocol: PROTO_ESP, netns: b.name, pktinfo: true });
    const tx = RawSocket.open({ family: 4, protocol: PROTO_ESP, netns: a.name });
    try {
      assert.equal(rx.receivesIpHeader, true);
      const out = new Ring();
      const sizes = Array.from({ length: 32 }, (_, i) => 8 + ((i * 131) % 1400));
      for (let i = 0; i < 32; i++) {
        out.put(i, espLike(i, sizes[i]));
        out.addr(i, B4, 4);
      }
      assert.equal(tx.sendBatch(out.mem, out.offs, out.lens, out.addrs, out.fams, 32), 32);
      const r = new Ring();
      const got = await collect(32, (g) => {
        const v = r.from(g);
        return rx.recvBatch(r.mem, v.offs, v.lens, v.addrs, 32 - g, 1500, v.locals);
      });
      assert.equal(got, 32);
      for (let i = 0; i < 32; i++) {
        const p = r.packet(i);
        const ihl = (p[0] & 15) * 4;
        assert.equal(p[0] >> 4, 4);
        assert.equal(p[9], PROTO_ESP);
        assert.equal((p[2] << 8) | p[3], p.length, "total length");
        assert.deepEqual(p.slice(12, 16), A4);
        assert.deepEqual(p.slice(16, 20), B4);
        assert.deepEqual(p.slice(ihl), espLike(i, sizes[i]), `ESP payload ${i}`);
        assert.deepEqual(r.addrs.slice(i * 16, i * 16 + 4), A4);
        assert.deepEqual(r.locals.slice(i * 16, i * 16 + 4), B4);
      }
    } finally {
      rx.close();
      tx.close();
    }
  });

  it("ESP over IPv6: the payload alone arrives; source and destination come in addrs and locals", async () => {
    const rx = RawSocket.open({ family: 6, protocol: PROTO_ESP, netns: b.name, pktinfo: true });
    const tx = RawSocket.open({ family: 6, protocol: PROTO_ESP, netns: a.name });
    try {
      assert.equal(rx.receivesIpHeader, false);
      const out = new Ring();
      for (let i = 0; i < 16; i++) {
        out.put(i, espLike(i, 60 + i * 80));
        out.addr(i, B6, 6);
      }
      assert.equal(tx.sendBatch(out.mem, out.offs, out.lens, out.addrs, out.fams, 16), 16);
      const r = new Ring();
      assert.equal(await collect(16, (g) => {
        const v = r.from(g);
        return rx.recvBatch(r.mem, v.offs, v.lens, v.addrs, 16 - g, 1500, v.locals);
      }), 16);
      for (let i = 0; i < 16; i++) {
        assert.deepEqual(r.packet(i), espLike(i, 60 + i * 80), `ESP payload ${i}`);
        assert.deepEqual(r.addrs.slice(i * 16, i * 16 + 16), A6);
        assert.deepEqual(r.locals.slice(i * 16, i * 16 + 16), B6);
      }
    } finally {
      rx.close();
      tx.close();
    }
  });

  it("GRE over IPv6 (protocol 47): the kernel writes the outer header, b gets the GRE packet", async () => {
    const rx = RawSocket.open({ family: 6, protocol: PROTO_GRE, netns: b.name });
    const tx = RawSocket.open({ family: 6, protocol: PROTO_GRE, netns: a.name });
    try {
      // RFC 2784: flags/version 0, protocol type 0x0800 (IPv4), then the inner packet.
      const inner = udpPacket(v4("192.0.2.1"), v4("192.0.2.2"), 1000, 2000, payload(9, 100));
      const gre = concat(Uint8Array.of(0, 0, 0x08, 0x00), inner);
      const out = new Ring();
      out.put(0, gre);
      out.addr(0, B6, 6);
      assert.equal(tx.sendBatch(out.mem, out.offs, out.lens, out.addrs, out.fams, 1), 1);
      const r = new Ring();
      assert.equal(await collect(1, () => rx.recvBatch(r.mem, r.offs, r.lens, r.addrs, 1, 1500)), 1);
      assert.deepEqual(r.packet(0), gre);
      assert.deepEqual(r.addrs.slice(0, 16), A6);
    } finally {
      rx.close();
      tx.close();
    }
  });

  it("IP-in-IP over IPv4 with headerIncluded: the outer header goes out as the slot wrote it", async () => {
    const rx = RawSocket.open({ family: 4, protocol: PROTO_IPIP, netns: b.name });
    const tx = RawSocket.open({ family: 4, protocol: PROTO_IPIP, headerIncluded: true, netns: a.name });
    try {
      const inner = udpPacket(v4("192.0.2.1"), v4("198.51.100.7"), 1000, 2000, payload(11, 200));
      const outer = ipv4Header(A4, B4, PROTO_IPIP, inner.length, 33); // TTL 33 marks our header
      const out = new Ring();
      out.put(0, concat(outer, inner));
      out.addr(0, B4, 4);
      assert.equal(tx.sendBatch(out.mem, out.offs, out.lens, out.addrs, out.fams, 1), 1);
      const r = new Ring();
      assert.equal(await collect(1, () => rx.recvBatch(r.mem, r.offs, r.lens, r.addrs, 1, 1500)), 1);
      const p = r.packet(0);
      assert.equal(p[8], 33, "TTL as written by the slot");
      assert.equal(p[9], PROTO_IPIP);
      assert.deepEqual(p.slice(20), inner);
    } finally {
      rx.close();
      tx.close();
    }
  });

  it("IPv6-in-IPv6 (protocol 41) with headerIncluded: b receives the inner packet only", async () => {
    const rx = RawSocket.open({ family: 6, protocol: PROTO_IPV6, netns: b.name });
    const tx = RawSocket.open({ family: 6, protocol: PROTO_IPV6, headerIncluded: true, netns: a.name });
    try {
      const inner = udpPacket(v6("2001:db8::1"), v6("2001:db8::2"), 1000, 2000, payload(12, 300));
      const outer = ipv6Header(A6, B6, PROTO_IPV6, inner.length, 33);
      const out = new Ring();
      out.put(0, concat(outer, inner));
      out.addr(0, B6, 6);
      assert.equal(tx.sendBatch(out.mem, out.offs, out.lens, out.addrs, out.fams, 1), 1);
      const r = new Ring();
      assert.equal(await collect(1, () => rx.recvBatch(r.mem, r.offs, r.lens, r.addrs, 1, 1500)), 1);
      assert.deepEqual(r.packet(0), inner);
      assert.deepEqual(r.addrs.slice(0, 16), A6);
    } finally {
      rx.close();
      tx.close();
    }
  });

  it("opening a raw socket of a protocol outside 1..255 is refused", () => {
    assert.throws(() => RawSocket.open({ family: 4, protocol: 0, netns: a.name }), RangeError);
    assert.throws(() => RawSocket.open({ family: 4, protocol: 256, netns: a.name }), RangeError);
  });
});
