// Bounds on half-open responder SAs (host/ike/endpoint.ts): past `halfOpenPerAddress`
// from one address, or `halfOpenMax` in all, a new IKE_SA_INIT request is dropped and
// counted, even one with a valid cookie (§2.6: a cookie proves only that the sender
// receives at its address). A slot comes back when its SA completes or expires.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { IkeEndpoint } from "../../host/ike/endpoint.ts";
import type { Path } from "../../host/ike/types.ts";
import { B, config } from "./ike-harness.ts";

const deps = (now: () => number) => ({ random: (n: number) => new Uint8Array(randomBytes(n)), now, allocateSpi: () => 0x6000 });
const atB = (from: string): Path => ({ localAddress: B, localPort: 500, remoteAddress: from, remotePort: 500 });

/** A fresh initiator's IKE_SA_INIT request from `from`. */
function initRequest(from: string): Uint8Array {
  const a = new IkeEndpoint(() => undefined, deps(() => 0));
  return a.initiate(config("to-b", from, B), { localAddress: from, localPort: 500, remoteAddress: B, remotePort: 500 }).step.send[0].bytes;
}

test("half-open SAs per address and in all are bounded; the drops are counted; expiry frees the slots", () => {
  let now = 0;
  const b = new IkeEndpoint((r) => config("to-a", B, r, { halfOpenSeconds: 5 }), deps(() => now), { cookieThreshold: 1000, halfOpenPerAddress: 3, halfOpenMax: 5 });
  const answered = (from: string) => b.receive(initRequest(from), atB(from)).send.length;
  assert.deepEqual([1, 2, 3, 4].map(() => answered("10.99.0.10")), [1, 1, 1, 0], "the 4th from one address is dropped");
  assert.equal(b.counters.get("half-open-per-address"), 1);
  assert.deepEqual([1, 2, 3].map(() => answered("10.99.0.11")), [1, 1, 0], "the 6th in all is dropped");
  assert.equal(b.counters.get("half-open-limit"), 1);
  assert.equal(b.halfOpenCount, 5);
  assert.equal(b.sas.size, 5);
  now = 5_000;
  b.tick(now);
  assert.equal(b.halfOpenCount, 0, "expired (halfOpenSeconds)");
  assert.equal(b.sas.size, 0);
  assert.deepEqual([1, 2, 3, 4].map(() => answered("10.99.0.10")), [1, 1, 1, 0], "the address has its slots back");
});
