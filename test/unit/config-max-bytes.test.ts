// `--max-config-bytes` (host/config/load.ts `maxBytes`, docs/config.md "Size
// limits"): a JSON hub over 4 MiB and over 200,000 values is refused by
// default and loads under a larger cap the operator gives, from text and from
// a file. Past 4 MiB only JSON is read: YAML, a name twice, deep nesting,
// broken JSON and too many values are still refused as a whole, saying why;
// a problem in a large config is named by its path (no line) without
// printing a key. The cap has a range, on the command line too.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { ConfigError, configCap, loadConfigSync, MAX_CONFIG_BYTES, MAX_CONFIG_BYTES_CEILING, MAX_VALUES, parseConfig, valueCap } from "../../host/config/load.ts";
import { maxConfigBytesArg } from "../../host/cli/config_arg.ts";
import { UsageError } from "../../host/cli/usage.ts";
import { baseConfig, findKeyLeaks, keysOf, tempDir, toYaml, wesp, type Doc } from "../helpers/config_fixture.ts";

const opts = { baseDir: "/", uid: 1000, env: {}, source: "hub.json" };
const MiB = 1 << 20;

/** A hub of `n` peers, each a /32 and one AES-256-GCM SA pair with inline keys (12 values, ≈ 300 bytes of JSON). */
function hub(n: number): Doc {
  const key = () => randomBytes(36).toString("hex");
  return {
    version: 1,
    node: { name: "hub", wan: [{ name: "inet", address: "192.0.2.1" }], local_prefixes: ["172.16.0.0/16"] },
    peers: Array.from({ length: n }, (_, i) => ({
      name: `p${i}`,
      address: `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`,
      prefixes: [`10.${128 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`],
      sas: [{ spi_in: 0x100000 + 2 * i, spi_out: 0x100001 + 2 * i, suite: "aes-256-gcm", key_in: key(), key_out: key() }],
    })),
  };
}

/** Values as the loader counts them (every object, array and scalar). */
function values(v: unknown): number {
  return 1 + (v !== null && typeof v === "object" ? Object.values(v).reduce((n: number, x) => n + values(x), 0) : 0);
}

/** `doc` as JSON padded with trailing blanks (still one JSON object) to just over 4 MiB: the large path, cheaply. */
function padded(doc: Doc): string {
  const text = JSON.stringify(doc);
  return text + " ".repeat(MAX_CONFIG_BYTES + 1 - text.length);
}

function refusal(f: () => unknown): ConfigError {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `not a ConfigError: ${(e as Error)?.stack}`);
    return e;
  }
  assert.fail("accepted");
}

const PEERS = 17_500;
const big = hub(PEERS);
const bigText = JSON.stringify(big);

test("a JSON hub over 4 MiB and 200,000 values: refused by default, naming the option; loaded under a larger cap, every peer", () => {
  const size = Buffer.byteLength(bigText);
  assert.ok(size > MAX_CONFIG_BYTES && size < 8 * MiB, `${size} bytes`);
  assert.ok(values(big) > MAX_VALUES && values(big) < valueCap(8 * MiB), `${values(big)} values`);
  const e = refusal(() => parseConfig(bigText, opts));
  assert.deepEqual(e.issues.map((i) => [i.path, i.message]), [["", `is ${size} bytes; a config is at most 4194304 (4 MiB): a JSON config may be larger with --max-config-bytes, up to 67108864 (docs/config.md)`]]);

  const { config, warnings } = parseConfig(bigText, { ...opts, maxBytes: 8 * MiB });
  assert.deepEqual(warnings, []);
  assert.equal(config.peers.length, PEERS);
  const last = config.peers[PEERS - 1];
  assert.equal(last.name, `p${PEERS - 1}`);
  assert.equal(last.sas[0].spiIn, 0x100000 + 2 * (PEERS - 1));
  assert.equal(Buffer.from(last.sas[0].keyOut!).toString("hex"), big.peers[PEERS - 1].sas[0].key_out);
  // a cap that does not hold it
  assert.match(refusal(() => parseConfig(bigText, { ...opts, maxBytes: size - 1 })).issues[0].message, new RegExp(`^is ${size} bytes; a config is at most ${size - 1} \\(`));
});

test("from a file: read up to the cap and no further; the cap reads it, with the inline-key mode warning and no line", () => {
  const dir = tempDir();
  try {
    const file = dir.write("hub.json", bigText, 0o644);
    const e = refusal(() => loadConfigSync(file, opts));
    assert.deepEqual(e.issues.map((i) => [i.path, i.message]), [["", "cannot read the config file (EFBIG): it is over 4194304 bytes (4 MiB); a JSON config may be larger with --max-config-bytes, up to 67108864 (docs/config.md)"]]);
    const { config, warnings } = loadConfigSync(file, { ...opts, maxBytes: 6 * MiB });
    assert.equal(config.peers.length, PEERS);
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    assert.equal(warnings[0].path, "");
    assert.equal(warnings[0].line, undefined);
    assert.match(warnings[0].message, /with inline keys \(peers\[0\]\.sas\[0\]\.key_in and 34999 more\) is readable by group or others \(mode 0644\)/);
    // a device that never ends stops at the ceiling too
    const z = refusal(() => loadConfigSync("/dev/zero", { ...opts, maxBytes: MAX_CONFIG_BYTES_CEILING }));
    assert.deepEqual(z.issues.map((i) => i.message), ["cannot read the config file (EFBIG): it is over 67108864 bytes (64 MiB); no config may be larger"]);
  } finally {
    dir.remove();
  }
});

test("past 4 MiB only JSON is read: YAML, a comment, a name twice, deep nesting, broken JSON and too many values are refused as a whole, saying why", () => {
  const cap = { ...opts, maxBytes: 16 * MiB };
  const says = (text: string, why: RegExp, line?: number) => {
    assert.ok(Buffer.byteLength(text) > MAX_CONFIG_BYTES);
    const e = refusal(() => parseConfig(text, cap));
    assert.equal(e.issues.length, 1);
    assert.equal(e.issues[0].path, "");
    assert.match(e.issues[0].message, /, over 4194304 \(4 MiB\), where a config is read only as JSON \(one object, no field name twice, at most 32 levels deep and 800000 values\), and /);
    assert.match(e.issues[0].message, why);
    assert.equal(e.issues[0].line, line, e.issues[0].message);
    assert.deepEqual(findKeyLeaks(e.issues[0].message, keysOf(big)), []);
  };
  const yaml = toYaml(big);
  says(yaml, /it does not start with a JSON object$/);
  says("# a comment\n" + bigText, /it does not start with a JSON object$/);
  says(bigText.replace('{"version":1,', '{"version":1,"version":1,'), /an object has a field name twice$/, 1);
  says(bigText.replace('{"version":1,', '{"version":1,"vers\\u0069on":1,'), /an object has a field name twice$/, 1);
  const deep = (n: number) => padded({ ...baseConfig(), x: JSON.parse("[".repeat(n) + "]".repeat(n)) });
  says(deep(40), /it nests more than 32 levels deep$/, 1);
  // a comma missing between two fields on line 7: V8 names the position of what follows it
  const pretty = JSON.stringify(big, null, 1).split("\n");
  assert.match(pretty[6], /,$/);
  pretty[6] = pretty[6].slice(0, -1);
  says(pretty.join("\n"), /it is not valid JSON$/, 8);
  says('{"a": "never ends' + " ".repeat(MAX_CONFIG_BYTES), /a string never ends$/, 1);
  says(JSON.stringify({ a: new Array(2_200_000).fill(0) }), /it has more than 800000 values$/);
  // the JSON given is an object, but the config's checks still run: an array is not one
  says(" ".repeat(MAX_CONFIG_BYTES) + "[1]", /it does not start with a JSON object$/);
});

test("a problem in a large config is named by its path, without a line and without the key", () => {
  const cap = { ...opts, maxBytes: 8 * MiB };
  const short = hub(3);
  short.peers[2].sas[0].key_out = short.peers[2].sas[0].key_out.slice(0, 40);
  const e = refusal(() => parseConfig(padded(short), cap));
  assert.deepEqual(e.issues.map((i) => [i.path, i.line]), [["peers[2].sas[0].key_out", undefined]]);
  assert.match(e.issues[0].message, /AES-256-GCM needs 36 bytes/);
  assert.deepEqual(findKeyLeaks(e.issues.map((i) => `${i.path}: ${i.message}`).join("\n"), keysOf(short)), []);

  const dup = hub(3);
  dup.peers[2].sas[0].spi_in = dup.peers[0].sas[0].spi_in;
  const d = refusal(() => parseConfig(padded(dup), cap));
  assert.deepEqual(d.issues.map((i) => [i.path, i.line]), [["peers[2].sas[0].spi_in", undefined]]);
  assert.match(d.issues[0].message, /^duplicate SPI 0x00100000 \(also peers\[0\]\.sas\[0\]\.spi_in\)$/);

  const schema = hub(3);
  schema.peers[1].sas[0].sute = "aes-256-gcm";
  assert.deepEqual(refusal(() => parseConfig(padded(schema), cap)).issues.map((i) => [i.path, i.line]), [["peers[1].sas[0].sute", undefined]]);
});

test("the cap's range: 4 to 64 MiB; in code a RangeError, on the command line exit 2; values grow with it", () => {
  assert.equal(configCap(undefined), MAX_CONFIG_BYTES);
  assert.equal(configCap(MAX_CONFIG_BYTES_CEILING), 64 * MiB);
  for (const bad of [MAX_CONFIG_BYTES - 1, MAX_CONFIG_BYTES_CEILING + 1, NaN, 5.5 * MiB + 0.5, -1]) assert.throws(() => configCap(bad), RangeError, String(bad));
  assert.throws(() => parseConfig("{}", { ...opts, maxBytes: 1 }), RangeError);
  assert.equal(valueCap(MAX_CONFIG_BYTES), MAX_VALUES);
  assert.equal(valueCap(40 * MiB), 2_000_000);

  assert.equal(maxConfigBytesArg(undefined, "up"), undefined);
  assert.equal(maxConfigBytesArg("40MiB", "up"), 40 * MiB);
  assert.equal(maxConfigBytesArg("4096KiB", "up"), 4 * MiB);
  assert.equal(maxConfigBytesArg(String(40 * MiB), "up"), 40 * MiB);
  for (const bad of ["3MiB", "65MiB", "1e9", "-5", "40 MiB", "40mb", "0x500000", "", "99999999999999"]) {
    assert.throws(() => maxConfigBytesArg(bad, "up"), (e: unknown) => e instanceof UsageError && /--max-config-bytes: a size from 4194304 \(4MiB\) to 67108864 \(64MiB\) bytes/.test(e.message), bad);
  }

  const dir = tempDir();
  try {
    const file = dir.write("hub.json", bigText);
    const no = wesp(["check", file]);
    assert.equal(no.code, 2, no.stderr);
    assert.match(no.stderr, /cannot read the config file \(EFBIG\): it is over 4194304 bytes \(4 MiB\); a JSON config may be larger with --max-config-bytes/);
    const bad = wesp(["check", "--max-config-bytes", "3MiB", file]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--max-config-bytes: a size from 4194304/);
    const ok = wesp(["check", "--max-config-bytes", "6MiB", file]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, new RegExp(`ok \\(node hub, ${PEERS} peers, ${PEERS} SAs\\)`));
    assert.deepEqual(findKeyLeaks(no.stderr + bad.stderr + ok.stdout + ok.stderr, keysOf(big)), []);
  } finally {
    dir.remove();
  }
});
