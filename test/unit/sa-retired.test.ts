// A peer's totals survive the SAs they were counted on (host/sa/install.ts
// `retired`): two real cores, each run by a SaTable from a config, exchange
// ESP both ways; a make-before-break rekey by config ([old, new], then
// [new, old], then [new]) replaces the pair; the peer's totals in status
// (pipeline/status.ts snapshot) and in the Prometheus counters
// (metrics/ce.ts) count every packet ever carried — before, they fell back to
// the new SAs' counts, which Prometheus reads as a counter reset.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../../host/config/load.ts";
import type { Config } from "../../host/config/model.ts";
import type { Core } from "../../host/core/core.ts";
import { KIND } from "../../host/core/core.ts";
import { SaTable } from "../../host/sa/install.ts";
import { SaLifecycle } from "../../host/sa/lifecycle.ts";
import { snapshot } from "../../host/pipeline/status.ts";
import type { Pipeline } from "../../host/pipeline/pipeline.ts";
import type { Status } from "../../host/control/status.ts";
import { CeMetrics } from "../../host/metrics/ce.ts";
import { hexKey, type Doc } from "../helpers/config_fixture.ts";
import { parseExposition, value } from "../helpers/prom.ts";
import { innerUdp, makeCore } from "./core-helpers.ts";

const load = (doc: Doc): Config => parseConfig(JSON.stringify(doc), { baseDir: "/tmp", source: "<test>" }).config;

const A = "192.0.2.1", B = "198.51.100.2";
const K = [hexKey(36), hexKey(36), hexKey(36), hexKey(36)];
/** Generation g of the pair, as seen from site a (mine) or site b. */
const sa = (g: number, mine: boolean) => {
  const ab = 0x1000 + g, ba = 0x2000 + g;
  return mine
    ? { spi_in: ba, spi_out: ab, suite: "aes-256-gcm", key_in: K[2 * g + 1], key_out: K[2 * g] }
    : { spi_in: ab, spi_out: ba, suite: "aes-256-gcm", key_in: K[2 * g], key_out: K[2 * g + 1] };
};

function doc(mine: boolean, gens: number[]): Doc {
  return {
    version: 1,
    node: { name: mine ? "site-a" : "site-b", wan: [{ name: "inet", address: mine ? A : B }], local_prefixes: [mine ? "10.1.0.0/16" : "10.2.0.0/16"] },
    peers: [{
      name: mine ? "b" : "a", address: mine ? B : A, port: 4500, prefixes: [mine ? "10.2.0.0/16" : "10.1.0.0/16"],
      sas: gens.map((g) => sa(g, mine)),
    }],
  };
}

async function side(mine: boolean) {
  const core = await makeCore({ maxSas: 16, maxPolicies: 16, largeWindowBlocks: 4 });
  const table = new SaTable(core, { emit: () => {} });
  const lc = new SaLifecycle({ apply: async (peers) => table.apply(peers) });
  table.apply(lc.initial(load(doc(mine, [0]))).peers);
  return { core, table, lc, mine };
}

function carry(tx: Core, rx: Core, src: string, dst: string, from: string, local: string): string {
  tx.writePacket(0, innerUdp(src, dst, 40));
  tx.processOutbound(1);
  if (tx.verdictName(0) !== "TO_NETWORK") return `tx ${tx.reasonName(0)}`;
  rx.writePacket(0, tx.packet(0).slice(tx.hdrLen(0)), KIND.UDP);
  rx.setRemote(0, from, 4500, local);
  rx.processInbound(1);
  return rx.verdictName(0) === "TO_TUN" ? "ok" : rx.reasonName(0);
}

/** What the control socket would report for `s` (no TUN or sockets: a pipeline's empty counters). */
function statusOf(s: Awaited<ReturnType<typeof side>>): Status {
  const pipe = { counters: {}, sockets: () => [] } as unknown as Pipeline;
  const w = snapshot(s.core, s.table.prov, pipe, s.table.expired, s.table.retired);
  return { node: "site-a", pid: 1, startedAt: "", uptimeSeconds: 1, tun: "wesp0", workers: 1, control: "", ...w } as unknown as Status;
}

/** The peer's total in one direction, as status has it: live SAs plus retired. */
function total(st: Status, dir: "in" | "out"): number {
  const p = st.peers[0];
  const live = dir === "out" ? (p.outbound && !p.outbound.expired ? [p.outbound] : []) : p.inbound.filter((x) => !x.expired);
  return live.reduce((n, x) => n + x.counters.packets, 0) + (p.retired?.[dir].packets ?? 0);
}

test("a peer's packet totals keep counting across a make-before-break rekey, in status and in Prometheus", async () => {
  const a = await side(true);
  const b = await side(false);
  const metrics = new CeMetrics();
  const scrape = async () => parseExposition(await metrics.scrape(async () => statusOf(a)));
  let ab = 0, ba = 0;
  const exchange = (n: number) => {
    for (let i = 0; i < n; i++) {
      assert.equal(carry(a.core, b.core, "10.1.0.5", "10.2.0.9", A, B), "ok");
      assert.equal(carry(b.core, a.core, "10.2.0.9", "10.1.0.5", B, A), "ok");
      ab++;
      ba++;
    }
  };
  const apply = async (gens: number[]) => {
    for (const s of [a, b]) await s.lc.apply(load(doc(s.mine, gens)));
  };

  exchange(30);
  const seen: number[] = [];
  const check = async (when: string) => {
    const st = statusOf(a);
    assert.equal(total(st, "out"), ab, `${when}: a's outbound total`);
    assert.equal(total(st, "in"), ba, `${when}: a's inbound total`);
    const e = await scrape();
    const out = value(e, "wesp_peer_packets_total", { peer: "b", direction: "out" });
    assert.equal(out, ab, `${when}: wesp_peer_packets_total out`);
    assert.equal(value(e, "wesp_peer_packets_total", { peer: "b", direction: "in" }), ba, `${when}: wesp_peer_packets_total in`);
    seen.push(out!);
  };
  await check("generation 0");

  // The controller's order: [old, new] (new inbound), [new, old] (outbound moves), [new] (old gone).
  await apply([0, 1]);
  exchange(10);
  await check("new installed inbound");
  await apply([1, 0]);
  exchange(10);
  await check("outbound moved");
  await apply([1]);
  exchange(10);
  await check("old removed");
  assert.equal(a.table.retired.get("b")!.out.packets, 40n, "generation 0 carried 40 outbound before it went");
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i] > seen[i - 1], `never falls: ${seen.join(" → ")}`);

  // A peer removed and added again starts from zero: its series is new.
  await a.lc.apply(load({ ...doc(true, [1]), peers: [] }));
  assert.equal(a.table.retired.has("b"), false, "a removed peer's totals are forgotten");
});
