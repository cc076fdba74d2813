// IKE_SA_INIT + IKE_AUTH (RFC 7296 §1.2) between two in-memory wesp endpoints:
// both roles of host/ike/ike_sa.ts over a fake network that can drop, tamper
// with and NAT the datagrams. The interop test does the same against charon.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { IkeEndpoint } from "../../host/ike/endpoint.ts";
import { tsText } from "../../host/ike/ts.ts";
import { A, assertMirrored, B, child, config, kinds, lab } from "./ike-harness.ts";
import { IdType } from "../../host/ike/constants.ts";
import { decodeMessage, encodeMessage } from "../../host/ike/message.ts";
import { openMessage, sealMessage } from "../../host/ike/sk.ts";
import { skKeys } from "../../host/ike/context.ts";
import type { IkeEvent, Path } from "../../host/ike/types.ts";

const MATRIX: [string, string, string, number, number][] = [
  ["aes128gcm16-prfsha256-ecp256", "aes128gcm16", "aes-128-gcm", 20, 0],
  ["aes256-sha256-modp2048", "chacha20poly1305", "chacha20-poly1305", 36, 0],
  ["chacha20poly1305-prfsha512-x25519", "aes256gcm16", "aes-256-gcm", 36, 0],
  ["aes256gcm16-prfsha384-x25519", "aes128-sha256", "aes-128-cbc-hmac-sha256", 16, 32],
  ["aes128-sha512-ecp256", "aes256-sha256", "aes-256-cbc-hmac-sha256", 32, 32],
];

for (const [ike, esp, suite, keyLen, authLen] of MATRIX) {
  test(`IKE ${ike} + ESP ${esp}: both sides establish, CHILD_SA keys and SPIs mirror (${suite})`, () => {
    const l = lab(config("to-b", A, B, { ike: [ike], esp: [esp] }), config("to-a", B, A, { ike: [ike], esp: [esp] }));
    const sa = l.start();
    assert.deepEqual(kinds(l.events.a), ["ikeSaEstablished", "childSaEstablished"]);
    assert.deepEqual(kinds(l.events.b), ["ikeSaEstablished", "childSaEstablished"]);
    assert.equal(sa.state, "established");
    const [ca, cb] = [child(l.events.a)[0], child(l.events.b)[0]];
    assertMirrored(ca, cb);
    assert.equal(ca.suite, suite);
    assert.equal(ca.keyIn.length, keyLen);
    assert.equal(ca.authKeyIn?.length ?? 0, authLen);
    assert.deepEqual([ca.initiator, cb.initiator], [true, false]);
    assert.deepEqual(ca.tsLocal.map(tsText), ["192.168.1.0/24"]);
    assert.deepEqual(ca.tsRemote.map(tsText), ["192.168.2.0/24"]);
    assert.deepEqual(cb.tsLocal.map(tsText), ["192.168.2.0/24"]);
    assert.equal(ca.encap, "raw", "no NAT");
    assert.equal(l.wire.length, 4, "two exchanges, no retransmission");
    assert.ok(l.wire.slice(2).every((w) => decodeMessage(w.out.bytes).ok && w.out.path.localPort === 500));
  });
}

test("INVALID_KE_PAYLOAD (§1.2): the initiator retries with the group the responder names", () => {
  const l = lab(config("to-b", A, B, { ike: ["aes128gcm16-prfsha256-ecp256-modp2048"] }), config("to-a", B, A, { ike: ["aes128gcm16-prfsha256-modp2048"] }));
  l.start();
  assert.deepEqual(kinds(l.events.a), ["ikeSaEstablished", "childSaEstablished"]);
  assert.equal(l.wire.length, 6, "INIT, INVALID_KE, INIT again, response, AUTH pair");
  const e = l.events.a[0];
  assert.ok(e.type === "ikeSaEstablished" && e.proposal.endsWith("dh-14"));
  assertMirrored(child(l.events.a)[0], child(l.events.b)[0]);
});

test("NO_PROPOSAL_CHOSEN: the responder keeps no state, the initiator fails with peer-error", () => {
  const l = lab(config("to-b", A, B, { ike: ["aes128gcm16-prfsha256-ecp256"] }), config("to-a", B, A, { ike: ["aes256-sha256-modp2048"] }));
  const sa = l.start();
  assert.equal(sa.state, "failed");
  assert.deepEqual(l.events.a.map((e) => e.type === "failed" && e.reason), ["peer-error"]);
  assert.equal(l.b.sas.size, 0);
});

test("a wrong PSK: the responder answers AUTHENTICATION_FAILED and drops the SA (§2.21.2); no CHILD_SA anywhere", () => {
  const l = lab(config("to-b", A, B, { psk: new TextEncoder().encode("wrong") }), config("to-a", B, A));
  const sa = l.start();
  assert.equal(sa.state, "failed");
  assert.deepEqual(l.events.b.map((e) => e.type === "failed" && e.reason), ["auth"]);
  assert.deepEqual(l.events.a.map((e) => e.type === "failed" && e.reason), ["peer-error"]);
  assert.equal(child(l.events.a).length + child(l.events.b).length, 0);
});

test("the responder's identity must be the configured one", () => {
  const l = lab(config("to-b", A, B, { remoteId: { idType: IdType.FQDN, data: new TextEncoder().encode("b.example") } }), config("to-a", B, A));
  l.start();
  assert.deepEqual(l.events.a.map((e) => e.type === "failed" && e.reason), ["auth"]);
});

test("traffic selectors are narrowed by the responder (§2.9) and the initiator accepts the subset", () => {
  const l = lab(
    config("to-b", A, B, { lts: ["192.168.0.0/16"], rts: ["10.0.0.0/8"] }),
    config("to-a", B, A, { lts: ["10.2.0.0/16"], rts: ["192.168.1.0/24", "172.16.0.0/12"] }),
  );
  l.start();
  const [ca, cb] = [child(l.events.a)[0], child(l.events.b)[0]];
  assert.deepEqual(ca.tsLocal.map(tsText), ["192.168.1.0/24"]);
  assert.deepEqual(ca.tsRemote.map(tsText), ["10.2.0.0/16"]);
  assert.deepEqual(cb.tsRemote.map(tsText), ["192.168.1.0/24"]);
});

test("disjoint selectors: TS_UNACCEPTABLE; the IKE SA stands without a CHILD_SA (§1.2)", () => {
  const l = lab(config("to-b", A, B, { rts: ["10.0.0.0/8"] }), config("to-a", B, A));
  const sa = l.start();
  assert.equal(sa.state, "established");
  assert.deepEqual(kinds(l.events.a), ["ikeSaEstablished", "childSaFailed"]);
  assert.deepEqual(kinds(l.events.b), ["ikeSaEstablished", "childSaFailed"]);
});

test("lost responses: the initiator retransmits (§2.1), the responder answers from its cache with the same bytes", () => {
  const l = lab(config("to-b", A, B), config("to-a", B, A));
  let dropped = 0;
  l.setNet((d) => (d.from === "b" && dropped++ < 1 ? undefined : d)); // lose B's first IKE_SA_INIT response
  l.start();
  assert.deepEqual(kinds(l.events.a), []);
  l.tick(999);
  assert.equal(l.wire.length, 2, "nothing before the timeout");
  l.tick(1);
  assert.deepEqual(kinds(l.events.a), ["ikeSaEstablished", "childSaEstablished"]);
  const fromB = l.wire.filter((w) => w.from === "b");
  assert.deepEqual(fromB[0].out.bytes, fromB[1].out.bytes, "cached IKE_SA_INIT response resent");
  assert.equal(l.b.sas.size, 1, "one responder SA, not two");
  assertMirrored(child(l.events.a)[0], child(l.events.b)[0]);
});

test("no answer at all: retransmissions at 1 s, 2 s, then failure with reason timeout", () => {
  const l = lab(config("to-b", A, B), config("to-a", B, A));
  l.setNet(() => undefined);
  const sa = l.start();
  const sends = () => l.wire.filter((w) => w.from === "a").length;
  l.tick(1000);
  assert.equal(sends(), 2);
  l.tick(1999);
  assert.equal(sends(), 2);
  l.tick(1);
  assert.equal(sends(), 3);
  l.tick(4000);
  assert.equal(sa.state, "failed");
  assert.deepEqual(l.events.a.map((e) => e.type === "failed" && e.reason), ["timeout"]);
  assert.equal(l.a.sas.size, 0);
});

test("a tampered IKE_AUTH request is dropped and counted; the genuine retransmission then succeeds", () => {
  const l = lab(config("to-b", A, B), config("to-a", B, A));
  let n = 0;
  l.setNet((d) => {
    if (d.from === "a" && n++ === 1) {
      const bad = d.bytes.slice();
      bad[bad.length - 1] ^= 1; // ICV
      return { ...d, bytes: bad };
    }
    return d;
  });
  l.start();
  assert.deepEqual(kinds(l.events.b), ["refused"]);
  assert.equal(l.b.counters.get("integrity"), 1);
  l.tick(1000);
  assert.deepEqual(kinds(l.events.a), ["ikeSaEstablished", "childSaEstablished"]);
});

/** A NAT in front of A: A's ports 500/4500 appear as 31000/31001 to B, and B's answers are translated back. */
const natInFrontOfA = (d: { from: "a" | "b"; bytes: Uint8Array; path: Path }) => {
  const out: Record<number, number> = { 500: 31000, 4500: 31001 };
  const back: Record<number, number> = { 31000: 500, 31001: 4500 };
  return d.from === "a" ? { ...d, path: { ...d.path, remotePort: out[d.path.remotePort] } } : { ...d, path: { ...d.path, localPort: back[d.path.localPort] } };
};

test("NAT between the peers (§2.23): detected both ways, IKE_AUTH moves to 4500, the CHILD_SA is UDP-encapsulated", () => {
  const l = lab(config("to-b", A, B), config("to-a", B, A));
  // a NAT rewrites A's source port
  l.setNet(natInFrontOfA);
  l.start();
  assert.deepEqual(kinds(l.events.a), ["ikeSaEstablished", "childSaEstablished"]);
  const [ca, cb] = [child(l.events.a)[0], child(l.events.b)[0]];
  assert.equal(ca.encap, "udp");
  assert.equal(cb.encap, "udp");
  assert.deepEqual(l.wire.map((w) => w.out.path.localPort), [500, 500, 4500, 4500]);
  assert.equal(cb.path.remotePort, 31001, "B answers where the authenticated request came from");
  // who is behind it: only A (B's NAT_DETECTION_DESTINATION_IP names A's translated port)
  const [ea, eb] = [l.events.a[0], l.events.b[0]];
  assert.ok(ea.type === "ikeSaEstablished" && eb.type === "ikeSaEstablished");
  assert.deepEqual([ea.natDetected, ea.behindNat], [true, true], "A: NAT-T, a NAT in front of A");
  assert.deepEqual([eb.natDetected, eb.behindNat], [true, false], "B: NAT-T, no NAT in front of B");
});

test("forceEncap pretends to be behind a NAT: ESP over UDP without one", () => {
  const l = lab(config("to-b", A, B, { forceEncap: true }), config("to-a", B, A));
  l.start();
  assert.equal(child(l.events.a)[0].encap, "udp");
  assert.equal(child(l.events.b)[0].encap, "udp");
  // NAT-T on both sides, but neither is behind a NAT: behindNat is what was detected, not what was forced
  for (const e of [l.events.a[0], l.events.b[0]]) {
    assert.ok(e.type === "ikeSaEstablished");
    assert.deepEqual([e.natDetected, e.behindNat], [true, false]);
  }
});

test("DELETE of the IKE SA (§1.4.1): both sides end it", () => {
  const l = lab(config("to-b", A, B), config("to-a", B, A));
  const sa = l.start();
  const s = sa.close();
  // deliver by hand through the lab's network
  assert.equal(s.send.length, 1);
  const out = s.send[0];
  const seen = { localAddress: out.path.remoteAddress, localPort: out.path.remotePort, remoteAddress: out.path.localAddress, remotePort: out.path.localPort };
  const resp = l.b.receive(out.bytes, seen);
  assert.deepEqual(kinds(resp.events), ["ikeSaDeleted"]);
  const back = resp.send[0];
  const fin = l.a.receive(back.bytes, out.path);
  assert.deepEqual(kinds(fin.events), ["ikeSaDeleted"]);
  assert.equal(sa.state, "deleted");
  assert.equal(l.a.sas.size + l.b.sas.size, 0);
});

test("unknown critical payloads are refused with UNSUPPORTED_CRITICAL_PAYLOAD naming the type (§2.5); unknown non-critical ones are ignored", () => {
  const cfgB = config("to-a", B, A);
  const atB: Path = { localAddress: B, localPort: 500, remoteAddress: A, remotePort: 500 };
  const initWith = (critical: boolean) => {
    const a = new IkeEndpoint(() => undefined, { random: (n) => new Uint8Array(randomBytes(n)), now: () => 0, allocateSpi: () => 0x4000 });
    const req = decodeMessage(a.initiate(config("to-b", A, B), { localAddress: A, localPort: 500, remoteAddress: B, remotePort: 500 }).step.send[0].bytes);
    assert.ok(req.ok);
    req.value.payloads.push({ kind: "opaque", type: 200, critical, body: Uint8Array.of(1, 2, 3) });
    const b = new IkeEndpoint(() => cfgB, { random: (n) => new Uint8Array(randomBytes(n)), now: () => 0, allocateSpi: () => 0x5000 });
    const resp = decodeMessage(b.receive(encodeMessage(req.value), atB).send[0].bytes);
    assert.ok(resp.ok);
    return resp.value.payloads;
  };
  const refused = initWith(true);
  assert.deepEqual(refused.map((p) => p.kind === "notify" && [p.notifyType, [...p.data]]), [[1, [200]]]);
  // NAT_DETECTION_SOURCE_IP, _DESTINATION_IP, IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383 §2.3)
  assert.deepEqual(initWith(false).map((p) => p.kind === "notify" ? p.notifyType : p.kind), ["sa", "ke", "nonce", 16388, 16389, 16430]);

  // inside SK, in IKE_AUTH: the responder answers the notification, the initiator fails with peer-error
  const l = lab(config("to-b", A, B), cfgB);
  const exchangeOf = (b: Uint8Array) => b[18]; // §3.1: Exchange Type
  l.setNet((d) => (d.from === "a" && exchangeOf(d.bytes) === 35 ? undefined : d)); // hold A's IKE_AUTH request back
  const sa = l.start();
  assert.equal(sa.state, "auth-sent");
  const authReq = decodeMessage(l.wire.at(-1)!.out.bytes);
  assert.ok(authReq.ok);
  const inner = openMessage(l.wire.at(-1)!.out.bytes, authReq.value.payloads[0], skKeys(sa.ctx).out);
  assert.ok(inner.ok);
  const forged = sealMessage(authReq.value.header, [...inner.value, { kind: "opaque", type: 201, critical: true, body: new Uint8Array(0) }], skKeys(sa.ctx).out);
  const back = l.b.receive(forged, atB);
  assert.deepEqual(kinds(back.events), ["refused"]);
  const fin = l.a.receive(back.send[0].bytes, { localAddress: A, localPort: 500, remoteAddress: B, remotePort: 500 });
  assert.deepEqual(fin.events.map((e) => e.type === "failed" && e.detail), ["IKE_AUTH refused with notify 1"]);
});

test("liveness (§2.4): after dpdSeconds of silence an empty INFORMATIONAL goes out and its answer keeps the SA; unanswered, the peer is declared dead", () => {
  const l = lab(config("to-b", A, B, { dpdSeconds: 10 }), config("to-a", B, A));
  const sa = l.start();
  const sent = () => l.wire.length;
  const before = sent();
  l.tick(9_999);
  assert.equal(sent(), before, "quiet before dpdSeconds");
  l.tick(1);
  assert.equal(sent(), before + 2, "request and response");
  assert.equal(l.wire.at(-2)!.out.bytes[18], 37, "INFORMATIONAL");
  assert.equal(sa.state, "established");
  assert.deepEqual(kinds(l.events.a).slice(2), [], "nothing to report");
  assert.equal(sa.nextTimeout, 10_000 + 10_000, "next check 10 s after the answer");
  // the peer goes silent: three sends (1 s, then 2 s), then dead
  l.setNet(() => undefined);
  l.tick(10_000);
  l.tick(1_000);
  l.tick(2_000);
  assert.equal(sa.state, "established");
  l.tick(4_000);
  assert.equal(sa.state, "failed");
  const dead = l.events.a.at(-1)!;
  assert.ok(dead.type === "failed" && dead.reason === "timeout" && /liveness/.test(dead.detail), JSON.stringify(dead));
  assert.equal(dead.sa, sa.id, "the event names the IKE SA");
  assert.equal(l.a.sas.size, 0);
});

test("a responder SA whose IKE_AUTH never comes is dropped after halfOpenSeconds", () => {
  const l = lab(config("to-b", A, B), config("to-a", B, A, { halfOpenSeconds: 5 }));
  l.setNet((d) => (d.from === "a" && d.bytes[18] === 35 ? undefined : d));
  l.start();
  assert.equal(l.b.sas.size, 1);
  l.tick(4_999);
  assert.equal(l.b.sas.size, 1);
  l.tick(1);
  assert.equal(l.b.sas.size, 0);
  assert.deepEqual(l.events.b.map((e) => e.type === "failed" && e.reason), ["half-open"]);
});

test("INITIAL_CONTACT (§2.4): a restarted peer's new IKE SA replaces the old one, which is deleted without a message", () => {
  const cfgB = config("to-a", B, A);
  const l = lab(config("to-b", A, B), cfgB);
  const first = l.start();
  const oldId = first.id;
  assert.equal(l.b.sas.size, 1);
  // A "restarts": a fresh endpoint with the same identity, initiating again
  const a2 = new IkeEndpoint(() => undefined, { random: (n) => new Uint8Array(randomBytes(n)), now: () => 0, allocateSpi: () => 0x7000 });
  let step = a2.initiate(config("to-b", A, B), { localAddress: A, localPort: 500, remoteAddress: B, remotePort: 500 }).step;
  const atB: Path = { localAddress: B, localPort: 500, remoteAddress: A, remotePort: 500 };
  const atA: Path = { localAddress: A, localPort: 500, remoteAddress: B, remotePort: 500 };
  const evB: IkeEvent[] = [];
  for (let i = 0; i < 2; i++) {
    const resp = l.b.receive(step.send[0].bytes, atB);
    evB.push(...resp.events);
    step = a2.receive(resp.send[0].bytes, atA);
  }
  assert.deepEqual(kinds(evB), ["ikeSaEstablished", "childSaEstablished", "ikeSaDeleted"]);
  const est = evB[0];
  assert.ok(est.type === "ikeSaEstablished" && est.initialContact);
  const del = evB[2];
  assert.ok(del.type === "ikeSaDeleted" && del.byPeer && del.why === "initial-contact");
  assert.equal(del.sa, oldId, "the old IKE SA, not the new one");
  assert.equal(l.b.sas.size, 1);
  assert.notEqual([...l.b.sas.values()][0].id, oldId);
});

test("close() during a liveness check waits for its answer, then deletes (window of one, §2.3)", () => {
  const l = lab(config("to-b", A, B, { dpdSeconds: 10 }), config("to-a", B, A));
  const sa = l.start();
  let hold: { bytes: Uint8Array; path: Path } | undefined;
  l.setNet((d) => (d.from === "b" && !hold ? ((hold = d), undefined) : d)); // hold B's answer to the check
  l.tick(10_000);
  assert.ok(hold);
  assert.deepEqual(sa.close(), { send: [], events: [] });
  const after = l.a.receive(hold.bytes, hold.path);
  assert.equal(after.send.length, 1, "the DELETE goes out once the check is answered");
  assert.equal(sa.state, "deleting");
});

test("cookies (§2.6): with too many half-open SAs the responder answers N(COOKIE) statelessly; the initiator retries with it and succeeds", () => {
  const l = lab(config("to-b", A, B), config("to-a", B, A), { cookieThreshold: 0 });
  l.start();
  assert.deepEqual(kinds(l.events.a), ["ikeSaEstablished", "childSaEstablished"]);
  assert.equal(l.wire.length, 6, "INIT, COOKIE, INIT with cookie, response, AUTH pair");
  const challenge = decodeMessage(l.wire[1].out.bytes);
  assert.ok(challenge.ok);
  assert.deepEqual(challenge.value.payloads.map((p) => p.kind === "notify" && p.notifyType), [16390]);
  const retry = decodeMessage(l.wire[2].out.bytes);
  assert.ok(retry.ok);
  const first = retry.value.payloads[0];
  assert.ok(first.kind === "notify" && first.notifyType === 16390, "the cookie comes first");
  assert.equal(l.b.counters.get("cookie-sent"), 1);
  assertMirrored(child(l.events.a)[0], child(l.events.b)[0]);

  // a wrong cookie (or one for another SPI) is answered with a fresh challenge and no state
  const b2 = new IkeEndpoint((r) => (r === A ? config("to-a", B, A) : undefined), { random: (n) => new Uint8Array(randomBytes(n)), now: () => 0, allocateSpi: () => 0x6000 }, { cookieThreshold: 0 });
  const forged = { ...retry.value, payloads: [{ ...first, data: first.data.map((x) => x ^ 1) }, ...retry.value.payloads.slice(1)] };
  const answer = b2.receive(encodeMessage(forged), { localAddress: B, localPort: 500, remoteAddress: A, remotePort: 500 });
  const am = decodeMessage(answer.send[0].bytes);
  assert.ok(am.ok && am.value.payloads.length === 1 && am.value.payloads[0].kind === "notify" && am.value.payloads[0].notifyType === 16390);
  assert.equal(b2.sas.size, 0);
  assert.equal(b2.halfOpenCount, 0);
});

test("cookies are demanded only from cookieThreshold half-open SAs on", () => {
  const cfgB = config("to-a", B, A);
  const b = new IkeEndpoint((r) => (r === A ? cfgB : undefined), { random: (n) => new Uint8Array(randomBytes(n)), now: () => 0, allocateSpi: () => 0x6000 }, { cookieThreshold: 2 });
  const atB: Path = { localAddress: B, localPort: 500, remoteAddress: A, remotePort: 500 };
  const firstPayloads: string[] = [];
  for (let i = 0; i < 3; i++) {
    const a = new IkeEndpoint(() => undefined, { random: (n) => new Uint8Array(randomBytes(n)), now: () => 0, allocateSpi: () => 0x7000 });
    const req = a.initiate(config("to-b", A, B), { localAddress: A, localPort: 500, remoteAddress: B, remotePort: 500 }).step.send[0].bytes;
    const resp = decodeMessage(b.receive(req, atB).send[0].bytes);
    assert.ok(resp.ok);
    const p = resp.value.payloads[0];
    firstPayloads.push(p.kind === "notify" ? `N(${p.notifyType})` : p.kind);
  }
  assert.deepEqual(firstPayloads, ["sa", "sa", "N(16390)"]);
  assert.equal(b.halfOpenCount, 2);
});

test("NAT-keepalives (RFC 3948 §2.3): only the side behind the NAT sends them, every keepaliveSeconds, on the NAT-T path", () => {
  const l = lab(config("to-b", A, B, { keepaliveSeconds: 20 }), config("to-a", B, A, { keepaliveSeconds: 20 }));
  l.setNet(natInFrontOfA);
  l.start();
  const keepalives = () => l.wire.filter((w) => w.out.keepalive);
  l.tick(19_999);
  assert.equal(keepalives().length, 0);
  l.tick(1);
  assert.equal(keepalives().length, 1);
  const k = keepalives()[0];
  assert.equal(k.from, "a", "A is behind the NAT");
  assert.deepEqual([...k.out.bytes], [0xff]);
  assert.equal(k.out.path.localPort, 4500);
  l.tick(20_000);
  assert.equal(keepalives().length, 2);
  // without a NAT, none
  const quiet = lab(config("to-b", A, B, { keepaliveSeconds: 20 }), config("to-a", B, A, { keepaliveSeconds: 20 }));
  quiet.start();
  quiet.tick(60_000);
  assert.equal(quiet.wire.filter((w) => w.out.keepalive).length, 0);
});
