// Installing many durable SAs at once (host/sa/seq_store.ts prepareAll,
// journal.ts; state_file.ts writeStatesSync when a journal cannot be
// written): the first reservations of a whole apply are put in place with
// one file and one flush instead of two fsyncs each, and must say exactly
// what `prepare` one by one would have: a new key starts at 1, a known key
// resumes past its file; a bad file refuses its SA alone; a write that fails
// refuses its SA alone. A key whose SA is still tracked (being replaced in
// this apply) is left to `prepare`, after its removal rewrote the file —
// through SaTable, a re-added key's new limit never exceeds its state; where
// the new SA of a kept key comes first (a new SPI: make-before-break), the
// old one's final write keeps the new one's limit. "On
// disk" below is what a restart would read (journal.ts durableState: the max
// over the key's file and the journals).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { BATCH_FLUSH_MIN, ensureStateDir, readState, statePath, writeStatesSync, type SaStateRecord } from "../../host/sa/state_file.ts";
import { FIRST_BLOCK, SeqStateError, SeqStore, type DurableParams } from "../../host/sa/seq_store.ts";
import { keyId } from "../../host/sa/key_id.ts";
import { durableState, durableStates } from "../../host/sa/journal.ts";
import { parseConfig } from "../../host/config/load.ts";
import type { Config } from "../../host/config/model.ts";
import { SaTable } from "../../host/sa/install.ts";
import { SaLifecycle } from "../../host/sa/lifecycle.ts";
import { hexKey, type Doc } from "../helpers/config_fixture.ts";
import { innerUdp, makeCore } from "./core-helpers.ts";

const load = (doc: Doc): Config => parseConfig(JSON.stringify(doc), { baseDir: "/tmp", source: "<test>" }).config;

/** A node with a peer per key pair ([in, out], hex), SPIs from `spi` (in) and `spi` + 0x1000 (out); peer 0's MTU `mtu` if given. */
const peersDoc = (keys: string[][], spi: number, mtu?: number): Doc => ({
  version: 1,
  node: { name: "a", wan: [{ name: "inet", address: "192.0.2.1" }], local_prefixes: ["10.0.0.0/16"] },
  peers: keys.map(([kin, kout], i) => ({
    name: `p${i}`, address: `198.51.100.${i + 1}`, port: 4500, prefixes: [`10.${i + 1}.0.0/16`], ...(i === 0 && mtu !== undefined ? { mtu } : {}),
    sas: [{ spi_in: spi + i, spi_out: spi + 0x1000 + i, suite: "aes-256-gcm", key_in: kin, key_out: kout }],
  })),
});

/** A core, and an SaTable with durable state in `dir` driven by an SaLifecycle, collecting its alarms. */
async function durableTable(dir: string) {
  const core = await makeCore({ maxSas: 64, maxPolicies: 64, largeWindowBlocks: 48 });
  const alarms: string[] = [];
  const table = new SaTable(core, { store: new SeqStore((m) => void alarms.push(m)), stateDir: dir, emit: (e) => void (e.event === "alarm" && alarms.push(e.message)) });
  const lc = new SaLifecycle({ apply: async (peers) => table.apply(peers) });
  return { core, alarms, table, lc };
}

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "wesp-seqb-"));
  ensureStateDir(d);
  return d;
}

const params = (stateDir: string, dir: "in" | "out", spi: number): DurableParams =>
  ({ stateDir, dir, keyId: keyId(dir, randomBytes(20)), spi, suite: "aes-128-gcm", peer: `p${spi}`, esn: false });

const record = (keyId: string, reserved: bigint): SaStateRecord =>
  ({ dir: "out", keyId, spi: 1, suite: "aes-128-gcm", peer: "p", reserved, packets: 5n, bytes: 500n, created: 42 });

for (const n of [BATCH_FLUSH_MIN - 1, BATCH_FLUSH_MIN, 200]) {
  test(`writeStatesSync, ${n} records: every one in place, no temporary file left; one that cannot be written fails alone`, () => {
    const dir = tmp();
    try {
      const entries = Array.from({ length: n }, (_, i) => ({ path: statePath(dir, "out", `k${i}`), record: record(`k${i}`, BigInt(1000 + i)) }));
      entries.push({ path: join(dir, "missing-dir", "x.json"), record: record("x", 1n) });
      const failed = writeStatesSync(entries);
      assert.deepEqual([...failed.keys()], [join(dir, "missing-dir", "x.json")]);
      for (const [i, e] of entries.slice(0, n).entries()) {
        const r = readState(e.path, { dir: "out", keyId: `k${i}` });
        assert.ok(r.kind === "ok" && r.record.reserved === BigInt(1000 + i), `record ${i}`);
      }
      assert.deepEqual(readdirSync(join(dir, "sa")).filter((f) => f.endsWith(".tmp")), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test("prepareAll says what prepare says: new keys at 1, known keys past their file, a bad file refused alone", () => {
  const dir = tmp();
  try {
    const ps = Array.from({ length: 40 }, (_, i) => params(dir, i % 2 ? "in" : "out", 0x100 + i));
    // key 3 ran before (one block reserved), key 5's file is another key's: refused
    const known = ps[3], foreign = ps[5];
    const pre = new SeqStore(() => {});
    pre.prepare(known, 1);
    const seeded = readState(statePath(dir, known.dir, known.keyId), { dir: known.dir, keyId: known.keyId });
    assert.equal(seeded.kind, "ok");
    const top = seeded.kind === "ok" ? seeded.record.reserved : 0n;
    writeFileSync(statePath(dir, foreign.dir, foreign.keyId), readFileSync(statePath(dir, known.dir, known.keyId), "utf8"));
    const got = new SeqStore(() => {}).prepareAll(ps, 2);
    assert.equal(got.size, 40);
    for (const [i, p] of ps.entries()) {
      const r = got.get(statePath(dir, p.dir, p.keyId))!;
      if (p === foreign) {
        assert.ok(r instanceof SeqStateError, "another key's file: refused");
        continue;
      }
      assert.ok(!(r instanceof SeqStateError), `SA ${i}: ${String(r)}`);
      const onDisk = durableState(dir, p.dir, p.keyId);
      assert.ok(onDisk.kind === "ok" && onDisk.record.reserved === r.seqLimit, `SA ${i}: the promise is on disk before it is used`);
      if (p === known) {
        assert.deepEqual([r.initialSeq, r.priorSeen, r.resumed, r.seqLimit], [top + 1n, true, true, top + FIRST_BLOCK[p.dir]]);
      } else {
        assert.deepEqual([r.initialSeq, r.priorSeen, r.seqLimit], [1n, false, FIRST_BLOCK[p.dir]]);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("prepareAll leaves out a key whose SA is still tracked (it is being replaced: prepare after its removal)", () => {
  const dir = tmp();
  try {
    const s = new SeqStore(() => {});
    const live = params(dir, "out", 1), fresh = params(dir, "out", 2);
    const r = s.prepare(live, 1);
    s.track(7, live, r, 1);
    const got = s.prepareAll([live, fresh, ...Array.from({ length: 20 }, (_, i) => params(dir, "in", 10 + i))], 2);
    assert.equal(got.has(statePath(dir, "out", live.keyId)), false);
    assert.ok(got.has(statePath(dir, "out", fresh.keyId)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("SaTable: a peer rebuilt by a reload (same keys, new tunnel) never gets a limit above its state file", async () => {
  const dir = tmp();
  try {
    const keys = Array.from({ length: 20 }, () => [hexKey(36), hexKey(36)]);
    const doc = (mtu: number): Doc => peersDoc(keys, 0x1000, mtu);
    const { core, alarms, table, lc } = await durableTable(dir);
    table.apply(lc.initial(load(doc(1400))).peers);
    const limits = () => table.prov.peers.flatMap((rt) => [rt.out!, ...rt.in].map((sa) => ({ saId: sa.saId, spi: sa.spi })));
    const check = (when: string) => {
      for (const { saId, spi } of limits()) {
        const st = core.saState(saId);
        const reserved = [...durableStates(dir).values()].filter((r) => r.kind === "ok" && r.record.spi === spi).map((r) => (r.kind === "ok" ? r.record.reserved : 0n));
        assert.equal(reserved.length, 1, `${when}: one key's state for SPI 0x${spi.toString(16)}`);
        assert.ok(st.seqLimit <= reserved[0], `${when}: SPI 0x${spi.toString(16)} may use up to ${st.seqLimit}, its file promises only ${reserved[0]}`);
      }
    };
    check("first install (one batch)");
    await lc.apply(load(doc(1300))); // p0's tunnel changed: its SAs rebuilt with the same keys
    check("after p0 was rebuilt");
    assert.deepEqual(alarms, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("two SAs of one key: the first one's removal never writes its file below the second one's limit (untrack and untrackAll)", async () => {
  const dir = tmp();
  try {
    const core = await makeCore();
    for (const d of ["out", "in"] as const) {
      for (const all of [false, true]) {
        const s = new SeqStore(() => {});
        const p = params(dir, d, 0x900);
        const r1 = s.prepare(p, 1);
        s.track(1, p, r1, 1);
        const r2 = s.prepare(p, 2); // the key's new SA (a new SPI), made before the old one goes
        assert.ok(r2.seqLimit > r1.seqLimit);
        s.track(2, p, r2, 2);
        if (all) s.untrackAll(core, [1]);
        else s.untrack(core, 1);
        const on = durableState(dir, d, p.keyId);
        assert.ok(on.kind === "ok" && on.record.reserved >= r2.seqLimit, `${d}, ${all ? "untrackAll" : "untrack"}: file ${on.kind === "ok" ? on.record.reserved : on.kind}, the remaining SA may use up to ${r2.seqLimit}`);
        s.untrack(core, 2);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("SaTable: a reload that gives a kept key a new SPI never leaves its file below the new SA's limit", async () => {
  const dir = tmp();
  try {
    const keys = Array.from({ length: 4 }, () => [hexKey(36), hexKey(36)]);
    const doc = (spi: number): Doc => peersDoc(keys, spi);
    const { core, alarms, table, lc } = await durableTable(dir);
    table.apply(lc.initial(load(doc(0x1000))).peers);
    const check = (when: string) => {
      for (const { spec, rt } of table.peers()) {
        const sa = spec.sas[0];
        for (const [d, saId, kid] of [["out", rt.out!.saId, sa.keyIdOut], ["in", rt.in[0].saId, sa.keyIdIn]] as const) {
          const on = durableState(dir, d, kid), lim = core.saState(saId).seqLimit;
          assert.ok(on.kind === "ok" && on.record.reserved >= lim, `${when}: ${spec.name} ${d} may use up to ${lim}, its file promises ${on.kind === "ok" ? on.record.reserved : on.kind}`);
        }
      }
    };
    check("first install");
    await lc.apply(load(doc(0x3000))); // same keys, new SPIs: each new SA is installed before its old one goes
    check("after the SPIs moved");
    assert.deepEqual(alarms, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("untrackAll writes the final state of many SAs in one batch: each file its SA's counters, tracking ended", async () => {
  const dir = tmp();
  try {
    const n = BATCH_FLUSH_MIN + 8;
    const core = await makeCore({ maxSas: 2 * n, maxPolicies: 2 * n });
    const store = new SeqStore(() => {});
    const ps = Array.from({ length: n }, (_, i) => params(dir, "out", 0x700 + i));
    const prepared = store.prepareAll(ps);
    const ids = ps.map((p, i) => {
      const res = prepared.get(statePath(dir, "out", p.keyId))!;
      assert.ok(!(res instanceof SeqStateError));
      const id = core.addSa({ direction: "out", suite: "aes-gcm-16", mode: "tunnel", spi: p.spi, key: randomBytes(16), salt: randomBytes(4), local: "192.0.2.1", remote: "192.0.2.2", peerId: 1, initialSeq: res.initialSeq, seqLimit: res.seqLimit });
      core.addPolicy({ action: "protect", local: "10.1.0.0/16", remote: `10.3.${i}.0/24`, saId: id, peerId: 1 });
      store.track(id, p, res);
      for (let k = 0; k <= i % 5; k++) {
        core.writePacket(0, innerUdp("10.1.0.1", `10.3.${i}.1`, 20));
        core.processOutbound(1);
      }
      return id;
    });
    store.untrackAll(core, ids);
    for (const [i, p] of ps.entries()) {
      assert.equal(store.history(ids[i]), undefined, `SA ${i} no longer tracked`);
      const r = readState(statePath(dir, "out", p.keyId), { dir: "out", keyId: p.keyId });
      assert.ok(r.kind === "ok" && r.record.packets === BigInt(1 + (i % 5)), `SA ${i}: its file counts its ${1 + (i % 5)} packets`);
      assert.ok(r.kind === "ok" && r.record.reserved === FIRST_BLOCK.out, `SA ${i}: the outbound reservation stays`);
    }
    assert.deepEqual(readdirSync(join(dir, "sa")).filter((f) => f.endsWith(".tmp")), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
