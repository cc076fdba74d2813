// One pair of SAs (outbound and inbound, one peer) installed in the core
// together with their reference twins, and what the reference says the core
// must emit and accept. Shared by the differential, scapy and fuzz tests.
//
//   inner 10.1/16 (fd01::/16)  ── local ════ ESP ════ remote ──  inner 10.2/16 (fd02::/16)
//   (our side, policy "local")      outer addresses           (the peer's side)
//
// Transport mode has no inner network: the packet's own addresses are the
// outer ones (local host → remote host).
import assert from "node:assert/strict";
import { KIND, type Core, type Mode as CoreMode, type SaParams, type Suite as CoreSuite } from "../../host/core/core.ts";
import { toHex } from "../../host/core/raw_exports.ts";
import {
  addrText, cbcIvFromSeed, concat, frame, greHeader, innerProto, PROTO, sealEsp, sealTransport, seqIv, suiteSizes,
  type Outer, type RefSa, type RefSuite,
} from "./ref_esp.ts";
import { innerPacket, randomSa, randomSeq, v4, v6, type Rng, type SuiteCase } from "./gen.ts";

export type DiffMode = "tunnel" | "transport-ipip" | "transport-gre" | "transport";
export const DIFF_MODES: readonly DiffMode[] = ["tunnel", "transport-ipip", "transport-gre", "transport"];

export const coreSuite = (s: RefSuite): CoreSuite => (s === "aes-cbc-hmac-sha256-128" ? "aes-cbc-hmac-sha256" : s);

export interface ScenarioSpec {
  c: SuiteCase;
  esn: boolean;
  mode: DiffMode;
  outerFamily: 4 | 6;
  /** ignored in transport mode (the packet is the outer family) */
  innerFamily: 4 | 6;
  udp: boolean;
  /** inner networks 10.(2n+1)/16 ↔ 10.(2n+2)/16 (fd(2n+1)::/16 ↔ fd(2n+2)::/16), so scenarios can share an SPD; default 0 */
  net?: number;
  /** first outbound sequence number (default random, with `room` numbers left) */
  outSeq?: bigint;
  /** more outbound SA parameters (mtu, tfcPad, …) */
  outExtra?: Partial<SaParams>;
}

export interface Scenario extends ScenarioSpec {
  peerId: number;
  local: Uint8Array;
  remote: Uint8Array;
  ttl: number;
  tos: number;
  df: boolean;
  /** next outer IPv4 id the outbound SA will use */
  ipId: number;
  ports?: { sport: number; dport: number };
  gre?: { key?: number; seq: boolean; next: number };
  out: RefSa;
  ivSeed: Uint8Array;
  /** next outbound sequence number */
  outSeq: bigint;
  in: RefSa;
  /** next inbound sequence number the test will send */
  inSeq: bigint;
  window: number;
  outId: number;
  inId: number;
}

/** The inner network of side 1 (ours) or 2 (the peer's) of scenario net `n`: a /16. */
const netByte = (n: number, side: 1 | 2) => 2 * n + side;
const net = (six: boolean, n: number, side: 1 | 2) => (six ? `fd${netByte(n, side).toString(16).padStart(2, "0")}::/16` : `10.${netByte(n, side)}.0.0/16`);

/** A sequence start that leaves `room` numbers before the SA would be exhausted. */
function seqStart(r: Rng, esn: boolean, room: number): bigint {
  const s = randomSeq(r, esn);
  const max = esn ? 0xffffffffffffffffn : 0xffffffffn;
  return s + BigInt(room) > max ? max - BigInt(room) : s;
}

/** Installs a random outbound + inbound SA pair (and the SPD entries) for `spec` in `core`. */
export function addScenario(core: Core, r: Rng, spec: ScenarioSpec, peerId: number, room = 100_000): Scenario {
  const six = spec.outerFamily === 6;
  const local = six ? v6(r, 0x2001_0db8) : v4(192, 0, 2, r.int(1, 254));
  const remote = six ? v6(r, 0x2001_0db9) : v4(198, 51, 100, r.int(1, 254));
  const out = randomSa(r, spec.c, spec.esn);
  let inn = randomSa(r, spec.c, spec.esn);
  while (inn.spi === out.spi) inn = randomSa(r, spec.c, spec.esn);
  const s: Scenario = {
    ...spec, peerId, local, remote,
    ttl: r.int(1, 255), tos: r.int(0, 63) << 2, df: r.bool(), ipId: r.int(0, 65535),
    ports: spec.udp ? { sport: r.pick([4500, r.int(1024, 65535)]), dport: r.pick([4500, r.int(1024, 65535)]) } : undefined,
    gre: spec.mode === "transport-gre" ? { key: r.bool() ? r.u32() : undefined, seq: r.bool(), next: 0 } : undefined,
    out, ivSeed: r.bytes(8), outSeq: spec.outSeq ?? seqStart(r, spec.esn, room),
    in: inn, inSeq: seqStart(r, spec.esn, room), window: r.pick([32, 64, 128, 1024, 4096]),
    outId: -1, inId: -1,
  };
  const common = {
    suite: coreSuite(spec.c.suite), mode: spec.mode as CoreMode, esn: spec.esn, peerId,
    allowNoIntegrity: spec.c.suite === "aes-cbc", greKey: s.gre?.key, greSeq: s.gre?.seq,
  };
  s.outId = core.addSa({
    ...common, direction: "out", spi: out.spi, key: out.key, salt: out.salt, hmacKey: out.authKey, ivSeed: s.ivSeed,
    initialSeq: s.outSeq, local, remote, ttl: s.ttl, tos: s.tos, df: s.df, ipId: s.ipId, udp: s.ports ?? false,
    ...spec.outExtra,
  });
  s.inId = core.addSa({
    ...common, direction: "in", spi: inn.spi, key: inn.key, salt: inn.salt, hmacKey: inn.authKey,
    initialSeq: s.inSeq, replayWindow: s.window, local, remote, udp: s.ports ? { sport: s.ports.sport, dport: s.ports.dport } : false,
  });
  const innerSix = spec.mode === "transport" ? six : spec.innerFamily === 6;
  const [l, rm] = spec.mode === "transport"
    ? [addrText(local) + (six ? "/128" : "/32"), addrText(remote) + (six ? "/128" : "/32")]
    : [net(innerSix, spec.net ?? 0, 1), net(innerSix, spec.net ?? 0, 2)];
  core.addPolicy({ action: "protect", local: l, remote: rm, saId: s.outId, peerId });
  return s;
}

/** A random inner packet of the scenario, outbound (local side → remote side) or inbound. */
export function scenarioInner(r: Rng, s: Scenario, dir: "out" | "in", len?: number): Uint8Array {
  const six = s.mode === "transport" ? s.outerFamily === 6 : s.innerFamily === 6;
  let a: Uint8Array, b: Uint8Array;
  if (s.mode === "transport") {
    [a, b] = [s.local, s.remote];
  } else if (six) {
    const n = s.net ?? 0;
    a = v6(r, (((0xfd00 | netByte(n, 1)) << 16) | r.int(0, 0xffff)) >>> 0);
    b = v6(r, (((0xfd00 | netByte(n, 2)) << 16) | r.int(0, 0xffff)) >>> 0);
  } else {
    const n = s.net ?? 0;
    a = v4(10, netByte(n, 1), r.int(0, 255), r.int(1, 254)); b = v4(10, netByte(n, 2), r.int(0, 255), r.int(1, 254));
  }
  const n = len ?? r.pick([six ? 48 : 28, r.int(six ? 48 : 28, 200), r.int(200, 1400)]);
  return dir === "out" ? innerPacket(r, a, b, n) : innerPacket(r, b, a, n);
}

/** The outbound IV the core uses: the sequence number (AEAD) or AES_K(ivSeed || seq) (CBC). */
export function outIv(s: Scenario, seq: bigint): Uint8Array {
  return suiteSizes(s.out.suite).ivLen === 8 ? seqIv(seq) : cbcIvFromSeed(s.out.key, s.ivSeed, seq);
}

/**
 * The bytes the core must emit for `inner`, byte for byte, and advances the
 * scenario's outbound state (sequence number, IPv4 id, GRE sequence).
 */
export function expectOutbound(s: Scenario, inner: Uint8Array): Uint8Array {
  const seq = s.outSeq++;
  const iv = outIv(s, seq);
  if (s.mode === "transport") return sealTransport(s.out, inner, seq, iv, s.ports);
  const o: Outer = { src: s.local, dst: s.remote, ttl: s.ttl, tos: s.tos, id: s.ipId, df: s.df, udp: s.ports };
  if (s.outerFamily === 4) s.ipId = (s.ipId + 1) & 0xffff;
  let payload = inner, nh = innerProto(inner);
  if (s.mode === "transport-gre") {
    payload = concat(greHeader(inner, { key: s.gre!.key, seq: s.gre!.seq ? s.gre!.next++ >>> 0 : undefined }), inner);
    nh = PROTO.GRE;
  }
  // RFC 4303 §2.7 TFC padding: zeros after the payload up to the target; the
  // receiver finds the real end from the inner IP header.
  const tfc = s.outExtra?.tfcPad ?? 0;
  if (tfc > payload.length) payload = concat(payload, new Uint8Array(tfc - payload.length));
  return frame(o, PROTO.ESP, sealEsp(s.out, { seq, iv, payload, nextHeader: nh }));
}

export interface InboundPacket {
  /** the whole packet as it arrives: outer IP [/ UDP] / ESP */
  packet: Uint8Array;
  /** what the core must hand to TUN */
  inner: Uint8Array;
  seq: bigint;
  /** offset of the ESP header in `packet` */
  espOff: number;
}

/**
 * The peer's side: seals `inner` with the inbound SA at sequence `seq` with a
 * random IV and, sometimes, more padding than needed (RFC 4303 §2.4 allows up
 * to 255 bytes; the receiver must accept it).
 */
export function sealInbound(r: Rng, s: Scenario, inner: Uint8Array, seq: bigint): InboundPacket {
  const { ivLen, align } = suiteSizes(s.in.suite);
  const iv = r.bytes(ivLen);
  const extraPad = r.bool(0.25) ? align * r.int(1, Math.floor(200 / align)) : 0;
  const udp = s.ports ? { sport: s.ports.dport, dport: s.ports.sport } : undefined;
  if (s.mode === "transport") {
    const packet = sealTransport(s.in, inner, seq, iv, udp, extraPad);
    return { packet, inner, seq, espOff: (s.outerFamily === 4 ? 20 : 40) + (udp ? 8 : 0) };
  }
  let payload = inner, nh = innerProto(inner);
  if (s.mode === "transport-gre") {
    payload = concat(greHeader(inner, { key: s.gre!.key, seq: r.bool() ? r.u32() : undefined }), inner);
    nh = PROTO.GRE;
  }
  const o: Outer = { src: s.remote, dst: s.local, ttl: r.int(1, 255), tos: r.int(0, 255), id: r.int(0, 65535), udp };
  const packet = frame(o, PROTO.ESP, sealEsp(s.in, { seq, iv, payload, nextHeader: nh, extraPad }));
  return { packet, inner, seq, espOff: (s.outerFamily === 4 ? 20 : 40) + (udp ? 8 : 0) };
}

/** The input kind each slot was last given. */
export const slotKinds: number[] = [];

/** Puts an inbound packet in slot i as a whole IP packet, or (sometimes) as the host's sockets would hand it over. */
export function writeInbound(core: Core, r: Rng, s: Scenario, i: number, p: InboundPacket, kind?: number): void {
  const k = kind ?? (s.mode === "transport" ? KIND.IP : r.pick([KIND.IP, KIND.IP, s.ports ? KIND.UDP : KIND.PAYLOAD]));
  slotKinds[i] = k;
  if (k === KIND.IP) {
    core.writePacket(i, p.packet, KIND.IP);
    return;
  }
  core.writePacket(i, p.packet.subarray(p.espOff - (k === KIND.UDP ? 0 : s.ports ? 8 : 0)), k);
  core.setRemote(i, s.remote, k === KIND.UDP ? s.ports!.sport : 0, s.local);
}

/** Every change of any one byte of an ESP packet is refused for the right reason and changes nothing. */
export function checkFlips(core: Core, r: Rng, s: Scenario, p: InboundPacket, why: string): void {
  const before = core.readCounters(s.inId);
  const topBefore = core.saState(s.inId).replayTop;
  const espLen = p.packet.length - p.espOff;
  let auth = 0;
  for (let start = 0; start < espLen; start += core.slots) {
    const n = Math.min(core.slots, espLen - start);
    for (let k = 0; k < n; k++) {
      const bad = p.packet.slice();
      bad[p.espOff + start + k] ^= r.bool() ? 1 << r.int(0, 7) : r.int(1, 255); // one bit, or any other value
      writeInbound(core, r, s, k, { ...p, packet: bad }, KIND.IP);
    }
    assert.equal(core.processInbound(n), 0, `${why}: a flipped packet got through`);
    for (let k = 0; k < n; k++) {
      const at = start + k;
      const got = core.reasonName(k);
      const spi = new DataView(p.packet.buffer).getUint32(p.espOff);
      if (at < 4) {
        assert.equal(got, "NO_SA", `${why}: SPI byte ${at} (spi ${spi.toString(16)})`);
      } else if (at < 8) {
        assert.ok(got === "AUTH" || got === "REPLAY" || got === "REPLAY_OLD", `${why}: sequence byte ${at} gave ${got}`);
        if (got === "AUTH") auth++;
      } else {
        assert.equal(got, "AUTH", `${why}: byte ${at} of ${espLen}`);
        auth++;
      }
    }
  }
  const after = core.readCounters(s.inId);
  assert.equal(after.drops.AUTH - before.drops.AUTH, BigInt(auth), `${why}: AUTH counted per SA`);
  assert.equal(after.packets, before.packets, why);
  assert.equal(core.saState(s.inId).replayTop, topBefore, `${why}: forged packets moved the window`);
  // The genuine packet still opens, once.
  writeInbound(core, r, s, 0, p, KIND.IP);
  writeInbound(core, r, s, 1, p, KIND.IP);
  assert.equal(core.processInbound(2), 1, why);
  assert.equal(core.verdictName(0), "TO_TUN", why);
  assert.equal(toHex(core.packet(0)), toHex(p.inner), why);
  assert.equal(core.reasonName(1), "REPLAY", `${why}: the same packet twice`);
}
