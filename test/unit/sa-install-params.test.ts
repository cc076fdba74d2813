// The per-SA shortcuts of an install (issue 9, docs/bench.md "One parameter
// object"), held to what they replace:
//   - SaTable writes every SA's core parameters into one object it keeps
//     (install.ts saParams): no field of one SA may reach the next (a GRE
//     key, UDP ports, a replay window, a resumed sequence number), and the
//     object lets go of the key once the core has it;
//   - key ids are checked by loops, not regular expressions: isKeyId
//     (journal_format.ts) ⇔ KEY_ID, plainKey (state_file.ts) ⇔ /^[0-9A-Za-z]+$/;
//   - a key's state let go of is not current any more (seq_store.ts
//     FileState.released), so a Resume prepared on it is tracked on the key's
//     new state: covered by sa-seq-release.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fc from "fast-check";
import type { Suite } from "../../host/config/model.ts";
import type { SaParams } from "../../host/core/core.ts";
import { SaTable } from "../../host/sa/install.ts";
import { isKeyId, KEY_ID } from "../../host/sa/journal_format.ts";
import type { PeerSpec, SaSpec } from "../../host/sa/spec.ts";
import { plainKey } from "../../host/sa/state_file.ts";
import { makeCore } from "./core-helpers.ts";

function sa(n: number, window: number): SaSpec {
  return {
    index: 0, spiIn: 0x100 + n, spiOut: 0x200 + n, suite: "aes-256-gcm" as Suite, esn: n % 2 === 0, replayWindow: window, lifetime: {},
    keyIdIn: `in${n}`, keyIdOut: `out${n}`, durable: false, keysIn: { key: randomBytes(36) }, keysOut: { key: randomBytes(36) },
  };
}

function peer(name: string, n: number, over: Partial<PeerSpec>): PeerSpec {
  return {
    name, mode: "tunnel", local: "192.0.2.1", address: `198.51.100.${n}`, port: 4500, localPort: 4500, wanIndex: 0,
    family: 4, encap: "raw", natT: true, keepalive: 0, greSeq: false, mtu: 0, carrier: "raw-esp",
    locals: ["10.0.0.0/16"], remotes: [`10.${n}.0.0/16`], priority: 0, sas: [sa(n, 64 * n)], ...over,
  };
}

/** What the old code's object literal gave for the SA `s` of `p` (install.ts before the shared object). */
function expected(p: PeerSpec, s: SaSpec, dir: "in" | "out", peerId: number): Record<string, unknown> {
  const gre = p.mode === "gre" || p.mode === "transport-gre", udp = p.encap === "udp";
  return {
    direction: dir, mode: p.mode, spi: dir === "in" ? s.spiIn : s.spiOut, esn: s.esn, replayWindow: dir === "in" ? s.replayWindow : undefined,
    suite: "aes-gcm-16", saltInKey: true, hmacKey: undefined, allowNoIntegrity: undefined, peerId, local: p.local, remote: p.address, mtu: p.mtu,
    greKey: gre ? p.greKey : undefined, greSeq: gre ? p.greSeq : undefined, udp: udp ? { sport: p.localPort, dport: p.port } : undefined,
    fixedRemote: udp ? !p.natT : undefined, initialSeq: undefined, priorSeen: undefined, seqLimit: undefined,
  };
}

test("SaTable: each SA's core parameters are its own, none carried over from the SA before, and no key is kept", async () => {
  const core = await makeCore();
  const seen: Record<string, unknown>[] = [];
  const add = core.addSa.bind(core);
  core.addSa = (p: SaParams): number => {
    const { key, ...rest } = p;
    assert.ok(key instanceof Uint8Array && key.length === 36, "the SA's own keying material");
    seen.push({ ...rest, udp: typeof p.udp === "object" ? { ...p.udp } : p.udp });
    return add(p);
  };
  // alternating: a GRE one with a key, a UDP one on other ports, a plain ESP one, UDP without NAT-T
  const peers = [
    peer("g", 1, { mode: "transport-gre", greKey: 77, greSeq: true, mtu: 1400 }),
    peer("u", 2, { encap: "udp", carrier: "udp", port: 4501, localPort: 4600, natT: true }),
    peer("r", 3, {}),
    peer("f", 4, { encap: "udp", carrier: "udp", natT: false }),
  ];
  const want = peers.flatMap((p, i) => [expected(p, p.sas[0], "in", i + 1), expected(p, p.sas[0], "out", i + 1)]);
  const table = new SaTable(core, {});
  table.apply(peers);
  assert.equal(seen.length, 8);
  for (let i = 0; i < 8; i++) {
    const got: Record<string, unknown> = {};
    for (const k of Object.keys(want[i])) got[k] = seen[i][k];
    assert.deepEqual(got, want[i], `SA ${i}`);
  }
  // the one parameter object holds no key between installs
  const params = (table as unknown as { params: SaParams }).params;
  assert.equal(params.key, undefined);
  assert.equal(params.hmacKey, undefined);
});

test("isKeyId ⇔ KEY_ID and plainKey ⇔ /^[0-9A-Za-z]+$/", () => {
  const PLAIN = /^[0-9A-Za-z]+$/;
  const chars = fc.constantFrom(..."0123456789abcdefABCDEFgz/.-_ \u00e9\u0660:".split(""));
  const str = fc.oneof(
    fc.string({ maxLength: 40 }),
    fc.array(chars, { maxLength: 34 }).map((a) => a.join("")),
    fc.array(fc.constantFrom(..."0123456789abcdef".split("")), { minLength: 31, maxLength: 33 }).map((a) => a.join("")),
    fc.tuple(fc.array(fc.constantFrom(..."0123456789abcdef".split("")), { minLength: 32, maxLength: 32 }), fc.nat(31), chars)
      .map(([a, i, c]) => (a[i] = c, a.join(""))),
  );
  fc.assert(fc.property(str, (s) => {
    assert.equal(isKeyId(s), KEY_ID.test(s), JSON.stringify(s));
    assert.equal(plainKey(s), PLAIN.test(s), JSON.stringify(s));
  }), { numRuns: 5000 });
  assert.ok(isKeyId("0123456789abcdef0123456789abcdef"));
  assert.ok(!isKeyId("0123456789abcdef0123456789abcdeF"));
  assert.ok(plainKey("Az09") && !plainKey("") && !plainKey(".."));
});
