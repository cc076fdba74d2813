// provision.ts against the real core, without any I/O: two cores provisioned
// from the two sides' configs of a case must carry a packet from one site to
// the other (A seals, B opens, the inner packet comes out byte for byte) in
// every mode and family; the SPD has one protect entry per (local, remote)
// prefix pair; during a rekey both inbound SAs are accepted; the inbound
// policy check refuses inner sources outside the peer's prefixes; and the
// inner MTU the config check asks of the core for a peer (inner_mtu.ts) is
// exactly the largest packet the SA installed for it still sends within its
// path MTU, and the one its ICMP answer reports.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Core, KIND } from "../../host/core/core.ts";
import { parseConfig } from "../../host/config/load.ts";
import type { Config } from "../../host/config/model.ts";
import { coreSizing, provision } from "../../host/pipeline/provision.ts";
import { innerRoom } from "../../host/config/inner_mtu.ts";
import { configs, type Case } from "../e2e/forwarder-util.ts";

function load(doc: object): Config {
  return parseConfig(JSON.stringify(doc), { baseDir: "/tmp", source: "<test>" }).config;
}

async function side(doc: object): Promise<{ core: Core; config: Config; prov: ReturnType<typeof provision> }> {
  const config = load(doc);
  const core = await Core.create({ slots: 8, ...coreSizing(config) });
  return { core, config, prov: provision(core, config) };
}

/** An IPv4 or IPv6 UDP packet src → dst with `n` payload bytes (checksum left 0: the core does not look). */
function udp(src: string, dst: string, n: number): Uint8Array {
  const v6 = src.includes(":");
  const payload = randomBytes(n);
  const h = v6 ? 40 : 20;
  const p = new Uint8Array(h + 8 + n);
  const dv = new DataView(p.buffer);
  if (v6) {
    p[0] = 0x60;
    dv.setUint16(4, 8 + n);
    p[6] = 17;
    p[7] = 64;
    p.set(addr6(src), 8);
    p.set(addr6(dst), 24);
  } else {
    p[0] = 0x45;
    dv.setUint16(2, h + 8 + n);
    p[6] = 0x40; // DF
    p[8] = 64;
    p[9] = 17;
    p.set(src.split(".").map(Number), 12);
    p.set(dst.split(".").map(Number), 16);
    let s = 0;
    for (let i = 0; i < 20; i += 2) s += dv.getUint16(i);
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    dv.setUint16(10, ~s & 0xffff);
  }
  dv.setUint16(h, 1234);
  dv.setUint16(h + 2, 5678);
  dv.setUint16(h + 4, 8 + n);
  p.set(payload, h + 8);
  return p;
}

function addr6(s: string): Uint8Array {
  const [a, b] = s.split("::");
  const hs = a ? a.split(":") : [], ts = b ? b.split(":") : [];
  const g = [...hs, ...Array(8 - hs.length - ts.length).fill("0"), ...ts];
  const out = new Uint8Array(16);
  g.forEach((x, i) => { out[2 * i] = parseInt(x, 16) >> 8; out[2 * i + 1] = parseInt(x, 16) & 0xff; });
  return out;
}

/** A seals `pkt`; the wire bytes are handed to B as its socket would receive them; returns B's verdict and packet. */
function carry(a: Core, b: Core, pkt: Uint8Array): { verdict: string; reason: string; out?: Uint8Array } {
  a.writePacket(0, pkt);
  a.processOutbound(1);
  assert.equal(a.verdictName(0), "TO_NETWORK", `A: ${a.reasonName(0)}`);
  const wire = a.packet(0);
  const port = a.destPort(0);
  const fam = a.destFamily(0);
  const src = a.sourceAddress(0);
  if (port !== 0) {
    b.writePacket(0, wire.subarray(a.hdrLen(0)), KIND.UDP);
    b.setRemote(0, src, a.sourcePort(0), a.destAddress(0));
  } else if (fam === 4) {
    b.writePacket(0, wire, KIND.IP);
  } else {
    b.writePacket(0, wire.subarray(40), KIND.PAYLOAD, -1, wire[6]);
    b.setRemote(0, src, 0, a.destAddress(0));
  }
  b.processInbound(1);
  const verdict = b.verdictName(0);
  return { verdict, reason: b.reasonName(0), out: verdict === "TO_TUN" ? b.packet(0).slice() : undefined };
}

const CASES: Case[] = [
  { name: "tunnel udp v4", mode: "tunnel", outer: 4, encap: "udp", suite: "aes-256-gcm" },
  { name: "tunnel raw v6", mode: "tunnel", outer: 6, encap: "raw", suite: "chacha20-poly1305" },
  { name: "transport-ipip udp v6", mode: "transport-ipip", outer: 6, encap: "udp", suite: "aes-128-cbc-hmac-sha256" },
  { name: "transport-ipip raw v4", mode: "transport-ipip", outer: 4, encap: "raw", suite: "aes-192-gcm" },
  { name: "transport-gre raw v4", mode: "transport-gre", outer: 4, encap: "raw", suite: "aes-256-cbc-hmac-sha256", gre: { key: 7, sequence: true } },
  { name: "gre v6", mode: "gre", outer: 6, encap: "udp", gre: { key: 42 } },
  { name: "ipip v4", mode: "ipip", outer: 4, encap: "udp" },
];

describe("provision: config → core", () => {
  for (const c of CASES) {
    it(`${c.name}: A → B and B → A carry IPv4 and IPv6 inner packets unchanged`, async () => {
      const docs = configs(c, "/tmp");
      const A = await side(docs.a), B = await side(docs.b);
      assert.equal(A.core.policyCount(), 2, "one entry per (local, remote) prefix pair of each family");
      for (const [x, y, src, dst] of [
        [A, B, "10.1.0.5", "10.2.0.7"], [B, A, "10.2.0.7", "10.1.0.5"],
        [A, B, "fd00:1::5", "fd00:2::7"], [B, A, "fd00:2::7", "fd00:1::5"],
      ] as const) {
        const pkt = udp(src, dst, 333);
        const r = carry(x.core, y.core, pkt);
        assert.equal(r.verdict, "TO_TUN", `${src} → ${dst}: ${r.reason}`);
        assert.deepEqual(r.out, pkt);
      }
      const st = A.core.readCounters(A.prov.peers[0].out!.saId);
      assert.equal(st.packets, 2n);
    });
  }

  it("the outbound packet goes to the peer's address and UDP port from our WAN port", async () => {
    const docs = configs({ name: "p", mode: "tunnel", outer: 4, encap: "udp", port: 4600 }, "/tmp");
    const A = await side(docs.a);
    A.core.writePacket(0, udp("10.1.0.5", "10.2.0.7", 10));
    A.core.processOutbound(1);
    assert.deepEqual([A.core.destAddress(0), A.core.destPort(0), A.core.sourceAddress(0), A.core.sourcePort(0)], ["192.0.2.2", 4600, "192.0.2.1", 4600]);
    assert.equal(A.prov.outBySa.get(A.core.saId(0))!.carrier, "udp");
  });

  it("rekeying: both inbound SAs are accepted; outbound uses the first", async () => {
    const docs = configs({ name: "r", mode: "tunnel", outer: 4, encap: "udp", suite: "aes-128-gcm" }, "/tmp");
    const a = docs.a as any, b = docs.b as any;
    const next = {
      spi_in: 0x2000b, spi_out: 0x2000a, suite: "aes-128-gcm",
      key_in: randomBytes(20).toString("hex"), key_out: randomBytes(20).toString("hex"),
    };
    a.peers[0].sas.push(next);
    const bNew = structuredClone(b);
    bNew.peers[0].sas = [{ ...next, spi_in: next.spi_out, spi_out: next.spi_in, key_in: next.key_out, key_out: next.key_in }];
    const A = await side(a), Bold = await side(b), Bnew = await side(bNew);
    assert.equal(A.prov.peers[0].in.length, 2);
    for (const B of [Bold, Bnew]) {
      const pkt = udp("10.2.0.7", "10.1.0.5", 50);
      const r = carry(B.core, A.core, pkt);
      assert.equal(r.verdict, "TO_TUN", r.reason);
    }
    // A still sends on the old SA: the peer that already dropped it refuses, the other takes it
    assert.equal(carry(A.core, Bold.core, udp("10.1.0.5", "10.2.0.7", 50)).verdict, "TO_TUN");
    const r = carry(A.core, Bnew.core, udp("10.1.0.5", "10.2.0.7", 50));
    assert.deepEqual([r.verdict, r.reason], ["DROP", "NO_SA"]);
  });

  it("the inbound policy check refuses an inner source outside the peer's prefixes", async () => {
    const docs = configs({ name: "pc", mode: "tunnel", outer: 4, encap: "udp" }, "/tmp");
    const b = docs.b as any;
    b.node.local_prefixes.push("10.9.0.0/24"); // B protects traffic from 10.9.0.0/24 too …
    const A = await side(docs.a), B = await side(b);
    const r = carry(B.core, A.core, udp("10.9.0.1", "10.1.0.5", 20)); // … but A expects only 10.2.0.0/24 from B
    assert.deepEqual([r.verdict, r.reason], ["DROP", "POLICY"]);
  });

  for (const c of CASES) {
    it(`${c.name}: the config check's inner MTU is the largest inner packet the installed SA sends within the path MTU`, async () => {
      for (const mtu of [1280, 1333, 1400, 1499]) {
        const docs = configs({ ...c, mtu }, "/tmp");
        // IPv4 prefixes only: the smaller path MTUs leave IPv6 less than its 1280 (refused by the config check)
        for (const d of [docs.a, docs.b] as any[]) {
          d.node.local_prefixes = d.node.local_prefixes.filter((x: string) => !x.includes(":"));
          d.peers[0].prefixes = d.peers[0].prefixes.filter((x: string) => !x.includes(":"));
        }
        const A = await side(docs.a);
        const p = A.config.peers[0];
        const inner = innerRoom(p, A.config.node.wan[p.wanIndex], p.sas[0]?.suite, mtu, 4);
        // One byte more: dropped TOO_BIG and answered (DF set: an ICMP error for the TUN)
        for (const [len, want] of [[inner, "TO_NETWORK"], [inner + 1, "ICMP"]] as const) {
          A.core.writePacket(0, udp("10.1.0.5", "10.2.0.7", len - 28));
          A.core.processOutbound(1);
          assert.equal(A.core.verdictName(0), want, `mtu ${mtu}, inner ${len}: ${A.core.reasonName(0)}`);
          if (want === "TO_NETWORK") assert.ok(A.core.length(0) <= mtu);
          else assert.deepEqual([A.core.reasonName(0), A.core.mtu(0), A.core.innerMtu(0)], ["TOO_BIG", mtu, inner]);
        }
      }
    });
  }
});
