// `wesp bench ike`: how fast IKE SAs, each with one CHILD_SA (IKE_SA_INIT +
// IKE_AUTH, RFC 7296 §1.2), are set up between two processes: wesp ↔ wesp
// (bench/ike/wesp_peer.ts) and, in the same run and the same lab, charon ↔
// charon (bench/ike/charon.ts, driven over VICI). Both pairs: PSK, the same IKE
// and ESP proposals, forced UDP encapsulation, `--window` exchanges in flight
// from the initiator, initiator on core 0 and responder on
// core 1 of the two wan endpoints of bench/tunnel/lab.ts (namespaces
// `wicbench-<pid>-<n>-*`). Reported: tunnels per wall-clock second (start to the
// last CHILD_SA on the initiator) and per CPU-second of both process trees
// (/proc, bench/tunnel/cpu.ts), medians over the rounds, and wesp ÷ charon.
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg, release } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { int, list, prologue } from "../cli.ts";
import { ADDR, BenchLab } from "../tunnel/lab.ts";
import { nodeArgv, packagePath } from "../../host/util/package_root.ts";
import { sweepDeadRuns } from "../lab.ts";
import { until } from "../tunnel/contender.ts";
import { treeCpuSeconds } from "../tunnel/cpu.ts";
import { CHARON } from "../tunnel/strongswan.ts";
import { Charon, initiatorConf, responderConf } from "./charon.ts";

/** Namespace name prefix (the tunnel bench's lab under a name of its own); `<WESP_NS_PREFIX>icbench-` when set. */
const IKE_PREFIX = process.env.WESP_NS_PREFIX ? `${process.env.WESP_NS_PREFIX}icbench-` : "wicbench-";
import type { WespPeerOptions } from "./wesp_peer.ts";

const HELP = `Usage: wesp bench ike [options]        (as root)

IKE SAs with one CHILD_SA each, set up from one initiator process to one
responder process in network namespaces (wicbench-*): wesp ↔ wesp and
charon ↔ charon (kernel-libipsec) in two modes, interleaved, medians over the rounds.
Tunnels per second and per CPU-second of both processes (/proc), and wesp ÷ each.

Options:
  --tunnels N   IKE SAs (each with one CHILD_SA) per round (default 1000)
  --runs N      rounds (default 3)
  --window N    exchanges in flight from each initiator (default 32)
  --only LIST   wesp, charon (driven over VICI, --window at a time), charon-all
                (charon starting every connection as it loads); default all
  --json FILE   results as JSON (default bench/results/ike.json)
  -h, --help    this help
`;

const PSK = "wesp-bench-ike-psk-0123456789abcdef";
const CONTENDERS = ["wesp", "charon", "charon-all"] as const;
type Contender = (typeof CONTENDERS)[number];
const PROPOSALS = { ike: "aes128gcm16-prfsha256-x25519", esp: "aes128gcm16" };
/** The initiator on core 0, the responder on core 1 (as bench/tunnel pins its endpoints). */
const CORES = [0, availableParallelism() > 1 ? 1 : 0];

interface Options {
  tunnels: number;
  runs: number;
  window: number;
  only: Contender[];
  json: string;
}

interface Sample {
  contender: Contender;
  run: number;
  established: number;
  wallS: number;
  cpuInitiatorS: number;
  cpuResponderS: number;
}

function parse(args: string[]): Options | null {
  const { values } = parseArgs({
    args,
    options: { tunnels: { type: "string" }, runs: { type: "string" }, window: { type: "string" }, only: { type: "string" }, json: { type: "string" }, help: { type: "boolean", short: "h" } },
    strict: true,
  });
  if (values.help) return null;
  return {
    tunnels: int(values.tunnels, "--tunnels", 1, 100_000, 1000),
    runs: int(values.runs, "--runs", 1, 100, 3),
    window: int(values.window, "--window", 1, 10_000, 32),
    only: (list(values.only, "--only", CONTENDERS) ?? [...CONTENDERS]) as Contender[],
    json: resolve(values.json ?? packagePath("bench/results/ike.json")),
  };
}

/** One round of wesp ↔ wesp: both processes up, then CPU and time from the initiator's start to its last CHILD_SA. */
async function wespRound(lab: BenchLab, o: Options, run: number): Promise<Sample> {
  const peer = (role: WespPeerOptions["role"], local: string, remote: string) => {
    const path = join(lab.dir, `wesp-${role}.json`);
    const opts: WespPeerOptions = { role, local, remote, psk: PSK, ...PROPOSALS, tunnels: o.tunnels, window: o.window };
    writeFileSync(path, JSON.stringify(opts));
    const ns = role === "initiator" ? lab.eA : lab.eB;
    return ns.spawn([...nodeArgv("bench/ike/wesp_peer.ts"), path], { core: CORES[role === "initiator" ? 0 : 1] });
  };
  const resp = peer("responder", ADDR.eBwan, ADDR.eAwan);
  const init = peer("initiator", ADDR.eAwan, ADDR.eBwan);
  try {
    for (const p of [resp, init]) await until(() => /"ready"/.test(p.output) || !p.running, "wesp ready", 30_000);
    if (!resp.running || !init.running) throw new Error(`wesp exited: ${resp.output} ${init.output}`);
    const cpu0 = treeCpuSeconds([init.pid, resp.pid]);
    process.kill(init.pid, "SIGUSR2");
    const line = (await until(() => /\{"type":"done".*\}/.exec(init.output)?.[0] ?? (init.running ? undefined : "exited"), "wesp's tunnels", 600_000)) as string;
    const cpu1 = treeCpuSeconds([init.pid, resp.pid]);
    if (line === "exited") throw new Error(`wesp's initiator exited: ${init.output}`);
    const done = JSON.parse(line) as { established: number; failed: number; ms: number };
    return { contender: "wesp", run, established: done.established, wallS: done.ms / 1000, cpuInitiatorS: cpu1[0] - cpu0[0], cpuResponderS: cpu1[1] - cpu0[1] };
  } finally {
    await init.stop();
    await resp.stop();
  }
}

/**
 * One round of charon ↔ charon. "charon": the initiator's connections loaded, then
 * `window` VICI initiates in flight until the last CHILD_SA. "charon-all": the clock
 * starts as the connections load with `start_action = start`, and stops at the
 * initiator's last "CHILD_SA … established" log line.
 */
async function charonRound(lab: BenchLab, o: Options, run: number, mode: "charon" | "charon-all"): Promise<Sample> {
  const i = new Charon({ ns: lab.eA, dir: join(lab.dir, `${mode}-i-${run}`), local: ADDR.eAwan, remote: ADDR.eBwan, core: CORES[0] });
  const r = new Charon({ ns: lab.eB, dir: join(lab.dir, `${mode}-r-${run}`), local: ADDR.eBwan, remote: ADDR.eAwan, core: CORES[1] });
  const all = mode === "charon-all";
  try {
    await r.start(o.window);
    await i.start(o.window);
    await r.load(responderConf(r.side, PSK, PROPOSALS));
    const conf = initiatorConf(i.side, PSK, PROPOSALS, o.tunnels, all);
    if (!all) {
      await i.load(conf);
      await i.connect(Math.min(o.window, o.tunnels));
    }
    const cpu0 = treeCpuSeconds([i.proc!.pid, r.proc!.pid]);
    const t0 = performance.now();
    let established: number;
    if (all) {
      await i.load(conf);
      await until(() => i.established() >= o.tunnels || !i.proc!.running || !r.proc!.running, "charon's tunnels", 600_000);
      established = i.established();
    } else {
      established = await i.initiateAll(o.tunnels);
    }
    const wallS = (performance.now() - t0) / 1000;
    const cpu1 = treeCpuSeconds([i.proc!.pid, r.proc!.pid]);
    return { contender: mode, run, established, wallS, cpuInitiatorS: cpu1[0] - cpu0[0], cpuResponderS: cpu1[1] - cpu0[1] };
  } finally {
    await i.stop();
    await r.stop();
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function summarise(samples: Sample[], tunnels: number) {
  return CONTENDERS.flatMap((c) => {
    const ss = samples.filter((s) => s.contender === c && s.established === tunnels);
    if (!ss.length) return [];
    const perS = ss.map((s) => s.established / s.wallS);
    const perCpuS = ss.map((s) => s.established / (s.cpuInitiatorS + s.cpuResponderS));
    return [{
      contender: c, rounds: ss.length, tunnels,
      perSecond: { median: median(perS), min: Math.min(...perS), max: Math.max(...perS) },
      perCpuSecond: { median: median(perCpuS), min: Math.min(...perCpuS), max: Math.max(...perCpuS) },
      cpuInitiatorS: median(ss.map((s) => s.cpuInitiatorS)),
      cpuResponderS: median(ss.map((s) => s.cpuResponderS)),
      wallS: median(ss.map((s) => s.wallS)),
    }];
  });
}

export async function main(args: string[]): Promise<number> {
  const o = prologue("wesp bench ike", args, parse, HELP, "network namespaces");
  if (typeof o === "number") return o;
  const say = (l: string) => void process.stdout.write(l + "\n");
  sweepDeadRuns(say, IKE_PREFIX);
  const only = o.only.filter((c) => c === "wesp" || existsSync(CHARON) || (say(`charon skipped: ${CHARON} not installed (apt-get install charon-systemd libcharon-extra-plugins)`), false));
  const mach = { cpu: cpus()[0]?.model ?? "?", cores: availableParallelism(), kernel: release(), node: process.version, loadavgAtStart: loadavg().map((x) => +x.toFixed(2)) };
  say(`machine: ${mach.cpu}, ${mach.cores} cores, Linux ${mach.kernel}, Node ${mach.node}, load average ${mach.loadavgAtStart.join(" ")}`);
  const samples: Sample[] = [];
  const failures: string[] = [];
  const lab = new BenchLab(IKE_PREFIX);
  try {
    await lab.build();
    for (let run = 1; run <= o.runs; run++) {
      for (const c of only) {
        try {
          const s = c === "wesp" ? await wespRound(lab, o, run) : await charonRound(lab, o, run, c);
          samples.push(s);
          say(`round ${run}/${o.runs} ${c.padEnd(6)} ${s.established}/${o.tunnels} tunnels in ${s.wallS.toFixed(2)} s: ${(s.established / s.wallS).toFixed(1)}/s, ` +
            `CPU ${s.cpuInitiatorS.toFixed(2)} + ${s.cpuResponderS.toFixed(2)} s: ${(s.established / (s.cpuInitiatorS + s.cpuResponderS)).toFixed(1)} per CPU-s`);
        } catch (e) {
          const msg = (e as Error).message.split("\n").slice(0, 3).join(" ");
          say(`round ${run}/${o.runs} ${c}: failed: ${msg}`);
          failures.push(`${c} round ${run}: ${msg}`);
        }
      }
    }
  } finally {
    await lab.teardown();
  }
  const rows = summarise(samples, o.tunnels);
  const w = rows.find((r) => r.contender === "wesp");
  const ratios = w ? rows.filter((r) => r !== w).map((r) => ({ peer: r.contender, perSecond: w.perSecond.median / r.perSecond.median, perCpuSecond: w.perCpuSecond.median / r.perCpuSecond.median })) : [];
  say(`\n## IKE SA + CHILD_SA setup, ${o.tunnels} tunnels, medians of ${o.runs} rounds (min–max)\n`);
  say("| | tunnels/s | tunnels per CPU-s | CPU initiator s | CPU responder s |\n|---|---|---|---|---|");
  const range = (m: { median: number; min: number; max: number }) => `${m.median.toFixed(1)} (${m.min.toFixed(1)}–${m.max.toFixed(1)})`;
  for (const r of rows) say(`| ${r.contender} | ${range(r.perSecond)} | ${range(r.perCpuSecond)} | ${r.cpuInitiatorS.toFixed(2)} | ${r.cpuResponderS.toFixed(2)} |`);
  for (const x of ratios) say(`${x === ratios[0] ? "\n" : ""}wesp ÷ ${x.peer}: ${x.perSecond.toFixed(2)} × per second, ${x.perCpuSecond.toFixed(2)} × per CPU-second`);
  const result = {
    date: new Date().toISOString(),
    machine: { ...mach, loadavgAtEnd: loadavg().map((x) => +x.toFixed(2)) },
    options: { tunnels: o.tunnels, runs: o.runs, window: o.window, only: o.only, cores: CORES, proposals: PROPOSALS, auth: "psk" },
    rows, ratios, failures, samples,
  };
  mkdirSync(dirname(o.json), { recursive: true });
  writeFileSync(o.json, JSON.stringify(result, null, 1) + "\n");
  say(`wrote ${o.json}`);
  return rows.length === only.length && !failures.length ? 0 : 1;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (e) => {
    process.stderr.write(`wesp bench ike: ${(e as Error).message}\n`);
    process.exit(1);
  });
}
