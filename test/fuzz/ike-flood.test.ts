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
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { IkeEndpoint } from "../../host/ike/endpoint.ts";
import { ikeSaConfig } from "../../host/ike/config.ts";
import { IkeTransport } from "../../host/ike/transport.ts";
import type { IkeEvent, Path } from "../../host/ike/types.ts";
import { waitFor } from "../../host/util/proc.ts";
import { Rng, seedFromEnv } from "../helpers/gen.ts";
import { mutate, payloadOffsets } from "./ike-mutate.ts";

const FLOOD = 30_000;
const THRESHOLD = 8;

test(`a running responder takes ${FLOOD.toLocaleString("en")} hostile datagrams over UDP and still serves`, async () => {
  const seed = seedFromEnv();
  const r = new Rng(seed);
  const base = 30000 + (process.pid % 15000);
  const ports = { ike: base, natt: base + 1 };
  const [A, B] = ["127.0.0.1", "127.0.0.2"];
  const cfg = (local: string, remote: string, lts: string, rts: string) =>
    ikeSaConfig({ name: `to-${remote}`, local, remote, psk: "flood", ike: ["aes128gcm16-prfsha256-x25519"], esp: ["aes128gcm16"], localTs: [lts], remoteTs: [rts], ports, forceEncap: true });
  const cfgA = cfg(A, B, "10.1.0.0/16", "10.2.0.0/16");
  const cfgB = cfg(B, A, "10.2.0.0/16", "10.1.0.0/16");
  let spi = 0x3000;
  const deps = () => ({ random: (n: number) => new Uint8Array(randomBytes(n)), now: Date.now, allocateSpi: () => ++spi });
  const events: { a: IkeEvent[]; b: IkeEvent[] } = { a: [], b: [] };
  const epA = new IkeEndpoint(() => undefined, deps());
  const epB = new IkeEndpoint((x) => (x === A ? cfgB : undefined), deps(), { cookieThreshold: THRESHOLD });
  const ta = new IkeTransport(epA, { address: A, ports }, (e) => events.a.push(e));
  const tb = new IkeTransport(epB, { address: B, ports }, (e) => events.b.push(e));
  // record what reaches B's endpoint: the genuine messages become the corpus, and every datagram is counted
  const corpus: Uint8Array[] = [];
  let received = 0;
  const receive = epB.receive.bind(epB);
  epB.receive = (bytes: Uint8Array, path: Path) => {
    received++;
    if (corpus.length < 2) corpus.push(bytes.slice());
    return receive(bytes, path);
  };
  await ta.start();
  await tb.start();
  const attacker = createSocket("udp4");
  try {
    const established = () => events.a.filter((e) => e.type === "childSaEstablished").length;
    const initiate = () => ta.apply(epA.initiate(cfgA, { localAddress: A, localPort: ports.ike, remoteAddress: B, remotePort: ports.ike }).step);
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
    ta.close();
    tb.close();
  }
});
