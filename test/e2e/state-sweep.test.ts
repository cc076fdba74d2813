// `wesp up` sweeps its state directory before any worker runs
// (host/sa/state_sweep.ts): ceA starts with `workers: 1` in a state_dir that a
// run with more workers left behind — a reservation journal of worker 3 and
// the temporary file of an interrupted state-file write. The journal's records
// end up in their keys' own files (so worker 3, run again, resumes past them:
// RFC 4303 §3.3.3, no (key, nonce) twice) before the journal is deleted, the
// temporary file is gone, the start log says so, and ceA forwards as ever.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { requireTools } from "../helpers/require.ts";
import { ADDR, startPair, status, stopPair, useSites, type Case, type Sites } from "./forwarder-util.ts";
import { FIRST_BLOCK, SeqStore, type DurableParams } from "../../host/sa/seq_store.ts";
import { ensureStateDir, readState, statePath } from "../../host/sa/state_file.ts";
import { keyId } from "../../host/sa/key_id.ts";

const CASE: Case = { name: "tunnel, ESP in UDP over IPv4", mode: "tunnel", outer: 4, encap: "udp" };

describe("wesp up: the state directory swept at start", { skip: requireTools(["netns", "python3"], { why: "e2e state sweep" }) }, () => {
  let s!: Sites;
  useSites((x) => (s = x));

  it("a former worker's journal goes into its keys' files, then away; an interrupted write's temporary file is deleted", { timeout: 120_000 }, async () => {
    const stateDir = join(s.lab.dir, "ceA-state"); // forwarder-util's configs put ceA's here
    ensureStateDir(stateDir);
    const ps: DurableParams[] = Array.from({ length: 4 }, (_, i) => {
      const dir = i % 2 ? "in" : "out";
      return { stateDir, dir, keyId: keyId(dir, randomBytes(20)), spi: 0x3000 + i, suite: "aes-256-gcm", peer: "gone", esn: false };
    });
    const w3 = new SeqStore(() => {}, "w3");
    w3.prepareAll(ps, 1);
    w3.abandon(); // killed -9 with its journal in place
    const temp = `${statePath(stateDir, "out", keyId("out", randomBytes(20)))}.7.atmp`;
    writeFileSync(temp, "half a record");
    assert.deepEqual(readdirSync(join(stateDir, "sa")).filter((f) => f.startsWith("journal-")), ["journal-w3-1.bin"]);

    const r = await startPair(s, CASE, "sweep");
    try {
      assert.match(r.a.stderr, /state directory: 1 temporary file of an interrupted write deleted; journals of former workers written to their keys' files and deleted: journal-w3-1\.bin/);
      assert.ok(!existsSync(temp), "the temporary file is gone");
      assert.ok(!readdirSync(join(stateDir, "sa")).some((f) => f.startsWith("journal-w3-")), "worker 3's journal is gone");
      for (const p of ps) {
        const d = readState(statePath(stateDir, p.dir, p.keyId), { dir: p.dir, keyId: p.keyId });
        assert.ok(d.kind === "ok" && d.record.reserved === FIRST_BLOCK[p.dir], `${p.dir} ${p.keyId}: its own file holds the journal's promise`);
      }
      assert.equal((await s.hostA.ping(ADDR.hostB.v4, 2)).received, 2, "ceA forwards");
      const st = await status(r.sockA);
      assert.equal(st.journalsKept, undefined, "nothing had to be kept");
    } finally {
      await stopPair(s, r);
    }
  });
});
