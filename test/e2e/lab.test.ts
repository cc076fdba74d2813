// The one network-namespace lab (host/lab/) that the demo, the tests and the
// benchmarks share: what it builds, what its processes say, and that nothing
// outlives it — after a teardown, a SIGTERM to its owner (the exit hooks), and
// a SIGKILL (sweepStale finds the dead owner's leftovers), and a kept lab is
// removed by its tag.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { requireTools } from "../helpers/require.ts";
import { NS_PREFIX, waitFor } from "../helpers/netns.ts";
import { Lab } from "../../host/lab/lab.ts";
import { leftovers, ownerTag, removeLeftovers, sweepStale } from "../../host/lab/leftovers.ts";
import { pidAlive } from "../../host/lab/process.ts";

/** A prefix of this file's own: no other test's sweep or lab shares it. */
const PREFIX = `${NS_PREFIX}labt-`;

const nothingLeft = (tag: string) => assert.deepEqual(leftovers(tag), { namespaces: [], dirs: [] }, `leftovers of ${tag}`);

/** A child process that builds a lab with one namespace and a `sleep` in it, prints its tag and the sleep's pid, and waits. */
const OWNER_JS = `
const { Lab } = await import(${JSON.stringify(new URL("../../host/lab/lab.ts", import.meta.url).href)});
const { ownerTag } = await import(${JSON.stringify(new URL("../../host/lab/leftovers.ts", import.meta.url).href)});
const lab = new Lab(ownerTag(process.argv[1]));
const ns = await lab.ns("x");
const p = ns.spawn(["sleep", "600"]);
console.log(JSON.stringify({ tag: lab.tag, pid: p.pid }));
setInterval(() => {}, 1000);
`;

function startOwner(): Promise<{ child: ReturnType<typeof spawn>; tag: string; pid: number }> {
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", OWNER_JS, PREFIX], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  return waitFor(() => /^\{.*\}$/m.exec(out)?.[0] ?? (child.exitCode !== null ? "exited" : undefined), "the lab's owner", 30_000).then((line) => {
    if (line === "exited") throw new Error(`the owner exited: ${out}`);
    const { tag, pid } = JSON.parse(line as string);
    return { child, tag, pid };
  });
}

const exited = (child: ReturnType<typeof spawn>) =>
  new Promise<NodeJS.Signals | number | null>((resolve) => child.once("exit", (code, signal) => resolve(signal ?? code)));

describe("host/lab", { skip: requireTools(["netns"], { why: "the namespace lab" }) }, () => {
  it("builds namespaces and a veth with its MTU, keeps or logs its processes' output, and leaves nothing after teardown", async () => {
    const lab = new Lab(ownerTag(PREFIX));
    try {
      const a = await lab.ns("a");
      const b = await lab.ns("b");
      assert.equal(lab.at("a"), a);
      assert.equal(a.name, `${lab.tag}a`);
      await lab.veth(a, "va", b, "vb", { mtu: 1400 });
      for (const [ns, dev] of [[a, "va"], [b, "vb"]] as const) {
        const link = JSON.parse(await ns.ip("-j", "link", "show", "dev", dev))[0];
        assert.equal(link.mtu, 1400, `${dev} mtu`);
        assert.match(link.flags.join(","), /UP/, `${dev} up`);
      }
      await a.addr("va", "10.7.0.1/24");
      await b.addr("vb", "10.7.0.2/24");
      assert.equal((await a.exec(["ip", "route", "get", "10.7.0.2"])).code, 0);

      const mem = a.spawn(["sh", "-c", "echo out; echo err >&2; exec sleep 600"]);
      await waitFor(() => mem.stdout.includes("out") && mem.stderr.includes("err"), "in-memory output");
      assert.match(mem.output, /out/);
      assert.match(mem.output, /err/);
      const logged = b.spawn(["sh", "-c", "echo out; echo err >&2; exec sleep 600"], { log: "logged" });
      assert.equal(logged.label, "logged");
      await waitFor(() => existsSync(logged.log!) && /out[\s\S]*err|err[\s\S]*out/.test(readFileSync(logged.log!, "utf8")), "logged output");
      assert.equal(logged.stdout, "");
      assert.deepEqual((await b.pids()).includes(logged.pid), true, "the process lives in its namespace");

      // one stopped early, with a signal it may not survive: exitCode 128
      await mem.stop("SIGKILL");
      assert.equal(mem.exitCode, 128);
      assert.equal(mem.running, false);

      await lab.teardown();
      await lab.teardown(); // idempotent
      assert.equal(pidAlive(logged.pid), false, "the logged process is gone");
      assert.equal(existsSync(lab.dir), false, "the scratch dir is gone");
      nothingLeft(lab.tag);
      assert.throws(() => a.spawn(["true"]), /torn down/);
    } finally {
      await lab.teardown();
    }
  });

  it("a kept lab stays up after its owner's teardown and goes by its tag (removeLeftovers)", async () => {
    const lab = new Lab(ownerTag(PREFIX));
    try {
      const ns = await lab.ns("k");
      const p = ns.spawn(["sleep", "600"]);
      lab.keep();
      await lab.teardown(); // a no-op once kept
      assert.deepEqual(leftovers(lab.tag).namespaces, [ns.name]);
      assert.equal(p.running, true);
      const removed = await removeLeftovers(lab.tag);
      assert.ok(removed.includes(ns.name) && removed.includes(lab.dir), `removed ${removed.join(", ")}`);
      await waitFor(() => !pidAlive(p.pid), "the kept lab's process to end");
      nothingLeft(lab.tag);
    } finally {
      await removeLeftovers(lab.tag);
    }
  });

  it("its owner's SIGTERM tears the lab down (the exit hooks): processes, namespaces and dir", async () => {
    const { child, tag, pid } = await startOwner();
    try {
      assert.equal(leftovers(tag).namespaces.length, 1);
      const gone = exited(child);
      child.kill("SIGTERM");
      assert.equal(await gone, 128 + 15);
      assert.equal(pidAlive(pid), false, "the lab's sleep is gone");
      nothingLeft(tag);
    } finally {
      child.kill("SIGKILL");
      await removeLeftovers(tag);
    }
  });

  it("a SIGKILLed owner leaves its lab, and sweepStale removes it, never a live owner's", async () => {
    const live = new Lab(ownerTag(PREFIX));
    const { child, tag } = await startOwner();
    try {
      await live.ns("mine");
      const gone = exited(child);
      child.kill("SIGKILL");
      await gone;
      assert.equal(leftovers(tag).namespaces.length, 1, "no hook runs on SIGKILL");
      const removed = sweepStale(PREFIX);
      assert.ok(removed.includes(`${tag}x`), `swept ${removed.join(", ")}`);
      nothingLeft(tag);
      assert.deepEqual(leftovers(live.tag).namespaces, [`${live.tag}mine`], "this process's lab is kept");
    } finally {
      await live.teardown();
      await removeLeftovers(tag);
    }
  });
});
