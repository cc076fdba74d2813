// Packets a reader holds (host/pipeline/pipeline.ts, Pipeline.reader): what
// the kernel handed over in one go but did not fit the batch waits in a
// buffer of ours — the rest of the UDP_GRO trains one recvmmsg took, a TUN
// super-packet whose segments did not fit what the batch had left — and does
// not make the fd readable again. Before the readiness callback came back for
// them by itself, they waited for the next datagram: here none comes, so they
// would have waited for ever.
//
//   one namespace, lo and a TUN (offloads: USO) up; a Pipeline over a core
//   with a ring of 16 slots and no SAs (everything is counted, then dropped)
//   - UDP: three UDP_SEGMENT trains of 40 datagrams queued on its UDP_GRO
//     socket before it starts: one recvmmsg takes all three (120 datagrams);
//     a wake-up serves 4 batches of 16 (BATCHES_PER_WAKE), so the rest also
//     needs the callback's own second turn
//   - TUN: two UDP_SEGMENT trains of 10 routed into the TUN, which reads them
//     as two super-packets; the second does not fit the 6 slots the first left
//
// The test waits for counters, never for time.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Lab, waitFor, type Netns } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { UdpSocket } from "../../host/net/udp_linux.ts";
import { Tun } from "../../host/tun/tun_linux.ts";
import { Core } from "../../host/core/core.ts";
import { BATCHES_PER_WAKE, Pipeline } from "../../host/pipeline/pipeline.ts";
import { assertNoNamespacesLeft, Ring, v4 } from "./io-util.ts";

const SLOTS = 16;

/** Sends `trains` runs of `size` datagrams of 100 bytes from `tx` to addr:port, each run one UDP_SEGMENT train. */
function sendTrains(tx: UdpSocket, addr: string, port: number, trains: number, size: number): void {
  const out = new Ring(size);
  for (let i = 0; i < size; i++) {
    out.put(i, new Uint8Array(100).fill(i));
    out.addr(i, v4(addr), 4, port);
  }
  for (let t = 0; t < trains; t++) assert.equal(tx.sendBatch(out.mem, out.offs, out.lens, out.addrs, out.ports, out.fams, size), size);
}

describe("Pipeline: packets a reader holds are handled without a new datagram", { skip: requireTools(["netns"], { why: "e2e pipeline readers" }) }, () => {
  const lab = new Lab();
  let ns: Netns;

  before(async () => {
    ns = await lab.ns("held");
  });
  after(async () => {
    await lab.teardown();
    assertNoNamespacesLeft(lab);
  });

  /** A pipeline over `tun` (and `udp`) with no SAs, started; it collects its errors. */
  async function pipeline(tun: Tun, udp?: UdpSocket): Promise<{ pipe: Pipeline; errors: string[] }> {
    const core = await Core.create({ slots: SLOTS });
    const pipe = new Pipeline(core, tun, udp ? [{ name: "wan", udp, raw: new Map() }] : [], { peers: [], outBySa: new Map() });
    const errors: string[] = [];
    pipe.start((where, e) => errors.push(`${where}: ${e.message}`));
    return { pipe, errors };
  }

  it("UDP_GRO: the rest of three trains taken by one recvmmsg, beyond one wake-up's batches", async () => {
    const tun = Tun.open({ name: "wheld%d", netns: ns.name });
    const rx = UdpSocket.bind({ family: 4, address: "127.0.0.1", port: 4500, gro: true, rcvbuf: 1 << 20, netns: ns.name });
    const tx = UdpSocket.bind({ family: 4, address: "127.0.0.1", port: 0, gso: true, netns: ns.name });
    try {
      assert.equal(rx.offloads.gro, "on");
      const total = 3 * 40;
      assert.ok(total > BATCHES_PER_WAKE * SLOTS, "more than one wake-up's batches");
      sendTrains(tx, "127.0.0.1", 4500, 3, 40); // queued before the pipeline reads
      const { pipe, errors } = await pipeline(tun, rx);
      try {
        await waitFor(() => pipe.counters.received >= total || errors.length > 0, `${total} datagrams received`, 10_000, 10);
        assert.deepEqual(errors, []);
        assert.equal(pipe.counters.received, total);
        // They came as trains, so the landing area was what held them.
        assert.ok(rx.trainCounters().trains >= 1, "coalesced trains received");
        assert.equal(rx.holding(), false);
      } finally {
        pipe.close();
      }
    } finally {
      tx.close();
      rx.close();
      tun.close();
    }
  });

  it("TUN: a super-packet that did not fit the batch's last slots", async (t) => {
    const tun = Tun.open({ name: "wheld%d", netns: ns.name, offload: true });
    const tx = UdpSocket.bind({ family: 4, port: 0, gso: true, netns: ns.name });
    try {
      if (tun.offloads.uso !== "on") {
        t.skip(`this kernel gives the TUN no USO (${tun.offloads.uso}): no UDP super-packets to hold`);
        return;
      }
      // No IPv6 on it: its link-local chatter (router solicitations) would be read too.
      await ns.run(["sysctl", "-qw", `net.ipv6.conf.${tun.name}.disable_ipv6=1`]);
      await ns.addr(tun.name, "10.77.0.1/24");
      await ns.up(tun.name);
      sendTrains(tx, "10.77.0.9", 9, 2, 10); // two super-packets of 10 queued on the TUN
      const { pipe, errors } = await pipeline(tun);
      try {
        await waitFor(() => pipe.counters.tunRead >= 20 || errors.length > 0, "20 packets read from the TUN", 10_000, 10);
        assert.deepEqual(errors, []);
        assert.equal(pipe.counters.tunRead, 20);
        assert.equal(tun.tsoCounters().superPackets, 2);
        assert.equal(tun.holding(), false);
      } finally {
        pipe.close();
      }
    } finally {
      tx.close();
      tun.close();
    }
  });
});
