// `wesp demo` from start to end: build the lab, start wesp in the three CEs,
// send traffic between every pair of sites, look at the wire and the
// counters, judge, tear down (unless kept). Each step prints what it did;
// every check ends up in `DemoResult.checks`, and the run passes only if all do.
import { DEFAULT_PREFIX, Lab, leftovers, removeLeftovers } from "./lab.ts";
import { buildTopology } from "./topology.ts";
import { writeConfigs, type DemoConfigs } from "./configs.ts";
import { ceStatus, startCe } from "./ces.ts";
import { directions, ping, startAgents, tcp, type Agent, type PingResult, type TcpResult } from "./traffic.ts";
import { decode, decodeWithoutTshark, espSaTable, startCapture, summarize, type Capture, type SpiSummary, type WireReport } from "./wire.ts";
import { natMappings, type NatMapping } from "./nat.ts";
import { judge, type Check } from "./checks.ts";
import * as say from "./report.ts";
import { NS, SITES, type SiteId } from "./plan.ts";
import type { Status } from "../control/status.ts";
import { ALL_TOOLS, DEMO_TOOLS, type DemoTools } from "./tools.ts";

export interface DemoOptions {
  /** Leave the lab up at the end (`wesp demo --down` removes it). */
  keep?: boolean;
  /** Names of namespaces and the scratch dir start with this (default `wesp-demo-`). */
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
  checks: Check[];
  pings: PingResult[];
  tcp: TcpResult[];
  wire: SpiSummary[] | null;
  keepalives: number;
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
  const prefix = opts.prefix ?? DEFAULT_PREFIX;
  const old = leftovers(prefix);
  if (old.namespaces.length || old.dirs.length) {
    out(`removing what an earlier demo left (${old.namespaces.length} namespaces, ${old.dirs.length} dirs)`);
    await removeLeftovers(prefix);
  }
  const lab = new Lab(prefix);
  const tools = opts.tools ?? ALL_TOOLS;
  const without = DEMO_TOOLS.filter((t) => t.without && !tools[t.cmd as keyof DemoTools]);
  const result: DemoResult = {
    ok: false, checks: [], pings: [], tcp: [], wire: null, keepalives: 0, captureDropped: 0, nat: [], status: {},
    tools, skipped: without.map((t) => `${t.cmd}: ${t.without}`),
    lab: { dir: lab.dir, namespaces: lab.namespaces, kept: false },
  };
  say.banner(out, tools);
  try {
    await steps(lab, opts, out, result);
  } catch (e) {
    result.error = (e as Error).message;
    out(`\nthe demo stopped: ${result.error}`);
    for (const p of lab.processes) if (/^wesp-/.test(p.label)) say.logTail(out, p.label, p.log);
  }
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
  const configs: DemoConfigs = writeConfigs(lab.dir);
  say.lab(out, lab, configs, took());

  say.step(out, 2, "starting `wesp up` in the three CEs");
  const capture: Capture | null = tools.tcpdump ? await startCapture(lab) : null;
  // In parallel: each spends most of its start in its own self-test.
  await Promise.all(SITES.map((s) => startCe(lab, s, configs)));
  const agents: Map<SiteId, Agent> = await startAgents(lab);
  out(`  ${SITES.map((s) => NS.ce(s)).join(", ")}: forwarding on wesp0 (${took()})`);

  say.step(out, 3, "ping between every pair of sites (IPv4 and IPv6)");
  // Site C first: its packets open the NAT mapping that A and B then learn.
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
  const table = tools.tshark ? await espSaTable(lab, configs) : null;
  const wire: WireReport = table ? await decode(capture.pcap, table.xdg, configs.sas) : decodeWithoutTshark(capture.pcap, configs.sas);
  r.wire = summarize(wire, configs.sas);
  r.keepalives = wire.keepalives;
  say.wire(out, r.wire, wire, table, r.nat, r.captureDropped, took());
}
