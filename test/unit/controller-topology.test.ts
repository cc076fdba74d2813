// topology.ts: peersOf finds a site's peers without making every pair (a full
// mesh of 10,000 sites has 50 million); it must say exactly what pairsOf says.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { pairsOf, peersOf } from "../../host/controller/topology.ts";
import type { Topology } from "../../host/controller/store/model.ts";

const name = fc.constantFrom("a", "b", "c", "d", "e", "hq", "dr", "s1", "s10", "s2");
const topology: fc.Arbitrary<Topology> = fc.oneof(
  fc.constant({ kind: "full-mesh" } as const),
  fc.tuple(name, fc.option(name, { nil: undefined })).filter(([h, b]) => h !== b)
    .map(([hub, backupHub]) => (backupHub === undefined ? { kind: "hub-and-spoke" as const, hub } : { kind: "hub-and-spoke" as const, hub, backupHub })),
);

test("peersOf is pairsOf's pairs holding the site, for every topology, hub present or not, names repeated or not", () => {
  fc.assert(fc.property(topology, fc.array(name, { maxLength: 12 }), name, (t, names, site) => {
    const vpn = { topology: t };
    const sites = names.map((n) => ({ name: n }));
    const want = pairsOf(vpn, sites).filter((p) => p.includes(site)).map((p) => (p[0] === site ? p[1] : p[0])).sort();
    assert.deepEqual(peersOf(vpn, sites, site), want);
  }), { numRuns: 3000 });
});
