// The io_uring TUN reader (native/tun_uring_linux.c) on real TUN devices in a
// namespace: datagrams routed into the device come out of readBatch whole and
// in the order the kernel queued them — more of them than the reader has
// buffers (the multishot read ends with ENOBUFS and is re-armed), and UDP
// super-packets on a vnet TUN cut into their datagrams; a packet longer than
// the slot is a counted drop; reader "readv" forces the old loop; a re-arm
// the kernel refuses turns the queue into a readv one without losing a
// packet or its wake-ups; and closing the reader, or terminating a worker
// that holds one, while packets still arrive leaves no ring, no buffers and
// no crash.
//
// The refused re-arm is injected (Tun.failNextRearmForTest, native
// tunUringFailRearm): io_uring_enter cannot be made to refuse one
// submission on demand. The hook is compiled in but no config or CLI path
// reaches it.
//
//   ns r:  UDP socket ──route──► wur* 10.39.0.1/24 ──► io_uring multishot read ──► readBatch
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { constants as osConstants } from "node:os";
import { release } from "node:os";
import { Worker } from "node:worker_threads";
import { Lab, waitFor, type Netns } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { Tun } from "../../host/tun/tun_linux.ts";
import { UdpSocket } from "../../host/net/udp_linux.ts";
import { waitReadable } from "../../host/io/wait_linux.ts";
import { assertNoNamespacesLeft, parseUdp, payload, Ring, v4, type ParsedUdp } from "./io-util.ts";

const [major, minor] = release().split(".").map(Number);
/** kernel.io_uring_disabled (Linux 6.6) is 0, or the kernel has no such switch. */
function ioUringEnabled(): boolean {
  try {
    return readFileSync("/proc/sys/kernel/io_uring_disabled", "utf8").trim() === "0";
  } catch {
    return true;
  }
}
const MULTISHOT_KERNEL = {
  name: "Linux ≥ 6.7 (IORING_OP_READ_MULTISHOT)",
  present: () => (major > 6 || (major === 6 && minor >= 7)) && ioUringEnabled(),
  install: "boot a Linux 6.7 or newer kernel with kernel.io_uring_disabled = 0",
};
/** One reader's buffers (native RING_BUFS × BUF_SIZE): a mapping of exactly this size. */
const BUFFERS_BYTES = 256 * 65600;

/** io_uring instances this process holds open. */
function ringFds(): number {
  let n = 0;
  for (const f of readdirSync("/proc/self/fd")) {
    try {
      if (readlinkSync(`/proc/self/fd/${f}`) === "anon_inode:[io_uring]") n++;
    } catch {
      // closed while listing
    }
  }
  return n;
}

/** Mappings of exactly one reader's buffer size (merged neighbours only make it smaller). */
function bufferMaps(): number {
  return readFileSync("/proc/self/maps", "utf8").split("\n").filter((l) => {
    const [a, b] = (l.split(" ")[0] ?? "").split("-").map((x) => parseInt(x, 16));
    return b - a === BUFFERS_BYTES;
  }).length;
}

const OUT = new Ring(64);

/** Sends `sizes.length` datagrams (payload i = payload(seed + i, sizes[i])) from `s` to dst:port, 64 per call. */
function sendAll(s: UdpSocket, dst: Uint8Array, port: number, sizes: number[], seed: number): void {
  const out = OUT;
  for (let i = 0; i < sizes.length; i += 64) {
    const k = Math.min(64, sizes.length - i);
    for (let j = 0; j < k; j++) {
      out.put(j, payload(seed + i + j, sizes[i + j]));
      out.addr(j, dst, 4, port);
    }
    assert.equal(s.sendBatch(out.mem, out.offs, out.lens, out.addrs, out.ports, out.fams, k), k);
  }
}

/** Reads from `tun` (batches of `max`, slots of `cap`) until `want` UDP packets from `sport` came; returns them in order. */
function readUdp(tun: Tun, want: number, sport: number, max = 64, cap = 2000): { got: ParsedUdp[]; zero: number } {
  const r = new Ring(Math.max(max, 1), 2048);
  const got: ParsedUdp[] = [];
  let zero = 0;
  for (let idle = 0; got.length < want && idle < 100; ) {
    const n = tun.readBatch(r.mem, r.offs, r.lens, max, cap);
    for (let i = 0; i < n; i++) {
      if (r.lens[i] === 0) {
        zero++;
        continue;
      }
      const p = r.packet(i);
      if (p[0] >> 4 !== 4 || p[9] !== 17) continue; // the kernel's own traffic
      const u = parseUdp(p);
      if (u.sport === sport) got.push(u);
    }
    if (n === 0) {
      idle++;
      waitReadable(Int32Array.of(tun.readyFd), 20);
    } else idle = 0;
  }
  return { got, zero };
}

/** Starts io-worker.ts in a worker thread (tsx registered there first). */
function startWorker(data: object) {
  const tsx = import.meta.resolve("tsx/esm/api");
  const entry = new URL("./io-worker.ts", import.meta.url).href;
  const w = new Worker(`import(${JSON.stringify(tsx)}).then((t) => { t.register(); return import(${JSON.stringify(entry)}); })`, { eval: true, workerData: data });
  const state = { w, ready: null as null | { reader: string }, got: 0, error: null as unknown };
  w.on("message", (m) => {
    if (m.ready) state.ready = m;
    if (typeof m.got === "number") state.got += m.got;
  });
  w.on("error", (e) => (state.error = e));
  return state;
}

describe("TUN io_uring reader", { skip: requireTools(["netns", MULTISHOT_KERNEL], { why: "e2e io_uring TUN reader" }) }, () => {
  const lab = new Lab();
  let ns: Netns;
  let tun: Tun;
  let vtun: Tun;
  let s: UdpSocket;
  const peer = v4("10.39.0.2");
  const vpeer = v4("10.40.0.2");

  before(async () => {
    ns = await lab.ns("r");
    tun = Tun.open({ name: "wur%d", netns: ns.name, reader: "auto" });
    vtun = Tun.open({ name: "wuv%d", netns: ns.name, reader: "auto", offload: true });
    await ns.addr(tun.name, "10.39.0.1/24");
    await ns.addr(vtun.name, "10.40.0.1/24");
    await ns.up(tun.name);
    await ns.up(vtun.name);
    s = UdpSocket.bind({ family: 4, port: 0, netns: ns.name });
  });
  after(async () => {
    s?.close();
    tun?.close();
    vtun?.close();
    await lab.teardown();
    assertNoNamespacesLeft(lab);
  });

  it("auto reads through io_uring here, polled on the ring's own fd", () => {
    assert.deepEqual(tun.reader, { reader: "io_uring" });
    assert.deepEqual(vtun.reader, { reader: "io_uring" });
    assert.notEqual(tun.readyFd, tun.fd, "readiness comes from the ring fd");
    assert.equal(readlinkSync(`/proc/self/fd/${tun.readyFd}`), "anon_inode:[io_uring]");
  });

  it("600 datagrams of one flow, more than the reader's 256 buffers, arrive whole and in order", () => {
    const sizes = Array.from({ length: 600 }, (_, i) => 1 + ((i * 211) % 1400));
    sendAll(s, peer, 7100, sizes, 10_000); // not read meanwhile: the buffers run out (ENOBUFS), the rest waits in the TUN queue
    const { got, zero } = readUdp(tun, sizes.length, s.port);
    assert.equal(zero, 0);
    assert.equal(got.length, sizes.length, "every datagram");
    got.forEach((u, i) => assert.deepEqual(u.data, payload(10_000 + i, sizes[i]), `datagram ${i} whole and in its place`));
  });

  it("a packet longer than the slot is a counted drop (length 0), bytes past the slot untouched", () => {
    const before = tun.counters().truncated;
    sendAll(s, peer, 7200, [1000, 20], 20_000);
    const r = new Ring(4);
    r.mem.fill(0xee);
    const lens: number[] = [];
    for (let tries = 0; lens.length < 2 && tries < 100; tries++) {
      const n = tun.readBatch(r.mem, r.offs, r.lens, 4, 500);
      for (let i = 0; i < n; i++) {
        if (r.lens[i] === 0) {
          assert.ok(r.mem.slice(r.offs[i] + 500, r.offs[i] + 1028).every((x) => x === 0xee), "bytes past slotCap untouched");
          lens.push(0);
        } else if (r.mem[r.offs[i] + 9] === 17) lens.push(r.lens[i]);
      }
      if (n === 0) waitReadable(Int32Array.of(tun.readyFd), 20);
    }
    assert.deepEqual(lens, [0, 20 + 28], "the long one dropped, the next one whole after it");
    assert.equal(tun.counters().truncated, before + 1);
  });

  it("vnet: UDP_SEGMENT trains arrive as super-packets, cut into whole datagrams in order, one waiting for the next batch", () => {
    const g = UdpSocket.bind({ family: 4, port: 0, netns: ns.name, gso: true });
    try {
      // Linux ≥ 6.7 here, so USO (6.2) and UDP_SEGMENT (4.18) are there.
      assert.equal(vtun.offloads.uso, "on");
      assert.equal(g.offloads.gso, "on");
      // Two trains of 40: the second does not fit the 24 slots the first leaves of a batch of 64.
      const sizes = [...Array.from({ length: 40 }, () => 1000), ...Array.from({ length: 40 }, () => 700)];
      const before = vtun.tsoCounters();
      sendAll(g, vpeer, 7300, sizes.slice(0, 40), 30_000);
      sendAll(g, vpeer, 7300, sizes.slice(40), 30_040);
      const { got } = readUdp(vtun, sizes.length, g.port, 64);
      assert.equal(got.length, sizes.length);
      got.forEach((u, i) => assert.deepEqual(u.data, payload(30_000 + i, sizes[i]), `datagram ${i}`));
      const after = vtun.tsoCounters();
      assert.ok(after.superPackets - before.superPackets >= 2, `trains came as super-packets: ${JSON.stringify(after)}`);
      assert.equal(after.malformed, before.malformed);
    } finally {
      g.close();
    }
  });

  it("reader readv forces one read(2) per packet: same packets, the TUN fd polled", async () => {
    const t = Tun.open({ name: "wux%d", netns: ns.name, reader: "readv" });
    try {
      assert.deepEqual(t.reader, { reader: "readv", why: "tun.reader readv" });
      assert.equal(t.readyFd, t.fd);
      // status names what chose readv: the worker passes WESP_TUN_READER when the variable overrode the config
      const e = Tun.open({ name: "wux%d", netns: ns.name, reader: "readv", readerFrom: "WESP_TUN_READER" });
      try {
        assert.deepEqual(e.reader, { reader: "readv", why: "WESP_TUN_READER readv" });
      } finally {
        e.close();
      }
      await ns.addr(t.name, "10.41.0.1/24");
      await ns.up(t.name);
      const sizes = Array.from({ length: 100 }, (_, i) => 10 + i);
      sendAll(s, v4("10.41.0.2"), 7400, sizes, 40_000);
      const { got } = readUdp(t, sizes.length, s.port);
      got.forEach((u, i) => assert.deepEqual(u.data, payload(40_000 + i, sizes[i]), `datagram ${i}`));
      assert.equal(got.length, sizes.length);
    } finally {
      t.close();
    }
  });

  /** An io_uring TUN in ns r with `cidr`, up. */
  async function readerUp(name: string, cidr: string): Promise<Tun> {
    const t = Tun.open({ name, netns: ns.name, reader: "auto" });
    try {
      await ns.addr(t.name, cidr);
      await ns.up(t.name);
    } catch (e) {
      t.close();
      throw e;
    }
    return t;
  }

  it("a re-arm the kernel refuses after a batch that returned packets: readv from then on, every packet in order, the ring freed", async () => {
    const t = await readerUp("wuf%d", "10.44.0.1/24");
    try {
      const rings = ringFds();
      t.failNextRearmForTest(osConstants.errno.EAGAIN);
      // More than the 256 buffers, unread: the multishot ends (ENOBUFS) and the batch that reaps its end re-arms.
      const sizes = Array.from({ length: 600 }, (_, i) => 20 + (i % 900));
      sendAll(s, v4("10.44.0.2"), 7700, sizes, 70_000);
      const { got, zero } = readUdp(t, sizes.length, s.port);
      assert.equal(zero, 0);
      assert.equal(got.length, sizes.length, "every datagram, across the switch");
      got.forEach((u, i) => assert.deepEqual(u.data, payload(70_000 + i, sizes[i]), `datagram ${i} in its place`));
      assert.deepEqual(t.reader, { reader: "readv", why: "io_uring re-arm: EAGAIN" }, "status says why");
      assert.equal(t.readyFd, t.fd, "readiness from the TUN fd now");
      assert.equal(ringFds(), rings - 1, "the spent ring closed");
    } finally {
      t.close();
    }
  });

  it("a refused re-arm under onReadable: the poll moves to the TUN fd and keeps waking the reader", async () => {
    const t = await readerUp("wuf%d", "10.45.0.1/24");
    try {
      const r = new Ring(64, 2048);
      const got: ParsedUdp[] = [];
      t.onReadable(() => {
        for (let n = 64; n === 64; ) {
          n = t.readBatch(r.mem, r.offs, r.lens, 64, 2000);
          for (let i = 0; i < n; i++) {
            const p = r.packet(i);
            if (p[0] >> 4 === 4 && p[9] === 17 && parseUdp(p).sport === s.port) got.push(parseUdp(p));
          }
        }
      });
      t.failNextRearmForTest(osConstants.errno.EBUSY);
      // Sent while this thread cannot read: the buffers run out and the multishot ends.
      const first = Array.from({ length: 400 }, (_, i) => 30 + i);
      sendAll(s, v4("10.45.0.2"), 7800, first, 80_000);
      await waitFor(() => got.length >= first.length, "the first 400 through both readers");
      assert.equal(t.reader.reader, "readv");
      assert.equal(t.reader.why, "io_uring re-arm: EBUSY");
      // Later packets wake the reader through the TUN fd.
      const later = Array.from({ length: 50 }, (_, i) => 100 + i);
      sendAll(s, v4("10.45.0.2"), 7800, later, 80_400);
      await waitFor(() => got.length >= first.length + later.length, "the later 50 through readv");
      const sizes = [...first, ...later];
      assert.equal(got.length, sizes.length);
      got.forEach((u, i) => assert.deepEqual(u.data, payload(80_000 + i, sizes[i]), `datagram ${i} in its place`));
    } finally {
      t.close();
    }
  });

  it("closing a reader while packets still arrive frees its ring and buffers; a closed one refuses reads", async () => {
    const rings = ringFds(), maps = bufferMaps();
    for (let k = 0; k < 5; k++) {
      const t = Tun.open({ name: "wuc%d", netns: ns.name, reader: "auto" });
      await ns.addr(t.name, "10.42.0.1/24");
      await ns.up(t.name);
      assert.equal(ringFds(), rings + 1);
      const r = new Ring(64);
      t.onReadable(() => t.readBatch(r.mem, r.offs, r.lens, 64, 1500));
      // Completions pending, buffers in the kernel's hands and more in the TUN queue when it closes.
      sendAll(s, v4("10.42.0.2"), 7500, Array.from({ length: 300 }, () => 100), 50_000 + k);
      t.close();
      assert.throws(() => t.readBatch(r.mem, r.offs, r.lens, 1, 1500), /closed/);
      t.close(); // twice: harmless
    }
    assert.equal(ringFds(), rings, "every ring closed");
    assert.ok(bufferMaps() <= maps, "every reader's buffers unmapped");
  });

  it("a worker terminated with its reader live and packets arriving takes its ring and buffers with it", async () => {
    const rings = ringFds(), maps = bufferMaps();
    for (let k = 0; k < 3; k++) {
      const w = startWorker({ mode: "tun-poll", ns: ns.name, tunName: `wuw${k}`, reader: "auto", multiQueue: false });
      let flood: NodeJS.Timeout | undefined;
      try {
        await waitFor(() => w.ready !== null || w.error !== null, "worker ready");
        assert.equal(w.error, null);
        assert.equal(w.ready!.reader, "io_uring");
        await ns.addr(`wuw${k}`, `10.43.${k}.1/24`);
        await ns.up(`wuw${k}`);
        const small = Array.from({ length: 64 }, () => 64);
        flood = setInterval(() => {
          try {
            sendAll(s, v4(`10.43.${k}.2`), 7600, small, 60_000);
          } catch {
            // the device went with the worker
          }
        }, 1);
        await waitFor(() => w.got > 100, "the worker reads");
      } finally {
        assert.equal(await w.w.terminate(), 1);
        clearInterval(flood);
      }
    }
    assert.equal(ringFds(), rings, "the workers' rings were closed by their env cleanup");
    assert.ok(bufferMaps() <= maps, "and their buffers unmapped");
  });
});
