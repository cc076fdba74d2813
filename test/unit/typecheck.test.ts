// The whole tree type-checks (tsconfig.json: host/, bench/, test/, bin/, with
// noUnusedLocals). The tests run under tsx, which strips types without
// checking them, and `npm run build:js` compiles only what ships (host/,
// bin/ and the CLI's benches): without this, a type error in a test or a
// benchmark, or an import left unused, would pass every other layer.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

test("tsc --noEmit -p . reports nothing", () => {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  const r = spawnSync(process.execPath, [tsc, "--noEmit", "-p", "."], { cwd: ROOT, encoding: "utf8" });
  assert.equal(r.error, undefined, `tsc did not run: ${r.error}`);
  assert.equal(r.status, 0, `tsc found errors:\n${r.stdout}${r.stderr}`);
});
