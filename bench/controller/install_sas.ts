// The install of many durable SAs, timed alone (issue 9: "10 → 100,000 SAs
// ... installing them under 2 s"), repeatably: ce_sas.ts's hub config
// (50,000 peers = 100,000 SAs, AES-256-GCM, replay windows of 960) loaded as
// configs of ≤ 10,000 peers, planned, a core sized by coreSizing, then
// `SaTable.apply` of every peer into it with durable sequence state — what a
// worker of `wesp up` does at start, without TUN and sockets (no root). Each
// SA event goes through a MessagePort as the worker sends it to the main
// thread.
//
// Every run is a fresh process (first touch of memory is a large part of an
// install: docs/bench.md "Less per SA"), and with several trees (--trees) the
// runs alternate between them, so a baseline and a change are measured in
// the same minutes at the same load. Per run: the load average, the time to
// create the core, and for the apply its wall time, CPU seconds (user +
// system, every thread of the process) and minor page faults, from
// process.resourceUsage(). Then the median of each per tree.
//
//   node --import tsx bench/controller/install_sas.ts [--peers 50000] [--runs 3]
//        [--window 960] [--chunk 10000] [--trees DIR[,DIR…]] [--cpu-prof DIR]
//        [--node-flags "FLAG …"]   (node/V8 flags for every run, e.g. a GC setting)
//        [--core-opts JSON]        (added to Core.create's options, e.g. '{"hugePages":false}')
//
// A tree is a checkout of wesp (default: this one); its own host/ modules and
// build/wesp.wasm are used. Run it under the benchmark lock.
import { median, medianRange } from "../stats.ts";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { MessageChannel } from "node:worker_threads";

const HERE = fileURLToPath(import.meta.url);
const THIS_TREE = resolve(dirname(HERE), "../..");

interface Options { peers: number; runs: number; window: number; chunk: number; trees: string[]; cpuProf?: string; nodeFlags: string[]; coreOpts: string }

interface Run {
  tree: string;
  load1: number;
  sas: number;
  loadS: number;
  createS: number;
  applyS: number;
  applyCpuS: number;
  applyFaults: number;
  /** Messages the SA events took to the port (one per event, or fewer when batched). */
  messages: number;
  events: number;
  rssMiB: number;
  /** Bytes of SA records the kernel was asked to back with huge pages, and backed in the background (cores that do). */
  hugePageBytes?: number;
  populated?: number;
}

function options(args: string[]): Options {
  const v: Record<string, string> = {};
  for (let i = 0; i < args.length; i += 2) {
    if (!/^--(peers|runs|window|chunk|trees|cpu-prof|node-flags|core-opts)$/.test(args[i]) || args[i + 1] === undefined) throw new Error(`unknown option or missing value: ${args[i]}`);
    v[args[i].slice(2)] = args[i + 1];
  }
  const int = (s: string | undefined, d: number) => (s === undefined ? d : Number.parseInt(s, 10));
  return {
    peers: int(v.peers, 50_000), runs: int(v.runs, 3), window: int(v.window, 960), chunk: int(v.chunk, 10_000),
    trees: v.trees ? v.trees.split(",").map((t) => resolve(t)) : [THIS_TREE], cpuProf: v["cpu-prof"],
    nodeFlags: v["node-flags"] ? v["node-flags"].split(" ").filter(Boolean) : [],
    coreOpts: v["core-opts"] ?? "{}",
  };
}

const mod = (tree: string, path: string) => import(pathToFileURL(join(tree, path)).href);

/** One run in this process (the child): loads, sizes, installs; prints its Run as a JSON line. */
async function child(tree: string, o: Options): Promise<void> {
  const { hubConfig } = await mod(tree, "bench/controller/ce_sas.ts");
  const { parseConfig } = await mod(tree, "host/config/load.ts");
  const { Core } = await mod(tree, "host/core/core.ts");
  const { coreSizing } = await mod(tree, "host/pipeline/provision.ts");
  const { plan } = await mod(tree, "host/sa/plan.ts");
  const { SaTable } = await mod(tree, "host/sa/install.ts");
  const { SeqStore } = await mod(tree, "host/sa/seq_store.ts");
  const { ensureStateDir } = await mod(tree, "host/sa/state_file.ts");
  const load1 = loadavg()[0];
  const stateDir = mkdtempSync(join(tmpdir(), "wesp-bench-install-"));
  try {
    ensureStateDir(stateDir);
    const t0 = performance.now();
    const peers: unknown[] = [];
    let config: { peers: unknown[] } | undefined;
    for (let from = 0; from < o.peers; from += o.chunk) {
      const part = hubConfig(Math.min(o.peers, from + o.chunk), stateDir, o.window);
      part.peers.splice(0, from);
      const r = parseConfig(JSON.stringify(part), { baseDir: tree, source: "<hub part>", maxBytes: 64 * 2 ** 20 });
      config ??= r.config;
      if (r.config !== config) peers.push(...r.config.peers);
    }
    config!.peers.push(...peers);
    const specs = plan(config, { sas: new Set(), tunnels: new Map() }).peers;
    const loadS = (performance.now() - t0) / 1000;
    const t1 = performance.now();
    const core = await Core.create({ slots: 256, ...coreSizing(specs), ...JSON.parse(o.coreOpts) });
    const createS = (performance.now() - t1) / 1000;
    // the worker's way out for events: a MessagePort (pipeline/worker.ts)
    const { port1, port2 } = new MessageChannel();
    let messages = 0, events = 0;
    const refused: string[] = [];
    port2.on("message", (m: { event?: { event: string }; events?: unknown[]; batch?: { events: unknown[] } }) => {
      messages++;
      events += m.events ? m.events.length : m.batch ? m.batch.events.length : 1;
    });
    const emit = (e: { event: string; message?: string }) => {
      if (e.event === "alarm") refused.push(e.message!);
      port1.postMessage({ type: "event", event: e });
    };
    // as the tree's worker sends it: an array of events (older trees) or an EventBatch (rows for sa-installed)
    type Ev = { event: string; message?: string };
    const emitBatch = (b: Ev[] | { events: (Ev | number)[] }) => {
      const es = Array.isArray(b) ? b : b.events;
      for (const e of es) if (typeof e === "object" && e.event === "alarm") refused.push(e.message!);
      port1.postMessage(Array.isArray(b) ? { type: "events", events: b } : { type: "events", batch: b });
    };
    const store = new SeqStore((m: string) => refused.push(m));
    const table = new SaTable(core, { store, stateDir, emit, emitBatch });
    const u0 = process.resourceUsage(), t2 = performance.now();
    table.apply(specs);
    const applyS = (performance.now() - t2) / 1000, u1 = process.resourceUsage();
    if (refused.length) throw new Error(`${refused.length} SAs refused, e.g. ${refused[0]}`);
    const sas = table.prov.peers.reduce((n: number, rt: { out: unknown; in: unknown[] }) => n + (rt.out ? 1 : 0) + rt.in.length, 0);
    if (sas !== 2 * o.peers) throw new Error(`${sas} SAs installed, not ${2 * o.peers}`);
    await new Promise((r) => setTimeout(r, 50)); // the port delivers
    port1.close();
    const populated = await core.populated; // undefined for a core without it
    const run: Run = {
      tree, load1, sas, loadS, createS, applyS,
      applyCpuS: (u1.userCPUTime + u1.systemCPUTime - u0.userCPUTime - u0.systemCPUTime) / 1e6,
      applyFaults: u1.minorPageFault - u0.minorPageFault, messages, events, rssMiB: process.memoryUsage().rss / 2 ** 20,
      hugePageBytes: core.hugePageBytes, populated,
    };
    process.stdout.write(`${JSON.stringify(run)}\n`);
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
}

function parent(o: Options): void {
  const runs: Run[] = [];
  const argv = ["--peers", String(o.peers), "--window", String(o.window), "--chunk", String(o.chunk), "--core-opts", o.coreOpts];
  for (let r = 0; r < o.runs; r++) {
    for (const tree of o.trees) {
      const prof = [...o.nodeFlags, ...(o.cpuProf ? ["--cpu-prof", "--cpu-prof-dir", o.cpuProf] : [])];
      const p = spawnSync(process.execPath, [...prof, "--import", "tsx", HERE, "--child", tree, ...argv], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], maxBuffer: 1 << 20 });
      if (p.status !== 0) throw new Error(`run ${r + 1} of ${tree} failed (${p.status ?? p.signal})`);
      const run = JSON.parse(p.stdout.trim().split("\n").pop()!) as Run;
      runs.push(run);
      process.stderr.write(`# ${tree} run ${r + 1}: load ${run.load1.toFixed(2)}, config ${run.loadS.toFixed(1)} s, Core.create ${run.createS.toFixed(3)} s, `
        + `apply ${run.applyS.toFixed(3)} s wall, ${run.applyCpuS.toFixed(2)} CPU s, ${run.applyFaults} faults, ${run.messages} messages, RSS ${run.rssMiB.toFixed(0)} MiB, huge pages ${((run.hugePageBytes ?? 0) / 2 ** 20).toFixed(0)} MiB, populated ${((run.populated ?? 0) / 2 ** 20).toFixed(0)} MiB\n`);
    }
  }
  console.log(`${2 * o.peers} SAs (${o.peers} peers, windows of ${o.window}), ${o.runs} runs per tree, medians (min–max):`);
  console.log("| tree | load avg | Core.create s | apply wall s | apply CPU s | page faults | event messages |");
  console.log("|---|---:|---:|---:|---:|---:|---:|");
  for (const tree of o.trees) {
    const rs = runs.filter((r) => r.tree === tree);
    const col = (f: (r: Run) => number, d: number) => medianRange(rs.map(f), d);
    console.log(`| ${tree} | ${col((r) => r.load1, 1)} | ${col((r) => r.createS, 3)} | ${col((r) => r.applyS, 2)} | ${col((r) => r.applyCpuS, 2)} | ${median(rs.map((r) => r.applyFaults))} | ${median(rs.map((r) => r.messages))} |`);
  }
}

const args = process.argv.slice(2);
if (args[0] === "--child") await child(args[1], options(args.slice(2)));
else parent(options(args));
