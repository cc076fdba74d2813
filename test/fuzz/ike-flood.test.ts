// A running responder (host/ike/transport.ts + endpoint.ts on loopback sockets)
// under 30,000 hostile datagrams — mutations (./ike-mutate.ts) of a real
// exchange's messages, on the IKE port and behind the non-ESP marker on the
// NAT-T port — from an address it treats as a peer: nothing throws out of the
// socket handler (no `internal` count), half-open state stays at the cookie
// threshold (§2.6), every datagram is accounted for, and a genuine initiator
// still gets its IKE SA and CHILD_SA afterwards.
// A failure prints its seed; WESP_SEED=<n> replays it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import type { Path } from "../../host/ike/types.ts";
import { waitFor } from "../../host/util/proc.ts";
import { Rng, seedFromEnv } from "../helpers/gen.ts";
import { mutate, payloadOffsets } from "./ike-mutate.ts";
import { loopbackPair } from "../unit/ike-harness.ts";

const FLOOD = 30_000;
const THRESHOLD = 8;

test(`a running responder takes ${FLOOD.toLocaleString("en")} hostile datagrams over UDP and still serves`, async () => {
  const seed = seedFromEnv();
  const r = new Rng(seed);
  const pair = await loopbackPair({ ike: "aes128gcm16-prfsha256-x25519", esp: "aes128gcm16", portBase: 30000, cookieThreshold: THRESHOLD });
  const { A, B, ports, epB, tb, events, initiate } = pair;
  // record what reaches B's endpoint: the genuine messages become the corpus, and every datagram is counted
  const corpus: Uint8Array[] = [];
  let received = 0;
  const receive = epB.receive.bind(epB);
  epB.receive = (bytes: Uint8Array, path: Path) => {
    received++;
    if (corpus.length < 2) corpus.push(bytes.slice());
    return receive(bytes, path);
  };
  const attacker = createSocket("udp4");
  try {
    const established = () => events.a.filter((e) => e.type === "childSaEstablished").length;
    initiate();
    await waitFor(() => established() === 1, "the genuine exchange", 10_000, 20);
    assert.equal(corpus.length, 2, "IKE_SA_INIT and IKE_AUTH requests recorded");

    await new Promise<void>((res) => attacker.bind(0, A, () => res()));
    const before = received;
    const counted = () => received - before + (tb.counters.get("short") ?? 0) + (tb.counters.get("esp") ?? 0) + (tb.counters.get("keepalive") ?? 0);
    let toNatt = 0;
    for (let i = 0; i < FLOOD; i++) {
      const src = r.pick(corpus);
      const m = mutate(r, src, payloadOffsets(src), r.pick(corpus));
      if (r.bool(0.3)) {
        const framed = new Uint8Array(4 + m.length); // non-ESP marker, RFC 3948 §2.2
        framed.set(m, 4);
        attacker.send(framed, ports.natt, B);
        toNatt++;
      } else {
        attacker.send(m, ports.ike, B);
      }
      // flow control: at most 50 datagrams in flight, so B's socket buffer never overflows
      if (i % 50 === 49) await waitFor(() => counted() >= i + 1 - 50, "B to catch up", 2_000, 1).catch(() => undefined);
    }
    await waitFor(() => counted() >= FLOOD * 0.99, "B to account for every datagram", 20_000, 50).catch(() => undefined);
    assert.ok(counted() >= FLOOD * 0.99, `seed ${seed}: B saw ${counted()} of ${FLOOD} (${toNatt} to the NAT-T port)`);
    assert.equal(tb.counters.get("internal"), undefined, `seed ${seed}: a handler threw: ${JSON.stringify(events.b.find((e) => e.type === "refused" && e.reason === "internal"))}`);
    assert.ok(epB.halfOpenCount <= THRESHOLD, `seed ${seed}: ${epB.halfOpenCount} half-open SAs`);
    assert.ok((epB.counters.get("cookie-sent") ?? 0) > 0, "cookies were demanded");
    const refusedKinds = [...epB.counters.keys()];
    assert.ok(refusedKinds.length >= 5, `refusals counted by reason: ${refusedKinds.join(" ")}`);

    // a genuine initiator still gets through (behind a cookie if B is at its threshold)
    initiate();
    await waitFor(() => established() === 2, "a second genuine exchange", 10_000, 20);
  } finally {
    attacker.close();
    pair.close();
  }
});
