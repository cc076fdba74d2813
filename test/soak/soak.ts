// The soak: two CEs running `wesp up` with an impairment relay between them,
// traffic both ways for a long time, then an account of every packet.
//
//   hostA ─lan─ ceA ─wan──── a  [mid: relay.ts]  b ────wan─ ceB ─lan─ hostB
//   10.1.0.2   10.1.0.1 192.0.2.1  192.0.2.254   198.51.100.1  198.51.100.2  10.2.0.1  10.2.0.2
//   fd00:1::2  fd00:1::1                                                      fd00:2::1 fd00:2::2
//
// Namespaces are `wsoak-<pid>-<n>-<label>` (host/lab/ removes them, with every
// process in them, on success, failure, signals and exit). The middle namespace
// does no IP forwarding: each CE's peer address is the relay's address on its
// side, and the relay (test/soak/relay.ts) forwards ESP-in-UDP between its two
// sockets, dropping, duplicating, reordering and delaying by a seeded PRNG and
// logging each such packet with its SPI and sequence number.
//
// Traffic (test/soak/agent.py in hostA and hostB): a numbered UDP stream each way
// at `rate` datagrams/s, and ICMP + ICMPv6 echo both ways. Sampled every
// `sampleSec`: VmRSS and open fds of both wesp processes (/proc/PID).
//
// Checks (docs/soak.md):
//   replay       per inbound SA, wesp's REPLAY and REPLAY_OLD counts equal the
//                relay log's predicted ones (duplicates and late packets it sent),
//                and its accepted packets equal the relay's; no other drop reason
//   stream       no datagram delivered twice or corrupted; the datagrams and pings
//                that never arrived are no more than the ESP packets the relay
//                lost (dropped, or only ever sent too late or as a replay)
//   rss          VmRSS after warm-up grows less than max(10 %, 8 MiB)
//   fds          no more open fds at the end than after warm-up
//   exit         both `wesp up` ran throughout and exit 0 on SIGTERM
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync, copyFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { exec, waitFor } from "../../host/util/proc.ts";
import { Lab } from "../../host/lab/lab.ts";
import { ownerTag, sweepStale } from "../../host/lab/leftovers.ts";
import type { LabProcess } from "../../host/lab/process.ts";
import type { RelaySummary } from "./relay.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const WESP_BIN = join(ROOT, "bin/wesp.js");
const RELAY = join(ROOT, "test/soak/relay.ts");
const AGENT = join(ROOT, "test/soak/agent.py");
const SCHEMA = join(ROOT, "host/config/schema.json");
const PYTHON = "/usr/bin/python3";

export const NS_PREFIX = "wsoak-";

export const ADDR = {
  hostA: { v4: "10.1.0.2", v6: "fd00:1::2" },
  ceAlan: { v4: "10.1.0.1", v6: "fd00:1::1" },
  ceAwan: "192.0.2.1",
  relayA: "192.0.2.254",
  relayB: "198.51.100.1",
  ceBwan: "198.51.100.2",
  ceBlan: { v4: "10.2.0.1", v6: "fd00:2::1" },
  hostB: { v4: "10.2.0.2", v6: "fd00:2::2" },
};
const SPI_AB = 0x5a0a, SPI_BA = 0x5a0b;
const PORT = 4500;
const STREAM_PORT = 7000;

export interface SoakOptions {
  minutes: number;
  /** Stream datagrams per second, each direction. */
  rate: number;
  /** Echo requests per second from each host (IPv4 and IPv6 alternately). */
  pingRate: number;
  seed: number;
  /** Anti-replay window of both SAs (small, so that late packets fall left of it). */
  window: number;
  suite: string;
  drop: number;
  dup: number;
  reorder: number;
  delay: number;
  reorderMax: number;
  delayMinMs: number;
  delayMaxMs: number;
  dupDelayMaxMs: number;
  sampleSec: number;
  /** Copy the relay log, its summary, the agents' reports and wesp's logs here. */
  outDir?: string;
  log?: (s: string) => void;
}

export const DEFAULTS: SoakOptions = {
  minutes: 10, rate: 400, pingRate: 4, seed: 1, window: 128, suite: "aes-256-gcm",
  drop: 0.01, dup: 0.01, reorder: 0.02, delay: 0.01, reorderMax: 32,
  delayMinMs: 10, delayMaxMs: 600, dupDelayMaxMs: 600, sampleSec: 10,
};

export interface Sample {
  t: number;
  rssKiB: [number, number];
  fds: [number, number];
}

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

export interface DirResult {
  dir: "AB" | "BA";
  spi: number;
  relay: { received: number; dropped: number; duplicated: number; reordered: number; delayed: number; predicted: { OK: number; REPLAY: number; REPLAY_OLD: number }; lost: number };
  /** From the relay log (each line counted), to cross-check the summary. */
  log: { drop: number; dup: number; reorder: number; delay: number; REPLAY: number; REPLAY_OLD: number };
  /** sendLost: datagrams its WAN socket failed to send or gave up on (status `failed` + `unsent`). */
  sender: { espSent: number; sendLost: number };
  /** tunLost: packets its TUN failed to write or gave up on. */
  receiver: { accepted: number; drops: Record<string, number>; kernelDrops: number; tunLost: number };
  stream: { sent: number; received: number; missing: number; duplicates: number; corrupt: number; reordered: number; rcvbufDrops: number | null };
}

export interface SoakResult {
  options: SoakOptions;
  seconds: number;
  stateDir: boolean;
  dirs: DirResult[];
  pings: { from: string; dst: string; sent: number; received: number; duplicates: number }[];
  samples: Sample[];
  warmupSec: number;
  rss: { baselineKiB: [number, number]; endKiB: [number, number]; maxKiB: [number, number]; boundKiB: [number, number] };
  fds: { baseline: [number, number]; end: [number, number]; max: [number, number] };
  relayKernelDrops: { a: number | null; b: number | null };
  /** Non-zero kernel drop counters per namespace (interfaces, /proc/net/snmp). */
  kernelDrops: Record<string, number>;
  /** Packets the relay still held or had scheduled when it stopped (0: the drain was long enough). */
  relayPendingAtEnd: number;
  outboundDrops: [Record<string, number>, Record<string, number>];
  checks: Check[];
  ok: boolean;
  outDir?: string;
}

const KEY_BYTES: Record<string, number> = {
  "aes-128-gcm": 20, "aes-192-gcm": 28, "aes-256-gcm": 36, "chacha20-poly1305": 36,
  "aes-128-cbc-hmac-sha256": 16, "aes-256-cbc-hmac-sha256": 32,
};

/** Whether the config schema has `node.state_dir` (durable sequence numbers, issue 6 item 1). */
function schemaHasStateDir(): boolean {
  try {
    return "state_dir" in JSON.parse(readFileSync(SCHEMA, "utf8")).$defs.node.properties;
  } catch {
    return false;
  }
}

/** Both CEs' configs: each one's peer is the relay's address on its side. */
function configs(o: SoakOptions, dir: string, stateDir: boolean): { a: object; b: object } {
  const hex = (n: number) => randomBytes(n).toString("hex");
  const kAB = hex(KEY_BYTES[o.suite]), kBA = hex(KEY_BYTES[o.suite]);
  const cbc = o.suite.includes("cbc");
  const hAB = hex(32), hBA = hex(32);
  const side = (A: boolean) => {
    const me = A ? "ceA" : "ceB";
    const state = join(dir, `${me}-state`);
    if (stateDir) mkdirSync(state, { mode: 0o700, recursive: true });
    return {
      version: 1,
      node: {
        name: me,
        wan: [{ name: "wan", address: A ? ADDR.ceAwan : ADDR.ceBwan, port: PORT, encap: "udp" }],
        tun: { name: "wesp0", mtu: 1400 },
        local_prefixes: A ? ["10.1.0.0/24", "fd00:1::/64"] : ["10.2.0.0/24", "fd00:2::/64"],
        control: { socket: join(dir, `${me}.sock`) },
        workers: 1,
        ...(stateDir ? { state_dir: state } : {}),
      },
      peers: [{
        name: A ? "ceB" : "ceA",
        address: A ? ADDR.relayA : ADDR.relayB,
        port: PORT,
        nat_t: true,
        prefixes: A ? ["10.2.0.0/24", "fd00:2::/64"] : ["10.1.0.0/24", "fd00:1::/64"],
        mode: "tunnel",
        sas: [{
          spi_in: A ? SPI_BA : SPI_AB,
          spi_out: A ? SPI_AB : SPI_BA,
          suite: o.suite,
          key_in: A ? kBA : kAB,
          key_out: A ? kAB : kBA,
          ...(cbc ? { auth_key_in: A ? hBA : hAB, auth_key_out: A ? hAB : hBA } : {}),
          replay_window: o.window,
        }],
      }],
    };
  };
  return { a: side(true), b: side(false) };
}

async function build(lab: Lab): Promise<void> {
  const [hA, ceA, mid, ceB, hB] = [await lab.ns("hA"), await lab.ns("ceA"), await lab.ns("mid"), await lab.ns("ceB"), await lab.ns("hB")];
  await lab.veth(hA, "lan", ceA, "lan");
  await lab.veth(ceA, "wan", mid, "toA");
  await lab.veth(mid, "toB", ceB, "wan");
  await lab.veth(ceB, "lan", hB, "lan");
  const plan: [string, string, string][] = [
    ["hA", "lan", `${ADDR.hostA.v4}/24`], ["hA", "lan", `${ADDR.hostA.v6}/64`],
    ["ceA", "lan", `${ADDR.ceAlan.v4}/24`], ["ceA", "lan", `${ADDR.ceAlan.v6}/64`],
    ["ceA", "wan", `${ADDR.ceAwan}/24`], ["mid", "toA", `${ADDR.relayA}/24`],
    ["mid", "toB", `${ADDR.relayB}/24`], ["ceB", "wan", `${ADDR.ceBwan}/24`],
    ["ceB", "lan", `${ADDR.ceBlan.v4}/24`], ["ceB", "lan", `${ADDR.ceBlan.v6}/64`],
    ["hB", "lan", `${ADDR.hostB.v4}/24`], ["hB", "lan", `${ADDR.hostB.v6}/64`],
  ];
  for (const [ns, dev, cidr] of plan) await lab.at(ns).addr(dev, cidr);
  for (const ce of [ceA, ceB]) await ce.forwarding();
  // the middle forwards nothing itself: only the relay carries packets across
  await mid.run(["sysctl", "-qw", "net.ipv4.ip_forward=0", "net.ipv6.conf.all.forwarding=0"]);
  await hA.route("default", ADDR.ceAlan.v4);
  await hA.route("default", ADDR.ceAlan.v6);
  await hB.route("default", ADDR.ceBlan.v4);
  await hB.route("default", ADDR.ceBlan.v6);
}

const readLog = (p: LabProcess) => (p.log && existsSync(p.log) ? readFileSync(p.log, "utf8") : "");

function vmRssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : NaN;
}
/**
 * Open fds of `pid`: the fewest of six readings 100 ms apart. wesp opens files for a moment
 * (the state directory's atomic write: temporary file, fsync, rename, fsync of the directory);
 * a leaked fd is there in every reading, such a moment is not.
 */
async function fdCount(pid: number): Promise<number> {
  let n = Infinity;
  for (let i = 0; i < 6; i++) {
    if (i) await new Promise((r) => setTimeout(r, 100));
    n = Math.min(n, readdirSync(`/proc/${pid}/fd`).length);
  }
  return n;
}

/** `wesp status --json`; tried 3 times (a shared tree's package.json caught mid-write once broke the CLI's start). */
async function wespStatus(sock: string): Promise<any> {
  for (let i = 1; ; i++) {
    const r = await exec([process.execPath, WESP_BIN, "status", "--control", sock, "--json"], { timeoutMs: 30_000 });
    if (r.code === 0) return JSON.parse(r.stdout);
    if (i === 3) throw new Error(`wesp status --control ${sock}: exit ${r.code}: ${r.stderr}`);
    await new Promise((res) => setTimeout(res, 2000));
  }
}

const SNMP_DROPS = new Set([
  "Ip.InHdrErrors", "Ip.InAddrErrors", "Ip.InUnknownProtos", "Ip.InDiscards", "Ip.OutDiscards", "Ip.OutNoRoutes", "Ip.ReasmFails", "Ip.FragFails",
  "Udp.InErrors", "Udp.RcvbufErrors", "Udp.SndbufErrors", "Udp.NoPorts", "Udp.InCsumErrors", "Icmp.InErrors",
]);

/**
 * The kernel's own drop counters in each namespace (all start at 0 with the namespace):
 * interfaces' rx/tx dropped and errors, and the IPv4/UDP drop counters of /proc/net/snmp.
 * Non-zero ones only, as "ns iface counter" → n. Where a loss the relay did not make happened.
 */
async function kernelDrops(lab: Lab): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const ns of ["hA", "ceA", "mid", "ceB", "hB"]) {
    const links = JSON.parse(await lab.at(ns).run(["ip", "-s", "-j", "link", "show"])) as { ifname: string; stats64?: Record<"rx" | "tx", Record<string, number>> }[];
    for (const l of links) {
      for (const d of ["rx", "tx"] as const) {
        for (const k of ["dropped", "errors"]) if (l.stats64?.[d]?.[k]) out[`${ns} ${l.ifname} ${d}.${k}`] = l.stats64[d][k];
      }
    }
    const snmp = (await lab.at(ns).run(["cat", "/proc/net/snmp"])).trim().split("\n");
    for (let i = 0; i + 1 < snmp.length; i += 2) {
      const names = snmp[i].split(/\s+/), values = snmp[i + 1].split(/\s+/);
      const proto = names[0].replace(":", "");
      names.slice(1).forEach((n, j) => {
        const v = Number(values[j + 1]);
        if (v && SNMP_DROPS.has(`${proto}.${n}`)) out[`${ns} ${proto}.${n}`] = v;
      });
    }
  }
  return out;
}

/** Counts the relay log's lines per direction, SPI and event (see relay.ts for the format). */
export function countLog(text: string): Map<string, DirResult["log"]> {
  const by = new Map<string, DirResult["log"]>();
  for (const line of text.split("\n")) {
    if (!line) continue;
    const f = line.split("\t");
    const key = `${f[1]}/${f[3]}`;
    let c = by.get(key);
    if (!c) by.set(key, (c = { drop: 0, dup: 0, reorder: 0, delay: 0, REPLAY: 0, REPLAY_OLD: 0 }));
    switch (f[2]) {
      case "drop": case "dup": case "reorder": case "delay":
        c[f[2]]++;
        break;
      case "emit":
        if (f[6] === "REPLAY" || f[6] === "REPLAY_OLD") c[f[6]]++;
        break;
    }
  }
  return by;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
};

export async function runSoak(opt: SoakOptions): Promise<SoakResult> {
  const say = opt.log ?? (() => {});
  sweepStale(NS_PREFIX); // what an earlier soak left when it was killed with SIGKILL
  const lab = new Lab(ownerTag(NS_PREFIX));
  try {
    return await soakIn(lab, opt, say);
  } finally {
    await lab.teardown();
  }
}

async function soakIn(lab: Lab, o: SoakOptions, say: (s: string) => void): Promise<SoakResult> {
  const seconds = Math.round(o.minutes * 60);
  const warmupSec = Math.min(60, Math.max(10, Math.round(seconds / 4)));
  await build(lab);
  const stateDir = schemaHasStateDir();
  const { a, b } = configs(o, lab.dir, stateDir);
  const cfgA = join(lab.dir, "ceA.yaml"), cfgB = join(lab.dir, "ceB.yaml");
  writeFileSync(cfgA, stringify(a), { mode: 0o600 });
  writeFileSync(cfgB, stringify(b), { mode: 0o600 });
  const sockA = join(lab.dir, "ceA.sock"), sockB = join(lab.dir, "ceB.sock");
  say(`lab ${lab.tag}*: hostA ─ ceA ─ relay ─ ceB ─ hostB; ${o.suite}, replay window ${o.window}${stateDir ? ", state_dir per CE" : ""}`);

  // relay first, so the CEs' first packets already pass through it
  const relayLog = join(lab.dir, "relay.tsv"), relaySummary = join(lab.dir, "relay-summary.json");
  const relay = lab.at("mid").spawn([
    process.execPath, "--import", "tsx", RELAY,
    "--a-listen", `${ADDR.relayA}:${PORT}`, "--a-peer", `${ADDR.ceAwan}:${PORT}`,
    "--b-listen", `${ADDR.relayB}:${PORT}`, "--b-peer", `${ADDR.ceBwan}:${PORT}`,
    "--log", relayLog, "--summary", relaySummary, "--seed", String(o.seed), "--window", String(o.window),
    "--drop", String(o.drop), "--dup", String(o.dup), "--reorder", String(o.reorder), "--delay", String(o.delay),
    "--reorder-max", String(o.reorderMax), "--delay-min", String(o.delayMinMs), "--delay-max", String(o.delayMaxMs),
    "--dup-delay-max", String(o.dupDelayMaxMs),
  ], { log: "relay", cwd: ROOT });
  await waitFor(() => /relay: ready/.test(readLog(relay)) || !relay.running, "the relay", 30_000);
  if (!relay.running) throw new Error(`relay did not start:\n${readLog(relay)}`);

  const ceA = lab.at("ceA").spawn([process.execPath, WESP_BIN, "up", cfgA], { log: "wesp-ceA" });
  const ceB = lab.at("ceB").spawn([process.execPath, WESP_BIN, "up", cfgB], { log: "wesp-ceB" });
  for (const p of [ceA, ceB]) {
    await waitFor(() => /forwarding on/.test(readLog(p)) || !p.running, `wesp up (${p.label})`, 60_000);
    if (!p.running) throw new Error(`${p.label} exited ${p.exitCode}:\n${readLog(p)}`);
    const comm = readFileSync(`/proc/${p.pid}/comm`, "utf8").trim();
    if (comm !== "node") throw new Error(`${p.label}: pid ${p.pid} is ${comm}, not node`);
  }
  say(`wesp up: ceA pid ${ceA.pid}, ceB pid ${ceB.pid}; relay seed ${o.seed}: drop ${o.drop}, dup ${o.dup}, reorder ${o.reorder} (≤ ${o.reorderMax}), delay ${o.delay} (${o.delayMinMs}-${o.delayMaxMs} ms)`);

  const drain = Math.ceil(Math.max(o.delayMaxMs, o.dupDelayMaxMs, 500) / 1000) + 4;
  const agentArgs = (me: "A" | "B") => {
    const [bind, peer] = me === "A" ? [ADDR.hostA, ADDR.hostB] : [ADDR.hostB, ADDR.hostA];
    return [PYTHON, AGENT, "--bind", bind.v4, "--peer", peer.v4, "--port", String(STREAM_PORT), "--rate", String(o.rate),
      "--seconds", String(seconds), "--drain", String(drain), "--ping", peer.v4, "--ping", peer.v6,
      "--ping-rate", String(o.pingRate), "--out", join(lab.dir, `agent-${me}.json`), "--go", go];
  };
  const go = join(lab.dir, "go");
  const agA = lab.at("hA").spawn(agentArgs("A"), { log: "agent-A" });
  const agB = lab.at("hB").spawn(agentArgs("B"), { log: "agent-B" });
  for (const ag of [agA, agB]) {
    await waitFor(() => /agent: ready/.test(readLog(ag)) || !ag.running, ag.label, 30_000);
    if (!ag.running) throw new Error(`${ag.label} exited ${ag.exitCode}:\n${readLog(ag)}`);
  }
  writeFileSync(go, "");
  const t0 = Date.now();
  const samples: Sample[] = [];
  const sample = async () => {
    const t = (Date.now() - t0) / 1000;
    const rssKiB: [number, number] = [vmRssKiB(ceA.pid), vmRssKiB(ceB.pid)];
    samples.push({ t, rssKiB, fds: await Promise.all([fdCount(ceA.pid), fdCount(ceB.pid)]) });
  };
  await sample();
  let nextProgress = 60;
  while (agA.running || agB.running) {
    await Promise.race([new Promise((r) => setTimeout(r, o.sampleSec * 1000)), Promise.all([agA.exited, agB.exited])]);
    for (const p of [ceA, ceB, relay]) if (!p.running) throw new Error(`${p.label} exited ${p.exitCode} during the soak:\n${readLog(p).slice(-4000)}`);
    await sample();
    const s = samples[samples.length - 1];
    if (s.t >= nextProgress && (agA.running || agB.running)) {
      nextProgress += 60;
      let sa, sb;
      try {
        [sa, sb] = [await wespStatus(sockA), await wespStatus(sockB)];
      } catch (e) {
        say(`t=${Math.round(s.t)}s  (progress: ${(e as Error).message.split("\n")[0]})`);
        continue;
      }
      const inb = (st: any) => st.peers[0].inbound[0].counters;
      say(`t=${Math.round(s.t)}s  ceA rss ${(s.rssKiB[0] / 1024).toFixed(1)} MiB fds ${s.fds[0]} in ${inb(sa).packets} (replay ${inb(sa).drops.REPLAY}/${inb(sa).drops.REPLAY_OLD})  ` +
        `ceB rss ${(s.rssKiB[1] / 1024).toFixed(1)} MiB fds ${s.fds[1]} in ${inb(sb).packets} (replay ${inb(sb).drops.REPLAY}/${inb(sb).drops.REPLAY_OLD})`);
    }
  }
  for (const ag of [agA, agB]) if (ag.exitCode !== 0) throw new Error(`${ag.label} exited ${ag.exitCode}:\n${readLog(ag)}`);
  // the agents drained for longer than any delay: nothing is in flight any more
  const [stA, stB] = [await wespStatus(sockA), await wespStatus(sockB)];
  const kernel = await kernelDrops(lab);
  await relay.stop("SIGTERM", 10_000);
  const rs = JSON.parse(readFileSync(relaySummary, "utf8")) as RelaySummary;
  const logCounts = countLog(readFileSync(relayLog, "utf8"));
  const repA = JSON.parse(readFileSync(join(lab.dir, "agent-A.json"), "utf8"));
  const repB = JSON.parse(readFileSync(join(lab.dir, "agent-B.json"), "utf8"));
  await Promise.all([ceA.stop("SIGTERM", 10_000), ceB.stop("SIGTERM", 10_000)]);
  const elapsed = (Date.now() - t0) / 1000;

  const checks: Check[] = [];
  const check = (name: string, ok: boolean, detail: string) => checks.push({ name, ok, detail });

  // per direction: sender CE's outbound SA, relay, receiver CE's inbound SA, stream
  const dir = (d: "AB" | "BA"): DirResult => {
    const [snd, rcv, spi, tx, rx] = d === "AB" ? [stA, stB, SPI_AB, repA, repB] : [stB, stA, SPI_BA, repB, repA];
    const key = spi.toString(16).padStart(8, "0");
    const r = rs.dirs[d].spis[key] ?? { received: 0, dropped: 0, duplicated: 0, reordered: 0, delayed: 0, emitted: 0, verdicts: { OK: 0, REPLAY: 0, REPLAY_OLD: 0 }, lost: 0, top: 0 };
    const inSa = rcv.peers[0].inbound[0].counters;
    type Row = { name: string; failed: number; unsent: number; kernelDrops: number | null };
    const wan = (st: any) => (st.sockets as Row[]).filter((x) => x.name.startsWith("wan/"));
    const lostRows = (rows: Row[]) => rows.reduce((n, x) => n + x.failed + x.unsent, 0);
    return {
      dir: d, spi,
      relay: { received: r.received, dropped: r.dropped, duplicated: r.duplicated, reordered: r.reordered, delayed: r.delayed, predicted: r.verdicts, lost: r.lost },
      log: logCounts.get(`${d}/${key}`) ?? { drop: 0, dup: 0, reorder: 0, delay: 0, REPLAY: 0, REPLAY_OLD: 0 },
      sender: { espSent: snd.peers[0].outbound.counters.packets, sendLost: lostRows(wan(snd)) },
      receiver: {
        accepted: inSa.packets,
        drops: Object.fromEntries(Object.entries(inSa.drops as Record<string, number>).filter(([, n]) => n > 0)),
        kernelDrops: wan(rcv).reduce((n, x) => n + (x.kernelDrops ?? 0), 0),
        tunLost: lostRows((rcv.sockets as Row[]).filter((x) => x.name.startsWith("tun/"))),
      },
      stream: {
        sent: tx.stream.sent, received: rx.stream.received, missing: tx.stream.sent - rx.stream.received,
        duplicates: rx.stream.duplicates, corrupt: rx.stream.corrupt, reordered: rx.stream.reordered, rcvbufDrops: rx.stream.rcvbufDrops,
      },
    };
  };
  const dirs = [dir("AB"), dir("BA")];
  const pings = [
    ...repA.pings.map((p: any) => ({ from: "hostA", ...p })),
    ...repB.pings.map((p: any) => ({ from: "hostB", ...p })),
  ];
  const relayKernel = (rs.kernelDrops.a ?? 0) + (rs.kernelDrops.b ?? 0);

  for (const d of dirs) {
    const t = `${d.dir} (SPI 0x${d.spi.toString(16)})`;
    const exact = d.receiver.kernelDrops === 0 && relayKernel === 0;
    const cmp = (x: number, y: number) => (exact ? x === y : x <= y);
    const rel = exact ? "=" : "≤";
    // the relay's summary and its log tell the same story
    check(`relay log ${d.dir}`,
      d.log.drop === d.relay.dropped && d.log.dup === d.relay.duplicated && d.log.reorder === d.relay.reordered && d.log.delay === d.relay.delayed &&
      d.log.REPLAY === d.relay.predicted.REPLAY && d.log.REPLAY_OLD === d.relay.predicted.REPLAY_OLD,
      `log lines drop ${d.log.drop} dup ${d.log.dup} reorder ${d.log.reorder} delay ${d.log.delay} → REPLAY ${d.log.REPLAY} REPLAY_OLD ${d.log.REPLAY_OLD}; summary agrees`);
    const leftSender = d.sender.espSent - d.sender.sendLost;
    check(`relay saw all of ${d.dir}`, relayKernel === 0 ? d.relay.received === leftSender : d.relay.received <= leftSender,
      `sender's SA sealed ${d.sender.espSent}, its socket lost ${d.sender.sendLost}, relay received ${d.relay.received}, relay socket drops ${relayKernel}`);
    const drops = d.receiver.drops;
    const other = Object.entries(drops).filter(([k]) => k !== "REPLAY" && k !== "REPLAY_OLD");
    check(`no false replay drop ${t}`,
      cmp(drops.REPLAY ?? 0, d.log.REPLAY) && cmp(drops.REPLAY_OLD ?? 0, d.log.REPLAY_OLD) && cmp(d.receiver.accepted, d.relay.predicted.OK),
      `wesp REPLAY ${drops.REPLAY ?? 0} ${rel} relay log ${d.log.REPLAY}; REPLAY_OLD ${drops.REPLAY_OLD ?? 0} ${rel} ${d.log.REPLAY_OLD}; ` +
      `accepted ${d.receiver.accepted} ${rel} ${d.relay.predicted.OK} (receiver WAN socket drops ${d.receiver.kernelDrops})`);
    check(`no other inbound drop ${t}`, other.length === 0, other.length ? JSON.stringify(Object.fromEntries(other)) : "none");
    check(`stream ${d.dir} intact`, d.stream.duplicates === 0 && d.stream.corrupt === 0 && d.stream.received > 0.5 * d.stream.sent,
      `sent ${d.stream.sent}, received ${d.stream.received}, duplicates ${d.stream.duplicates}, corrupt ${d.stream.corrupt}`);
    check(`stream ${d.dir} losses explained`, d.stream.missing <= d.relay.lost,
      `missing ${d.stream.missing} ≤ ESP packets the relay lost ${d.relay.lost} (dropped ${d.relay.dropped}, late ${d.relay.lost - d.relay.dropped}); ` +
      `receiver's TUN lost ${d.receiver.tunLost}, receiving host's socket dropped ${d.stream.rcvbufDrops}`);
  }
  const pingSent = pings.reduce((s, p) => s + p.sent, 0), pingRecv = pings.reduce((s, p) => s + p.received, 0);
  const pingDup = pings.reduce((s, p) => s + p.duplicates, 0);
  const missingAll = dirs.reduce((s, d) => s + d.stream.missing, 0) + (pingSent - pingRecv);
  const lostAll = dirs.reduce((s, d) => s + d.relay.lost, 0);
  check("all losses explained", missingAll <= lostAll && pingDup === 0 && rs.pendingAtEnd === 0,
    `stream missing ${missingAll - (pingSent - pingRecv)} + pings unanswered ${pingSent - pingRecv} = ${missingAll} ≤ relay lost ${lostAll}; duplicate echo replies ${pingDup}; relay still held ${rs.pendingAtEnd} at the end` +
    (missingAll <= lostAll ? "" : `; kernel drop counters: ${JSON.stringify(kernel)}`));
  check("pings", pingRecv > 0.5 * pingSent, `${pingRecv} of ${pingSent} answered`);
  const imp = dirs.reduce((s, d) => s + d.log.drop * d.log.dup * d.log.reorder * d.log.delay, 0);
  check("relay impaired", imp > 0 && dirs.every((d) => d.log.REPLAY > 0), "every kind of impairment and some predicted REPLAY happened each way");

  // memory and fds: baseline = median just after warm-up, end = median of the last fifth
  const after = samples.filter((s) => s.t >= warmupSec);
  const k = Math.max(3, Math.ceil(after.length / 5)); // a median of 3 or more ignores one GC spike
  const pick = (xs: Sample[], f: (s: Sample) => number) => median(xs.map(f));
  const two = (f: (i: 0 | 1) => number): [number, number] => [f(0), f(1)];
  const base = after.slice(0, k), tail = after.slice(-k);
  const rss = {
    baselineKiB: two((i) => pick(base, (s) => s.rssKiB[i])),
    endKiB: two((i) => pick(tail, (s) => s.rssKiB[i])),
    maxKiB: two((i) => Math.max(...after.map((s) => s.rssKiB[i]))),
    boundKiB: [0, 0] as [number, number],
  };
  rss.boundKiB = two((i) => Math.max(Math.round(rss.baselineKiB[i] * 0.1), 8192));
  const fds = {
    baseline: two((i) => base[0]?.fds[i] ?? NaN),
    end: two((i) => samples[samples.length - 1].fds[i]),
    max: two((i) => Math.max(...after.map((s) => s.fds[i]))),
  };
  for (const i of [0, 1] as const) {
    const n = i === 0 ? "ceA" : "ceB";
    const g = rss.endKiB[i] - rss.baselineKiB[i];
    check(`rss ${n}`, after.length >= 2 && g < rss.boundKiB[i],
      `${(rss.baselineKiB[i] / 1024).toFixed(1)} → ${(rss.endKiB[i] / 1024).toFixed(1)} MiB (growth ${(g / 1024).toFixed(1)} < ${(rss.boundKiB[i] / 1024).toFixed(1)} MiB), max ${(rss.maxKiB[i] / 1024).toFixed(1)}`);
    check(`fds ${n}`, fds.end[i] <= fds.baseline[i], `${fds.baseline[i]} after warm-up, ${fds.end[i]} at the end, max ${fds.max[i]}`);
    const p = i === 0 ? ceA : ceB;
    check(`exit ${n}`, p.exitCode === 0 && /stopped: TUN and sockets closed/.test(readLog(p)), `exit ${p.exitCode} on SIGTERM`);
  }

  const result: SoakResult = {
    options: { ...o, log: undefined }, seconds: elapsed, stateDir, dirs, pings, samples, warmupSec, rss, fds,
    relayKernelDrops: rs.kernelDrops, kernelDrops: kernel, relayPendingAtEnd: rs.pendingAtEnd,
    outboundDrops: [stA, stB].map((st) => Object.fromEntries(Object.entries(st.global.outbound.drops as Record<string, number>).filter(([, n]) => n > 0))) as SoakResult["outboundDrops"],
    checks, ok: checks.every((c) => c.ok),
  };
  if (o.outDir) {
    mkdirSync(o.outDir, { recursive: true, mode: 0o700 });
    for (const f of ["relay.tsv", "relay-summary.json", "agent-A.json", "agent-B.json", "relay.log", "wesp-ceA.log", "wesp-ceB.log", "agent-A.log", "agent-B.log"]) {
      if (existsSync(join(lab.dir, f))) copyFileSync(join(lab.dir, f), join(o.outDir, f));
    }
    writeFileSync(join(o.outDir, "result.json"), JSON.stringify(result, null, 1) + "\n");
    result.outDir = o.outDir;
  }
  return result;
}

/** The summary table printed at the end. */
export function formatResult(r: SoakResult): string {
  const L: string[] = [];
  const row = (cells: (string | number)[], w: number[]) => cells.map((c, i) => String(c)[i === 0 ? "padEnd" : "padStart"](w[i])).join("  ");
  L.push(`soak: ${r.options.minutes} min of traffic (${(r.seconds / 60).toFixed(1)} min in all), ${r.options.rate} datagrams/s each way, ${r.options.suite}, replay window ${r.options.window}, seed ${r.options.seed}${r.stateDir ? ", state_dir" : ""}`);
  L.push("");
  const w = [34, 12, 12];
  L.push(row(["", "ceA → ceB", "ceB → ceA"], w));
  const [ab, ba] = r.dirs;
  const line = (name: string, f: (d: DirResult) => string | number) => L.push(row([name, f(ab), f(ba)], w));
  line("ESP sent by the CE", (d) => d.sender.espSent);
  line("sender WAN socket failed/unsent", (d) => d.sender.sendLost);
  line("relay: received", (d) => d.relay.received);
  line("relay: dropped", (d) => d.log.drop);
  line("relay: duplicated", (d) => d.log.dup);
  line("relay: reordered", (d) => d.log.reorder);
  line("relay: delayed", (d) => d.log.delay);
  line("relay log: expect REPLAY", (d) => d.log.REPLAY);
  line("relay log: expect REPLAY_OLD", (d) => d.log.REPLAY_OLD);
  line("relay: ESP lost (never accepted)", (d) => d.relay.lost);
  line("wesp: accepted", (d) => d.receiver.accepted);
  line("wesp: REPLAY drops", (d) => d.receiver.drops.REPLAY ?? 0);
  line("wesp: REPLAY_OLD drops", (d) => d.receiver.drops.REPLAY_OLD ?? 0);
  line("wesp: other inbound drops", (d) => Object.entries(d.receiver.drops).filter(([k]) => !k.startsWith("REPLAY")).reduce((s, [, n]) => s + n, 0));
  line("wesp: WAN socket kernel drops", (d) => d.receiver.kernelDrops);
  line("wesp: TUN write failed/unsent", (d) => d.receiver.tunLost);
  line("stream: sent", (d) => d.stream.sent);
  line("stream: received", (d) => d.stream.received);
  line("stream: missing", (d) => d.stream.missing);
  line("stream: arrived out of order", (d) => d.stream.reordered);
  line("stream: duplicates / corrupt", (d) => `${d.stream.duplicates} / ${d.stream.corrupt}`);
  L.push("");
  for (const p of r.pings) L.push(`ping ${p.from} → ${p.dst}: ${p.received}/${p.sent} answered, ${p.duplicates} duplicate replies`);
  L.push(`relay socket kernel drops: a ${r.relayKernelDrops.a}, b ${r.relayKernelDrops.b}; held at the end ${r.relayPendingAtEnd}; outbound drops ceA ${JSON.stringify(r.outboundDrops[0])}, ceB ${JSON.stringify(r.outboundDrops[1])}`);
  L.push(`kernel drop counters in the namespaces: ${Object.keys(r.kernelDrops).length ? Object.entries(r.kernelDrops).map(([k, n]) => `${k} ${n}`).join(", ") : "none"}`);
  L.push("");
  const w2 = [34, 12, 12];
  L.push(row([`memory/fds (warm-up ${r.warmupSec} s)`, "ceA", "ceB"], w2));
  const mib = (k: number) => (k / 1024).toFixed(1);
  L.push(row(["VmRSS at start (MiB)", mib(r.samples[0].rssKiB[0]), mib(r.samples[0].rssKiB[1])], w2));
  L.push(row(["VmRSS after warm-up (MiB)", mib(r.rss.baselineKiB[0]), mib(r.rss.baselineKiB[1])], w2));
  L.push(row(["VmRSS at end (MiB)", mib(r.rss.endKiB[0]), mib(r.rss.endKiB[1])], w2));
  L.push(row(["VmRSS max after warm-up (MiB)", mib(r.rss.maxKiB[0]), mib(r.rss.maxKiB[1])], w2));
  L.push(row(["open fds: start / warm-up / end", `${r.samples[0].fds[0]}/${r.fds.baseline[0]}/${r.fds.end[0]}`, `${r.samples[0].fds[1]}/${r.fds.baseline[1]}/${r.fds.end[1]}`], w2));
  L.push("");
  for (const c of r.checks) L.push(`${c.ok ? "ok  " : "FAIL"}  ${c.name}: ${c.detail}`);
  L.push("");
  L.push(r.ok ? `PASS: ${r.checks.length} of ${r.checks.length} checks` : `FAIL: ${r.checks.filter((c) => !c.ok).length} of ${r.checks.length} checks failed`);
  if (r.outDir) L.push(`logs and result.json in ${r.outDir}`);
  return L.join("\n");
}
