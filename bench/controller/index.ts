// `wesp bench controller` (issue 8, "Scale"): one controller serving N
// simulated CEs — each a lightweight client holding its mTLS push channel
// (ce_swarm.ts, spread over child processes) — and how long a change takes to
// reach the last of them; the controller's memory and CPU; provisioning and
// certificate costs; then one CE installing many SAs (ce_sas.ts). SQLite
// (one controller), or PostgreSQL (two replicas sharing one cluster, CEs split
// between them, the change made through the first). Loopback only; no root.
import { fork, spawn, type ChildProcess } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ControllerClient } from "../../host/controller/api/client.ts";
import { loaderFlags, modulePath, packagePath, wespArgv } from "../../host/util/package_root.ts";
import { Usage, int, list } from "../cli.ts";
import { VPN, provision, spoke, type Provisioned } from "./provision.ts";
import { CAPS, install, largestLoadable, type InstallResult, type LoadResult } from "./ce_sas.ts";

export const help = `Usage: wesp bench controller [--ces N] [--stores sqlite,postgres] [--clients N]
                            [--sas N] [--only push,sas] [--json FILE]

One controller serving N simulated CEs (mTLS push channels), per store: time
from a change to its notification on the last channel, the controller's RSS,
heap and CPU; then one CE installing --sas SAs. docs/bench.md.

      --ces N        simulated CEs (spokes of one hub-and-spoke VPN; default 10000)
      --stores LIST  sqlite, postgres (two replicas; needs initdb/pg_ctl) (default sqlite)
      --clients N    child processes holding the channels (default 2)
      --sas N        SAs one CE installs (default 100000; both directions counted)
      --only LIST    push, sas (default both)
      --json FILE    write the results as JSON (default bench/results/controller.json)
`;

interface Options { ces: number; stores: string[]; clients: number; sas: number; only: string[]; json: string }

function parse(args: string[]): Options | null {
  const v: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "-h" || a === "--help") return null;
    if (!/^--(ces|stores|clients|sas|only|json)$/.test(a) || args[i + 1] === undefined) throw new Usage(`unknown option or missing value: ${a}`);
    v[a.slice(2)] = args[++i];
  }
  return {
    ces: int(v.ces, "--ces", 1, 60000, 10000),
    stores: list(v.stores, "--stores", ["sqlite", "postgres"]) ?? ["sqlite"],
    clients: int(v.clients, "--clients", 1, 16, 2),
    sas: int(v.sas, "--sas", 2, 200000, 100000),
    only: list(v.only, "--only", ["push", "sas"]) ?? ["push", "sas"],
    json: v.json ?? packagePath("bench/results/controller.json"),
  };
}

const log = (s: string) => process.stderr.write(`# ${s}\n`);

/** Prometheus text of the controller's --metrics socket: RSS, heap, CPU seconds. */
async function scrape(sock: string): Promise<{ rssMiB: number; heapMiB: number; cpuS: number }> {
  const text = await new Promise<string>((resolve, reject) => {
    request({ socketPath: sock, path: "/metrics" }, (res) => {
      let b = "";
      res.setEncoding("utf8").on("data", (d) => (b += d)).on("end", () => resolve(b));
    }).on("error", reject).end();
  });
  const val = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text)?.[1] ?? NaN);
  return { rssMiB: val("process_resident_memory_bytes") / 2 ** 20, heapMiB: val("nodejs_heap_size_used_bytes") / 2 ** 20, cpuS: val("process_cpu_seconds_total") };
}

interface Replica { proc: ChildProcess; url: string; sock: string; state: string }

async function startController(state: string, db: string): Promise<Replica> {
  const sock = join(state, "metrics.sock");
  const [node, ...wesp] = wespArgv("controller");
  const proc = spawn(node, [...wesp, "--state", state, "--db", db, "--listen", "127.0.0.1:0", "--stun", "off",
    "--metrics", sock, "--log-level", "warn"], { stdio: ["ignore", "pipe", "inherit"] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    proc.stdout!.on("data", (d) => {
      out += d;
      const m = /^(https:\/\/\S+)\n/m.exec(out);
      if (m) resolve(m[1]);
    });
    proc.once("exit", (c) => reject(new Error(`controller exited ${c} before serving`)));
  });
  for (let i = 0; i < 100; i++) {
    try {
      await scrape(sock);
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { proc, url, sock, state };
}

function once<T>(c: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve) => {
    const f = (m: { type: string }) => {
      if (m.type === type) {
        c.off("message", f);
        resolve(m as T);
      }
    };
    c.on("message", f);
  });
}

function pct(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

export interface ChangeResult {
  what: string;
  apiMs: number;
  heard: number;
  missing: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface PushResult {
  store: string;
  replicas: number;
  ces: number;
  provisioning: Omit<Provisioned, "ces">;
  connect: { seconds: number; open: number; failed: number; firstError?: string };
  controller: { idle: Stat[]; connected: Stat[]; after: Stat[]; connectCpuS: number[]; changeCpuS: number[] };
  changes: ChangeResult[];
  /** GET /v1/ce/config by one spoke (mean of 5, each a new TLS connection as the agent makes), at full size: each CE pulls after a change. */
  pullMs: { spoke: number };
}
type Stat = { rssMiB: number; heapMiB: number; cpuS: number };

async function runPush(o: Options, kind: string): Promise<PushResult> {
  const dir = mkdtempSync(join(tmpdir(), "wesp-bench-ctl-"));
  let cluster: { stop(): void; createDatabase(): Promise<string> } | undefined;
  const replicas: Replica[] = [];
  const swarms: ChildProcess[] = [];
  try {
    let db = join(dir, "a", "controller.db");
    if (kind === "postgres") {
      const { PgCluster } = await import("../../host/lab/pg_cluster.ts");
      cluster = await PgCluster.start();
      db = await cluster.createDatabase();
    }
    log(`${kind}: provisioning ${o.ces} spokes and their certificates`);
    const prov = await provision(join(dir, "a"), db, o.ces, o.ces, log);
    const names = kind === "postgres" ? ["a", "b"] : ["a"];
    for (const n of names.slice(1)) {
      mkdirSync(join(dir, n), { mode: 0o700 });
      cpSync(join(dir, "a", "master.key"), join(dir, n, "master.key"));
      cpSync(join(dir, "a", "ca"), join(dir, n, "ca"), { recursive: true });
    }
    for (const n of names) replicas.push(await startController(join(dir, n), db));
    const ca = readFileSync(join(dir, "a", "ca", "ca.pem"), "utf8");
    const idle = await Promise.all(replicas.map((r) => scrape(r.sock)));
    // Clients: contiguous slices, child c on replica c % replicas.
    const per = Math.ceil(prov.ces.length / o.clients);
    const t0 = performance.now();
    const ready = [];
    for (let c = 0; c < o.clients; c++) {
      const child = fork(modulePath("bench/controller/ce_swarm.ts"), [], { execArgv: loaderFlags(), stdio: ["ignore", "inherit", "inherit", "ipc"] });
      swarms.push(child);
      ready.push(once<{ open: number; failed: number; firstError: string; seconds: number }>(child, "ready"));
      child.send({ type: "start", ces: prov.ces.slice(c * per, (c + 1) * per), url: replicas[c % replicas.length].url, ca, concurrency: 64, timeoutMs: 120_000 });
    }
    const r = await Promise.all(ready);
    const connect = { seconds: (performance.now() - t0) / 1000, open: r.reduce((a, x) => a + x.open, 0), failed: r.reduce((a, x) => a + x.failed, 0), firstError: r.find((x) => x.firstError)?.firstError };
    log(`${connect.open} channels open (${connect.failed} failed${connect.firstError ? `: ${connect.firstError}` : ""}) in ${connect.seconds.toFixed(1)} s`);
    const connected = await Promise.all(replicas.map((x) => scrape(x.sock)));
    const op = new ControllerClient({ url: replicas[0].url, token: readFileSync(join(dir, "a", "operator.token"), "utf8").trim(), ca });
    const changes: ChangeResult[] = [];
    const change = async (what: string, act: () => Promise<unknown>) => {
      await Promise.all(swarms.map((s) => (s.send({ type: "arm", timeoutMs: 120_000 }), once(s, "armed"))));
      const heard = Promise.all(swarms.map((s) => once<{ at: number[]; missing: number }>(s, "heard")));
      const start = performance.timeOrigin + performance.now();
      await act();
      const apiMs = performance.timeOrigin + performance.now() - start;
      const h = await heard;
      const at = h.flatMap((x) => x.at).map((t) => t - start);
      const c = { what, apiMs, heard: at.length, missing: h.reduce((a, x) => a + x.missing, 0), p50Ms: pct(at, 50), p99Ms: pct(at, 99), maxMs: pct(at, 100) };
      log(`${what}: API ${apiMs.toFixed(0)} ms; ${c.heard} heard, p50 ${c.p50Ms.toFixed(0)} p99 ${c.p99Ms.toFixed(0)} max ${c.maxMs.toFixed(0)} ms, ${c.missing} missing`);
      changes.push(c);
    };
    await change("WAN port update (PATCH …/wan/inet)", () => op.updateWanPort(VPN, spoke(1).name, "inet", { publicAddress: "203.0.113.1", publicPort: 40000 }));
    await change("site added (POST …/sites: site, then its SAs)", () => op.addSite(VPN, spoke(o.ces + 2)));
    const after = await Promise.all(replicas.map((x) => scrape(x.sock)));
    const pullMs = { spoke: await timePull(prov.ces[0], replicas[replicas.length - 1].url, ca, 5) };
    return {
      store: kind, replicas: replicas.length, ces: o.ces, provisioning: { ...prov, ces: undefined } as unknown as Omit<Provisioned, "ces">,
      connect, controller: { idle, connected, after, connectCpuS: connected.map((x, i) => x.cpuS - idle[i].cpuS), changeCpuS: after.map((x, i) => x.cpuS - connected[i].cpuS) },
      changes, pullMs,
    };
  } finally {
    for (const s of swarms) s.kill();
    for (const r of replicas) {
      r.proc.kill("SIGTERM");
      await new Promise((res) => (r.proc.exitCode !== null ? res(null) : r.proc.once("exit", res)));
    }
    cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Mean ms of `n` config pulls by one CE (the whole config, as the agent pulls after every change). */
async function timePull(ce: { cert: string; key: string }, url: string, ca: string, n: number): Promise<number> {
  const { CeClient } = await import("../../host/agent/ce_client.ts");
  const c = new CeClient(url, { ca, cert: ce.cert, key: ce.key }, 120_000);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await c.call("GET", "/v1/ce/config");
  return (performance.now() - t0) / n;
}

interface SasResult { caps: typeof CAPS; largest: LoadResult; install: InstallResult[] }

async function runSas(o: Options): Promise<SasResult> {
  const peers = Math.floor(o.sas / 2);
  log(`one CE: the largest hub config the loader takes, then ${peers} peers (${o.sas} SAs) installed`);
  const largest = largestLoadable(1000, Math.max(2000, peers));
  log(`largest loadable: ${largest.peers} peers (${largest.bytes} bytes)`);
  const out: InstallResult[] = [];
  const chunk = Math.floor(largest.peers * 0.9);
  // The largest single config; then the asked-for count in chunks, with the default replay window
  // (a 16 KiB pool block per inbound SA) and with 960 (inline: docs/core.md).
  for (const [n, w] of [[largest.peers, undefined], [peers, undefined], [peers, 960]] as const) {
    out.push(await install(n, n === largest.peers ? n : chunk, w));
    log(`installed ${n} peers: ${JSON.stringify(out.at(-1))}`);
  }
  return { caps: CAPS, largest, install: out };
}

const f = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : "—");

function report(push: PushResult[], sas: SasResult | undefined): void {
  for (const p of push) {
    const pv = p.provisioning;
    console.log(`\n## ${p.store} (${p.replicas} controller${p.replicas > 1 ? "s" : ""}), ${p.ces} CEs`);
    console.log(`provisioning: ${pv.sites.count} sites ${f(pv.sites.seconds, 1)} s (per 1,000: ${pv.sitesByThousand.map((x) => f(x, 1)).join(", ")} s); ` +
      `${pv.sas.count} SAs ${f(pv.sas.seconds, 1)} s; ${pv.certs.count} certificates ${f(pv.certs.seconds, 1)} s (CPU ${f(pv.sites.cpuSeconds, 1)}, ${f(pv.sas.cpuSeconds, 1)}, ${f(pv.certs.cpuSeconds, 1)} s); one more site (API path) ${f(pv.oneMoreSiteMs)} ms`);
    console.log(`channels: ${p.connect.open} open, ${p.connect.failed} failed, in ${f(p.connect.seconds, 1)} s; config pull by a spoke ${f(p.pullMs.spoke)} ms`);
    console.log("| change | API ms | heard | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|---:|");
    for (const c of p.changes) console.log(`| ${c.what} | ${f(c.apiMs)} | ${c.heard}${c.missing ? ` (${c.missing} missing)` : ""} | ${f(c.p50Ms)} | ${f(c.p99Ms)} | ${f(c.maxMs)} |`);
    console.log("| controller | RSS idle | RSS connected | RSS after | heap idle | heap connected | heap after | CPU s connect | CPU s changes |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    p.controller.idle.forEach((_, i) => {
      const c = p.controller;
      console.log(`| ${"ab"[i]} | ${f(c.idle[i].rssMiB)} MiB | ${f(c.connected[i].rssMiB)} | ${f(c.after[i].rssMiB)} | ${f(c.idle[i].heapMiB)} | ${f(c.connected[i].heapMiB)} | ${f(c.after[i].heapMiB)} | ${f(c.connectCpuS[i], 1)} | ${f(c.changeCpuS[i], 2)} |`);
    });
  }
  if (sas) {
    console.log(`\n## one CE: caps ${CAPS.MAX_CONFIG_BYTES} bytes, ${CAPS.MAX_VALUES} values; largest loadable hub config ${sas.largest.peers} peers (${sas.largest.bytes} bytes)`);
    console.log("| peers | SAs | window | loaded as | load ms | plan ms | install ms | tick ms | journal → files s | RSS MiB | heap MiB | core MiB |\n|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (const r of sas.install) console.log(`| ${r.peers} | ${r.sas} | ${r.replayWindow ?? 1024} | ${r.refused ? `refused: ${r.refused}` : r.loadedAs} | ${f(r.loadMs)} | ${f(r.planMs)} | ${f(r.installMs)} | ${f(r.tickMs, 1)} | ${f(r.migrateMs / 1000, 1)} | ${f(r.rssAfterMiB)} | ${f(r.heapAfterMiB)} | ${f(r.coreMemoryMiB)} |`);
  }
}

export async function main(args: string[]): Promise<number> {
  let o: Options | null;
  try {
    o = parse(args);
  } catch (e) {
    process.stderr.write(`wesp bench controller: ${(e as Error).message}\nRun 'wesp bench controller --help' for usage.\n`);
    return 2;
  }
  if (!o) {
    process.stdout.write(help);
    return 0;
  }
  const push: PushResult[] = [];
  if (o.only.includes("push")) for (const s of o.stores) push.push(await runPush(o, s));
  const sas = o.only.includes("sas") ? await runSas(o) : undefined;
  report(push, sas);
  const os = await import("node:os");
  const machine = { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, loadavg: os.loadavg() };
  writeFileSync(o.json, JSON.stringify({ machine, date: new Date().toISOString(), push, sas }, null, 2) + "\n");
  log(`JSON: ${o.json}`);
  return 0;
}
