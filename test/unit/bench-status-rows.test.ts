// What bench/workers/inbound.ts sums from `wesp status`: every worker's rows,
// worker i ≥ 1's named with "@wi" (host/pipeline/status_merge.ts). The drops
// were once matched by `endsWith("/udp")`, which counted worker 0's socket only.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { SocketRow } from "../../host/control/status.ts";
import { isTunRow, isUdpRow, tunWritten, udpKernelDrops } from "../../bench/workers/status_rows.ts";

const row = (name: string, sent: number, kernelDrops: number | null): SocketRow => ({ name, received: 0, sent, kernelDrops }) as SocketRow;

test("the NAT-T sockets and TUN queues of every worker, nothing else", () => {
  assert.ok(isUdpRow("wan/udp") && isUdpRow("wan/udp@w1") && isUdpRow("wan2/udp@w12"));
  assert.ok(!isUdpRow("wan/raw") && !isUdpRow("wan/raw@w1") && !isUdpRow("tun/wesp0"));
  assert.ok(isTunRow("tun/wesp0") && isTunRow("tun/wesp0@w1"));
  assert.ok(!isTunRow("wan/udp") && !isTunRow("wan/udp@w1"));
});

test("two workers: drops and TUN writes are summed over both", () => {
  const rows = [row("tun/wesp0", 100, null), row("wan/udp", 5, 7), row("tun/wesp0@w1", 90, null), row("wan/udp@w1", 4, 6), row("wan/raw@w1", 3, 50)];
  assert.equal(udpKernelDrops(rows), 13);
  assert.equal(tunWritten(rows), 190);
});
