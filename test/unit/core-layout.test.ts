// The host's mirror of the ABI (host/core/abi.ts) must equal what the WASM
// module reports, and the sizes the design promises must hold.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as A from "../../host/core/abi.ts";
import { makeCore } from "./core-helpers.ts";

test("abi.ts matches the module's layout exports", async () => {
  const core = await makeCore();
  const ex = core.ex;
  const pairs: [string, number, number][] = [
    ["headroom", ex.layoutHeadroom(), A.HEADROOM],
    ["max packet", ex.layoutMaxPacket(), A.MAX_PACKET],
    ["slot size", ex.layoutSlotSize(), A.SLOT_SIZE],
    ["slot descriptor", ex.layoutSlotDescSize(), A.DESC_SIZE],
    ["SA record", ex.layoutSaRecordSize(), A.SA_SIZE],
    ["SA params", ex.layoutSaParamSize(), A.SAP_SIZE],
    ["policy params", ex.layoutPolicyParamSize(), A.POLP_SIZE],
    ["policy record", ex.layoutPolicyRecordSize(), A.POL_SIZE],
    ["reason count", ex.layoutReasonCount(), A.REASON_COUNT],
    ["counter block", ex.layoutCounterBlockSize(), A.CTR_BLOCK_SIZE],
    ["SA counters offset", ex.layoutSaCounters(), A.SA_COUNTERS],
    ["SA seq offset", ex.layoutSaSeq(), A.SA_SEQ],
    ["SA flags offset", ex.layoutSaFlags(), A.SA_FLAGS],
    ["SA replay offset", ex.layoutSaReplay(), A.SA_REPLAY],
    ["peer entry", ex.layoutPeerSize(), A.PEER_SIZE],
    ["flow entries", ex.layoutFlowEntries(), A.FLOW_ENTRIES],
    ["flow entry", ex.layoutFlowSize(), A.FLOW_SIZE],
  ];
  for (const [what, wasm, host] of pairs) assert.equal(host, wasm, `${what}: host ${host}, wasm ${wasm}`);
});

test("every descriptor/parameter offset and enumeration value matches", async () => {
  const core = await makeCore();
  const ex = core.ex;
  assert.equal(ex.layoutTableLength(), A.LAYOUT_CHECK.length);
  const t = new Int32Array(ex.memory.buffer, ex.layoutTable(), A.LAYOUT_CHECK.length);
  A.LAYOUT_CHECK.forEach(([name, host], i) => assert.equal(host, t[i], `${name}: host ${host}, wasm ${t[i]}`));
});

test("sizes the design promises", async () => {
  const core = await makeCore();
  const ex = core.ex;
  // Slot: headroom for IPv6 + UDP + ESP + IV + GRE(key, seq) + a delivery header; tailroom for padding + ICV.
  assert.ok(ex.layoutHeadroom() >= 40 + 8 + 8 + 16 + 12 + 40);
  assert.ok(ex.layoutTailroom() >= 255 + 2 + 16 + 4);
  assert.equal(ex.layoutHeadroom() + ex.layoutMaxPacket() + ex.layoutTailroom(), ex.layoutSlotSize());
  assert.equal(ex.layoutSlotSize() % 64, 0);
  assert.equal(ex.layoutSlotDescSize(), 64);
  assert.equal(ex.layoutSaRecordSize(), 2624);
  // The crypto contexts fit the record's 2,048-byte context area (AES + HMAC at 1,984).
  assert.ok(ex.layoutGcmCtxSize() <= 2048, `GCM ctx ${ex.layoutGcmCtxSize()}`);
  assert.ok(ex.layoutAesCtxSize() <= 1984, `AES ctx ${ex.layoutAesCtxSize()}`);
  assert.equal(ex.layoutHmacCtxSize(), 64);
  // Inline replay bitmap (128 B at +32) holds windows up to 960; the counters fit the record,
  // which is padded to the 64-byte alignment after them.
  assert.ok(ex.replayWords(960) * 8 <= 128);
  assert.ok(ex.replayWords(1024) * 8 > 128);
  assert.ok(ex.layoutSaCounters() + ex.layoutCounterBlockSize() <= ex.layoutSaRecordSize());
  assert.ok(ex.layoutSaCounters() + ex.layoutCounterBlockSize() > ex.layoutSaRecordSize() - 64);
  assert.equal(ex.layoutSaRecordSize() % 64, 0);
  assert.ok(ex.layoutSaReplay() + 32 + 128 <= ex.layoutSaCounters());
});

test("reason names: one per counter, NONE first", () => {
  assert.equal(A.REASON_NAMES.length, A.REASON_COUNT);
  assert.equal(A.REASON_NAMES[0], "NONE");
  assert.equal(new Set(A.REASON_NAMES).size, A.REASON_NAMES.length);
});

test("memory is sized by init and stays put", async () => {
  const core = await makeCore({ slots: 8, maxSas: 1000, maxPolicies: 100, largeWindowBlocks: 4 });
  const before = core.memoryBytes();
  const top = core.ex.memoryTop();
  // Every structure sits below the arena top, which sits inside memory.
  assert.ok(top <= before);
  // Bytes per SA: the record, a peer entry, a SAD bucket (≤ 2 × 4 B when maxSas is not a power of two).
  const perSa = 2624 + 32 + 8;
  // The ring: its 8 slots and descriptors, and the fragment slots behind them.
  assert.ok(top - core.ex.ringBase() < (8 + A.FRAG_SLOTS) * (9472 + 64) + 1000 * perSa + 4 * 16384 + 100 * 96 + 8192 * 48 + 4096);
  assert.equal(core.ex.init(8, 10, 10, 0), -8, "a second init is refused");
  assert.equal(core.memoryBytes(), before);
});

test("SA install/remove and packet batches never grow memory", async () => {
  const { randomBytes } = await import("node:crypto");
  const { innerUdp } = await import("./core-helpers.ts");
  const core = await makeCore({ slots: 64, maxSas: 8, maxPolicies: 8, largeWindowBlocks: 1 });
  const bytes = core.memoryBytes(), top = core.ex.memoryTop();
  const key = randomBytes(32);
  for (let round = 0; round < 50; round++) {
    const out = core.addSa({ direction: "out", suite: "chacha20-poly1305", mode: "tunnel", spi: 100 + round, key, local: "192.0.2.1", remote: "192.0.2.2" });
    const inb = core.addSa({ direction: "in", suite: "aes-gcm-16", mode: "tunnel", spi: 100 + round, key: key.subarray(0, 16), replayWindow: 65536 });
    core.addPolicy({ action: "protect", local: "10.1.0.0/16", remote: "10.2.0.0/16", saId: out });
    for (let i = 0; i < 64; i++) core.writePacket(i, innerUdp("10.1.0.1", "10.2.0.1", (i * 97) % 1500));
    assert.equal(core.processOutbound(64), 64);
    for (let i = 0; i < 64; i++) core.writePacket(i, core.packet(i).slice(), 0);
    core.processInbound(64);
    core.removeSa(out);
    core.removeSa(inb);
    core.clearPolicies();
  }
  assert.equal(core.memoryBytes(), bytes);
  assert.equal(core.ex.memoryTop(), top);
});
