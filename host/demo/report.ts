// What the demo prints: a step at a time, then the checks and PASS or FAIL.
import { existsSync, readFileSync } from "node:fs";
import type { Lab } from "../lab/lab.ts";
import { DEFAULT_PREFIX, NAT_OUTSIDE, NAT_PORTS, NS, PAIRS, SITES, siteById, type SiteId } from "./plan.ts";
import type { DemoConfigs, DemoSa } from "./configs.ts";
import type { PingResult, TcpResult } from "./traffic.ts";
import type { EspSaTableFile, SpiSummary, WireFrame, WireReport } from "./wire.ts";
import type { Status } from "../control/status.ts";
import type { DemoMode } from "./plan.ts";
import type { NatMapping } from "./nat.ts";
import type { DemoResult } from "./run.ts";
import { aptLine, type DemoTool, type DemoTools } from "./tools.ts";

type Out = (line: string) => void;

const hex = (spi: number) => "0x" + spi.toString(16).padStart(8, "0");
const site = (id: SiteId) => siteById(id).name;

export function size(n: number): string {
  return n >= 1 << 20 && n % (1 << 20) === 0 ? `${n >> 20} MiB` : n >= 1024 && n % 1024 === 0 ? `${n >> 10} KiB` : `${n} bytes`;
}

export function banner(out: Out, tools: DemoTools, mode: DemoMode): void {
  out(`wesp demo: a three-site CE VPN over ESP (RFC 4303), ${mode === "ike" ? "its SAs negotiated with IKEv2 (RFC 7296)" : "with static keys"}, in network namespaces`);
  out("");
  out("  site-a 10.1.0.2 ── ce-a 192.0.2.1 ──┐");
  out(`  site-b 10.2.0.2 ── ce-b 192.0.2.2 ──┼── wan (bridge 192.0.2.0/24${tools.tcpdump ? ", captured" : ""})`);
  out(`  site-c 10.3.0.2 ── ce-c 172.16.3.2 ── nat ${NAT_OUTSIDE} (${tools.nft ? `masquerade, UDP ports ${NAT_PORTS.first}-${NAT_PORTS.last}` : "a plain router: no nft, no NAT"})`);
  out("");
  if (mode === "static") {
    for (const p of PAIRS) out(`  ${p.a.name} ⇄ ${p.b.name}: ${p.suite.padEnd(17)} SPIs ${hex(p.spiAB)} / ${hex(p.spiBA)}, ESP in UDP 4500 (RFC 3948)`);
    return;
  }
  for (const p of PAIRS) {
    const init = site(p.ike.initiator);
    out(`  ${p.a.name} ⇄ ${p.b.name}: ${p.suite.padEnd(17)} IKE ${p.ike.proposal}, ${init} initiates${siteById(p.ike.initiator).behindNat ? " (from behind the NAT)" : ""}`);
  }
  out("  pre-shared keys fresh for this run; SPIs and ESP keys negotiated; ESP in UDP 4500 (RFC 3948)");
}

/** Step 2 with IKE: each pair's IKE SA as its initiator sees it, and the CHILD_SA's two directions. */
export function ikeUp(out: Out, status: Partial<Record<SiteId, Status | null>>, sas: DemoSa[], took: string): void {
  for (const p of PAIRS) {
    const [from, to] = p.ike.initiator === p.a.id ? [p.a, p.b] : [p.b, p.a];
    const ike = status[from.id]?.ike?.find((x) => x.name === to.name);
    const back = status[to.id]?.ike?.find((x) => x.name === from.name);
    const behind = [ike?.behindNat ? from.name : "", back?.behindNat ? to.name : ""].filter(Boolean);
    const nat = ike?.natDetected ? `, NAT-T${behind.length ? `, ${behind.join(" and ")} behind a NAT` : ""}` : "";
    out(`  ${from.name} → ${to.name}  IKE SA ${ike?.state ?? "?"} (${ike?.role ?? "?"} ${from.name}, ${ike?.proposal ?? "?"}${nat})`);
    const dirs = sas.filter((s) => (s.from === from.id && s.to === to.id) || (s.from === to.id && s.to === from.id));
    out(`  ${" ".repeat(from.name.length + to.name.length + 3)}  CHILD_SA ${p.suite}: ${dirs.map((s) => `${site(s.from)} → ${site(s.to)} SPI ${hex(s.spi)}`).join(", ")}`);
  }
  out(`  (every IKE peer of every CE up, the data plane sending on its CHILD_SA; keys from the CEs' WESP_ESP_KEYLOG files) (${took})`);
}

export function step(out: Out, n: number, what: string): void {
  out(`\n[${n}/6] ${what}`);
}

export function lab(out: Out, l: Lab, c: DemoConfigs, took: string): void {
  out(`  ${l.namespaces.length} namespaces (${l.tag}*), configs with fresh keys in ${l.dir} (${c.mode === "ike" ? "IKEv2 pre-shared keys" : "static ESP keys"}, mode 0600) (${took})`);
  for (const s of SITES) out(`    ${c.files[s.id]}`);
}

export function pings(out: Out, ps: PingResult[], took: string): void {
  for (const p of ps) {
    const mark = p.received === p.sent ? "ok  " : "FAIL";
    out(`  ${mark} ${site(p.from)} → ${site(p.to)}  ${p.dst.padEnd(10)} ${p.received}/${p.sent} echo replies${p.error ? `  (${p.error})` : ""}`);
  }
  out(`  (${took})`);
}

export function transfers(out: Out, ts: TcpResult[], took: string): void {
  for (const t of ts) {
    const mark = t.ok ? "ok  " : "FAIL";
    const far = t.ok ? `far end: ${t.farBytes} bytes, sha256 ${t.farSha256.slice(0, 16)}… = sent` : `far end: ${t.farBytes} bytes${t.error ? `  (${t.error})` : ", sha256 differs"}`;
    out(`  ${mark} ${site(t.from)} → ${site(t.to)}  ${t.dst.padEnd(10)} ${far}`);
  }
  out(`  (${took})`);
}

export function statusNote(out: Out, took: string): void {
  out(`  (a peer address marked "NAT-T learned" is where its authenticated packets really come from, RFC 3948; the wire below shows the same) (${took})`);
}

export function status(out: Out, name: string, text: string, error?: string): void {
  out(`  ── ${name} ──`);
  if (error) out(`  ${error}`);
  for (const line of text.trimEnd().split("\n")) if (line) out(`  ${line}`);
}

export function wire(out: Out, spis: SpiSummary[], w: WireReport, table: EspSaTableFile | null, nat: NatMapping[], dropped: number, took: string): void {
  if (!table) out(`  no tshark: the capture is read by wesp demo and every frame opened with @noble/ciphers, which shares no code with wesp's core`);
  else out(`  esp_sa table: ${table.rows} rows from ${table.source}`);
  if (table?.notes.length) out(`  (Wireshark 4.0 has no ChaCha20-Poly1305 for ESP: those SAs are checked with @noble/ciphers instead)`);
  out("");
  out(`  ${"SPI".padEnd(10)}  ${"from → to".padEnd(16)}  ${"suite".padEnd(17)}  ${"frames".padStart(6)}  ${"ICV good/bad".padEnd(12)}  checked by  outer (UDP)`);
  for (const s of spis) {
    out(`  ${hex(s.spi)}  ${`${site(s.from)} → ${site(s.to)}`.padEnd(16)}  ${s.suite.padEnd(17)}  ${String(s.frames).padStart(6)}  ${`${s.good}/${s.bad}${s.unchecked ? ` (${s.unchecked} unchecked)` : ""}`.padEnd(12)}  ${s.checkedBy.join(",").padEnd(10)}  ${s.endpoints.join(", ")}`);
  }
  const known = new Set(spis.map((s) => s.spi));
  const stray = w.frames.filter((f) => !known.has(f.spi));
  if (stray.length) out(`  ESP frames with an SPI of no SA: ${stray.length} (SPIs ${[...new Set(stray.map((f) => hex(f.spi)))].join(", ")}): nothing could check them`);
  out(`  IKE datagrams (UDP 500, and 4500 behind the non-ESP marker): ${w.ike}; NAT-keepalives (RFC 3948 §2.3): ${w.keepalives}; other UDP: ${w.other}`);
  if (dropped) out(`  tcpdump lost ${dropped} packets (its buffer overflowed): the counts above are a sample`);
  natLines(out, nat);
  out("");
  out("  a few frames, decrypted:");
  for (const f of samples(w.frames, spis)) {
    out(`  #${String(f.frame).padEnd(5)} ${f.src} → ${f.dst}  SPI ${hex(f.spi)} seq ${f.seq}  ICV ${f.icv} (${f.checkedBy})`);
    out(`         inner ${f.innerSrc} → ${f.innerDst}  ${(f.info ?? "").replace(/\s+/g, " ").slice(0, 90)}`);
  }
  out(`  (${took})`);
}

/** Without a capture: only the NAT's table. */
export function natOnly(out: Out, nat: NatMapping[], took: string): void {
  out("  nothing was captured (tcpdump is not installed): the wire checks are skipped");
  natLines(out, nat);
  out(`  (${took})`);
}

function natLines(out: Out, nat: NatMapping[]): void {
  for (const m of nat) out(`  NAT mapping: ${m.inside} → ${m.outside} (to ${m.remote})`);
}

/** Per SA: its first IPv4 echo and its first IPv6 TCP segment with data. */
function samples(frames: WireFrame[], spis: SpiSummary[]): WireFrame[] {
  const out: WireFrame[] = [];
  for (const s of spis) {
    const mine = frames.filter((f) => f.spi === s.spi && f.icv === "good");
    const icmp = mine.find((f) => !f.innerSrc?.includes(":") && /echo/i.test(f.info ?? ""));
    const data = mine.find((f) => f.innerSrc?.includes(":") && /\b(len|Len)=[1-9]/.test(f.info ?? ""));
    for (const f of [icmp, data]) if (f) out.push(f);
  }
  return out;
}

export function verdict(out: Out, r: DemoResult, without: readonly DemoTool[]): void {
  out("\nchecks:");
  for (const c of r.checks) out(`  ${c.skipped ? "SKIP" : c.ok ? "PASS" : "FAIL"}  ${c.name.padEnd(32)} ${c.detail}`);
  const run = r.checks.filter((c) => !c.skipped);
  const passed = run.filter((c) => c.ok).length;
  const skipped = r.checks.length - run.length;
  if (without.length) {
    out(`\nran without ${without.map((t) => t.cmd).join(", ")}:`);
    for (const t of without) out(`  ${t.cmd}: ${t.without}`);
    out(`  for the whole demo: ${aptLine(without)}, then run it again`);
  }
  out(`\n${r.ok ? "PASS" : "FAIL"}: ${passed} of ${run.length} checks passed${skipped ? `, ${skipped} skipped` : ""}${without.length ? ` (without ${without.map((t) => t.cmd).join(", ")})` : ""}${r.error ? ` (stopped early: ${r.error.split("\n")[0]})` : ""}`);
}

export function kept(out: Out, l: Lab): void {
  out(`\nthe lab is still up (--keep). Look around:`);
  for (const s of SITES) out(`  ip netns exec ${l.at(NS.host(s)).name} bash      # ${s.name}'s LAN host, ${s.host.v4}`);
  out(`  ip netns exec ${l.at(NS.ce(SITES[0])).name} node bin/wesp.js status ${l.dir}/site-a.yaml`);
  out(`  ip netns exec ${l.at(NS.wan).name} tcpdump -ni br0 udp       # the Internet`);
  out(`  logs, configs, keys and the capture: ${l.dir}`);
  out(`tear it down with:  node bin/wesp.js demo --down${l.tag === DEFAULT_PREFIX ? "" : ` --prefix ${l.tag}`}`);
}

export function logTail(out: Out, label: string, path: string): void {
  if (!existsSync(path)) return;
  const lines = readFileSync(path, "utf8").trimEnd().split("\n").slice(-15);
  out(`  ── ${label} log (last lines) ──`);
  for (const l of lines) out(`  ${l}`);
}
