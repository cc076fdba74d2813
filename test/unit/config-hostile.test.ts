// Hostile config texts the fuzzer (test/fuzz/config-fuzz.test.ts) found or
// aims at, kept as regression cases: each must be refused with a ConfigError
// naming a field path (or "" for the whole file), quickly, without a crash,
// a stack trace, a process warning or a change to Object.prototype.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { ConfigError, loadConfigSync, MAX_CONFIG_BYTES, parseConfig } from "../../host/config/load.ts";
import { findKeyLeaks, REPO } from "../helpers/config_fixture.ts";

const opts = { baseDir: "/", uid: 1000, env: {} };
const HQ = readFileSync(join(REPO, "examples/three-sites/hq.yaml"), "utf8");

/** Parse `text`; it must be refused with a ConfigError (anything else is a crash), within `ms`. */
function refused(text: string, ms = 5000): ConfigError {
  const warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);
  process.on("warning", onWarning);
  const t0 = performance.now();
  try {
    parseConfig(text, opts);
  } catch (e) {
    assert.ok(e instanceof ConfigError, `not a ConfigError: ${(e as Error)?.stack}`);
    assert.ok(performance.now() - t0 < ms, `took ${performance.now() - t0} ms`);
    assert.ok(e.issues.length > 0);
    for (const i of e.issues) assert.doesNotMatch(i.message, /\n\s+at /, "no stack trace");
    return e;
  } finally {
    process.off("warning", onWarning);
    assert.deepEqual(Object.keys(Object.prototype), []);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  }
  assert.fail("accepted");
}

test("block sequences nested thousands deep on one line: refused (the parser would abort the process: V8 'RegExpCompiler Allocation failed')", () => {
  for (const n of [3000, 100_000, 1_000_000]) {
    const e = refused("- ".repeat(n) + "x\n");
    assert.deepEqual(e.issues.map((i) => i.path), [""]);
    assert.match(e.issues[0].message, /nested too deeply/);
  }
});

test("block mappings nested by indentation: refused, not a RangeError from the parser", () => {
  const text = "node:\n" + Array.from({ length: 2000 }, (_, i) => `${" ".repeat(i + 2)}a:`).join("\n") + " 1\npeers: []\n";
  const e = refused(text);
  assert.deepEqual(e.issues.map((i) => i.path), [""]);
  assert.match(e.issues[0].message, /nested too deeply/);
});

test("flow brackets nested deeply: refused; 33 to 128 levels name the path where the 33rd begins", () => {
  for (const n of [1000, 50_000]) assert.match(refused(`node: ${"[".repeat(n)}${"]".repeat(n)}\npeers: []\n`).issues[0].message, /nested too deeply/);
  const e = refused(`node: {name: a, wan: ${"[".repeat(40)}${"]".repeat(40)}}\npeers: []\n`);
  assert.deepEqual(e.issues.map((i) => i.path), [`node.wan${"[0]".repeat(31)}`]);
  assert.match(e.issues[0].message, /nested more than 32 levels deep/);
});

test("a billion-laughs alias bomb is bounded", () => {
  let bomb = `a: &a [${Array(9).fill('"lol"').join(",")}]\n`;
  const ls = "abcdefghi";
  for (let i = 1; i < 9; i++) bomb += `${ls[i]}: &${ls[i]} [${Array(9).fill(`*${ls[i - 1]}`).join(",")}]\n`;
  const e = refused(`${bomb}node: *i\npeers: []\n`, 3000);
  assert.deepEqual(e.issues.map((i) => i.path), [""]);
  assert.match(e.issues[0].message, /more than 200000 values \(counting each use of an alias\)/);
  // Deep through aliases: each alias nests the one before, depth 8 × 8
  let deep = `a0: &a0 ${"[".repeat(8)}1${"]".repeat(8)}\n`;
  for (let i = 1; i < 8; i++) deep += `a${i}: &a${i} ${"[".repeat(8)}*a${i - 1}${"]".repeat(8)}\n`;
  assert.match(refused(`${deep}node: *a7\npeers: []\n`).issues[0].message, /nested more than 32 levels deep/);
});

test("a list or map as a field name: refused naming the map, with no process warning", () => {
  const e = refused(HQ.replace("    mode: tunnel\n", "    ? [a, b]\n    : 1\n"));
  assert.deepEqual(e.issues.map((i) => i.path), ["peers[0]"]);
  assert.match(e.issues[0].message, /field whose name is not a plain string/);
  assert.deepEqual(refused(HQ.replace("    mode: tunnel\n", "    ? {a: 1}\n    : 1\n")).issues.map((i) => i.path), ["peers[0]"]);
  assert.deepEqual(refused(HQ.replace("    mode: tunnel\n", "    ? \n    : 1\n")).issues.map((i) => i.path), ["peers[0]"]);
});

test("__proto__ and constructor as field names: unknown fields, Object.prototype untouched", () => {
  const cases: [string, string][] = [
    [HQ.replace("node:\n", "node:\n  __proto__: {polluted: 1}\n"), "node.__proto__"],
    [HQ.replace("    mode: tunnel\n", "    mode: tunnel\n    __proto__: {mtu: 5, polluted: 1}\n"), "peers[0].__proto__"],
    [HQ.replace("    mode: tunnel\n", "    constructor: {prototype: {polluted: 1}}\n"), "peers[0].constructor"],
    ['{"__proto__": {"polluted": 1}, "node": {"name": "a", "wan": [{"name": "w", "address": "192.0.2.1"}]}, "peers": []}', "__proto__"],
  ];
  for (const [text, path] of cases) {
    const e = refused(text);
    assert.ok(e.issues.some((i) => i.path === path && /unknown field/.test(i.message)), JSON.stringify(e.issues));
  }
});

test("a text over 4 MiB is refused before parsing", () => {
  const e = refused(HQ + `# ${"x".repeat(MAX_CONFIG_BYTES)}\n`, 2000);
  assert.deepEqual(e.issues.map((i) => i.path), [""]);
  assert.match(e.issues[0].message, /at most 4194304 \(4 MiB\)/);
});

test("a config 'file' that never ends (/dev/zero) is refused after 4 MiB, not read until memory runs out", () => {
  const t0 = performance.now();
  assert.throws(() => loadConfigSync("/dev/zero", opts), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.deepEqual(e.issues.map((i) => [i.path, i.message]), [["", "cannot read the config file (EFBIG): it is over 4194304 bytes (4 MiB); a JSON config may be larger with --max-config-bytes, up to 67108864 (docs/config.md)"]]);
    return true;
  });
  assert.ok(performance.now() - t0 < 5000);
});

test("an SPI of 400 hex digits: the message reads 'an integer or a string'", () => {
  const e = refused(HQ.replace("spi_in: 0x000a0b01", `spi_in: 0x${"f".repeat(400)}`));
  assert.deepEqual(e.issues.map((i) => [i.path, i.message]), [["peers[0].sas[0].spi_in", "must be an integer or a string"]]);
});

test("a key that a stray character turned into part of a field name is scrubbed from the path", () => {
  const key = "b5da255941044a156e0eb3c16067acf283245f385d51b8423b4bd73efb1361b91fbdbfc5";
  // 14 hex digits, a non-hex byte, the rest: each piece under the 16 digits that scrub() catches in messages
  const text = HQ.replace(/ {8}key_out: "[0-9a-f]+"\n/, `        "key_out: ${key.slice(0, 14)}\u00ff${key.slice(14, 28)}\u00ff${key.slice(28)}": 1\n`);
  assert.notEqual(text, HQ);
  const e = refused(text);
  assert.deepEqual(findKeyLeaks(e.issues.map((i) => `${i.path}: ${i.message}`).join("\n"), [key]), []);
  assert.ok(e.issues.some((i) => /^peers\[0\]\.sas\[0\]\.key_out: \[redacted\]/.test(i.path) && /unknown field/.test(i.message)), JSON.stringify(e.issues));
});

test("a YAML syntax error does not quote the token: a key split by a stray character is not printed", () => {
  const key = "b5da255941044a156e0eb3c16067acf283245f385d51b8423b4bd73efb1361b91fbdbfc5";
  const split = `${key.slice(0, 14)}\`${key.slice(15, 29)}\`${key.slice(30)}`; // pieces under scrub()'s 16 digits
  const e = refused(`{"node": {"name": "a"}}} "${split}"\n`);
  assert.deepEqual(e.issues.map((i) => [i.path, i.message]), [
    ["", "not valid YAML/JSON: Unexpected flow-map-end token in YAML stream"],
    ["", "not valid YAML/JSON: Unexpected double-quoted-scalar token in YAML stream"],
  ]);
  assert.deepEqual(findKeyLeaks(e.message, [key]), []);
});

test("-0 is read as 0: the model holds no negative zero", () => {
  const { config } = parseConfig(HQ.replace("replay_window: 1024", "replay_window: -0").replace("gre: { key: 42 }", "gre: { key: -0.0 }"), opts);
  assert.ok(Object.is(config.peers[0].sas[0].replayWindow, 0));
  assert.ok(Object.is(config.peers[1].gre.key, 0));
});

test("a value a YAML tag turns into something else (!!binary, !!set, !!omap, !!timestamp) is refused where it stands, not reported as its inherited methods", () => {
  for (const [tagged, path] of [
    ["gre: !!binary aGVsbG8=", "peers[1].gre"],
    ["gre: !!set {a, b}", "peers[1].gre"],
    ["gre: !!omap [a: 1]", "peers[1].gre"],
    ["gre: !!timestamp 2001-12-14", "peers[1].gre"],
  ]) {
    const e = refused(HQ.replace("gre: { key: 42 }", tagged));
    assert.deepEqual(e.issues.map((i) => i.path), [path], tagged);
    assert.match(e.issues[0].message, /must be a plain value/);
  }
});

test("!!omap and !!pairs: what they hold is walked like a mapping, named as it converts (config fuzz, seed 1273788196)", () => {
  // Found by the config fuzzer: nesting under an !!omap was never walked (its items are
  // pairs), so the 33rd level was named by the pair's index, a path the input does not have.
  const omap = (n: number): string => (n === 0 ? "1" : `!!omap [{a: ${omap(n - 1)}}]`);
  const e = refused(`node: {name: a, wan: ${omap(40)}}\npeers: []\n`);
  assert.deepEqual(e.issues.map((i) => i.path), [`node.wan${".a".repeat(31)}`]);
  assert.match(e.issues[0].message, /nested more than 32 levels deep/);
  const pairs = (n: number): string => (n === 0 ? "1" : `!!pairs [{a: ${pairs(n - 1)}}]`);
  const p = refused(`node: {name: a, wan: ${pairs(20)}}\npeers: []\n`);
  assert.deepEqual(p.issues.map((i) => i.path), [`node.wan${"[0].a".repeat(16)}`]); // the first value past 32 levels
  // a field name that is not a plain string, inside either
  assert.deepEqual(refused("node: {name: a, wan: !!omap [{? [x]: 1}]}\npeers: []\n").issues.map((i) => i.path), ["node.wan"]);
  assert.deepEqual(refused("node: {name: a, wan: !!pairs [{? [x]: 1}]}\npeers: []\n").issues.map((i) => i.path), ["node.wan[0]"]);
});
