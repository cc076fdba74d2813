// SaTable (host/sa/install.ts) against a model, over random sequences of
// applies: peers come and go, move, change tunnel, and their SA lists change
// (rekeys: new identities in, old ones out, the outbound one switched). An
// SA's identity is (direction, SPI, key id) (spec.ts): the table finds the
// SAs it holds by comparing those fields (heldIn / heldOut) and a peer's
// tunnel field by field (sameTunnel), with no map or key string per peer.
// After every apply:
//   - the core holds exactly the wanted SAs, each with its SPI and peer id;
//   - an SA whose identity and tunnel were held before keeps its SA id (its
//     sequence number and replay window: never reset, never reopened), and
//     every other one is new;
//   - the events say exactly which were installed and which removed.
// Also sameTunnel ⇔ equal tunnelKey, and the core's split of key ‖ salt
// (SaParams.saltInKey) seals what node:crypto opens with the split keys.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fc from "fast-check";
import type { Suite } from "../../host/config/model.ts";
import type { Core } from "../../host/core/core.ts";
import { SaTable } from "../../host/sa/install.ts";
import { sameTunnel, tunnelKey, type PeerSpec, type SaEvent, type SaSpec } from "../../host/sa/spec.ts";
import { innerUdp, makeCore, nodeOpenEsp } from "./core-helpers.ts";

const NAMES = ["a", "b", "c", "d"];

interface PeerGen { on: boolean; mtu: number; addr: number; ids: { spi: number; keyIn: number; spiOut: number; keyOut: number }[] }

/**
 * One peer's spec: SPIs are the peer's own (index × 0x100 + n: inbound SPIs
 * are unique in a core, as the config checks), key ids from a small pool per
 * SPI: a step may give an SPI a new key (a static key edited, its SPI kept),
 * which replaces that SA.
 */
function peerSpec(i: number, g: PeerGen): PeerSpec {
  const sas: SaSpec[] = g.ids.map((d, index) => ({
    index, spiIn: 0x1000 + i * 0x100 + d.spi, spiOut: 0x9000 + i * 0x100 + d.spiOut, suite: "aes-256-gcm" as Suite, esn: false,
    replayWindow: 64, lifetime: {}, keyIdIn: `in${d.spi}k${d.keyIn}`, keyIdOut: `out${d.keyOut}`, durable: false,
    keysIn: { key: randomBytes(36) }, keysOut: { key: randomBytes(36) },
  }));
  return {
    name: NAMES[i], mode: "tunnel", local: "192.0.2.1", address: `198.51.100.${10 + g.addr}`, port: 4500, localPort: 4500, wanIndex: 0,
    family: 4, encap: "udp", natT: true, keepalive: 0, greSeq: false, mtu: g.mtu, carrier: "udp4" as PeerSpec["carrier"],
    locals: ["10.0.0.0/16"], remotes: [`10.${i + 1}.0.0/16`], priority: 0, sas,
  };
}

const idGen = fc.record({ spi: fc.integer({ min: 0, max: 5 }), keyIn: fc.integer({ min: 0, max: 1 }), spiOut: fc.integer({ min: 0, max: 2 }), keyOut: fc.integer({ min: 0, max: 2 }) });
const peerGen: fc.Arbitrary<PeerGen> = fc.record({
  on: fc.boolean(),
  mtu: fc.constantFrom(1400, 1300), // a change of tunnel: rebuilt
  addr: fc.integer({ min: 0, max: 1 }), // a move: kept
  ids: fc.uniqueArray(idGen, { minLength: 1, maxLength: 3, selector: (d) => d.spi }),
});

type Ident = string;
const inId = (p: PeerSpec, s: SaSpec): Ident => `${p.name} in ${s.spiIn} ${s.keyIdIn}`;
const outId = (p: PeerSpec, s: SaSpec): Ident => `${p.name} out ${s.spiOut} ${s.keyIdOut}`;

/** The SAs the table says it holds, by identity → SA id (read from prov and the core). */
function held(t: SaTable, core: Core, specs: PeerSpec[]): Map<Ident, number> {
  const m = new Map<Ident, number>();
  t.prov.peers.forEach((rt, k) => {
    const p = specs[k];
    assert.equal(rt.name, p.name);
    for (const sa of rt.in) {
      const s = p.sas.find((x) => x.spiIn === sa.spi)!;
      assert.ok(s, `peer ${p.name} holds inbound spi ${sa.spi} it no longer lists`);
      assert.equal(sa.index, s.index);
      m.set(inId(p, s), sa.saId);
    }
    assert.ok(rt.out, `peer ${p.name} has no outbound SA`);
    assert.equal(rt.out!.spi, p.sas[0].spiOut);
    m.set(outId(p, p.sas[0]), rt.out!.saId);
    for (const id of [rt.out!.saId, ...rt.in.map((x) => x.saId)]) {
      const st = core.saState(id);
      assert.ok(st.live);
      assert.equal(st.peerId, rt.peerId);
    }
  });
  return m;
}

/** Whether the core holds SA `id` (saState refuses an id it holds no record for). */
function liveSa(core: Core, id: number): boolean {
  try {
    return core.saState(id).live;
  } catch {
    return false;
  }
}

test("SaTable keeps, adds and removes SAs by identity as a model says, over random applies (fast-check)", async () => {
  await fc.assert(fc.asyncProperty(fc.array(fc.array(peerGen, { minLength: 4, maxLength: 4 }), { minLength: 1, maxLength: 8 }), async (steps) => {
    const core = await makeCore({ maxSas: 128, maxPolicies: 64 });
    const events: SaEvent[] = [];
    const t = new SaTable(core, { emit: (e) => void events.push(e) });
    let before = new Map<Ident, number>();
    let tunnels = new Map<string, string>();
    for (const step of steps) {
      const specs = step.map((g, i) => (g.on ? peerSpec(i, g) : null)).filter((p): p is PeerSpec => p !== null);
      // the model: what is wanted, and what of it was held on the same tunnel
      const want = new Set<Ident>();
      const keep = new Set<Ident>();
      for (const p of specs) {
        const same = tunnels.get(p.name) === tunnelKey(p);
        for (const id of [...p.sas.map((s) => inId(p, s)), outId(p, p.sas[0])]) {
          want.add(id);
          if (same && before.has(id)) keep.add(id);
        }
      }
      events.length = 0;
      t.apply(specs);
      const now = held(t, core, specs);
      assert.deepEqual([...now.keys()].sort(), [...want].sort());
      let live = 0;
      for (let id = 0; id < core.maxSas; id++) live += liveSa(core, id) ? 1 : 0;
      assert.equal(live, want.size, "the core holds other SAs than the wanted ones");
      for (const id of keep) assert.equal(now.get(id), before.get(id), `${id} kept its identity but not its SA id`);
      const installed = events.filter((e) => e.event === "sa-installed").length;
      const removed = events.filter((e) => e.event === "sa-removed").length;
      assert.equal(installed, want.size - keep.size, "installed events");
      assert.equal(removed, before.size - keep.size, "removed events");
      before = now;
      tunnels = new Map(specs.map((p) => [p.name, tunnelKey(p)]));
    }
  }), { numRuns: 60 });
});

test("an inbound SPI moving to another peer that stays is refused before anything changes (ApplyError)", async () => {
  const core = await makeCore({ maxSas: 16, maxPolicies: 16 });
  const t = new SaTable(core, {});
  const g = (spi: number): PeerGen => ({ on: true, mtu: 1400, addr: 0, ids: [{ spi, keyIn: 0, spiOut: 0, keyOut: 0 }] });
  const a = peerSpec(0, g(1)), b = peerSpec(1, g(2));
  t.apply([a, b]);
  const ids = () => t.prov.peers.map((rt) => [rt.name, rt.out!.saId, ...rt.in.map((x) => `${x.spi}:${x.saId}`)].join(" "));
  const was = ids();
  // b takes a's inbound SPI while a, listed first, gives it up: a second step is needed.
  const a2 = peerSpec(0, g(3)), b2 = peerSpec(1, g(2));
  b2.sas[0].spiIn = a.sas[0].spiIn;
  assert.throws(() => t.apply([a2, b2]), /held by peer a until this apply; move an SPI between peers in two steps/);
  assert.deepEqual(ids(), was, "nothing changed");
  // in two steps it goes through
  t.apply([a2, peerSpec(1, g(2))]);
  const b3 = peerSpec(1, g(2));
  b3.sas[0].spiIn = a.sas[0].spiIn;
  t.apply([peerSpec(0, g(3)), b3]);
  assert.equal(t.prov.peers[1].in[0].spi, a.sas[0].spiIn);
});

test("sameTunnel(a, b) is tunnelKey(a) === tunnelKey(b) (fast-check)", () => {
  const fields = fc.record({
    mode: fc.constantFrom("tunnel", "transport", "gre", "ipip"), local: fc.constantFrom("192.0.2.1", "2001:db8::1"),
    localPort: fc.constantFrom(4500, 4501), wanIndex: fc.integer({ min: 0, max: 1 }), encap: fc.constantFrom("udp", "raw", "plain"),
    natT: fc.boolean(), greKey: fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined }), greSeq: fc.boolean(),
    mtu: fc.constantFrom(0, 1400), address: fc.constantFrom("198.51.100.1", "198.51.100.2"), port: fc.constantFrom(4500, 500),
  });
  // b mixes a's fields with another's, field by field: most pairs differ in a field or two
  fc.assert(fc.property(fields, fields, fc.array(fc.boolean(), { minLength: 11, maxLength: 11 }), (a, other, mask) => {
    const b = Object.fromEntries(Object.keys(a).map((k, i) => [k, (mask[i] ? other : a)[k as keyof typeof a]]));
    const pa = a as unknown as PeerSpec, pb = b as unknown as PeerSpec;
    assert.equal(sameTunnel(pa, pb), tunnelKey(pa) === tunnelKey(pb));
    assert.equal(sameTunnel(pa, pa), true);
  }), { numRuns: 2000 });
});

test("key ‖ salt split by the core (saltInKey) seals what node:crypto opens with the split keys (fast-check)", async () => {
  const core = await makeCore({ maxSas: 4 });
  const suites = fc.constantFrom(["aes-gcm-16", 16], ["aes-gcm-16", 24], ["aes-gcm-16", 32], ["chacha20-poly1305", 32]) as fc.Arbitrary<["aes-gcm-16" | "chacha20-poly1305", number]>;
  await fc.assert(fc.asyncProperty(suites, fc.uint8Array({ minLength: 36, maxLength: 36 }), fc.integer({ min: 1, max: 0xffffffff }), async ([suite, keyLen], bytes, spi) => {
    const keymat = bytes.slice(0, keyLen + 4);
    const id = core.addSa({ direction: "out", suite, mode: "payload", spi, key: keymat, saltInKey: true, peerId: 1 });
    try {
      core.writePacket(0, innerUdp("10.1.0.1", "10.2.0.1", 24), 0, id, 4);
      assert.equal(core.processOutbound(1), 1);
      const esp = core.packet(0);
      nodeOpenEsp(esp, suite, { key: keymat.subarray(0, keyLen), salt: keymat.subarray(keyLen) }); // throws on a bad tag
      assert.equal(keymat.length, keyLen + 4, "the caller's keying material is left as it was");
    } finally {
      core.removeSa(id);
    }
  }), { numRuns: 100 });
  assert.throws(() => core.addSa({ direction: "out", suite: "aes-gcm-16", mode: "payload", spi: 1, key: new Uint8Array(3), saltInKey: true, peerId: 1 }), /shorter than its 4-byte salt/);
});
