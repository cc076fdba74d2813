// The reservation limit (SA_SEQLIMIT) and a window resumed after a restart
// (priorSeen): what makes durable sequence state (host/sa/seq_store.ts) safe.
// Outbound, no number past the limit is ever sealed; inbound, no number past
// it is ever accepted; a resumed window treats everything up to its start as
// received.
import { test } from "node:test";
import assert from "node:assert/strict";
import { KIND, VERDICT, type Core, type SaParams } from "../../host/core/core.ts";
import { innerUdp, keysFor, makeCore } from "./core-helpers.ts";

const k = keysFor("aes-gcm-16");
const base = { suite: "aes-gcm-16", mode: "tunnel", spi: 0x5100, key: k.key, salt: k.salt, local: "192.0.2.1", remote: "192.0.2.2", peerId: 1 } as const;

async function sender(extra: Partial<SaParams> = {}): Promise<{ core: Core; sa: number }> {
  const core = await makeCore();
  const sa = core.addSa({ ...base, direction: "out", ...extra });
  core.addPolicy({ action: "protect", local: "10.1.0.0/16", remote: "10.2.0.0/16", saId: sa, peerId: 1 });
  return { core, sa };
}

async function receiver(extra: Partial<SaParams> = {}): Promise<{ core: Core; sa: number }> {
  const core = await makeCore();
  const sa = core.addSa({ ...base, direction: "in", local: "192.0.2.2", remote: "192.0.2.1", replayWindow: 64, ...extra });
  core.addPolicy({ action: "protect", local: "10.2.0.0/16", remote: "10.1.0.0/16", saId: -1, peerId: 1 });
  return { core, sa };
}

/** Seals one inner packet; returns the ESP wire packet or the drop reason. */
function seal(c: Core): Uint8Array | string {
  c.writePacket(0, innerUdp("10.1.0.1", "10.2.0.1", 40));
  c.processOutbound(1);
  return c.verdict(0) === VERDICT.TO_NETWORK ? Uint8Array.from(c.packet(0)) : c.reasonName(0);
}

function open(c: Core, wire: Uint8Array): string {
  c.writePacket(0, wire, KIND.IP);
  c.processInbound(1);
  return c.verdict(0) === VERDICT.TO_TUN ? "ok" : c.reasonName(0);
}

const seqOfWire = (w: Uint8Array) => new DataView(w.buffer, w.byteOffset).getUint32(24);

test("outbound stops at the limit without using a number, and resumes where it stopped once raised", async () => {
  const { core, sa } = await sender({ initialSeq: 5, seqLimit: 7 });
  const sent = [seal(core), seal(core), seal(core)];
  assert.deepEqual(sent.slice(0, 2).map((w) => seqOfWire(w as Uint8Array)), [5, 6].map((x) => x));
  assert.ok(typeof sent[2] !== "string");
  assert.equal(seqOfWire(sent[2] as Uint8Array), 7);
  assert.equal(seal(core), "SEQ_UNRESERVED");
  assert.equal(seal(core), "SEQ_UNRESERVED");
  assert.equal(core.seqOf(sa, true), 8n, "a refused packet does not consume its number");
  assert.equal(core.readCounters(sa).drops.SEQ_UNRESERVED, 2n);
  core.setSeqLimit(sa, 8n);
  assert.equal(seqOfWire(seal(core) as Uint8Array), 8);
  assert.equal(seal(core), "SEQ_UNRESERVED");
  core.setSeqLimit(sa, 0n); // 0 = no limit (IKE SAs, tests)
  assert.equal(seqOfWire(seal(core) as Uint8Array), 9);
});

test("inbound accepts nothing past the limit and does not move the window for it", async () => {
  const tx = await sender();
  const rx = await receiver({ seqLimit: 3 });
  const w = [1, 2, 3, 4, 5].map(() => seal(tx.core) as Uint8Array);
  assert.deepEqual(w.slice(0, 3).map((p) => open(rx.core, p)), ["ok", "ok", "ok"]);
  assert.equal(open(rx.core, w[3]), "SEQ_UNRESERVED");
  assert.equal(rx.core.seqOf(rx.sa, false), 3n, "the window top stays at the limit");
  rx.core.setSeqLimit(rx.sa, 10n);
  assert.equal(open(rx.core, w[3]), "ok", "the same packet passes once the limit covers it");
  assert.equal(open(rx.core, w[4]), "ok");
  assert.equal(open(rx.core, w[4]), "REPLAY");
});

test("a resumed window (priorSeen) rejects every number up to its start, accepts the next and reorders above it", async () => {
  const tx = await sender();
  const w = Array.from({ length: 140 }, () => seal(tx.core) as Uint8Array); // seq 1..140
  // Resume at 100: everything ≤ 99 was possibly accepted before the restart.
  const rx = await receiver({ initialSeq: 100, priorSeen: true });
  for (const s of [99, 98, 64, 40]) assert.equal(open(rx.core, w[s - 1]), s > 99 - 64 ? "REPLAY" : "REPLAY_OLD", `seq ${s}`);
  assert.equal(open(rx.core, w[101]), "ok", "seq 102 (above the start) passes");
  assert.equal(open(rx.core, w[99]), "ok", "seq 100, reordered behind 102, passes: bits above the start stay clear");
  assert.equal(open(rx.core, w[100]), "ok", "seq 101 likewise");
  assert.equal(open(rx.core, w[99]), "REPLAY");
  assert.equal(open(rx.core, w[98]), "REPLAY", "seq 99 stays received");
  // Without priorSeen the window below the first expected number is open (a brand-new SA).
  const fresh = await receiver({ initialSeq: 100 });
  assert.equal(open(fresh.core, w[98]), "ok");
});

test("priorSeen at a word boundary (start - 1 = 63 mod 64) marks the whole word", async () => {
  const tx = await sender();
  const w = Array.from({ length: 130 }, () => seal(tx.core) as Uint8Array);
  const rx = await receiver({ initialSeq: 128, priorSeen: true, replayWindow: 128 });
  assert.equal(open(rx.core, w[126]), "REPLAY", "seq 127");
  assert.equal(open(rx.core, w[64]), "REPLAY", "seq 65");
  assert.equal(open(rx.core, w[128]), "ok", "seq 129");
  assert.equal(open(rx.core, w[127]), "ok", "seq 128");
});
