// Differential test: the core against the reference ESP on @noble
// (test/helpers/ref_esp.ts, itself held to the published vectors).
//
// For every suite × ESN × mode × outer family × inner family × UDP:
//  - outbound: the core's packets equal the reference's byte for byte (the
//    IV is the sequence number for AEADs, AES_K(ivSeed‖seq) for CBC, so the
//    whole packet is determined) and the reference opens them;
//  - inbound: packets the reference seals (random IVs, extra padding, shuffled
//    inside the window, sequence numbers across 2^32 with ESN) come out of the
//    core as the original inner packet;
//  - flipping any one bit of an ESP packet is rejected: SPI → NO_SA, sequence
//    number → AUTH or REPLAY*, anything else → AUTH; none of it moves the
//    replay window, and the genuine packet is accepted afterwards.
// Seeded: a failure names its seed; WESP_SEED=<n> replays it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Core, KIND } from "../../host/core/core.ts";
import { toHex } from "../../host/core/raw_exports.ts";
import {
  concat, frame, innerProto, minPadLen, monotonicPad, openEsp, PROTO, sealEsp, seqHalves, seqIv, suiteSizes, unframe, type Outer,
} from "../helpers/ref_esp.ts";
import { Rng, SUITE_CASES, innerPacket, randomSa, randomSeq, seedFromEnv, v4, v6, type SuiteCase } from "../helpers/gen.ts";
import {
  DIFF_MODES, addScenario, checkFlips, coreSuite, expectOutbound, outIv, scenarioInner, sealInbound, slotKinds, writeInbound,
  type InboundPacket, type Scenario, type ScenarioSpec,
} from "../helpers/core_scenario.ts";

const SEED = seedFromEnv();
const BATCH = 8;

/** Outbound: the core's packets are the reference's, and the reference opens them. */
function outbound(core: Core, r: Rng, s: Scenario, why: string): void {
  const inners = Array.from({ length: BATCH }, () => scenarioInner(r, s, "out"));
  inners.forEach((p, i) => core.writePacket(i, p));
  assert.equal(core.processOutbound(BATCH), BATCH, `${why}: all sent`);
  for (let i = 0; i < BATCH; i++) {
    const seq = s.outSeq;
    const want = expectOutbound(s, inners[i]);
    assert.equal(core.verdictName(i), "TO_NETWORK", `${why} #${i}: ${core.reasonName(i)}`);
    const got = core.packet(i).slice();
    assert.equal(toHex(got), toHex(want), `${why} #${i}: bytes (seq ${seq})`);
    // The reference opens it, with the high half of the sequence number it was sealed under.
    const u = unframe(got);
    const o = openEsp(s.out, u.payload, seqHalves(seq).hi);
    assert.ok(o.ok, `${why} #${i}: reference opens`);
    // Where to send it.
    const alen = s.outerFamily === 4 ? 4 : 16;
    assert.equal(core.destFamily(i), s.outerFamily);
    assert.equal(toHex(core.destAddrBytes(i).subarray(0, alen)), toHex(s.remote), `${why}: destination`);
    assert.equal(core.destPort(i), s.ports?.dport ?? 0);
    assert.equal(core.sourcePort(i), s.ports?.sport ?? 0);
    assert.equal(core.hdrLen(i), alen === 4 ? 20 + (s.ports ? 8 : 0) : 40 + (s.ports ? 8 : 0));
    assert.equal(core.saId(i), s.outId);
    assert.equal(core.peerId(i), s.peerId);
  }
  assert.equal(core.saState(s.outId).seq, s.outSeq, `${why}: next sequence number`);
}

/** Inbound: reference-sealed packets, shuffled within the window, come out as the inner packets. */
function inbound(core: Core, r: Rng, s: Scenario, why: string): void {
  const top0 = core.saState(s.inId).replayTop;
  const pkts: InboundPacket[] = [];
  for (let k = 0; k < BATCH; k++) pkts.push(sealInbound(r, s, scenarioInner(r, s, "in"), s.inSeq++));
  for (let k = pkts.length - 1; k > 0; k--) {
    const j = r.int(0, k);
    [pkts[k], pkts[j]] = [pkts[j], pkts[k]];
  }
  pkts.forEach((p, i) => writeInbound(core, r, s, i, p));
  assert.equal(core.processInbound(BATCH), BATCH, `${why}: ${Array.from({ length: BATCH }, (_, i) => core.reasonName(i))}`);
  for (let i = 0; i < BATCH; i++) {
    assert.equal(core.verdictName(i), "TO_TUN", why);
    const got = core.packet(i);
    if (s.mode === "transport" && slotKinds[i] !== KIND.IP) {
      // Without the outer header the core builds one from the descriptor: compare what it carries.
      const hl = s.outerFamily === 4 ? 20 : 40;
      assert.equal(toHex(got.subarray(hl)), toHex(pkts[i].inner.subarray(hl)), `${why} #${i}: payload`);
    } else {
      assert.equal(toHex(got), toHex(pkts[i].inner), `${why} #${i}: inner packet (seq ${pkts[i].seq})`);
    }
    assert.equal(core.saId(i), s.inId);
  }
  // Without integrity the sequence number proves nothing: no window to advance (RFC 4303 §3.4.3).
  assert.equal(core.saState(s.inId).replayTop, s.c.suite === "aes-cbc" ? top0 : s.inSeq - 1n, `${why}: replay top`);
}

for (const c of SUITE_CASES) {
  for (const esn of [false, true]) {
    test(`core ≡ reference ESP: ${c.name}${esn ? " with ESN" : ""}, every mode, IPv4/IPv6, UDP or not`, async () => {
      const r = new Rng((SEED ^ (c.name.length * 7919 + (esn ? 1 : 0) + c.keyLen * 31)) >>> 0);
      const core = await Core.create({ slots: 64, maxSas: 16, maxPolicies: 8, largeWindowBlocks: 4 });
      let peer = 1, cases = 0;
      for (const mode of DIFF_MODES) {
        for (const outerFamily of [4, 6] as const) {
          for (const innerFamily of mode === "transport" ? [outerFamily] : ([4, 6] as const)) {
            for (const udp of [false, true]) {
              const spec: ScenarioSpec = { c, esn, mode, outerFamily, innerFamily, udp };
              const why = `seed ${SEED}: ${c.name} esn=${esn} ${mode} outer v${outerFamily} inner v${innerFamily} udp=${udp}`;
              core.clearPolicies();
              const s = addScenario(core, r, spec, 1 + (peer++ % 15));
              outbound(core, r, s, why);
              inbound(core, r, s, why);
              // aes-cbc has no integrity (RFC 3602 §5): changed bytes cannot be detected.
              if (c.suite !== "aes-cbc") checkFlips(core, r, s, sealInbound(r, s, scenarioInner(r, s, "in", r.int(1, 3) === 1 ? 200 : undefined), s.inSeq++), why);
              core.removeSa(s.outId);
              core.removeSa(s.inId);
              cases++;
            }
          }
        }
      }
      assert.equal(cases, 3 * 2 * 2 * 2 + 2 * 2);
    });
  }
}

// ─── Edges, each against the reference ───────────────────────────────────────

const INTEGRITY_CASES = SUITE_CASES.filter((c) => c.suite !== "aes-cbc");

/** A fresh core with one scenario in it. */
async function one(r: Rng, spec: Partial<ScenarioSpec> & { c: SuiteCase }): Promise<{ core: Core; s: Scenario }> {
  const core = await Core.create({ slots: 16, maxSas: 8, maxPolicies: 4, largeWindowBlocks: 2 });
  const s = addScenario(core, r, { esn: false, mode: "tunnel", outerFamily: 4, innerFamily: 4, udp: false, ...spec }, 1);
  return { core, s };
}

test("TFC padding (RFC 4303 §2.7): the core pads to the target byte for byte, and strips what the reference pads", async () => {
  const r = new Rng(SEED ^ 0x7fc);
  for (const c of SUITE_CASES) {
    for (const mode of ["tunnel", "transport-gre"] as const) {
      const tfcPad = r.int(60, 1000);
      const { core, s } = await one(r, { c, mode, esn: r.bool(), outerFamily: r.pick([4, 6] as const), innerFamily: r.pick([4, 6] as const), outExtra: { tfcPad } });
      const why = `seed ${SEED}: ${c.name} ${mode} tfc ${tfcPad}`;
      const inners = Array.from({ length: 8 }, (_, k) => scenarioInner(r, s, "out", k < 6 ? undefined : tfcPad + k));
      inners.forEach((p, i) => core.writePacket(i, p));
      assert.equal(core.processOutbound(8), 8, why);
      for (let i = 0; i < 8; i++) assert.equal(toHex(core.packet(i)), toHex(expectOutbound(s, inners[i])), `${why} #${i} (${inners[i].length} B)`);
      // Inbound: the peer pads with zeros too; the core hands TUN the inner packet alone.
      for (let i = 0; i < 8; i++) {
        const inner = scenarioInner(r, s, "in");
        const padded = concat(inner, new Uint8Array(r.int(1, 300)));
        const p = sealInbound(r, s, padded, s.inSeq++);
        core.writePacket(0, p.packet);
        assert.equal(core.processInbound(1), 1, `${why}: ${core.reasonName(0)}`);
        assert.equal(toHex(core.packet(0)), toHex(inner), `${why}: inbound TFC stripped`);
      }
    }
  }
});

test("path MTU: a packet over it drops as TOO_BIG with the MTU, consuming no sequence number, IPv4 id or GRE sequence", async () => {
  const r = new Rng(SEED ^ 0x3707);
  for (const c of SUITE_CASES) {
    const mtu = r.int(300, 900);
    const mode = r.pick(["tunnel", "transport-gre", "transport"] as const);
    const { core, s } = await one(r, { c, mode, esn: r.bool(), udp: r.bool(), outExtra: { mtu } });
    const why = `seed ${SEED}: ${c.name} ${mode} mtu ${mtu}`;
    let big = 0, sent = 0;
    for (let k = 0; k < 24; k++) {
      const inner = scenarioInner(r, s, "out", r.int(28, 1200));
      const saved = { outSeq: s.outSeq, ipId: s.ipId, gre: s.gre && { ...s.gre } };
      const want = expectOutbound(s, inner);
      core.writePacket(0, inner);
      core.processOutbound(1);
      if (want.length > mtu) {
        Object.assign(s, saved);
        assert.equal(core.reasonName(0), "TOO_BIG", `${why}: ${want.length} B`);
        assert.equal(core.mtu(0), mtu, why);
        big++;
      } else {
        assert.equal(core.verdictName(0), "TO_NETWORK", `${why}: ${want.length} B: ${core.reasonName(0)}`);
        assert.equal(toHex(core.packet(0)), toHex(want), `${why}: after ${big} TOO_BIG`);
        sent++;
      }
    }
    assert.ok(big > 0 && sent > 0, `${why}: both sides of the MTU exercised (${big}/${sent})`);
    assert.equal(core.readCounters(s.outId).drops.TOO_BIG, BigInt(big), why);
  }
});

test("sequence numbers never wrap (RFC 4303 §3.3.3): the last number is sent, then SEQ_EXHAUSTED and needsRekey", async () => {
  const r = new Rng(SEED ^ 0x5e9);
  for (const c of SUITE_CASES) {
    for (const esn of [false, true]) {
      const last = esn ? 0xffffffffffffffffn : 0xffffffffn;
      const { core, s } = await one(r, { c, esn, outSeq: last - 2n });
      const why = `seed ${SEED}: ${c.name} esn=${esn}`;
      for (let k = 0; k < 3; k++) {
        const inner = scenarioInner(r, s, "out");
        core.writePacket(0, inner);
        assert.equal(core.processOutbound(1), 1, `${why}: packet ${k}`);
        assert.equal(toHex(core.packet(0)), toHex(expectOutbound(s, inner)), why);
      }
      assert.equal(core.saState(s.outId).needsRekey, true, `${why}: needs a rekey after ${last}`);
      core.writePacket(0, scenarioInner(r, s, "out"));
      assert.equal(core.processOutbound(1), 0, why);
      assert.equal(core.reasonName(0), "SEQ_EXHAUSTED", why);
    }
  }
});

test("trailer and inner checks after authentication: dummy, padding, next header, spoofed or short inner packet", async () => {
  const r = new Rng(SEED ^ 0x7a11);
  for (const c of INTEGRITY_CASES) {
    const esn = r.bool();
    const { core, s } = await one(r, { c, esn, outerFamily: r.pick([4, 6] as const), udp: r.bool() });
    const why = `seed ${SEED}: ${c.name} esn=${esn}`;
    const { ivLen, align } = suiteSizes(s.in.suite);
    const udp = s.ports ? { sport: s.ports.dport, dport: s.ports.sport } : undefined;
    const send = (payload: Uint8Array, nextHeader: number, extra: { padding?: Uint8Array; padLenByte?: number } = {}) => {
      const seq = s.inSeq++;
      const esp = sealEsp(s.in, { seq, iv: r.bytes(ivLen), payload, nextHeader, ...extra });
      core.writePacket(0, frame({ src: s.remote, dst: s.local, udp }, PROTO.ESP, esp));
      core.processInbound(1);
      return { reason: core.reasonName(0), seq };
    };
    const inner = () => scenarioInner(r, s, "in");
    const before = core.readCounters(s.inId).drops;

    // §2.6: a dummy packet authenticates, moves the window, and is dropped and counted.
    const dummy = send(r.bytes(r.int(0, 100)), PROTO.NONE);
    assert.equal(dummy.reason, "DUMMY", why);
    assert.equal(core.saState(s.inId).replayTop, dummy.seq, `${why}: dummy advanced the window`);

    // §2.4: padding not 1, 2, 3, … and a pad length longer than the data.
    const p = inner();
    const n = minPadLen(s.in.suite, p.length) + align;
    const bad = monotonicPad(n);
    bad[r.int(0, n - 1)] ^= 0x40;
    assert.equal(send(p, innerProto(p), { padding: bad }).reason, "PADDING", `${why}: padding ${toHex(bad)}`);
    assert.equal(send(p, innerProto(p), { padLenByte: 255 }).reason, "PADDING", `${why}: pad length 255 on ${p.length} B`);

    // A tunnel SA carries IP: GRE or TCP as next header is refused.
    assert.equal(send(inner(), PROTO.GRE).reason, "NEXT_HEADER", why);
    assert.equal(send(inner(), PROTO.TCP).reason, "NEXT_HEADER", why);

    // RFC 4301 §5.2: an inner source outside the peer's selectors is spoofed.
    const spoof = innerPacket(r, v4(10, 99, 0, 1), v4(10, 1, 0, 1), 60);
    const sp6 = innerPacket(r, v6(r, 0xfd63_0000), v6(r, 0xfd01_0000), 80);
    assert.equal(send(s.innerFamily === 4 ? spoof : sp6, innerProto(spoof)).reason, "POLICY", `${why}: spoofed inner source`);

    // An inner packet whose own length runs past the decrypted data.
    const short = inner();
    assert.equal(send(short.subarray(0, short.length - r.int(1, 8)), innerProto(short)).reason, "MALFORMED", `${why}: truncated inner`);

    const after = core.readCounters(s.inId).drops;
    for (const [k, v] of [["DUMMY", 1n], ["PADDING", 2n], ["NEXT_HEADER", 2n], ["POLICY", 1n], ["MALFORMED", 1n]] as const) {
      assert.equal(after[k] - before[k], v, `${why}: ${k} counted on the SA`);
    }
    // Still working afterwards.
    const ok = inner();
    assert.equal(send(ok, innerProto(ok)).reason, "NONE", why);
    assert.equal(toHex(core.packet(0)), toHex(ok), why);
  }
});

test("NAT-T (RFC 3948): the peer's address and port move only with an authenticated packet that is new", async () => {
  const r = new Rng(SEED ^ 0x4500);
  for (const c of INTEGRITY_CASES) {
    const { core, s } = await one(r, { c, esn: r.bool(), udp: true, outerFamily: r.pick([4, 6] as const) });
    const why = `seed ${SEED}: ${c.name}`;
    const moved = s.outerFamily === 4 ? v4(203, 0, 113, r.int(1, 254)) : v6(r, 0x2001_0db7);
    const port = r.int(1024, 65535);
    const from = (src: Uint8Array, sport: number, seq: bigint, forge = false) => {
      const p = sealInbound(r, s, scenarioInner(r, s, "in"), seq);
      const esp = p.packet.slice(p.espOff);
      if (forge) esp[esp.length - 1] ^= 1;
      core.writePacket(0, frame({ src, dst: s.local, udp: { sport, dport: s.ports!.sport } }, PROTO.ESP, esp));
      core.processInbound(1);
      return core.reasonName(0);
    };
    const sendTo = (dst: Uint8Array, dport: number) => {
      const inner = scenarioInner(r, s, "out");
      core.writePacket(0, inner);
      assert.equal(core.processOutbound(1), 1, why);
      const o: Outer = { src: s.local, dst, ttl: s.ttl, tos: s.tos, id: s.ipId, df: s.df, udp: { sport: s.ports!.sport, dport } };
      const seq = s.outSeq++;
      if (s.outerFamily === 4) s.ipId = (s.ipId + 1) & 0xffff;
      const want = frame(o, PROTO.ESP, sealEsp(s.out, { seq, iv: outIv(s, seq), payload: inner, nextHeader: innerProto(inner) }));
      assert.equal(toHex(core.packet(0)), toHex(want), `${why}: sent to ${toHex(dst)}:${dport}`);
      assert.equal(core.destPort(0), dport, why);
    };
    // A forged packet from elsewhere changes nothing.
    assert.equal(from(moved, port, s.inSeq + 5n, true), "AUTH", why);
    sendTo(s.remote, s.ports!.dport);
    // A genuine new packet from elsewhere: the peer moved (its NAT mapping changed).
    assert.equal(from(moved, port, s.inSeq + 5n), "NONE", why);
    sendTo(moved, port);
    // A genuine but older packet (inside the window) from the old address does not move it back.
    assert.equal(from(s.remote, s.ports!.dport, s.inSeq + 2n), "NONE", why);
    sendTo(moved, port);
  }
});

test("replay state moves only after authentication: a forged packet inside the window does not mark its number", async () => {
  const r = new Rng(SEED ^ 0xb17);
  for (const c of INTEGRITY_CASES) {
    const { core, s } = await one(r, { c, esn: r.bool(), outerFamily: r.pick([4, 6] as const) });
    const why = `seed ${SEED}: ${c.name}`;
    const base = s.inSeq;
    const mk = (seq: bigint) => sealInbound(r, s, scenarioInner(r, s, "in"), seq);
    const ahead = mk(base + 5n), hole = mk(base + 2n);
    core.writePacket(0, ahead.packet);
    assert.equal(core.processInbound(1), 1, why);
    // The same number, forged: a flipped ICV byte.
    const forged = hole.packet.slice();
    forged[forged.length - 1 - r.int(0, 15)] ^= r.int(1, 255);
    core.writePacket(0, forged);
    core.writePacket(1, forged);
    assert.equal(core.processInbound(2), 0, why);
    assert.deepEqual([core.reasonName(0), core.reasonName(1)], ["AUTH", "AUTH"], `${why}: a forgery is never a replay`);
    // The genuine packet with that number is still new.
    core.writePacket(0, hole.packet);
    assert.equal(core.processInbound(1), 1, `${why}: ${core.reasonName(0)}`);
    assert.equal(toHex(core.packet(0)), toHex(hole.inner), why);
    assert.equal(core.saState(s.inId).replayTop, base + 5n, why);
  }
});

test("payload mode with the one-shot IV override (the self-test path) equals the reference for random payloads and IVs", async () => {
  const r = new Rng(SEED ^ 0x9a7);
  const core = await Core.create({ slots: 4, maxSas: 32, maxPolicies: 1, largeWindowBlocks: 1 });
  for (const c of SUITE_CASES) {
    for (const esn of [false, true]) {
      const sa = randomSa(r, c, esn);
      const max = esn ? 0xffffffffffffffffn : 0xffffffffn;
      const s0 = randomSeq(r, esn);
      const seq = s0 > max - 8n ? max - 8n : s0;
      const common = { suite: coreSuite(c.suite), mode: "payload" as const, spi: sa.spi, key: sa.key, salt: sa.salt, hmacKey: sa.authKey, esn, allowNoIntegrity: c.suite === "aes-cbc", initialSeq: seq };
      const out = core.addSa({ ...common, direction: "out" });
      const inb = core.addSa({ ...common, direction: "in" });
      const why = `seed ${SEED}: ${c.name} esn=${esn} seq ${seq}`;
      for (let k = 0; k < 4; k++) {
        const payload = r.bytes(r.int(0, 300)), nh = r.pick([1, 4, 6, 17, 41, 47]);
        const iv = r.bytes(suiteSizes(c.suite).ivLen);
        core.katSetIv(out, iv);
        core.writePacket(0, payload, 0, out, nh);
        assert.equal(core.processOutbound(1), 1, `${why}: ${core.reasonName(0)}`);
        const want = sealEsp(sa, { seq: seq + BigInt(k), iv, payload, nextHeader: nh });
        assert.equal(toHex(core.packet(0)), toHex(want), why);
        // The core opens it back in payload mode, the next header in the descriptor.
        core.writePacket(0, want, KIND.PAYLOAD, -1, 0);
        core.setRemote(0, "198.51.100.1", 0, "192.0.2.1");
        assert.equal(core.processInbound(1), 1, `${why}: ${core.reasonName(0)}`);
        assert.equal(toHex(core.packet(0)), toHex(payload), why);
        assert.equal(core.proto(0), nh, why);
      }
      // The override is one-shot: without it the IV is derived again (AEAD: the sequence number).
      core.writePacket(0, r.bytes(40), 0, out, 4);
      assert.equal(core.processOutbound(1), 1, why);
      if (suiteSizes(c.suite).ivLen === 8) assert.equal(toHex(core.packet(0).subarray(8, 16)), toHex(seqIv(seq + 4n)), `${why}: IV back to the sequence number`);
      core.removeSa(out);
      core.removeSa(inb);
    }
  }
});
