// host/ike/manager.ts between two in-memory IKE endpoints, each with an
// SaLifecycle whose sink is a SaTable on a real core: CHILD_SAs negotiated
// end up as matching SA pairs in both cores, ESP sealed by one opens on the
// other; a rekey (by time, or the core's needs-rekey) switches SAs with not one
// packet dropped, checked after every IKE datagram; a failing peer is retried
// with exponential backoff and raises the alarm after alarm_after failures; so is
// an IKE SA that came up without its CHILD_SA (deleted, never kept up empty);
// both ends rekeying the IKE SA at once (§2.8.2) leave one IKE SA and the cores as they were.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { parseAddress } from "../../host/config/addr.ts";
import { parseConfig } from "../../host/config/load.ts";
import { KIND, type Core } from "../../host/core/core.ts";
import { IkeEndpoint } from "../../host/ike/endpoint.ts";
import { FILL_DELAY_MS, IkeManager, managedPeer, RETIRED_INBOUND_MS, type ManagerEvent } from "../../host/ike/manager.ts";
import type { Path, Step } from "../../host/ike/types.ts";
import { SaTable } from "../../host/sa/install.ts";
import { SaLifecycle } from "../../host/sa/lifecycle.ts";
import { peersForWorker } from "../../host/sa/worker_sas.ts";
import type { SaEvent } from "../../host/sa/spec.ts";
import type { Doc } from "../helpers/config_fixture.ts";
import { innerUdp, makeCore } from "./core-helpers.ts";
import { tsFromCidrs } from "../../host/ike/ts.ts";

const A = "10.99.0.1", B = "10.99.0.2";
const NET = { a: "192.168.1.0/24", b: "192.168.2.0/24" };
const bytesOf = (t: string) => { const r = parseAddress(t); if (!r.ok) throw new Error(t); return r.value.bytes; };

/**
 * One CE: config with one IKE peer, core, SaTable, lifecycle; its manager is made by `net`.
 * With `workers` > 1, a core and SaTable per packet worker, each given its share
 * (worker_sas.ts peersForWorker) as the forwarder does; `core`/`table` are worker 0's.
 */
async function ce(me: "a" | "b", ike: Doc, workers = 1) {
  const [self, other] = me === "a" ? [A, B] : [B, A];
  const doc = {
    version: 1,
    node: { name: `site-${me}`, wan: [{ name: "inet", address: self }], local_prefixes: [NET[me]], workers },
    peers: [{ name: me === "a" ? "to-b" : "to-a", address: other, prefixes: [me === "a" ? NET.b : NET.a], ike: { auth: { psk: "wesp-ike-manager-unit-psk" }, dpd: 0, ...ike } }],
  };
  const config = parseConfig(JSON.stringify(doc), { baseDir: "/tmp", source: "<test>", uid: 1000, env: {} }).config;
  const cores = await Promise.all(Array.from({ length: workers }, () => makeCore({ maxSas: 16, maxPolicies: 16, largeWindowBlocks: 4 })));
  const saEvents: SaEvent[] = [];
  const lc = new SaLifecycle({ apply: async (peers) => tables.forEach((t, i) => t.apply(peersForWorker(peers, i, workers).peers)) });
  const tables: SaTable[] = cores.map((core) => new SaTable(core, { emit: (e) => { saEvents.push(e); lc.deliver(e); } }));
  const first = lc.initial(config).peers;
  tables.forEach((t, i) => t.apply(peersForWorker(first, i, workers).peers));
  return { core: cores[0], table: tables[0], cores, tables, lc, saEvents, peer: managedPeer(config, config.peers[0], bytesOf) };
}

/**
 * Two CEs and a network the test steps one datagram at a time; one clock (ms)
 * for endpoints and managers. `drop(n)` loses the next n datagrams a sends.
 */
async function net(ikeA: Doc = {}, ikeB: Doc = { initiate: false }, random = { a: () => 0.5, b: () => 0.5 }, workers = { a: 1, b: 1 }) {
  let now = 0;
  let spi = 0x1000;
  const ce_ = { a: await ce("a", ikeA, workers.a), b: await ce("b", ikeB, workers.b) };
  const deps = { random: (n: number) => new Uint8Array(randomBytes(n)), now: () => now, allocateSpi: () => ++spi };
  // with several workers, SPIs as runtime.ts allocates them: the next one in the residue class of the manager's spiWorker
  const allocator = (w: "a" | "b") => (peer: string, same?: number) => {
    const t = mgr[w].spiWorker(peer, same);
    spi++;
    if (t) spi += (t.worker - (spi % t.of) + t.of) % t.of;
    return spi;
  };
  const ep = {
    a: new IkeEndpoint((r) => (r === B ? ce_.a.peer.ike : undefined), { ...deps, allocateSpi: allocator("a") }),
    b: new IkeEndpoint((r) => (r === A ? ce_.b.peer.ike : undefined), { ...deps, allocateSpi: allocator("b") }),
  };
  const queue: { to: "a" | "b"; bytes: Uint8Array; path: Path }[] = [];
  const mevents = { a: [] as ManagerEvent[], b: [] as ManagerEvent[] };
  let dropFromA = 0;
  /** When A first sent each IKE SA's IKE_SA_INIT (by SPIi): when each attempt started. */
  const attempts = new Map<string, number>();
  const send = (from: "a" | "b", s: Step) => {
    for (const out of s.send) {
      if (out.keepalive) continue;
      const spiI = Buffer.from(out.bytes.subarray(0, 8)).toString("hex");
      if (from === "a" && out.bytes[18] === 34 && !attempts.has(spiI)) attempts.set(spiI, now);
      if (from === "a" && dropFromA > 0) { dropFromA--; continue; }
      const p = out.path;
      queue.push({ to: from === "a" ? "b" : "a", bytes: out.bytes, path: { localAddress: p.remoteAddress, localPort: p.remotePort, remoteAddress: p.localAddress, remotePort: p.localPort } });
    }
    for (const e of s.events) mgr[from].onEvent(e);
  };
  const mgr = {
    a: new IkeManager(ep.a, ce_.a.lc, [ce_.a.peer], { now: () => now, random: random.a, send: (s) => send("a", s), workers: workers.a }),
    b: new IkeManager(ep.b, ce_.b.lc, [ce_.b.peer], { now: () => now, random: random.b, send: (s) => send("b", s), workers: workers.b }),
  };
  /** When each manager event came (same index as mevents). */
  const at = { a: [] as number[], b: [] as number[] };
  for (const w of ["a", "b"] as const) mgr[w].on("event", (e) => { mevents[w].push(e); at[w].push(now); });
  const settled = () => Promise.all([mgr.a.settled(), mgr.b.settled()]);
  /** Delivers queued datagrams one by one; after each (and its applies), `each` runs. */
  const run = async (each?: () => void) => {
    for (let i = 0; queue.length && i < 200; i++) {
      const d = queue.shift()!;
      send(d.to, ep[d.to].receive(d.bytes, d.path));
      await settled();
      each?.();
    }
  };
  /** Moves the clock: endpoints' timers, then the managers'. */
  const advance = async (ms: number, each?: () => void) => {
    now += ms;
    send("a", ep.a.tick(now));
    send("b", ep.b.tick(now));
    mgr.a.tick(now);
    mgr.b.tick(now);
    await settled();
    await run(each);
  };
  return { ce: ce_, ep, mgr, mevents, at, attempts: () => [...attempts.values()], run, advance, settled, now: () => now, dropFromA: (n: number) => (dropFromA = n) };
}

/** `from` seals an inner packet; the other core opens it off its UDP socket. Returns the receiver's verdict. */
function carry(from: Core, to: Core, src: string, dst: string): string {
  const pkt = innerUdp(src, dst, 100);
  from.writePacket(0, pkt);
  from.processOutbound(1);
  if (from.verdictName(0) !== "TO_NETWORK") return `sender: ${from.reasonName(0)}`;
  const udp = from.packet(0).subarray(from.hdrLen(0));
  to.writePacket(0, udp, KIND.UDP);
  to.setRemote(0, from.sourceAddress(0), from.sourcePort(0), from.destAddress(0));
  to.processInbound(1);
  if (to.verdictName(0) !== "TO_TUN") return `receiver: ${to.reasonName(0)}`;
  assert.deepEqual(to.packet(0), pkt);
  return "ok";
}

type Net = Awaited<ReturnType<typeof net>>;
const bothWays = (n: Net) => [carry(n.ce.a.core, n.ce.b.core, "192.168.1.5", "192.168.2.7"), carry(n.ce.b.core, n.ce.a.core, "192.168.2.7", "192.168.1.5")];
const spis = (n: Net, w: "a" | "b") => { const p = n.ce[w].table.prov.peers[0]; return { out: p?.out?.spi, in: p?.in.map((s) => s.spi) ?? [] }; };

async function up(ikeA: Doc = {}, ikeB: Doc = { initiate: false }) {
  const n = await net(ikeA, ikeB);
  assert.deepEqual(n.ce.a.table.prov.peers, [], "no CHILD_SA yet: the peer is not in the core (its traffic has no policy)");
  n.mgr.a.start();
  await n.run();
  return n;
}

test("established: both cores hold the mirrored SA pair, and ESP sealed by one opens on the other", async () => {
  const n = await up();
  const [a, b] = [spis(n, "a"), spis(n, "b")];
  assert.equal(a.in.length, 1);
  assert.deepEqual([a.out, a.in[0]], [b.in[0], b.out], "A's outbound SPI is B's inbound and back");
  assert.deepEqual(bothWays(n), ["ok", "ok"]);
  assert.deepEqual(n.mevents.a.map((e) => e.type), ["up"]);
  assert.deepEqual(n.mgr.a.status().map((s) => [s.up, s.failures, s.children]), [[true, 0, [a.in[0]]]]);
  const installed = n.ce.a.saEvents.filter((e) => e.event === "sa-installed").map((e) => "dir" in e && e.dir);
  assert.deepEqual(installed, ["in", "out"], "inbound first");
});

for (const [who, how] of [["A (initiator)", "soft lifetime"], ["B (responder)", "soft lifetime"], ["A (initiator)", "needs-rekey from the core"]] as const) {
  test(`${who} rekeys the CHILD_SA on its ${how}: traffic flows both ways after every IKE datagram, old SAs go last`, async () => {
    // the rekeyer's margin is larger, so its soft lifetime comes first (margin 30 s of 120, the other 10 s)
    const early = { lifetime: { child_seconds: 120, rekey_margin: 30, rekey_jitter: 0 } };
    const late = { lifetime: { child_seconds: 120, rekey_margin: 10, rekey_jitter: 0 } };
    const byB = who.startsWith("B");
    const n = await up(byB ? late : early, { initiate: false, ...(byB ? early : late) });
    const before = { a: spis(n, "a"), b: spis(n, "b") };
    const results: string[] = [];
    const check = () => results.push(...bothWays(n));
    check();
    if (how === "soft lifetime") {
      await n.advance(89_000, check);
      assert.deepEqual(spis(n, "a"), before.a, "nothing before the soft lifetime");
      await n.advance(1_000, check);
    } else {
      const rekeyer = n.ce.a;
      rekeyer.lc.deliver({ event: "needs-rekey", peer: "to-b", dir: "out", spi: before.a.out!, why: "sequence-exhausted" });
      await n.run(check);
    }
    assert.ok(results.length >= 8, `checked after each datagram (${results.length})`);
    assert.deepEqual(results.filter((r) => r !== "ok"), [], "no packet dropped");
    // the DELETE exchange is over; the old pair stays a moment, inbound only, on both sides
    for (const w of ["a", "b"] as const) {
      const now = spis(n, w);
      assert.deepEqual(now.in.slice(1), before[w].in, `${w}: the old inbound SA still accepts what the peer sealed just before it switched`);
      assert.notEqual(now.out, before[w].out, `${w}: outbound already on the new pair`);
    }
    const removedNow = n.ce.a.saEvents.filter((e) => e.event === "sa-removed").map((e) => "spi" in e && e.spi);
    assert.deepEqual(removedNow, [before.a.out], "only the old outbound SA is gone yet");
    await n.advance(RETIRED_INBOUND_MS, check);
    const [a, b] = [spis(n, "a"), spis(n, "b")];
    assert.equal(a.in.length, 1, "the old pair is gone RETIRED_INBOUND_MS after its DELETE");
    assert.notEqual(a.out, before.a.out);
    assert.deepEqual([a.out, a.in[0]], [b.in[0], b.out]);
    const removed = n.ce.a.saEvents.filter((e) => e.event === "sa-removed").map((e) => "spi" in e && e.spi);
    assert.deepEqual(removed.sort(), [before.a.in[0], before.a.out].sort(), "A removed exactly the old pair");
    assert.deepEqual(bothWays(n), ["ok", "ok"]);
  });
}

test("both ends rekey at once (§2.8.1, crossed requests; 6 rounds, random nonces pick the winner): one new pair survives, traffic flows after every datagram", async () => {
  const same = { lifetime: { child_seconds: 120, rekey_margin: 20, rekey_jitter: 0 } };
  for (let round = 0; round < 6; round++) {
    const n = await up(same, { initiate: false, ...same });
    const before = spis(n, "a");
    const results: string[] = [];
    await n.advance(100_000, () => results.push(...bothWays(n)));
    await n.advance(RETIRED_INBOUND_MS, () => results.push(...bothWays(n)));
    assert.deepEqual(results.filter((r) => r !== "ok"), [], `round ${round}: no packet dropped`);
    const [a, b] = [spis(n, "a"), spis(n, "b")];
    assert.equal(a.in.length, 1, `round ${round}: one pair left (${JSON.stringify(a)})`);
    assert.ok(![before.out, ...before.in].includes(a.out) && !before.in.includes(a.in[0]), "a new pair");
    assert.deepEqual([a.out, a.in[0]], [b.in[0], b.out]);
    assert.deepEqual(n.mgr.a.status()[0].children, a.in, "the manager's list is what the core holds");
  }
});

test("an IKE SA rekey moves the CHILD_SAs over without touching the cores", async () => {
  const n = await up({ lifetime: { ike_seconds: 600, child_seconds: 3600, rekey_margin: 60, rekey_jitter: 0 } });
  const before = { a: spis(n, "a"), b: spis(n, "b") };
  const sa = n.mgr.a.status()[0].sa;
  await n.advance(540_000);
  assert.notEqual(n.mgr.a.status()[0].sa, sa, "a new IKE SA");
  assert.deepEqual([spis(n, "a"), spis(n, "b")], [before.a, before.b]);
  assert.deepEqual(bothWays(n), ["ok", "ok"]);
  // CHILD_SA rekeys go through the new IKE SA
  n.ce.a.lc.deliver({ event: "needs-rekey", peer: "to-b", dir: "out", spi: before.a.out!, why: "soft-lifetime" });
  await n.run();
  assert.notEqual(spis(n, "a").out, before.a.out);
  assert.deepEqual(bothWays(n), ["ok", "ok"]);
});

test("both ends rekey the IKE SA at once (§2.8.2, crossed requests; 6 rounds): one IKE SA left, the same on both sides, the cores untouched, traffic flows after every datagram", async () => {
  const same = { lifetime: { ike_seconds: 600, child_seconds: 3600, rekey_margin: 60, rekey_jitter: 0 } };
  for (let round = 0; round < 6; round++) {
    const n = await up(same, { initiate: false, ...same });
    const before = { a: spis(n, "a"), b: spis(n, "b"), sa: n.mgr.a.status()[0].sa };
    const results: string[] = [];
    await n.advance(540_000, () => results.push(...bothWays(n)));
    assert.ok(results.length >= 8, `round ${round}: checked after each datagram (${results.length})`);
    assert.deepEqual(results.filter((r) => r !== "ok"), [], `round ${round}: no packet dropped`);
    const [sa, saB] = [n.mgr.a.status()[0], n.mgr.b.status()[0]];
    assert.ok(sa.up && saB.up && sa.sa === saB.sa && sa.sa !== before.sa, `round ${round}: one new IKE SA on both sides (${sa.sa}, ${saB.sa})`);
    assert.deepEqual([n.ep.a.sas.size, n.ep.b.sas.size], [1, 1], `round ${round}: the old and the redundant IKE SA are gone`);
    assert.deepEqual([spis(n, "a"), spis(n, "b")], [before.a, before.b], "the CHILD_SAs stay in the cores");
    assert.deepEqual([sa.children, saB.children], [before.a.in, before.b.in], "and with the managers");
    assert.deepEqual([n.mevents.a, n.mevents.b].map((es) => es.map((e) => e.type)), [["up"], ["up"]], "no down, no error");
    // CHILD_SA rekeys go through the surviving IKE SA
    n.ce.b.lc.deliver({ event: "needs-rekey", peer: "to-a", dir: "out", spi: before.b.out!, why: "soft-lifetime" });
    await n.run();
    assert.notEqual(spis(n, "b").out, before.b.out);
    assert.deepEqual(bothWays(n), ["ok", "ok"]);
  }
});

test("an IKE SA rekey refused with TEMPORARY_FAILURE (it met the peer's CHILD_SA rekey, §2.25) is tried again after retry.min and succeeds", async () => {
  // A's IKE SA and B's CHILD_SA reach their soft lifetimes at the same moment (540 s)
  const n = await up(
    { lifetime: { ike_seconds: 600, child_seconds: 3600, rekey_margin: 60, rekey_jitter: 0 }, retry: { min: 3, max: 60, alarm_after: 5 } },
    { initiate: false, lifetime: { ike_seconds: 3600, child_seconds: 600, rekey_margin: 60, rekey_jitter: 0 } },
  );
  const sa = n.mgr.a.status()[0].sa;
  const results: string[] = [];
  await n.advance(540_000, () => results.push(...bothWays(n)));
  assert.equal(n.mgr.a.status()[0].sa, sa, "the IKE SA rekey was refused");
  assert.equal(n.mgr.a.status()[0].ikeRekeyAt, n.now() + 3000, "and is due again after retry.min");
  await n.advance(3000, () => results.push(...bothWays(n)));
  const [a, b] = [n.mgr.a.status()[0], n.mgr.b.status()[0]];
  assert.ok(a.sa !== sa && a.sa === b.sa, "rekeyed on the second try");
  assert.deepEqual(results.filter((r) => r !== "ok"), [], "no packet dropped");
  assert.deepEqual([a.children.length, n.ep.a.sas.size, n.ep.b.sas.size], [1, 1, 1]);
  assert.deepEqual(bothWays(n), ["ok", "ok"]);
});

test("refusing the peer's request is not a failure of ours: crossed CHILD_SA rekeys each refused (PFS on one side only), each side's own rekey stays outstanding until its own answer, then retried after retry.min", async () => {
  const lt = { ike_seconds: 7200, child_seconds: 600, rekey_margin: 60, rekey_jitter: 0 };
  const retry = { min: 3, max: 60, alarm_after: 5 };
  const n = await up(
    { lifetime: lt, retry, proposals: { ike: ["aes128gcm16-prfsha256-ecp256"], esp: ["aes128gcm16"] } },
    { initiate: false, lifetime: lt, retry, proposals: { ike: ["aes128gcm16-prfsha256-ecp256"], esp: ["aes128gcm16-ecp256"] } },
  );
  const rekeying = (w: "a" | "b") => n.mgr[w].status()[0].pairs.map((c) => c.rekeyAt === undefined);
  // both soft lifetimes at 540 s: A's request reaches B first, B's then reaches A; each refuses the other's
  const seen: boolean[][] = [];
  await n.advance(540_000, () => seen.push([...rekeying("a"), ...rekeying("b")]));
  // after the 1st datagram B has refused A's rekey (B's own still outstanding); after the 2nd A has refused B's
  assert.deepEqual(seen.slice(0, 2), [[true, true], [true, true]], "a refusal of the peer's request leaves our own rekey outstanding");
  assert.deepEqual([rekeying("a"), rekeying("b")], [[false], [false]], "each side's own refusal arrived: retry scheduled");
  for (const w of ["a", "b"] as const) assert.equal(n.mgr[w].status()[0].pairs[0].rekeyAt, n.now() + 3000, `${w} retries after retry.min`);
  assert.deepEqual(bothWays(n), ["ok", "ok"], "the old pair carries on");
});

test("both ends initiate at the same moment (6 rounds): two IKE SAs come up, one is dropped (by its responder), the same on both sides; traffic flows after every datagram once it can", async () => {
  for (let round = 0; round < 6; round++) {
    const n = await net({}, {});
    for (const w of round % 2 ? ["b", "a"] as const : ["a", "b"] as const) n.mgr[w].start(); // either first
    const results: string[] = [];
    let both = 0;
    await n.run(() => {
      // from when each end holds the inbound SA of the pair the other sends on (before that, the
      // responder of each IKE SA sends on a pair whose initiator has not had the answer yet)
      const [a, b] = [spis(n, "a"), spis(n, "b")];
      if (!both && !(a.out !== undefined && b.in.includes(a.out) && b.out !== undefined && a.in.includes(b.out))) return;
      both++;
      results.push(...bothWays(n));
    });
    assert.ok(both >= 3, `round ${round}: checked after each datagram from then on (${both})`);
    assert.deepEqual(results.filter((r) => r !== "ok"), [], `round ${round}: no packet dropped`);
    assert.deepEqual([n.ep.a.sas.size, n.ep.b.sas.size], [1, 1], `round ${round}: one IKE SA left on each side`);
    const [sa, saB] = [n.mgr.a.status()[0], n.mgr.b.status()[0]];
    assert.ok(sa.up && saB.up && sa.sa === saB.sa && sa.sa === [...n.ep.a.sas.values()][0].id, `round ${round}: the same one (${sa.sa}, ${saB.sa})`);
    const [a, b] = [spis(n, "a"), spis(n, "b")];
    assert.equal(a.in.length, 1, `round ${round}: one pair left (${JSON.stringify(a)})`);
    assert.deepEqual([a.out, a.in[0]], [b.in[0], b.out]);
    assert.deepEqual([sa.children, saB.children], [a.in, b.in], "the managers' lists are what the cores hold");
    for (const w of ["a", "b"] as const) {
      assert.deepEqual(n.mevents[w].map((e) => e.type), ["up", "up"], `round ${round}: two IKE SAs came up at ${w}, none went down`);
    }
    // the kept IKE SA works on: a CHILD_SA rekey over it
    n.ce.b.lc.deliver({ event: "needs-rekey", peer: "to-a", dir: "out", spi: b.out!, why: "soft-lifetime" });
    await n.run();
    assert.notEqual(spis(n, "b").out, b.out);
    assert.deepEqual(bothWays(n), ["ok", "ok"]);
  }
});

test("failures are retried after retry.min, doubling up to retry.max; the alarm after alarm_after failures, once; up again clears it", async () => {
  // IKE_SA_INIT sent twice (1 s, then 2 s more) before the attempt counts as failed
  const n = await net({ retry: { min: 2, max: 10, alarm_after: 4 } });
  n.ce.a.peer.ike.retransmit = { baseMs: 1000, tries: 2 };
  n.dropFromA(1e9); // B unreachable
  n.mgr.a.start();
  /** Runs the clock to whatever the endpoint or the manager has to do next, until `n` retries were scheduled. */
  const retries = () => n.mevents.a.filter((e) => e.type === "retry").map((e) => (e as { inMs: number }).inMs);
  for (let i = 0; i < 100 && retries().length < 6; i++) await n.advance(Math.min(n.ep.a.nextTimeout ?? Infinity, n.mgr.a.nextTimeout ?? Infinity) - n.now());
  assert.deepEqual(retries(), [2000, 4000, 8000, 10000, 10000, 10000], "from retry.min, doubling, capped at retry.max");
  assert.equal(n.mevents.a.filter((e) => e.type === "down").length, 6, "each failure reported");
  // each new attempt starts exactly its delay after the failure that scheduled it
  const scheduled = n.mevents.a.flatMap((e, i) => (e.type === "retry" ? [n.at.a[i] + e.inMs] : []));
  assert.deepEqual(n.attempts().slice(1), scheduled.slice(0, n.attempts().length - 1));
  assert.equal(n.attempts().length, 6, "the first attempt and five retries so far");
  const alarms = n.mevents.a.filter((e) => e.type === "alarm");
  assert.equal(alarms.length, 1, "one alarm, however many failures follow");
  assert.match((alarms[0] as { message: string }).message, /to-b: 4 failed attempts in a row \(last: timeout/);
  const i4 = n.mevents.a.findIndex((e) => e.type === "alarm");
  assert.equal(n.mevents.a.slice(0, i4).filter((e) => e.type === "down").length, 4, "raised at the 4th failure");
  assert.deepEqual(n.mgr.a.status().map((s) => [s.up, s.alarmed]), [[false, true]]);
  // B reachable again: the next retry brings the tunnel up, clears the count and the alarm
  n.dropFromA(0);
  await n.advance(n.mgr.a.nextTimeout! - n.now());
  assert.deepEqual(n.mgr.a.status().map((s) => [s.up, s.failures, s.alarmed]), [[true, 0, false]]);
  assert.deepEqual(bothWays(n), ["ok", "ok"]);
});

test("new traffic selectors (reselect): the IKE SA stays, a new CHILD_SA with them replaces the old one, make before break; narrowed by a peer that lags, tried again", async () => {
  const n = await up({ retry: { min: 3, max: 60, alarm_after: 5 } }, { initiate: false });
  const sa = n.mgr.a.status()[0].sa;
  const before = { a: spis(n, "a"), b: spis(n, "b") };
  const wide = { a: tsFromCidrs([NET.a, "192.168.11.0/24"]), b: tsFromCidrs([NET.b, "192.168.12.0/24"]) };
  // B's config lags: A's new CHILD_SA is narrowed to B's old selectors (§2.9)
  n.ce.a.peer.ike.localTs = wide.a;
  n.ce.a.peer.ike.remoteTs = wide.b;
  n.mgr.b.reselect("to-a");
  await n.run();
  assert.deepEqual(spis(n, "b"), before.b, "the side that does not initiate starts nothing");
  const results: string[] = [];
  n.mgr.a.reselect("to-b");
  await n.run(() => results.push(...bothWays(n)));
  const first = spis(n, "a");
  assert.notEqual(first.out, before.a.out, "a new CHILD_SA, sent on");
  assert.equal(n.mgr.a.status()[0].sa, sa, "the same IKE SA");
  // B catches up; A tries again after retry.min and gets its selectors
  n.ce.b.peer.ike.localTs = wide.b;
  n.ce.b.peer.ike.remoteTs = wide.a;
  await n.advance(RETIRED_INBOUND_MS, () => results.push(...bothWays(n)));
  await n.advance(3000 - RETIRED_INBOUND_MS, () => results.push(...bothWays(n)));
  await n.advance(RETIRED_INBOUND_MS, () => results.push(...bothWays(n)));
  const [a, b] = [spis(n, "a"), spis(n, "b")];
  assert.ok(a.out !== first.out && a.out !== before.a.out, "a third CHILD_SA, after retry.min");
  assert.deepEqual([a.in.length, b.in.length], [1, 1], "the replaced ones are gone (after their retirement)");
  assert.deepEqual([a.out, a.in[0]], [b.in[0], b.out]);
  assert.ok(results.length >= 8 && results.every((r) => r === "ok"), `traffic flowed after every datagram (${results.filter((r) => r !== "ok")})`);
  const st = n.mgr.a.status()[0];
  assert.equal(st.sa, sa, "still the same IKE SA");
  assert.deepEqual(st.children, a.in);
  const child = n.ep.a.sas.get([...n.ep.a.sas.keys()][0])!.ctx.children.find((c) => c.spiIn === a.in[0])!;
  assert.deepEqual([child.tsLocal, child.tsRemote], [wide.a, wide.b], "the CHILD_SA carries the new selectors");
  assert.deepEqual(n.mevents.a.map((e) => e.type), ["up"], "no down, no error");
  await n.advance(60_000);
  assert.equal(spis(n, "a").out, a.out, "and no more tries");
});

test("a reselect whose IKE SA dies meanwhile: the next IKE SA comes up with the new selectors, and a later reselect still works", async () => {
  const n = await up({ retry: { min: 2, max: 10, alarm_after: 5 }, dpd: 0 }, { initiate: false });
  n.ce.a.peer.ike.retransmit = { baseMs: 1000, tries: 2 };
  const wider = (extra: string) => ({ a: tsFromCidrs([NET.a, extra]), b: tsFromCidrs([NET.b]) });
  for (const w of ["a", "b"] as const) {
    const t = wider("192.168.11.0/24");
    n.ce[w].peer.ike.localTs = w === "a" ? t.a : t.b;
    n.ce[w].peer.ike.remoteTs = w === "a" ? t.b : t.a;
  }
  n.dropFromA(1e9); // B unreachable: the CREATE_CHILD_SA goes unanswered, the IKE SA fails
  n.mgr.a.reselect("to-b");
  for (let i = 0; i < 10 && !n.mevents.a.some((e) => e.type === "down"); i++) await n.advance(Math.min(n.ep.a.nextTimeout ?? Infinity, n.mgr.a.nextTimeout ?? Infinity) - n.now());
  assert.ok(n.mevents.a.some((e) => e.type === "down"), "the IKE SA failed");
  n.dropFromA(0);
  for (let i = 0; i < 10 && !n.mgr.a.status()[0].up; i++) await n.advance(Math.min(n.ep.a.nextTimeout ?? Infinity, n.mgr.a.nextTimeout ?? Infinity) - n.now());
  assert.equal(n.mgr.a.status()[0].up, true, "up again");
  const sa = n.mgr.a.status()[0].sa;
  const before = spis(n, "a");
  for (const w of ["a", "b"] as const) {
    const t = wider("192.168.13.0/24");
    n.ce[w].peer.ike.localTs = w === "a" ? t.a : t.b;
    n.ce[w].peer.ike.remoteTs = w === "a" ? t.b : t.a;
  }
  n.mgr.a.reselect("to-b");
  await n.run();
  await n.advance(RETIRED_INBOUND_MS);
  const after = spis(n, "a");
  assert.ok(after.out !== before.out && after.in.length === 1, `the later reselect made a new CHILD_SA (${JSON.stringify([before, after])})`);
  assert.equal(n.mgr.a.status()[0].sa, sa, "under the same IKE SA");
  assert.deepEqual(bothWays(n), ["ok", "ok"]);
});

test("peer-online (retryNow): an attempt left unanswered by an end not yet running is dropped quietly for a new one; a retry waiting out its backoff starts at once; nothing for an up peer or a responder", async () => {
  const n = await net({ retry: { min: 60, max: 600, alarm_after: 8 } });
  n.ce.a.peer.ike.retransmit = { baseMs: 1000, tries: 4 };
  n.dropFromA(1); // B's CE is not running yet: A's first IKE_SA_INIT is lost
  n.mgr.a.start();
  await n.run();
  assert.equal(n.mgr.a.status()[0].state, "init-sent");
  assert.equal(n.mgr.b.retryNow("to-a"), false, "B does not initiate: nothing to do");
  // B's CE comes up; its controller tells A: a new attempt at once, not A's retransmission at 1 s
  assert.equal(n.mgr.a.retryNow("to-b"), true);
  await n.run();
  assert.deepEqual(n.mgr.a.status().map((s) => [s.up, s.failures]), [[true, 0]], "up without waiting, no failure counted");
  assert.equal(n.attempts().length, 2, "the lost attempt and the new one");
  assert.deepEqual(n.mevents.a.map((e) => e.type), ["up"], "no down: the dropped attempt is no failure");
  assert.deepEqual(bothWays(n), ["ok", "ok"]);
  assert.equal(n.mgr.a.retryNow("to-b"), false, "an up peer is left alone");
  assert.equal(n.mgr.a.status()[0].sa, n.mgr.b.status()[0].sa);

  // a failed attempt waits retry.min (60 s) — unless the peer comes up meanwhile
  const m = await net({ retry: { min: 60, max: 600, alarm_after: 8 } });
  m.ce.a.peer.ike.retransmit = { baseMs: 1000, tries: 2 };
  m.dropFromA(1e9);
  m.mgr.a.start();
  for (let i = 0; i < 10 && !m.mevents.a.some((e) => e.type === "retry"); i++) await m.advance(Math.min(m.ep.a.nextTimeout ?? Infinity, m.mgr.a.nextTimeout ?? Infinity) - m.now());
  assert.deepEqual(m.mevents.a.filter((e) => e.type === "retry").map((e) => (e as { inMs: number }).inMs), [60000]);
  m.dropFromA(0);
  assert.equal(m.mgr.a.retryNow("to-b"), true);
  await m.run();
  assert.deepEqual(m.mgr.a.status().map((s) => [s.up, s.failures, s.retryAt]), [[true, 0, undefined]], "up now, the backoff's retry cancelled");
  await m.advance(60_000);
  assert.equal(m.attempts().length, 2, "no second attempt when the backoff would have ended");
});

test("the peer declared dead: its SAs leave the core, re-establishment starts at retry.min", async () => {
  const n = await up({ dpd: 5, retry: { min: 3, max: 60, alarm_after: 5 } }, { initiate: false, dpd: 0 });
  n.ce.a.peer.ike.retransmit = { baseMs: 1000, tries: 2 };
  n.dropFromA(1e9);
  for (let i = 0; i < 4 && !n.mevents.a.some((e) => e.type === "down"); i++) await n.advance(Math.min(n.ep.a.nextTimeout ?? Infinity, n.mgr.a.nextTimeout ?? Infinity) - n.now());
  const down = n.mevents.a.find((e) => e.type === "down");
  assert.ok(down?.type === "down" && /timeout/.test(down.why), JSON.stringify(n.mevents.a));
  assert.deepEqual(n.ce.a.table.prov.peers, [], "no SA left for the dead peer");
  assert.equal(carry(n.ce.a.core, n.ce.b.core, "192.168.1.5", "192.168.2.7"), "sender: NO_POLICY");
  assert.deepEqual(n.mevents.a.filter((e) => e.type === "retry").map((e) => (e as { inMs: number }).inMs), [3000]);
});

test("an IKE SA up without its CHILD_SA (no ESP proposal in common) is a failed set-up: deleted on both sides, retried with backoff, the alarm; a matching proposal later brings it up", async () => {
  const n = await net({ proposals: { esp: ["aes128gcm16"] }, retry: { min: 2, max: 10, alarm_after: 3 } }, { initiate: false, proposals: { esp: ["aes256gcm16"] }, retry: { min: 2, max: 10, alarm_after: 3 } });
  n.mgr.a.start();
  await n.run();
  const established = () => [...n.ep.a.sas.values(), ...n.ep.b.sas.values()].filter((sa) => sa.state === "established" || sa.state === "deleting");
  assert.deepEqual(established(), [], "the childless IKE SA is deleted on both sides, not kept up");
  assert.deepEqual([n.ce.a.table.prov.peers, n.ce.b.table.prov.peers], [[], []], "nothing in either core");
  const down = n.mevents.a.find((e) => e.type === "down");
  assert.ok(down?.type === "down" && down.failure && /no CHILD_SA: the responder refused the CHILD_SA with notify 14/.test(down.why), JSON.stringify(n.mevents.a));
  const retries = () => n.mevents.a.filter((e) => e.type === "retry").map((e) => (e as { inMs: number }).inMs);
  for (let i = 0; i < 20 && retries().length < 4; i++) await n.advance(n.mgr.a.nextTimeout! - n.now());
  assert.deepEqual(retries(), [2000, 4000, 8000, 10000], "from retry.min, doubling, capped at retry.max");
  assert.equal(n.attempts().length, 4, "each retry a new IKE SA");
  assert.deepEqual(established(), []);
  const alarms = n.mevents.a.filter((e) => e.type === "alarm");
  assert.equal(alarms.length, 1);
  assert.match((alarms[0] as { message: string }).message, /to-b: 3 failed attempts in a row \(last: no CHILD_SA/);
  assert.deepEqual(n.mgr.a.status().map((s) => [s.up, s.failures, s.alarmed]), [[false, 4, true]]);
  // the responder counts them too (it deleted its side each time), and never retries itself
  assert.deepEqual(n.mgr.b.status().map((s) => [s.up, s.failures, s.alarmed]), [[false, 4, true]]);
  assert.equal(n.mevents.b.filter((e) => e.type === "retry").length, 0);
  // B's ESP proposals now overlap: the next retry brings the tunnel up and clears the count
  n.ce.b.peer.ike.espProposals = n.ce.a.peer.ike.espProposals;
  await n.advance(n.mgr.a.nextTimeout! - n.now());
  assert.deepEqual(n.mgr.a.status().map((s) => [s.up, s.failures, s.alarmed, s.children.length]), [[true, 0, false, 1]]);
  assert.deepEqual(n.mgr.b.status().map((s) => [s.up, s.failures, s.alarmed]), [[true, 0, false]]);
  assert.deepEqual(bothWays(n), ["ok", "ok"]);
});

/** `from` seals on its core; the ESP goes to the receiver's worker its SPI names (SPI mod workers, as the kernel steers). */
function carryTo(from: Core, to: Core[], src: string, dst: string): string {
  const pkt = innerUdp(src, dst, 100);
  from.writePacket(0, pkt);
  from.processOutbound(1);
  if (from.verdictName(0) !== "TO_NETWORK") return `sender: ${from.reasonName(0)}`;
  const udp = from.packet(0).subarray(from.hdrLen(0));
  const spi = ((udp[0] << 24) | (udp[1] << 16) | (udp[2] << 8) | udp[3]) >>> 0;
  return carry(from, to[spi % to.length], src, dst);
}

test("two workers each end (RFC 9611 style): a CHILD_SA per worker, each SPI on its worker; rekeys stay there; a reselect makes one per worker; ESP from every worker opens after every datagram", async () => {
  const n = await net({ lifetime: { child_seconds: 120, rekey_margin: 30, rekey_jitter: 0 }, retry: { min: 3, max: 60, alarm_after: 5 } },
    { initiate: false, lifetime: { child_seconds: 120, rekey_margin: 10, rekey_jitter: 0 } }, undefined, { a: 2, b: 2 });
  const results: string[] = [];
  const check = () => {
    for (const c of n.ce.a.cores) results.push(carryTo(c, n.ce.b.cores, "192.168.1.5", "192.168.2.7"));
    for (const c of n.ce.b.cores) results.push(carryTo(c, n.ce.a.cores, "192.168.2.7", "192.168.1.5"));
  };
  n.mgr.a.start();
  await n.run();
  await n.advance(FILL_DELAY_MS);
  /** Per side and worker: the inbound SPIs its core holds. */
  const held = (w: "a" | "b") => n.ce[w].tables.map((t) => t.prov.peers[0]?.in.map((s) => s.spi) ?? []);
  const layout = () => {
    for (const w of ["a", "b"] as const) {
      const pairs = n.mgr[w].status()[0].pairs;
      assert.deepEqual(pairs.map((p) => p.worker).sort(), [0, 1], `${w}: one CHILD_SA per worker (${JSON.stringify(pairs)})`);
      for (const p of pairs) assert.equal(p.spiIn % 2, p.worker);
      held(w).forEach((spis, i) => assert.ok(spis.length >= 1 && spis.every((s) => s % 2 === i), `${w} worker ${i} holds only its own SAs: ${spis}`));
    }
  };
  layout();
  assert.equal(n.mgr.a.status()[0].pairs.length, 2, "B made none of its own: A filled both workers first");
  check();
  assert.deepEqual(results.filter((r) => r !== "ok"), []);
  const first = n.mgr.a.status()[0].children;

  // both CHILD_SAs rekeyed by A's soft lifetime, each on its worker
  await n.advance(90_000, check);
  await n.advance(RETIRED_INBOUND_MS, check);
  layout();
  const rekeyed = n.mgr.a.status()[0].children;
  assert.ok(rekeyed.every((s) => !first.includes(s)), `both rekeyed (${first} → ${rekeyed})`);
  assert.deepEqual(held("a").map((s) => s.length), [1, 1], "the old ones gone after retirement");

  // new selectors: one new CHILD_SA per worker, the old ones deleted
  const sa = n.mgr.a.status()[0].sa;
  const wide = { a: tsFromCidrs([NET.a, "192.168.11.0/24"]), b: tsFromCidrs([NET.b, "192.168.12.0/24"]) };
  [n.ce.a.peer.ike.localTs, n.ce.a.peer.ike.remoteTs, n.ce.b.peer.ike.localTs, n.ce.b.peer.ike.remoteTs] = [wide.a, wide.b, wide.b, wide.a];
  n.mgr.a.reselect("to-b");
  await n.run(check);
  await n.advance(RETIRED_INBOUND_MS, check);
  layout();
  const now = n.mgr.a.status()[0];
  assert.equal(now.sa, sa, "the same IKE SA");
  assert.ok(now.children.every((s) => !rekeyed.includes(s)), "two new CHILD_SAs replaced both");
  const children = [...n.ep.a.sas.values()][0].ctx.children;
  for (const s of now.children) assert.deepEqual(children.find((c) => c.spiIn === s)!.tsLocal, wide.a, "with the new selectors");
  assert.ok(results.length > 20, `checked after every datagram (${results.length})`);
  assert.deepEqual(results.filter((r) => r !== "ok"), [], "no packet dropped on any worker");
  assert.deepEqual(n.mevents.a.map((e) => e.type), ["up"]);
});
