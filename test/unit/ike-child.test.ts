// CREATE_CHILD_SA (RFC 7296 §1.3.1, §1.3.3) and CHILD_SA DELETE (§1.4.1) between
// two in-memory endpoints: rekeys started by either side, with and without PFS,
// extra CHILD_SAs, the window of one (§2.3) queueing requests.
import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeMessage } from "../../host/ike/message.ts";
import { openMessage } from "../../host/ike/sk.ts";
import { skKeys } from "../../host/ike/context.ts";
import { tsText } from "../../host/ike/ts.ts";
import type { IkeSa } from "../../host/ike/ike_sa.ts";
import type { ChildSaEstablished, IkeEvent } from "../../host/ike/types.ts";
import { A, assertMirrored, B, child, config, hex, kinds, lab } from "./ike-harness.ts";

const only = <T>(m: Map<string, T>) => [...m.values()][0];
const since = (es: IkeEvent[], n: number) => es.slice(n);

function up(espA = ["aes128gcm16"], espB = espA) {
  const l = lab(config("to-b", A, B, { esp: espA }), config("to-a", B, A, { esp: espB }));
  const sa = l.start();
  assert.equal(sa.state, "established");
  return { l, sa, saB: only(l.b.sas) as IkeSa, first: [child(l.events.a)[0], child(l.events.b)[0]] as const };
}

for (const [who, pfs] of [["A (IKE initiator)", false], ["B (IKE responder)", false], ["A (IKE initiator)", true], ["B (IKE responder)", true]] as const) {
  test(`${who} rekeys the CHILD_SA${pfs ? " with PFS (ECP-256)" : ""}: new SPIs and keys on both sides, mirrored; the old one deleted by the rekeyer`, () => {
    const esp = pfs ? ["aes128gcm16-ecp256"] : ["aes128gcm16"];
    const { l, sa, saB, first } = up(esp);
    const [na, nb] = [l.events.a.length, l.events.b.length];
    const fromB = who.startsWith("B");
    const rekeyer = fromB ? saB : sa;
    const old = fromB ? first[1] : first[0];
    l.inject(fromB ? "b" : "a", rekeyer.rekeyChild(old.spiIn));
    assert.deepEqual(kinds(since(l.events.a, na)), ["childSaEstablished", "childSaDeleted"]);
    assert.deepEqual(kinds(since(l.events.b, nb)), ["childSaEstablished", "childSaDeleted"]);
    const [ca, cb] = [child(since(l.events.a, na))[0], child(since(l.events.b, nb))[0]];
    assertMirrored(ca, cb);
    assert.equal(ca.rekeyOf, first[0].spiIn, "A's event names A's old inbound SPI");
    assert.equal(cb.rekeyOf, first[1].spiIn, "B's event names B's old inbound SPI");
    assert.deepEqual([ca.initiator, cb.initiator], [!fromB, fromB], "initiator of the CREATE_CHILD_SA exchange");
    assert.notEqual(ca.spiIn, first[0].spiIn);
    assert.notEqual(hex(ca.keyIn), hex(first[0].keyIn), "fresh keys");
    assert.deepEqual([ca.tsLocal.map(tsText), ca.tsRemote.map(tsText)], [["192.168.1.0/24"], ["192.168.2.0/24"]], "selectors kept (§2.9.2)");
    const delA = since(l.events.a, na).find((e) => e.type === "childSaDeleted");
    const delB = since(l.events.b, nb).find((e) => e.type === "childSaDeleted");
    assert.ok(delA?.type === "childSaDeleted" && delB?.type === "childSaDeleted");
    assert.deepEqual([delA.spisIn, delB.spisIn], [[first[0].spiIn], [first[1].spiIn]]);
    assert.deepEqual([sa.childSpis, saB.childSpis], [[ca.spiIn], [cb.spiIn]]);

    // the CREATE_CHILD_SA request carries KEi exactly when PFS is configured (§1.3)
    const req = l.wire.find((w) => w.out.bytes[18] === 36 && !(w.out.bytes[19] & 0x20))!;
    const m = decodeMessage(req.out.bytes);
    assert.ok(m.ok);
    const inner = openMessage(req.out.bytes, m.value.payloads[0], skKeys(rekeyer.ctx).out);
    assert.ok(inner.ok);
    assert.deepEqual(inner.value.map((p) => (p.kind === "notify" ? `N(${p.notifyType})` : p.kind)), ["N(16393)", "sa", "nonce", ...(pfs ? ["ke"] : []), "ts", "ts"]);
  });
}

test("PFS configured on one side only: the responder refuses with NO_PROPOSAL_CHOSEN; the CHILD_SA stays", () => {
  const { l, sa, first } = up(["aes128gcm16-ecp256"], ["aes128gcm16"]);
  const n = l.events.a.length;
  l.inject("a", sa.rekeyChild(first[0].spiIn));
  const ev = since(l.events.a, n);
  assert.deepEqual(ev.map((e) => e.type === "childSaFailed" && e.notify), [14]);
  assert.ok(ev[0].type === "childSaFailed" && ev[0].peerRequest === undefined, "A: its own request refused");
  assert.ok(ev[0].type === "childSaFailed" && ev[0].rekeyOf === first[0].spiIn, "naming the CHILD_SA whose rekey it was (the manager retries that one alone)");
  const atB = l.events.b.filter((e) => e.type === "childSaFailed");
  assert.ok(atB.length === 1 && atB[0].type === "childSaFailed" && atB[0].peerRequest === true, "B: it refused the peer's request");
  assert.deepEqual(sa.childSpis, [first[0].spiIn]);
});

test("a second CHILD_SA (§1.3.1), then DELETE of one of them (§1.4.1) by either side", () => {
  const { l, sa, saB, first } = up();
  l.inject("b", saB.createChild());
  const [ca, cb] = [child(l.events.a).at(-1)!, child(l.events.b).at(-1)!];
  assertMirrored(ca, cb);
  assert.equal(ca.rekeyOf, undefined);
  assert.deepEqual(sa.childSpis, [first[0].spiIn, ca.spiIn]);
  const n = [l.events.a.length, l.events.b.length];
  l.inject("a", sa.deleteChild(first[0].spiIn));
  const [da, db] = [since(l.events.a, n[0]), since(l.events.b, n[1])];
  assert.deepEqual(da.map((e) => e.type === "childSaDeleted" && e.spisIn), [[first[0].spiIn]]);
  assert.deepEqual(db.map((e) => e.type === "childSaDeleted" && e.spisIn), [[first[1].spiIn]]);
  assert.deepEqual([sa.childSpis, saB.childSpis], [[ca.spiIn], [cb.spiIn]]);
});

test("requests made while one is outstanding wait their turn (window of one, §2.3)", () => {
  const { l, sa, first } = up();
  l.setNet((d) => d);
  const s1 = sa.rekeyChild(first[0].spiIn);
  const s2 = sa.createChild();
  assert.equal(s1.send.length, 1);
  assert.deepEqual(s2, { send: [], events: [] }, "queued");
  l.inject("a", s1);
  // rekey, delete of the old CHILD_SA, then the new CHILD_SA: three exchanges, in order
  const cc = l.wire.filter((w) => w.from === "a").slice(2).map((w) => w.out.bytes[18]);
  assert.deepEqual(cc, [36, 37, 36]);
  assert.equal(sa.childSpis.length, 2);
  const kids = child(l.events.a) as ChildSaEstablished[];
  assert.equal(kids.length, 3);
});

test("rekeying an unknown CHILD_SA fails locally", () => {
  const { sa } = up();
  const r = sa.rekeyChild(12345);
  assert.deepEqual(r.events.map((e) => e.type === "childSaFailed" && e.notify), [44]);
  assert.ok(r.events[0].type === "childSaFailed" && r.events[0].rekeyOf === 12345);
  assert.equal(r.send.length, 0);
});

test("§2.25: our rekey answered CHILD_SA_NOT_FOUND (the peer lost its half): ours silently deleted, a new CHILD_SA created from scratch", () => {
  const { l, sa, saB, first } = up();
  saB.ctx.children = []; // forge: B has lost the CHILD_SA without a word
  const [na, nb, nw] = [l.events.a.length, l.events.b.length, l.wire.length];
  l.inject("a", sa.rekeyChild(first[0].spiIn));
  const [ea, eb] = [since(l.events.a, na), since(l.events.b, nb)];
  assert.deepEqual(kinds(ea), ["childSaDeleted", "childSaEstablished"]);
  assert.deepEqual(kinds(eb), ["childSaFailed", "childSaEstablished"], "B refused the rekey, then set up the new CHILD_SA");
  assert.ok(ea[0].type === "childSaDeleted" && ea[0].why === "not-found");
  assert.deepEqual(ea[0].type === "childSaDeleted" && ea[0].spisIn, [first[0].spiIn]);
  const [ca, cb] = [child(ea)[0], child(eb)[0]];
  assertMirrored(ca, cb);
  assert.deepEqual([ca.rekeyOf, cb.rekeyOf], [undefined, undefined], "a new CHILD_SA, not a rekey");
  assert.deepEqual([ca.tsLocal.map(tsText), ca.tsRemote.map(tsText)], [["192.168.1.0/24"], ["192.168.2.0/24"]]);
  assert.deepEqual([sa.childSpis, saB.childSpis], [[ca.spiIn], [cb.spiIn]]);
  // A's requests: the rekey (REKEY_SA), then CREATE_CHILD_SA without REKEY_SA; no DELETE (silently)
  const mine = l.wire.slice(nw).filter((w) => w.from === "a" && !(w.out.bytes[19] & 0x20));
  const inner = mine.map((w) => {
    const m = decodeMessage(w.out.bytes);
    assert.ok(m.ok);
    const o = openMessage(w.out.bytes, m.value.payloads[0], skKeys(sa.ctx).out);
    assert.ok(o.ok);
    return [w.out.bytes[18], o.value.some((p) => p.kind === "notify" && p.notifyType === 16393)];
  });
  assert.deepEqual(inner, [[36, true], [36, false]]);
});

test("a peer's REKEY_SA for an unknown SPI gets CHILD_SA_NOT_FOUND", () => {
  const { l, sa, saB } = up();
  sa.ctx.children = []; // forge: A has lost the CHILD_SA; B's rekey of it is refused
  const n = l.events.b.length;
  const ws = l.wire.length;
  l.inject("b", saB.rekeyChild(saB.childSpis[0]));
  const answer = l.wire.slice(ws).find((w) => w.from === "a" && w.out.bytes[18] === 36)!;
  const m = decodeMessage(answer.out.bytes);
  assert.ok(m.ok);
  const o = openMessage(answer.out.bytes, m.value.payloads[0], skKeys(sa.ctx).out);
  assert.ok(o.ok);
  assert.deepEqual(o.value.map((p) => p.kind === "notify" && p.notifyType), [44]);
  assert.deepEqual(kinds(since(l.events.b, n)).slice(0, 2), ["childSaDeleted", "childSaEstablished"]);
});

for (const who of ["A", "B"] as const) {
  test(`${who} rekeys the IKE SA (§1.3.2): new SPIs, CHILD_SAs carried over, old IKE SA deleted; the new one works`, () => {
    const { l, sa, saB, first } = up();
    const [na, nb] = [l.events.a.length, l.events.b.length];
    const rekeyer = who === "A" ? sa : saB;
    l.inject(who === "A" ? "a" : "b", rekeyer.rekeyIke());
    const [ea, eb] = [since(l.events.a, na), since(l.events.b, nb)];
    assert.deepEqual(kinds(ea), ["ikeSaRekeyed", "ikeSaDeleted"]);
    assert.deepEqual(kinds(eb), ["ikeSaRekeyed", "ikeSaDeleted"]);
    const delA = ea[1];
    const delB = eb[1];
    assert.ok(delA.type === "ikeSaDeleted" && delA.why === "rekeyed" && delA.byPeer === (who === "B"));
    assert.ok(delB.type === "ikeSaDeleted" && delB.why === "rekeyed" && delB.byPeer === (who === "A"));
    assert.equal(l.a.sas.size, 1);
    assert.equal(l.b.sas.size, 1);
    const [na2, nb2] = [only(l.a.sas) as IkeSa, only(l.b.sas) as IkeSa];
    assert.equal(ea[0].type === "ikeSaRekeyed" && ea[0].newSa, na2.id);
    assert.equal(na2.id, nb2.id, "both know the new IKE SA by the same SPIs");
    assert.notEqual(na2.id, sa.id);
    assert.equal(na2.initiatorSide(), who === "A", "the rekey's initiator is the new IKE SA's initiator (§2.18)");
    assert.deepEqual([na2.childSpis, nb2.childSpis], [[first[0].spiIn], [first[1].spiIn]], "CHILD_SAs moved");
    assert.deepEqual([sa.state, saB.state], ["deleted", "deleted"]);
    // the new IKE SA's keys agree: a CHILD_SA rekey over it succeeds and mirrors
    const n = [l.events.a.length, l.events.b.length];
    l.inject("b", nb2.rekeyChild(first[1].spiIn));
    assert.deepEqual(kinds(since(l.events.a, n[0])), ["childSaEstablished", "childSaDeleted"]);
    assertMirrored(child(since(l.events.a, n[0]))[0], child(since(l.events.b, n[1]))[0]);
    assert.ok(since(l.events.a, n[0]).every((e) => e.sa === na2.id), "events name the new IKE SA");
  });
}

test("an IKE SA rekey the responder cannot accept (another group) fails without touching the IKE SA", () => {
  const l = lab(config("to-b", A, B, { ike: ["aes128gcm16-prfsha256-ecp256-x25519"] }), config("to-a", B, A, { ike: ["aes128gcm16-prfsha256-ecp256"] }));
  const sa = l.start();
  sa.ctx.group = 31; // as if X25519 had been negotiated: the rekey's KE is for a group B does not take
  const n = l.events.a.length;
  l.inject("a", sa.rekeyIke());
  assert.deepEqual(since(l.events.a, n).map((e) => e.type === "ikeRekeyFailed" && e.notify), [17]);
  assert.equal(sa.state, "established");
  assert.equal(l.a.sas.size, 1);
});

test("simultaneous rekeys of one CHILD_SA (§2.8.1): the one made with the lowest of the four nonces is deleted by its maker, the old one too; one pair survives, the same on both sides", () => {
  for (let round = 0; round < 8; round++) {
    const { l, sa, saB, first } = up();
    const [na, nb] = [l.events.a.length, l.events.b.length];
    // both requests are in flight before either is answered
    l.post("a", sa.rekeyChild(first[0].spiIn));
    l.post("b", saB.rekeyChild(first[1].spiIn));
    l.run();
    const [ea, eb] = [since(l.events.a, na), since(l.events.b, nb)];
    assert.equal(child(ea).length, 2, "two new CHILD_SAs at A");
    assert.equal(child(eb).length, 2, "two new CHILD_SAs at B");
    assert.ok(!ea.some((e) => e.type === "childSaFailed") && !eb.some((e) => e.type === "childSaFailed"));
    assert.equal(sa.childSpis.length, 1, `round ${round}: A keeps one CHILD_SA, has ${sa.childSpis}`);
    assert.equal(saB.childSpis.length, 1, `round ${round}: B keeps one CHILD_SA`);
    const survivorA = child(ea).find((c) => c.spiIn === sa.childSpis[0])!;
    const survivorB = child(eb).find((c) => c.spiIn === saB.childSpis[0])!;
    assertMirrored(survivorA, survivorB);
    const deletedA = ea.filter((e) => e.type === "childSaDeleted").flatMap((e) => (e.type === "childSaDeleted" ? e.spisIn : []));
    assert.deepEqual(deletedA.sort(), [first[0].spiIn, ...child(ea).filter((c) => c !== survivorA).map((c) => c.spiIn)].sort(), "the old and the redundant one");
  }
});

test("a CHILD_SA rekey that meets an IKE SA being deleted is refused with TEMPORARY_FAILURE (§2.25)", () => {
  const { l, sa, saB, first } = up();
  const n = l.events.b.length;
  l.post("a", sa.close()); // A's DELETE in flight …
  l.post("b", saB.rekeyChild(first[1].spiIn)); // … crosses B's rekey
  l.run();
  // A, deleting, answered B's CREATE_CHILD_SA with TEMPORARY_FAILURE
  const answer = l.wire.find((w) => w.from === "a" && w.out.bytes[18] === 36 && (w.out.bytes[19] & 0x20) !== 0)!;
  assert.ok(answer, "A answered the CREATE_CHILD_SA");
  const m = decodeMessage(answer.out.bytes);
  assert.ok(m.ok);
  const inner = openMessage(answer.out.bytes, m.value.payloads[0], skKeys(sa.ctx).out);
  assert.ok(inner.ok);
  assert.deepEqual(inner.value.map((p) => p.kind === "notify" && p.notifyType), [43]);
  // and both ended the IKE SA (B's own request died with it)
  assert.deepEqual([sa.state, saB.state], ["deleted", "deleted"]);
  assert.deepEqual(kinds(since(l.events.b, n)), ["ikeSaDeleted"]);
});

test("PFS group mismatch: INVALID_KE_PAYLOAD names the responder's group and the rekey is retried once with it (§1.3)", () => {
  const { l, sa, first } = up(["aes128gcm16-ecp256-x25519"], ["aes128gcm16-x25519"]);
  const n = l.events.a.length;
  l.inject("a", sa.rekeyChild(first[0].spiIn));
  assert.deepEqual(kinds(since(l.events.a, n)), ["childSaEstablished", "childSaDeleted"]);
  const creates = l.wire.filter((w) => w.from === "a" && w.out.bytes[18] === 36);
  assert.equal(creates.length, 2, "first with ECP-256, again with X25519");
  const kes = creates.map((w) => {
    const m = decodeMessage(w.out.bytes);
    assert.ok(m.ok);
    const inner = openMessage(w.out.bytes, m.value.payloads[0], skKeys(sa.ctx).out);
    assert.ok(inner.ok);
    const ke = inner.value.find((p) => p.kind === "ke");
    return ke?.kind === "ke" ? ke.group : 0;
  });
  assert.deepEqual(kes, [19, 31]);
  assertMirrored(child(since(l.events.a, n))[0], child(l.events.b).at(-1)!);
});
