// The `wesp` executable as a child process: help, version, exit codes, and
// dispatch to commands that may be missing or broken in a build.

import assert from "node:assert/strict";
import { cpSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { baseConfig, REPO, tempDir, toYaml, wesp } from "../helpers/config_fixture.ts";

const ALL = ["up", "status", "check", "keys", "selftest", "bench"];

test("--help lists every command and the exit codes; exit 0", () => {
  const r = wesp(["--help"]);
  assert.equal(r.code, 0);
  for (const c of ALL) assert.match(r.stdout, new RegExp(`^  ${c}\\b`, "m"));
  for (const code of ["0", "1", "2", "3", "4"]) assert.match(r.stdout, new RegExp(`^  ${code}  \\S`, "m"));
  assert.equal(wesp(["-h"]).stdout, r.stdout);
  assert.equal(wesp(["help"]).stdout, r.stdout);
});

test("no command: usage on stderr, exit 2", () => {
  const r = wesp([]);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, "");
  assert.match(r.stderr, /^Usage: wesp COMMAND/);
});

test("unknown command: exit 2", () => {
  const r = wesp(["frobnicate"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown command "frobnicate"/);
});

test("--version prints the package version", () => {
  const { version } = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8"));
  const r = wesp(["--version"]);
  assert.equal(r.code, 0);
  assert.equal(r.stdout, `wesp ${version}\n`);
});

for (const c of ["check", "keys"]) {
  test(`${c} --help and help ${c}: exit 0, same text`, () => {
    const a = wesp([c, "--help"]);
    assert.equal(a.code, 0);
    assert.match(a.stdout, new RegExp(`^Usage: wesp ${c} `));
    assert.match(a.stdout, /Exit status/);
    assert.equal(wesp(["help", c]).stdout, a.stdout);
    assert.equal(wesp([c, "-h"]).stdout, a.stdout);
  });
}

test("bad options and missing arguments: exit 2 with a pointer to --help", () => {
  for (const args of [["check"], ["check", "a.yaml", "b.yaml"], ["check", "--nope", "a.yaml"], ["keys", "a.yaml"], ["keys", "--wireshark"], ["keys", "--wireshark", "-o"]]) {
    const r = wesp(args);
    assert.equal(r.code, 2, args.join(" "));
    assert.match(r.stderr, new RegExp(`Run 'wesp ${args[0]} --help' for usage`), args.join(" "));
  }
});

/**
 * A copy of the CLI in a temporary tree where the externally written commands
 * are replaced by fakes: up.ts absent, bench.ts importing a missing module,
 * status.ts without main, selftest.ts echoing its arguments (or failing on request).
 */
function fakeTree() {
  const dir = tempDir();
  const root = dir.path;
  mkdirSync(join(root, "host/cli"), { recursive: true });
  cpSync(join(REPO, "bin"), join(root, "bin"), { recursive: true });
  cpSync(join(REPO, "host/config"), join(root, "host/config"), { recursive: true });
  // The config checks IKE proposals with the IKE module's own grammar (host/ike/proposals.ts).
  cpSync(join(REPO, "host/ike"), join(root, "host/ike"), { recursive: true });
  // ... and asks the core (host/core, build/wesp.wasm) how much room a tunnel leaves (config/inner_mtu.ts).
  cpSync(join(REPO, "host/core"), join(root, "host/core"), { recursive: true });
  symlinkSync(join(REPO, "build"), join(root, "build"));
  // check and keys read their CONFIG argument (and its --max-config-bytes) through config_arg.ts;
  // ... and every module finds the package's files from its root (util/package_root.ts).
  cpSync(join(REPO, "host/util"), join(root, "host/util"), { recursive: true });
  for (const f of ["main.ts", "usage.ts", "exit_codes.ts", "check.ts", "keys.ts", "config_arg.ts"]) cpSync(join(REPO, "host/cli", f), join(root, "host/cli", f));
  cpSync(join(REPO, "package.json"), join(root, "package.json"));
  symlinkSync(join(REPO, "node_modules"), join(root, "node_modules"));
  writeFileSync(join(root, "host/cli/bench.ts"), 'import { x } from "./does-not-exist.ts";\nexport async function main() { return x; }\n');
  writeFileSync(join(root, "host/cli/status.ts"), "export const notMain = 1;\n");
  writeFileSync(join(root, "host/cli/selftest.ts"), [
    "export async function main(args: string[]): Promise<number> {",
    '  if (args[0] === "throw") throw new Error("boom 00112233445566778899aabbccddeeff00112233");',
    '  if (args[0] === "code") return Number(args[1]);',
    '  process.stdout.write(`selftest got ${JSON.stringify(args)}\\n`);',
    "  return 0;",
    "}",
  ].join("\n"));
  return { dir, bin: join(root, "bin/wesp.js") };
}

test("dispatch: missing, broken and main-less command modules fail alone with exit 1", () => {
  const { dir, bin } = fakeTree();
  try {
    const up = wesp(["up", "x.yaml"], bin);
    assert.equal(up.code, 1);
    assert.match(up.stderr, /^wesp up: not available in this build \(up\.ts is missing\)/);

    const bench = wesp(["bench"], bin);
    assert.equal(bench.code, 1);
    assert.match(bench.stderr, /^wesp bench: cannot load the command: .*does-not-exist/);

    const status = wesp(["status"], bin);
    assert.equal(status.code, 1);
    assert.match(status.stderr, /not available in this build \(status\.ts has no main\(args\)\)/);

    const self = wesp(["selftest", "--quick", "a b"], bin);
    assert.equal(self.code, 0);
    assert.equal(self.stdout, 'selftest got ["--quick","a b"]\n');

    assert.equal(wesp(["selftest", "code", "3"], bin).code, 3, "a command's exit code is passed through");

    const boom = wesp(["selftest", "throw"], bin);
    assert.equal(boom.code, 1, "an exception is a runtime failure");
    assert.match(boom.stderr, /^wesp selftest: boom \[redacted\]/);

    // The commands that are present still work.
    const cfg = dir.write("site.yaml", toYaml(baseConfig()));
    assert.equal(wesp(["check", "-q", cfg], bin).code, 0);
    assert.equal(wesp(["--help"], bin).code, 0);
  } finally {
    dir.remove();
  }
});

test("a reader that goes away (wesp selftest | head -1): the output is dropped, no crash, exit 0", async () => {
  const { spawn } = await import("node:child_process");
  const { WESP_BIN } = await import("../helpers/config_fixture.ts");
  const child = spawn(process.execPath, [WESP_BIN, "selftest"], { stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stderr.on("data", (d) => (err += d));
  // Read the first chunk, then close our end: the next write gets EPIPE.
  await new Promise<void>((resolve) => child.stdout.once("data", () => resolve()));
  child.stdout.destroy();
  const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
  assert.doesNotMatch(err, /EPIPE|Unhandled/, err);
  assert.equal(code, 0);
});
