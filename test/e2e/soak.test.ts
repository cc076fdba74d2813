// The soak of docs/soak.md, one minute long (issue 6 item 5): two CEs running
// `wesp up` through the impairment relay (test/soak/relay.ts), a numbered UDP
// stream and pings both ways; every replay drop and every lost datagram must be
// explained by the relay's log, RSS and fds flat. `npm run soak` runs the long one.
// WESP_SOAK_CI_MINUTES changes the length here.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { requireTools } from "../helpers/require.ts";
import { leftovers } from "../../host/lab/leftovers.ts";
import { DEFAULTS, formatResult, NS_PREFIX, runSoak } from "../soak/soak.ts";

const MINUTES = Number(process.env.WESP_SOAK_CI_MINUTES || 1);

describe("soak through an impairment relay", { skip: requireTools(["netns", "python3", "sysctl"], { why: "e2e soak" }) }, () => {
  it(`${MINUTES} minute(s): no false replay drop, every loss explained, RSS and fds flat`, { timeout: (MINUTES * 60 + 180) * 1000 }, async () => {
    const r = await runSoak({ ...DEFAULTS, minutes: MINUTES, sampleSec: 5, seed: Number(process.env.WESP_SOAK_SEED || 1) });
    console.log(formatResult(r));
    for (const c of r.checks) assert.ok(c.ok, `${c.name}: ${c.detail}`);
    // both kinds of predicted replay were exercised, so the equality above meant something
    for (const d of r.dirs) {
      assert.ok(d.log.REPLAY > 0 && d.log.REPLAY_OLD > 0, `${d.dir}: relay predicted REPLAY ${d.log.REPLAY}, REPLAY_OLD ${d.log.REPLAY_OLD}`);
    }
    const left = leftovers(`${NS_PREFIX}${process.pid}-`);
    assert.deepEqual(left, { namespaces: [], dirs: [] }, "the soak's namespaces and scratch dir are gone");
  });
});
