// Files that hold keys — a config with inline keys, a key file — follow one
// mode rule (host/config/keys.ts, secretFileIssue): readable by group or
// others loads with a warning; writable by group or others is refused, since
// whoever can write the file can put in keys they know.

import assert from "node:assert/strict";
import { chmodSync } from "node:fs";
import { test } from "node:test";
import { ConfigError, loadConfigSync } from "../../host/config/load.ts";
import { baseConfig, findKeyLeaks, keysOf, tempDir, toYaml, wesp } from "../helpers/config_fixture.ts";

const opts = { uid: 1000, env: {} };

/** Write `text` as `name` with exactly `mode` (writeFileSync's mode is masked by the umask). */
function writeMode(dir: ReturnType<typeof tempDir>, name: string, text: string, mode: number): string {
  const p = dir.write(name, text);
  chmodSync(p, mode);
  return p;
}

/** The base config with every key moved to a key file (mode 0600): no inline keys left. */
function keyFilesOnly(dir: ReturnType<typeof tempDir>) {
  const doc = baseConfig();
  doc.peers.forEach((p: { sas: Record<string, unknown>[] }, i: number) => p.sas.forEach((sa, k) => {
    for (const f of ["key_in", "key_out", "auth_key_in", "auth_key_out"]) {
      if (typeof sa[f] !== "string") continue;
      sa[`${f}_file`] = `k${i}${k}${f}.key`;
      dir.write(`k${i}${k}${f}.key`, sa[f] as string, 0o600);
      delete sa[f];
    }
  }));
  return doc;
}

test("inline keys in a file only its owner can read: no warning", () => {
  const dir = tempDir();
  try {
    for (const mode of [0o600, 0o400, 0o700]) {
      const { warnings } = loadConfigSync(writeMode(dir, "site.yaml", toYaml(baseConfig()), mode), opts);
      assert.deepEqual(warnings, [], mode.toString(8));
    }
  } finally {
    dir.remove();
  }
});

test("inline keys in a file group or others can read: loads with a warning naming the file and mode", () => {
  const dir = tempDir();
  try {
    for (const mode of [0o640, 0o604, 0o644, 0o444]) {
      const file = writeMode(dir, "site.yaml", toYaml(baseConfig()), mode);
      const { warnings } = loadConfigSync(file, opts);
      assert.equal(warnings.length, 1, mode.toString(8));
      assert.equal(warnings[0].path, "");
      assert.equal(typeof warnings[0].line, "number");
      assert.ok(warnings[0].message.includes(file), warnings[0].message);
      assert.match(warnings[0].message, new RegExp(`inline keys .*readable by group or others \\(mode 0${mode.toString(8)}\\).*chmod 600`));
    }
  } finally {
    dir.remove();
  }
});

test("inline keys in a file group or others can write: refused naming the file and mode", () => {
  const dir = tempDir();
  try {
    for (const mode of [0o620, 0o602, 0o666, 0o660, 0o622]) {
      const doc = baseConfig();
      const file = writeMode(dir, "site.yaml", toYaml(doc), mode);
      assert.throws(() => loadConfigSync(file, opts), (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.equal(e.issues.length, 1);
        assert.equal(e.issues[0].path, "");
        assert.ok(e.issues[0].message.includes(file), e.issues[0].message);
        assert.match(e.issues[0].message, new RegExp(`inline keys \\(peers\\[0\\]\\.sas\\[0\\]\\.key_in.*writable by group or others \\(mode 0${mode.toString(8)}\\)`));
        assert.deepEqual(findKeyLeaks(e.message, keysOf(doc)), []);
        return true;
      }, mode.toString(8));
    }
  } finally {
    dir.remove();
  }
});

test("wesp check: a group-writable config with inline keys exits 2 naming the file and mode; a readable one warns and exits 0", () => {
  const dir = tempDir();
  try {
    const doc = baseConfig();
    const file = writeMode(dir, "site.yaml", toYaml(doc), 0o664);
    const bad = wesp(["check", file]);
    assert.equal(bad.code, 2, bad.stderr);
    assert.equal(bad.stdout, "");
    assert.match(bad.stderr, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:\\d+: .*inline keys .*writable by group or others \\(mode 0664\\)`, "m"));
    assert.doesNotMatch(bad.stderr, /at |Error:/);
    assert.deepEqual(findKeyLeaks(bad.stderr, keysOf(doc)), []);

    chmodSync(file, 0o644);
    const ok = wesp(["check", file]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /^warning: .*site\.yaml:\d+: .*inline keys .*readable by group or others \(mode 0644\)/);
  } finally {
    dir.remove();
  }
});

test("a config without inline keys (key files only) is not held to the rule", () => {
  const dir = tempDir();
  try {
    const file = writeMode(dir, "site.yaml", toYaml(keyFilesOnly(dir)), 0o664);
    const { warnings } = loadConfigSync(file, opts);
    assert.deepEqual(warnings, []);
  } finally {
    dir.remove();
  }
});

test("a key file group or others can write is refused, naming the field, file and mode", () => {
  const dir = tempDir();
  try {
    const doc = keyFilesOnly(dir);
    chmodSync(`${dir.path}/k00key_out.key`, 0o620);
    const file = writeMode(dir, "site.yaml", toYaml(doc), 0o600);
    assert.throws(() => loadConfigSync(file, opts), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.deepEqual(e.issues.map((i) => i.path), ["peers[0].sas[0].key_out_file"]);
      assert.match(e.issues[0].message, /key file .*k00key_out\.key is writable by group or others \(mode 0620\)/);
      return true;
    });
    // Readable only: the warning it always had.
    chmodSync(`${dir.path}/k00key_out.key`, 0o644);
    const { warnings } = loadConfigSync(file, opts);
    assert.deepEqual(warnings.map((w) => w.path), ["peers[0].sas[0].key_out_file"]);
    assert.match(warnings[0].message, /readable by group or others \(mode 0644\); chmod 600 it/);
  } finally {
    dir.remove();
  }
});

test("an unquoted (numeric) inline key counts as an inline key too", () => {
  const dir = tempDir();
  try {
    const doc = baseConfig();
    const text = toYaml(doc).replace(/key_in: "?[0-9a-f]+"?\n/, `key_in: ${"1".repeat(40)}\n`);
    const file = writeMode(dir, "site.yaml", text, 0o666);
    assert.throws(() => loadConfigSync(file, opts), /writable by group or others \(mode 0666\)/);
  } finally {
    dir.remove();
  }
});
