// Issue 9 item 2 for IKE peers: node.workers = 2 with IKEv2 (RFC 9611 style
// per-resource CHILD_SAs; host/ike/manager.ts "fill"). Two CEs on the lab of
// forwarder-util.ts, each `wesp up` with an IKE peer:
//
//   hostA ─lan─ ceA ══ wan ══ ceB ─lan─ hostB
//
// Both with two workers: one IKE SA carries two CHILD_SAs with the same
// selectors, one per worker on each side; every inbound SPI is ≡ its worker
// (mod 2), so the kernel steers each ESP packet to the worker holding its SA
// (NO_SA stays 0) and no SA is in two workers. Numbered UDP streams both ways,
// over 16 flows each (spread over the TUN queues), run while every CHILD_SA is
// rekeyed at least once and the IKE SA too: not one datagram lost or doubled,
// each worker of each CE carried the peer's traffic both ways, and a rekeyed
// CHILD_SA stays on its worker.
//
// Ends with different worker counts still carry every flow: a 2-worker
// initiator makes two CHILD_SAs that a 1-worker responder both holds on its
// one worker; a 2-worker responder of a 1-worker initiator makes the CHILD_SA
// for its second worker itself (after FILL_DELAY_MS).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { waitFor } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { ADDR, status, useSites, wesp, type Sites } from "./forwarder-util.ts";
import { ikeNode, ikeOf, writeConfig } from "./ike-util.ts";
import { received, sentCount, streamReceiver, streamSender, upCe } from "./lifecycle-util.ts";

const PSK = "wesp-ike-workers-e2e-psk";
const NETS = { a: ["10.1.0.0/24", "fd00:1::/64"], b: ["10.2.0.0/24", "fd00:2::/64"] };
const FLOWS = 16; // 2 · 2^-16 that one direction's flows all hash to one TUN queue
const PPS = 400;

type Sa = { spi: number; counters: { packets: number } };
type PeerWorker = { worker: number; outbound: Sa | null; inbound: Sa[] };
type Pair = { spiIn: number; spiOut: number; worker?: number };

function configs(s: Sites, tag: string, workers: { a: number; b: number }, ike: Record<string, unknown> = {}) {
  const dir = s.lab.dir;
  const node = (name: "ceA" | "ceB", n: number, peer: object) => {
    const doc = ikeNode(dir, name, name === "ceA" ? ADDR.ceAwan.v4 : ADDR.ceBwan.v4, name === "ceA" ? NETS.a : NETS.b, [peer as never]) as { node: { workers: number; state_dir: string } };
    doc.node.workers = n;
    doc.node.state_dir = join(dir, `${tag}-${name}-state`);
    return doc;
  };
  return {
    a: writeConfig(dir, `${tag}-a.json`, node("ceA", workers.a, { name: "ceB", address: ADDR.ceBwan.v4, prefixes: NETS.b, initiate: true, encap: "udp", psk: PSK, ike })),
    b: writeConfig(dir, `${tag}-b.json`, node("ceB", workers.b, { name: "ceA", address: ADDR.ceAwan.v4, prefixes: NETS.a, initiate: false, encap: "udp", psk: PSK, ike })),
  };
}

/** The CHILD_SAs of `peer` as IKE lists them. */
async function pairs(sock: string, peer: string): Promise<Pair[]> {
  return (ikeOf(await status(sock), peer)?.childSas ?? []) as Pair[];
}

/** Whether each of the `n` workers holds an outbound SA of `peer`. */
async function sending(sock: string, peer: string, n: number): Promise<boolean> {
  const p = (await status(sock)).peers.find((x: any) => x.name === peer);
  if (!p) return false;
  return n === 1 ? !!p.outbound : ((p.workers ?? []) as PeerWorker[]).filter((w) => w.outbound).length === n;
}

/**
 * Per worker: packets it sealed and opened since it started (its global counters; the one
 * peer is all its traffic). The SAs' own counters would miss what rekeyed-away SAs carried.
 */
function perWorker(st: any): { out: number; in: number }[] {
  return (st.perWorker as { global: { inbound: { packets: number }; outbound: { packets: number } } }[]).map((w) => ({ out: w.global.outbound.packets, in: w.global.inbound.packets }));
}

/** Every worker holds the peer's SAs of its own: inbound SPIs ≡ worker (mod n), none in two workers. */
function checkWorkers(st: any, peer: string, n: number, side: string): void {
  const p = st.peers.find((x: any) => x.name === peer);
  const ws: PeerWorker[] = n === 1 ? [{ worker: 0, outbound: p.outbound, inbound: p.inbound }] : p.workers;
  assert.equal(ws.length, n, `${side}: one entry per worker`);
  const spis = new Set<number>();
  ws.forEach((w, i) => {
    assert.ok(w.outbound, `${side} worker ${i}: an outbound SA of the peer`);
    assert.ok(w.inbound.length >= 1, `${side} worker ${i}: an inbound SA of the peer`);
    for (const s of w.inbound) assert.equal(s.spi % n, i, `${side} worker ${i}: inbound SPI 0x${s.spi.toString(16)} steers to it`);
    for (const s of [w.outbound!, ...w.inbound]) {
      assert.ok(!spis.has(s.spi), `${side}: SPI 0x${s.spi.toString(16)} in two workers`);
      spis.add(s.spi);
    }
  });
  assert.equal(st.global.inbound.drops.NO_SA ?? 0, 0, `${side}: an ESP packet reached a worker without its SA`);
  assert.equal(st.global.inbound.drops.REPLAY ?? 0, 0, `${side}: replay drops (a packet opened by two workers?)`);
}

describe("IKEv2 with node.workers > 1: one CHILD_SA per worker", { skip: requireTools(["netns", "python3"], { why: "e2e wesp up with IKE and two workers" }) }, () => {
  let s!: Sites;
  useSites((x) => (s = x));

  it("2 and 2 workers: a CHILD_SA per worker, rekeys of each under 16-flow streams both ways lose nothing", { timeout: 180_000 }, async () => {
    const dir = s.lab.dir;
    // CHILD_SAs rekeyed 7–9 s after they came up, the IKE SA after 15–17 s
    const cfg = configs(s, "w22", { a: 2, b: 2 }, { lifetime: { child_seconds: 12, ike_seconds: 20, rekey_margin: 3, rekey_jitter: 2 } });
    const b = await upCe(s.ceB, cfg.b);
    const a = await upCe(s.ceA, cfg.a);
    const sockA = join(dir, "ceA.sock"), sockB = join(dir, "ceB.sock");
    const stop = join(dir, "w22-stop");
    const rxB = await streamReceiver(s.hostB, ADDR.hostB.v4, 9100);
    const rxA = await streamReceiver(s.hostA, ADDR.hostA.v4, 9101);
    try {
      await waitFor(async () => (await pairs(sockA, "ceB")).length === 2 && (await pairs(sockB, "ceA")).length === 2, "two CHILD_SAs on both CEs", 30_000, 100);
      const first = { a: await pairs(sockA, "ceB"), b: await pairs(sockB, "ceA") };
      for (const [side, ps] of Object.entries(first)) {
        assert.deepEqual(ps.map((p) => p.worker).sort(), [0, 1], `${side}: one CHILD_SA per worker`);
        for (const p of ps) assert.equal(p.spiIn % 2, p.worker, `${side}: inbound SPI names its worker`);
      }
      const ikeA = ikeOf(await status(sockA), "ceB");
      assert.equal(ikeA.ikeSa, ikeOf(await status(sockB), "ceA").ikeSa, "one IKE SA carries both");
      // the SAs are in the data plane before traffic starts
      await waitFor(async () => (await sending(sockA, "ceB", 2)) && (await sending(sockB, "ceA", 2)), "both workers of both CEs hold an outbound SA", 10_000, 100);

      const txA = streamSender(s.hostA, ADDR.hostB.v4, 9100, PPS, stop, FLOWS);
      const txB = streamSender(s.hostB, ADDR.hostA.v4, 9101, PPS, stop, FLOWS);
      // every CHILD_SA of the first set rekeyed (gone from the list), and the IKE SA
      const firstSpis = first.a.map((p) => p.spiIn);
      await waitFor(async () => {
        const now = await pairs(sockA, "ceB");
        const st = ikeOf(await status(sockA), "ceB");
        return now.length >= 2 && now.every((p) => !firstSpis.includes(p.spiIn)) && st.ikeSa !== ikeA.ikeSa;
      }, "every CHILD_SA and the IKE SA rekeyed", 60_000, 200);
      // a little more traffic on the new ones, then stop and drain
      await new Promise((r) => setTimeout(r, 1500));
      writeFileSync(stop, "");
      await Promise.all([txA.exited, txB.exited]);
      const sent = { ab: sentCount(txA), ba: sentCount(txB) };
      await waitFor(() => received(rxB).count >= sent.ab && received(rxA).count >= sent.ba, "the streams drained", 5000, 50).catch(() => {});
      const got = { ab: received(rxB), ba: received(rxA) };
      assert.ok(sent.ab > 2000 && sent.ba > 2000, `streams ran through the rekeys (${JSON.stringify(sent)})`);
      assert.deepEqual([got.ab.count, got.ab.distinct], [sent.ab, sent.ab], `A→B: every datagram once, across ${FLOWS} flows and the rekeys`);
      assert.deepEqual([got.ba.count, got.ba.distinct], [sent.ba, sent.ba], `B→A: every datagram once`);

      const [stA, stB] = [await status(sockA), await status(sockB)];
      checkWorkers(stA, "ceB", 2, "ceA");
      checkWorkers(stB, "ceA", 2, "ceB");
      for (const [side, st, peer] of [["ceA", stA, "ceB"], ["ceB", stB, "ceA"]] as const) {
        for (const [i, w] of perWorker(st).entries()) assert.ok(w.out > 100 && w.in > 100, `${side} worker ${i} carried the peer's traffic both ways: ${JSON.stringify(perWorker(st))}`);
        const now = ikeOf(st, peer).childSas as Pair[];
        assert.deepEqual([...new Set(now.map((p) => p.worker))].sort(), [0, 1], `${side}: after the rekeys still one CHILD_SA per worker (${JSON.stringify(now)})`);
      }
      const text = await wesp("status", "--control", sockA);
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stdout, /worker 1 /, "wesp status shows each worker's SAs");
      assert.doesNotMatch(a.stderr + b.stderr, /refused its SAs|refused \(internal\)/);
    } finally {
      writeFileSync(stop, "");
      await rxA.stop();
      await rxB.stop();
      await a.stop("SIGTERM", 10_000);
      await b.stop("SIGTERM", 10_000);
    }
  });

  for (const w of [{ a: 2, b: 1 }, { a: 1, b: 2 }]) {
    it(`${w.a} workers initiating to ${w.b}: every flow carried, every worker has a CHILD_SA`, { timeout: 120_000 }, async () => {
      const dir = s.lab.dir;
      const cfg = configs(s, `w${w.a}${w.b}`, w);
      const b = await upCe(s.ceB, cfg.b);
      const a = await upCe(s.ceA, cfg.a);
      const sockA = join(dir, "ceA.sock"), sockB = join(dir, "ceB.sock");
      try {
        const n = Math.max(w.a, w.b);
        await waitFor(async () => (await pairs(sockA, "ceB")).length >= n && (await pairs(sockB, "ceA")).length >= n, `${n} CHILD_SAs`, 30_000, 100);
        await waitFor(async () => (await sending(sockA, "ceB", w.a)) && (await sending(sockB, "ceA", w.b)), "every worker holds an outbound SA", 10_000, 100);
        for (const fam of ["v4", "v6"] as const) {
          assert.deepEqual(await s.hostA.ping(ADDR.hostB[fam], 3), { sent: 3, received: 3 }, `ping ${fam} A→B`);
        }
        // 16 flows each way: whichever worker each lands on seals with its own SA
        const stop = join(dir, `w${w.a}${w.b}-stop`);
        const rxB = await streamReceiver(s.hostB, ADDR.hostB.v4, 9100);
        const rxA = await streamReceiver(s.hostA, ADDR.hostA.v4, 9101);
        const txA = streamSender(s.hostA, ADDR.hostB.v4, 9100, 200, stop, 16);
        const txB = streamSender(s.hostB, ADDR.hostA.v4, 9101, 200, stop, 16);
        await new Promise((r) => setTimeout(r, 3000));
        writeFileSync(stop, "");
        await Promise.all([txA.exited, txB.exited]);
        await waitFor(() => received(rxB).count >= sentCount(txA) && received(rxA).count >= sentCount(txB), "the streams drained", 5000, 50).catch(() => {});
        assert.equal(received(rxB).distinct, sentCount(txA), "A→B: every datagram");
        assert.equal(received(rxA).distinct, sentCount(txB), "B→A: every datagram");
        await rxA.stop();
        await rxB.stop();
        const [stA, stB] = [await status(sockA), await status(sockB)];
        checkWorkers(stA, "ceB", w.a, "ceA");
        checkWorkers(stB, "ceA", w.b, "ceB");
      } finally {
        await a.stop("SIGTERM", 10_000);
        await b.stop("SIGTERM", 10_000);
      }
    });
  }
});
