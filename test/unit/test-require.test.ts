// test/helpers/require.ts, the one gate every skip of the test tree goes
// through: without CI a missing tool skips loudly (what is missing, the
// command that installs it); with CI it fails. Each case runs in a child
// whose PATH lacks the tools (or holds fakes of them), with and without CI.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const HELPER = pathToFileURL(join(ROOT, "test/helpers/require.ts")).href;
const RUN = join(ROOT, "test/run.mjs");
const dir = mkdtempSync(join(tmpdir(), "wesp-require-test-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const empty = join(dir, "empty-bin");
mkdirSync(empty);
const fakes = join(dir, "fake-bin");
mkdirSync(fakes);
for (const t of ["tshark", "nft"]) {
  writeFileSync(join(fakes, t), "#!/bin/sh\nexit 0\n");
  chmodSync(join(fakes, t), 0o755);
}

/** `requireTools(["tshark", "nft"])` in a child with PATH=`path` and CI=`ci` (undefined: unset). */
function child(path: string, ci: string | undefined, log?: string) {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: path };
  delete env.CI;
  delete env.WESP_TEST_SKIP_LOG;
  if (ci !== undefined) env.CI = ci;
  if (log) env.WESP_TEST_SKIP_LOG = log;
  const code = `import { requireTools } from ${JSON.stringify(HELPER)};
    console.log(JSON.stringify(requireTools(["tshark", "nft"], { why: "the fixture" })));`;
  return spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { cwd: ROOT, env, encoding: "utf8" });
}

test("without CI, a missing tool is a skip that says what is missing and the command that installs it", () => {
  const log = join(dir, "skips.log");
  for (const ci of [undefined, "", "false", "0"]) {
    const r = child(empty, ci, log);
    assert.equal(r.status, 0, r.stderr);
    const reason = JSON.parse(r.stdout);
    assert.equal(reason, "missing tshark, nft; to run it: apt-get install -y tshark nftables");
    assert.match(r.stderr, /^SKIP the fixture: missing tshark, nft; to run it: apt-get install -y tshark nftables$/m);
  }
  // and each skip is logged for test/run.mjs's summary
  assert.equal(readFileSync(log, "utf8").split("\n").filter(Boolean).length, 4);
});

test("with CI set, a missing tool fails, naming the tool and its package", () => {
  for (const ci of ["true", "1", "yes"]) {
    const r = child(empty, ci);
    assert.notEqual(r.status, 0, `CI=${ci}: ${r.stdout}`);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /the fixture: missing tshark, nft; to run it: apt-get install -y tshark nftables\. CI is set, so this fails instead of skipping/);
  }
});

test("with the tools on PATH it runs, CI or not", () => {
  for (const ci of [undefined, "true"]) {
    const r = child(fakes, ci);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout), false);
    assert.equal(r.stderr, "");
  }
});

test("test/run.mjs: a skipped group is listed at the end; with CI the run fails", () => {
  // A test tree of one file whose describe needs a tool this PATH lacks.
  const tree = join(dir, "tree");
  mkdirSync(join(tree, "test", "fixture"), { recursive: true });
  symlinkSync(join(ROOT, "node_modules"), join(tree, "node_modules"));
  writeFileSync(join(tree, "test", "fixture", "needs.test.ts"), `import { describe, it } from "node:test";
import { requireTools } from ${JSON.stringify(HELPER)};
describe("needs tshark", { skip: requireTools(["tshark"], { why: "fixture layer" }) }, () => { it("runs", () => {}); });
`);
  const run = (ci: string | undefined) => {
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: empty };
    delete env.CI;
    delete env.NODE_TEST_CONTEXT; // else the inner runner reports to ours, not to its stdout
    if (ci !== undefined) env.CI = ci;
    return spawnSync(process.execPath, [RUN, "fixture"], { cwd: tree, env, encoding: "utf8" });
  };
  const plain = run(undefined);
  assert.equal(plain.status, 0, plain.stdout + plain.stderr);
  assert.match(plain.stdout, /^ok 1 - needs tshark # SKIP missing tshark; to run it: apt-get install -y tshark$/m);
  assert.match(plain.stderr, /1 test group\(s\) did NOT run on this machine:\n {2}SKIP fixture layer: missing tshark; to run it: apt-get install -y tshark/);
  const ci = run("true");
  assert.equal(ci.status, 1, ci.stdout + ci.stderr);
  assert.match(ci.stdout + ci.stderr, /fixture layer: missing tshark; to run it: apt-get install -y tshark\. CI is set/);
});
