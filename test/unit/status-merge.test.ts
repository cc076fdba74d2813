// host/pipeline/status_merge.ts: N workers' status as one. A static peer's SAs
// are derived per worker (SPI + i): their counters are summed place by place.
// An IKE peer's CHILD_SAs are each worker's own (one per worker, RFC 9611
// style): every inbound SA is listed, the outbound counters are summed, and a
// peer that only worker 1 holds yet is still listed. Reservation journals:
// counts summed, the oldest of all, shown in the text while any is pending.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mergeStatus } from "../../host/pipeline/status_merge.ts";
import { formatStatus } from "../../host/control/format.ts";
import type { CounterBlock, HostCounters, PeerStatus, SaStatus, Status, WorkerStatus } from "../../host/control/status.ts";

const block = (packets: number): CounterBlock => ({ packets, bytes: packets * 100, drops: {}, dropped: 0 });
const sa = (spi: number, packets: number, index = 0): SaStatus => ({ spi, saId: spi & 0xff, index, live: true, expired: false, seq: packets, counters: block(packets) });
const peer = (name: string, outbound: SaStatus | null, inbound: SaStatus[]): PeerStatus =>
  ({ name, peerId: 0, mode: "tunnel", encap: "udp", suite: "aes-128-gcm", address: "192.0.2.2", port: 4500, learned: false, configured: { address: "192.0.2.2", port: 4500 }, outbound, inbound }) as PeerStatus;
const worker = (peers: PeerStatus[]): WorkerStatus =>
  ({ peers, global: { inbound: block(1), outbound: block(1) }, host: { tunRead: 1 } as unknown as HostCounters, sockets: [] }) as WorkerStatus;

test("static peer: worker i's SA at each place is the derived one, counters summed there", () => {
  const m = mergeStatus([
    worker([peer("s", sa(0x200, 5), [sa(0x100, 7), sa(0x110, 1, 1)])]),
    worker([peer("s", sa(0x201, 3), [sa(0x101, 2), sa(0x111, 4, 1)])]),
  ]);
  const p = m.peers[0];
  assert.equal(p.outbound!.spi, 0x200);
  assert.equal(p.outbound!.counters.packets, 8);
  assert.deepEqual(p.inbound.map((s) => [s.spi, s.counters.packets]), [[0x100, 9], [0x110, 5]]);
  assert.deepEqual(p.workers!.map((w) => w.inbound.length), [2, 2]);
});

test("IKE peer: each worker's own CHILD_SAs all listed inbound, outbound counters summed; a peer only worker 1 holds is listed", () => {
  const m = mergeStatus([
    worker([peer("ike", sa(0xa000, 5), [sa(0x5002, 7)])]),
    worker([peer("ike", sa(0xb001, 3), [sa(0x7001, 2), sa(0x9003, 1, 1)]), peer("late", sa(0xc001, 1), [sa(0xd001, 1)])]),
  ]);
  assert.deepEqual(m.peers.map((p) => p.name), ["ike", "late"]);
  const p = m.peers[0];
  assert.equal(p.outbound!.spi, 0xa000, "worker 0's outbound SA names the entry");
  assert.equal(p.outbound!.counters.packets, 8);
  assert.deepEqual(p.inbound.map((s) => [s.spi, s.counters.packets]), [[0x5002, 7], [0x7001, 2], [0x9003, 1]], "not summed place by place: they are different SAs");
  const late = m.peers[1];
  assert.equal(late.outbound!.spi, 0xc001);
  assert.deepEqual(late.workers!.map((w) => w.outbound?.spi ?? null), [null, 0xc001]);
});

test("reservation journals: counts summed over the workers, the oldest of all; the text names them while any is pending", () => {
  const w = (journals?: WorkerStatus["journals"]) => ({ ...worker([]), ...(journals ? { journals } : {}) });
  const m = mergeStatus([w({ count: 1, pendingFiles: 40, oldestSeconds: 3 }), w({ count: 2, pendingFiles: 7, oldestSeconds: 95 }), w({ count: 0, pendingFiles: 0, oldestSeconds: null })]);
  assert.deepEqual(m.journals, { count: 3, pendingFiles: 47, oldestSeconds: 95 });
  assert.deepEqual(mergeStatus([w({ count: 0, pendingFiles: 0, oldestSeconds: null }), w()]).journals, { count: 0, pendingFiles: 0, oldestSeconds: null });
  assert.equal(mergeStatus([w(), w()]).journals, undefined, "no worker keeps durable state: nothing to show");
  const st = { ...m, node: "n", pid: 1, startedAt: "", uptimeSeconds: 0, tun: "t", workers: 3, control: "c" } as Status;
  const text = formatStatus(st);
  assert.match(text, /^journals 3 pending {2}\(47 key files to write, oldest 1m35s\)$/m);
  assert.doesNotMatch(formatStatus({ ...st, journals: { count: 0, pendingFiles: 0, oldestSeconds: null } }), /journal/);
  const kept = formatStatus({ ...st, journalsKept: [{ file: "journal-w3-1.bin", why: "fails its checksum (corrupt)" }] });
  assert.match(kept, /^journal journal-w3-1\.bin kept: fails its checksum \(corrupt\)$/m);
});
