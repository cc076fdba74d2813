// Failover between a primary and its backup (`backup_for`, config/selectors.ts)
// and transit local selectors (`transit`): the config rules, then the real
// core's SPD as IKE's liveness brings the primary's SAs and takes them away
// (SaLifecycle.setNegotiated, as ike/runtime.ts does on up and on dead peer),
// with the switch events `wesp up` logs and counts (sa/failover.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { ConfigError, parseConfig } from "../../host/config/load.ts";
import type { Config } from "../../host/config/model.ts";
import { localSelectors } from "../../host/config/selectors.ts";
import { SaTable } from "../../host/sa/install.ts";
import { SaLifecycle, type NegotiatedSa } from "../../host/sa/lifecycle.ts";
import { describeSwitch, type FailoverSwitch } from "../../host/sa/failover.ts";
import { baseConfig, type Doc } from "../helpers/config_fixture.ts";
import { makeCore } from "./core-helpers.ts";
import { CeMetrics } from "../../host/metrics/ce.ts";
import { snapshot } from "../../host/pipeline/status.ts";
import type { Pipeline } from "../../host/pipeline/pipeline.ts";
import type { Status } from "../../host/control/status.ts";
import { formatStatus } from "../../host/control/format.ts";

const SHARED = "10.9.0.0/16";

/** b (IKE, dpd 30) is the primary of c (static SAs) for SHARED, which both list. */
function failoverDoc(): Doc {
  const c = baseConfig();
  delete c.peers[0].sas;
  c.peers[0].ike = { auth: { psk: "sa-failover-unit-test-psk-0123" } };
  c.peers[0].prefixes.push(SHARED);
  c.peers[1].prefixes.push(SHARED);
  c.peers[1].backup_for = "b";
  return c;
}
const parse = (doc: Doc) => parseConfig(JSON.stringify(doc), { baseDir: "/tmp", source: "<test>", uid: 1000, env: {} });
const load = (doc: Doc): Config => parse(doc).config;
function refused(doc: Doc): string {
  try {
    parse(doc);
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.message;
  }
  assert.fail("accepted");
}

test("backup_for: the backup may share its primary's prefixes, nobody else may; the primary needs IKE liveness; no chains", () => {
  assert.deepEqual(load(failoverDoc()).peers.map((p) => [p.name, p.backupFor ?? null]), [["b", null], ["c", "b"]]);
  const noBackup = failoverDoc();
  delete noBackup.peers[1].backup_for;
  assert.match(refused(noBackup), /peers\[1\]\.prefixes\[1\]: 10\.9\.0\.0\/16 overlaps another peer's 10\.9\.0\.0\/16/);
  const local = failoverDoc();
  local.node.local_prefixes.push(SHARED);
  assert.match(refused(local), /overlaps this node's own/, "a backup's prefixes still may not overlap ours");
  const noDpd = failoverDoc();
  noDpd.peers[0].ike.dpd = 0;
  assert.match(refused(noDpd), /peers\[1\]\.backup_for: b has no liveness signal: .*IKE peer with dpd > 0/);
  const staticPrimary = failoverDoc();
  delete staticPrimary.peers[0].ike;
  staticPrimary.peers[0].sas = baseConfig().peers[0].sas;
  assert.match(refused(staticPrimary), /b has no liveness signal/);
  const unknown = failoverDoc();
  unknown.peers[1].backup_for = "nope";
  assert.match(refused(unknown), /peers\[1\]\.backup_for: names no peer of this node \(have: b, c\)/);
  const self = failoverDoc();
  self.peers[1].backup_for = "c";
  assert.match(refused(self), /cannot back itself up/);
  const chain = failoverDoc();
  chain.peers[0].backup_for = "c";
  assert.match(refused(chain), /no chains/);
});

test("transit: a peer's local selectors are ours plus the other transit peers' prefixes, in families we list local prefixes of", () => {
  const doc = baseConfig();
  doc.node.local_prefixes = ["10.1.0.0/16"];
  doc.peers[0].transit = true;
  doc.peers[1].transit = true;
  doc.peers[1].prefixes = ["10.3.0.0/16", "fd00:3::/48"];
  doc.peers.push({ name: "d", address: "203.0.113.4", prefixes: ["10.4.0.0/16"], sas: [{ spi_in: 0x1003, spi_out: 0x4001, suite: "aes-256-gcm", key_in: "11".repeat(36), key_out: "22".repeat(36) }] });
  const c = load(doc);
  const texts = (i: number) => localSelectors(c, c.peers[i]).map((p) => p.text);
  assert.deepEqual(texts(0), ["10.1.0.0/16", "10.3.0.0/16"], "c's IPv6 prefix: no IPv6 local prefix, so ::/0 already covers it");
  assert.deepEqual(texts(1), ["10.1.0.0/16", "10.2.0.0/16"]);
  assert.deepEqual(texts(2), ["10.1.0.0/16"], "d is no transit peer");
});

const pair = (spiIn: number, spiOut: number): NegotiatedSa => ({
  spiIn, spiOut, suite: "aes-128-gcm", esn: false, lifetime: { seconds: 3600 },
  keysIn: { key: new Uint8Array(randomBytes(20)) }, keysOut: { key: new Uint8Array(randomBytes(20)) },
});

test("the SPD sends the shared prefixes to the primary while it has an SA, to the backup otherwise; each switch is an event", async () => {
  const core = await makeCore({ maxSas: 32, maxPolicies: 32, largeWindowBlocks: 4 });
  const table = new SaTable(core);
  const lc = new SaLifecycle({ apply: async (peers) => void table.apply(peers) });
  const switches: FailoverSwitch[] = [];
  lc.on("failover", (s) => switches.push(s));
  const metrics = new CeMetrics();
  metrics.watch(lc);
  const noPipe = { counters: {}, sockets: () => [] } as unknown as Pipeline;
  const status = async (): Promise<Status> => ({
    ...snapshot(core, table.prov, noPipe, new Set()), node: "site-a", pid: 1, startedAt: "", uptimeSeconds: 0, tun: "t", workers: 1, control: "", failover: lc.failover(),
  });
  table.apply(lc.initial(load(failoverDoc())).peers);
  const carrier = (remote: string) => {
    const id = core.lookupPolicy("10.1.0.1", remote);
    return table.prov.peers.find((p) => p.policies.includes(id))?.name ?? null;
  };
  const check = (via: string, why: string) => {
    assert.equal(carrier("10.9.0.1"), via, `${why}: the shared prefix`);
    assert.deepEqual(lc.failover(), [{ primary: "b", backup: "c", via }], why);
  };
  check("c", "b not up yet");
  assert.equal(carrier("10.3.0.1"), "c", "the backup's own prefix");
  assert.equal(carrier("10.2.0.1"), null, "the primary's own prefix: no SA, no policy");

  await lc.setNegotiated("b", [pair(0x5001, 0x6001)]);
  check("b", "b up");
  assert.equal(carrier("10.2.0.1"), "b");
  assert.equal(carrier("10.3.0.1"), "c", "the backup keeps its own prefix");

  await lc.setNegotiated("b", []); // what the IKE runtime does when b is declared dead
  check("c", "b dead");
  await lc.setNegotiated("b", [pair(0x5002, 0x6002)]);
  check("b", "b back");
  assert.deepEqual(switches.map((s) => [s.from, s.via]), [[null, "c"], ["c", "b"], ["b", "c"], ["c", "b"]]);
  const text = await metrics.scrape(status);
  assert.match(text, /^wesp_failover_switches_total\{primary="b",via="b"\} 2$/m);
  assert.match(text, /^wesp_failover_switches_total\{primary="b",via="c"\} 2$/m);
  assert.match(text, /^wesp_failover_via\{primary="b",via="b"\} 1$/m);
  assert.match(formatStatus(await status()), /^failover b {2}backup c {2}via b$/m);
  assert.equal(describeSwitch(switches[2]), "failover: b's prefixes now via the backup c (b has no SA: dead or not up yet), was b");
  assert.equal(describeSwitch(switches[3]), "failover: b's prefixes now via b again (was c)");
});
