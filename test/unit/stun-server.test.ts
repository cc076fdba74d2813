// The controller's STUN responder (host/controller/stun_server.ts) and the
// CE's client (host/net/stun_client.ts): what each request gets (success,
// 420 with UNKNOWN-ATTRIBUTES, 400, nothing), the per-source rate limit, the
// RFC 8489 §6.2.1 retransmission schedule (counted in requests, not timed),
// and one transaction over real loopback sockets.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { SourceLimiter, StunServer, answerStun, limitKey, type StunCounters } from "../../host/controller/stun_server.ts";
import { discover, udpTransport, type StunTransport } from "../../host/net/stun_client.ts";
import { classifyNat } from "../../host/net/stun_nat_type.ts";
import { decodeStun, encodeStun, type StunAddress } from "../../host/net/stun.ts";

const TID = Uint8Array.from({ length: 12 }, (_, i) => i + 1);
const FROM: StunAddress = { family: 4, address: Uint8Array.of(198, 51, 100, 7), port: 40123 };
const zero = (): StunCounters => ({ answered: 0, errors: 0, rateLimited: 0, malformed: 0, ignored: 0 });

function withAttr(base: Uint8Array, type: number): Uint8Array {
  const b = new Uint8Array(base.length + 8);
  b.set(base);
  b[base.length] = type >> 8; b[base.length + 1] = type; b[base.length + 3] = 4;
  b[3] = base.length + 8 - 20;
  return b;
}

test("answers: Binding → XOR-MAPPED-ADDRESS of the sender; unknown required → 420; other method → 400; others → nothing", () => {
  const c = zero();
  const ok = decodeStun(answerStun(encodeStun({ cls: "request", method: 1, transactionId: TID }), FROM, c)!.bytes);
  assert.ok(ok.ok);
  assert.equal(ok.value.message.cls, "success");
  assert.deepEqual(ok.value.message.transactionId, TID);
  assert.deepEqual(ok.value.message.xorMappedAddress, FROM);
  assert.equal(ok.value.fingerprint, true);

  const unknown = withAttr(encodeStun({ cls: "request", method: 1, transactionId: TID }), 0x0024);
  const e420 = decodeStun(answerStun(unknown, FROM, c)!.bytes);
  assert.ok(e420.ok);
  assert.equal(e420.value.message.cls, "error");
  assert.deepEqual(e420.value.message.errorCode, { code: 420, reason: "Unknown Attribute" });
  assert.deepEqual(e420.value.message.unknownAttributes, [0x0024]);
  assert.equal(e420.value.message.xorMappedAddress, undefined);

  const optional = withAttr(encodeStun({ cls: "request", method: 1, transactionId: TID }), 0x8099);
  assert.equal(decodeStun(answerStun(optional, FROM, c)!.bytes).ok && "answered", "answered", "unknown optional attribute: answered");

  const e400 = decodeStun(answerStun(encodeStun({ cls: "request", method: 0x003, transactionId: TID }), FROM, c)!.bytes);
  assert.ok(e400.ok && e400.value.message.errorCode?.code === 400);

  assert.equal(answerStun(encodeStun({ cls: "indication", method: 1, transactionId: TID }), FROM, c), null);
  assert.equal(answerStun(encodeStun({ cls: "success", method: 1, transactionId: TID, xorMappedAddress: FROM }), FROM, c), null);
  assert.equal(answerStun(Uint8Array.of(0, 0, 0, 0), FROM, c), null);
  const badFp = encodeStun({ cls: "request", method: 1, transactionId: TID }, { fingerprint: true });
  badFp[badFp.length - 1] ^= 1;
  assert.equal(answerStun(badFp, FROM, c), null);
  assert.deepEqual(c, { answered: 2, errors: 2, rateLimited: 0, malformed: 2, ignored: 2 });
  // No amplifier: every answer is at most 60 bytes longer than its request (docs/controller.md).
  const v6: StunAddress = { family: 6, address: new Uint8Array(16).fill(0xab), port: 1 };
  for (const req of [encodeStun({ cls: "request", method: 1, transactionId: TID }), unknown, optional, encodeStun({ cls: "request", method: 3, transactionId: TID })]) {
    const res = answerStun(req, v6, zero())!.bytes;
    assert.ok(res.length - req.length <= 60, `${req.length} → ${res.length}`);
  }
});

test("rate limit: a token bucket per source; the least recently seen source is forgotten first", () => {
  const l = new SourceLimiter(2, 3, 2);
  const got = [0, 0, 0, 0, 0].map(() => l.take("a", 0));
  assert.deepEqual(got, [true, true, true, false, false], "burst of 3");
  assert.equal(l.take("a", 499), false, "0.998 tokens after 499 ms at 2/s");
  assert.equal(l.take("a", 500), true, "one token after 500 ms");
  assert.equal(l.take("b", 500), true);
  assert.equal(l.take("c", 500), true, "a third source evicts the oldest (a)");
  assert.equal(l.size, 2);
  assert.deepEqual([0, 0, 0].map(() => l.take("a", 500)), [true, true, true], "a comes back with a full bucket");
  const v6 = (last: number, sixth = 0) => Uint8Array.from([0x20, 1, 0xd, 0xb8, 0, 0, 0, sixth, 0, 0, 0, 0, 0, 0, 0, last]);
  assert.equal(limitKey(6, v6(1)), limitKey(6, v6(2)), "one /64, one bucket");
  assert.notEqual(limitKey(6, v6(1)), limitKey(6, v6(1, 1)), "another /64, another bucket");
  assert.equal(limitKey(4, Uint8Array.of(192, 0, 2, 1)), "192.0.2.1");
});

/** A transport over a real socket that loses the first `lose` requests and counts sends. */
async function lossy(port: number, lose: number): Promise<StunTransport & { sends: number }> {
  const t = await udpTransport("127.0.0.1", port);
  const out = {
    sends: 0,
    send(b: Uint8Array, h: string, p: number) {
      if (out.sends++ >= lose) t.send(b, h, p);
    },
    onStun: t.onStun,
    close: t.close,
  };
  return out;
}

test("client over loopback: learns its own address and port; retransmits through loss; gives up after Rc requests", async () => {
  const server = await StunServer.start({ host: "127.0.0.1", port: 0 });
  try {
    const at = { host: "127.0.0.1", port: server.address.port };
    const m = await discover("127.0.0.1", 0, at, { rtoMs: 20 });
    // Port 0 asks the kernel for any: the mapping is that port, which the client does not know in advance.
    assert.equal(m.publicAddress, "127.0.0.1");
    assert.ok(m.publicPort > 0);

    const probe = createSocket("udp4");
    await new Promise<void>((r) => probe.bind(0, "127.0.0.1", r));
    const free = probe.address().port;
    probe.close();
    const t = await lossy(free, 3);
    const m2 = await discover("127.0.0.1", free, at, { rtoMs: 10, transport: t });
    t.close!();
    assert.deepEqual(m2, { publicAddress: "127.0.0.1", publicPort: free, natted: false });
    assert.ok(t.sends >= 4, `three lost, a later one answered (${t.sends} sent)`);

    const dead = await lossy(free, Infinity);
    await assert.rejects(discover("127.0.0.1", free, at, { rtoMs: 5, rc: 3, rm: 2, transport: dead }), /after 3 requests/);
    dead.close!();
    assert.equal(dead.sends, 3, "Rc requests, no more");
    assert.ok(server.counters.answered >= 2);
  } finally {
    await server.close();
  }
});

test("responder over loopback: one source beyond its burst is dropped and counted", async () => {
  const server = await StunServer.start({ host: "127.0.0.1", port: 0, rate: 0.001, burst: 5 });
  const sock = createSocket("udp4");
  try {
    await new Promise<void>((r) => sock.bind(0, "127.0.0.1", r));
    let replies = 0;
    sock.on("message", () => replies++);
    for (let i = 0; i < 50; i++) sock.send(encodeStun({ cls: "request", method: 1, transactionId: TID }), server.address.port, "127.0.0.1");
    const c = server.counters;
    while (c.answered + c.rateLimited < 50) await new Promise((r) => setTimeout(r, 10));
    assert.equal(c.answered, 5);
    assert.equal(c.rateLimited, 45);
    while (replies < 5) await new Promise((r) => setTimeout(r, 10));
  } finally {
    sock.close();
    await server.close();
  }
});

test("RFC 5780: with an alternate address, RESPONSE-ORIGIN and OTHER-ADDRESS; CHANGE-REQUEST picks the socket; without one, 420", () => {
  const at = (a: number, port: number): StunAddress => ({ family: 4, address: Uint8Array.of(192, 0, 2, a), port });
  const addrs = [[at(1, 3478), at(1, 3479)], [at(2, 3478), at(2, 3479)]];
  const ask = (change?: { ip: boolean; port: boolean }) => encodeStun({ cls: "request", method: 1, transactionId: TID, ...(change ? { changeRequest: change } : {}) });
  for (const [change, from] of [[undefined, [0, 1]], [{ ip: true, port: true }, [1, 0]], [{ ip: false, port: true }, [0, 0]], [{ ip: true, port: false }, [1, 1]]] as const) {
    const a = answerStun(ask(change), FROM, zero(), { addrs, at: [0, 1] })!;
    assert.deepEqual(a.from, from);
    const d = decodeStun(a.bytes);
    assert.ok(d.ok);
    assert.deepEqual(d.value.message.responseOrigin, addrs[from[0]][from[1]]);
    assert.deepEqual(d.value.message.otherAddress, addrs[1][0], "the opposite corner of where the request came in");
    assert.ok(a.bytes.length - 20 <= 100, "amplification bound with RFC 5780 attributes (docs/controller.md)");
  }
  const no = decodeStun(answerStun(ask({ ip: true, port: false }), FROM, zero())!.bytes);
  assert.ok(no.ok && no.value.message.errorCode?.code === 420);
  assert.deepEqual(no.ok && no.value.message.unknownAttributes, [0x0003]);
});

test("RFC 5780 over loopback: no NAT, nothing filtered", async () => {
  const server = await StunServer.start({ host: "127.0.0.1", port: 0, alternate: "127.0.0.2" });
  try {
    const r = await classifyNat("127.0.0.1", 0, { host: "127.0.0.1", port: server.address.port }, { rtoMs: 50 });
    assert.equal(r.filtering, "endpoint-independent");
    // Port 0 asks the kernel for any port, so the client cannot tell its own: the mapping is "some NAT" that keeps it.
    assert.equal(r.mapping, "endpoint-independent");
    assert.equal(r.publicAddress, "127.0.0.1");
  } finally {
    await server.close();
  }
});
