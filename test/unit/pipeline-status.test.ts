// What status reports about SA records, against the real core: the peer
// address/port NAT-T learned (RFC 3948 §3.5: from authenticated, newest
// inbound packets) replaces the configured one in the snapshot and the text,
// which also names the configured one; raw ESP learns nothing.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Core, KIND } from "../../host/core/core.ts";
import { parseConfig } from "../../host/config/load.ts";
import { coreSizing, provision } from "../../host/pipeline/provision.ts";
import { snapshot } from "../../host/pipeline/status.ts";
import type { Status } from "../../host/control/status.ts";
import type { Pipeline } from "../../host/pipeline/pipeline.ts";
import { formatStatus } from "../../host/control/format.ts";
import { ADDR, configs, type Case } from "../e2e/forwarder-util.ts";

async function side(doc: object) {
  const config = parseConfig(JSON.stringify(doc), { baseDir: "/tmp", source: "<test>" }).config;
  const core = await Core.create({ slots: 4, ...coreSizing(config) });
  return { core, prov: provision(core, config) };
}

/** IPv4 packet 10.1.0.5 → 10.2.0.7 (protocol 253, RFC 3692 experimental) with `n` payload bytes. */
function inner(n: number): Uint8Array {
  const p = new Uint8Array(20 + n);
  p.set([0x45, 0, (20 + n) >> 8, (20 + n) & 0xff, 0, 0, 0, 0, 64, 253, 0, 0, 10, 1, 0, 5, 10, 2, 0, 7]);
  p.set(randomBytes(n), 20);
  return p;
}

/** A seals one packet; B receives it as if from `from`:`port` (a NAT's mapping); returns B's verdict. */
function natCarry(a: Core, b: Core, from: string, port: number): string {
  a.writePacket(0, inner(100));
  a.processOutbound(1);
  assert.equal(a.verdictName(0), "TO_NETWORK", a.reasonName(0));
  if (a.destPort(0) !== 0) {
    b.writePacket(0, a.packet(0).subarray(a.hdrLen(0)), KIND.UDP);
    b.setRemote(0, from, port, a.destAddress(0));
  } else {
    b.writePacket(0, a.packet(0), KIND.IP);
  }
  b.processInbound(1);
  return b.verdictName(0);
}

const noPipe = { counters: {}, sockets: () => [] } as unknown as Pipeline;

describe("status: the peer's current address", () => {
  it("ESP in UDP: the address and port NAT-T learned, with the configured ones beside them", async () => {
    const c: Case = { name: "nat", mode: "tunnel", outer: 4, encap: "udp", suite: "aes-128-gcm" };
    const docs = configs(c, "/tmp");
    const A = await side(docs.a), B = await side(docs.b);
    const peer = B.prov.peers[0];
    const before = B.core.saState(peer.out!.saId);
    assert.deepEqual([before.remote, before.remotePort, before.remoteLearned], [ADDR.ceAwan.v4, 4500, false]);
    assert.equal(snapshot(B.core, B.prov, noPipe, new Set()).peers[0].learned, false);

    assert.equal(natCarry(A.core, B.core, "198.51.100.7", 31000), "TO_TUN");
    for (const id of [peer.out!.saId, peer.in[0].saId]) {
      const st = B.core.saState(id);
      assert.deepEqual([st.remote, st.remotePort, st.remoteLearned], ["198.51.100.7", 31000, true], `SA ${id}`);
    }
    const p = snapshot(B.core, B.prov, noPipe, new Set()).peers[0];
    assert.deepEqual([p.address, p.port, p.learned], ["198.51.100.7", 31000, true]);
    assert.deepEqual(p.configured, { address: ADDR.ceAwan.v4, port: 4500 });
    const st = { node: "ceB", pid: 1, startedAt: "", uptimeSeconds: 0, tun: "t", workers: 1, control: "",
      peers: [p], global: { inbound: p.inbound[0].counters, outbound: p.outbound!.counters },
      host: { tunRead: 0, tunWritten: 0, sent: 0, received: 0, toHost: 0, icmpTooBig: 0, icmpRateLimited: 0, fragmented: 0, bypassUnsent: 0, keepalives: 0 },
      sockets: [] } satisfies Status;
    assert.match(formatStatus(st), /peer ceA .* 198\.51\.100\.7:31000 {2}\(NAT-T learned; configured 192\.0\.2\.1:4500\)/);

    // a forged packet from elsewhere teaches nothing (it does not authenticate)
    A.core.writePacket(0, inner(100));
    A.core.processOutbound(1);
    const wire = A.core.packet(0).slice(A.core.hdrLen(0));
    wire[wire.length - 1] ^= 1;
    B.core.writePacket(0, wire, KIND.UDP);
    B.core.setRemote(0, "203.0.113.9", 999, ADDR.ceBwan.v4);
    B.core.processInbound(1);
    assert.equal(B.core.reasonName(0), "AUTH");
    assert.equal(B.core.saState(peer.out!.saId).remote, "198.51.100.7");
  });

  it("raw ESP: the configured address, whatever the packets' source", async () => {
    const c: Case = { name: "raw", mode: "tunnel", outer: 6, encap: "raw", suite: "aes-128-gcm" };
    const docs = configs(c, "/tmp");
    const A = await side(docs.a), B = await side(docs.b);
    A.core.writePacket(0, inner(100));
    A.core.processOutbound(1);
    B.core.writePacket(0, A.core.packet(0).subarray(40), KIND.PAYLOAD, -1, 50);
    B.core.setRemote(0, "2001:db8::99", 0, ADDR.ceBwan.v6);
    B.core.processInbound(1);
    assert.equal(B.core.verdictName(0), "TO_TUN", B.core.reasonName(0));
    const p = snapshot(B.core, B.prov, noPipe, new Set()).peers[0];
    assert.deepEqual([p.address, p.learned], [ADDR.ceAwan.v6, false]);
    assert.doesNotMatch(formatStatus({ ...({} as Status), node: "x", uptimeSeconds: 0, peers: [p],
      global: { inbound: p.inbound[0].counters, outbound: p.outbound!.counters }, host: {} as Status["host"], sockets: [] }), /learned/);
  });
});
