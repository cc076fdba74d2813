// The CHILD_SA's mode (RFC 7296 §1.3.1, §3.10.1 USE_TRANSPORT_MODE) between two
// in-memory endpoints: transport mode asked for and granted in IKE_AUTH and in
// CREATE_CHILD_SA (a rekey by either side, a new CHILD_SA), the notify on the
// wire both ways; a mismatch either way: the transport-mode responder refuses a
// tunnel request with NO_PROPOSAL_CHOSEN, the transport-mode initiator deletes
// the tunnel-mode CHILD_SA a declining responder set up. Plus the managed
// peer's selectors for transport-ipip / transport-gre (host/ike/manager.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeMessage } from "../../host/ike/message.ts";
import { openMessage } from "../../host/ike/sk.ts";
import { skKeys } from "../../host/ike/context.ts";
import { Exchange, Notify } from "../../host/ike/constants.ts";
import { hostTs, tsText } from "../../host/ike/ts.ts";
import { managedPeer } from "../../host/ike/manager.ts";
import { parseConfig } from "../../host/config/load.ts";
import { parseAddress } from "../../host/config/addr.ts";
import type { IkeSa } from "../../host/ike/ike_sa.ts";
import type { ChildMode, IkeEvent } from "../../host/ike/types.ts";
import { baseConfig, toYaml } from "../helpers/config_fixture.ts";
import { A, assertMirrored, B, child, config, kinds, lab } from "./ike-harness.ts";

const only = <T>(m: Map<string, T>) => [...m.values()][0];
const bytes = (a: string) => { const r = parseAddress(a); assert.ok(r.ok); return r.value.bytes; };
const GRE = [47];

/** A and B, each in `mode`, with the same selectors (the two addresses, GRE) so that only the mode differs. */
function pair(modeA: ChildMode, modeB: ChildMode) {
  const cfg = (name: string, me: string, peer: string, mode: ChildMode) =>
    config(name, me, peer, { mode, localTs: hostTs(bytes(me), GRE), remoteTs: hostTs(bytes(peer), GRE) });
  return lab(cfg("to-b", A, B, modeA), cfg("to-a", B, A, modeB));
}

/** The payloads inside SK of every datagram of exchange `x` sent by `from`: requests or responses. */
function sent(l: ReturnType<typeof pair>, from: "a" | "b", x: number, response: boolean, sa: IkeSa): string[][] {
  const keys = skKeys(sa.ctx).out;
  return l.wire.filter((w) => w.from === from && w.out.bytes[18] === x && !!(w.out.bytes[19] & 0x20) === response).map((w) => {
    const m = decodeMessage(w.out.bytes);
    assert.ok(m.ok);
    const inner = openMessage(w.out.bytes, m.value.payloads[0], keys);
    assert.ok(inner.ok);
    return inner.value.map((p) => (p.kind === "notify" ? `N(${p.notifyType})` : p.kind));
  });
}

const failed = (es: IkeEvent[]) => es.filter((e) => e.type === "childSaFailed");

test("transport mode both sides: USE_TRANSPORT_MODE in the IKE_AUTH request and response, both CHILD_SAs in transport mode between the hosts", () => {
  const l = pair("transport", "transport");
  const sa = l.start();
  const saB = only(l.b.sas) as IkeSa;
  assert.equal(sa.state, "established");
  const [ca, cb] = [child(l.events.a)[0], child(l.events.b)[0]];
  assertMirrored(ca, cb);
  assert.deepEqual([ca.mode, cb.mode], ["transport", "transport"]);
  assert.deepEqual([ca.tsLocal.map(tsText), ca.tsRemote.map(tsText)], [[`${A}/32[47/0-65535]`], [`${B}/32[47/0-65535]`]]);
  assert.ok(sent(l, "a", Exchange.IKE_AUTH, false, sa)[0].includes(`N(${Notify.USE_TRANSPORT_MODE})`), "asked for");
  assert.ok(sent(l, "b", Exchange.IKE_AUTH, true, saB)[0].includes(`N(${Notify.USE_TRANSPORT_MODE})`), "granted");
});

test("tunnel mode both sides: no USE_TRANSPORT_MODE anywhere (unchanged)", () => {
  const l = pair("tunnel", "tunnel");
  const sa = l.start();
  assert.deepEqual([child(l.events.a)[0].mode, child(l.events.b)[0].mode], ["tunnel", "tunnel"]);
  assert.ok(!sent(l, "a", Exchange.IKE_AUTH, false, sa)[0].includes(`N(${Notify.USE_TRANSPORT_MODE})`));
});

for (const who of ["a", "b"] as const) {
  test(`transport mode: ${who === "a" ? "A (IKE initiator)" : "B (IKE responder)"} rekeys the CHILD_SA; request and response carry USE_TRANSPORT_MODE, the new pair stays in transport mode (§1.3.3)`, () => {
    const l = pair("transport", "transport");
    const sa = l.start();
    const saB = only(l.b.sas) as IkeSa;
    const rekeyer = who === "a" ? sa : saB;
    const first = child(who === "a" ? l.events.a : l.events.b)[0];
    const [na, nb] = [l.events.a.length, l.events.b.length];
    l.inject(who, rekeyer.rekeyChild(first.spiIn));
    assert.deepEqual(kinds(l.events.a.slice(na)), ["childSaEstablished", "childSaDeleted"]);
    assert.deepEqual(kinds(l.events.b.slice(nb)), ["childSaEstablished", "childSaDeleted"]);
    const [ca, cb] = [child(l.events.a.slice(na))[0], child(l.events.b.slice(nb))[0]];
    assertMirrored(ca, cb);
    assert.deepEqual([ca.mode, cb.mode], ["transport", "transport"]);
    const other = who === "a" ? "b" : "a";
    assert.deepEqual(sent(l, who, Exchange.CREATE_CHILD_SA, false, rekeyer)[0], [`N(${Notify.REKEY_SA})`, `N(${Notify.USE_TRANSPORT_MODE})`, "sa", "nonce", "ts", "ts"]);
    assert.deepEqual(sent(l, other, Exchange.CREATE_CHILD_SA, true, who === "a" ? saB : sa)[0], [`N(${Notify.USE_TRANSPORT_MODE})`, "sa", "nonce", "ts", "ts"]);
  });
}

test("initiator tunnel, responder transport: the responder refuses the CHILD_SA with NO_PROPOSAL_CHOSEN; the IKE SA is still created (§1.2)", () => {
  const l = pair("tunnel", "transport");
  const sa = l.start();
  assert.equal(sa.state, "established");
  assert.deepEqual([child(l.events.a), child(l.events.b)], [[], []]);
  const [fa, fb] = [failed(l.events.a), failed(l.events.b)];
  assert.equal(fa.length, 1);
  assert.equal(fa[0].type === "childSaFailed" && fa[0].notify, Notify.NO_PROPOSAL_CHOSEN);
  assert.match(fb[0].type === "childSaFailed" ? fb[0].detail : "", /asked for tunnel mode; this peer is configured for transport mode/);
  assert.ok(sent(l, "b", Exchange.IKE_AUTH, true, only(l.b.sas) as IkeSa)[0].includes(`N(${Notify.NO_PROPOSAL_CHOSEN})`));
});

test("initiator transport, responder tunnel: the responder declines (tunnel mode, no notify); the initiator never installs it and deletes it (§1.3.1)", () => {
  const l = pair("transport", "tunnel");
  const sa = l.start();
  const saB = only(l.b.sas) as IkeSa;
  assert.equal(sa.state, "established");
  assert.deepEqual(child(l.events.a), [], "A hands nothing to the data plane");
  assert.equal(child(l.events.b)[0].mode, "tunnel", "B set up a tunnel-mode CHILD_SA");
  const f = failed(l.events.a)[0];
  assert.ok(f?.type === "childSaFailed");
  assert.match(f.detail, /declined transport mode/);
  assert.ok(!sent(l, "b", Exchange.IKE_AUTH, true, saB)[0].includes(`N(${Notify.USE_TRANSPORT_MODE})`));
  assert.deepEqual(sent(l, "a", Exchange.INFORMATIONAL, false, sa), [["delete"]], "A's Delete follows at once");
  const del = l.events.b.find((e) => e.type === "childSaDeleted");
  assert.ok(del?.type === "childSaDeleted");
  assert.deepEqual(del.spisIn, [child(l.events.b)[0].spiIn]);
  assert.deepEqual([sa.childSpis, saB.childSpis], [[], []], "no CHILD_SA left on either side");
});

test("CREATE_CHILD_SA mismatch the other way round: a tunnel-mode IKE responder asks for a new CHILD_SA, the transport-mode side refuses with NO_PROPOSAL_CHOSEN", () => {
  const l = pair("transport", "tunnel");
  l.start();
  const saB = only(l.b.sas) as IkeSa;
  const [na, nb] = [l.events.a.length, l.events.b.length];
  l.inject("b", saB.createChild());
  assert.deepEqual(kinds(l.events.a.slice(na)), ["childSaFailed"]);
  const fb = failed(l.events.b.slice(nb));
  assert.equal(fb.length, 1);
  assert.equal(fb[0].type === "childSaFailed" && fb[0].notify, Notify.NO_PROPOSAL_CHOSEN);
  assert.deepEqual(child(l.events.b.slice(nb)), []);
});

test("config: ike on transport-gre and transport-ipip peers is accepted; managed as transport mode between the WAN addresses, GRE 47 / IPIP 4 and 41", () => {
  const c = baseConfig();
  const psk = "correct-horse-battery-staple-0123";
  c.peers[0].mode = "transport-ipip";
  delete c.peers[0].sas;
  c.peers[0].ike = { auth: { psk } };
  delete c.peers[1].sas;
  c.peers[1].ike = { auth: { psk } };
  const { config: cfg, warnings } = parseConfig(toYaml(c), { baseDir: "/", uid: 1000, env: {} });
  assert.deepEqual(warnings, []);
  const [ipip, gre] = cfg.peers.map((p) => managedPeer(cfg, p, bytes).ike);
  const local = cfg.node.wan[0].address.text;
  assert.equal(ipip.mode, "transport");
  assert.deepEqual([ipip.localTs.map(tsText), ipip.remoteTs.map(tsText)], [
    [`${local}/32[4/0-65535]`, `${local}/32[41/0-65535]`],
    [`${cfg.peers[0].address.text}/32[4/0-65535]`, `${cfg.peers[0].address.text}/32[41/0-65535]`],
  ]);
  assert.equal(gre.mode, "transport");
  assert.deepEqual([gre.localTs.map(tsText), gre.remoteTs.map(tsText)], [[`${local}/32[47/0-65535]`], [`${cfg.peers[1].address.text}/32[47/0-65535]`]]);
});
