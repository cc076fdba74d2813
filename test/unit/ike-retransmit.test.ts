// A responder answers a retransmitted request from its cache (RFC 7296 §2.1) only
// when the datagram is the request it answered, byte for byte: anything else with
// that Message ID is unauthenticated, and answering it would reflect the cached
// response to whatever address the datagram claims (found by
// test/interop/ike-hostile.test.ts: ~10,000 mutated datagrams answered).
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { IkeEndpoint } from "../../host/ike/endpoint.ts";
import type { Path } from "../../host/ike/types.ts";
import { A, B, config, lab } from "./ike-harness.ts";

const atB: Path = { localAddress: B, localPort: 500, remoteAddress: A, remotePort: 500 };
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** `request` again gets exactly `response`; with any one of `bytes` flipped, nothing, each counted (as a mismatch unless the decoder refuses it first). */
function checkRetransmission(b: IkeEndpoint, request: Uint8Array, response: Uint8Array, bytes: number[]): void {
  assert.deepEqual(b.receive(request, atB).send.map((s) => hex(s.bytes)), [hex(response)], "the cached response");
  const total = () => [...b.counters.values()].reduce((x, y) => x + y, 0);
  const before = total();
  for (const at of bytes) {
    const forged = request.slice();
    forged[at] ^= 1;
    assert.deepEqual(b.receive(forged, atB).send, [], `byte ${at} flipped: nothing sent`);
  }
  assert.equal(total(), before + bytes.length, JSON.stringify([...b.counters]));
  assert.ok((b.counters.get("retransmit-mismatch") ?? 0) > 0);
}

test("IKE_AUTH: a retransmission gets the cached response; the same Message ID with other bytes is refused and counted", () => {
  const l = lab(config("to-b", A, B), config("to-a", B, A));
  l.start();
  const sent = (from: "a" | "b") => l.wire.filter((w) => w.from === from && w.out.bytes[18] === 35)[0].out.bytes;
  const request = sent("a");
  checkRetransmission(l.b, request, sent("b"), [request.length - 1, 40, 19]);
});

test("IKE_SA_INIT to a half-open SA: the same, from the same address and port", () => {
  const deps = { random: (n: number) => new Uint8Array(randomBytes(n)), now: () => 0, allocateSpi: () => 0x6000 };
  const b = new IkeEndpoint((r) => (r === A ? config("to-a", B, A) : undefined), deps);
  const a = new IkeEndpoint(() => undefined, deps);
  const request = a.initiate(config("to-b", A, B), { localAddress: A, localPort: 500, remoteAddress: B, remotePort: 500 }).step.send[0].bytes;
  const response = b.receive(request, atB).send[0].bytes;
  checkRetransmission(b, request, response, [request.length - 1, 60]);
  assert.equal(b.halfOpenCount, 1);
});
