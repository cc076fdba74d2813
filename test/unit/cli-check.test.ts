// `wesp check` as a child process: exit codes, FILE:LINE: FIELD: MESSAGE
// output, --json/-q/-v, and no key material in anything it prints.

import assert from "node:assert/strict";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { baseConfig, findKeyLeaks, hexKey, keysOf, REPO, tempDir, toYaml, wesp } from "../helpers/config_fixture.ts";

test("the shipped three-site example passes", () => {
  const dir = join(REPO, "examples/three-sites");
  for (const f of readdirSync(dir).filter((n) => n.endsWith(".yaml"))) {
    const r = wesp(["check", join(dir, f)]);
    assert.equal(r.code, 0, `${f}: ${r.stderr}`);
    assert.match(r.stdout, /: ok \(node [a-z-]+, 2 peers, [12] SAs?\)\n$/);
    // Only the mode warning for their (example) inline keys, when the checkout made them world-readable.
    if ((statSync(join(dir, f)).mode & 0o044) !== 0) assert.match(r.stderr, /^(warning: [^\n]*inline keys [^\n]* readable by group or others [^\n]*\n)?$/);
    else assert.equal(r.stderr, "");
  }
});

test("a bad config: exit 2, one FILE:LINE: FIELD: MESSAGE line per problem", () => {
  const dir = tempDir();
  try {
    const doc = baseConfig();
    doc.peers[0].sas[0].key_out = hexKey(20);
    doc.peers[1].sas[0].replay_window = 8;
    const text = toYaml(doc);
    const file = dir.write("site.yaml", text);
    const line = (s: string) => text.split("\n").findIndex((l) => l.includes(s)) + 1;
    const r = wesp(["check", file]);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, "");
    assert.equal(r.stderr, [
      `${file}:${line("key_out:")}: peers[0].sas[0].key_out: AES-256-GCM needs 36 bytes (32 key + 4 salt), got 20`,
      `${file}:${line("replay_window:")}: peers[1].sas[0].replay_window: must be 0 (off) or 32..65536, got 8`,
      `${file}: 2 errors`,
      "",
    ].join("\n"));
  } finally {
    dir.remove();
  }
});

test("an unreadable config file: exit 2", () => {
  const r = wesp(["check", "/nonexistent/wesp.yaml"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^\/nonexistent\/wesp\.yaml: cannot read the config file \(ENOENT\)$/m);
});

test("--json reports errors and warnings as data", () => {
  const dir = tempDir();
  try {
    const doc = baseConfig();
    doc.peers[0].sas[0].spi_in = 0x1002; // duplicate of peers[1]'s
    const bad = wesp(["check", "--json", dir.write("bad.yaml", toYaml(doc))]);
    assert.equal(bad.code, 2);
    const out = JSON.parse(bad.stdout);
    assert.equal(out.ok, false);
    assert.deepEqual(out.errors.map((e: { path: string }) => e.path), ["peers[1].sas[0].spi_in"]);
    assert.equal(typeof out.errors[0].line, "number");

    const good = wesp(["check", "--json", dir.write("good.yaml", toYaml(baseConfig()))]);
    assert.equal(good.code, 0);
    assert.deepEqual(JSON.parse(good.stdout), { ok: true, errors: [], warnings: [] });
  } finally {
    dir.remove();
  }
});

test("-q prints nothing; warnings go to stderr without failing", () => {
  const dir = tempDir();
  try {
    const doc = baseConfig();
    dir.write("open.key", hexKey(36), 0o644);
    delete doc.peers[0].sas[0].key_in;
    doc.peers[0].sas[0].key_in_file = "open.key";
    const file = dir.write("site.yaml", toYaml(doc));
    const r = wesp(["check", "-q", file]);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /^warning: .*site\.yaml:\d+: peers\[0\]\.sas\[0\]\.key_in_file: key file .*open\.key is readable by group or others/);
  } finally {
    dir.remove();
  }
});

test("no key material in any output: -v, --json, errors about keys", () => {
  const dir = tempDir();
  try {
    const runs: { args: string[]; keys: string[] }[] = [];
    const add = (name: string, doc: ReturnType<typeof baseConfig>, flags: string[] = [], extraKeys: string[] = []) => {
      runs.push({ args: ["check", ...flags, dir.write(name, toYaml(doc))], keys: keysOf(doc, extraKeys) });
    };
    add("good.yaml", baseConfig(), ["-v"]);
    add("good-json.yaml", baseConfig(), ["--json"]);
    const short = baseConfig(); short.peers[0].sas[0].key_in = hexKey(35); add("short.yaml", short, ["--json"]);
    const odd = baseConfig(); odd.peers[0].sas[0].key_out = hexKey(36).slice(1); add("odd.yaml", odd);
    const nonhex = baseConfig(); nonhex.peers[1].sas[0].auth_key_in = `${hexKey(15)}xy${hexKey(16)}`; add("nonhex.yaml", nonhex);
    const same = baseConfig(); same.peers[0].sas[0].key_out = same.peers[0].sas[0].key_in; add("same.yaml", same, ["-v"]);
    const wrong = baseConfig(); const k = hexKey(36); wrong.peers[0].sas[0].suite = k; wrong.node.name = k; add("wrong.yaml", wrong, [], [k]);
    const fileKey = `${hexKey(30)}\n${hexKey(6)}zz`;
    dir.write("bad.key", fileKey);
    const kf = baseConfig(); delete kf.peers[0].sas[0].key_in; kf.peers[0].sas[0].key_in_file = "bad.key"; add("keyfile.yaml", kf, [], fileKey.split("\n"));
    const good = baseConfig();
    const unquoted = toYaml(good).replace(/key_in: "?([0-9a-f]{72})"?/, "key_in: 0x$1");
    runs.push({ args: ["check", dir.write("unquoted.yaml", unquoted)], keys: keysOf(good) });
    const broken = toYaml(good).replace(/key_out: "?([0-9a-f]{72})"?/, 'key_out: "$1');
    runs.push({ args: ["check", "-v", dir.write("broken.yaml", broken)], keys: keysOf(good) });

    for (const { args, keys } of runs) {
      const r = wesp(args);
      const out = r.stdout + r.stderr;
      assert.ok(r.code === 0 || r.code === 2, `${args.join(" ")}: exit ${r.code}`);
      assert.ok(out.length > 0);
      assert.deepEqual(findKeyLeaks(out, keys), [], `${args.join(" ")} printed key material`);
    }
  } finally {
    dir.remove();
  }
});
