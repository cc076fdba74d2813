// The package as it is installed runs compiled JavaScript, never tsx.
//
// A tree holds exactly the files `npm pack` ships (package.json "files":
// dist/, the WASM core, the JSON schema and vectors), the addon built here,
// and a node_modules with the dependencies but none of the devDependencies:
// no tsx, no typescript, and no .ts file outside node_modules. Nothing there
// can run TypeScript, so a module that still imports tsx, a worker started on
// a .ts entry or a child `node --import tsx` would fail (the control: `node
// --import tsx` itself fails in the tree). A resolve hook also lists every
// module the compiled `wesp check` loads: all JavaScript from dist/ or the
// dependencies, the command's own modules among them, no tsx.
// Then `wesp up` from the tree in two namespaces, two packet workers each,
// ping both ways, `wesp status` from the tree; the same hook, preloaded in the
// workers too, shows their compiled entry loaded and nothing from tsx.
//
// Needs dist/ built: `npm run build:js` (`npm test` builds it first).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { REPO, tempDir } from "../helpers/config_fixture.ts";
import { requireTools } from "../helpers/require.ts";
import { exec, Lab, waitFor, type Netns } from "../helpers/netns.ts";
import { ADDR, buildSites, configs, stopPair, type Running, type Sites } from "./forwarder-util.ts";
import { assertNoNamespacesLeft } from "./io-util.ts";

const PKG = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8"));
/** Never in the tree: the devDependencies, and what runs TypeScript whatever the lists say. */
const LEFT_OUT = new Set([...Object.keys(PKG.devDependencies), "tsx", "typescript", "esbuild", "@esbuild"]);

/** The files `npm pack` would ship, from the package's own lists (no scripts run). */
function packedFiles(): string[] {
  const r = spawnSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: REPO, encoding: "utf8" });
  assert.equal(r.status, 0, `npm pack --dry-run: ${r.stderr}`);
  return (JSON.parse(r.stdout)[0].files as { path: string }[]).map((f) => f.path);
}

/** node_modules with every installed package except LEFT_OUT (symlinks into ours). */
function dependenciesOnly(tree: string): void {
  const from = join(REPO, "node_modules"), to = join(tree, "node_modules");
  mkdirSync(to);
  for (const name of readdirSync(from)) {
    if (name.startsWith(".") || LEFT_OUT.has(name)) continue;
    if (!name.startsWith("@")) {
      symlinkSync(join(from, name), join(to, name));
      continue;
    }
    mkdirSync(join(to, name));
    for (const sub of readdirSync(join(from, name))) {
      if (!LEFT_OUT.has(`${name}/${sub}`)) symlinkSync(join(from, name, sub), join(to, name, sub));
    }
  }
}

function packedTree(dir: string): string {
  const tree = join(dir, "pkg");
  for (const f of packedFiles()) {
    mkdirSync(dirname(join(tree, f)), { recursive: true });
    copyFileSync(join(REPO, f), join(tree, f));
  }
  const addon = "native/build/Release/wesp_io.node"; // what the package's install script builds
  mkdirSync(dirname(join(tree, addon)), { recursive: true });
  copyFileSync(join(REPO, addon), join(tree, addon));
  dependenciesOnly(tree);
  return tree;
}

/** Files under `dir` (node_modules left out), relative to it. */
function walk(dir: string, rel = ""): string[] {
  return readdirSync(join(dir, rel), { withFileTypes: true }).flatMap((e) => {
    const p = join(rel, e.name);
    if (e.isDirectory()) return p === "node_modules" ? [] : walk(dir, p);
    return [p];
  });
}

// Logs every module URL the loader resolves, from the hooks thread (module.register, Node ≥ 20.6).
const HOOKS = `import { appendFileSync } from "node:fs";
export async function resolve(spec, ctx, next) {
  const r = await next(spec, ctx);
  appendFileSync(process.env.WESP_MODULE_LOG, r.url + "\\n");
  return r;
}`;
const REGISTER = `import { register } from "node:module";
register("./hooks.mjs", import.meta.url);`;

const dir = tempDir();
let tree = "";
let bin = "";
let hook = "";
before(() => {
  assert.ok(existsSync(join(REPO, "dist/bin/wesp.js")), "dist/ is not built: run `npm run build:js` (npm test builds it)");
  tree = packedTree(dir.path);
  bin = join(tree, "dist/bin/wesp.js");
  writeFileSync(join(dir.path, "hooks.mjs"), HOOKS);
  writeFileSync(join(dir.path, "register.mjs"), REGISTER);
  hook = pathToFileURL(join(dir.path, "register.mjs")).href;
});
after(() => dir.remove());

/** The module URLs in a hook log, checked: JavaScript from dist/ or the dependencies, nothing from tsx; `expect` (dist/ paths) among them. */
function assertCompiledOnly(log: string, expect: string[]): void {
  const urls = [...new Set(readFileSync(log, "utf8").split("\n").filter(Boolean))];
  const dist = pathToFileURL(join(tree, "dist")).href + "/";
  for (const m of expect) assert.ok(urls.includes(dist + m), `${m} was loaded (${urls.length} modules logged)`);
  const files = urls.filter((u) => u.startsWith("file:"));
  assert.deepEqual(files.filter((u) => !/\.(js|mjs|cjs|json|node)$/.test(u)), [], "only JavaScript modules");
  assert.deepEqual(files.filter((u) => /\/(tsx|esbuild)\//.test(u)), [], "nothing from tsx");
  assert.deepEqual(files.filter((u) => !u.startsWith(dist) && !u.includes("/node_modules/")), [], "modules come from dist/ or the dependencies");
}

describe("the compiled package", () => {
  const wesp = (args: string[]) => spawnSync(process.execPath, [bin, ...args], { cwd: tree, encoding: "utf8", timeout: 60_000 });

  it("holds compiled JavaScript and the assets, no TypeScript, and tsx cannot be loaded in it", () => {
    const files = walk(tree);
    for (const f of ["dist/bin/wesp.js", "dist/host/cli/main.js", "dist/host/pipeline/worker.js", "dist/host/api/index.d.ts", "build/wesp.wasm", "build/wesp.relaxed.wasm", "host/config/schema.json", "host/core/vectors/esp-vectors.json"]) {
      assert.ok(files.includes(f), `${f} is packed`);
    }
    assert.deepEqual(files.filter((f) => /\.[mc]?ts$/.test(f) && !f.endsWith(".d.ts")), [], "no TypeScript source is packed");
    const control = spawnSync(process.execPath, ["--import", "tsx", "-e", "0"], { cwd: tree, encoding: "utf8" });
    assert.notEqual(control.status, 0, "tsx must not be reachable from the tree");
    assert.match(control.stderr, /Cannot find package 'tsx'/);
  });

  it("--help, --version, check and selftest run from it", () => {
    const help = wesp(["--help"]);
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /^ {2}up\b/m);
    assert.equal(wesp(["--version"]).stdout, `wesp ${PKG.version}\n`);
    const check = wesp(["check", join(tree, "examples/three-sites/hq.yaml")]);
    assert.equal(check.status, 0, check.stderr);
    const self = wesp(["selftest"]);
    assert.equal(self.status, 0, self.stderr);
    assert.match(self.stdout, /^[1-9]\d* passed, 0 failed$/m);
    assert.match(self.stdout, /^core build\/wesp\.relaxed\.wasm \(relaxed SIMD\)$/m, "the packed relaxed build runs");
  });

  it("wesp check loads only compiled modules: its own from dist/, none from tsx", () => {
    const log = join(dir.path, "check-modules.log");
    const r = spawnSync(process.execPath, ["--import", hook, bin, "check", join(tree, "examples/three-sites/hq.yaml")], {
      cwd: tree, encoding: "utf8", env: { ...process.env, WESP_MODULE_LOG: log }, timeout: 60_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assertCompiledOnly(log, ["bin/wesp.js", "host/cli/main.js", "host/cli/check.js", "host/config/load.js"]);
  });
});

describe("wesp up from the compiled package", { skip: requireTools(["netns", "python3"], { why: "e2e compiled wesp up" }) }, () => {
  const lab = new Lab();
  let s!: Sites;
  before(async () => (s = await buildSites(lab)));
  after(async () => {
    await lab.teardown();
    assertNoNamespacesLeft(lab);
  });

  it("two workers each side carry pings both ways; status answers", { timeout: 120_000 }, async () => {
    const { a, b, keys } = configs({ name: "compiled", mode: "tunnel", outer: 4, encap: "udp", workers: 2 }, lab.dir);
    const cfgA = join(lab.dir, "compiled-a.json"), cfgB = join(lab.dir, "compiled-b.json");
    writeFileSync(cfgA, JSON.stringify(a), { mode: 0o600 });
    writeFileSync(cfgB, JSON.stringify(b), { mode: 0o600 });
    const logs = [join(dir.path, "upA-modules.log"), join(dir.path, "upB-modules.log")];
    const up = (ns: Netns, cfg: string, log: string) => ns.spawn([process.execPath, "--import", hook, bin, "up", cfg], { env: { WESP_MODULE_LOG: log } });
    const r: Running = {
      a: up(s.ceA, cfgA, logs[0]),
      b: up(s.ceB, cfgB, logs[1]),
      sockA: join(lab.dir, "ceA.sock"), sockB: join(lab.dir, "ceB.sock"), cfgA, cfgB, keys,
    };
    try {
      for (const p of [r.a, r.b]) {
        await waitFor(() => !p.running || /forwarding on/.test(p.stderr), "compiled wesp up", 30_000);
        assert.ok(p.running, `wesp up exited ${p.exitCode}: ${p.stderr}`);
      }
      for (const fam of ["v4", "v6"] as const) {
        assert.equal((await s.hostA.ping(ADDR.hostB[fam], 2)).received, 2, `hostA → hostB ${fam}`);
        assert.equal((await s.hostB.ping(ADDR.hostA[fam], 2)).received, 2, `hostB → hostA ${fam}`);
      }
      const st = await exec([process.execPath, bin, "status", "--control", r.sockB, "--json"]);
      assert.equal(st.code, 0, st.stderr);
      const peer = JSON.parse(st.stdout).peers[0];
      assert.ok(peer.outbound.counters.packets >= 4, JSON.stringify(peer.outbound.counters));
      for (const log of logs) assertCompiledOnly(log, ["host/cli/up.js", "host/pipeline/forwarder.js", "host/pipeline/worker.js"]);
    } finally {
      await stopPair(s, r);
    }
  });
});
