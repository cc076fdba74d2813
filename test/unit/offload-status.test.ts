// What `wesp status` says about the offloads (issue 9): the addon's result
// codes become "on", "off" (not asked) or "refused (ERRNO)" with the errno's
// name, and the text form has one "offloads" line naming each — so a kernel
// that refuses TSO, USO, UDP_SEGMENT or UDP_GRO is visible, with the counters of
// what did run. A real refusal cannot be forced on this kernel, so the codes
// are fed in as the addon would return them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { constants } from "node:os";
import { offloadState } from "../../host/io/native_linux.ts";
import { formatStatus } from "../../host/control/format.ts";
import type { Status } from "../../host/control/status.ts";

test("offloadState: 0 on, negative off, an errno refused with its name", () => {
  assert.equal(offloadState(0), "on");
  assert.equal(offloadState(-1), "off");
  assert.equal(offloadState(constants.errno.EINVAL), "refused (EINVAL)");
  assert.equal(offloadState(constants.errno.ENOPROTOOPT), "refused (ENOPROTOOPT)");
  assert.equal(offloadState(100000), "refused (errno 100000)");
});

const base = {
  node: "ceA", pid: 1, startedAt: "", uptimeSeconds: 0, tun: "wesp0", workers: 1, control: "", peers: [],
  global: { inbound: { packets: 0, bytes: 0, drops: {}, dropped: 0 }, outbound: { packets: 0, bytes: 0, drops: {}, dropped: 0 } },
  host: { tunRead: 0, tunWritten: 0, sent: 0, received: 0, toHost: 0, icmpTooBig: 0, icmpRateLimited: 0, fragmented: 0, bypassUnsent: 0, keepalives: 0 },
  sockets: [],
} satisfies Status;
const counters = { superPackets: 3, segments: 120, malformed: 0, checksums: 0, coalesced: 2, coalescedSegments: 80, udpCoalesced: 4, udpCoalescedDatagrams: 100 };

test("status text: offloads on, with what they carried", () => {
  const text = formatStatus({
    ...base,
    offloads: { tun: { vnetHdr: true, tso: "on", uso: "on", ...counters }, udp: [{ name: "wan/udp", gso: "on", gro: "on", trains: 5, datagrams: 150 }] },
  });
  assert.match(
    text,
    /^offloads {2}tun tso on \(3 super-packets → 120 segments, 0 malformed\) {2}coalesced 2 \(80 segments\) {2}uso on {2}udp coalesced 4 \(100 datagrams\) {2}wan\/udp gso on {2}gro on {2}trains 5 \(150 datagrams\)$/m,
  );
});

test("status text: each refusal named with its errno, the rest still on", () => {
  const text = formatStatus({
    ...base,
    offloads: {
      tun: { vnetHdr: true, tso: offloadState(constants.errno.EINVAL), uso: offloadState(constants.errno.EINVAL), ...counters },
      udp: [{ name: "wan/udp", gso: offloadState(constants.errno.ENOPROTOOPT), gro: "on", trains: 0, datagrams: 0 }],
    },
  });
  assert.match(text, /^offloads {2}tun tso refused \(EINVAL\) {2}coalesced 2 \(80 segments\) {2}uso refused \(EINVAL\) {2}wan\/udp gso refused \(ENOPROTOOPT\) {2}gro on/m);
  // A kernel before 6.2: TSO taken, USO refused — no UDP coalescing counters shown.
  const old = formatStatus({ ...base, offloads: { tun: { vnetHdr: true, tso: "on", uso: offloadState(constants.errno.EINVAL), ...counters }, udp: [] } });
  assert.match(old, /^offloads {2}tun tso on \(3 super-packets → 120 segments, 0 malformed\) {2}coalesced 2 \(80 segments\) {2}uso refused \(EINVAL\)$/m);
  const plain = formatStatus({ ...base, offloads: { tun: { vnetHdr: false, tso: "off", uso: "off", ...counters }, udp: [] } });
  assert.match(plain, /^offloads {2}tun no vnet header$/m);
  assert.doesNotMatch(formatStatus(base), /offloads/, "no line when the worker reports none");
});
