// `wesp status` as text: one block per peer, one line per SA, then the global
// and host counters. Drop reasons that are zero are left out of the text (the
// --json form has every one).
import { hostText } from "../config/addr.ts";
import type { CounterBlock, IkePeerStatus, SaStatus, Status } from "./status.ts";

const hex = (spi: number) => "0x" + spi.toString(16).padStart(8, "0");

function drops(c: CounterBlock): string {
  const nz = Object.entries(c.drops).filter(([, v]) => v > 0);
  if (nz.length === 0) return "drops 0";
  return `drops ${c.dropped} (${nz.map(([k, v]) => `${k} ${v}`).join(", ")})`;
}

function duration(s: number): string {
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return d > 0 ? `${d}d${h}h` : h > 0 ? `${h}h${m}m` : m > 0 ? `${m}m${s % 60}s` : `${s}s`;
}

function saLine(dir: "out" | "in", s: SaStatus, plain: boolean): string {
  const state = s.expired ? "  EXPIRED" : s.live ? "" : "  (not live)";
  // Plain IP-in-IP / GRE "SAs" have neither SPI nor sequence numbers.
  const spi = plain ? "" : `spi ${hex(s.spi)}  `;
  const seq = plain ? "" : dir === "out" ? `next seq ${s.seq}  ` : `top seq ${s.seq}  `;
  return `  ${dir.padEnd(3)} ${spi}packets ${s.counters.packets}  bytes ${s.counters.bytes}  ${seq}${drops(s.counters)}${state}`;
}

/** One IKE peer: its IKE SA on one line, a line per CHILD_SA (host/ike/runtime.ts). */
function ikeLines(p: IkePeerStatus): string[] {
  const s = (n: number | undefined) => (n === undefined ? "?" : duration(n));
  const head = [`ike ${p.name}  ${p.state}`];
  if (p.role) head.push(p.role);
  if (p.proposal) head.push(p.proposal + (p.natDetected ? "  NAT-T" : "") + (p.behindNat ? " (behind a NAT)" : ""));
  if (p.peerAuth) head.push(p.peerAuth.method === "psk" ? "psk" : `cert "${p.peerAuth.subject}"`);
  if (p.establishedSeconds !== undefined) head.push(`established ${s(p.establishedSeconds)} ago`);
  if (p.ikeRekeyInSeconds !== undefined) head.push(`rekey in ${s(p.ikeRekeyInSeconds)}`);
  if (p.lastHeardSeconds !== undefined) head.push(`last heard ${s(p.lastHeardSeconds)} ago`);
  if (p.retryInSeconds !== undefined) head.push(`retry in ${s(p.retryInSeconds)}`);
  head.push(`failures ${p.failures}${p.alarm ? "  ALARM" : ""}`);
  if (p.lastError && p.state !== "up") head.push(`last error: ${p.lastError}`);
  const out = [head.join("  ")];
  if (p.ikeSa) out.push(`  ike sa ${p.ikeSa}`);
  for (const c of p.childSas) out.push(`  child in ${hex(c.spiIn)}  out ${hex(c.spiOut)}${c.mode ? `  ${c.mode}` : ""}${c.worker !== undefined ? `  worker ${c.worker}` : ""}${c.rekeyInSeconds !== undefined ? `  rekey in ${s(c.rekeyInSeconds)}` : "  rekeying"}`);
  return out;
}

export function formatStatus(st: Status): string {
  const out: string[] = [];
  out.push(`node ${st.node}  pid ${st.pid}  up ${duration(st.uptimeSeconds)}  tun ${st.tun}  workers ${st.workers}`);
  for (const p of st.peers) {
    const enc = p.encap === "plain" ? "plain" : p.encap === "udp" ? "esp-in-udp" : "raw esp";
    const at = (a: string, port: number) => hostText(a) + (p.encap === "udp" ? `:${port}` : "");
    // RFC 3948 §3.5: behind a NAT the peer is where its authenticated packets come from
    const learned = p.learned ? `  (NAT-T learned; configured ${at(p.configured.address, p.configured.port)})` : "";
    out.push(`peer ${p.name}  ${p.mode}  ${enc}${p.suite ? "  " + p.suite : ""}  ${at(p.address, p.port)}${learned}`);
    const plain = p.encap === "plain";
    if (p.outbound) out.push(saLine("out", p.outbound, plain));
    for (const s of p.inbound) out.push(saLine("in", s, plain));
    // Several workers: the lines above are sums; each worker's own SAs follow (docs/forwarder.md "Workers").
    if (!plain) for (const w of p.workers ?? []) {
      const sas = [...(w.outbound ? [`out ${hex(w.outbound.spi)} ${w.outbound.counters.packets}`] : []), ...w.inbound.map((s) => `in ${hex(s.spi)} ${s.counters.packets}`)];
      out.push(`    worker ${w.worker}  ${sas.join("  ")} packets`);
    }
  }
  // Reservation journals not yet retired (host/sa/journal.ts): normally gone seconds after an install.
  const j = st.journals;
  if (j && j.count > 0) {
    out.push(`journals ${j.count} pending  (${j.pendingFiles} key files to write${j.oldestSeconds !== null ? `, oldest ${duration(j.oldestSeconds)}` : ""})`);
  }
  for (const k of st.journalsKept ?? []) out.push(`journal ${k.file} kept: ${k.why}`);
  const g = st.global;
  out.push(`global inbound   packets ${g.inbound.packets}  bytes ${g.inbound.bytes}  ${drops(g.inbound)}`);
  out.push(`global outbound  packets ${g.outbound.packets}  bytes ${g.outbound.bytes}  ${drops(g.outbound)}`);
  const h = st.host;
  out.push(
    `host  tun read ${h.tunRead}  tun written ${h.tunWritten}  sent ${h.sent}  received ${h.received}  to-host ${h.toHost}  ` +
      `icmp too-big ${h.icmpTooBig} (rate-limited ${h.icmpRateLimited})  fragmented ${h.fragmented}  keepalives ${h.keepalives}`,
  );
  for (const s of st.sockets) {
    const errs = s.failed || s.unsent || s.truncated ? `  failed ${s.failed} (errno ${s.lastErrno})  unsent ${s.unsent}  truncated ${s.truncated}` : "";
    // the kernel's drops on a full receive buffer (UdpRcvbufErrors for this socket)
    const kd = s.kernelDrops ? `  kernel drops ${s.kernelDrops} (receive buffer full)` : "";
    // the TUN queue's reader: io_uring, or readv and why (tun.reader, or what the kernel refused)
    const rd = s.reader ? `  reader ${s.reader.reader}${s.reader.why ? ` (${s.reader.why})` : ""}` : "";
    out.push(`  ${s.name.padEnd(22)} rx ${s.received}  tx ${s.sent}${errs}${kd}${rd}`);
  }
  const o = st.offloads;
  if (o) {
    const t = o.tun;
    const tso = t.tso === "on" ? `tso on (${t.superPackets} super-packets → ${t.segments} segments, ${t.malformed} malformed)` : `tso ${t.tso}`;
    const gro = `  coalesced ${t.coalesced} (${t.coalescedSegments} segments)`;
    // USO (Linux 6.2): UDP super-packets read and UDP runs coalesced on write, only when the kernel took it
    const uso = t.uso === "on" ? `  uso on  udp coalesced ${t.udpCoalesced} (${t.udpCoalescedDatagrams} datagrams)` : `  uso ${t.uso}`;
    const udp = o.udp.map((u) => `  ${u.name} gso ${u.gso}  gro ${u.gro}  trains ${u.trains} (${u.datagrams} datagrams)`).join("");
    out.push(`offloads  tun ${t.vnetHdr ? tso + gro + uso : "no vnet header"}${udp}`);
  }
  for (const p of st.ike ?? []) out.push(...ikeLines(p));
  for (const f of st.failover ?? []) out.push(`failover ${f.primary}  backup ${f.backup}  via ${f.via ?? "none"}`);
  return out.join("\n") + "\n";
}
