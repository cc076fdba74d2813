// host/ike/transport.ts `hold` over real UDP on loopback: the responder's IKE_AUTH
// answer, which creates the CHILD_SA, stays unsent until the hold resolves (in
// `wesp up`: until the inbound SA is in the worker), its events delivered first;
// the initiator's retransmissions meanwhile get nothing either (the cached answer
// waits behind the held one, RFC 7296 §2.1); once released, the SA comes up.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { IkeEndpoint } from "../../host/ike/endpoint.ts";
import { IkeTransport } from "../../host/ike/transport.ts";
import type { IkeEvent } from "../../host/ike/types.ts";
import { waitFor } from "../../host/util/proc.ts";
import { config } from "./ike-harness.ts";

test("a CHILD_SA's answer waits for the hold; retransmissions answered from the cache wait too", async () => {
  const ports = { ike: 23000 + (process.pid % 10000), natt: 23001 + (process.pid % 10000) };
  const [LA, LB] = ["127.0.0.1", "127.0.0.2"];
  const common = { ports, forceEncap: true, retransmit: { baseMs: 100, tries: 8 } };
  const cfgA = config("to-b", LA, LB, { ...common, lts: ["10.1.0.0/16"], rts: ["10.2.0.0/16"] });
  const cfgB = config("to-a", LB, LA, { ...common, lts: ["10.2.0.0/16"], rts: ["10.1.0.0/16"] });
  let spi = 0x3000;
  const deps = () => ({ random: (n: number) => new Uint8Array(randomBytes(n)), now: Date.now, allocateSpi: () => ++spi });
  const epA = new IkeEndpoint(() => undefined, deps());
  const epB = new IkeEndpoint((r) => (r === LA ? cfgB : undefined), deps());
  const events = { a: [] as IkeEvent[], b: [] as IkeEvent[] };
  let release!: () => void;
  const installed = new Promise<void>((r) => (release = r));
  let holds = 0;
  let heldWhenAsked = -1;
  const ta = new IkeTransport(epA, { address: LA, ports }, (e) => events.a.push(e));
  const tb = new IkeTransport(epB, { address: LB, ports, hold: () => ((holds++, heldWhenAsked = events.b.filter((e) => e.type === "childSaEstablished").length), installed) }, (e) => events.b.push(e));
  await ta.start();
  await tb.start();
  try {
    ta.apply(epA.initiate(cfgA, { localAddress: LA, localPort: ports.ike, remoteAddress: LB, remotePort: ports.ike }).step);
    await waitFor(() => events.b.some((e) => e.type === "childSaEstablished"), "the responder's CHILD_SA event", 10_000, 10);
    assert.equal(holds, 1);
    assert.equal(heldWhenAsked, 1, "the events reach the manager before the hold is asked for");
    // A retransmits IKE_AUTH every 100, 200, 400 ms … : none of it may get the answer while held
    await new Promise((r) => setTimeout(r, 800));
    assert.equal(events.a.some((e) => e.type === "ikeSaEstablished"), false, `the initiator heard nothing while held: ${events.a.map((e) => e.type)}`);
    release();
    await waitFor(() => events.a.some((e) => e.type === "childSaEstablished"), "the initiator's CHILD_SA once released", 10_000, 10);
    assert.equal(events.a.filter((e) => e.type === "failed").length, 0);
  } finally {
    ta.close();
    tb.close();
  }
});
