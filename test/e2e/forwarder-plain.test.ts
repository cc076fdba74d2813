// wesp up with plain IP-in-IP and GRE (no ESP) on a trusted WAN port — the
// MPLS-facing case of docs/config.md — over IPv4 and IPv6, both inner
// families (so IP-in-IP uses protocols 4 and 41), ping and TCP.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { tcpEcho } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { ADDR, useSites, startPair, status, stopPair, type Case, type Sites } from "./forwarder-util.ts";

const TCP_BYTES = 1 << 20;

const CASES: Case[] = [
  { name: "plain GRE with key 42 over IPv4", mode: "gre", outer: 4, encap: "udp", gre: { key: 42 } },
  { name: "plain IP-in-IP over IPv6", mode: "ipip", outer: 6, encap: "udp" },
];

describe("wesp up: plain tunnels on a trusted port", { skip: requireTools(["netns", "python3", "sysctl"], { why: "e2e wesp up: plain tunnels" }) }, () => {
  let s!: Sites;
  useSites((x) => (s = x));

  CASES.forEach((c, k) => {
    it(c.name, { timeout: 120_000 }, async () => {
      const r = await startPair(s, c, `plain${k}`);
      try {
        for (const fam of ["v4", "v6"] as const) {
          assert.equal((await s.hostA.ping(ADDR.hostB[fam], 2)).received, 2, `hostA → hostB ${fam}`);
          assert.equal((await s.hostB.ping(ADDR.hostA[fam], 2)).received, 2, `hostB → hostA ${fam}`);
        }
        const fam = k === 0 ? "v6" : "v4";
        const t = await tcpEcho(s.hostB, ADDR.hostB[fam], s.hostA, TCP_BYTES);
        assert.deepEqual(t, { sent: TCP_BYTES, echoed: TCP_BYTES, equal: true }, `TCP ${fam}`);
        const st = await status(r.sockB);
        const p = st.peers[0];
        assert.equal(p.mode, c.mode);
        assert.equal(p.encap, "plain");
        assert.ok(p.outbound.counters.packets >= 4 + TCP_BYTES / 1500);
        assert.ok(p.inbound[0].counters.packets >= 4 + TCP_BYTES / 1500);
        assert.equal(p.inbound[0].counters.dropped, 0, JSON.stringify(p.inbound[0].counters.drops));
        // IP-in-IP over IPv6 carries IPv4 as protocol 4 and IPv6 as 41: both sockets saw traffic
        if (c.mode === "ipip") {
          for (const proto of [4, 41]) {
            const row = st.sockets.find((x: { name: string }) => x.name === `wan/raw6-${proto}`);
            assert.ok(row && row.received > 0 && row.sent > 0, `raw socket for protocol ${proto}: ${JSON.stringify(row)}`);
          }
        }
      } finally {
        await stopPair(s, r);
      }
    });
  });
});
