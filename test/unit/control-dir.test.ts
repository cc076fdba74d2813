// The control socket's directory (host/control/server.ts, controlDir): made
// 0700 when missing; an existing one must be a real directory (not a symbolic
// link), owned by us or root, not writable by group or others — else refused
// before anything is created, removed or chmod'ed in it. (Another user can
// make /tmp/wesp-UID first.) Run as root for the foreign-owner case.

import assert from "node:assert/strict";
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { ControlServer, controlDir } from "../../host/control/server.ts";

let root: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), "wesp-ctl-"));
});
after(() => rmSync(root, { recursive: true, force: true }));

const handler = async () => ({ fine: true });
const isRoot = process.geteuid?.() === 0;
const UNSAFE = "WESP_UNSAFE_DIR";

test("a missing directory is made 0700 (parents too) and the socket 0600", async () => {
  const dir = join(root, "new", "wesp");
  const s = await ControlServer.listen(join(dir, "a.sock"), handler);
  try {
    assert.equal(lstatSync(dir).mode & 0o777, 0o700);
    assert.equal(lstatSync(join(root, "new")).mode & 0o777, 0o700);
    assert.ok(lstatSync(join(dir, "a.sock")).isSocket());
    assert.equal(lstatSync(join(dir, "a.sock")).mode & 0o777, 0o600);
  } finally {
    await s.close();
  }
});

test("an existing directory of ours without group/other write is used as it is", async () => {
  for (const mode of [0o700, 0o750, 0o755, 0o711]) {
    const dir = join(root, `ok-${mode.toString(8)}`);
    mkdirSync(dir);
    chmodSync(dir, mode);
    const s = await ControlServer.listen(join(dir, "a.sock"), handler);
    await s.close();
    assert.equal(lstatSync(dir).mode & 0o777, mode, "its mode is left alone");
  }
});

for (const mode of [0o777, 0o1777, 0o770, 0o702, 0o720]) {
  test(`a pre-made directory with mode ${mode.toString(8)} is refused and left untouched`, async () => {
    const dir = join(root, `open-${mode.toString(8)}`);
    mkdirSync(dir);
    chmodSync(dir, mode);
    await assert.rejects(ControlServer.listen(join(dir, "a.sock"), handler), (e: NodeJS.ErrnoException) => {
      assert.equal(e.code, UNSAFE);
      assert.ok(e.message.includes(dir), e.message);
      assert.match(e.message, new RegExp(`writable by group or others \\(mode 0${(mode & 0o7777).toString(8)}\\)`));
      return true;
    });
    assert.equal(lstatSync(dir).mode & 0o7777, mode, "not chmod'ed");
    assert.equal(existsSync(join(dir, "a.sock")), false, "no socket made");
  });
}

test("a directory owned by another user is refused", { skip: !isRoot && "needs root to chown" }, async () => {
  const dir = join(root, "theirs");
  mkdirSync(dir, { mode: 0o700 });
  chownSync(dir, 65534, 65534);
  await assert.rejects(ControlServer.listen(join(dir, "a.sock"), handler), (e: NodeJS.ErrnoException) => {
    assert.equal(e.code, UNSAFE);
    assert.ok(e.message.includes(dir), e.message);
    assert.match(e.message, /owned by uid 65534/);
    return true;
  });
  assert.equal(existsSync(join(dir, "a.sock")), false);
  assert.equal(lstatSync(dir).uid, 65534);
  assert.equal(lstatSync(dir).mode & 0o777, 0o700);
});

test("a symbolic link to a directory is refused; the target is neither chmod'ed nor used", async () => {
  const target = join(root, "target");
  mkdirSync(target);
  chmodSync(target, 0o755);
  const link = join(root, "link");
  symlinkSync(target, link);
  await assert.rejects(ControlServer.listen(join(link, "a.sock"), handler), (e: NodeJS.ErrnoException) => {
    assert.equal(e.code, UNSAFE);
    assert.ok(e.message.includes(link), e.message);
    assert.match(e.message, /symbolic link/);
    return true;
  });
  assert.equal(lstatSync(target).mode & 0o777, 0o755);
  assert.equal(existsSync(join(target, "a.sock")), false);
});

test("a symbolic link to a world-writable directory is refused too (the link is not followed)", async () => {
  const target = join(root, "target-open");
  mkdirSync(target);
  chmodSync(target, 0o777);
  symlinkSync(target, join(root, "link-open"));
  await assert.rejects(ControlServer.listen(join(root, "link-open", "a.sock"), handler), /symbolic link/);
  assert.equal(lstatSync(target).mode & 0o777, 0o777);
});

test("a file where the directory should be is refused", () => {
  const dir = join(root, "file");
  writeFileSync(dir, "");
  assert.throws(() => controlDir(dir), (e: NodeJS.ErrnoException) => e.code === "ENOTDIR" || /not a directory/.test(e.message));
});

test("controlDir as a non-root user: a directory owned by root without group/other write is accepted, one owned by nobody else is not", { skip: !isRoot && "needs root" }, () => {
  // root's directory checked on behalf of uid 1000: the rule takes the owner from its argument
  const dir = join(root, "rootowned");
  mkdirSync(dir, { mode: 0o755 });
  controlDir(dir, 1000);
  const theirs = join(root, "nobodys");
  mkdirSync(theirs, { mode: 0o700 });
  chownSync(theirs, 65534, 65534);
  assert.throws(() => controlDir(theirs, 1000), /owned by uid 65534/);
  controlDir(theirs, 65534);
});
