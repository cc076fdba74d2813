// The library API's example (examples/embed/ce.ts, docs/api.md) runs as
// written: started from a config object in a namespace of its own, it hears
// its SAs installed, adds a peer through apply() with the first one
// unchanged, reads the status, stops and hears the SAs removed.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireTools } from "../helpers/require.ts";
import { Lab } from "../helpers/netns.ts";

describe("library API example", { skip: requireTools(["netns"], { why: "e2e library API example" }) }, () => {
  test("examples/embed/ce.ts: start, events, apply, status, stop", async () => {
    const dir = mkdtempSync(join(tmpdir(), "wesp-api-"));
    const lab = new Lab();
    try {
      const ns = await lab.ns("api");
      const out = await ns.run([process.execPath, "--import", "tsx", "examples/embed/ce.ts", dir], { timeoutMs: 60_000 });
      const lines = out.trim().split("\n");
      assert.equal(lines[0], "started embedded on wesp-embed");
      assert.equal(lines[1], "applied: added branch-b unchanged branch-a");
      assert.equal(lines[2], "peers: branch-a(out spi 0x1001) branch-b(out spi 0x2001)");
      const events = lines[3].replace(/^events: /, "").split(" ");
      assert.deepEqual(events.filter((e) => e.startsWith("sa-installed")).sort(), ["sa-installed:branch-a", "sa-installed:branch-a", "sa-installed:branch-b", "sa-installed:branch-b"]);
      assert.deepEqual(events.filter((e) => e.startsWith("sa-removed")).length, 4, "stop removes every SA");
      assert.ok(!events.includes("alarm"), out);
      // Four keys, four state files (one per key and direction), none holding a key.
      assert.equal(readdirSync(join(dir, "sa")).filter((f) => f.endsWith(".json")).length, 4);
    } finally {
      await lab.teardown();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
