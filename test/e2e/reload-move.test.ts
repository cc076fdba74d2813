// A reload that moves a peer: ceA's config changes only ceB's address and
// port (the peer is now reached at a second address of its WAN link), while
// numbered UDP streams flow both ways. ceB's own config never changes, so it
// goes on counting where it was; ceA must move its SAs in place (same SA ids,
// sequence numbers, replay windows; host/sa/install.ts movePeer) instead of
// re-adding them from the durable reservation — which made ceA's inbound
// window jump ~2,000 ahead of ceB and dropped ceB's packets as REPLAY_OLD.
//
//   hostA ─lan─ ceA ──────── wan ──────── ceB ─lan─ hostB
//   10.1.0.2  10.1.0.1  192.0.2.1   192.0.2.2   10.2.0.1  10.2.0.2
//                                   192.0.2.12 (second address)
//
// ceB's UDP socket is bound to 192.0.2.2:4500, so the second address is made
// real by stateless nftables rewrites in ceB's namespace (a 1:1 NAT in
// front of it): 192.0.2.12:4600 in → 192.0.2.2:4500, and, once ceA has
// moved, ceB's datagrams out → from 192.0.2.12:4600. The peer is nat_t:
// false on ceA (fixed remote, no learning), so where ceA sends is exactly
// what its config says; the rewrite's counters show the traffic took the
// new path. Then the move is undone by a second reload. Nothing is timed:
// each step waits (bounded) for a number of datagrams to have passed.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Lab, waitFor, type Netns } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { assertNoNamespacesLeft } from "./io-util.ts";
import { wesp } from "./forwarder-util.ts";
import { streamsBothWays, upCe as up } from "./lifecycle-util.ts";
import { requestStatus } from "../../host/control/client.ts";

const PPS = 400;
const WAN = { A: "192.0.2.1", B: "192.0.2.2" };
const B2 = "192.0.2.12", B2_PORT = 4600;
const LAN = { A: "10.1.0", B: "10.2.0" };
const key = () => randomBytes(20).toString("hex"); // AES-128-GCM key ‖ salt

function node(me: "A" | "B", dir: string) {
  return {
    name: `ce${me}`,
    wan: [{ name: "wan", address: WAN[me], port: 4500, encap: "udp" }],
    tun: { name: "wesp0", mtu: 1400 },
    local_prefixes: [`${LAN[me]}.0/24`],
    control: { socket: join(dir, `ce${me}.sock`) },
    state_dir: join(dir, `ce${me}-state`),
    workers: 1,
  };
}

function config(me: "A" | "B", dir: string, peerAddr: string, port: number, keyIn: string, keyOut: string) {
  const other = me === "A" ? "B" : "A";
  const [spiIn, spiOut] = me === "A" ? [0x1000b, 0x1000a] : [0x1000a, 0x1000b];
  return {
    version: 1, node: node(me, dir),
    peers: [{
      name: `ce${other}`, address: peerAddr, port, nat_t: false, prefixes: [`${LAN[other]}.0/24`], mode: "tunnel",
      sas: [{ spi_in: spiIn, spi_out: spiOut, suite: "aes-128-gcm", key_in: keyIn, key_out: keyOut }],
    }],
  };
}

/** The nft rule counters in ceB: [datagrams that arrived for B2:4600, datagrams sent from B2:4600]. */
async function rewrites(ceB: Netns): Promise<[number, number]> {
  const out = await ceB.run(["nft", "list", "table", "ip", "move"]);
  const n = (tag: string) => Number(new RegExp(`counter packets (\\d+) bytes \\d+[^\\n]*comment "${tag}"`).exec(out)?.[1] ?? NaN);
  return [n("in"), n("out")];
}

describe("wesp reload moves a peer to another address and port under load", { skip: requireTools(["netns", "python3", "nft"], { why: "e2e peer move" }) }, () => {
  it("numbered streams A ↔ B across two moves: zero loss, no REPLAY_OLD, same SAs, sequence numbers continue", { timeout: 180_000 }, async () => {
    const lab = new Lab();
    try {
      const [hA, ceA, ceB, hB] = await Promise.all(["hA", "ceA", "ceB", "hB"].map((n) => lab.ns(n)));
      await lab.veth(ceA, "wan", ceB, "wan");
      await ceA.addr("wan", `${WAN.A}/24`);
      await ceB.addr("wan", `${WAN.B}/24`);
      await ceB.addr("wan", `${B2}/24`);
      for (const [h, ce, me] of [[hA, ceA, "A"], [hB, ceB, "B"]] as const) {
        await lab.veth(h, "lan", ce, "lan");
        await ce.addr("lan", `${LAN[me]}.1/24`);
        await h.addr("lan", `${LAN[me]}.2/24`);
        await h.ip("route", "add", "default", "via", `${LAN[me]}.1`);
        await ce.forwarding();
      }
      // The second address, stateless both ways (no conntrack: nothing to clash with the first path's flows).
      // IPv4 ESP-in-UDP carries UDP checksum 0 (RFC 3948 §2.1), so rewriting address and port needs no L4 fix-up.
      const nft = join(lab.dir, "move.nft");
      writeFileSync(nft, [
        "table ip move {",
        "  chain pre { type filter hook prerouting priority -300; policy accept;",
        `    ip daddr ${B2} udp dport ${B2_PORT} notrack counter ip daddr set ${WAN.B} udp dport set 4500 comment "in"`,
        "  }",
        "  chain post { type filter hook postrouting priority 100; policy accept; }",
        "}",
      ].join("\n"));
      await ceB.run(["nft", "-f", nft]);
      const snatOn = () => ceB.run(["nft", "add", "rule", "ip", "move", "post", "ip", "saddr", WAN.B, "udp", "sport", "4500", "counter",
        "ip", "saddr", "set", B2, "udp", "sport", "set", String(B2_PORT), "comment", '"out"']);

      const kab = key(), kba = key();
      const dir = lab.dir;
      const cfgA = join(dir, "a.json"), cfgB = join(dir, "b.json");
      const sockA = join(dir, "ceA.sock"), sockB = join(dir, "ceB.sock");
      const write = (f: string, doc: object) => writeFileSync(f, JSON.stringify(doc, null, 1), { mode: 0o600 });
      write(cfgA, config("A", dir, WAN.B, 4500, kba, kab));
      write(cfgB, config("B", dir, WAN.A, 4500, kab, kba));
      await up(ceA, cfgA);
      await up(ceB, cfgB);
      const streams = await streamsBothWays(hA, hB, `${LAN.A}.2`, `${LAN.B}.2`, PPS, dir);

      // ceA's SAs with ceB: the same records throughout, numbers only growing.
      type Snap = { outId: number; inId: number; seq: number; outPkts: number; inPkts: number; inSeq: number };
      let prev: Snap | null = null;
      // `flowing`: the streams run, so every number must have grown (else: never gone back).
      const snap = async (what: string, flowing = true): Promise<any> => {
        const st: any = await requestStatus(sockA);
        const b = st.peers.find((p: { name: string }) => p.name === "ceB");
        assert.ok(b?.outbound && b.inbound.length === 1, `${what}: ceA holds ceB`);
        const s: Snap = { outId: b.outbound.saId, inId: b.inbound[0].saId, seq: b.outbound.seq, outPkts: b.outbound.counters.packets, inPkts: b.inbound[0].counters.packets, inSeq: b.inbound[0].seq };
        if (prev) {
          const why = `${what}: before ${JSON.stringify(prev)}, now ${JSON.stringify(s)}`;
          assert.deepEqual([s.outId, s.inId], [prev.outId, prev.inId], `${why}: SAs kept`);
          const more = (x: number, y: number) => (flowing ? x > y : x >= y);
          assert.ok(more(s.seq, prev.seq) && more(s.outPkts, prev.outPkts) && more(s.inPkts, prev.inPkts) && more(s.inSeq, prev.inSeq), `${why}: numbers go on`);
          assert.equal(s.seq, s.outPkts + 1, `${why}: one number per packet, none skipped (no jump to the reservation)`);
          assert.equal(b.inbound[0].counters.dropped, 0, `${why}: ceA dropped none of ceB's packets (${JSON.stringify(b.inbound[0].counters.drops)})`);
        }
        prev = s;
        return b;
      };
      const reload = async (addr: string, port: number, what: string) => {
        write(cfgA, config("A", dir, addr, port, kba, kab));
        const r = await wesp("reload", "--control", sockA);
        assert.equal(r.code, 0, `${what}: wesp reload exit ${r.code}: ${r.stderr}${r.stdout}`);
        assert.match(r.stdout, /added 0 \[\], removed 0 \[\], changed 1 \[ceB\], unchanged 0/, what);
      };
      await snap("start");
      assert.deepEqual(await rewrites(ceB), [0, NaN], "nothing on the second address yet");

      // Move 1: ceB at B2:4600 in ceA's config; ceB's datagrams leave from B2:4600 as well.
      await reload(B2, B2_PORT, "move to the second address");
      await snatOn();
      let inB2 = 0, outB2 = 0;
      await waitFor(async () => ([inB2, outB2] = await rewrites(ceB), inB2 > 200 && outB2 > 200), "200 datagrams each way on the new path", 30_000);
      const moved = await snap("moved");
      assert.deepEqual([moved.address, moved.port, moved.configured], [B2, B2_PORT, { address: B2, port: B2_PORT }]);

      // Move 2: back to the first address; then 200 more packets each way through ceA's same SAs.
      await reload(WAN.B, 4500, "move back");
      await ceB.run(["nft", "flush", "chain", "ip", "move", "post"]);
      const base = prev!;
      await waitFor(async () => {
        const b = (await requestStatus(sockA)).peers.find((p: { name: string }) => p.name === "ceB") as any;
        return b.outbound.counters.packets > base.outPkts + 200 && b.inbound[0].counters.packets > base.inPkts + 200;
      }, "200 datagrams each way after the move back", 30_000);
      const back = await snap("moved back");
      assert.deepEqual([back.address, back.port], [WAN.B, 4500]);

      const { nAB, nBA, gotB, gotA } = await streams.finish();
      const stB: any = await requestStatus(sockB);
      const a = stB.peers.find((p: { name: string }) => p.name === "ceA");
      const end = await snap("end", false);
      console.log(`peer move: A→B sent ${nAB}, received ${gotB.count} (${gotB.distinct} distinct); B→A sent ${nBA}, received ${gotA.count} (${gotA.distinct} distinct); ` +
        `ceA's SA to ceB seq → ${end.outbound.seq}; via the second address: ${inB2} in, ${outB2} out`);
      assert.deepEqual(gotB, { count: nAB, distinct: nAB, max: nAB }, "A → B: every datagram once");
      assert.deepEqual(gotA, { count: nBA, distinct: nBA, max: nBA }, "B → A: every datagram once");
      assert.equal(end.inbound[0].counters.drops.REPLAY_OLD ?? 0, 0, "ceA: no REPLAY_OLD");
      assert.equal(a.inbound[0].counters.dropped, 0, `ceB dropped none of ceA's packets (${JSON.stringify(a.inbound[0].counters.drops)})`);
    } finally {
      await lab.teardown();
      assertNoNamespacesLeft(lab);
    }
  });
});
