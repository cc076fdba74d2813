// node.workers > 1: the per-worker SAs (host/sa/worker_sas.ts) and what
// `wesp check` asks of a config for them (host/config/workers.ts).
import assert from "node:assert/strict";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { randomBytes } from "node:crypto";
import { ConfigError, parseConfig } from "../../host/config/load.ts";
import { keyId } from "../../host/sa/key_id.ts";
import { peersForWorker, peersForWorkers, workerKeyId } from "../../host/sa/worker_sas.ts";
import type { PeerSpec, SaSpec } from "../../host/sa/spec.ts";
import { baseConfig, toYaml, type Doc } from "../helpers/config_fixture.ts";

function sa(keyIn: Uint8Array, keyOut: Uint8Array, spiIn: number, spiOut: number, authIn?: Uint8Array, authOut?: Uint8Array): SaSpec {
  return {
    index: 0, spiIn, spiOut, suite: "aes-256-gcm", esn: false, replayWindow: 64, lifetime: {} as SaSpec["lifetime"], durable: true,
    keyIdIn: keyId("in", keyIn, authIn), keyIdOut: keyId("out", keyOut, authOut),
    keysIn: { key: keyIn.slice(), ...(authIn ? { authKey: authIn.slice() } : {}) },
    keysOut: { key: keyOut.slice(), ...(authOut ? { authKey: authOut.slice() } : {}) },
  };
}

const peer = (s: SaSpec): PeerSpec => ({ name: "p", sas: [s] }) as unknown as PeerSpec;

test("worker i's SA: SPI + i, a key both ends derive alike, distinct from every other worker's", () => {
  const kAB = randomBytes(36), kBA = randomBytes(36), hAB = randomBytes(32), hBA = randomBytes(32);
  const a = peer(sa(kBA, kAB, 0x100, 0x200, hBA, hAB)); // A: in = B→A, out = A→B
  const b = peer(sa(kAB, kBA, 0x200, 0x100, hAB, hBA));
  const seen = new Set<string>([Buffer.from(kAB).toString("hex")]);
  for (let i = 1; i < 4; i++) {
    const wa = peersForWorker([a], i, 4), wb = peersForWorker([b], i, 4);
    const sa_ = wa.peers[0].sas[0], sb = wb.peers[0].sas[0];
    assert.equal(sa_.spiIn, 0x100 + i);
    assert.equal(sa_.spiOut, 0x200 + i);
    assert.equal(sa_.spiOut, sb.spiIn, "A's outbound SA is B's inbound one");
    assert.deepEqual(sa_.keysOut!.key, sb.keysIn!.key, `worker ${i}: A derives the key B derives`);
    assert.deepEqual(sa_.keysOut!.authKey, sb.keysIn!.authKey);
    assert.equal(sa_.keysOut!.key.length, 36);
    const hex = Buffer.from(sa_.keysOut!.key).toString("hex");
    assert.ok(!seen.has(hex), `worker ${i}: a key of its own (one nonce space per sequence counter)`);
    seen.add(hex);
    assert.notEqual(sa_.keyIdOut, a.sas[0].keyIdOut, "its own key id, so its own state file");
    assert.equal(sa_.keyIdOut, workerKeyId(a.sas[0].keyIdOut, i));
    assert.equal(wa.transfer.length, 1, "the derived keys moved into one buffer, for transfer");
    assert.equal(sa_.keysOut!.key.buffer, wa.transfer[0]);
  }
  // worker 0's SA is the configured one; the source specs are only read
  assert.equal(workerKeyId("abc", 0), "abc");
  assert.ok(Buffer.from(a.sas[0].keysOut!.key).equals(kAB));
});

test("an SA sent without keys (unchanged on reload) keeps its derived identity", () => {
  const s = sa(randomBytes(20), randomBytes(20), 0x300, 0x400);
  const { keysIn: _i, keysOut: _o, ...keyless } = s;
  const w = peersForWorker([peer(keyless as SaSpec)], 1, 2);
  assert.equal(w.peers[0].sas[0].keysIn, undefined);
  assert.equal(w.transfer.length, 0);
  assert.equal(w.peers[0].sas[0].keyIdIn, peersForWorker([peer(s)], 1, 2).peers[0].sas[0].keyIdIn);
});

test("negotiated SAs (tagged): each worker gets its own, re-indexed, and transfers exactly their key buffers", () => {
  const tag = (s: SaSpec, worker: number): SaSpec => ({ ...s, worker, durable: false });
  const a0 = tag(sa(randomBytes(20), randomBytes(20), 0x1000, 0x2000), 0);
  const b1 = tag(sa(randomBytes(20), randomBytes(20), 0x1001, 0x2001), 1);
  const c0 = tag(sa(randomBytes(20), randomBytes(20), 0x1002, 0x2002), 0);
  const ike = { ...peer(a0), name: "ike", sas: [b1, a0, c0] } as PeerSpec;
  const only0 = { ...peer(a0), name: "only0", sas: [tag(sa(randomBytes(20), randomBytes(20), 0x3000, 0x4000), 0)] } as PeerSpec;
  const staticPeer = { ...peer(sa(randomBytes(20), randomBytes(20), 0x500, 0x600)), name: "static" } as PeerSpec;
  const [w0, w1] = peersForWorkers([ike, only0, staticPeer], 2);
  assert.deepEqual(w0.peers.map((p) => p.name), ["ike", "only0", "static"]);
  assert.deepEqual(w1.peers.map((p) => p.name), ["ike", "static"], "a peer with no SA on worker 1 is not on worker 1");
  assert.deepEqual(w0.peers[0].sas.map((s) => [s.spiIn, s.index]), [[0x1000, 0], [0x1002, 1]], "worker 0: its two, in order, the first outbound");
  assert.deepEqual(w1.peers[0].sas.map((s) => [s.spiIn, s.index]), [[0x1001, 0]]);
  assert.equal(w1.peers[1].sas[0].spiIn, 0x501, "the static peer is still derived on worker 1");
  assert.equal(w0.peers[2], staticPeer, "and as configured on worker 0");
  const bufs = (ss: SaSpec[]) => new Set(ss.flatMap((s) => [s.keysIn!.key.buffer, s.keysOut!.key.buffer]));
  assert.deepEqual(bufs([a0, c0, ...only0.sas, ...staticPeer.sas]), new Set(w0.transfer), "worker 0's keys, all in its one buffer");
  assert.deepEqual(bufs([b1, ...w1.peers[1].sas]), new Set(w1.transfer), "worker 1's in its own: each key is transferred once");
  assert.notEqual(w0.transfer[0], w1.transfer[0]);
  // one worker: all as they are
  assert.deepEqual(peersForWorker([ike], 0, 1).peers[0].sas.map((s) => s.spiIn), [0x1001, 0x1000, 0x1002]);
});

test("a hub's keys reach the worker in one transferred buffer, none left behind: Node's Worker refuses a transfer list of 260,000", async () => {
  const n = 130_000; // 260,000 keys (the worker constructor overflowed its stack from about 120,000 buffers)
  const keys = Array.from({ length: n }, () => [randomBytes(20), randomBytes(20)] as const);
  const peers = keys.map(([kIn, kOut], i) => ({ ...peer(sa(kIn, kOut, 0x1000 + 2 * i, 0x1001 + 2 * i)), name: `p${i}` }) as PeerSpec);
  const want = { n, first: keys[0][0].toString("hex"), last: keys[n - 1][1].toString("hex") }; // before packing wipes the originals
  const [w] = peersForWorkers(peers, 1);
  assert.equal(w.transfer.length, 1);
  const worker = new Worker(
    `const { parentPort, workerData } = require("node:worker_threads");
     const p = workerData.peers;
     parentPort.postMessage({ n: p.length, first: Buffer.from(p[0].sas[0].keysIn.key).toString("hex"), last: Buffer.from(p[p.length - 1].sas[0].keysOut.key).toString("hex") });`,
    { eval: true, workerData: { peers: w.peers }, transferList: w.transfer },
  );
  const got = await new Promise<{ n: number; first: string; last: string }>((resolve, reject) => worker.once("message", resolve).once("error", reject));
  await worker.terminate();
  assert.deepEqual(got, want, "every key arrived as configured");
  assert.ok(keys[0][0].every((b) => b === 0), "the bytes it was given were wiped when moved");
  assert.equal(peers[0].sas[0].keysIn!.key.byteLength, 0, "the main thread's views are detached: no copy left");
  assert.ok(peers[0].sas[0].keysIn!.key !== undefined);
});

test("wesp check: IKE peers are fine with workers > 1 (one CHILD_SA per worker)", () => {
  assert.deepEqual(issues((c) => {
    c.node.workers = 2;
    fit(c);
    c.peers[1].ike = { auth: { psk: "a-psk-of-twenty-chars-or-more" } };
    delete c.peers[1].sas;
  }), []);
});

function issues(mutate: (c: Doc) => void): { path: string; message: string }[] {
  const c = baseConfig();
  mutate(c);
  try {
    parseConfig(toYaml(c), { baseDir: "/", uid: 1000, env: {} });
    return [];
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return e.issues;
  }
}

const fit = (c: Doc) => {
  c.peers[0].sas[0].spi_in = 0x1000; c.peers[0].sas[0].spi_out = 0x2000;
  c.peers[1].sas[0].spi_in = 0x1004; c.peers[1].sas[0].spi_out = 0x3000;
};

test("wesp check: workers > 1 wants SPIs that are multiples of the count", () => {
  assert.deepEqual(issues((c) => { c.node.workers = 4; fit(c); }), [], "multiples of 4 pass");
  assert.deepEqual(issues((c) => { c.node.workers = 1; }), [], "workers: 1 takes any SPI");
  const bad = issues((c) => { c.node.workers = 2; fit(c); c.peers[1].sas[0].spi_in = 0x1005; });
  assert.equal(bad.length, 1);
  assert.equal(bad[0].path, "peers[1].sas[0].spi_in");
  assert.match(bad[0].message, /not a multiple of node\.workers \(2\)/);
  const top = issues((c) => {
    c.node.workers = 3; // 0xffffffff = 3 · 0x55555555: a multiple, but + 1 and + 2 overflow
    c.peers[0].sas[0].spi_in = 3000; c.peers[0].sas[0].spi_out = 0xffffffff;
    c.peers[1].sas[0].spi_in = 3003; c.peers[1].sas[0].spi_out = 3006;
  });
  assert.deepEqual(top.map((i) => i.path), ["peers[0].sas[0].spi_out"]);
  assert.match(top[0].message, /do not fit 32 bits/);
});

test("wesp check: workers > 1 refuses GRE sequence numbers", () => {
  const bad = issues((c) => { c.node.workers = 2; fit(c); c.peers[1].gre.sequence = true; });
  assert.deepEqual(bad.map((i) => i.path), ["peers[1].gre.sequence"]);
});

test("node.workers defaults to 1 (both ends of static SAs must agree on the count)", () => {
  const r = parseConfig(toYaml(baseConfig()), { baseDir: "/", uid: 1000, env: {} });
  assert.equal(r.config.node.workers, 1);
});
