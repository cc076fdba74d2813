// The pace of controller-driven rekeys (store/rekey.ts minGenerationAgeMs):
// each rekey makes every CE of the VPN pull three configs, so a CE reporting
// each new generation expired at once — broken or hostile — must not set the
// pace. A generation is replaced no sooner than half the time the VPN's
// lifetimes give it (10 s at most when byte or packet limits may come first);
// an earlier report is answered "early" with retryAfter, and the CE's agent
// (host/agent/sadb_expire.ts) sends it again then.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { Controller } from "../../host/controller/controller.ts";
import { KeySealer } from "../../host/controller/keys.ts";
import { openStore } from "../../host/controller/store/store.ts";
import { MIN_REKEY_INTERVAL_S, minGenerationAgeMs } from "../../host/controller/store/rekey.ts";
import type { CeConfig } from "../../host/controller/render.ts";
import { parseConfig } from "../../host/config/load.ts";
import { ExpiryReporter } from "../../host/agent/sadb_expire.ts";
import { SaTable } from "../../host/sa/install.ts";
import { SaLifecycle } from "../../host/sa/lifecycle.ts";
import { waitFor } from "../helpers/netns.ts";
import { enrolledCe } from "./controller-ce-fixture.ts";
import { makeCore } from "./core-helpers.ts";

const site = (name: string, octet: number) => ({ name, prefixes: [`10.${octet}.0.0/16`], wan: [{ name: "inet", privateAddress: `192.0.2.${octet}` }] });
const sasOf = (c: CeConfig, peer: string) => c.peers.find((p) => p.name === peer)!.sas!.map((s) => [s.spi_in, s.spi_out]);

test("minGenerationAgeMs: half the time the lifetimes give a generation; at most MIN_REKEY_INTERVAL_S when bytes or packets may come first", () => {
  const s = 1000;
  assert.equal(MIN_REKEY_INTERVAL_S, 10);
  for (const [l, ms] of [
    [{ softSeconds: 3600, seconds: 7200 }, 1800 * s],
    [{ seconds: 100 }, 45 * s], // needs-rekey at 90 % of the hard lifetime
    [{ softSeconds: 5, seconds: 120 }, 2.5 * s],
    [{ softSeconds: 30, softBytes: 1e6 }, 10 * s],
    [{ softSeconds: 8, bytes: 1e9 }, 4 * s],
    [{ packets: 1e6 }, 10 * s],
    [{}, 10 * s], // only sequence exhaustion rekeys
  ] as const) assert.equal(minGenerationAgeMs(l), ms, JSON.stringify(l));
});

test("the store: a generation reported sooner is left alone (early, retryAfter), later it is replaced; an honest CE, counting from first use, is never early", async () => {
  let now = 1_750_000_000_000;
  const ctl = new Controller(await openStore(":memory:", { now: () => now }), new KeySealer(randomBytes(32)));
  try {
    await ctl.createVpn({ name: "v", keying: "controller", saLifetime: { softSeconds: 30, seconds: 60 } });
    for (const [i, s] of ["a", "b"].entries()) await ctl.addSite("v", site(s, i + 1));
    const seal = ctl.keyMaker((await ctl.store.getVpn("v"))!);
    const version = async () => (await ctl.store.getVpn("v"))!.version;
    const [, out] = sasOf(await ctl.configFor("v", "a"), "b")[0];
    const v0 = await version();
    now += 3_000;
    assert.deepEqual(await ctl.store.saExpired("v", "a", { src: "a", dst: "b", spi: out }, seal), { outcome: "early", generation: 0, retryAfter: 12 });
    now += 11_999;
    assert.deepEqual(await ctl.store.saExpired("v", "a", { src: "a", dst: "b", spi: out }, seal), { outcome: "early", generation: 0, retryAfter: 1 }, "rounded up");
    assert.equal(await version(), v0, "nothing changed: no CE pulls");
    now += 1;
    assert.equal((await ctl.store.saExpired("v", "a", { src: "a", dst: "b", spi: out }, seal)).outcome, "rekeying", "15 s (half of soft 30 s) after it was made");
    // the new generation, reported at once (mid-rekey): early too — nothing remembered, so nothing starts when this rekey ends
    const [, out1] = sasOf(await ctl.configFor("v", "a"), "b")[1];
    assert.equal((await ctl.store.saExpired("v", "b", { src: "a", dst: "b", spi: out1 }, seal)).outcome, "early");
    for (let step = 0; step < 2; step++) {
      const v = await version();
      for (const s of ["a", "b"]) await ctl.store.reportApplied("v", s, v, seal);
    }
    assert.deepEqual((await ctl.store.listSas("v")).map((s) => s.generation), [1, 1], "one rekey, no second one chained");
  } finally {
    await ctl.store.close();
  }
});

test("the CE agent: its soft lifetime reported too soon comes back early; sent again after retryAfter, it starts the rekey", async () => {
  const { ctl, a, logs, close } = await enrolledCe("rekey-early", async (operator) => {
    // soft 4 s: a generation may be replaced 2 s after it was made
    await operator.createVpn({ name: "v", keying: "controller", saLifetime: { softSeconds: 4, seconds: 60 } });
    for (const [i, s] of ["a", "b"].entries()) await operator.addSite("v", site(s, i + 1));
  });
  const agentLog: string[] = [];
  let reporter: ExpiryReporter | undefined;
  try {
    const { config: doc } = await a.call<{ config: CeConfig }>("GET", "/v1/ce/config");
    const { config } = parseConfig(JSON.stringify(doc), { baseDir: tmpdir(), source: "<a>", uid: 1000, env: {} });
    // CE a's data plane as the agent runs it: a core, its SA table, the lifecycle whose events the reporter hears
    const core = await makeCore({ maxSas: 16, maxPolicies: 16, largeWindowBlocks: 4 });
    const lc = new SaLifecycle({ apply: async (peers) => table.apply(peers) });
    const table: SaTable = new SaTable(core, { emit: (e) => lc.deliver(e) });
    table.apply(lc.initial(config).peers);
    reporter = new ExpiryReporter(lc, () => config, () => a, (l) => agentLog.push(l));
    // the soft lifetime passes in the table's eyes at once (as for a CE that kept the SA's age across a restart)
    table.checkLifetimes(Date.now() + 4_500);
    await waitFor(() => agentLog.some((l) => /too young to replace yet; sent again in [12] s/.test(l)), "the first report answered early", 10_000, 10);
    assert.ok(logs.some((l) => /sadb-expire from v\/a: .*early: generation 0 is too young/.test(l)), "the controller logs the early report");
    assert.equal((await ctl.store.listSas("v")).length, 2, "nothing made yet");
    await waitFor(() => agentLog.some((l) => /controller says rekeying/.test(l)), "sent again: the rekey starts", 10_000, 20);
    assert.deepEqual((await ctl.store.listSas("v")).map((s) => `${s.generation}:${s.state}`).sort(), ["0:active", "0:active", "1:new", "1:new"]);
  } finally {
    reporter?.stop();
    await close();
  }
});
