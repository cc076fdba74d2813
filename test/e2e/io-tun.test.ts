// TUN devices in a real network namespace: packets the kernel routes into the
// device come out of readBatch into ring slots; packets written with
// writeBatch enter the kernel as if received. Also multi-queue, persistent
// devices for an unprivileged user, and clean shutdown.
//
//   ns t:  UDP socket ──route──► wtt* 10.33.0.1/24, fd33::1/64 ──► Tun.readBatch
//          UDP socket ◄───────── (kernel input)  ◄────────────── Tun.writeBatch
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Lab, type Netns } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { Tun } from "../../host/tun/tun_linux.ts";
import { UdpSocket } from "../../host/net/udp_linux.ts";
import { waitReadable } from "../../host/io/wait_linux.ts";
import { assertNoNamespacesLeft, collect, parseUdp, payload, Ring, udpPacket, v4, v6, type ParsedUdp } from "./io-util.ts";

const EINVAL = 22;
const EIO = 5;
const CHILD = fileURLToPath(new URL("./io-child.ts", import.meta.url));

/**
 * Reads from `tuns` until `want` UDP packets to `dport`-range came (other
 * traffic the kernel sends on its own, e.g. IPv6 MLD reports, is skipped).
 * Returns them per queue.
 */
async function readUdp(tuns: Tun[], want: number, match: (u: ParsedUdp) => boolean): Promise<ParsedUdp[][]> {
  const r = new Ring();
  const per: ParsedUdp[][] = tuns.map(() => []);
  const total = () => per.reduce((n, q) => n + q.length, 0);
  for (let idle = 0; total() < want && idle < 100; ) {
    let k = 0;
    tuns.forEach((t, q) => {
      const n = t.readBatch(r.mem, r.offs, r.lens, 64, 1500);
      k += n;
      for (let i = 0; i < n; i++) {
        const p = r.packet(i);
        const proto = p[0] >> 4 === 4 ? p[9] : p[6];
        if (proto !== 17) continue;
        const u = parseUdp(p);
        if (match(u)) per[q].push(u);
      }
    });
    if (k === 0) {
      idle++;
      waitReadable(Int32Array.from(tuns.map((t) => t.fd)), 20);
    } else idle = 0;
  }
  return per;
}

describe("TUN devices", { skip: requireTools(["netns"], { why: "e2e TUN devices" }) }, () => {
  const lab = new Lab();
  let t: Netns;
  let tun: Tun;

  before(async () => {
    t = await lab.ns("t");
    tun = Tun.open({ name: "wtt%d", netns: t.name });
    await t.addr(tun.name, "10.33.0.1/24");
    await t.addr(tun.name, "fd33::1/64");
    await t.up(tun.name);
  });
  after(async () => {
    tun?.close();
    await lab.teardown();
    assertNoNamespacesLeft(lab);
  });

  it("names the device from a %d pattern and opens a non-blocking fd", () => {
    assert.match(tun.name, /^wtt\d+$/);
    assert.ok(tun.fd > 2);
    const r = new Ring(1);
    // Nothing routed yet beyond what the kernel may send itself; never blocks.
    tun.readBatch(r.mem, r.offs, r.lens, 1, 1500);
  });

  for (const family of [4, 6] as const) {
    const here = family === 4 ? v4("10.33.0.1") : v6("fd33::1");
    const peer = family === 4 ? v4("10.33.0.2") : v6("fd33::2");

    it(`IPv${family}: routed datagrams come out as whole packets; replies written back reach the socket`, async () => {
      const s = UdpSocket.bind({ family, port: 0, netns: t.name });
      try {
        const out = new Ring();
        const maxData = 1500 - (family === 4 ? 28 : 48); // fills the MTU
        const sizes = Array.from({ length: 32 }, (_, i) => (i === 0 ? maxData : 1 + ((i * 173) % maxData)));
        for (let i = 0; i < 32; i++) {
          out.put(i, payload(i + family * 1000, sizes[i]));
          out.addr(i, peer, family, 7000 + i);
        }
        assert.equal(s.sendBatch(out.mem, out.offs, out.lens, out.addrs, out.ports, out.fams, 32), 32);
        const [got] = await readUdp([tun], 32, (u) => u.sport === s.port);
        assert.equal(got.length, 32);
        got.sort((x, y) => x.dport - y.dport);
        for (let i = 0; i < 32; i++) {
          assert.equal(got[i].version, family);
          assert.deepEqual(got[i].src, here);
          assert.deepEqual(got[i].dst, peer);
          assert.equal(got[i].dport, 7000 + i);
          assert.deepEqual(got[i].data, payload(i + family * 1000, sizes[i]), `packet ${i}`);
        }

        // Replies from "the far side": whole packets written into the device.
        const w = new Ring();
        for (let i = 0; i < 32; i++) w.put(i, udpPacket(peer, here, 7000 + i, s.port, payload(i + 77, sizes[i])));
        assert.equal(tun.writeBatch(w.mem, w.offs, w.lens, 32), 32);
        const r = new Ring();
        const n = await collect(32, (g) => {
          const v = r.from(g);
          return s.recvBatch(r.mem, v.offs, v.lens, v.addrs, v.ports, 32 - g, 1500);
        });
        assert.equal(n, 32);
        const seen = new Map<number, Uint8Array>();
        for (let i = 0; i < 32; i++) {
          assert.deepEqual(r.addrs.slice(i * 16, i * 16 + (family === 4 ? 4 : 16)), peer);
          seen.set(r.ports[i], r.packet(i));
        }
        for (let i = 0; i < 32; i++) assert.deepEqual(seen.get(7000 + i), payload(i + 77, sizes[i]), `reply ${i}`);
      } finally {
        s.close();
      }
    });
  }

  it("a packet longer than the slot is dropped with length 0 and counted, never overrunning the slot", async () => {
    const s = UdpSocket.bind({ family: 4, port: 0, netns: t.name });
    try {
      const out = new Ring();
      out.put(0, payload(5, 1000));
      out.addr(0, v4("10.33.0.2"), 4, 9);
      const before = tun.counters().truncated;
      s.sendBatch(out.mem, out.offs, out.lens, out.addrs, out.ports, out.fams, 1);
      const r = new Ring(4);
      r.mem.fill(0xee);
      let zero = -1;
      for (let tries = 0; zero < 0 && tries < 100; tries++) {
        waitReadable(Int32Array.of(tun.fd), 20);
        const n = tun.readBatch(r.mem, r.offs, r.lens, 4, 500);
        for (let i = 0; i < n; i++) if (r.lens[i] === 0) zero = i;
      }
      assert.ok(zero >= 0, "the oversized packet was read");
      assert.equal(tun.counters().truncated, before + 1);
      assert.ok(r.mem.slice(r.offs[zero] + 500, r.offs[zero] + 1000).every((x) => x === 0xee), "bytes past slotCap untouched");
    } finally {
      s.close();
    }
  });

  it("writeBatch skips a packet the kernel refuses and counts it; EIO while the link is down", async () => {
    const s = UdpSocket.bind({ family: 4, port: 0, netns: t.name });
    try {
      const w = new Ring();
      w.put(0, udpPacket(v4("10.33.0.2"), v4("10.33.0.1"), 9, s.port, payload(1, 10)));
      w.put(1, Uint8Array.of(0x00, 0x01, 0x02)); // IP version 0: not IPv4, not IPv6
      w.put(2, udpPacket(v4("10.33.0.2"), v4("10.33.0.1"), 9, s.port, payload(2, 10)));
      const before = tun.counters().failed;
      assert.equal(tun.writeBatch(w.mem, w.offs, w.lens, 3), 2);
      assert.equal(tun.counters().failed, before + 1);
      assert.equal(tun.counters().lastErrno, EINVAL);
      const r = new Ring();
      assert.equal(await collect(2, (g) => {
        const v = r.from(g);
        return s.recvBatch(r.mem, v.offs, v.lens, null, null, 2 - g, 1500);
      }), 2);

      await t.ip("link", "set", tun.name, "down");
      try {
        assert.equal(tun.writeBatch(w.mem, w.offs, w.lens, 1), 0);
        assert.equal(tun.counters().lastErrno, EIO);
      } finally {
        await t.up(tun.name);
      }
    } finally {
      s.close();
    }
  });

  it("multi-queue: two queues of one device share its flows, each packet on exactly one queue", async () => {
    const qs = Tun.openQueues({ name: "wtq0", netns: t.name }, 2);
    const s = UdpSocket.bind({ family: 4, port: 0, netns: t.name });
    try {
      assert.equal(qs.length, 2);
      assert.equal(qs[1].name, "wtq0");
      // A single-queue attach to a multi-queue device is refused by the kernel.
      assert.throws(() => Tun.open({ name: "wtq0", netns: t.name }), { code: "EINVAL" });
      await t.addr("wtq0", "10.35.0.1/24");
      await t.up("wtq0");
      const out = new Ring();
      // 64 flows (distinct destination ports): the kernel picks a queue per flow hash.
      for (let i = 0; i < 64; i++) {
        out.put(i, payload(i, 20));
        out.addr(i, v4("10.35.0.2"), 4, 8000 + i);
      }
      assert.equal(s.sendBatch(out.mem, out.offs, out.lens, out.addrs, out.ports, out.fams, 64), 64);
      const per = await readUdp(qs, 64, (u) => u.sport === s.port);
      const ports = per.flat().map((u) => u.dport).sort((x, y) => x - y);
      assert.deepEqual(ports, Array.from({ length: 64 }, (_, i) => 8000 + i));
      assert.ok(per[0].length > 0 && per[1].length > 0, `spread ${per[0].length}/${per[1].length}`);
    } finally {
      for (const q of qs) q.close();
      s.close();
    }
  });

  it("a persistent device made for user nobody is attached by nobody without capabilities", async () => {
    await t.ip("tuntap", "add", "dev", "wtp0", "mode", "tun", "user", "nobody");
    await t.ip("tuntap", "add", "dev", "wtpm0", "mode", "tun", "user", "nobody", "multi_queue");
    await t.addr("wtp0", "10.36.0.1/24");
    await t.up("wtp0");
    const asUser = (uid: number, ...args: string[]) =>
      t.exec(["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", process.execPath, "--import", "tsx", CHILD, ...args], {
        timeoutMs: 30_000,
      });
    const r = await asUser(65534, "attach", "wtp0", "wtpm0", "wtpx0", "10.36.0.2");
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout);
    assert.deepEqual(res, { uid: 65534, name: "wtp0", queues: 2, createErr: "EPERM", udpSeen: true });
    // Another unprivileged user may not attach to nobody's device.
    const other = await asUser(65533, "attach-only", "wtp0");
    assert.equal(other.code, 0, other.stderr);
    assert.deepEqual(JSON.parse(other.stdout), { uid: 65533, err: "EPERM" });
    // The devices persist after their user's process ended (deleting the namespace removes them).
    assert.match(await t.ip("link", "show", "wtp0"), /wtp0/);
  });

  it("a process that closes its polled TUN and socket exits on its own", async () => {
    const r = await t.exec([process.execPath, "--import", "tsx", CHILD, "shutdown"], { timeoutMs: 20_000 });
    assert.equal(r.code, 0, `exit ${r.code} (124 = still running at the timeout) ${r.stderr}`);
    assert.equal(JSON.parse(r.stdout).closed, true);
  });
});
