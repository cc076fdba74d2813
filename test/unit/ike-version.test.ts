// RFC 7296 §2.5 / §1.5: an IKE_SA_INIT request of a higher major version is dropped
// and answered with an unprotected INVALID_MAJOR_VERSION — never longer than the
// request, only to configured peers, within a per-source and a global token bucket;
// every datagram counted under one reason.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { IkeEndpoint } from "../../host/ike/endpoint.ts";
import { IkeSa } from "../../host/ike/ike_sa.ts";
import { decodeMessage } from "../../host/ike/message.ts";
import type { Path } from "../../host/ike/types.ts";
import type { AnswerLimits } from "../../host/ike/unprotected_answers.ts";
import { A, B, config } from "./ike-harness.ts";

const from = (addr: string): Path => ({ localAddress: B, localPort: 500, remoteAddress: addr, remotePort: 500 });

function responder(o: { anyPeer?: boolean; answerLimits?: AnswerLimits } = {}) {
  let now = 0;
  const deps = { random: (n: number) => new Uint8Array(randomBytes(n)), now: () => now, allocateSpi: () => 0x7000 };
  const cfg = config("to-a", B, A);
  const ep = new IkeEndpoint((r) => (o.anyPeer || r === A ? cfg : undefined), deps, { answerLimits: o.answerLimits });
  return { ep, advance: (ms: number) => (now += ms) };
}

/** A genuine IKE_SA_INIT request from A, with its version byte set to `version`. */
function initRequest(version: number): Uint8Array {
  const deps = { random: (n: number) => new Uint8Array(randomBytes(n)), now: () => 0, allocateSpi: () => 0x8000 };
  const bytes = IkeSa.initiate(config("to-b", A, B), from(B), deps).step.send[0].bytes.slice();
  bytes[17] = version;
  return bytes;
}

test("§2.5: IKE_SA_INIT with major version 3: INVALID_MAJOR_VERSION, unprotected, SPIs/exchange/Message ID copied, R set, version 2.0, no state, counted", () => {
  const { ep } = responder();
  const req = initRequest(0x30);
  const s = ep.receive(req, from(A));
  assert.equal(s.send.length, 1);
  const ans = s.send[0];
  assert.equal(ans.path.remoteAddress, A);
  assert.ok(ans.bytes.length <= req.length, "never longer than the request");
  assert.equal(ans.bytes.length, 36);
  const m = decodeMessage(ans.bytes);
  assert.ok(m.ok, JSON.stringify(m));
  const h = m.value.header;
  assert.deepEqual([Buffer.from(h.spiI).toString("hex"), Buffer.from(h.spiR).toString("hex")], [Buffer.from(req.subarray(0, 8)).toString("hex"), "0000000000000000"]);
  assert.deepEqual([h.version, h.exchange, h.flags, h.messageId], [0x20, 34, 0x20, 0]);
  assert.deepEqual(m.value.payloads.map((p) => p.kind === "notify" && p.notifyType), [5]);
  assert.equal(ep.sas.size, 0);
  assert.deepEqual([...ep.counters], [["invalid-major-version-sent", 1]]);
});

test("no answer: a lower major version, a response, another exchange, a short request, an address that is not a peer's", () => {
  const { ep } = responder();
  const cases: [string, Uint8Array, string][] = [];
  cases.push(["IKEv1", initRequest(0x10), A]);
  const resp = initRequest(0x30);
  resp[19] |= 0x20;
  cases.push(["a response", resp, A]);
  const other = initRequest(0x30);
  other[18] = 37;
  cases.push(["INFORMATIONAL", other, A]);
  const short = initRequest(0x30).slice(0, 32);
  new DataView(short.buffer).setUint32(24, 32);
  cases.push(["32 bytes", short, A]);
  cases.push(["unknown address", initRequest(0x30), "198.51.100.9"]);
  for (const [what, bytes, addr] of cases) assert.deepEqual(ep.receive(bytes, from(addr)).send, [], what);
  assert.deepEqual(Object.fromEntries(ep.counters), { "decode:bad-major-version": 4, "invalid-major-version-short": 1 });
});

test("rate limits: per source a burst then one a second; all sources together a global burst; the rest dropped and counted", () => {
  const limits = { perSourceRate: 1, perSourceBurst: 3, globalRate: 10, globalBurst: 20, maxSources: 1000 };
  const { ep, advance } = responder({ anyPeer: true, answerLimits: limits });
  const sent = (addr: string, n: number) => {
    let k = 0;
    for (let i = 0; i < n; i++) k += ep.receive(initRequest(0x30), from(addr)).send.length;
    return k;
  };
  assert.equal(sent(A, 10), 3, "one source: its burst");
  advance(1000);
  assert.equal(sent(A, 10), 1, "a second later: one more");
  // 100 sources, 5 each: the global bucket bounds them (20 at 1 s, less the one just taken)
  let total = 0;
  for (let i = 0; i < 100; i++) total += sent(`203.0.113.${i}`, 5);
  assert.equal(total, 19);
  assert.equal(ep.counters.get("invalid-major-version-sent"), 3 + 1 + 19);
  assert.equal(ep.counters.get("invalid-major-version-limited"), 7 + 9 + 500 - 19);
  advance(60_000);
  assert.equal(sent("203.0.113.200", 5), 3, "the buckets refill");
});
