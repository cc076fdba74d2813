// The start-up of a hub, timed as an operator sees it (issue 9: "10 → 100,000
// SAs"): the real `wesp up` (a tree's compiled dist/bin/wesp.js) with the
// tunnel benchmark's config (bench/tunnel/wesp.ts `configs`: N extra peers of
// one SA pair each, JSON, `--max-config-bytes` past 4 MiB), in a network
// namespace of its own with the WAN address on a veth to a second one, pinned to one
// core as `wesp bench tunnel` pins each endpoint. Timed from the spawn to the
// "forwarding on" line; CPU seconds are the process's (every thread, from
// /proc/PID/stat at that moment); each line wesp printed before it is kept
// with the time it arrived, so phases wesp logs ("loaded config in …") can be
// told apart.
//
// Every run is a fresh process with a fresh state directory and keys; with
// several trees (--trees) the runs alternate between them, so a baseline and
// a change are measured in the same minutes at the same load. The process is
// killed (SIGKILL) once ready: its state is thrown away with the lab, and a
// clean stop of 100,000 SAs would add half a minute to every run.
//
//   node --import tsx bench/controller/startup.ts [--peers 50000] [--runs 1]
//        [--trees DIR[,DIR…]] [--core 1] [--cpu-prof DIR] [--node-flags "FLAG …"]
//        [--suite chacha20-poly1305|aes-128-gcm] [--lines]
//
// Root (namespaces); run it under the benchmark lock. Namespaces are named
// `$WESP_NS_PREFIX` (else `wbench-`) + `<pid>-<n>-start` and `…-peer`.
import { medianRange } from "../stats.ts";
import { readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Lab } from "../../host/lab/lab.ts";
import { ownerTag, sweepStale } from "../../host/lab/leftovers.ts";
import { MAX_CONFIG_BYTES } from "../../host/config/load.ts";
import { NS_PREFIX } from "../lab.ts";
import { ADDR } from "../tunnel/lab.ts";
import { configs, type Suite } from "../tunnel/wesp.ts";

const THIS_TREE = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const TICK = 100; // USER_HZ: /proc/PID/stat counts CPU time in 1/100 s on Linux

interface Options { peers: number; runs: number; trees: string[]; core: number; cpuProf?: string; nodeFlags: string[]; suite: Suite; lines: boolean }

interface Run {
  tree: string;
  load1: number;
  /** Spawn to "forwarding on", seconds. */
  readyS: number;
  /** User + system CPU seconds of wesp's process (all threads) at ready. */
  cpuS: number;
  /** wesp's lines before ready, with the seconds after the spawn each arrived. */
  lines: [number, string][];
}

function options(args: string[]): Options {
  const v: Record<string, string> = {};
  let lines = false;
  for (let i = 0; i < args.length; i += 2) {
    if (args[i] === "--lines") {
      lines = true;
      i--;
      continue;
    }
    if (!/^--(peers|runs|trees|core|cpu-prof|node-flags|suite)$/.test(args[i]) || args[i + 1] === undefined) throw new Error(`unknown option or missing value: ${args[i]}`);
    v[args[i].slice(2)] = args[i + 1];
  }
  const int = (s: string | undefined, d: number) => (s === undefined ? d : Number.parseInt(s, 10));
  const suite = (v.suite ?? "chacha20-poly1305") as Suite;
  if (suite !== "chacha20-poly1305" && suite !== "aes-128-gcm") throw new Error(`--suite: chacha20-poly1305 or aes-128-gcm, not ${suite}`);
  return {
    peers: int(v.peers, 50_000), runs: int(v.runs, 1), core: int(v.core, 1),
    trees: v.trees ? v.trees.split(",").map((t) => resolve(t)) : [THIS_TREE],
    cpuProf: v["cpu-prof"] ? resolve(v["cpu-prof"]) : undefined,
    nodeFlags: v["node-flags"] ? v["node-flags"].split(" ").filter(Boolean) : [],
    suite, lines,
  };
}

/** User + system CPU seconds of process `pid` and its threads so far. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // fields from 3 (state) on
  return (Number(f[11]) + Number(f[12])) / TICK; // utime (14), stime (15)
}

async function once(tree: string, o: Options): Promise<Run> {
  const lab = new Lab(ownerTag(NS_PREFIX));
  try {
    const ns = await lab.ns("start");
    await lab.veth(ns, "wan", await lab.ns("peer"), "wan");
    await ns.addr("wan", `${ADDR.eAwan}/24`);
    const [side] = configs(o.suite, lab.dir, o.peers, 1);
    const text = JSON.stringify(side);
    const file = join(lab.dir, "hub.json");
    writeFileSync(file, text, { mode: 0o600 });
    const size = Buffer.byteLength(text);
    const prof = o.cpuProf ? ["--cpu-prof", "--cpu-prof-dir", o.cpuProf] : [];
    const argv = [process.execPath, ...o.nodeFlags, ...prof, join(tree, "dist/bin/wesp.js"), "up",
      ...(size > MAX_CONFIG_BYTES ? ["--max-config-bytes", String(size)] : []), file];
    const load1 = loadavg()[0];
    const t0 = performance.now();
    const p = ns.spawn(argv, { core: o.core });
    const lines: [number, string][] = [];
    let seen = 0;
    for (;;) {
      await new Promise((r) => setTimeout(r, 20));
      const at = (performance.now() - t0) / 1000;
      const nl = p.output.lastIndexOf("\n");
      if (nl >= seen) {
        for (const l of p.output.slice(seen, nl).split("\n")) if (l) lines.push([at, l]);
        seen = nl + 1;
      }
      if (lines.some(([, l]) => /forwarding on/.test(l))) break;
      if (!p.running) throw new Error(`wesp up exited ${p.exitCode}: ${p.output.trim().split("\n").slice(-3).join(" | ")}`);
      if (at > 300) throw new Error("not ready after 300 s");
    }
    const readyS = lines[lines.length - 1][0];
    const cpuS = cpuSeconds(p.pid);
    // With --cpu-prof the profile is written at exit: a clean stop, however long.
    await p.stop(o.cpuProf ? "SIGTERM" : "SIGKILL", o.cpuProf ? 120_000 : 3000);
    return { tree, load1, readyS, cpuS, lines };
  } finally {
    await lab.teardown();
  }
}

async function main(o: Options): Promise<void> {
  await sweepStale(NS_PREFIX);
  const runs: Run[] = [];
  for (let r = 0; r < o.runs; r++) {
    for (const tree of o.trees) {
      const run = await once(tree, o);
      runs.push(run);
      process.stderr.write(`# ${tree} run ${r + 1}: load ${run.load1.toFixed(2)}, ready ${run.readyS.toFixed(1)} s, ${run.cpuS.toFixed(1)} CPU s\n`);
      if (o.lines) for (const [at, l] of run.lines) process.stderr.write(`#   ${at.toFixed(2).padStart(7)} ${l.slice(0, 160)}\n`);
    }
  }
  console.log(`wesp up with ${o.peers + 1} peers (${2 * (o.peers + 1)} SAs, ${o.suite}), pinned to core ${o.core}, ${o.runs} run(s) per tree, medians (min–max):`);
  console.log("| tree | load avg | launch → forwarding on, s | CPU s |");
  console.log("|---|---:|---:|---:|");
  for (const tree of o.trees) {
    const rs = runs.filter((r) => r.tree === tree);
    const col = (f: (r: Run) => number, d: number) => medianRange(rs.map(f), d);
    console.log(`| ${tree} | ${col((r) => r.load1, 1)} | ${col((r) => r.readyS, 1)} | ${col((r) => r.cpuS, 1)} |`);
  }
}

await main(options(process.argv.slice(2)));
