#!/usr/bin/env node
// Runs node's test runner over every *.test.ts below the named test folders
// (Node 20's --test does not expand globs itself).
import { readdirSync, statSync } from "node:fs";
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
const r = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-concurrency=1", ...files], { stdio: "inherit" });
process.exit(r.status ?? 1);
