// UDP sockets with recvmmsg/sendmmsg batches, between two real network
// namespaces joined by a veth pair:
//
//   ns a  a0 10.31.0.1/24 fd31::1/64  ═══ veth ═══  b0 10.31.0.2/24 fd31::2/64  ns b
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Lab, type Netns } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { UdpSocket, DEFAULT_PORT } from "../../host/net/udp_linux.ts";
import { io } from "../../host/io/native_linux.ts";
import { assertNoNamespacesLeft, collect, payload, Ring, v4, v6 } from "./io-util.ts";

const ENETUNREACH = 101;

describe("UDP batches over veth", { skip: requireTools(["netns"], { why: "e2e UDP batches over veth" }) }, () => {
  const lab = new Lab();
  let a: Netns;
  let b: Netns;

  before(async () => {
    a = await lab.ns("ua");
    b = await lab.ns("ub");
    await lab.veth(a, "a0", b, "b0");
    await a.addr("a0", "10.31.0.1/24");
    await b.addr("b0", "10.31.0.2/24");
    await a.addr("a0", "fd31::1/64");
    await b.addr("b0", "fd31::2/64");
  });
  after(async () => {
    await lab.teardown();
    assertNoNamespacesLeft(lab);
  });

  for (const family of [4, 6] as const) {
    const aAddr = family === 4 ? v4("10.31.0.1") : v6("fd31::1");
    const bAddr = family === 4 ? v4("10.31.0.2") : v6("fd31::2");
    const alen = family === 4 ? 4 : 16;

    it(`IPv${family}: a batch of 64 arrives intact with each sender and local address, and is echoed back in place`, async () => {
      const rx = UdpSocket.bind({ family, netns: b.name, pktinfo: true });
      const tx = UdpSocket.bind({ family, port: 0, netns: a.name });
      try {
        assert.equal(rx.port, DEFAULT_PORT);
        const out = new Ring();
        const sizes = Array.from({ length: 64 }, (_, i) => 1 + ((i * 97) % 1400));
        sizes[0] = 1400;
        sizes[1] = 1;
        for (let i = 0; i < 64; i++) {
          out.put(i, payload(i + family * 100, sizes[i]));
          out.addr(i, bAddr, family, DEFAULT_PORT);
        }
        assert.equal(tx.sendBatch(out.mem, out.offs, out.lens, out.addrs, out.ports, out.fams, 64), 64);

        const r = new Ring();
        const got = await collect(64, (g) => {
          const v = r.from(g);
          return rx.recvBatch(r.mem, v.offs, v.lens, v.addrs, v.ports, 64 - g, 1500, v.locals);
        });
        assert.equal(got, 64);
        for (let i = 0; i < 64; i++) {
          // A datagram over UDP on one veth keeps its order.
          assert.deepEqual(r.packet(i), payload(i + family * 100, sizes[i]), `datagram ${i}`);
          assert.deepEqual(r.addrs.slice(i * 16, i * 16 + alen), aAddr, `sender address of ${i}`);
          if (family === 4) assert.ok(r.addrs.slice(i * 16 + 4, i * 16 + 16).every((x) => x === 0));
          assert.equal(r.ports[i], tx.port, `sender port of ${i}`);
          assert.deepEqual(r.locals.slice(i * 16, i * 16 + alen), bAddr, `local address of ${i}`);
          r.fams[i] = family;
        }

        // Echo: the same slots and side arrays go straight back to their senders.
        assert.equal(rx.sendBatch(r.mem, r.offs, r.lens, r.addrs, r.ports, r.fams, 64), 64);
        const back = new Ring();
        const got2 = await collect(64, (g) => {
          const v = back.from(g);
          return tx.recvBatch(back.mem, v.offs, v.lens, v.addrs, v.ports, 64 - g, 1500);
        });
        assert.equal(got2, 64);
        for (let i = 0; i < 64; i++) {
          assert.deepEqual(back.packet(i), payload(i + family * 100, sizes[i]));
          assert.equal(back.ports[i], DEFAULT_PORT);
        }
        assert.deepEqual(rx.counters(), { failed: 0, lastErrno: 0, unsent: 0, truncated: 0 });
      } finally {
        rx.close();
        tx.close();
      }
    });

    it(`IPv${family}: a datagram longer than the slot is dropped with length 0 and counted`, async () => {
      const rx = UdpSocket.bind({ family, port: 0, netns: b.name });
      const tx = UdpSocket.bind({ family, port: 0, netns: a.name });
      try {
        const out = new Ring();
        out.put(0, payload(1, 300));
        out.put(1, payload(2, 100));
        out.put(2, payload(3, 301));
        for (let i = 0; i < 3; i++) out.addr(i, bAddr, family, rx.port);
        assert.equal(tx.sendBatch(out.mem, out.offs, out.lens, out.addrs, out.ports, out.fams, 3), 3);
        const r = new Ring();
        const got = await collect(3, (g) => {
          const v = r.from(g);
          return rx.recvBatch(r.mem, v.offs, v.lens, null, null, 3 - g, 300);
        });
        assert.equal(got, 3);
        assert.deepEqual([r.lens[0], r.lens[1], r.lens[2]], [300, 100, 0]);
        assert.deepEqual(r.packet(0), payload(1, 300));
        // Nothing was written past the slot capacity.
        assert.ok(r.mem.slice(r.offs[2] + 300, r.offs[2] + 301).every((x) => x === 0));
        assert.equal(rx.counters().truncated, 1);
      } finally {
        rx.close();
        tx.close();
      }
    });
  }

  it("dual stack: an IPv6 socket with v6only:false sees IPv4 peers as ::ffff:a.b.c.d and answers them", async () => {
    const rx = UdpSocket.bind({ family: 6, port: 0, v6only: false, netns: b.name });
    const tx = UdpSocket.bind({ family: 4, port: 0, netns: a.name });
    try {
      const out = new Ring();
      out.put(0, payload(7, 40));
      out.addr(0, v4("10.31.0.2"), 4, rx.port);
      assert.equal(tx.sendBatch(out.mem, out.offs, out.lens, out.addrs, out.ports, out.fams, 1), 1);
      const r = new Ring();
      assert.equal(await collect(1, () => rx.recvBatch(r.mem, r.offs, r.lens, r.addrs, r.ports, 1, 1500)), 1);
      const mapped = new Uint8Array(16);
      mapped[10] = mapped[11] = 0xff;
      mapped.set(v4("10.31.0.1"), 12);
      assert.deepEqual(r.addrs.slice(0, 16), mapped);
      // Answer with family 4 and a 4-byte address on the IPv6 socket.
      r.addr(0, v4("10.31.0.1"), 4, r.ports[0]);
      assert.equal(rx.sendBatch(r.mem, r.offs, r.lens, r.addrs, r.ports, r.fams, 1), 1);
      const back = new Ring();
      assert.equal(await collect(1, () => tx.recvBatch(back.mem, back.offs, back.lens, null, null, 1, 1500)), 1);
      assert.deepEqual(back.packet(0), payload(7, 40));
    } finally {
      rx.close();
      tx.close();
    }
  });

  it("a datagram the kernel refuses is skipped and counted; the rest of the batch still goes", async () => {
    const rx = UdpSocket.bind({ family: 4, port: 0, netns: b.name });
    const tx = UdpSocket.bind({ family: 4, port: 0, netns: a.name });
    try {
      const out = new Ring();
      for (let i = 0; i < 4; i++) out.put(i, payload(30 + i, 50));
      out.addr(0, v4("10.31.0.2"), 4, rx.port);
      out.addr(1, v4("203.0.113.9"), 4, rx.port); // ns a has no route there
      out.addr(2, v6("fd31::2"), 6, rx.port); // IPv6 peer on an IPv4 socket
      out.addr(3, v4("10.31.0.2"), 4, rx.port);
      assert.equal(tx.sendBatch(out.mem, out.offs, out.lens, out.addrs, out.ports, out.fams, 4), 2);
      const c = tx.counters();
      assert.equal(c.failed, 2);
      // Slot 2 fails while the batch is built, slot 1 in sendmmsg: the last errno is slot 1's.
      assert.equal(c.lastErrno, ENETUNREACH);
      const r = new Ring();
      assert.equal(await collect(2, (g) => {
        const v = r.from(g);
        return rx.recvBatch(r.mem, v.offs, v.lens, null, null, 2 - g, 1500);
      }), 2);
      assert.deepEqual(r.packet(0), payload(30, 50));
      assert.deepEqual(r.packet(1), payload(33, 50));
    } finally {
      rx.close();
      tx.close();
    }
  });

  it("SO_REUSEPORT lets one socket per worker share the port; without it the second bind fails", () => {
    const s1 = UdpSocket.bind({ family: 4, port: 4600, reusePort: true, netns: b.name });
    const s2 = UdpSocket.bind({ family: 4, port: 4600, reusePort: true, netns: b.name });
    try {
      assert.equal(s1.port, s2.port);
      assert.throws(() => UdpSocket.bind({ family: 4, port: 4600, netns: b.name }), { code: "EADDRINUSE" });
    } finally {
      s1.close();
      s2.close();
    }
  });

  it("slot ranges outside the memory, oversized batches and wrong arrays are refused before any I/O", () => {
    const s = UdpSocket.bind({ family: 4, port: 0, netns: a.name });
    try {
      const r = new Ring(4);
      const offs = Uint32Array.of(0, r.mem.length - 10);
      assert.throws(() => s.recvBatch(r.mem, offs, r.lens, null, null, 2, 64), RangeError);
      r.lens.fill(10);
      assert.throws(() => s.sendBatch(r.mem, Uint32Array.of(r.mem.length - 5), r.lens, r.addrs, r.ports, r.fams, 1), RangeError);
      const big = new Ring(io.MAX_BATCH + 1, 64, 0);
      assert.throws(
        () => s.sendBatch(big.mem, big.offs, big.lens, big.addrs, big.ports, big.fams, io.MAX_BATCH + 1),
        RangeError,
      );
      assert.throws(() => s.recvBatch(r.mem, new Uint16Array(4) as any, r.lens, null, null, 1, 64), TypeError);
      assert.throws(() => s.sendBatch(r.mem, r.offs, r.lens, r.addrs.subarray(0, 8), r.ports, r.fams, 1), RangeError);
    } finally {
      s.close();
    }
    assert.throws(() => s.recvBatch(new Uint8Array(1), new Uint32Array(1), new Uint32Array(1), null, null, 1, 1), /closed/);
  });

  it("onReadable calls back on this thread's event loop when datagrams arrive, until offReadable", async () => {
    const rx = UdpSocket.bind({ family: 4, port: 0, netns: b.name });
    const tx = UdpSocket.bind({ family: 4, port: 0, netns: a.name });
    try {
      const r = new Ring();
      let got = 0;
      const done = new Promise<void>((resolve, reject) => {
        rx.onReadable((err) => {
          if (err) return reject(err);
          got += rx.recvBatch(r.mem, r.offs, r.lens, null, null, 64, 1500);
          if (got >= 10) resolve();
        });
      });
      const out = new Ring();
      for (let i = 0; i < 10; i++) {
        out.put(i, payload(i, 20));
        out.addr(i, v4("10.31.0.2"), 4, rx.port);
      }
      // Sent after the poll started: the callback is what picks them up.
      setTimeout(() => tx.sendBatch(out.mem, out.offs, out.lens, out.addrs, out.ports, out.fams, 10), 20);
      await done;
      assert.equal(got, 10);
      rx.offReadable();
      rx.offReadable(); // twice is harmless
    } finally {
      rx.close();
      tx.close();
    }
  });
});
