// Issue 7: two CEs that are both configured to initiate to each other, started at
// the same moment. The crossing is forced: ceB drops every IKE datagram (nftables)
// until ceA's IKE_SA_INIT request and ceA's answer to ceB's own have been counted,
// so each IKE_SA_INIT meets the other's outstanding one once the drop is lifted:
//
//   hostA ─lan─ ceA ══ wan ══ ceB ─lan─ hostB      (forwarder-util.ts's lab)
//
// Both IKE SAs come up on both CEs (each logs one as initiator and one as
// responder); the manager's rule (docs/ike.md, "Both ends initiating at once")
// deletes one, the same on both sides: one IKE SA and one CHILD_SA are left, their
// SPIs the same on both CEs and in the data planes, nobody goes down, and ping
// and TCP go both ways.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Lab, tcpEcho, waitFor, type Netns } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { assertNoNamespacesLeft } from "./io-util.ts";
import { ADDR, buildSites } from "./forwarder-util.ts";
import { ikeNode, ikeOf, ikeUp, writeConfig } from "./ike-util.ts";
import { upCe } from "./lifecycle-util.ts";

const PSK = "wesp-both-initiate-e2e-key";
const NETS = { a: ["10.1.0.0/24"], b: ["10.2.0.0/24"] };

// At ceB, from ceA's port 500: IKE_SA_INIT (exchange 34 at UDP payload byte 18) requests and
// responses (flags byte 19, bit 0x20) counted apart; every IKE and NAT-T datagram dropped.
const BLOCK = `table inet wcl_block {
  chain in {
    type filter hook input priority 0;
    udp sport 500 @th,208,8 34 @th,218,1 0 counter name init_req drop
    udp sport 500 @th,208,8 34 @th,218,1 1 counter name init_resp drop
    udp dport { 500, 4500 } drop
  }
  counter init_req {}
  counter init_resp {}
}`;

const packets = async (ns: Netns, name: string) =>
  Number(/packets (\d+)/.exec(await ns.run(["nft", "list", "counter", "inet", "wcl_block", name]))?.[1] ?? 0);

describe("wesp up: both CEs initiate to each other at once", { skip: requireTools(["netns", "nft", "python3"], { why: "e2e duplicate IKE SAs" }) }, () => {
  it("two IKE SAs come up, one is deleted by the rule both ends apply, one IKE SA and one CHILD_SA stay, the same on both CEs; ping and TCP both ways", async () => {
    const lab = new Lab();
    try {
      const s = await buildSites(lab);
      const dir = lab.dir;
      const peer = (name: string, address: string, prefixes: string[]) => ({ name, address, prefixes, initiate: true, encap: "udp" as const, psk: PSK });
      const cfgA = writeConfig(dir, "a.json", ikeNode(dir, "ceA", ADDR.ceAwan.v4, NETS.a, [peer("ceB", ADDR.ceBwan.v4, NETS.b)]));
      const cfgB = writeConfig(dir, "b.json", ikeNode(dir, "ceB", ADDR.ceBwan.v4, NETS.b, [peer("ceA", ADDR.ceAwan.v4, NETS.a)]));
      await s.ceB.run(["nft", "-f", "-"], { input: BLOCK });
      const [a, b] = await Promise.all([upCe(s.ceA, cfgA), upCe(s.ceB, cfgB)]);
      try {
        // both have initiated: ceA's request seen, and ceA's answer to ceB's request
        await waitFor(async () => (await packets(s.ceB, "init_req")) > 0 && (await packets(s.ceB, "init_resp")) > 0, "both IKE_SA_INIT requests out", 20_000, 100);
        await s.ceB.run(["nft", "delete", "table", "inet", "wcl_block"]);
        const established = (p: { stderr: string }) => [...p.stderr.matchAll(/IKE SA \S+ established as (initiator|responder)/g)].map((m) => m[1]).sort();
        await waitFor(() => established(a).length === 2 && established(b).length === 2, "two IKE SAs up at each CE", 30_000, 100);
        assert.deepEqual([established(a), established(b)], [["initiator", "responder"], ["initiator", "responder"]]);
        // one of them is deleted, by its responder; the other CE hears it
        await waitFor(() => /IKE SA \S+ deleted by the peer/.test(a.stderr + b.stderr) && /IKE SA \S+ deleted\n/.test(a.stderr + b.stderr), "the redundant IKE SA deleted", 15_000, 100);
        const [stA, stB] = [await ikeUp(`${dir}/ceA.sock`, "ceB"), await ikeUp(`${dir}/ceB.sock`, "ceA")];
        const [ia, ib] = [ikeOf(stA, "ceB"), ikeOf(stB, "ceA")];
        assert.equal(ia.ikeSa, ib.ikeSa, "the same IKE SA kept on both sides");
        assert.notEqual(ia.role, ib.role);
        assert.equal(ia.childSas.length, 1, JSON.stringify(ia));
        assert.equal(ib.childSas.length, 1, JSON.stringify(ib));
        assert.deepEqual([ia.childSas[0].spiIn, ia.childSas[0].spiOut], [ib.childSas[0].spiOut, ib.childSas[0].spiIn], "the CHILD_SA's SPIs mirror");
        for (const [st, name, c] of [[stA, "ceB", ia], [stB, "ceA", ib]] as const) {
          const dp = st.peers.find((p: any) => p.name === name);
          assert.deepEqual(dp.inbound.map((x: any) => x.spi), [c.childSas[0].spiIn], "the data plane holds only the kept pair");
          assert.equal(dp.outbound.spi, c.childSas[0].spiOut);
        }
        assert.deepEqual(await s.hostA.ping(ADDR.hostB.v4, 3), { sent: 3, received: 3 }, "ping A→B");
        assert.deepEqual(await s.hostB.ping(ADDR.hostA.v4, 3), { sent: 3, received: 3 }, "ping B→A");
        const ab = await tcpEcho(s.hostB, ADDR.hostB.v4, s.hostA, 1 << 18, 5201);
        assert.deepEqual(ab, { sent: 1 << 18, echoed: 1 << 18, equal: true }, "TCP A→B→A");
        assert.doesNotMatch(a.stderr + b.stderr, /down:|retry in|alarm/, "nobody went down");
      } catch (err) {
        console.error(`--- ceA ---\n${a.stderr}\n--- ceB ---\n${b.stderr}`);
        throw err;
      } finally {
        await a.stop("SIGTERM", 10_000);
        await b.stop("SIGTERM", 10_000);
      }
    } finally {
      await lab.teardown();
      assertNoNamespacesLeft(lab);
    }
  });
});
