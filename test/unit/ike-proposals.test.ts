// Proposals (host/ike/proposals.ts: RFC 7296 §2.7, §3.3) and traffic selectors
// (host/ike/ts.ts: §2.9, §3.13.1): parsing strongSwan-style strings, the
// responder's choice, the initiator's check of the answer, narrowing.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { acceptResponse, parseProposal, selectProposal, toProposals, type ProposalSpec } from "../../host/ike/proposals.ts";
import { intersect, narrow, prefixLength, tsFromCidrs, tsText, within } from "../../host/ike/ts.ts";
import type { Proposal } from "../../host/ike/sa_payload.ts";

const spec = (s: string, p: "ike" | "esp" = "ike"): ProposalSpec => {
  const r = parseProposal(s, p);
  if (!r.ok) throw new Error(r.message);
  return r.spec;
};
const none = new Uint8Array(0);

test("parseProposal: strongSwan keywords to transforms; PRF from the integrity hash when none is named", () => {
  assert.deepEqual(spec("aes128gcm16-prfsha256-ecp256"), { protocol: 1, encr: [{ id: 20, keyBits: 128 }], integ: [], prf: [5], dh: [19], esn: [] });
  assert.deepEqual(spec("aes256-sha256-modp2048"), { protocol: 1, encr: [{ id: 12, keyBits: 256 }], integ: [12], prf: [5], dh: [14], esn: [] });
  assert.deepEqual(spec("chacha20poly1305", "esp"), { protocol: 3, encr: [{ id: 28 }], integ: [], prf: [], dh: [], esn: [0] });
  assert.deepEqual(spec("aes128-sha256-esn-noesn", "esp").esn, [1, 0]);
  const bad: [string, "ike" | "esp", RegExp][] = [
    ["aes128gcm16-ecp256", "ike", /no PRF/],
    ["aes128gcm16-prfsha256", "ike", /no Diffie-Hellman/],
    ["aes128-prfsha256-ecp256", "ike", /needs an integrity/],
    ["aes128gcm16-sha256-prfsha256-ecp256", "ike", /mixes an AEAD/],
    ["3des-sha1-modp1024", "ike", /"3des"/],
    ["aes128gcm16-prfsha256", "esp", /"prfsha256"/],
    ["sha256", "esp", /no encryption/],
  ];
  for (const [text, p, msg] of bad) {
    const r = parseProposal(text, p);
    assert.ok(!r.ok && msg.test(r.message), `${text}: ${r.ok ? "accepted" : r.message}`);
  }
});

test("selectProposal: the responder's preference decides among what both allow; one transform per type in the answer (§3.3.6)", () => {
  const offered = toProposals([spec("aes128-sha256-modp2048"), spec("aes128gcm16-aes256gcm16-prfsha384-prfsha256-x25519-ecp256")], none);
  const mine = [spec("aes256gcm16-prfsha256-ecp256"), spec("aes128-sha256-modp2048")];
  const c = selectProposal(offered, mine)!;
  assert.equal(c.num, 2);
  assert.deepEqual([c.encr.keyBits, c.prf!.id, c.dh], [256, 5, 19]);
  assert.deepEqual(c.proposal.transforms.map((t) => [t.type, t.id]), [[1, 20], [2, 5], [4, 19]]);
  // and the initiator accepts that answer against what it offered
  const back = acceptResponse([c.proposal], [spec("aes128-sha256-modp2048"), spec("aes128gcm16-aes256gcm16-prfsha384-prfsha256-x25519-ecp256")]);
  assert.deepEqual([back?.num, back?.encr.keyBits, back?.dh], [2, 256, 19]);
  assert.equal(selectProposal(offered, [spec("chacha20poly1305-prfsha512-x25519")]), undefined, "nothing in common");
});

test("acceptResponse refuses answers that name anything not offered, or more than one transform of a type", () => {
  const offered = [spec("aes128gcm16-prfsha256-ecp256")];
  const good = selectProposal(toProposals(offered, none), offered)!.proposal;
  assert.ok(acceptResponse([good], offered));
  const variants: [string, Proposal[]][] = [
    ["two proposals", [good, good]],
    ["proposal number 2", [{ ...good, num: 2 }]],
    ["another key length", [{ ...good, transforms: good.transforms.map((t) => (t.type === 1 ? { ...t, attributes: [{ type: 14, value: 256 }] } : t)) }]],
    ["another group", [{ ...good, transforms: good.transforms.map((t) => (t.type === 4 ? { ...t, id: 14 } : t)) }]],
    ["two DH transforms", [{ ...good, transforms: [...good.transforms, { type: 4, id: 19, attributes: [] }] }]],
    ["an unknown transform type", [{ ...good, transforms: [...good.transforms, { type: 9, id: 1, attributes: [] }] }]],
    ["an unknown attribute", [{ ...good, transforms: good.transforms.map((t) => (t.type === 2 ? { ...t, attributes: [{ type: 99, value: 1 }] } : t)) }]],
    ["ESP protocol", [{ ...good, protocol: 3 }]],
  ];
  for (const [what, ans] of variants) assert.equal(acceptResponse(ans, offered), undefined, what);
});

test("ESP: AEAD proposals carry no integrity; DH optional without PFS; ESN chosen by preference", () => {
  const mine = [spec("aes128gcm16-noesn-esn", "esp")];
  const withInteg: Proposal = { num: 1, protocol: 3, spi: Uint8Array.of(1, 2, 3, 4), transforms: [{ type: 1, id: 20, attributes: [{ type: 14, value: 128 }] }, { type: 3, id: 12, attributes: [] }, { type: 5, id: 0, attributes: [] }] };
  assert.equal(selectProposal([withInteg], mine, "optional"), undefined, "AES-GCM with HMAC is refused");
  const ok = toProposals([spec("aes128gcm16-esn-noesn", "esp")], Uint8Array.of(1, 2, 3, 4));
  const c = selectProposal(ok, mine, "optional")!;
  assert.deepEqual([c.suite, c.esn, [...c.spi]], ["aes-128-gcm", false, [1, 2, 3, 4]]);
  assert.equal(selectProposal(toProposals([spec("aes192-sha256", "esp")], none), [spec("aes192-sha256", "esp")], "optional"), undefined, "no core suite for AES-192-CBC");
});

test("traffic selectors: prefix ranges, text, intersection and narrowing (§2.9)", () => {
  const [a, b, c] = tsFromCidrs(["10.0.0.0/8", "10.1.2.0/24", "fd00:1::/48"]);
  assert.deepEqual([tsText(a), tsText(b), tsText(c)], ["10.0.0.0/8", "10.1.2.0/24", "fd00:1::/48"]);
  assert.deepEqual([...a.end], [10, 255, 255, 255]);
  assert.equal(tsText(intersect(a, b)!), "10.1.2.0/24");
  assert.equal(intersect(a, c), undefined, "families differ");
  const tcp = { ...a, ipProtocol: 6, startPort: 80, endPort: 443 };
  assert.equal(tsText(intersect(tcp, b)!), "10.1.2.0/24[6/80-443]");
  assert.equal(intersect(tcp, { ...b, ipProtocol: 17 }), undefined);
  assert.deepEqual(narrow([a, c], [b]).map(tsText), ["10.1.2.0/24"]);
  assert.ok(within([b], [a]));
  assert.ok(!within([a], [b]));
  assert.equal(prefixLength(Uint8Array.of(10, 0, 0, 1), Uint8Array.of(10, 0, 0, 7)), undefined);
  assert.equal(tsText({ ...b, start: Uint8Array.of(10, 0, 0, 1), end: Uint8Array.of(10, 0, 0, 7) }), "10.0.0.1-10.0.0.7");
});

test("intersect agrees with a set model on random IPv4 ranges and ports (fast-check)", () => {
  const sel = fc.record({
    lo: fc.integer({ min: 0, max: 255 }), hi: fc.integer({ min: 0, max: 255 }),
    p0: fc.integer({ min: 0, max: 20 }), p1: fc.integer({ min: 0, max: 20 }), proto: fc.constantFrom(0, 6, 17),
  });
  const mk = (s: { lo: number; hi: number; p0: number; p1: number; proto: number }) => ({
    tsType: 7, ipProtocol: s.proto, startPort: s.p0, endPort: s.p1, start: Uint8Array.of(10, 0, 0, s.lo), end: Uint8Array.of(10, 0, 0, s.hi),
  });
  const member = (t: ReturnType<typeof mk>, addr: number, port: number, proto: number) =>
    t.start[3] <= addr && addr <= t.end[3] && t.startPort <= port && port <= t.endPort && (t.ipProtocol === 0 || t.ipProtocol === proto);
  fc.assert(
    fc.property(sel, sel, fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 20 }), fc.constantFrom(6, 17), (x, y, addr, port, proto) => {
      const [tx, ty] = [mk(x), mk(y)];
      const i = intersect(tx, ty);
      const inBoth = member(tx, addr, port, proto) && member(ty, addr, port, proto);
      assert.equal(i ? member(i as ReturnType<typeof mk>, addr, port, proto) : false, inBoth);
    }),
    { numRuns: 3000 },
  );
});

test("DH transforms in ESP proposals: required, optional (CREATE_CHILD_SA), ignored (IKE_AUTH, no KE there)", () => {
  const spi = Uint8Array.of(0, 0, 1, 0);
  const withDh = toProposals([spec("aes128gcm16-ecp256", "esp")], spi);
  const without = toProposals([spec("aes128gcm16", "esp")], spi);
  const plain = [spec("aes128gcm16", "esp")];
  const pfs = [spec("aes128gcm16-ecp256", "esp")];
  assert.equal(selectProposal(withDh, plain, "optional"), undefined, "PFS wanted by the peer, not by us");
  assert.equal(selectProposal(without, pfs, "optional"), undefined, "PFS wanted by us, not offered");
  assert.equal(selectProposal(withDh, pfs, "optional")?.dh, 19);
  const ignored = selectProposal(withDh, plain, "ignore")!;
  assert.equal(ignored.dh, undefined);
  assert.deepEqual(ignored.proposal.transforms.map((t) => t.type), [1, 5], "no DH transform in the answer");
  assert.equal(selectProposal(without, pfs, "ignore")?.suite, "aes-128-gcm");
});
