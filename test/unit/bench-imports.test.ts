// Benchmarks do not depend on the test tree: every import of a bench/ module
// resolves outside test/ (shared helpers live in host/lab/ and host/core/
// raw_exports.ts, where the tests take them from too). A benchmark that
// imported a test helper would change with it, and a published package's
// bench/ would need test/.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(join(dir, e.name)) : /\.(ts|mts)$/.test(e.name) ? [join(dir, e.name)] : []);
}

/** Relative module specifiers of static imports, re-exports and dynamic import()s. */
function specifiers(src: string): string[] {
  const out: string[] = [];
  for (const m of src.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)["'](\.{1,2}\/[^"']+)["']/gm)) out.push(m[1]);
  return out;
}

test("no bench/ module imports from test/", () => {
  const files = tsFiles(join(ROOT, "bench"));
  assert.ok(files.length > 10, "bench sources found");
  const bad: string[] = [];
  for (const f of files) {
    for (const s of specifiers(readFileSync(f, "utf8"))) {
      const target = relative(ROOT, resolve(dirname(f), s));
      if (target === "test" || target.startsWith("test/")) bad.push(`${relative(ROOT, f)} → ${s}`);
    }
  }
  assert.deepEqual(bad, []);
});

test("the scan sees the imports it must refuse", () => {
  assert.deepEqual(specifiers(`import { a } from "../../test/unit/x.ts";\nconst { B } = await import("../../test/y.ts");\nexport { c } from './z.ts';`), ["../../test/unit/x.ts", "../../test/y.ts", "./z.ts"]);
});
