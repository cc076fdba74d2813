// Issue 7: three CEs in a full mesh over IKEv2, every SA negotiated by `wesp up`,
// and one of them killed with SIGKILL in the middle of traffic, then restarted.
//
//          ceA (10.10.1.0/24)
//           │ 172.16.1.1
//   core ───┼─── router (172.16.k.254)
//           │ 172.16.2.1 / 172.16.3.1
//          ceB (10.10.2.0/24)   ceC (10.10.3.0/24)
//
// ceA initiates to ceB and ceC, ceB to ceC (ceB is the responder towards ceA
// and the initiator towards ceC: both ways back after its restart are tried).
// Numbered UDP streams run from ceA and ceC to ceB's TUN address throughout;
// tcpdump records ceB's WAN link. ceB's wesp is killed (no DELETE), started
// again with the same config, and must come back with fresh IKE and CHILD_SAs:
//   - towards ceC it initiates, with INITIAL_CONTACT: ceC drops the stale SAs
//     at once (RFC 7296 §2.4), its log says so;
//   - towards ceA it waits: ceA's liveness check goes unanswered, ceA declares
//     it dead and sets up afresh;
//   - on the wire, no ESP packet after the restart carries an SPI used before it;
//   - both streams flow again, and the survivors hold only the new CHILD_SA.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Lab, waitFor, type Netns, type LabProcess } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { startCapture } from "../helpers/tshark.ts";
import { espPackets } from "../helpers/esp_pcap.ts";
import { assertNoNamespacesLeft } from "./io-util.ts";
import { status } from "./forwarder-util.ts";
import { ikeNode, ikeOf, ikeUp, writeConfig, type IkeChild } from "./ike-util.ts";
import { received, streamReceiver, streamSender, upCe } from "./lifecycle-util.ts";

const PSK = "wesp-ike-mesh-e2e-shared-key";
const CES = ["A", "B", "C"] as const;
type Ce = (typeof CES)[number];
const k = (c: Ce) => CES.indexOf(c) + 1;
const wanOf = (c: Ce) => `172.16.${k(c)}.1`;
const netOf = (c: Ce) => `10.10.${k(c)}.0/24`;
const tunOf = (c: Ce) => `10.10.${k(c)}.1`;
/** Who initiates between two CEs: the first in CES order. */
const initiates = (me: Ce, peer: Ce) => k(me) < k(peer);
/**
 * Liveness checks every 2 s between ceA and ceB (how ceA finds ceB gone); between
 * ceB and ceC every 60 s, so that ceC still holds the stale IKE SA when the
 * restarted ceB's INITIAL_CONTACT arrives (what must drop it then).
 */
const ikeBlock = (me: Ce, p: Ce) => ({ dpd: me !== "C" && p !== "C" ? 2 : 60, retry: { min: 1, max: 4, alarm_after: 8 } });

function config(dir: string, me: Ce): string {
  const peers = CES.filter((p) => p !== me).map((p) => ({ name: `ce${p}`, address: wanOf(p), prefixes: [netOf(p)], initiate: initiates(me, p), encap: "udp" as const, psk: PSK, ike: ikeBlock(me, p) }));
  const doc = ikeNode(dir, `ce${me}`, wanOf(me), [netOf(me)], peers) as { node: { tun: { addresses?: string[] } } };
  doc.node.tun.addresses = [`${tunOf(me)}/24`];
  return writeConfig(dir, `ce${me}.json`, doc);
}

const sock = (dir: string, c: Ce) => join(dir, `ce${c}.sock`);

describe("wesp up: three CEs in an IKEv2 full mesh, one killed and restarted", { skip: requireTools(["netns", "python3", "tcpdump"], { why: "e2e IKE mesh restart" }) }, () => {
  it("comes back with fresh SPIs; the survivors drop the stale SAs (INITIAL_CONTACT, liveness); traffic resumes", async () => {
    const lab = new Lab();
    const procs = new Map<Ce, LabProcess>();
    try {
      const core = await lab.ns("core");
      const ns = new Map<Ce, Netns>();
      for (const c of CES) {
        const n = await lab.ns(`ce${c}`);
        ns.set(c, n);
        await lab.veth(core, `to${c}`, n, "wan");
        await core.addr(`to${c}`, `172.16.${k(c)}.254/24`);
        await n.addr("wan", `${wanOf(c)}/24`);
        await n.ip("route", "add", "default", "via", `172.16.${k(c)}.254`);
      }
      await core.forwarding();
      const cfg = new Map(CES.map((c) => [c, config(lab.dir, c)]));
      for (const c of CES) procs.set(c, await upCe(ns.get(c)!, cfg.get(c)!));
      const pairs = CES.flatMap((me) => CES.filter((p) => p !== me).map((p) => [me, p] as const));
      const before = new Map<string, IkeChild>();
      for (const [me, p] of pairs) before.set(`${me}${p}`, ikeOf(await ikeUp(sock(lab.dir, me), `ce${p}`), `ce${p}`).childSas[0]);
      for (const [me, p] of pairs) assert.equal(before.get(`${me}${p}`)!.spiIn, before.get(`${p}${me}`)!.spiOut, `${me}↔${p} mirror`);

      const capture = await startCapture(core, "toB", join(lab.dir, "b.pcap"), ["udp", "port", "4500"]);
      const stop = join(lab.dir, "stop");
      const rx = { A: await streamReceiver(ns.get("B")!, "0.0.0.0", 9001), C: await streamReceiver(ns.get("B")!, "0.0.0.0", 9003) };
      const tx = [streamSender(ns.get("A")!, tunOf("B"), 9001, 400, stop), streamSender(ns.get("C")!, tunOf("B"), 9003, 400, stop)];
      await waitFor(() => received(rx.A).count > 200 && received(rx.C).count > 200, "both streams reach ceB", 20_000, 50);

      const killedAt = Date.now();
      await procs.get("B")!.stop("SIGKILL");
      procs.set("B", await upCe(ns.get("B")!, cfg.get("B")!));
      const fresh = (me: Ce, p: Ce) => (c: IkeChild) => c.spiIn === before.get(`${me}${p}`)!.spiIn || c.spiOut === before.get(`${me}${p}`)!.spiOut;
      for (const [me, p] of pairs.filter(([x, y]) => x === "B" || y === "B")) await ikeUp(sock(lab.dir, me), `ce${p}`, 60_000, fresh(me, p));
      const upAt = Date.now();
      const mark = { A: received(rx.A).count, C: received(rx.C).count };
      await waitFor(() => received(rx.A).count > mark.A + 200 && received(rx.C).count > mark.C + 200, "both streams flow again", 20_000, 50);
      writeFileSync(stop, "");
      await Promise.all(tx.map((p) => p.exited));
      await capture.stop();

      // the survivors: only the new CHILD_SA towards ceB, the old ones gone
      for (const me of ["A", "C"] as const) {
        const st = await status(sock(lab.dir, me));
        const ike = ikeOf(st, "ceB");
        assert.equal(ike.childSas.length, 1, `ce${me} holds one CHILD_SA with ceB: ${JSON.stringify(ike)}`);
        const dp = st.peers.find((p: any) => p.name === "ceB");
        assert.deepEqual(dp.inbound.map((s: any) => s.spi), [ike.childSas[0].spiIn], `ce${me}'s data plane holds only the new inbound SA`);
      }
      const log = { A: procs.get("A")!.stderr, C: procs.get("C")!.stderr };
      assert.match(log.C, /peer ceB: IKE SA \S+ deleted by the peer \(initial-contact\)/, "ceC dropped the stale IKE SA on ceB's INITIAL_CONTACT");
      assert.match(log.A, /peer ceB: down: timeout: no response to liveness check/, "ceA found ceB dead by a liveness check");
      assert.match(procs.get("B")!.stderr, /peer ceC: IKE SA \S+ established as initiator/);

      // the wire: ESP to ceB (the streams) before the kill and after the new SAs were up share no SPI
      const esp = espPackets(readFileSync(capture.pcap));
      const spis = (f: (t: number) => boolean) => new Set(esp.filter((p) => f(p.t)).map((p) => p.spi));
      const old = spis((t) => t < killedAt), now = spis((t) => t > upAt);
      assert.ok(old.size >= 2 && now.size >= 2, `ESP from both peers before and after: ${old.size} / ${now.size} SPIs`);
      assert.deepEqual([...now].filter((s) => old.has(s)), [], "no SPI of before the restart on the wire after it");
      for (const [me, p] of [["A", "B"], ["C", "B"]] as const) assert.ok(old.has(before.get(`${me}${p}`)!.spiOut), `ce${me}'s old outbound SPI was on the wire`);
    } finally {
      for (const p of procs.values()) await p.stop("SIGTERM", 10_000);
      await lab.teardown();
      assertNoNamespacesLeft(lab);
    }
  });
});
