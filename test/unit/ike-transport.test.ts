// host/ike/transport.ts over real UDP sockets on loopback (127.0.0.1 ↔ 127.0.0.2,
// unprivileged ports): two endpoints establish an IKE SA and a CHILD_SA, with
// forced NAT-T so IKE_AUTH runs on the NAT-T port behind the non-ESP marker
// (RFC 3948 §2.2); keepalives and ESP on that port are counted, not parsed as IKE.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { classifyNatt, frameOutgoing } from "../../host/ike/transport.ts";
import type { ChildSaEstablished } from "../../host/ike/types.ts";
import { loopbackPair } from "./ike-harness.ts";
import { waitFor } from "../../host/util/proc.ts";

test("non-ESP marker framing and classification (RFC 3948 §2.2, §2.3)", () => {
  const path = { localAddress: "a", localPort: 4500, remoteAddress: "b", remotePort: 4500 };
  const ike = Uint8Array.of(1, 2, 3, 4, 5);
  const framed = frameOutgoing({ bytes: ike, path }, 4500);
  assert.deepEqual([...framed], [0, 0, 0, 0, 1, 2, 3, 4, 5]);
  assert.deepEqual(frameOutgoing({ bytes: ike, path: { ...path, localPort: 500 } }, 4500), ike);
  assert.deepEqual(classifyNatt(framed), { kind: "ike", bytes: ike });
  assert.deepEqual([...frameOutgoing({ bytes: Uint8Array.of(0xff), path, keepalive: true }, 4500)], [0xff], "a keepalive has no marker");
  assert.deepEqual(classifyNatt(Uint8Array.of(0xff)), { kind: "keepalive" });
  assert.deepEqual(classifyNatt(Uint8Array.of(0, 0, 1, 0, 0, 0, 0, 1)), { kind: "esp" });
  assert.deepEqual(classifyNatt(Uint8Array.of(0, 0)), { kind: "short" });
});

test("two transports on loopback: IKE SA and CHILD_SA over UDP, IKE_AUTH behind the marker on the NAT-T port", async () => {
  const { A, B, ports, events, tb, initiate, close } = await loopbackPair({ ike: "aes256-sha256-modp2048", esp: "aes128-sha256", portBase: 20000 });
  try {
    initiate();
    const kids = () => [...events.a, ...events.b].filter((e): e is ChildSaEstablished => e.type === "childSaEstablished");
    await waitFor(() => kids().length === 2 || [...events.a, ...events.b].some((e) => e.type === "failed"), "both CHILD_SA events", 10_000, 20);
    const [ca, cb] = [kids().find((k) => k.initiator)!, kids().find((k) => !k.initiator)!];
    assert.ok(ca && cb, JSON.stringify([...events.a, ...events.b].map((e) => e.type)));
    assert.equal(ca.spiOut, cb.spiIn);
    assert.deepEqual(ca.keyOut, cb.keyIn);
    assert.deepEqual(ca.authKeyIn, cb.authKeyOut);
    assert.equal(ca.suite, "aes-128-cbc-hmac-sha256");
    assert.equal(ca.encap, "udp");
    assert.equal(ca.path.remotePort, ports.natt, "IKE_AUTH went over the NAT-T port");
    assert.equal(cb.path.localPort, ports.natt);

    // keepalive, ESP and garbage on B's NAT-T port: counted, not IKE
    const s = createSocket("udp4");
    await new Promise<void>((r) => s.bind(0, A, () => r()));
    for (const d of [Uint8Array.of(0xff), Uint8Array.of(0, 0, 0x10, 0, 0, 0, 0, 1, 9, 9), Uint8Array.of(0, 0), Uint8Array.of(0, 0, 0, 0, 1, 2, 3)]) {
      s.send(d, ports.natt, B);
    }
    await waitFor(() => (tb.counters.get("keepalive") ?? 0) + (tb.counters.get("esp") ?? 0) + (tb.counters.get("short") ?? 0) === 3 && tb.endpoint.counters.get("decode:short-header") === 1, "B counts all four", 5000, 20);
    s.close();
  } finally {
    close();
  }
});
