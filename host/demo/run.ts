// `wesp demo` from start to end: build the lab, start wesp in the three CEs
// and (by default) wait until IKEv2 has brought every SA up, send traffic
// between every pair of sites, look at the wire and the counters, judge, tear
// down (unless kept). Each step prints what it did; every check ends up in
// `DemoResult.checks`, and the run passes only if all do.
import { Lab } from "../lab/lab.ts";
import { leftovers, removeLeftovers } from "../lab/leftovers.ts";
import { buildTopology } from "./topology.ts";
import { writeConfigs, type DemoConfigs, type DemoSa } from "./configs.ts";
import { ceStatus, startCe } from "./ces.ts";
import { negotiatedSas, waitForIke } from "./ike.ts";
import { directions, ping, startAgents, tcp, type Agent, type PingResult, type TcpResult } from "./traffic.ts";
import { decode, decodeWithoutTshark, espSaTable, startCapture, summarize, unknownSpis, type Capture, type SpiSummary, type WireReport } from "./wire.ts";
import { natMappings, type NatMapping } from "./nat.ts";
import { judge, type Check } from "./checks.ts";
import * as say from "./report.ts";
import { defaultPrefix, NS, SITES, type DemoMode, type DemoSuite, type SiteId } from "./plan.ts";
import type { Status } from "../control/status.ts";
import { ALL_TOOLS, DEMO_TOOLS, type DemoTools } from "./tools.ts";

export interface DemoOptions {
  /** IKEv2 with pre-shared keys (default), or static keys in the configs (`--static-keys`). */
  mode?: DemoMode;
  /** Leave the lab up at the end (`wesp demo --down` removes it). */
  keep?: boolean;
  /** Names of namespaces and the scratch dir start with this (default `$WESP_NS_PREFIX` + `demo-`, else `wesp-demo-`). */
  prefix?: string;
  /** Bytes per TCP transfer (default 1 MiB). */
  tcpBytes?: number;
  /** Where progress and the report go (default stdout). */
  out?: (line: string) => void;
  /** The optional tools to use (tools.ts; default all): without one, the demo does less and says so. */
  tools?: DemoTools;
}

export interface DemoResult {
  ok: boolean;
  mode: DemoMode;
  checks: Check[];
  /** The SA directions (static: the configs'; IKE: the key logs'), without their keys. */
  sas: { spi: number; from: SiteId; to: SiteId; suite: DemoSuite }[];
  /** IKE: key log lines read (one per CHILD_SA per CE), and what did not add up. */
  keyLog?: { lines: number; problems: string[] };
  pings: PingResult[];
  tcp: TcpResult[];
  wire: SpiSummary[] | null;
  /** ESP frames on the wire with an SPI none of `sas` has, and those SPIs. */
  unknownSpi: { frames: number; spis: number[] };
  keepalives: number;
  /** IKE datagrams on the wire (UDP 500, and 4500 behind the non-ESP marker). */
  ikeDatagrams: number;
  /** Packets tcpdump lost (kernel buffer full): the capture is then a sample of the traffic. */
  captureDropped: number;
  nat: NatMapping[];
  status: Partial<Record<SiteId, Status | null>>;
  /** Set when the run stopped early. */
  error?: string;
  /** The optional tools used; what the demo did without the others ("tshark: …"). */
  tools: DemoTools;
  skipped: string[];
  /** The lab's scratch dir and namespaces (gone unless kept). */
  lab: { dir: string; namespaces: string[]; kept: boolean };
}

export async function runDemo(opts: DemoOptions = {}): Promise<DemoResult> {
  const out = opts.out ?? ((l: string) => void process.stdout.write(l + "\n"));
  const prefix = opts.prefix ?? defaultPrefix();
  const old = leftovers(prefix);
  if (old.namespaces.length || old.dirs.length) {
    out(`removing what an earlier demo left (${old.namespaces.length} namespaces, ${old.dirs.length} dirs)`);
    await removeLeftovers(prefix);
  }
  const lab = new Lab(prefix);
  const tools = opts.tools ?? ALL_TOOLS;
  const without = DEMO_TOOLS.filter((t) => t.without && !tools[t.cmd as keyof DemoTools]);
  const result: DemoResult = {
    ok: false, mode: opts.mode ?? "ike", checks: [], sas: [], pings: [], tcp: [], wire: null, unknownSpi: { frames: 0, spis: [] },
    keepalives: 0, ikeDatagrams: 0, captureDropped: 0, nat: [], status: {},
    tools, skipped: without.map((t) => `${t.cmd}: ${t.without}`),
    lab: { dir: lab.dir, namespaces: [], kept: false },
  };
  say.banner(out, tools, result.mode);
  try {
    await steps(lab, opts, out, result);
  } catch (e) {
    result.error = (e as Error).message;
    out(`\nthe demo stopped: ${result.error}`);
    for (const p of lab.processes) if (/^wesp-/.test(p.label)) say.logTail(out, p.label, p.log!);
  }
  result.lab.namespaces = lab.namespaces.map((ns) => ns.name);
  result.checks = judge(result);
  result.ok = !result.error && result.checks.every((c) => c.ok);
  say.verdict(out, result, without);
  if (opts.keep) {
    lab.keep();
    result.lab.kept = true;
    say.kept(out, lab);
  } else {
    await lab.teardown();
  }
  return result;
}

async function steps(lab: Lab, opts: DemoOptions, out: (l: string) => void, r: DemoResult): Promise<void> {
  let t = Date.now();
  const took = () => {
    const s = ((Date.now() - t) / 1000).toFixed(1);
    t = Date.now();
    return `${s} s`;
  };

  const tools = r.tools;
  say.step(out, 1, "building the lab");
  await buildTopology(lab, { nat: tools.nft });
  const configs: DemoConfigs = writeConfigs(lab.dir, r.mode, { nat: tools.nft });
  say.lab(out, lab, configs, took());

  const ike = configs.mode === "ike";
  say.step(out, 2, ike ? "starting `wesp up` in the three CEs; IKEv2 negotiates their SAs" : "starting `wesp up` in the three CEs");
  const capture: Capture | null = tools.tcpdump ? await startCapture(lab) : null;
  // In parallel: each spends most of its start in its own self-test.
  await Promise.all(SITES.map((s) => startCe(lab, s, configs)));
  out(`  ${SITES.map((s) => NS.ce(s)).join(", ")}: forwarding on wesp0 (${took()})`);
  let sas: DemoSa[] = configs.sas;
  if (ike) {
    await waitForIke(configs, (id, st) => void (r.status[id] = st));
    sas = readKeyLogs(configs, r);
    say.ikeUp(out, r.status, sas, took());
  }
  r.sas = publicSas(sas);
  const agents: Map<SiteId, Agent> = await startAgents(lab);

  say.step(out, 3, "ping between every pair of sites (IPv4 and IPv6)");
  // Site C first: with static keys its packets open the NAT mapping that A and B then learn
  // (with IKE its IKE_SA_INIT did, and IKE followed it).
  const order = directions().sort((x, y) => Number(y[0].behindNat) - Number(x[0].behindNat));
  for (const [from, to] of order) {
    for (const fam of [4, 6] as const) r.pings.push(await ping(agents, from.id, to.id, fam));
  }
  say.pings(out, r.pings, took());

  const bytes = opts.tcpBytes ?? 1 << 20;
  say.step(out, 4, `TCP: ${say.size(bytes)} of random bytes between every pair, SHA-256 checked at the far end`);
  for (const [from, to] of order) {
    for (const fam of [4, 6] as const) r.tcp.push(await tcp(agents, from.id, to.id, fam, bytes));
  }
  say.transfers(out, r.tcp, took());

  // Let the last ACKs and FINs land before the counters are read and the capture ends.
  await new Promise((res) => setTimeout(res, 500));
  say.step(out, 5, "what the CEs counted (`wesp status`)");
  const statuses = await Promise.all(SITES.map((s) => ceStatus(configs, s.id)));
  for (const [i, s] of SITES.entries()) {
    r.status[s.id] = statuses[i].json;
    say.status(out, s.name, statuses[i].text, statuses[i].error);
  }
  say.statusNote(out, took());

  say.step(out, 6, !capture ? "what crossed the Internet: not captured (no tcpdump)"
    : `what crossed the Internet (tcpdump on the WAN bridge, ${tools.tshark ? "decrypted by tshark" : "opened by @noble/ciphers: no tshark"})`);
  r.nat = await natMappings(lab);
  if (!capture) {
    say.natOnly(out, r.nat, took());
    return;
  }
  r.captureDropped = await capture.stop();
  // Again: a CHILD_SA set up since step 2 (a rekey, a retry) has its frames in the capture too.
  if (ike) sas = readKeyLogs(configs, r);
  r.sas = publicSas(sas);
  const table = tools.tshark ? await espSaTable(lab, configs, sas) : null;
  const wire: WireReport = table ? await decode(capture.pcap, table.xdg, sas) : decodeWithoutTshark(capture.pcap, sas);
  r.wire = summarize(wire, sas);
  r.unknownSpi = unknownSpis(wire, sas);
  r.keepalives = wire.keepalives;
  r.ikeDatagrams = wire.ike;
  say.wire(out, r.wire, wire, table, r.nat, r.captureDropped, took());
}

/** The SAs IKE negotiated, from the CEs' key logs; what did not add up goes to `r.keyLog`. */
function readKeyLogs(configs: DemoConfigs, r: DemoResult): DemoSa[] {
  const n = negotiatedSas(configs);
  r.keyLog = { lines: n.lines, problems: n.problems };
  return n.sas;
}

/** The SAs without their keys: what the report (and --report's JSON) may hold. */
function publicSas(sas: DemoSa[]): DemoResult["sas"] {
  return sas.map(({ spi, from, to, suite }) => ({ spi, from, to, suite }));
}
