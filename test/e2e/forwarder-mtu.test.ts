// The path-MTU answer (issue 3 item 3): a peer whose path MTU is below what
// the TUN accepts. A site host sending with DF (IPv4) or any IPv6 packet too
// big for the SA gets ICMP "fragmentation needed" (RFC 1191) / ICMPv6
// "Packet Too Big" (RFC 8201) carrying the usable inner MTU — checked by what
// the host's own kernel learns from it — and TCP, which sets DF, completes a
// transfer only because of it. An IPv4 packet with DF clear is fragmented by
// wesp before encryption (RFC 791) and arrives whole.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { tcpEcho } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { ADDR, useSites, espInnerMtu, learnedMtu, startPair, status, stopPair, udpNoDf, type Case, type Sites } from "./forwarder-util.ts";

const TCP_BYTES = 1 << 20;

const CASES: { c: Case; inner: number }[] = [
  {
    c: { name: "ESP in UDP over IPv4, AES-256-GCM, path MTU 1360, TUN MTU 1400", mode: "tunnel", outer: 4, encap: "udp", suite: "aes-256-gcm", mtu: 1360, tunMtu: 1400 },
    inner: espInnerMtu(1360, { outerIp: 20, udp: true, iv: 8, icv: 16, align: 4 }),
  },
  {
    c: { name: "raw ESP over IPv6, AES-128-CBC + HMAC-SHA-256, path MTU 1420, TUN MTU 1500", mode: "tunnel", outer: 6, encap: "raw", suite: "aes-128-cbc-hmac-sha256", mtu: 1420, tunMtu: 1500 },
    inner: espInnerMtu(1420, { outerIp: 40, udp: false, iv: 16, icv: 16, align: 16 }),
  },
];

describe("wesp up: ICMP too big", { skip: requireTools(["netns", "python3", "sysctl"], { why: "e2e wesp up: ICMP too big" }) }, () => {
  let s!: Sites;
  useSites((x) => (s = x));

  CASES.forEach(({ c, inner }, k) => {
    it(c.name, { timeout: 120_000 }, async () => {
      assert.ok(inner >= 1280 && inner < (c.tunMtu ?? 1400), `the case needs ${inner} between 1280 and the TUN MTU`);
      const r = await startPair(s, c, `mtu${k}`);
      try {
        const tun = c.tunMtu ?? 1400;
        // DF clear: wesp fragments the inner IPv4 packet; the far host reassembles it
        assert.equal(await udpNoDf(s.hostA, s.hostB, ADDR.hostB.v4, tun - 28), tun - 28, "datagram with DF clear arrives whole");
        let st = await status(r.sockA);
        assert.ok(st.host.fragmented >= 1, `fragmented ${st.host.fragmented}`);

        // DF set / IPv6: the sender's kernel learns exactly the usable inner MTU from our answer
        assert.equal(await learnedMtu(s.hostA, ADDR.hostB.v4, tun - 28), inner, "IPv4 frag-needed MTU");
        assert.equal(await learnedMtu(s.hostA, ADDR.hostB.v6, tun - 48), inner, "IPv6 packet-too-big MTU");
        assert.equal(await learnedMtu(s.hostB, ADDR.hostA.v6, tun - 48), inner, "from the other side too");

        // TCP sets DF: without the answer its full-size segments would vanish
        const t = await tcpEcho(s.hostB, ADDR.hostB.v4, s.hostA, TCP_BYTES, 5002);
        assert.deepEqual(t, { sent: TCP_BYTES, echoed: TCP_BYTES, equal: true });

        st = await status(r.sockA);
        assert.ok(st.host.icmpTooBig >= 2, `ICMP errors sent ${st.host.icmpTooBig}`);
        const out = st.peers[0].outbound.counters;
        assert.ok(out.drops.TOO_BIG >= st.host.icmpTooBig, "each answer stands for a TOO_BIG drop");
        // Nothing the SA sent was over its path MTU: no fragments of the outer packets on the wire
        assert.equal(st.sockets.find((x: { name: string }) => x.name.startsWith("wan/")).failed, 0);
      } finally {
        await stopPair(s, r);
      }
    });
  });
});
