// node.workers = 2 across kill -9 (docs/forwarder.md "Workers"; the rule of
// host/sa/seq_store.ts): each worker's SA — worker 1's with SPI + 1 and an
// HKDF-derived key (host/sa/worker_sas.ts) — has its own durable sequence
// state, so no (SPI, sequence number) pair, hence no (key, nonce) pair
// (RFC 4106 §3.1, RFC 7634 §2), is ever sent twice, and no replay window
// reopens (RFC 4303 §3.4.3), whichever worker sealed or opened it.
//
//   hostA ─lan─ ceA ══ wan ══ ceB ─lan─ hostB      (forwarder-util.ts's lab)
//
// ceA and ceB run `wesp up` with `workers: 2`, ESP in UDP over IPv4. Numbered
// UDP streams run both ways for the whole test, each over 16 source ports, so
// the multi-queue TUN spreads them over both workers of each CE. tcpdump
// records ceB's side of the WAN link. ceA is killed with SIGKILL mid-stream
// and restarted with the same config and state_dir, several times. Then:
//   - on the wire, for each of ceA's outbound SPIs (the configured one and
//     + 1): no (SPI, seq) pair appears twice, seq strictly increases along the
//     capture, and every packet after a restart is above every packet before;
//   - ceB (the peer) never saw one again: its per-worker inbound SAs count no
//     REPLAY / REPLAY_OLD drop, and neither site host got a datagram twice;
//   - traffic resumed after every restart, both ways, on both workers' SAs;
//   - ceA's restarted inbound windows did not reopen: ESP packets ceB sent
//     before the last kill (up to what each of ceA's worker SAs had accepted)
//     sent again to ceA are each counted as a replay drop on that worker's SA,
//     none accepted, and hostA receives nothing more.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Lab, waitFor, type LabProcess } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { startCapture } from "../helpers/tshark.ts";
import { espPackets, type EspPacket } from "../helpers/esp_pcap.ts";
import { assertNoNamespacesLeft } from "./io-util.ts";
import { ADDR, buildSites, configs, status, type Case, type Sites } from "./forwarder-util.ts";
import { injectUdp, received, streamReceiver, streamSender, upCe as up } from "./lifecycle-util.ts";

const RESTARTS = Number(process.env.WESP_RESTARTS ?? 4);
/** Source ports per stream: 16 flows all hashed to one TUN queue is a 2^-15 chance. */
const FLOWS = 16;
/** Datagrams per second, each way. */
const PPS = 1000;
/** Most packets replayed per worker SA (spread over what it had accepted, the last ones included). */
const REPLAY_MAX = 120;
const PORT = { toB: 9100, toA: 9101 };

const CASE: Case = { name: "ESP in UDP over IPv4", mode: "tunnel", outer: 4, encap: "udp", workers: 2 };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Sa { spi: number; seq: number; counters: { packets: number; drops: Record<string, number> } }

/** Each worker's SAs of the one peer (`wesp status`: peers[0].workers[i]). */
async function workerSas(sock: string): Promise<{ out: Sa; in: Sa }[]> {
  const st = await status(sock);
  assert.equal(st.workers, 2, "status shows two workers");
  return (st.peers[0].workers as { outbound: Sa; inbound: Sa[] }[]).map((w) => ({ out: w.outbound, in: w.inbound[0] }));
}

const replays = (sa: Sa) => sa.counters.drops.REPLAY + sa.counters.drops.REPLAY_OLD;

/** Packets by SPI, in capture order. */
function bySpi(pkts: EspPacket[]): Map<number, EspPacket[]> {
  const m = new Map<number, EspPacket[]>();
  for (const p of pkts) m.set(p.spi, [...(m.get(p.spi) ?? []), p]);
  return m;
}

/** The (SPI, seq) pairs that occur more than once. */
function repeats(pkts: EspPacket[]): string[] {
  const seen = new Set<string>(), twice: string[] = [];
  for (const p of pkts) {
    const k = `0x${p.spi.toString(16)}:${p.seq}`;
    if (seen.has(k)) twice.push(k);
    seen.add(k);
  }
  return twice;
}

/** Up to `max` of `pkts`, spread over them, the last 20 always among them. */
function sample(pkts: EspPacket[], max: number): EspPacket[] {
  const step = Math.max(1, Math.floor(pkts.length / max));
  return pkts.filter((_, i) => i % step === 0 || i >= pkts.length - 20).slice(-max);
}

describe("wesp up, node.workers = 2: kill -9 never repeats a worker SA's (SPI, seq), and no replay window reopens", { skip: requireTools(["netns", "python3", "tcpdump"], { why: "e2e workers restart" }) }, () => {
  it(`${CASE.name}: ${RESTARTS} × kill -9 of ceA under two-way traffic on both workers`, { timeout: 240_000 }, async () => {
    const lab = new Lab();
    const procs: LabProcess[] = [];
    try {
      const s: Sites = await buildSites(lab);
      const { a, b } = configs(CASE, lab.dir);
      const cfgA = join(lab.dir, "a.json"), cfgB = join(lab.dir, "b.json");
      writeFileSync(cfgA, JSON.stringify(a, null, 1), { mode: 0o600 });
      writeFileSync(cfgB, JSON.stringify(b, null, 1), { mode: 0o600 });
      const sockA = join(lab.dir, "ceA.sock"), sockB = join(lab.dir, "ceB.sock");
      const sa = (a as any).peers[0].sas[0] as { spi_out: number; spi_in: number };
      const spisA = [sa.spi_out, sa.spi_out + 1], spisB = [sa.spi_in, sa.spi_in + 1];

      procs.push(await up(s.ceB, cfgB));
      let pa = await up(s.ceA, cfgA);
      procs.push(pa);
      const cap = await startCapture(s.ceB, "wan", join(lab.dir, "wan.pcap"), ["udp", "port", "4500"]);
      const rxB = await streamReceiver(s.hostB, ADDR.hostB.v4, PORT.toB);
      const rxA = await streamReceiver(s.hostA, ADDR.hostA.v4, PORT.toA);
      procs.push(rxA, rxB);
      const stop = join(lab.dir, "stop-streams");
      procs.push(streamSender(s.hostA, ADDR.hostB.v4, PORT.toB, PPS, stop, FLOWS), streamSender(s.hostB, ADDR.hostA.v4, PORT.toA, PPS, stop, FLOWS));
      const flowing = async (what: string) => {
        const [nB, nA] = [received(rxB).count, received(rxA).count];
        await waitFor(() => received(rxB).count > nB + 100 && received(rxA).count > nA + 100, what, 20_000, 20).catch(async (e) => {
          throw new Error(`${(e as Error).message}: ceA ${JSON.stringify(await workerSas(sockA).catch(() => null))}, ceB ${JSON.stringify(await workerSas(sockB))}`);
        });
      };
      await flowing("both streams through ceA and ceB");
      await waitFor(async () => (await workerSas(sockA)).every((w) => w.out.counters.packets > 0 && w.in.counters.packets > 0), "both of ceA's workers carrying traffic both ways", 20_000, 100);

      // kill -9 mid-stream, each restart with the same config and state_dir
      const kills: { killed: number; restarted: number }[] = [];
      let lastIn: Sa[] = [];
      let bAtLastKill: Sa[] = [];
      const resumed: string[] = [];
      for (let k = 0; k < RESTARTS; k++) {
        await sleep(300 + Math.random() * 700);
        lastIn = (await workerSas(sockA)).map((w) => w.in);
        await pa.stop("SIGKILL");
        const killed = Date.now();
        bAtLastKill = (await workerSas(sockB)).map((w) => w.in);
        pa = await up(s.ceA, cfgA);
        procs.push(pa);
        kills.push({ killed, restarted: Date.now() });
        await flowing(`both streams after restart ${k + 1}`);
        resumed.push(`${kills[k].restarted - killed}+${Date.now() - kills[k].restarted}ms`);
      }
      // ... and flowing on each worker's SAs, both ways, after the last one
      await waitFor(async () => (await workerSas(sockA)).every((w) => w.out.counters.packets > 0 && w.in.counters.packets > 0), "both of ceA's workers carrying traffic both ways after the last restart", 20_000, 100);
      const bNow = (await workerSas(sockB)).map((w) => w.in);

      writeFileSync(stop, "");
      await sleep(500);
      const pcap = await cap.stop();
      const all = espPackets(readFileSync(pcap));
      const fromA = all.filter((p) => p.src === ADDR.ceAwan.v4), fromB = all.filter((p) => p.src === ADDR.ceBwan.v4);
      // A loaded machine may make tcpdump miss a few; the checks below stay exact on what it saw.
      assert.ok((cap.stats?.dropped ?? NaN) <= all.length / 100, `tcpdump dropped too many packets: ${JSON.stringify(cap.stats)}`);

      // ---- the wire: ceA never sent one (SPI, seq) twice, on either worker's SA
      const outA = bySpi(fromA);
      assert.deepEqual([...outA.keys()].sort(), spisA, "ceA sends on both workers' SAs (configured SPI and + 1) and no other");
      assert.deepEqual([...bySpi(fromB).keys()].sort(), spisB, "ceB sends on both workers' SAs");
      const twice = repeats(fromA);
      assert.deepEqual(twice.slice(0, 20), [], `(SPI, seq) pairs ceA sent twice: ${twice.length}`);
      const jumps: string[] = [];
      for (const [spi, ps] of outA) {
        const back = ps.findIndex((p, i) => i > 0 && p.seq <= ps[i - 1].seq);
        assert.equal(back, -1, `SPI 0x${spi.toString(16)}: seq goes back along the capture at ${ps[back]?.seq} (after ${ps[back - 1]?.seq})`);
        for (const [k, { killed, restarted }] of kills.entries()) {
          const before = ps.filter((p) => p.t < killed), after = ps.filter((p) => p.t > restarted - 1);
          assert.ok(before.length > 0 && after.length > 0, `SPI 0x${spi.toString(16)}: packets before and after restart ${k + 1} (${before.length}, ${after.length})`);
          const maxBefore = Math.max(...before.map((p) => p.seq)), minAfter = Math.min(...after.map((p) => p.seq));
          assert.ok(minAfter > maxBefore, `SPI 0x${spi.toString(16)}, restart ${k + 1}: first seq after (${minAfter}) is above every seq before (${maxBefore})`);
          jumps.push(`0x${spi.toString(16)}+${minAfter - maxBefore}`);
        }
      }

      // ---- the peer: traffic from both of ceA's workers again, and nothing came to it twice
      bNow.forEach((w, i) => assert.ok(w.counters.packets > bAtLastKill[i].counters.packets, `ceB worker ${i}'s inbound SA accepts again after the last restart`));
      const bEnd = await workerSas(sockB);
      bEnd.forEach((w, i) => assert.equal(replays(w.in), 0, `ceB worker ${i}'s inbound SA (SPI 0x${w.in.spi.toString(16)}) counted replays: ${JSON.stringify(w.in.counters.drops)}`));
      const [gotB, gotA] = [received(rxB), received(rxA)];
      assert.equal(gotB.count, gotB.distinct, "hostB got no datagram twice");
      assert.equal(gotA.count, gotA.distinct, "hostA got no datagram twice");
      console.log(`${RESTARTS} kill -9 restarts of ceA (workers: 2): ${fromA.length} ESP packets from ceA captured on SPIs ${spisA.map((x) => "0x" + x.toString(16))}, ${fromB.length} from ceB ` +
        `(tcpdump missed ${cap.stats?.dropped}); restart+resume ${resumed.join(" ")}; seq jumps ${jumps.join(" ")}; hostB got ${gotB.count}, hostA ${gotA.count} datagrams, none twice`);

      // ---- ceA's restarted inbound windows: what its worker SAs had accepted before the last kill is a replay
      const inB = bySpi(fromB);
      const aBefore = await workerSas(sockA);
      const picks = lastIn.map((w, i) => {
        assert.equal(w.spi, spisB[i], `ceA worker ${i}'s inbound SPI`);
        return sample((inB.get(w.spi) ?? []).filter((p) => p.seq <= w.seq), REPLAY_MAX);
      });
      picks.forEach((p, i) => assert.ok(p.length > 20, `ESP packets of SPI 0x${spisB[i].toString(16)} ceA had accepted before the last kill: ${p.length}`));
      const nA = received(rxA).count;
      const injected = await injectUdp(s.ceB, { addr: ADDR.ceBwan.v4, port: 4500 }, { addr: ADDR.ceAwan.v4, port: 4500 }, picks.flat().map((p) => p.esp));
      assert.equal(injected, picks.flat().length);
      const counted = async () => (await workerSas(sockA)).every((w, i) => replays(w.in) - replays(aBefore[i].in) >= picks[i].length);
      await waitFor(counted, "ceA to count the replayed packets", 10_000, 100).catch(() => {});
      const aAfter = await workerSas(sockA);
      await sleep(500);
      aAfter.forEach((w, i) => {
        assert.equal(replays(w.in) - replays(aBefore[i].in), picks[i].length, `ceA worker ${i}: every replayed packet of SPI 0x${w.in.spi.toString(16)} is a replay drop (before ${JSON.stringify(aBefore[i].in.counters.drops)}, after ${JSON.stringify(w.in.counters.drops)})`);
        assert.equal(w.in.counters.packets, aBefore[i].in.counters.packets, `ceA worker ${i}: no replayed packet accepted`);
      });
      assert.equal(received(rxA).count, nA, "hostA received nothing more");
      console.log(`replayed ${picks.map((p) => p.length).join(" + ")} pre-kill packets of SPIs ${spisB.map((x) => "0x" + x.toString(16))} to the restarted ceA: all replay drops`);
    } finally {
      for (const p of procs) await p.stop("SIGKILL");
      await lab.teardown();
      assertNoNamespacesLeft(lab);
    }
  });
});
