// Differential tests against scapy (Debian python3-scapy, an ESP written by
// other people in another language). First the bridge is held to the shared
// vectors and to the reference ESP; then the core is held to scapy: the
// core's packets opened by scapy, scapy's opened by the core, and scapy's
// with any one bit flipped refused by the core for the right reason.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { hex, toHex } from "../../host/core/raw_exports.ts";
import { ScapyEsp, addrText, bytes, type ScapySa } from "../helpers/scapy.ts";
import { loadVectors, vectorSa, vectorSeq } from "../helpers/vectors.ts";
import {
  frame, greHeader, greStrip, concat, openEsp, PROTO, sealEsp, sealTunnel, seqHalves, suiteSizes, unframe,
  type Outer, type RefSa,
} from "../helpers/ref_esp.ts";
import { Rng, SUITE_CASES, innerPacket, randomSa, randomSeq, seedFromEnv, v4, v6 } from "../helpers/gen.ts";
import { Core, KIND } from "../../host/core/core.ts";
import {
  DIFF_MODES, addScenario, checkFlips, scenarioInner, slotKinds, writeInbound, type InboundPacket, type Scenario,
} from "../helpers/core_scenario.ts";

const scapy = new ScapyEsp();
after(() => scapy.close());

const scapySa = (sa: RefSa, seq: bigint): ScapySa => ({
  suite: sa.suite, spi: sa.spi, key: sa.key, salt: sa.salt, authKey: sa.authKey,
  esnHi: sa.esn ? seqHalves(seq).hi : undefined,
});

test("scapy bridge answers (scapy 2.5 from Debian)", async () => {
  const a = await scapy.request({ op: "version" });
  assert.ok(a.ok);
  assert.match(String(a.version), /^2\./);
});

test("scapy bridge reproduces the 21 shared vectors", async () => {
  const vectors = loadVectors();
  assert.equal(vectors.length, 21);
  for (const v of vectors) {
    const sa = vectorSa(v);
    const seq = vectorSeq(v);
    const ssa = scapySa(sa, seq);
    const esp = await scapy.sealPayload(ssa, v.seq, hex(v.iv), hex(v.plaintext_payload), v.next_header);
    assert.equal(toHex(esp), v.expected_esp, `${v.id}: seal`);
    const o = await scapy.openPayload(ssa, hex(v.expected_esp));
    assert.ok(o.ok, `${v.id}: open ${!o.ok && o.message}`);
    assert.equal(o.payload, v.plaintext_payload, `${v.id}: open`);
    assert.equal(o.nh, v.next_header, `${v.id}: next header`);
    if (v.expected_packet && v.mode === "transport") {
      const pkt = await scapy.sealTransport(ssa, v.seq, hex(v.iv), hex(v.input_packet!));
      assert.equal(toHex(pkt), v.expected_packet, `${v.id}: transport packet`);
    } else if (v.expected_packet) {
      const e = hex(v.expected_packet);
      const dv = new DataView(e.buffer);
      const outer = { src: addrText(e.subarray(12, 16)), dst: addrText(e.subarray(16, 20)), ttl: e[8], tos: e[1], id: dv.getUint16(4), df: (e[6] & 0x40) !== 0 };
      const pkt = await scapy.sealTunnel(ssa, v.seq, hex(v.iv), outer, hex(v.plaintext_payload));
      assert.equal(toHex(pkt), v.expected_packet, `${v.id}: tunnel packet`);
    }
    if (v.suite !== "aes-cbc") {
      const bad = hex(v.expected_esp);
      bad[bad.length - 1] ^= 0x80;
      const r = await scapy.openPayload(ssa, bad);
      assert.equal(r.ok ? "opened" : r.error, "integrity", `${v.id}: forged ICV`);
    }
  }
});

/** An outer header and its scapy twin: IPv4 or IPv6, with or without RFC 3948 UDP. */
function randomOuter(r: Rng, six: boolean, udp: boolean): Outer {
  const o: Outer = six
    ? { src: v6(r), dst: v6(r), ttl: r.int(1, 255), tos: r.int(0, 255) & 0xfc, flowLabel: r.int(0, 0xfffff) }
    : { src: v4(192, 0, 2, r.int(1, 254)), dst: v4(198, 51, 100, r.int(1, 254)), ttl: r.int(1, 255), tos: r.int(0, 255) & 0xfc, id: r.int(0, 65535), df: r.bool() };
  if (udp) o.udp = { sport: r.pick([4500, r.int(1024, 65535)]), dport: 4500 };
  return o;
}
const scapyOuter = (o: Outer) => ({ src: addrText(o.src), dst: addrText(o.dst), ttl: o.ttl, tos: o.tos, id: o.id, df: o.df, fl: o.flowLabel });

/** scapy zeroes the UDP checksum over IPv6 too (see scapy_esp.py); compare everything else. */
function zeroUdp6Checksum(pkt: Uint8Array): Uint8Array {
  const p = pkt.slice();
  if (p[0] >> 4 === 6 && p[6] === PROTO.UDP) { p[46] = 0; p[47] = 0; }
  return p;
}

test("scapy and the reference ESP agree byte for byte on random packets (every suite, ESN, tunnel/GRE, IPv4/IPv6, UDP)", async () => {
  const seed = seedFromEnv();
  const r = new Rng(seed);
  let n = 0;
  for (const c of SUITE_CASES) {
    for (const esn of [false, true]) {
      for (let k = 0; k < 12; k++) {
        const why = `seed ${seed}, ${c.name}, esn ${esn}, case ${k}`;
        const sa = randomSa(r, c, esn);
        const seq = randomSeq(r, esn);
        const ssa = scapySa(sa, seq);
        const { ivLen } = suiteSizes(sa.suite);
        const iv = r.bytes(ivLen);
        const outer = randomOuter(r, r.bool(), r.bool());
        const innerSix = r.bool();
        const inner = innerSix ? innerPacket(r, v6(r, 0xfd00_0001), v6(r, 0xfd00_0002), r.int(48, 1500))
          : innerPacket(r, v4(10, 1, 0, r.int(1, 254)), v4(10, 2, 0, r.int(1, 254)), r.int(28, 1500));
        const gre = r.bool(0.3);
        let mine: Uint8Array, theirs: Uint8Array, espPayload = inner;
        if (!gre) {
          mine = sealTunnel(sa, outer, inner, seq, iv);
          theirs = await scapy.sealTunnel(ssa, seqHalves(seq).lo, iv, scapyOuter(outer), inner, outer.udp);
        } else {
          // Transport mode over GRE: scapy is handed outer / GRE / inner and inserts ESP after the IP header.
          const g = { key: r.bool() ? r.u32() : undefined, seq: r.bool() ? r.u32() : undefined };
          espPayload = concat(greHeader(inner, g), inner);
          mine = frame(outer, PROTO.ESP, sealEsp(sa, { seq, iv, payload: espPayload, nextHeader: PROTO.GRE }));
          theirs = await scapy.sealTransport(ssa, seqHalves(seq).lo, iv, frame({ ...outer, udp: undefined }, PROTO.GRE, espPayload), outer.udp);
        }
        assert.equal(toHex(zeroUdp6Checksum(theirs)), toHex(zeroUdp6Checksum(mine)), `${why}: sealed bytes`);
        // Each opens the other's.
        const opened = openEsp(sa, unframe(mine).payload, seqHalves(seq).hi);
        assert.ok(opened.ok, why);
        assert.equal(toHex(opened.payload), toHex(espPayload), why);
        const back = bytes(await scapy.open(ssa, gre ? "transport" : "tunnel", mine), "packet");
        // tunnel: the inner packet; transport: the outer IP header (protocol 47 now) / GRE / inner.
        assert.equal(toHex(gre ? back.subarray(outer.src.length === 4 ? 20 : 40) : back), toHex(espPayload), `${why}: scapy opened`);
        if (gre) assert.equal(back[outer.src.length === 4 ? 9 : 6], PROTO.GRE, why);
        n++;
      }
    }
  }
  assert.equal(n, SUITE_CASES.length * 2 * 12);
});

// ─── The core against scapy ──────────────────────────────────────────────────

/** The core seals a batch; scapy opens each packet back to what went in. */
async function coreToScapy(core: Core, r: Rng, s: Scenario, why: string): Promise<void> {
  const inners = Array.from({ length: SCAPY_BATCH }, () => scenarioInner(r, s, "out"));
  inners.forEach((p, i) => core.writePacket(i, p));
  assert.equal(core.processOutbound(SCAPY_BATCH), SCAPY_BATCH, why);
  for (let i = 0; i < SCAPY_BATCH; i++) {
    const seq = s.outSeq++;
    const pkt = core.packet(i).slice();
    const mode = s.mode === "transport" || s.mode === "transport-gre" ? "transport" : "tunnel";
    const back = bytes(await scapy.open(scapySa(s.out, seq), mode, pkt), "packet");
    if (s.mode === "transport") {
      // scapy puts the header back with the protocol from the trailer: the original packet.
      assert.equal(toHex(back), toHex(inners[i]), `${why} #${i}: scapy opened (transport)`);
    } else if (s.mode === "transport-gre") {
      const g = greStrip(back.subarray(s.outerFamily === 4 ? 20 : 40));
      assert.equal(toHex(g.inner), toHex(inners[i]), `${why} #${i}: scapy opened (GRE)`);
      assert.equal(g.key, s.gre!.key, why);
    } else {
      assert.equal(toHex(back), toHex(inners[i]), `${why} #${i}: scapy opened`);
    }
  }
}

/** scapy seals (random IVs); the core opens each to the inner packet; scapy's packets with a bit flipped are refused. */
async function scapyToCore(core: Core, r: Rng, s: Scenario, why: string): Promise<void> {
  const udp = s.ports ? { sport: s.ports.dport, dport: s.ports.sport } : undefined;
  const { ivLen } = suiteSizes(s.in.suite);
  const sealed: InboundPacket[] = [];
  for (let k = 0; k <= SCAPY_BATCH; k++) {
    const seq = s.inSeq++;
    const lo = seqHalves(seq).lo, ssa = scapySa(s.in, seq), iv = r.bytes(ivLen);
    const inner = scenarioInner(r, s, "in");
    let packet: Uint8Array;
    if (s.mode === "transport") {
      packet = await scapy.sealTransport(ssa, lo, iv, inner, udp);
    } else if (s.mode === "transport-gre") {
      const plain = frame({ src: s.remote, dst: s.local }, PROTO.GRE, concat(greHeader(inner, { key: s.gre!.key }), inner));
      packet = await scapy.sealTransport(ssa, lo, iv, plain, udp);
    } else {
      packet = await scapy.sealTunnel(ssa, lo, iv, { src: addrText(s.remote), dst: addrText(s.local), ttl: r.int(1, 255) }, inner, udp);
    }
    sealed.push({ packet, inner, seq, espOff: (s.outerFamily === 4 ? 20 : 40) + (udp ? 8 : 0) });
  }
  const last = sealed.pop()!;
  sealed.forEach((p, i) => writeInbound(core, r, s, i, p));
  assert.equal(core.processInbound(SCAPY_BATCH), SCAPY_BATCH, `${why}: ${Array.from({ length: SCAPY_BATCH }, (_, i) => core.reasonName(i))}`);
  for (let i = 0; i < SCAPY_BATCH; i++) {
    const got = core.packet(i);
    if (s.mode === "transport" && slotKinds[i] !== KIND.IP) {
      const hl = s.outerFamily === 4 ? 20 : 40;
      assert.equal(toHex(got.subarray(hl)), toHex(sealed[i].inner.subarray(hl)), `${why} #${i}`);
    } else {
      assert.equal(toHex(got), toHex(sealed[i].inner), `${why} #${i}: core opened scapy's packet`);
    }
  }
  if (s.c.suite !== "aes-cbc") checkFlips(core, r, s, last, `${why} (scapy's packet)`);
}

const SCAPY_BATCH = 4;

for (const c of SUITE_CASES) {
  test(`core ⇄ scapy: ${c.name}, with and without ESN, every mode, IPv4/IPv6, UDP or not`, async () => {
    const seed = seedFromEnv();
    const r = new Rng((seed ^ (c.name.length * 104729 + c.keyLen)) >>> 0);
    const core = await Core.create({ slots: 64, maxSas: 16, maxPolicies: 8, largeWindowBlocks: 4 });
    let n = 0;
    for (const esn of [false, true]) {
      for (const mode of DIFF_MODES) {
        for (const outerFamily of [4, 6] as const) {
          for (const udp of [false, true]) {
            const innerFamily = mode === "transport" ? outerFamily : r.pick([4, 6] as const);
            const why = `seed ${seed}: ${c.name} esn=${esn} ${mode} outer v${outerFamily} inner v${innerFamily} udp=${udp}`;
            core.clearPolicies();
            const s = addScenario(core, r, { c, esn, mode, outerFamily, innerFamily, udp }, 1 + (n % 15));
            await coreToScapy(core, r, s, why);
            await scapyToCore(core, r, s, why);
            core.removeSa(s.outId);
            core.removeSa(s.inId);
            n++;
          }
        }
      }
    }
    assert.equal(n, 2 * DIFF_MODES.length * 2 * 2);
  });
}
