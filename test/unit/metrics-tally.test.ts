// The tally (host/metrics/tally.ts) against prom-client's own Counter: the
// same events give the same exposition text, series in first-seen order,
// and a reset empties both. And CeMetrics counts SA installs and removals
// through it: a lifecycle's events become wesp_sa_installs_total /
// wesp_sa_removals_total series.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Counter, Registry } from "prom-client";
import { Tally } from "../../host/metrics/tally.ts";
import { CeMetrics } from "../../host/metrics/ce.ts";
import { SaLifecycle } from "../../host/sa/lifecycle.ts";
import { parseExposition, value } from "../helpers/prom.ts";

describe("Tally", () => {
  test("exposes what a Counter with the same events exposes", async () => {
    const a = new Registry(), b = new Registry();
    const tally = new Tally(a, "x_total", "Things.", ["peer", "direction"]);
    const counter = new Counter({ name: "x_total", help: "Things.", labelNames: ["peer", "direction"], registers: [b] });
    assert.equal(await a.metrics(), await b.metrics(), "no events: no series");
    const events: [string, string][] = [["p1", "in"], ["p2", "out"], ["p1", "in"], ["p1", "out"], ["p 3\"quoted\\", "in"], ["p2", "out"], ["p2", "out"]];
    for (const [peer, direction] of events) {
      tally.inc(peer, direction);
      counter.inc({ peer, direction });
    }
    assert.equal(await a.metrics(), await b.metrics());
    a.resetMetrics();
    b.resetMetrics();
    assert.equal(await a.metrics(), await b.metrics(), "reset");
  });

  test("CeMetrics counts a lifecycle's installs and removals", async () => {
    const m = new CeMetrics();
    const l = new SaLifecycle({ apply: async () => {} });
    m.watch(l);
    for (let i = 0; i < 3; i++) l.emit("sa-installed", { event: "sa-installed", peer: "ceB", dir: "out", spi: 0x100 + i, saId: i } as never);
    l.emit("sa-installed", { event: "sa-installed", peer: "ceB", dir: "in", spi: 0x200, saId: 9 } as never);
    l.emit("sa-removed", { event: "sa-removed", peer: "ceB", dir: "out", spi: 0x100, why: "lifetime" } as never);
    const e = parseExposition(await m.registry.metrics());
    assert.equal(value(e, "wesp_sa_installs_total", { peer: "ceB", direction: "out" }), 3);
    assert.equal(value(e, "wesp_sa_installs_total", { peer: "ceB", direction: "in" }), 1);
    assert.equal(value(e, "wesp_sa_removals_total", { peer: "ceB", direction: "out", why: "lifetime" }), 1);
  });
});
