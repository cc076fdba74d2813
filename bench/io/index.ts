// Packet I/O benchmarks: the wesp_io addon against koffi (FFI), node:dgram and
// the raw-socket package, in network namespaces on veth (see lab.ts).
// Run as root: `npm run bench:io` (needs `npm run build:native` first).
// Options: --rounds N (default 30), --only tun,udp,raw, --json.
//
// Method: each figure isolates one side of the kernel boundary.
//  • "drain" (receive): with the event loop blocked, the benchmark queues
//    N packets into the receiving fd, then times only how long the method
//    takes to take all N out into ring slots. Event-driven methods (dgram,
//    raw-socket, onReadable) are timed from the return to the event loop to
//    the N-th packet, so their wakeup and per-packet callbacks are included.
//  • "send"/"write": times handing N packets to the kernel, which drops them
//    right after routing (see lab.ts), so the figure is the cost of the
//    method plus the kernel's send path, not of a receiver.
// Each figure is a median over `rounds` rounds, after two untimed warm-up
// rounds (JIT, page faults, neighbour and route caches); methods of one test
// run round-robin, so load from elsewhere on the machine hits them alike.
// Two figures per method: packets per CPU-second of this process (user +
// system time, from getrusage) -- the cost per packet, which other load on a
// shared machine barely moves -- and packets per wall-clock second.
import dgram from "node:dgram";
import os from "node:os";
import { createRequire } from "node:module";
import { io } from "../../host/io/native_linux.ts";
import { withNetns } from "../../host/io/netns_linux.ts";
import { Tun } from "../../host/tun/tun_linux.ts";
import { UdpSocket } from "../../host/net/udp_linux.ts";
import { RawSocket, PROTO_ESP } from "../../host/net/raw_linux.ts";
import { buildNet, ipv4Udp, Ring, type BenchNet } from "./lab.ts";
import { median } from "../stats.ts";
import { baseAddress, kClose, KMmsg, kReadBatch, kSocket4, kTunOpen, kWriteBatch } from "./koffi_io.ts";

const rawSocket = createRequire(import.meta.url)("raw-socket");

const args = process.argv.slice(2);
const ROUNDS = Number(args[args.indexOf("--rounds") + 1] || 0) || 30;
const JSON_OUT = args.includes("--json");
/** --only tun,udp,raw: run some sections. */
const ONLY = (args[args.indexOf("--only") + 1] ?? "").split(",").filter((x) => args.includes("--only") && x);
const want = (s: string) => ONLY.length === 0 || ONLY.includes(s);
const BATCH = 64;
const SIZES = [64, 1400];
const BIG = 64 << 20; // socket buffers, so a whole round fits in the queue

interface Row {
  test: string;
  size: number;
  method: string;
  /** Median packets per wall-clock second. */
  pps: number;
  /** Median packets per CPU-second of this process (user + system). */
  cpuPps: number;
  lost: number;
}
const rows: Row[] = [];
const now = () => process.hrtime.bigint();

/** One way of doing the test: `prep` and `post` are not timed, `run` is. */
interface Method {
  name: string;
  prep?: () => void | Promise<void>;
  run: () => number | Promise<number>;
  post?: () => void;
}

/**
 * Runs all methods of one test round-robin (order rotated each round, so a
 * burst of other load on the machine hits every method alike), two warm-up
 * rounds then ROUNDS timed ones; reports each method's median packets/s.
 */
async function group(test: string, size: number, n: number, methods: Method[]): Promise<void> {
  const rates = methods.map(() => [] as number[]);
  const cpuRates = methods.map(() => [] as number[]);
  const got = methods.map(() => 0);
  for (let r = -2; r < ROUNDS; r++) {
    for (let j = 0; j < methods.length; j++) {
      const i = (j + Math.max(r, 0)) % methods.length;
      const m = methods[i];
      await m.prep?.();
      const c0 = process.cpuUsage();
      const t0 = now();
      const k = await m.run();
      const dt = Number(now() - t0) / 1e9;
      const c = process.cpuUsage(c0);
      m.post?.();
      if (r < 0) continue;
      got[i] += k;
      rates[i].push(k / dt);
      cpuRates[i].push(k / (Math.max(c.user + c.system, 1) / 1e6));
    }
  }
  methods.forEach((m, i) => {
    const pps = median(rates[i]);
    const cpuPps = median(cpuRates[i]);
    rows.push({ test, size, method: m.name, pps, cpuPps, lost: n * ROUNDS - got[i] });
    if (!JSON_OUT) {
      const short = got[i] < n * ROUNDS ? `  (short by ${n * ROUNDS - got[i]})` : "";
      console.error(`  ${test} ${String(size).padStart(4)} B  ${m.name.padEnd(34)} ${fmt(pps)} pps  ${fmt(cpuPps)} per CPU-s${short}`);
    }
  });
}

/**
 * Resolves with how many of `n` events `subscribe` reported, at the n-th or
 * after 5 s. The timer also keeps the event loop alive: raw-socket does not
 * while its sends are queued, and Node would otherwise exit mid-benchmark.
 */
function countEvents(n: number, subscribe: (tick: () => void) => void, unsubscribe: () => void): Promise<number> {
  return countBatches(n, (add) => subscribe(() => add(1)), unsubscribe);
}

const fmt = (pps: number) => (pps >= 1e6 ? `${(pps / 1e6).toFixed(2)} M` : `${(pps / 1e3).toFixed(0)} k`).padStart(8);

/** Calls `step` until it returns 0, or `n` packets have come. */
function drainLoop(n: number, step: () => number): number {
  let got = 0;
  for (let idle = 0; got < n && idle < 3; ) {
    const k = step();
    got += k;
    idle = k === 0 ? idle + 1 : 0;
  }
  return got;
}

/** Sends every slot of `ring` (n packets) from `sock` in batches of BATCH. */
function sendAll(sock: UdpSocket | RawSocket, ring: Ring, n: number): void {
  for (let done = 0; done < n; done += BATCH) {
    const k = Math.min(BATCH, n - done);
    if (sock instanceof UdpSocket) sock.sendBatch(ring.mem, ring.offs, ring.lens, ring.addrs, ring.ports, ring.fams, k);
    else sock.sendBatch(ring.mem, ring.offs, ring.lens, ring.addrs, ring.fams, k);
  }
}

/** Sends n packets from `ring` with the addon's sendBatch(BATCH); counts those the kernel took. */
function addonSend(name: string, sock: UdpSocket | RawSocket, ring: Ring, n: number, prep: () => void): Method {
  return { name, prep, run: () => {
    const before = sock.counters().unsent;
    sendAll(sock, ring, n);
    return n - (sock.counters().unsent - before);
  } };
}

/** Sends n packets from `ring` with koffi's sendmmsg(BATCH) on fd; counts those sent. */
function koffiSend(name: string, kMsg: KMmsg, fd: number, base: number, ring: Ring, n: number, prep: () => void): Method {
  return { name, prep, run: () => {
    let w = 0;
    for (let d = 0; d < n; d += BATCH) w += kMsg.send(fd, base, ring.offs, ring.lens, ring.addrs, ring.ports, BATCH);
    return w;
  } };
}

/** A prep that fills `ring` with `size`-byte packets to 10.1.0.2:port and sends n of them from `sock`. */
const queueTo = (sock: UdpSocket | RawSocket, ring: Ring, size: number, port: number, n: number) => () => {
  ring.fill(size, [10, 1, 0, 2], port);
  sendAll(sock, ring, n);
};

// ---- TUN -------------------------------------------------------------------

async function benchTun(net: BenchNet): Promise<void> {
  const N = 4096;
  const ring = new Ring();
  const base = baseAddress(ring.mem);
  const tun = Tun.open({ name: net.tunName, netns: net.a.name });
  await net.a.addr(tun.name, "10.9.0.1/24");
  await net.a.ip("link", "set", tun.name, "txqueuelen", String(N * 2), "up");
  // Packets reach the TUN by routing: a UDP socket in ns a sends to 10.9.0.2.
  const inj = UdpSocket.bind({ family: 4, port: 0, netns: net.a.name, sndbuf: BIG });
  const sendRing = new Ring();
  const read = (max: number) => () => tun.readBatch(ring.mem, ring.offs, ring.lens, max, 2000);
  try {
    for (const size of SIZES) {
      sendRing.fill(size - 28, [10, 9, 0, 2], 9);
      const prep = () => sendAll(inj, sendRing, N);
      await group("tun read", size, N, [
        { name: "addon readBatch(64)", prep, run: () => drainLoop(N, read(BATCH)) },
        { name: "addon readBatch(1) per packet", prep, run: () => drainLoop(N, read(1)) },
        { name: "koffi read() x64", prep, run: () => drainLoop(N, () => kReadBatch(tun.fd, base, ring.offs, ring.lens, BATCH, 2000)) },
        {
          name: "addon onReadable + readBatch(64)", prep,
          run: () => countBatches(N, (add) => tun.onReadable(() => add(read(BATCH)())), () => tun.offReadable()),
        },
      ]);

      if (size === SIZES[0]) {
        // The cost of one crossing into C and back, with a read(2) that finds
        // nothing (EAGAIN): what a batch amortises.
        const C = 20000;
        const calls = (f: () => number) => () => {
          for (let i = 0; i < C; i++) f();
          return C;
        };
        await group("empty read", 0, C, [
          { name: "addon readBatch(1) → EAGAIN", run: calls(read(1)) },
          { name: "koffi read() → EAGAIN", run: calls(() => kReadBatch(tun.fd, base, ring.offs, ring.lens, 1, 2000)) },
        ]);
      }

      // Writes: IPv4/UDP packets to 10.9.0.200, dropped by ns a after routing.
      for (let i = 0; i < ring.slots; i++) {
        ipv4Udp(ring.mem, ring.offs[i], size, [10, 9, 0, 2], [10, 9, 0, 200], 9);
        ring.lens[i] = size;
      }
      const writeAll = (per: number, f: (k: number) => number) => () => {
        let w = 0;
        for (let done = 0; done < N; done += per) w += f(Math.min(per, N - done));
        return w;
      };
      await group("tun write", size, N, [
        { name: "addon writeBatch(64)", run: writeAll(BATCH, (k) => tun.writeBatch(ring.mem, ring.offs, ring.lens, k)) },
        { name: "addon writeBatch(1) per packet", run: writeAll(1, (k) => tun.writeBatch(ring.mem, ring.offs, ring.lens, k)) },
        { name: "koffi write() x64", run: writeAll(BATCH, (k) => kWriteBatch(tun.fd, base, ring.offs, ring.lens, k)) },
      ]);
    }
  } finally {
    inj.close();
    tun.close();
  }
  // The koffi twin opens TUN devices too; check it works (not timed).
  const kfd = withNetns(net.a.name, () => kTunOpen("wbk0"));
  kClose(kfd);
}

/** Like countEvents, for callbacks that each bring a batch of `add(k)` packets. */
function countBatches(n: number, subscribe: (add: (k: number) => void) => void, unsubscribe: () => void): Promise<number> {
  return new Promise((done) => {
    let got = 0;
    const t = setTimeout(() => {
      unsubscribe();
      done(got);
    }, 5000);
    subscribe((k) => {
      got += k;
      if (got >= n) {
        clearTimeout(t);
        unsubscribe();
        done(got);
      }
    });
  });
}

// ---- UDP -------------------------------------------------------------------

/** A dgram socket created (and bound) inside a namespace: the lookup is made
 *  synchronous so bind(2) runs while the thread is still in `ns`. */
function dgramIn(ns: string, port: number, rcvbuf: number): dgram.Socket {
  return withNetns(ns, () => {
    const s = dgram.createSocket({
      type: "udp4",
      lookup: (host: string, _o: unknown, cb: (e: null, a: string, f: number) => void) => cb(null, host, 4),
    } as dgram.SocketOptions);
    s.bind({ port, address: "0.0.0.0" });
    if (rcvbuf) s.setRecvBufferSize(rcvbuf);
    return s;
  });
}

async function benchUdp(net: BenchNet): Promise<void> {
  const N = 1024; // fits a dgram socket's buffer (capped by net.core.rmem_max)
  const ring = new Ring();
  const base = baseAddress(ring.mem);
  const tx = UdpSocket.bind({ family: 4, port: 0, netns: net.a.name, sndbuf: BIG });
  const kTx = withNetns(net.a.name, () => kSocket4(false, 17, 0, BIG));
  const kMsg = new KMmsg(BATCH);
  const dTx = dgramIn(net.a.name, 0, 0);
  const rx = UdpSocket.bind({ family: 4, port: 4500, netns: net.b.name, rcvbuf: BIG });
  const kRx = withNetns(net.b.name, () => kSocket4(false, 17, 4501, BIG));
  const dRx = dgramIn(net.b.name, 4502, 8 << 20);
  try {
    for (const size of SIZES) {
      // Send: to 10.77.0.1, dropped by ns b after routing.
      const toNowhere = () => ring.fill(size, [10, 77, 0, 1], 4500);
      const payload = Buffer.alloc(size, 7);
      await group("udp send", size, N, [
        addonSend("addon sendBatch(64) sendmmsg", tx, ring, N, toNowhere),
        { name: "addon sendBatch(1) per packet", prep: toNowhere, run: () => {
          let w = 0;
          for (let i = 0; i < N; i++) w += tx.sendBatch(ring.mem, ring.offs, ring.lens, ring.addrs, ring.ports, ring.fams, 1);
          return w;
        } },
        koffiSend("koffi sendmmsg(64)", kMsg, kTx, base, ring, N, toNowhere),
        { name: "node:dgram send() per packet", run: () =>
          countEvents(N, (tick) => {
            for (let i = 0; i < N; i++) dTx.send(payload, 4500, "10.77.0.1", (e) => { if (!e) tick(); });
          }, () => {}) },
      ]);

      // Receive (drain): ns a queues N datagrams at 10.1.0.2:port first.
      const queue = (port: number) => queueTo(tx, ring, size, port, N);
      const recv = (max: number) => () => rx.recvBatch(ring.mem, ring.offs, ring.lens, ring.addrs, ring.ports, max, 2000);
      await group("udp recv", size, N, [
        { name: "addon recvBatch(64) recvmmsg", prep: queue(4500), run: () => drainLoop(N, recv(BATCH)) },
        { name: "addon recvBatch(1) per packet", prep: queue(4500), run: () => drainLoop(N, recv(1)) },
        { name: "addon onReadable + recvBatch(64)", prep: queue(4500), run: () =>
          countBatches(N, (add) => rx.onReadable(() => add(recv(BATCH)())), () => rx.offReadable()) },
        { name: "koffi recvmmsg(64)", prep: queue(4501), run: () =>
          drainLoop(N, () => kMsg.recv(kRx, base, ring.offs, ring.lens, ring.addrs, ring.ports, BATCH, 2000)) },
        { name: "node:dgram 'message' events", prep: queue(4502), run: () => {
          let tick: () => void = () => {};
          const on = () => tick();
          return countEvents(N, (t) => { tick = t; dRx.on("message", on); }, () => dRx.off("message", on));
        } },
      ]);
    }
  } finally {
    tx.close();
    rx.close();
    kClose(kTx);
    kClose(kRx);
    dTx.close();
    dRx.close();
  }
}

// ---- raw ESP ---------------------------------------------------------------

async function benchRaw(net: BenchNet): Promise<void> {
  const N = 1024;
  const ring = new Ring();
  const base = baseAddress(ring.mem);
  const kMsg = new KMmsg(BATCH);
  const tx = RawSocket.open({ family: 4, protocol: PROTO_ESP, netns: net.a.name, sndbuf: BIG });
  const kTx = withNetns(net.a.name, () => kSocket4(true, PROTO_ESP, 0, BIG));
  const rs = withNetns(net.a.name, () => rawSocket.createSocket({ protocol: PROTO_ESP }));
  try {
    for (const size of SIZES) {
      const toNowhere = () => ring.fill(size, [10, 77, 0, 1], 0);
      const payload = Buffer.alloc(size, 7);
      await group("esp send", size, N, [
        addonSend("addon raw sendBatch(64)", tx, ring, N, toNowhere),
        koffiSend("koffi raw sendmmsg(64)", kMsg, kTx, base, ring, N, toNowhere),
        { name: "raw-socket send() per packet", run: () =>
          countEvents(N, (tick) => {
            for (let i = 0; i < N; i++) rs.send(payload, 0, size, "10.77.0.1", null, (e: Error | null) => { if (!e) tick(); });
          }, () => {}) },
      ]);

      // Receive (drain). Every raw ESP socket in ns b gets its own copy of
      // each packet, so each method opens its receiver in prep and closes it
      // in post: only one exists while packets are queued.
      const queue = queueTo(tx, ring, size, 0, N);
      let rx: RawSocket | null = null;
      let kRx = -1;
      let rr: any = null;
      await group("esp recv", size, N, [
        {
          name: "addon raw recvBatch(64)",
          prep: () => { rx = RawSocket.open({ family: 4, protocol: PROTO_ESP, netns: net.b.name, rcvbuf: BIG }); queue(); },
          run: () => drainLoop(N, () => rx!.recvBatch(ring.mem, ring.offs, ring.lens, ring.addrs, BATCH, 2000)),
          post: () => rx!.close(),
        },
        {
          name: "koffi recvmmsg(64)",
          prep: () => { kRx = withNetns(net.b.name, () => kSocket4(true, PROTO_ESP, 0, BIG)); queue(); },
          run: () => drainLoop(N, () => kMsg.recv(kRx, base, ring.offs, ring.lens, ring.addrs, ring.ports, BATCH, 2000)),
          post: () => kClose(kRx),
        },
        {
          name: "raw-socket 'message' events",
          prep: () => {
            rr = withNetns(net.b.name, () => rawSocket.createSocket({ protocol: PROTO_ESP, bufferSize: 2048 }));
            rr.setOption(rawSocket.SocketLevel.SOL_SOCKET, 33 /* SO_RCVBUFFORCE */, BIG);
            queue();
          },
          run: () => countEvents(N, (tick) => rr.on("message", tick), () => rr.removeAllListeners("message")),
          post: () => rr.close(),
        },
      ]);
    }
  } finally {
    tx.close();
    kClose(kTx);
    rs.close();
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("bench:io needs root (namespaces, TUN, raw sockets)");
  const cpu = os.cpus()[0]?.model ?? "?";
  console.error(`bench/io: ${os.cpus().length} × ${cpu}, Linux ${os.release()}, Node ${process.version}, ${ROUNDS} rounds, batch ${BATCH}, MAX_BATCH ${io.MAX_BATCH}`);
  const net = await buildNet((l) => console.error(l));
  try {
    if (want("tun")) await benchTun(net);
    if (want("udp")) await benchUdp(net);
    if (want("raw")) await benchRaw(net);
  } finally {
    await net.lab.teardown();
  }
  if (JSON_OUT) {
    console.log(JSON.stringify({ cpu, cores: os.cpus().length, kernel: os.release(), node: process.version, rounds: ROUNDS, rows }, null, 2));
    return;
  }
  console.log(`| test | size (B) | method | pkts per CPU-second | pkts per second (wall) | lost |\n|---|---:|---|---:|---:|---:|`);
  for (const r of rows) {
    console.log(`| ${r.test} | ${r.size} | ${r.method} | ${fmt(r.cpuPps).trim()} | ${fmt(r.pps).trim()} | ${r.lost} |`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
