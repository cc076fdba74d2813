// host/cli/node_run.ts: what `wesp up` and `wesp up --controller` share — the
// stop signals and the exit status and words of a start that failed.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { isPermissionError, startFailure, StopSignals } from "../../host/cli/node_run.ts";
import { ForwarderError } from "../../host/pipeline/forwarder.ts";
import { EXIT_FAILURE, EXIT_PERMISSION } from "../../host/cli/exit_codes.ts";
import type { Config } from "../../host/config/model.ts";

const config = { node: { ikePort: 500 } } as unknown as Config;
const counts = () => ["SIGINT", "SIGTERM", "SIGHUP"].map((s) => process.listenerCount(s));

describe("StopSignals", () => {
  it("resolves with the signal's name, and takes its handlers off again", async () => {
    const before = counts();
    let hups = 0;
    const s = new StopSignals(() => hups++);
    assert.deepEqual(counts(), before.map((n) => n + 1));
    process.emit("SIGHUP", "SIGHUP");
    assert.equal(hups, 1, "SIGHUP goes to its handler and does not stop the node");
    process.emit("SIGTERM", "SIGTERM");
    assert.equal(await s.stopped, "SIGTERM");
    s.release();
    assert.deepEqual(counts(), before);
  });

  it("resolves with what wake was given, first come first served", async () => {
    const before = counts();
    const s = new StopSignals();
    assert.deepEqual(counts(), [before[0] + 1, before[1] + 1, before[2]], "no SIGHUP handler without one given");
    s.wake("removed");
    s.wake("error");
    assert.equal(await s.stopped, "removed");
    s.release();
    assert.deepEqual(counts(), before);
  });
});

describe("startFailure", () => {
  const run = (e: unknown) => {
    const lines: string[] = [];
    return { code: startFailure(e, config, (l) => lines.push(l)), lines };
  };

  it("names the privilege each part needs, exit 3", () => {
    for (const [where, want] of [["tun", /CAP_NET_ADMIN/], ["socket", /CAP_NET_RAW/], ["ike", /UDP port 500 needs CAP_NET_BIND_SERVICE/]] as const) {
      const r = run(new ForwarderError(`${where}: operation not permitted`, "EPERM", where));
      assert.equal(r.code, EXIT_PERMISSION, where);
      assert.equal(r.lines[0], `${where}: operation not permitted`);
      assert.match(r.lines[1], want);
    }
  });

  it("other forwarder failures: their message, exit 1", () => {
    const r = run(new ForwarderError("socket: address in use", "EADDRINUSE", "socket"));
    assert.equal(r.code, EXIT_FAILURE);
    assert.deepEqual(r.lines, ["socket: address in use"]);
  });

  it("throws on what is not the forwarder's (a bug, not a refusal)", () => {
    assert.throws(() => run(new TypeError("x is undefined")), TypeError);
  });

  it("isPermissionError reads the errno code of anything", () => {
    assert.equal(isPermissionError(Object.assign(new Error("x"), { code: "EACCES" })), true);
    assert.equal(isPermissionError(new Error("x")), false);
    assert.equal(isPermissionError(undefined), false);
  });
});
