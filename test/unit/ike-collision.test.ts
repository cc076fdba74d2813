// Exchange collisions (RFC 7296 §2.8.2, §2.25) between two in-memory endpoints
// (ike-harness.ts), each crossing forced by holding requests in flight: both ends
// rekeying the IKE SA at once (seen by both, or by one only, with the refusal and
// the DELETE in either order); an IKE SA rekey against a DELETE of the IKE SA, or
// against an outstanding CHILD_SA rekey; a CHILD_SA rekey against a DELETE of that
// CHILD_SA, and two DELETEs of one CHILD_SA crossing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { skKeys } from "../../host/ike/context.ts";
import type { IkeSa } from "../../host/ike/ike_sa.ts";
import { decodeMessage } from "../../host/ike/message.ts";
import type { Payload } from "../../host/ike/payloads.ts";
import { openMessage } from "../../host/ike/sk.ts";
import type { IkeEvent, Path } from "../../host/ike/types.ts";
import { A, assertMirrored, B, child, config, kinds, lab } from "./ike-harness.ts";

const only = <T>(m: Map<string, T>) => [...m.values()][0];
const since = (es: IkeEvent[], n: number) => es.slice(n);
const CREATE_CHILD_SA = 36, INFORMATIONAL = 37, RESPONSE = 0x20;
const isRequest = (b: Uint8Array, exchange: number) => b[18] === exchange && (b[19] & RESPONSE) === 0;

function up() {
  const l = lab(config("to-b", A, B), config("to-a", B, A));
  const sa = l.start();
  assert.equal(sa.state, "established");
  return { l, sa, saB: only(l.b.sas) as IkeSa, first: [child(l.events.a)[0], child(l.events.b)[0]] as const };
}

/** Octet-string order, as §2.8.1 compares nonces. */
const lower = (x: Uint8Array, y: Uint8Array) => Buffer.compare(Buffer.from(x), Buffer.from(y)) < 0;

/** The payloads of the response `from` sent in `exchange`, opened with `sa`'s keys (the sender's side). */
function answers(l: ReturnType<typeof lab>, from: "a" | "b", exchange: number, sa: IkeSa): Payload[][] {
  return l.wire.filter((w) => w.from === from && w.out.bytes[18] === exchange && (w.out.bytes[19] & RESPONSE) !== 0).flatMap((w) => {
    const m = decodeMessage(w.out.bytes);
    if (!m.ok || !Buffer.from(m.value.header.spiI).equals(sa.ctx.spiI)) return [];
    const inner = openMessage(w.out.bytes, m.value.payloads[0], skKeys(sa.ctx).out);
    return inner.ok ? [inner.value] : [];
  });
}
const notifies = (ps: Payload[]) => ps.flatMap((p) => (p.kind === "notify" ? [p.notifyType] : []));

/** After a collision: one IKE SA left on each side, the same one, holding the first CHILD_SA, and it works. */
function assertOneSurvivor(l: ReturnType<typeof lab>, first: ReturnType<typeof up>["first"], what: string) {
  assert.equal(l.a.sas.size, 1, `${what}: A keeps one IKE SA`);
  assert.equal(l.b.sas.size, 1, `${what}: B keeps one IKE SA`);
  const [na, nb] = [only(l.a.sas) as IkeSa, only(l.b.sas) as IkeSa];
  assert.equal(na.id, nb.id, `${what}: the same IKE SA on both sides`);
  assert.deepEqual([na.state, nb.state], ["established", "established"]);
  assert.notEqual(na.initiatorSide(), nb.initiatorSide());
  assert.deepEqual([na.childSpis, nb.childSpis], [[first[0].spiIn], [first[1].spiIn]], `${what}: the CHILD_SA moved to it, not lost`);
  for (const e of [...l.events.a, ...l.events.b]) assert.ok(e.type !== "childSaDeleted" && e.type !== "failed", `${what}: ${JSON.stringify(e)}`);
  // its keys agree on both sides: a CHILD_SA rekey over it mirrors
  const n = [l.events.a.length, l.events.b.length];
  l.inject("a", na.rekeyChild(first[0].spiIn));
  assert.deepEqual(kinds(since(l.events.a, n[0])), ["childSaEstablished", "childSaDeleted"]);
  assertMirrored(child(since(l.events.a, n[0]))[0], child(since(l.events.b, n[1]))[0]);
  return { na, nb };
}

test("simultaneous IKE SA rekeys seen by both (§2.8.2; 10 rounds): the new IKE SA with the lowest of the four nonces is deleted by its maker, the other inherits the CHILD_SAs", () => {
  for (let round = 0; round < 10; round++) {
    const { l, sa, saB, first } = up();
    const [na, nb] = [l.events.a.length, l.events.b.length];
    l.post("a", sa.rekeyIke()); // both requests in flight before either is answered
    l.post("b", saB.rekeyIke());
    l.run();
    // each side made both new IKE SAs: `successor` the survivor, `sibling` the redundant one
    for (const old of [sa, saB]) {
      const [keep, lose] = [old.successor!, old.sibling!];
      assert.ok(keep && lose && keep !== lose, `round ${round}: two new IKE SAs`);
      const lowest = [keep.ctx.ni!, keep.ctx.nr!, lose.ctx.ni!, lose.ctx.nr!].reduce((x, y) => (lower(y, x) ? y : x));
      assert.ok(lose.ctx.ni === lowest || lose.ctx.nr === lowest, `round ${round}: the redundant one holds the lowest nonce`);
      assert.deepEqual([old.state, lose.state, lose.redundant], ["deleted", "deleted", true]);
    }
    assert.equal(sa.successor!.id, saB.successor!.id, `round ${round}: both keep the same one`);
    const [ea, eb] = [since(l.events.a, na), since(l.events.b, nb)];
    for (const [es, old] of [[ea, sa], [eb, saB]] as const) {
      assert.deepEqual(es.filter((e) => e.type === "ikeSaRekeyed").map((e) => e.type === "ikeSaRekeyed" && e.newSa), [old.successor!.id], "one ikeSaRekeyed, naming the survivor");
      const deleted = es.flatMap((e) => (e.type === "ikeSaDeleted" ? [`${e.sa === old.id ? "old" : "new"}:${e.why}`] : []));
      assert.deepEqual(deleted.sort(), ["new:redundant", "old:rekeyed"]);
    }
    // the survivor's maker deleted the old IKE SA; the other deleted its own new one
    const deletes = (from: "a" | "b") => l.wire.filter((w) => w.from === from && isRequest(w.out.bytes, INFORMATIONAL)).length;
    assert.deepEqual([deletes("a"), deletes("b")], [1, 1], "one DELETE each");
    assertOneSurvivor(l, first, `round ${round}`);
  }
});

for (const order of ["DELETE first", "TEMPORARY_FAILURE first"] as const) {
  test(`simultaneous IKE SA rekeys seen by one side only (§2.8.2, ${order}): the other answers TEMPORARY_FAILURE, its new IKE SA inherits the CHILD_SAs`, () => {
    const { l, sa, saB, first } = up();
    // A's request is held back until B's own rekey is answered: B never sees a collision
    const held: { to: "a" | "b"; bytes: Uint8Array; path: Path }[] = [];
    l.setNet((d) => {
      const hold = (d.from === "a" && isRequest(d.bytes, CREATE_CHILD_SA)) || (order === "TEMPORARY_FAILURE first" && d.from === "b" && isRequest(d.bytes, INFORMATIONAL));
      if (!hold) return d;
      held.push({ to: d.from === "a" ? "b" : "a", ...d });
      return undefined;
    });
    const n = l.events.a.length;
    l.post("a", sa.rekeyIke());
    l.post("b", saB.rekeyIke());
    l.run();
    l.setNet((d) => d);
    if (order === "DELETE first") {
      // B rekeyed and deleted the old IKE SA; A saw B's DELETE while its rekey was out, and forgot its own
      assert.deepEqual(kinds(since(l.events.a, n)), ["ikeSaRekeyed", "ikeSaDeleted"]);
      assert.equal(sa.state, "deleted");
      const late = held.shift()!;
      l.inject("b", l.b.receive(late.bytes, late.path)); // A's rekey, far too late: no SA for it any more
      assert.equal(l.b.counters.get("unknown-spi"), 1);
    } else {
      // A's request reaches B while B is deleting the old IKE SA: TEMPORARY_FAILURE (§2.25.2)
      const req = held.shift()!;
      l.inject("b", l.b.receive(req.bytes, req.path));
      assert.deepEqual(answers(l, "b", CREATE_CHILD_SA, saB).map(notifies), [[43]]);
      assert.deepEqual(kinds(since(l.events.a, n)), ["ikeRekeyFailed", "ikeSaRekeyed"], "B's new IKE SA taken on the refusal");
      const del = held.shift()!;
      l.inject("a", l.a.receive(del.bytes, del.path));
      assert.deepEqual(kinds(since(l.events.a, n)).slice(2), ["ikeSaDeleted"]);
    }
    assert.equal(held.length, 0);
    assert.equal(sa.successor?.id, saB.successor?.id);
    assert.equal(saB.successor?.initiatorSide(), true, "B's rekey made it");
    assertOneSurvivor(l, first, order);
  });
}

test("an IKE SA rekey crossing a DELETE of the IKE SA (§2.25.2): TEMPORARY_FAILURE from the deleting side, the rekeyer forgets its rekey; no new IKE SA anywhere", () => {
  const { l, sa, saB } = up();
  const nb = l.events.b.length;
  l.post("a", sa.close());
  l.post("b", saB.rekeyIke());
  l.run();
  assert.deepEqual(answers(l, "a", CREATE_CHILD_SA, sa).map(notifies), [[43]]);
  assert.deepEqual([sa.state, saB.state], ["deleted", "deleted"]);
  assert.equal(saB.successor, undefined);
  assert.deepEqual(kinds(since(l.events.b, nb)), ["ikeSaDeleted"]);
  assert.deepEqual([l.a.sas.size, l.b.sas.size], [0, 0]);
});

test("an IKE SA rekey crossing a CHILD_SA rekey: refused with TEMPORARY_FAILURE, the CHILD_SA rekey completes on the old IKE SA; the IKE SA rekey then succeeds with every CHILD_SA", () => {
  const { l, sa, saB, first } = up();
  const na = l.events.a.length;
  l.post("a", sa.rekeyIke());
  l.post("b", saB.rekeyChild(first[1].spiIn));
  l.run();
  assert.deepEqual(answers(l, "b", CREATE_CHILD_SA, saB).map(notifies), [[43]], "B refused A's IKE SA rekey");
  assert.deepEqual(kinds(since(l.events.a, na)), ["childSaEstablished", "ikeRekeyFailed", "childSaDeleted"]);
  const fresh = child(since(l.events.a, na))[0].spiIn;
  assert.deepEqual(sa.childSpis, [fresh]);
  const n = l.events.a.length;
  l.inject("a", sa.rekeyIke());
  assert.deepEqual(kinds(since(l.events.a, n)), ["ikeSaRekeyed", "ikeSaDeleted"]);
  const [newA, newB] = [only(l.a.sas) as IkeSa, only(l.b.sas) as IkeSa];
  assert.equal(newA.id, newB.id);
  assert.deepEqual([newA.childSpis, newB.childSpis.length], [[fresh], 1], "the CHILD_SA made during the refused rekey moved too");
});

test("a CHILD_SA rekey crossing a DELETE of that CHILD_SA (§2.25.1): TEMPORARY_FAILURE, no new CHILD_SA on either side, both halves deleted", () => {
  const { l, sa, saB, first } = up();
  const [na, nb] = [l.events.a.length, l.events.b.length];
  l.post("a", sa.deleteChild(first[0].spiIn));
  l.post("b", saB.rekeyChild(first[1].spiIn));
  l.run();
  assert.deepEqual(answers(l, "a", CREATE_CHILD_SA, sa).map(notifies), [[43]]);
  const [ea, eb] = [since(l.events.a, na), since(l.events.b, nb)];
  assert.equal(child(ea).length + child(eb).length, 0, "nothing handed to a data plane");
  assert.deepEqual(kinds(ea), ["childSaFailed", "childSaDeleted"]);
  assert.deepEqual(kinds(eb), ["childSaDeleted", "childSaFailed"]);
  assert.deepEqual([sa.childSpis, saB.childSpis], [[], []]);
  assert.deepEqual(eb.flatMap((e) => (e.type === "childSaDeleted" ? e.spisIn : [])), [first[1].spiIn]);
  assert.deepEqual(ea.flatMap((e) => (e.type === "childSaDeleted" ? e.spisIn : [])), [first[0].spiIn]);
});

test("a CHILD_SA rekey arriving after the DELETE of that CHILD_SA completed: CHILD_SA_NOT_FOUND, nothing left behind", () => {
  const { l, sa, saB, first } = up();
  const held: { bytes: Uint8Array; path: Path }[] = [];
  l.setNet((d) => (d.from === "b" && isRequest(d.bytes, CREATE_CHILD_SA) ? (held.push(d), undefined) : d));
  const nb = l.events.b.length;
  l.post("b", saB.rekeyChild(first[1].spiIn));
  l.inject("a", sa.deleteChild(first[0].spiIn));
  l.setNet((d) => d);
  l.inject("a", l.a.receive(held[0].bytes, held[0].path));
  assert.deepEqual(answers(l, "a", CREATE_CHILD_SA, sa).map(notifies), [[44]]);
  assert.deepEqual(kinds(since(l.events.b, nb)), ["childSaDeleted", "childSaFailed"]);
  assert.deepEqual([sa.childSpis, saB.childSpis], [[], []]);
});

test("two DELETEs of one CHILD_SA crossing (§2.25.1): each answered without a Delete payload; each side deletes once", () => {
  const { l, sa, saB, first } = up();
  const [na, nb] = [l.events.a.length, l.events.b.length];
  l.post("a", sa.deleteChild(first[0].spiIn));
  l.post("b", saB.deleteChild(first[1].spiIn));
  l.run();
  for (const [w, s] of [["a", sa], ["b", saB]] as const) {
    assert.deepEqual(answers(l, w, INFORMATIONAL, s).map((ps) => ps.map((p) => p.kind)), [[]], `${w} answered with no Delete payload`);
  }
  assert.deepEqual([kinds(since(l.events.a, na)), kinds(since(l.events.b, nb))], [["childSaDeleted"], ["childSaDeleted"]]);
  assert.deepEqual([sa.childSpis, saB.childSpis], [[], []]);
});
