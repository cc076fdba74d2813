// host/config/json_fast.ts: configs written as JSON skip the YAML parser when
// that gives the same value and the config is clean (load.ts parseConfig).
// Checked differentially: the same JSON read the fast way and forced through
// the YAML path (a leading comment line is not JSON) gives the same model, or
// the same refusal (the fast path hands every flawed config to the YAML path,
// whose messages name lines: the forced copy's lines are one further down).
// And the scan that guards JSON.parse: a name twice in one object (also when
// escaped) is the YAML path's refusal, strings full of brackets, quotes and
// backslashes do not confuse it, and nesting past MAX_DEPTH is not parsed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, MAX_DEPTH, MAX_VALUES, parseConfig, type LoadResult } from "../../host/config/load.ts";
import { fastJson } from "../../host/config/json_fast.ts";
import { baseConfig, hexKey, tempDir } from "../helpers/config_fixture.ts";
import { mutateDoc } from "../helpers/config_mutate.ts";
import { Rng, seedFromEnv } from "../helpers/gen.ts";

const dir = tempDir();
dir.write("k.key", "ab".repeat(36), 0o600);
const opts = { baseDir: dir.path, uid: 1000, env: {}, source: "x.json" };
const limits = { maxDepth: MAX_DEPTH, maxValues: MAX_VALUES };

type Outcome = { ok: LoadResult } | { issues: { path: string; message: string; line?: number }[] };
function load(text: string): Outcome {
  try {
    return { ok: parseConfig(text, opts) };
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return { issues: e.issues };
  }
}

test("differential: 3,000 mutated configs as JSON, the fast way and through the YAML path, give the same model or the same refusal", () => {
  const seed = seedFromEnv();
  const r = new Rng(seed);
  let fastCount = 0, accepted = 0;
  for (let i = 0; i < 3000; i++) {
    const doc = baseConfig();
    for (let k = r.int(0, 3); k > 0; k--) mutateDoc(r, doc);
    const json = r.bool(0.5) ? JSON.stringify(doc) : JSON.stringify(doc, null, 2);
    if (fastJson(json, limits)) fastCount++;
    const fast = load(json), slow = load("# through the YAML path\n" + json);
    const where = `seed ${seed} input ${i}: ${json.slice(0, 200)}`;
    if ("ok" in slow) {
      accepted++;
      assert.ok("ok" in fast, `${where}: the YAML path accepts, the fast way refuses: ${JSON.stringify("issues" in fast && fast.issues)}`);
      assert.deepEqual(fast.ok.config, slow.ok.config, where);
      assert.deepEqual(fast.ok.warnings.map((w) => ({ ...w, line: w.line })), slow.ok.warnings.map((w) => ({ ...w, line: w.line === undefined ? undefined : w.line - 1 })), where);
    } else {
      assert.ok("issues" in fast, `${where}: the YAML path refuses, the fast way accepts`);
      assert.deepEqual(fast.issues, slow.issues.map((x) => ({ ...x, line: x.line === undefined ? undefined : x.line - 1 })), where);
    }
  }
  assert.ok(fastCount > 1000 && accepted > 300, `the fast way was taken (${fastCount}) and configs were accepted (${accepted})`);
});

test("a name twice in one object is refused as the YAML path refuses it, escaped or not; the same name in two objects is fine", () => {
  const base = JSON.stringify(baseConfig());
  assert.ok(fastJson(base, limits), "the base config takes the fast way");
  for (const dup of [
    base.replace('{"version":1,', '{"version":1,"version":1,'),
    base.replace('{"version":1,', '{"version":1,"vers\\u0069on":1,'),
    base.replace('"name":"site-a"', '"name":"site-a","name":"site-b"'),
  ]) {
    assert.equal(fastJson(dup, limits), undefined, dup.slice(0, 80));
    const r = load(dup);
    assert.ok("issues" in r && /unique/i.test(r.issues[0].message), JSON.stringify(r));
  }
  assert.ok(fastJson('{"a":{"x":1},"b":{"x":2},"c":[{"x":1},{"x":2}]}', limits));
});

test("strings full of brackets, quotes, colons, commas and backslashes do not confuse the scan", () => {
  const tricky = ['{', '}', '[', ']', '\\"', '\\\\', ':', ',', '\\u0022', '{"a":1,"a":2}'].join(" ");
  const text = JSON.stringify({ a: tricky, b: [tricky, { c: tricky }], [tricky]: 1 });
  assert.deepEqual(fastJson(text, limits), JSON.parse(text));
  assert.equal(fastJson('{"a":"x", "a\\"":1, "a":2}', limits), undefined, "the escaped quote ends no name");
  assert.ok(fastJson('{"a\\\\":1,"a":2}', limits), "a\\\\ and a are two names");
});

test("what the fast way leaves to the YAML path: not an object, not JSON, too deep, too many values", () => {
  for (const t of ["[1,2]", "version: 1", "{'a': 1}", '{"a": 1} # c', '{"a":"\\x41"}', "   ", ""]) assert.equal(fastJson(t, limits), undefined, t);
  const deep = (n: number) => '{"a":' + "[".repeat(n) + "]".repeat(n) + "}";
  assert.ok(fastJson(deep(MAX_DEPTH), limits), "at the limit");
  assert.equal(fastJson(deep(MAX_DEPTH + 1), limits), undefined, "past it");
  assert.equal(fastJson(deep(100_000), limits), undefined, "100,000 brackets: refused by the scan, never parsed");
  const many = JSON.stringify({ a: new Array(MAX_VALUES).fill(0) });
  assert.equal(fastJson(many, limits), undefined);
  const r = load(deep(MAX_DEPTH + 1));
  assert.ok("issues" in r && /nested more than/.test(r.issues[0].message), JSON.stringify(r));
});

test("a clean config with inline keys read the fast way is the YAML path's model (keys and all)", () => {
  const doc = baseConfig();
  doc.peers[0].sas[0].key_in = hexKey(36);
  const json = JSON.stringify(doc);
  const fast = load(json), slow = load("#\n" + json);
  assert.ok("ok" in fast && "ok" in slow);
  assert.deepEqual(fast.ok.config, slow.ok.config);
});
