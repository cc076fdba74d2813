// The I/O layer from node:worker_threads, as the pipeline uses it: one worker
// per core, each with its own SO_REUSEPORT socket or TUN queue, opened from
// the worker's own thread inside a namespace, polled on the worker's own
// event loop; workers terminated while polling; and a worker blocked in
// waitReadable woken by a Waker from the main thread.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { readlinkSync } from "node:fs";
import { Worker } from "node:worker_threads";
import { Lab, waitFor, type Netns } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { UdpSocket } from "../../host/net/udp_linux.ts";
import { Waker } from "../../host/io/wait_linux.ts";
import { assertNoNamespacesLeft, payload, Ring, v4 } from "./io-util.ts";

/** Starts io-worker.ts in a worker thread (tsx registered there first) and tallies its messages. */
function startWorker(data: object) {
  const tsx = import.meta.resolve("tsx/esm/api");
  const entry = new URL("./io-worker.ts", import.meta.url).href;
  const w = new Worker(`import(${JSON.stringify(tsx)}).then((t) => { t.register(); return import(${JSON.stringify(entry)}); })`, {
    eval: true,
    workerData: data,
  });
  const state = { w, ready: null as null | { nsBefore: string; nsAfter: string }, got: 0, stopped: false, error: null as unknown };
  w.on("message", (m) => {
    if (m.ready) state.ready = m;
    if (typeof m.got === "number") state.got += m.got;
    if (m.stopped) state.stopped = true;
  });
  w.on("error", (e) => (state.error = e));
  return state;
}

/** Sends `flows` × 2 datagrams from `flows` sockets (distinct source ports) in `ns` to dst:port. */
function sendFlows(ns: string, dst: number[], port: number, flows: number): void {
  const r = new Ring(2);
  for (let i = 0; i < 2; i++) {
    r.put(i, payload(i, 32));
    r.addr(i, dst, 4, port);
  }
  for (let f = 0; f < flows; f++) {
    const s = UdpSocket.bind({ family: 4, port: 0, netns: ns });
    try {
      assert.equal(s.sendBatch(r.mem, r.offs, r.lens, r.addrs, r.ports, r.fams, 2), 2);
    } finally {
      s.close();
    }
  }
}

describe("I/O from worker threads", { skip: requireTools(["netns"], { why: "e2e I/O from worker threads" }) }, () => {
  const lab = new Lab();
  let w: Netns;
  const mainNs = readlinkSync("/proc/thread-self/ns/net");

  before(async () => {
    w = await lab.ns("w");
  });
  after(async () => {
    await lab.teardown();
    assertNoNamespacesLeft(lab);
  });

  it("two workers with SO_REUSEPORT sockets split 32 flows between them; terminating them mid-poll is clean", async () => {
    const ws = [0, 1].map(() => startWorker({ mode: "udp-poll", ns: w.name, port: 4700 }));
    try {
      await waitFor(() => ws.every((s) => s.ready || s.error), "workers ready");
      for (const s of ws) {
        assert.equal(s.error, null);
        assert.equal(s.ready!.nsAfter, s.ready!.nsBefore, "the worker thread is back in its namespace");
      }
      assert.equal(readlinkSync("/proc/thread-self/ns/net"), mainNs, "the main thread never moved");
      sendFlows(w.name, [127, 0, 0, 1], 4700, 32);
      await waitFor(() => ws[0].got + ws[1].got >= 64, "64 datagrams across the workers");
      assert.equal(ws[0].got + ws[1].got, 64);
      assert.ok(ws[0].got > 0 && ws[1].got > 0, `spread ${ws[0].got}/${ws[1].got}`);
    } finally {
      // Polls are still active: the env cleanup hook must close them.
      const codes = await Promise.all(ws.map((s) => s.w.terminate()));
      assert.deepEqual(codes, [1, 1]);
    }
    // The port is free again: the workers' sockets died with them.
    const again = UdpSocket.bind({ family: 4, port: 4700, netns: w.name });
    again.close();
  });

  it("each worker owns one queue of a multi-queue TUN; together they read every flow", async () => {
    const ws = [0, 1].map(() => startWorker({ mode: "tun-poll", ns: w.name, tunName: "wwq0" }));
    try {
      await waitFor(() => ws.every((s) => s.ready || s.error), "workers ready");
      for (const s of ws) assert.equal(s.error, null);
      await w.addr("wwq0", "10.37.0.1/24");
      await w.up("wwq0");
      sendFlows(w.name, v4("10.37.0.2") as unknown as number[], 9, 32);
      await waitFor(() => ws[0].got + ws[1].got >= 64, "64 packets across the queues");
      assert.equal(ws[0].got + ws[1].got, 64);
      assert.ok(ws[0].got > 0 && ws[1].got > 0, `spread ${ws[0].got}/${ws[1].got}`);
    } finally {
      await Promise.all(ws.map((s) => s.w.terminate()));
    }
    // The device went away with its last queue.
    const r = await w.exec(["ip", "link", "show", "wwq0"]);
    assert.notEqual(r.code, 0);
  });

  it("a worker blocked in waitReadable reads what arrives and stops at once when its Waker is signalled", async () => {
    const waker = Waker.create();
    const s = startWorker({ mode: "blocking", ns: w.name, port: 4701, wakeFd: waker.fd });
    try {
      await waitFor(() => s.ready || s.error, "worker ready");
      assert.equal(s.error, null);
      sendFlows(w.name, [127, 0, 0, 1], 4701, 2);
      await waitFor(() => s.got >= 4, "4 datagrams");
      const exited = once(s.w, "exit");
      waker.signal();
      const [code] = await exited;
      assert.equal(code, 0, "the worker ended by itself, not by terminate()");
      assert.equal(s.stopped, true);
      assert.equal(s.got, 4);
    } finally {
      await s.w.terminate();
      waker.close();
    }
  });

  it("terminate() stops a worker blocked in waitReadable(-1) without a Waker, releasing its socket", { timeout: 20_000 }, async () => {
    const waker = Waker.create(); // never signalled
    const s = startWorker({ mode: "blocking", ns: w.name, port: 4702, wakeFd: waker.fd });
    try {
      await waitFor(() => s.ready || s.error, "worker ready");
      assert.equal(s.error, null);
      // Resolves only once the thread has run JS again, i.e. left the wait.
      assert.equal(await s.w.terminate(), 1);
      assert.equal(s.stopped, false);
      const again = UdpSocket.bind({ family: 4, port: 4702, netns: w.name });
      again.close();
    } finally {
      waker.close();
    }
  });
});
