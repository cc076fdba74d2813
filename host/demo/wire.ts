// What crossed the "Internet": a tcpdump capture on the WAN bridge, decrypted
// and authenticated by tshark with an esp_sa table — from the keys IKE
// negotiated (the CEs' key logs, ike.ts), or with static keys the table
// `wesp keys --wireshark` writes — and the ChaCha20-Poly1305 frames (which
// Wireshark 4.0 cannot decrypt) by @noble/ciphers (esp_check.ts). Without
// tshark, the capture is read here (pcap.ts) and noble checks every frame.
// Nothing here trusts wesp's core: both checkers are independent of it.
// IKE's own datagrams (UDP 500, and 4500 behind the non-ESP marker) are
// counted apart; an ESP frame whose SPI is none of the SAs is reported.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { exec, waitFor } from "../util/proc.ts";
import type { Lab } from "../lab/lab.ts";
import type { LabProcess } from "../lab/process.ts";
import { IF, NS, SITES, type SiteId } from "./plan.ts";
import type { DemoConfigs, DemoSa } from "./configs.ts";
import { describeInner, openEsp } from "./esp_check.ts";
import { readPcapUdp } from "./pcap.ts";
import { wespArgv } from "../util/package_root.ts";
import { espSaRow } from "../config/wireshark.ts";

export interface Capture {
  pcap: string;
  /** Stops tcpdump; resolves to the packets it says the kernel dropped (its buffer overflowed). */
  stop(): Promise<number>;
}

/** tcpdump on the WAN bridge: every outer packet between the CEs and the NAT, once. */
export async function startCapture(lab: Lab): Promise<Capture> {
  const pcap = join(lab.dir, "wan.pcap");
  // -B: a 64 MiB buffer, so a burst of TCP does not overflow it; --immediate-mode -U:
  // nothing waits in a buffer when the demo stops the capture.
  const p: LabProcess = lab.at(NS.wan).spawn(["tcpdump", "-Z", "root", "-i", IF.bridge, "-n", "-B", "65536", "--immediate-mode", "-U", "-w", pcap, "udp"], { log: "tcpdump" });
  await waitFor(() => /listening on/.test(readFileSync(p.log!, "utf8")) || !p.running, "tcpdump on the WAN bridge", 15_000);
  if (!p.running) throw new Error(`tcpdump failed: ${readFileSync(p.log!, "utf8")}`);
  return {
    pcap,
    async stop() {
      await p.stop("SIGINT", 3000); // SIGINT: tcpdump flushes, closes the file, prints its counts
      return Number(/(\d+) packets? dropped by kernel/.exec(readFileSync(p.log!, "utf8"))?.[1] ?? 0);
    },
  };
}

export interface EspSaTableFile {
  /** XDG_CONFIG_HOME for tshark: the table is its wireshark/esp_sa. */
  xdg: string;
  rows: number;
  /** Where the keys came from, for the report. */
  source: string;
  /** SA directions the table leaves out (ChaCha20-Poly1305: noble checks those). */
  notes: string[];
}

/**
 * The esp_sa table of the three CEs, addresses "*" (C's frames carry the NAT's
 * address, not C's own; SPIs are unique here). Static keys: merged from
 * `wesp keys --wireshark --any-address` of each config. IKE: from `sas`, the
 * key logs' SAs (the configs hold no ESP key). Written where tshark looks when
 * XDG_CONFIG_HOME is the returned directory.
 */
export async function espSaTable(lab: Lab, configs: DemoConfigs, sas: DemoSa[]): Promise<EspSaTableFile> {
  const rows = new Set<string>();
  const notes = new Set<string>();
  let source: string;
  if (configs.mode === "static") {
    const runs = await Promise.all(SITES.map((s) => exec(wespArgv("keys", "--wireshark", "--any-address", configs.files[s.id]))));
    for (const [i, r] of runs.entries()) {
      if (r.code !== 0) throw new Error(`wesp keys --wireshark ${configs.files[SITES[i].id]} → exit ${r.code}: ${r.stderr}`);
      for (const line of r.stdout.split("\n")) if (line.startsWith('"')) rows.add(line);
      for (const line of r.stderr.split("\n")) if (line.startsWith("note: ")) notes.add(line.slice(6).replace(/^peers\[\d+\] /, ""));
    }
    source = "'wesp keys --wireshark --any-address' of the three configs";
  } else {
    for (const sa of sas) {
      const row = espSaRow({ family: 4, src: "*", dst: "*", spi: sa.spi, suite: sa.suite, key: Buffer.from(sa.keymat).toString("hex") });
      if (row) rows.add(row);
      else notes.add(`SPI 0x${sa.spi.toString(16).padStart(8, "0")}: ${sa.suite} is not supported by Wireshark's ESP dissector`);
    }
    source = "the keys IKE negotiated (the CEs' WESP_ESP_KEYLOG files)";
  }
  const xdg = join(lab.dir, "tshark");
  mkdirSync(join(xdg, "wireshark"), { recursive: true, mode: 0o700 });
  writeFileSync(join(xdg, "wireshark", "esp_sa"), [...rows].join("\n") + "\n", { mode: 0o600 });
  return { xdg, rows: rows.size, source, notes: [...notes] };
}

export interface WireFrame {
  frame: number;
  src: string;
  dst: string;
  spi: number;
  seq: number;
  icv: "good" | "bad" | "unchecked";
  checkedBy: "tshark" | "noble" | "none";
  innerSrc?: string;
  innerDst?: string;
  info?: string;
}

export interface WireReport {
  /** ESP frames, each checked (or unchecked: no SA has its SPI). */
  frames: WireFrame[];
  /** NAT-keepalives (RFC 3948 §2.3: one 0xFF byte) seen. */
  keepalives: number;
  /** IKE datagrams: UDP port 500, or 4500 behind the non-ESP marker (RFC 3948 §2.2). */
  ike: number;
  /** Other UDP frames (not ESP, not IKE, not keepalives). */
  other: number;
}

const IKE_PORT = 500;

const FIELDS = ["frame.number", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "udp.srcport", "udp.dstport", "udp.payload",
  "esp.spi", "esp.sequence", "esp.icv_good", "esp.icv_bad", "_ws.col.Info"];

/** Every UDP frame of the capture, ESP ones checked (tshark first, noble for ChaCha20-Poly1305). */
export async function decode(pcap: string, xdg: string, sas: DemoSa[]): Promise<WireReport> {
  const r = await exec(["env", `XDG_CONFIG_HOME=${xdg}`, "tshark", "-r", pcap, "-n",
    "-o", "esp.enable_encryption_decode:TRUE", "-o", "esp.enable_authentication_check:TRUE",
    "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=|",
    ...FIELDS.flatMap((f) => ["-e", f])], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`tshark → exit ${r.code}: ${r.stderr}`);
  const bySpi = new Map(sas.map((s) => [s.spi, s]));
  const report: WireReport = { frames: [], keepalives: 0, ike: 0, other: 0 };
  for (const line of r.stdout.split("\n")) {
    if (!line) continue;
    const c = line.split("\t");
    const col = (name: string) => (c[FIELDS.indexOf(name)] ?? "").split("|").filter((x) => x !== "");
    const payload = Buffer.from((col("udp.payload")[0] ?? "").replace(/:/g, ""), "hex");
    // The outer header is IPv4 (the first ip.src); the decrypted inner one is the second ip.src or the ipv6.src.
    const [src, innerSrc = col("ipv6.src")[0]] = col("ip.src");
    const [dst, innerDst = col("ipv6.dst")[0]] = col("ip.dst");
    const ports = [Number(col("udp.srcport")[0]), Number(col("udp.dstport")[0])];
    const f = classify(report, payload, ports, {
      frame: Number(col("frame.number")[0]),
      src: `${src}:${ports[0]}`,
      dst: `${dst}:${ports[1]}`,
    });
    if (!f) continue;
    f.icv = col("esp.icv_good")[0] === "1" ? "good" : col("esp.icv_bad")[0] === "1" ? "bad" : "unchecked";
    if (f.icv === "good") Object.assign(f, { checkedBy: "tshark", innerSrc, innerDst, info: col("_ws.col.Info").join(" ") });
    // What tshark could not check (ChaCha20-Poly1305), noble does.
    else if (f.icv === "unchecked" && bySpi.get(f.spi)?.suite === "chacha20-poly1305") withNoble(f, payload, bySpi.get(f.spi)!);
    if (f.icv !== "unchecked" && f.checkedBy === "none") f.checkedBy = "tshark";
    report.frames.push(f);
  }
  return report;
}

/** Every UDP frame of the capture, read without tshark, each ESP frame checked by noble. */
export function decodeWithoutTshark(pcap: string, sas: DemoSa[]): WireReport {
  const bySpi = new Map(sas.map((s) => [s.spi, s]));
  const report: WireReport = { frames: [], keepalives: 0, ike: 0, other: 0 };
  for (const u of readPcapUdp(pcap)) {
    const f = classify(report, u.payload, [u.sport, u.dport], { frame: u.frame, src: `${u.src}:${u.sport}`, dst: `${u.dst}:${u.dport}` });
    if (!f) continue;
    const sa = bySpi.get(f.spi);
    if (sa) withNoble(f, u.payload, sa);
    report.frames.push(f);
  }
  return report;
}

/** Counts a NAT-keepalive, IKE or other UDP; an ESP frame comes back unchecked. */
function classify(report: WireReport, payload: Uint8Array, ports: number[], at: Pick<WireFrame, "frame" | "src" | "dst">): WireFrame | null {
  if (payload.length === 1 && payload[0] === 0xff) {
    report.keepalives++;
    return null;
  }
  const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  // IKE on 500 starts with the initiator's SPI, which is not an ESP SPI: told apart by the port
  if (ports.includes(IKE_PORT) || (payload.length >= 8 && dv.getUint32(0) === 0)) {
    report.ike++;
    return null;
  }
  if (payload.length < 8) {
    report.other++;
    return null;
  }
  return { ...at, spi: dv.getUint32(0), seq: dv.getUint32(4), icv: "unchecked", checkedBy: "none" };
}

/** Opens `f` with @noble/ciphers and fills in its verdict and inner packet. */
function withNoble(f: WireFrame, payload: Uint8Array, sa: DemoSa): void {
  const o = openEsp(payload, sa);
  f.icv = o.icv;
  f.checkedBy = "noble";
  if (o.inner) {
    const d = describeInner(o.inner);
    Object.assign(f, { innerSrc: d.src, innerDst: d.dst, info: d.info });
  }
}

export interface SpiSummary {
  spi: number;
  from: SiteId;
  to: SiteId;
  suite: string;
  frames: number;
  good: number;
  bad: number;
  unchecked: number;
  checkedBy: string[];
  /** Outer "src → dst" endpoints seen (for C: the NAT's mapped port). */
  endpoints: string[];
}

/** ESP frames whose SPI is none of `sas`' (nothing could check them), and those SPIs. */
export function unknownSpis(report: WireReport, sas: DemoSa[]): { frames: number; spis: number[] } {
  const known = new Set(sas.map((s) => s.spi));
  const stray = report.frames.filter((f) => !known.has(f.spi));
  return { frames: stray.length, spis: [...new Set(stray.map((f) => f.spi))] };
}

export function summarize(report: WireReport, sas: DemoSa[]): SpiSummary[] {
  return sas.map((sa) => {
    const fs = report.frames.filter((f) => f.spi === sa.spi);
    return {
      spi: sa.spi, from: sa.from, to: sa.to, suite: sa.suite,
      frames: fs.length,
      good: fs.filter((f) => f.icv === "good").length,
      bad: fs.filter((f) => f.icv === "bad").length,
      unchecked: fs.filter((f) => f.icv === "unchecked").length,
      checkedBy: [...new Set(fs.map((f) => f.checkedBy))],
      endpoints: [...new Set(fs.map((f) => `${f.src} → ${f.dst}`))],
    };
  });
}
