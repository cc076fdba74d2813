// A reload that changes only a peer's address or port (host/sa/install.ts
// movePeer): the peer keeps its SAs — same core records, sequence numbers,
// replay windows — with durable sequence state on, so nothing resumes from
// the reservation. Two cores, each run by its own SaTable from a config,
// exchange ESP-in-UDP both ways before and after the move; the peer's config
// does not change, so every packet it sends after the move must still be
// accepted (no REPLAY_OLD), and no key travels for the moved peer. A plain
// GRE peer moved the same way is found in the SAD by its new address only.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../host/config/load.ts";
import type { Config } from "../../host/config/model.ts";
import type { Core } from "../../host/core/core.ts";
import { KIND } from "../../host/core/core.ts";
import { SaTable } from "../../host/sa/install.ts";
import { SaLifecycle } from "../../host/sa/lifecycle.ts";
import { SeqStore } from "../../host/sa/seq_store.ts";
import { ensureStateDir } from "../../host/sa/state_file.ts";
import type { PeerSpec, SaEvent } from "../../host/sa/spec.ts";
import { hexKey, type Doc } from "../helpers/config_fixture.ts";
import { innerUdp, ipv4, makeCore } from "./core-helpers.ts";

const load = (doc: Doc): Config => parseConfig(JSON.stringify(doc), { baseDir: "/tmp", source: "<test>" }).config;

const A = "192.0.2.1", B = "198.51.100.2", B2 = "198.51.100.20";
const K1 = hexKey(36), K2 = hexKey(36);

/** Node `name` at `wan` with one peer at `peerAddr`: the two sides of one SA pair. */
function doc(name: string, wan: string, peer: string, peerAddr: string, port: number, mine: boolean): Doc {
  return {
    version: 1,
    node: { name, wan: [{ name: "inet", address: wan }], local_prefixes: [mine ? "10.1.0.0/16" : "10.2.0.0/16"] },
    peers: [{
      name: peer, address: peerAddr, port, prefixes: [mine ? "10.2.0.0/16" : "10.1.0.0/16"],
      sas: [mine
        ? { spi_in: 0x1001, spi_out: 0x2001, suite: "aes-256-gcm", key_in: K1, key_out: K2 }
        : { spi_in: 0x2001, spi_out: 0x1001, suite: "aes-256-gcm", key_in: K2, key_out: K1 }],
    }],
  };
}

/** A core run by a SaTable with durable sequence state, behind a lifecycle (as the worker and main thread are). */
async function side(d: Doc, stateDir: string) {
  const core = await makeCore({ maxSas: 16, maxPolicies: 16, largeWindowBlocks: 4 });
  const events: SaEvent[] = [];
  const store = new SeqStore((message) => events.push({ event: "alarm", message }));
  const table = new SaTable(core, { store, stateDir, emit: (e) => void events.push(e) });
  const sent: PeerSpec[][] = [];
  const lc = new SaLifecycle({ apply: async (peers) => (sent.push(peers), table.apply(peers)) });
  table.apply(lc.initial(load(d)).peers);
  return { core, table, lc, events, sent };
}

/** `tx` seals one packet from `src` to `dst` (inner); `rx` receives its ESP as a UDP payload from `from`:`port`. */
function carry(tx: Core, rx: Core, src: string, dst: string, from: string, port: number, local: string): string {
  tx.writePacket(0, innerUdp(src, dst, 40));
  tx.processOutbound(1);
  if (tx.verdictName(0) !== "TO_NETWORK") return `tx ${tx.reasonName(0)}`;
  rx.writePacket(0, tx.packet(0).slice(tx.hdrLen(0)), KIND.UDP);
  rx.setRemote(0, from, port, local);
  rx.processInbound(1);
  return rx.verdictName(0) === "TO_TUN" ? "ok" : rx.reasonName(0);
}

test("a peer whose address and port change keeps its SAs, sequence numbers and replay windows", async () => {
  const dirA = mkdtempSync(join(tmpdir(), "wesp-move-a-")), dirB = mkdtempSync(join(tmpdir(), "wesp-move-b-"));
  ensureStateDir(dirA);
  ensureStateDir(dirB);
  try {
    const a = await side(doc("site-a", A, "b", B, 4500, true), dirA);
    const b = await side(doc("site-b", B, "a", A, 4500, false), dirB);
    const ab = () => carry(a.core, b.core, "10.1.0.5", "10.2.0.9", A, 4500, B);
    for (let i = 0; i < 100; i++) {
      assert.equal(ab(), "ok");
      assert.equal(carry(b.core, a.core, "10.2.0.9", "10.1.0.5", B, 4500, A), "ok");
    }
    const peer = a.table.prov.peers[0];
    const outId = peer.out!.saId, inId = peer.in[0].saId;
    assert.equal(a.core.saState(outId).seq, 101n);
    assert.equal(a.core.saState(inId).replayTop, 100n);

    // The peer moved to a second address and port; its own config (and sequence) did not change.
    a.events.length = 0;
    const report = await a.lc.apply(load(doc("site-a", A, "b", B2, 4600, true)));
    assert.deepEqual(report.changed, ["b"]);
    assert.ok(a.sent.at(-1)![0].sas.every((s) => !s.keysIn && !s.keysOut), "no key travels for a moved peer");
    assert.deepEqual(a.events.filter((e) => e.event !== "alarm" || !/reserv/.test(e.message)), [], "no SA removed or installed");
    const moved = a.table.prov.peers[0];
    assert.deepEqual([moved.out!.saId, moved.in[0].saId, moved.address, moved.port], [outId, inId, B2, 4600]);
    assert.equal(a.core.saState(outId).seq, 101n, "outbound sequence kept, not resumed from the reservation");
    assert.equal(a.core.saState(inId).replayTop, 100n, "replay window kept");
    const st = a.core.saState(outId);
    assert.deepEqual([st.remote, st.remotePort, st.remoteLearned], [B2, 4600, false], "the configured address, learned one reset");

    // Traffic both ways after the move: the peer's low numbers are still fresh; ours continue.
    for (let i = 0; i < 100; i++) {
      assert.equal(carry(b.core, a.core, "10.2.0.9", "10.1.0.5", B2, 4600, A), "ok", `b→a ${i} after the move`);
      assert.equal(ab(), "ok", `a→b ${i} after the move`);
      assert.equal(a.core.destAddress(0), B2);
      assert.equal(a.core.destPort(0), 4600);
    }
    assert.equal(a.core.saState(outId).seq, 201n);
    assert.equal(a.core.readCounters(inId).drops.REPLAY_OLD ?? 0n, 0n);

    // And back, with the NAT-T address just learned from B2 forgotten again.
    await a.lc.apply(load(doc("site-a", A, "b", B, 4500, true)));
    assert.deepEqual([a.table.prov.peers[0].out!.saId, a.core.saState(outId).remote, a.core.saState(outId).remotePort], [outId, B, 4500]);
    assert.equal(carry(b.core, a.core, "10.2.0.9", "10.1.0.5", B, 4500, A), "ok");
    a.table.clear();
    b.table.clear();
  } finally {
    rmSync(dirA, { recursive: true, force: true });
    rmSync(dirB, { recursive: true, force: true });
  }
});

test("a plain GRE peer moved by a reload: same SAs, inbound found from the new address only", async () => {
  const gre = (address: string): Doc => ({
    version: 1,
    node: { name: "site-a", wan: [{ name: "mpls", address: A, trusted: true }], local_prefixes: ["10.1.0.0/16"] },
    peers: [{ name: "g", address, mode: "gre", gre: { key: 5 }, prefixes: ["10.5.0.0/16"] }],
  });
  const core = await makeCore({ maxSas: 8, maxPolicies: 8, largeWindowBlocks: 0 });
  const table = new SaTable(core);
  const lc = new SaLifecycle({ apply: async (peers) => table.apply(peers) });
  table.apply(lc.initial(load(gre(B))).peers);
  const before = table.prov.peers[0];
  const ids = [before.out!.saId, before.in[0].saId];
  assert.deepEqual((await lc.apply(load(gre(B2)))).changed, ["g"]);
  const after = table.prov.peers[0];
  assert.deepEqual([after.out!.saId, after.in[0].saId], ids, "the same SA records");
  // A GRE packet (RFC 2890 §2: key present) from each address: only the new one is the peer.
  const reply = innerUdp("10.5.0.9", "10.1.0.5", 20);
  const hdr = Buffer.from([0x20, 0, 0x08, 0, 0, 0, 0, 5]);
  const from = (src: string): string => {
    core.writePacket(0, ipv4({ src, dst: A, proto: 47, payload: Buffer.concat([hdr, reply]) }), KIND.IP);
    core.processInbound(1);
    return core.verdictName(0) === "DROP" ? core.reasonName(0) : core.verdictName(0);
  };
  assert.equal(from(B2), "TO_TUN");
  assert.equal(core.saId(0), ids[1]);
  assert.equal(from(B), "NO_SA");
  core.writePacket(0, innerUdp("10.1.0.5", "10.5.0.9", 20));
  core.processOutbound(1);
  assert.equal(core.destAddress(0), B2);
});
