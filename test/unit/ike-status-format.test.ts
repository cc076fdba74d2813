// `wesp status` text for IKE peers (host/control/format.ts): a line per peer with
// its state and what a person needs to judge it, a line per CHILD_SA.
import { test } from "node:test";
import assert from "node:assert/strict";
import { formatStatus } from "../../host/control/format.ts";
import type { IkePeerStatus, Status } from "../../host/control/status.ts";

const zero = { packets: 0, bytes: 0, drops: {}, dropped: 0 };
const base = {
  node: "ceA", pid: 1, startedAt: "", uptimeSeconds: 5, tun: "wesp0", workers: 1, control: "/x", peers: [],
  global: { inbound: zero, outbound: zero }, host: {} as Status["host"], sockets: [],
} satisfies Status;

test("an up peer: role, proposal, ages, rekeys, its CHILD_SAs with their mode; a retrying one: failures, ALARM, next retry, last error", () => {
  const up: IkePeerStatus = {
    name: "ceB", state: "up", ikeSa: "0011223344556677_8899aabbccddeeff", role: "initiator", proposal: "aes-gcm-128/prf-sha256/dh-19", natDetected: true,
    establishedSeconds: 125, ikeRekeyInSeconds: 3 * 3600 + 60, lastHeardSeconds: 2, failures: 0, alarm: false,
    childSas: [{ spiIn: 0xc0ffee01, spiOut: 0x1234, mode: "transport", rekeyInSeconds: 2900 }, { spiIn: 0x300, spiOut: 0x400, mode: "tunnel" }],
  };
  const down: IkePeerStatus = { name: "ceC", state: "retrying", failures: 9, alarm: true, retryInSeconds: 40, lastError: "timeout: no response to message 0 after 4 sends", childSas: [] };
  const lines = formatStatus({ ...base, ike: [up, down] }).split("\n");
  const at = lines.findIndex((l) => l.startsWith("ike ceB"));
  assert.deepEqual(lines.slice(at, at + 5), [
    "ike ceB  up  initiator  aes-gcm-128/prf-sha256/dh-19  NAT-T  established 2m5s ago  rekey in 3h1m  last heard 2s ago  failures 0",
    "  ike sa 0011223344556677_8899aabbccddeeff",
    "  child in 0xc0ffee01  out 0x00001234  transport  rekey in 48m20s",
    "  child in 0x00000300  out 0x00000400  tunnel  rekeying",
    "ike ceC  retrying  retry in 40s  failures 9  ALARM  last error: timeout: no response to message 0 after 4 sends",
  ]);
});

test("a peer behind a NAT says so after NAT-T", () => {
  const p: IkePeerStatus = { name: "ceA", state: "up", role: "responder", proposal: "aes-gcm-256/prf-sha384/dh-19", natDetected: true, behindNat: true, failures: 0, alarm: false, childSas: [] };
  assert.match(formatStatus({ ...base, ike: [p] }), /^ike ceA {2}up {2}responder {2}aes-gcm-256\/prf-sha384\/dh-19 {2}NAT-T \(behind a NAT\) {2}failures 0$/m);
});

test("no IKE peer: no IKE line", () => {
  assert.doesNotMatch(formatStatus(base), /^ike /m);
});
