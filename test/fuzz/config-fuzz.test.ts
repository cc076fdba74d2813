// 100,000 mutated configs through `wesp check`'s validation (parseConfig, what
// loadConfigSync runs on a file's text), and a few hundred of them through the
// real `wesp check --json` child process, which must say exactly what the
// in-process loader says. For every input: no exception but a ConfigError, no
// stack trace, no key material in any message; a refusal names a path the
// input has (or a schema field missing from an object it has, or "" for the
// whole file); an acceptance is a valid model: its invariants hold and, written
// back as a document, it loads to the same model. WESP_SEED=n replays a run;
// WESP_CONFIG_FUZZ=n sets the count.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { isMap, parse, parseDocument } from "yaml";
import { loadConfigSync, parseConfig, ConfigError, type LoadResult } from "../../host/config/load.ts";
import type { Config, ConfigIssue } from "../../host/config/model.ts";
import { SUITES } from "../../host/config/suites.ts";
import { baseConfig, findKeyLeaks, keysOf, REPO, tempDir, WESP_BIN } from "../helpers/config_fixture.ts";
import { configToDoc, mutateDoc, mutateText, namablePaths, serialize } from "../helpers/config_mutate.ts";
import { Rng, seedFromEnv } from "../helpers/gen.ts";
import { readFileSync, readdirSync } from "node:fs";

const COUNT = Number(process.env.WESP_CONFIG_FUZZ ?? 100_000);
const CLI_COUNT = Number(process.env.WESP_CONFIG_FUZZ_CLI ?? 200);
const seed = seedFromEnv();

/* eslint-disable @typescript-eslint/no-explicit-any */
type Doc = any;

const dir = tempDir();
// Key files the mutations may point at (POOL.key_in_file): a good one, one readable by others.
dir.write("k.key", "ab".repeat(36), 0o600);
dir.write("open.key", "cd".repeat(36), 0o644);
const opts = { baseDir: dir.path, uid: 1000, env: {}, source: "fuzz.yaml" };

const examples = readdirSync(join(REPO, "examples/three-sites")).filter((f) => f.endsWith(".yaml"))
  .map((f) => parse(readFileSync(join(REPO, "examples/three-sites", f), "utf8")));
const seeds: Doc[] = [...examples, baseConfig(), baseConfig(), baseConfig()];
const allKeys = seeds.flatMap((d) => keysOf(d));

interface Input {
  text: string;
  /** The document as the loader reads it, when known without parsing the text again. */
  raw?: Doc;
}

/** One input: a seed, 1-3 structural mutations (usually), serialized, and sometimes a text mutation. */
function makeInput(r: Rng): Input {
  const doc = structuredClone(r.pick(seeds));
  const structural = r.bool(0.85) ? r.int(1, 3) : 0;
  for (let i = 0; i < structural; i++) mutateDoc(r, doc);
  const { text, plain } = serialize(r, doc);
  if (structural === 0 || r.bool(0.2)) return { text: mutateText(r, text) };
  return { text, raw: plain ? JSON.parse(JSON.stringify(doc)) : undefined };
}

const isSubset = (a: Uint8Array) => a.length === 4 || a.length === 16;

/** Invariants of an accepted model that do not rely on the checks that produced it. */
function checkModel(c: Config): void {
  const n = c.node;
  assert.match(n.name, /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/);
  assert.ok(n.wan.length >= 1 && n.wan.length <= 16);
  assert.equal(new Set(n.wan.map((w) => w.name)).size, n.wan.length);
  for (const w of n.wan) {
    assert.ok(Number.isInteger(w.port) && w.port >= 1 && w.port <= 65535);
    assert.ok(isSubset(w.address.bytes) && w.address.bytes.length === (w.address.family === 4 ? 4 : 16));
  }
  assert.ok(n.tun.name.length >= 1 && n.tun.name.length <= 15);
  assert.ok(Number.isInteger(n.tun.mtu) && n.tun.mtu >= 576 && n.tun.mtu <= 65535);
  assert.ok(Number.isInteger(n.workers) && n.workers >= 1);
  assert.ok(n.control.socket.startsWith("/") && Buffer.byteLength(n.control.socket) <= 107);
  const spis = new Set<number>();
  for (const p of c.peers) {
    assert.match(p.name, /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/);
    assert.notEqual(p.name, n.name);
    assert.equal(n.wan[p.wanIndex]?.name, p.wan);
    assert.equal(p.address.family, n.wan[p.wanIndex].address.family);
    assert.ok(p.prefixes.length >= 1);
    for (const q of p.prefixes) {
      const bits = q.family === 4 ? 32 : 128;
      assert.ok(q.length >= 0 && q.length <= bits);
      for (let b = q.length; b < bits; b++) assert.equal((q.bytes[b >> 3] >> (7 - (b & 7))) & 1, 0, `${q.text}: host bit ${b}`);
    }
    const plain = p.mode === "ipip" || p.mode === "gre";
    if (plain) { assert.equal(p.sas.length, 0); assert.ok(n.wan[p.wanIndex].trusted); assert.equal(p.natT, false); }
    else assert.ok((p.sas.length >= 1 && p.sas.length <= 2) || (p.sas.length === 0 && p.ike !== undefined));
    if (p.natT) assert.equal(p.encap, "udp");
    if (p.keepalive > 0) assert.ok(p.natT);
    for (const sa of p.sas) {
      const info = SUITES[sa.suite];
      assert.ok(info);
      for (const spi of [sa.spiIn, sa.spiOut]) assert.ok(Number.isInteger(spi) && spi >= 256 && spi <= 0xffffffff);
      assert.ok(!spis.has(sa.spiIn), "spi_in unique");
      spis.add(sa.spiIn);
      assert.equal(sa.keyIn.length, info.keyBytes);
      assert.equal(sa.keyOut.length, info.keyBytes);
      assert.equal(sa.authKeyIn?.length ?? 0, info.authKeyBytes);
      assert.equal(sa.authKeyOut?.length ?? 0, info.authKeyBytes);
      assert.ok(sa.replayWindow === 0 || (sa.replayWindow >= 32 && sa.replayWindow <= 65536));
      for (const v of Object.values(sa.lifetime)) assert.ok(Number.isInteger(v) && v >= 1);
    }
  }
}

/** The model written back as a document loads to the same model. */
function checkRoundTrip(c: Config): void {
  // configToDoc does not write `ike` blocks back yet (no example has one, so mutations rarely make a valid one).
  if (c.peers.some((p) => p.ike !== undefined)) return;
  const again = parseConfig(JSON.stringify(configToDoc(c)), opts).config;
  assert.deepEqual({ ...again, source: "" }, { ...c, source: "" });
}

/** A refused input's issues: each names a path of the input (or "" for the whole file). */
function checkIssues(input: Input, issues: ConfigIssue[], warnings: ConfigIssue[]): void {
  assert.ok(issues.length > 0, "a refusal has at least one issue");
  let namable: Set<string> | undefined;
  let partly = false;
  for (const i of [...issues, ...warnings]) {
    assert.equal(typeof i.path, "string");
    assert.ok(typeof i.message === "string" && i.message.length > 0);
    assert.doesNotMatch(i.message, /\n\s+at |Error:/, "no stack trace");
    if (i.line !== undefined) assert.ok(Number.isInteger(i.line) && i.line >= 1);
    if (i.path === "") continue;
    if (!namable) {
      if (input.raw !== undefined) namable = namablePaths(input.raw);
      else {
        const doc = parseDocument(input.text, { uniqueKeys: true, logLevel: "error" });
        try {
          namable = namablePaths(doc.toJS({ maxAliasCount: 100 }));
        } catch {
          // Too many aliases to expand (the loader named a path before expanding them): hold
          // the path's first field against the document's top level instead.
          partlyChecked++;
          partly = true;
          namable = new Set(isMap(doc.contents) ? doc.contents.items.map((p) => String((p.key as { value?: unknown })?.value)) : []);
        }
      }
    }
    assert.ok(namable.has(i.path) || (partly && [...namable].some((p) => i.path.startsWith(p))), `issue path ${JSON.stringify(i.path)} is not in the input (${i.message})`);
  }
  const printed = [...issues, ...warnings].map((i) => `${i.path}: ${i.message}`).join("\n");
  const leaks = findKeyLeaks(printed, allKeys);
  assert.deepEqual(leaks, [], `no key material in messages: ${printed.slice(0, 300)}`);
}

/** Refusals whose path could only be held against the input's top level (alias bombs). */
let partlyChecked = 0;

interface Outcome { accepted: boolean; result?: LoadResult; error?: ConfigError }

function runOne(text: string): Outcome {
  try {
    return { accepted: true, result: parseConfig(text, opts) };
  } catch (e) {
    if (e instanceof ConfigError) return { accepted: false, error: e };
    throw e;
  }
}

test(`${COUNT} mutated configs through wesp check's validation (seed ${seed})`, { timeout: 600_000 }, () => {
  const r = new Rng(seed);
  const t0 = performance.now();
  let accepted = 0, slowest = 0;
  const messages = new Map<string, number>();
  const failures: string[] = [];
  for (let n = 0; n < COUNT; n++) {
    const input = makeInput(r);
    const text = input.text;
    // WESP_CONFIG_FUZZ_TRACE=FILE: each input is written there first, for one that hangs or aborts.
    if (process.env.WESP_CONFIG_FUZZ_TRACE) writeFileSync(process.env.WESP_CONFIG_FUZZ_TRACE, text);
    const t = performance.now();
    try {
      const o = runOne(text);
      if (o.accepted) {
        accepted++;
        checkModel(o.result!.config);
        checkRoundTrip(o.result!.config);
        checkIssues(input, [{ path: "", message: "ok" }], o.result!.warnings);
      } else {
        checkIssues(input, o.error!.issues, o.error!.warnings);
        const m = o.error!.issues[0].message.replace(/\d+|"[^"]*"/g, "#").slice(0, 40);
        messages.set(m, (messages.get(m) ?? 0) + 1);
      }
    } catch (e) {
      if (failures.length < 5) {
        const file = join(tmpdir(), `wesp-config-fuzz-${seed}-${n}.txt`); // outlives the run's temp dir
        writeFileSync(file, text);
        failures.push(`#${n} (kept in ${file}): ${(e as Error).stack?.split("\n").slice(0, 4).join(" | ")}`);
      }
    }
    slowest = Math.max(slowest, performance.now() - t);
    assert.deepEqual(Object.keys(Object.prototype), [], "Object.prototype polluted");
  }
  const secs = (performance.now() - t0) / 1000;
  console.log(`config fuzz: ${COUNT} inputs in ${secs.toFixed(1)} s, ${accepted} accepted, ${COUNT - accepted} refused (${messages.size} kinds), slowest ${slowest.toFixed(0)} ms, ${partlyChecked} paths checked at the top level only (alias bombs), seed ${seed}`);
  assert.deepEqual(failures, [], `WESP_SEED=${seed} replays`);
  // The mutations must reach every stage: some inputs are accepted, many kinds of refusal.
  assert.ok(accepted > COUNT / 100, `only ${accepted} accepted`);
  assert.ok(messages.size > 50, `only ${messages.size} kinds of refusal`);
});

test(`${CLI_COUNT} of them through the wesp check child process say what the in-process loader says`, { timeout: 1_200_000 }, async () => {
  const r = new Rng(seed ^ 0x5eed);
  const t0 = performance.now();
  const plain = (l: ConfigIssue[]) => l.map(({ path, message, line }) => ({ path, message, ...(line !== undefined ? { line } : {}) }));
  const one = async (n: number, text: string) => {
    const file = dir.write(`cli-${n}.yaml`, text, 0o600);
    let expected: { ok: boolean; errors: ConfigIssue[]; warnings: ConfigIssue[] };
    try {
      const { warnings } = loadConfigSync(file);
      expected = { ok: true, errors: [], warnings };
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      expected = { ok: false, errors: e.issues, warnings: e.warnings };
    }
    const cli = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [WESP_BIN, "check", "--json", file], { timeout: 120_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === "number" ? err.code : null) : 0, stdout, stderr }));
    });
    assert.equal(cli.code, expected.ok ? 0 : 2, `#${n}: ${cli.stderr}`);
    assert.equal(cli.stderr, "", `#${n}: nothing on stderr (no stack trace, no warning)`);
    assert.deepEqual(JSON.parse(cli.stdout), { ok: expected.ok, errors: plain(expected.errors), warnings: plain(expected.warnings) }, `#${n}`);
    rmSync(file);
  };
  // Two at a time: the child's start-up (tsx), not the check, is the cost.
  const inputs = Array.from({ length: CLI_COUNT }, () => makeInput(r).text);
  let next = 0;
  const lane = async () => { while (next < inputs.length) { const n = next++; await one(n, inputs[n]); } };
  await Promise.all([lane(), lane()]);
  console.log(`config fuzz CLI: ${CLI_COUNT} child processes in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
});

test("cleanup", () => dir.remove());
