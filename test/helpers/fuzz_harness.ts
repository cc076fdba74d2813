// A core loaded with one SA pair per suite × mode (plus plain IP-in-IP/GRE,
// payload mode, bypass and discard policies) and a corpus of valid packets
// for each, from which the fuzz tests draw and mutate (test/helpers/mutate.ts).
// Used by test/fuzz/fuzz-inbound-outbound.test.ts and test/fuzz/no-alloc.test.ts.
import { Core, HEADROOM, KIND, MAX_PACKET, SLOT_SIZE, VERDICT } from "../../host/core/core.ts";
import { concat, frame, greHeader, PROTO } from "./ref_esp.ts";
import { Rng, SUITE_CASES, innerPacket, v4 } from "./gen.ts";
import { DIFF_MODES, addScenario, scenarioInner, sealInbound, type Scenario } from "./core_scenario.ts";
import { MUTATIONS, mutateInto, type Mutation } from "./mutate.ts";

export interface FuzzInput {
  bytes: Uint8Array;
  kind: number;
  /** outbound: SA to use directly, -1 = SPD */
  saId: number;
  proto: number;
  /** inbound kinds 1/2: the remote/local address (16 bytes, core layout) and port */
  remote?: Uint8Array;
  local?: Uint8Array;
  port: number;
}

export interface Harness {
  core: Core;
  r: Rng;
  scenarios: Scenario[];
  inbound: FuzzInput[];
  outbound: FuzzInput[];
  spis: number[];
}

const pad16 = (a: Uint8Array) => { const b = new Uint8Array(16); b.set(a); return b; };

/** Builds the core, its SAs and policies, and the corpus. `perScenario` valid packets each way per SA pair. */
export async function buildHarness(seed: number, perScenario = 24, slots = 256): Promise<Harness> {
  const r = new Rng(seed);
  const core = await Core.create({ slots, maxSas: 96, maxPolicies: 64, largeWindowBlocks: 32 });
  const h: Harness = { core, r, scenarios: [], inbound: [], outbound: [], spis: [] };
  let net = 0;
  for (const c of SUITE_CASES) {
    for (const mode of DIFF_MODES) {
      const esn = net === 0 ? false : r.bool();
      const outerFamily = r.pick([4, 6] as const);
      const spec = {
        c, esn, mode, outerFamily, innerFamily: r.pick([4, 6] as const), udp: r.bool(), net,
        // Some SAs run out of sequence numbers during the run (RFC 4303 §3.3.3), some have a path MTU or TFC padding.
        outSeq: net === 0 ? 0xffffffffn - 100n : !esn && r.bool(0.2) ? BigInt(0xffffffff - r.int(0, 2000)) : undefined,
        outExtra: r.pick([{}, {}, { mtu: r.int(200, 1500) }, { tfcPad: r.int(1, 1500) }]),
      };
      const s = addScenario(core, r, spec, net + 1);
      h.scenarios.push(s);
      h.spis.push(s.in.spi, s.out.spi);
      for (let k = 0; k < perScenario; k++) {
        const p = sealInbound(r, s, scenarioInner(r, s, "in"), s.inSeq + BigInt(r.int(0, 3 * s.window)));
        h.inbound.push({ bytes: p.packet, kind: KIND.IP, saId: -1, proto: 0, port: 0 });
        if (s.mode !== "transport") {
          const udpOff = s.ports ? 8 : 0;
          const k2 = s.ports ? KIND.UDP : KIND.PAYLOAD;
          h.inbound.push({
            bytes: p.packet.subarray(p.espOff - (k2 === KIND.UDP ? 0 : udpOff)), kind: k2, saId: -1, proto: 0,
            remote: pad16(s.remote), local: pad16(s.local), port: s.ports?.sport ?? 0,
          });
        }
        h.outbound.push({ bytes: scenarioInner(r, s, "out"), kind: 0, saId: r.bool(0.9) ? -1 : s.outId, proto: 0, port: 0 });
      }
      net++;
    }
  }
  addPlain(h, net);
  addPayloadSas(h);
  // Policies the ESP pairs do not cover: bypass, discard, and (by absence) no policy.
  core.addPolicy({ action: "bypass", local: "10.200.0.0/16", remote: "0.0.0.0/0" });
  core.addPolicy({ action: "discard", local: "10.201.0.0/16", remote: "0.0.0.0/0" });
  for (let k = 0; k < perScenario; k++) {
    const n = r.int(28, 600);
    h.outbound.push({ bytes: innerPacket(r, v4(10, 200, 0, r.int(1, 254)), v4(192, 0, 2, 1), n), kind: 0, saId: -1, proto: 0, port: 0 });
    h.outbound.push({ bytes: innerPacket(r, v4(10, 201, 0, r.int(1, 254)), v4(192, 0, 2, 1), n), kind: 0, saId: -1, proto: 0, port: 0 });
    h.outbound.push({ bytes: innerPacket(r, v4(10, 202, 0, r.int(1, 254)), v4(192, 0, 2, 1), n), kind: 0, saId: -1, proto: 0, port: 0 });
    // An outbound packet steered at an inbound SA or at no SA at all.
    h.outbound.push({ bytes: innerPacket(r, v4(10, 1, 0, 1), v4(10, 2, 0, 1), n), kind: 0, saId: r.pick([h.scenarios[0].inId, 95, 5000, 0x7fffffff]), proto: 0, port: 0 });
  }
  // RFC 3948: IKE behind the non-ESP marker, NAT keepalives, on both input kinds.
  for (const s of h.scenarios.filter((x) => x.ports).slice(0, 4)) {
    const o = { src: s.remote, dst: s.local, udp: { sport: s.ports!.dport, dport: s.ports!.sport } };
    const ike = concat(new Uint8Array(4), r.bytes(r.int(28, 300)));
    h.inbound.push({ bytes: frame(o, PROTO.ESP, ike), kind: KIND.IP, saId: -1, proto: 0, port: 0 });
    h.inbound.push({ bytes: ike, kind: KIND.UDP, saId: -1, proto: 0, remote: pad16(s.remote), local: pad16(s.local), port: 4500 });
    h.inbound.push({ bytes: frame(o, PROTO.ESP, Uint8Array.of(0xff)), kind: KIND.IP, saId: -1, proto: 0, port: 0 });
  }
  return h;
}

/** Plain IP-in-IP and GRE (no ESP, trusted ports): one pair each. */
function addPlain(h: Harness, net: number): void {
  const { core, r } = h;
  const local = v4(192, 0, 2, 200), remote = v4(198, 51, 100, 200);
  for (const [mode, n] of [["ipip", net], ["gre", net + 1]] as const) {
    const greKey = mode === "gre" ? r.u32() : undefined;
    const peerId = 80 + n - net;
    const out = core.addSa({ direction: "out", suite: "none", mode, peerId, local, remote, greKey, greSeq: mode === "gre" });
    core.addSa({ direction: "in", suite: "none", mode, peerId, local, remote, greKey });
    core.addPolicy({ action: "protect", local: `10.${2 * n + 1}.0.0/16`, remote: `10.${2 * n + 2}.0.0/16`, saId: out, peerId });
    for (let k = 0; k < 16; k++) {
      const inner = innerPacket(r, v4(10, 2 * n + 2, 0, r.int(1, 254)), v4(10, 2 * n + 1, 0, r.int(1, 254)), r.int(28, 1400));
      const o = { src: remote, dst: local };
      const bytes = mode === "ipip" ? frame(o, PROTO.IPIP, inner) : frame(o, PROTO.GRE, concat(greHeader(inner, { key: greKey }), inner));
      h.inbound.push({ bytes, kind: KIND.IP, saId: -1, proto: 0, port: 0 });
      const back = innerPacket(r, v4(10, 2 * n + 1, 0, r.int(1, 254)), v4(10, 2 * n + 2, 0, r.int(1, 254)), r.int(28, 1400));
      h.outbound.push({ bytes: back, kind: 0, saId: -1, proto: 0, port: 0 });
    }
  }
}

/** Payload mode (the known-answer path): an outbound SA used by id with a next header, an inbound SA. */
function addPayloadSas(h: Harness): void {
  const { core, r } = h;
  const key = r.bytes(32), salt = r.bytes(4);
  const out = core.addSa({ direction: "out", suite: "chacha20-poly1305", mode: "payload", spi: 0x7e57_0001, key, salt, local: "192.0.2.9", remote: "198.51.100.9", peerId: 90 });
  core.addSa({ direction: "in", suite: "chacha20-poly1305", mode: "payload", spi: 0x7e57_0002, key, salt, local: "192.0.2.9", remote: "198.51.100.9", peerId: 90 });
  for (let k = 0; k < 16; k++) h.outbound.push({ bytes: r.bytes(r.int(0, 1400)), kind: 0, saId: out, proto: r.pick([4, 41, 47, 59, 6, 17]), port: 0 });
}

export interface Tally {
  sent: number;
  passed: number;
  verdicts: number[];
  /** drops by reason, as the descriptors said */
  reasons: number[];
}

export const newTally = (): Tally => ({ sent: 0, passed: 0, verdicts: [0, 0, 0, 0, 0, 0, 0], reasons: new Array(32).fill(0) });

/**
 * Fills slots 0..n-1 with mutated inputs drawn from the corpus of `dir`.
 * About one in a hundred descriptors is itself a lie (offset/length outside the slot).
 */
export function fillBatch(h: Harness, dir: "in" | "out", n: number): void {
  const { core, r } = h;
  const corpus = dir === "in" ? h.inbound : h.outbound;
  for (let i = 0; i < n; i++) {
    const input = corpus[r.int(0, corpus.length - 1)];
    const m: Mutation = r.bool(0.15) ? "none" : MUTATIONS[r.int(1, MUTATIONS.length - 1)];
    const slot = core.slot(i);
    const len = mutateInto(r, m, input.bytes, slot.subarray(HEADROOM), MAX_PACKET, h.spis);
    if (r.bool(0.01)) {
      core.setPacket(i, r.pick([0, HEADROOM, SLOT_SIZE - 1, SLOT_SIZE, 0xffffffff]), r.pick([0, 1, len, SLOT_SIZE, 0xffffffff]), r.int(0, 3), r.pick([-1, 0, 1 << 30]), r.int(0, 255));
    } else {
      core.setPacket(i, HEADROOM, len, dir === "in" ? input.kind : 0, input.saId, input.proto);
    }
    if (dir === "in" && input.kind !== KIND.IP && input.remote) core.setRemote(i, input.remote, input.port, input.local);
  }
}

/**
 * Reads back slots first..first+n-1: every packet has a verdict, drops a known
 * reason, results stay inside their slot. ICMP and FRAGMENT are TOO_BIG drops
 * the core answered. `passed` null: no processOutbound count to compare (fragment slots).
 */
export function tallyBatch(h: Harness, n: number, passed: number | null, t: Tally, first = 0): string | null {
  const { core } = h;
  let ok = 0;
  for (let i = first; i < first + n; i++) {
    const v = core.verdict(i);
    if (v > VERDICT.FRAGMENT) return `slot ${i}: verdict ${v}`;
    t.verdicts[v]++;
    if (v === VERDICT.DROP || v === VERDICT.ICMP || v === VERDICT.FRAGMENT) {
      const reason = core.reason(i);
      if (reason === 0 || reason >= 19) return `slot ${i}: dropped with reason ${reason}`;
      if (v !== VERDICT.DROP && core.reasonName(i) !== "TOO_BIG") return `slot ${i}: ${core.verdictName(i)} for ${core.reasonName(i)}`;
      t.reasons[reason]++;
      const off = core.offset(i), len = core.length(i);
      if (v === VERDICT.ICMP && off + len > SLOT_SIZE) return `slot ${i}: ICMP [${off}, ${off + len}) outside the slot`;
    } else {
      ok++;
      const off = core.offset(i), len = core.length(i);
      if (off + len > SLOT_SIZE) return `slot ${i}: ${core.verdictName(i)} packet [${off}, ${off + len}) outside the slot`;
    }
  }
  if (passed !== null && ok !== passed) return `process returned ${passed}, descriptors say ${ok}`;
  t.sent += n;
  t.passed += ok;
  return null;
}
