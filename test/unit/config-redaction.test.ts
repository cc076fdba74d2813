// Key material never shows: not when a loaded config is logged or serialized,
// not in the debug summary, not in error messages, whatever the parser quotes.

import assert from "node:assert/strict";
import { test } from "node:test";
import { format, inspect } from "node:util";
import { KeyBytes } from "../../host/config/keys.ts";
import { ConfigError, parseConfig } from "../../host/config/load.ts";
import { describeConfig, scrub } from "../../host/config/redact.ts";
import { baseConfig, findKeyLeaks, hexKey, keysOf, toYaml } from "../helpers/config_fixture.ts";

const opts = { baseDir: "/", uid: 1000, env: {} };

test("the leak detector finds hex (any case, any 6-byte window) and base64", () => {
  const k = hexKey(36);
  assert.deepEqual(findKeyLeaks("nothing here", [k]), []);
  assert.equal(findKeyLeaks(`x ${k.slice(20, 34).toUpperCase()} y`, [k]).length, 1);
  assert.equal(findKeyLeaks(Buffer.from(k, "hex").toString("base64"), [k]).length, 1);
  assert.equal(findKeyLeaks(Buffer.from(k, "hex").toString("base64url"), [k]).length, 1);
});

test("KeyBytes prints as its length in inspect, format, JSON and String", () => {
  const k = hexKey(32);
  const key = KeyBytes.from(Buffer.from(k, "hex")) as KeyBytes;
  for (const out of [inspect(key), format("%o %O %s %j", key, key, key, key), JSON.stringify({ key }), String(key), `${key}`, key.join(), key.toLocaleString()]) {
    assert.deepEqual(findKeyLeaks(out, [k]), [], out);
    assert.match(out, /<key 32 bytes>/);
  }
  const part = key.subarray(4, 20);
  assert.ok(part instanceof KeyBytes, "derived views stay redacted");
  assert.deepEqual(findKeyLeaks(inspect(part), [k]), []);
});

test("a whole loaded config can be logged and serialized without keys", () => {
  const doc = baseConfig();
  const keys = keysOf(doc);
  const { config } = parseConfig(toYaml(doc), opts);
  for (const out of [inspect(config, { depth: null }), JSON.stringify(config), format("%o", config)]) {
    assert.deepEqual(findKeyLeaks(out, keys), []);
  }
});

test("describeConfig (the debug summary) shows every SA but no key bytes", () => {
  const doc = baseConfig();
  const keys = keysOf(doc);
  const { config } = parseConfig(toYaml(doc), opts);
  const text = describeConfig(config);
  assert.match(text, /in 0x00001001 out 0x00002001, keys 36\/36 bytes/);
  assert.match(text, /auth keys 32\/32 bytes/);
  assert.deepEqual(findKeyLeaks(text, keys), []);
});

test("scrub blanks hex and base64 runs but keeps what messages legitimately hold", () => {
  const k = hexKey(20);
  assert.equal(scrub(`bad ${k} here`), "bad [redacted] here");
  assert.equal(scrub(`bad 0x${k.toUpperCase()}`), "bad [redacted]");
  assert.equal(scrub(`b64 ${Buffer.from(hexKey(32), "hex").toString("base64")}`).includes("[redacted]"), true);
  const keep = "/work/main/examples/three-sites/hq.yaml:12: peers[0].sas[0].spi_in: duplicate SPI 0x000a0b01 (also fd00:1::/48, 2001:db8::1)";
  assert.equal(scrub(keep), keep);
  const tmp = "Cannot find module '/tmp/wesp-cfg-Ab3xYz/host/cli/does-not-exist.ts' imported from /tmp/wesp-cfg-Ab3xYz/host/cli/bench.ts";
  assert.equal(scrub(tmp), tmp);
});

test("a YAML syntax error on a key's line does not quote the line", () => {
  const doc = baseConfig();
  const keys = keysOf(doc);
  // An unterminated quoted key: yaml's own message would show the source line.
  const text = toYaml(doc).replace(/key_in: "?([0-9a-f]{72})"?/, 'key_in: "$1');
  assert.throws(() => parseConfig(text, opts), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.issues[0].path, "");
    assert.ok(e.issues[0].line !== undefined);
    assert.deepEqual(findKeyLeaks(e.message, keys), []);
    return true;
  });
});

test("a key placed in a wrong field is not echoed", () => {
  const doc = baseConfig();
  const k = hexKey(36);
  doc.peers[0].sas[0].suite = k; // enum error
  doc.peers[0].name = k; // pattern error (too long)
  doc.peers[0].sas[0].kee_out = k; // unknown field
  doc.node.wan[0].address = k; // not an address (checked after the schema)
  assert.throws(() => parseConfig(toYaml(doc), opts), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.deepEqual(findKeyLeaks(e.message, [k]), [], e.message);
    return true;
  });
  const doc2 = baseConfig();
  doc2.node.wan[0].address = k;
  doc2.peers[0].prefixes[0] = `${k}/8`;
  assert.throws(() => parseConfig(toYaml(doc2), opts), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.deepEqual(e.issues.map((i) => i.path), ["node.wan[0].address", "peers[0].prefixes[0]"]);
    assert.deepEqual(findKeyLeaks(e.message, [k]), [], e.message);
    return true;
  });
});
