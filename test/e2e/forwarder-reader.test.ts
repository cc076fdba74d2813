// wesp up with each TUN reader (config node.tun.reader, docs/io.md "io_uring
// TUN reader"): "auto" reads the TUN through a multishot io_uring read
// (Linux 6.7), "readv" one read(2) per packet. Both must carry ping and TCP
// both ways through ESP in UDP with TSO super-packets on the TUN, and
// `wesp status` must say which reader each TUN queue uses.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { release } from "node:os";
import { tcpEcho } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { ADDR, startPair, status, stopPair, useSites, wesp, type Case, type Sites } from "./forwarder-util.ts";

const BYTES = 4 << 20;
const [major, minor] = release().split(".").map(Number);
/** IORING_OP_READ_MULTISHOT came with Linux 6.7; before it "auto" falls back to readv. */
const MULTISHOT = major > 6 || (major === 6 && minor >= 7);

const base: Omit<Case, "name"> = { mode: "tunnel", outer: 4, encap: "udp", suite: "aes-128-gcm" };

describe("wesp up: the TUN readers", { skip: requireTools(["netns", "python3"], { why: "e2e TUN readers" }) }, () => {
  let s!: Sites;
  useSites((x) => (s = x));

  for (const reader of ["auto", "readv"] as const) {
    it(`tun.reader ${reader}: ping and TCP both ways; status names the reader`, { timeout: 150_000 }, async () => {
      const r = await startPair(s, { ...base, name: reader, tunReader: reader }, `reader-${reader}`);
      try {
        for (const fam of ["v4", "v6"] as const) {
          assert.equal((await s.hostA.ping(ADDR.hostB[fam], 2)).received, 2, `hostA → hostB ${fam}`);
          const ab = await tcpEcho(s.hostB, ADDR.hostB[fam], s.hostA, BYTES);
          assert.deepEqual(ab, { sent: BYTES, echoed: BYTES, equal: true }, `TCP ${fam} hostA → hostB and back`);
        }
        for (const sock of [r.sockA, r.sockB]) {
          const st = await status(sock);
          const tun = st.sockets.find((x: { name: string }) => x.name.startsWith("tun/"));
          const want = reader === "readv" ? { reader: "readv", why: "tun.reader readv" } : MULTISHOT ? { reader: "io_uring" } : tun.reader;
          assert.deepEqual(tun.reader, want);
          assert.equal(tun.truncated, 0);
          assert.ok(st.offloads.tun.superPackets > 0, `TSO super-packets read: ${JSON.stringify(st.offloads.tun)}`);
          assert.equal(st.offloads.tun.malformed, 0);
          const p = st.peers[0];
          assert.equal(p.outbound.counters.dropped, 0, JSON.stringify(p.outbound.counters.drops));
          assert.equal(p.inbound[0].counters.dropped, 0, JSON.stringify(p.inbound[0].counters.drops));
          // the worker's reservation journals reach status (static SAs with a state_dir keep durable state)
          assert.deepEqual(Object.keys(st.journals ?? {}).sort(), ["count", "oldestSeconds", "pendingFiles"], JSON.stringify(st.journals));
        }
        const text = await wesp("status", "--control", r.sockA);
        assert.match(text.stdout, reader === "readv" ? /reader readv \(tun\.reader readv\)/ : MULTISHOT ? /reader io_uring/ : /reader /);
      } finally {
        await stopPair(s, r);
      }
    });
  }
});
