// `wesp bench tunnel`: iperf3 through two tunnel endpoints in network
// namespaces, wesp against strongSwan (kernel-libipsec), wireguard-go,
// OpenVPN 2.6, Nebula and the bare veth, all in one run and one lab,
// interleaved (every contender once per round, rounds repeated), medians
// with min–max, ratios per endpoint CPU-second; docs/performance.md.
import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg, release } from "node:os";
import { dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import { exec } from "../../host/util/proc.ts";
import { int, list, prologue } from "../cli.ts";
import { allContenders, selectable } from "./contenders.ts";
import type { Running } from "./contender.ts";
import { BenchLab } from "./lab.ts";
import { sweepDeadRuns } from "../lab.ts";
import { packagePath } from "../../host/util/package_root.ts";
import { ratios, ratioTable, resultsTable, summarise } from "./report.ts";
import { chart } from "./svg.ts";
import { prepare } from "./tools.ts";
import { raiseSocketBufferCeiling } from "./sockbuf.ts";
import { countersDelta, describeCounters, snapshot } from "./endpoint_counters.ts";
import { describeCpu } from "./cpu.ts";
import { IperfServer, measure, UDP_BUFFER_BYTES, warmUp, WORKLOAD_LABEL, WORKLOADS, type Sample, type Workload } from "./workload.ts";

const HELP = `Usage: wesp bench tunnel [options]        (as root; npm run bench:tunnel -- [options])

iperf3 through two tunnel endpoints in network namespaces (wbench-*), each endpoint
pinned to its own core with one iperf3 process; every contender in the same lab,
interleaved, medians with min–max. Mbit/s, kpps, loss, and the CPU seconds of each
endpoint's process tree (/proc), so Mbit per endpoint CPU-second is exact.

Options:
  --runs N          rounds (each contender once per round; default 3)
  --seconds S       seconds per test (default 10)
  --only LIST       contenders, by family or id (default all):
                    ${selectable().join(", ")}
  --suites LIST     cipher suites for wesp, strongSwan and OpenVPN (default both):
                    aes-128-gcm, chacha20-poly1305
  --workloads LIST  ${WORKLOADS.join(", ")} (default all)
  --sas N           N extra static peers (one SA pair / key each) on each endpoint,
                    0..100000, for wesp and wireguard-go (default 0)
  --workers N       wesp's node.workers (default 1)
  --json FILE       results as JSON (default bench/results/tunnel.json)
  --svg FILE        the chart (default: the JSON's path with .svg)
  --no-install      never apt-get install a missing package (the contender is skipped)
  -h, --help        this help
`;

interface Options {
  runs: number;
  seconds: number;
  only: string[] | null;
  suites: string[] | null;
  workloads: Workload[];
  sas: number;
  workers: number;
  json: string;
  svg: string;
  install: boolean;
}

function parse(args: string[]): Options | null {
  const { values } = parseArgs({
    args,
    options: {
      runs: { type: "string" }, seconds: { type: "string" }, only: { type: "string" }, suites: { type: "string" },
      workloads: { type: "string" }, sas: { type: "string" }, workers: { type: "string" }, json: { type: "string" },
      svg: { type: "string" }, "no-install": { type: "boolean" }, help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) return null;
  const json = resolve(values.json ?? packagePath("bench/results/tunnel.json"));
  return {
    runs: int(values.runs, "--runs", 1, 100, 3),
    seconds: int(values.seconds, "--seconds", 1, 3600, 10),
    only: list(values.only, "--only", selectable()),
    suites: list(values.suites, "--suites", ["aes-128-gcm", "chacha20-poly1305"]),
    workloads: (list(values.workloads, "--workloads", WORKLOADS) ?? [...WORKLOADS]) as Workload[],
    sas: int(values.sas, "--sas", 0, 100_000, 0),
    workers: int(values.workers, "--workers", 1, 256, 1),
    json,
    svg: resolve(values.svg ?? json.replace(/\.json$/, "") + ".svg"),
    install: !values["no-install"],
  };
}

async function machine(): Promise<Record<string, unknown>> {
  const lscpu = (await exec(["lscpu"]).catch(() => null))?.stdout ?? "";
  const model = /^Model name:\s*(.+)$/m.exec(lscpu)?.[1]?.trim() ?? "?";
  return { cpu: model, cores: availableParallelism(), kernel: release(), node: process.version, loadavgAtStart: loadavg().map((x) => +x.toFixed(2)) };
}

export async function main(args: string[]): Promise<number> {
  const o = prologue("wesp bench tunnel", args, parse, HELP, "network namespaces, TUN devices, apt-get");
  if (typeof o === "number") return o;
  const say = (l: string) => void process.stdout.write(l + "\n");
  sweepDeadRuns(say);

  const chosen = allContenders().filter((c) =>
    (!o.only || o.only.includes(c.family) || o.only.includes(c.id)) && (!o.suites || !c.suite || o.suites.includes(c.suite)));
  const { skip, error } = await prepare(chosen, o.install, say);
  if (error) {
    process.stderr.write(`wesp bench tunnel: ${error}\n`);
    return 1;
  }
  const cores: [number, number] = [0, availableParallelism() > 1 ? 1 : 0];
  const mach = await machine();
  say(`machine: ${mach.cpu}, ${mach.cores} cores, Linux ${mach.kernel}, Node ${mach.node}, load average ${(mach.loadavgAtStart as number[]).join(" ")}`);
  if (cores[0] === cores[1]) say("one core only: both endpoints share it");
  if (o.workers > 1) say(`--workers ${o.workers}: wesp runs ${o.workers} packet workers (SPIs scaled to multiples of ${o.workers}); one flow stays on one worker`);

  const runnable = chosen.filter((c) => !skip.has(c.id));
  const versions = new Map<string, string>();
  for (const c of runnable) versions.set(c.id, await c.version());
  const notes = new Map<string, Set<string>>();
  const note = (id: string, n: string) => notes.set(id, (notes.get(id) ?? new Set()).add(n));
  if (o.sas) for (const c of runnable) if (c.noSas) note(c.id, `--sas not applied: ${c.noSas}`);
  const failures = new Map<string, string[]>();
  const samples: Sample[] = [];
  const lab = new BenchLab();
  const restoreBuffers = raiseSocketBufferCeiling(UDP_BUFFER_BYTES, say);
  try {
    await lab.build();
    const server = new IperfServer(lab, cores[1]);
    await server.ensure();
    for (let run = 1; run <= o.runs; run++) {
      for (const c of runnable) {
        say(`round ${run}/${o.runs}: ${c.label}`);
        let r: Running | undefined;
        try {
          const t0 = Date.now();
          r = await c.start({ lab, cores, sas: c.noSas ? 0 : o.sas, workers: o.workers, log: say });
          if (o.sas && !c.noSas) note(c.id, `started with ${o.sas} extra peers in ${((Date.now() - t0) / 1000).toFixed(1)} s (launch to ready)`);
          for (const n of r.notes) note(c.id, n);
          await warmUp(lab, server, cores[0]);
          for (const w of o.workloads) {
            const before = r.controlSockets ? await snapshot(r.controlSockets) : null;
            const m = await measure(lab, server, r.pids, cores[0], w, o.seconds);
            const after = r.controlSockets ? await snapshot(r.controlSockets) : null;
            const endpoints = before && after ? after.map((a, i) => (a && before[i] ? countersDelta(before[i]!, a) : null)) : undefined;
            samples.push({ contender: c.id, run, ...m, ...(endpoints ? { endpoints } : {}) });
            const per = m.mbitPerCpuS === null ? "" : `, ${m.mbitPerCpuS.toFixed(0)} Mbit per CPU-s (CPU ${m.cpu.map((x) => x.toFixed(2)).join(" + ")} s)`;
            say(`  ${WORKLOAD_LABEL[w].padEnd(15)} ${m.mbps.toFixed(0).padStart(6)} Mbit/s ${m.kpps.toFixed(1).padStart(7)} kpps${m.lossPercent !== null ? `, loss ${m.lossPercent.toFixed(1)} %` : ""}${per}`);
            if (endpoints) say(`    ${describeCounters(endpoints)}`);
            if (m.cpuUser && m.cores) say(`    ${describeCpu(m.cpu, m.cpuUser, m.cores, cores)}`);
          }
        } catch (e) {
          const msg = (e as Error).message.split("\n").slice(0, 3).join(" ");
          say(`  failed: ${msg}`);
          failures.set(c.id, [...(failures.get(c.id) ?? []), `round ${run}: ${msg}`]);
        } finally {
          await r?.stop();
        }
      }
    }
  } finally {
    await lab.teardown();
    restoreBuffers();
  }

  const labels = new Map(runnable.filter((c) => samples.some((s) => s.contender === c.id)).map((c) => [c.id, c.label]));
  const family = (id: string) => chosen.find((c) => c.id === id)?.family ?? id;
  const rows = summarise(samples, labels);
  const rs = ratios(rows, family);
  const loadEnd = loadavg().map((x) => +x.toFixed(2));
  const contenders = chosen.map((c) => ({
    id: c.id, family: c.family, label: c.label, cipher: c.cipher, version: versions.get(c.id) ?? null,
    ran: labels.has(c.id),
    skipped: skip.get(c.id) ?? (labels.has(c.id) ? null : `failed every round: ${(failures.get(c.id) ?? ["?"])[0]}`),
    failures: failures.get(c.id) ?? [],
    notes: [...(notes.get(c.id) ?? [])],
  }));
  const result = {
    date: new Date().toISOString(),
    machine: { ...mach, loadavgAtEnd: loadEnd },
    options: { runs: o.runs, seconds: o.seconds, workloads: o.workloads, sas: o.sas, workers: o.workers, cores },
    contenders,
    rows,
    ratios: rs,
    samples,
  };

  say("\n## Results (medians, min–max in brackets)\n");
  say(resultsTable(rows));
  say("\n## wesp ÷ peer, Mbit per endpoint CPU-second (Mbit/s ratio in brackets)\n");
  say(ratioTable(rs, labels));
  say("\n## Contenders\n");
  for (const c of contenders) {
    say(`- ${c.label} (${c.cipher}; ${c.version ?? "not installed"}): ${c.ran ? "ran" : `SKIPPED: ${c.skipped}`}`);
    for (const n of [...c.notes, ...(c.ran ? c.failures : [])]) say(`    ${n}`);
  }
  say(`\nload average at the start ${(mach.loadavgAtStart as number[]).join(" ")}, at the end ${loadEnd.join(" ")} (${mach.cores} cores)`);
  mkdirSync(dirname(o.json), { recursive: true });
  writeFileSync(o.json, JSON.stringify(result, null, 1) + "\n");
  const sub = `${mach.cpu}, ${mach.cores} cores, Linux ${mach.kernel}, Node ${mach.node}; ${o.runs} rounds × ${o.seconds} s; ${result.date.slice(0, 10)}`;
  mkdirSync(dirname(o.svg), { recursive: true });
  writeFileSync(o.svg, chart(rows, family, sub));
  say(`wrote ${o.json} and ${o.svg}`);
  return labels.size ? 0 : 1;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (e) => {
    process.stderr.write(`wesp bench tunnel: ${(e as Error).message}\n`);
    process.exit(1);
  });
}
