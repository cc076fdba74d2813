#!/usr/bin/env node
// Runs node's test runner over every *.test.ts below the named test folders
// (Node 20's --test does not expand globs itself).
//
// Nothing is skipped silently: every skip goes through test/helpers/require.ts,
// which logs it to $WESP_TEST_SKIP_LOG; the skips are printed again here at the
// end, with what installs the missing tools. With CI set a missing tool fails
// its file instead, and any skip that reached the log still fails the run.
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";

const dirs = process.argv.slice(2);
if (dirs.length === 0) dirs.push("unit", "fuzz");
const files = [];
const walk = (d) => {
  for (const n of readdirSync(d).sort()) {
    const p = join(d, n);
    if (statSync(p).isDirectory()) walk(p);
    else if (n.endsWith(".test.ts")) files.push(p);
  }
};
for (const d of dirs) {
  try { walk(join("test", d)); } catch (e) { if (e.code !== "ENOENT") throw e; }
}
if (files.length === 0) {
  console.error(`no test files under test/{${dirs.join(",")}}`);
  process.exit(1);
}
const logDir = mkdtempSync(join(tmpdir(), "wesp-test-skips-"));
const skipLog = join(logDir, "skips");
const r = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-concurrency=1", ...files], {
  stdio: "inherit",
  env: { ...process.env, WESP_TEST_SKIP_LOG: skipLog },
});
let skips = [];
try { skips = [...new Set(readFileSync(skipLog, "utf8").split("\n").filter(Boolean))]; } catch (e) { if (e.code !== "ENOENT") throw e; }
rmSync(logDir, { recursive: true, force: true });
const ci = !["", "0", "false", undefined].includes(process.env.CI?.toLowerCase());
if (skips.length) {
  console.error(`\n${skips.length} test group(s) did NOT run on this machine:`);
  for (const s of skips) console.error(`  ${s}`);
  if (ci) console.error("CI is set: a skipped test group fails the run.");
}
process.exit(r.status === 0 && ci && skips.length ? 1 : r.status ?? 1);
