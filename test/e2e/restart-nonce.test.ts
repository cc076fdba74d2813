// Issue 6, "Must show" 1: kill -9 never makes wesp reuse a (key, sequence
// number) pair, and what was captured before a restart is a replay after it.
//
//   hostA ─lan─ ceA ══ wan ══ ceB ─lan─ hostB      (forwarder-util.ts's lab)
//
// ceA and ceB run `wesp up` with static AEAD keys, ESP in UDP, each with its
// own state_dir in the lab's temp dir. A UDP blaster in hostA sends numbered
// datagrams to a counting listener in hostB for the whole run, while ceA's
// wesp is killed with SIGKILL at random moments (≥ 20 times) and restarted
// with the same config and state_dir. tcpdump records ceB's side of the WAN
// link throughout. Then every ESP packet ceA sent is parsed from the capture
// (UDP 4500 payload: SPI = bytes 0..3, sequence number = 4..7):
//   - no (SPI, seq) pair appears twice;
//   - every packet sent after a restart has a sequence number above every
//     packet sent before it (per SPI, by capture time against kill time).
// Replays: ESP packets captured before ceA's last restart are sent again to
// ceB from ceA's WAN address and port 4500 (a raw socket: wesp holds the
// port) — first to the ceB that kept running, then to a ceB killed with
// SIGKILL and restarted. Each time ceB's status must count every injected
// packet as a REPLAY / REPLAY_OLD drop on the inbound SA, and hostB's
// listener must receive nothing more.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Lab, waitFor, type LabProcess } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { startCapture } from "../helpers/tshark.ts";
import { espPackets } from "../helpers/esp_pcap.ts";
import { assertNoNamespacesLeft } from "./io-util.ts";
import { ADDR, buildSites, configs, status, type Case, type Sites } from "./forwarder-util.ts";
import { injectUdp, received, streamReceiver, streamSender, upCe as up } from "./lifecycle-util.ts";

const RESTARTS = Number(process.env.WESP_RESTARTS ?? 20);
const BLAST_PORT = 9000;
/** Datagrams per second from hostA. */
const BLAST_PPS = 2000;
/** Most packets replayed per injection (spread over the pre-restart capture, the last ones included). */
const REPLAY_MAX = 300;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** REPLAY + REPLAY_OLD (and every drop) of ceB's inbound SA from ceA. */
async function inboundDrops(sock: string): Promise<{ replay: number; dropped: number; packets: number; drops: Record<string, number> }> {
  const st = await status(sock);
  const sa = st.peers[0].inbound[0];
  const d = sa.counters.drops;
  return { replay: d.REPLAY + d.REPLAY_OLD, dropped: sa.counters.dropped, packets: sa.counters.packets, drops: d };
}

const CASES: Case[] = [
  { name: "aes-128-gcm", mode: "tunnel", outer: 4, encap: "udp", suite: "aes-128-gcm" },
  { name: "chacha20-poly1305", mode: "tunnel", outer: 4, encap: "udp", suite: "chacha20-poly1305" },
];

describe("wesp up: kill -9 never reuses a (key, sequence number), and old packets are replays after a restart", { skip: requireTools(["netns", "python3", "tcpdump"], { why: "e2e restart nonce" }) }, () => {
  for (const c of CASES) {
    it(`${c.name}, ESP in UDP: ${RESTARTS} × kill -9 of ceA under load, then replays to a running and to a restarted ceB`, { timeout: 240_000 }, async () => {
      const lab = new Lab();
      const procs: LabProcess[] = [];
      try {
        const s: Sites = await buildSites(lab);
        const { a, b } = configs(c, lab.dir);
        const cfgA = join(lab.dir, "a.json"), cfgB = join(lab.dir, "b.json");
        writeFileSync(cfgA, JSON.stringify(a, null, 1), { mode: 0o600 });
        writeFileSync(cfgB, JSON.stringify(b, null, 1), { mode: 0o600 });
        const sockB = join(lab.dir, "ceB.sock");
        const spiAB = (a as any).peers[0].sas[0].spi_out as number;

        let pb = await up(s.ceB, cfgB);
        let pa = await up(s.ceA, cfgA);
        const cap = await startCapture(s.ceB, "wan", join(lab.dir, "wan.pcap"), ["udp", "port", "4500"]);
        const rx = await streamReceiver(s.hostB, ADDR.hostB.v4, BLAST_PORT);
        procs.push(rx);
        const tx = streamSender(s.hostA, ADDR.hostB.v4, BLAST_PORT, BLAST_PPS, join(lab.dir, "stop-blast"));
        procs.push(tx);
        await waitFor(() => received(rx).count > 100, "the stream through ceA → ceB", 20_000);

        // kill -9 at random moments, each restart with the same config and state_dir
        const kills: { killed: number; restarted: number }[] = [];
        let stalls = 0;
        for (let k = 0; k < RESTARTS; k++) {
          await sleep(100 + Math.random() * 700);
          await pa.stop("SIGKILL");
          const killed = Date.now();
          pa = await up(s.ceA, cfgA);
          kills.push({ killed, restarted: Date.now() });
          // the stream comes through the new instance (ceB accepts what it now sends)
          const before = received(rx).count;
          try {
            await waitFor(() => received(rx).count > before + 50, `the stream after restart ${k + 1}`, 10_000, 20);
          } catch (e) {
            stalls++;
            const d = await inboundDrops(sockB);
            throw new Error(`${(e as Error).message}: ceB's inbound SA drops ${JSON.stringify(d.drops)}\nceA: ${pa.stderr.slice(-2000)}`);
          }
        }
        await sleep(500);
        await tx.stop("SIGKILL");
        await sleep(500);
        const delivered = received(rx);

        // ---- the wire: every ESP packet ceA sent, as ceB's link saw it
        const pcap = await cap.stop();
        const pkts = espPackets(readFileSync(pcap)).filter((p) => p.src === ADDR.ceAwan.v4);
        // A loaded machine may make tcpdump miss a few; the checks below stay exact on what it saw.
        const capDropped = cap.stats?.dropped ?? NaN;
        assert.ok(capDropped <= pkts.length / 100, `tcpdump dropped too many packets: ${JSON.stringify(cap.stats)}`);
        assert.ok(pkts.length > RESTARTS * 100, `ESP packets captured from ceA: ${pkts.length}`);
        assert.ok(pkts.every((p) => p.spi === spiAB), "one SPI from ceA");
        const pairs = new Map<string, number>();
        const dups: string[] = [];
        for (const p of pkts) {
          const key = `${p.spi}:${p.seq}`;
          const n = (pairs.get(key) ?? 0) + 1;
          pairs.set(key, n);
          if (n === 2) dups.push(key);
        }
        assert.deepEqual(dups.slice(0, 20), [], `(SPI, seq) pairs sent twice: ${dups.length}`);
        let order = 0;
        for (let i = 1; i < pkts.length; i++) if (pkts[i].seq <= pkts[i - 1].seq) order++;
        assert.equal(order, 0, "sequence numbers strictly increase along the capture (one sender, one link)");
        const jumps: number[] = [];
        for (const [k, { killed, restarted }] of kills.entries()) {
          const before = pkts.filter((p) => p.t < killed);
          const after = pkts.filter((p) => p.t > restarted - 1);
          assert.ok(before.length > 0 && after.length > 0, `packets around restart ${k + 1}`);
          const maxBefore = Math.max(...before.map((p) => p.seq));
          const minAfter = Math.min(...after.map((p) => p.seq));
          assert.ok(minAfter > maxBefore, `restart ${k + 1}: first seq after (${minAfter}) is above every seq before (${maxBefore})`);
          jumps.push(minAfter - maxBefore);
        }
        const stB = await inboundDrops(sockB);
        console.log(`${c.name}: ${RESTARTS} kill -9 restarts of ceA; ${pkts.length} ESP packets from ceA captured (tcpdump missed ${capDropped}), ${pairs.size} distinct (SPI, seq), seq ${pkts[0].seq}..${pkts.at(-1)!.seq}; ` +
          `resume jumps min ${Math.min(...jumps)} max ${Math.max(...jumps)}; hostB got ${delivered.count} datagrams (${delivered.distinct} distinct); ceB inbound drops ${JSON.stringify(Object.fromEntries(Object.entries(stB.drops).filter(([, v]) => v > 0)))}`);

        // ---- replays: what ceA sent before its last restart, sent again to ceB
        const lastKill = kills.at(-1)!.killed;
        const old = pkts.filter((p) => p.t < lastKill);
        const step = Math.max(1, Math.floor(old.length / REPLAY_MAX));
        const pick = old.filter((_, i) => i % step === 0 || i >= old.length - 20).slice(-REPLAY_MAX);
        const inject = () => injectUdp(s.ceA, { addr: ADDR.ceAwan.v4, port: 4500 }, { addr: ADDR.ceBwan.v4, port: 4500 }, pick.map((p) => p.esp));

        const replayInto = async (what: string): Promise<{ injected: number; dropped: number }> => {
          const d0 = await inboundDrops(sockB);
          const n0 = received(rx).count;
          const injected = await inject();
          assert.equal(injected, pick.length);
          await waitFor(async () => (await inboundDrops(sockB)).dropped - d0.dropped >= injected, `ceB (${what}) to count ${injected} drops`, 10_000, 100).catch(() => {});
          const d1 = await inboundDrops(sockB);
          await sleep(500);
          const n1 = received(rx).count;
          assert.equal(d1.replay - d0.replay, injected, `${what}: every injected packet is a replay drop (drops before ${JSON.stringify(d0.drops)}, after ${JSON.stringify(d1.drops)})`);
          assert.equal(d1.packets, d0.packets, `${what}: none accepted by the SA`);
          assert.equal(n1, n0, `${what}: hostB received nothing more`);
          return { injected, dropped: d1.replay - d0.replay };
        };
        const r1 = await replayInto("ceB still running");
        await pb.stop("SIGKILL");
        pb = await up(s.ceB, cfgB);
        const r2 = await replayInto("ceB after kill -9 and restart");
        console.log(`${c.name}: replayed ${r1.injected} pre-restart packets to the running ceB: ${r1.dropped} replay drops; to the restarted ceB: ${r2.injected} injected, ${r2.dropped} replay drops; hostB received none`);

        // and ceB restarted still carries new traffic from ceA
        const n0 = received(rx).count;
        const tx2 = streamSender(s.hostA, ADDR.hostB.v4, BLAST_PORT, 500, join(lab.dir, "stop-blast-2"));
        procs.push(tx2);
        await waitFor(() => received(rx).count > n0 + 50, "the stream through the restarted ceB", 15_000, 50).catch(async (e) => {
          throw new Error(`${(e as Error).message}: ceB's inbound SA drops ${JSON.stringify((await inboundDrops(sockB)).drops)}`);
        });
        await tx2.stop("SIGKILL");
      } finally {
        for (const p of procs) await p.stop("SIGKILL");
        await lab.teardown();
        assertNoNamespacesLeft(lab);
      }
    });
  }
});
