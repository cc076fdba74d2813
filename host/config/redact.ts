// Keeping key material out of what we print.
//
// First line of defence: messages are built from field names and lengths,
// never from values that may be keys (keys.ts, schema_errors.ts). Second line,
// here: every message that leaves the loader goes through `scrub`, which
// blanks anything shaped like key material, in case a parser quotes the source.

import type { Config } from "./model.ts";
import { SUITES } from "./suites.ts";

// 16+ hex digits (8+ bytes): longer than any SPI, GRE key or IPv6 group run we print.
const HEX_RUN = /(0[xX])?[0-9a-fA-F]{16,}/g;
// 20+ base64 characters. Redacted when some '/'-separated piece of 16+
// characters mixes upper case, lower case and digits, as random base64 does;
// words and paths such as /tmp/wesp-cfg-Ab3xYz/host/cli/bench.ts survive.
const B64_RUN = /[A-Za-z0-9+/]{20,}={0,2}/g;
const RANDOM_PIECE = (piece: string) => piece.length >= 16 && /[0-9]/.test(piece) && /[A-Z]/.test(piece) && /[a-z]/.test(piece);

/** Replace key-shaped runs with "[redacted]". */
export function scrub(text: string): string {
  return text
    .replace(HEX_RUN, "[redacted]")
    .replace(B64_RUN, (m) => (m.replace(/=+$/, "").split("/").some(RANDOM_PIECE) ? "[redacted]" : m));
}

/**
 * Scrub a field path. Its names come from the file and may be anything — a
 * key pasted where a field name goes, or split by a stray character into
 * pieces shorter than `scrub` catches — so runs of 8+ hex digits go too (no
 * schema name or list index has one).
 */
export function scrubPath(path: string): string {
  return scrub(path).replace(/[0-9a-fA-F]{8,}/g, "[redacted]");
}

/**
 * A human-readable summary of a loaded config for `wesp check --verbose` and
 * debug logs: every setting except keys, which appear as their length only.
 */
export function describeConfig(c: Config): string {
  const n = c.node;
  const lines: string[] = [];
  lines.push(`node ${n.name} (from ${c.source})`);
  for (const w of n.wan) {
    lines.push(`  wan ${w.name}: ${w.address.text} udp/${w.port} encap=${w.encap}${w.trusted ? " trusted" : ""}`);
  }
  const addrs = n.tun.addresses.map((a) => a.text).join(", ") || "none";
  lines.push(`  tun ${n.tun.name}: mtu ${n.tun.mtu}, addresses ${addrs}${n.tun.persistent ? ", persistent" : ""}${n.tun.reader === "auto" ? ", reader auto (io_uring)" : ""}`);
  lines.push(`  local prefixes: ${n.localPrefixes.map((p) => p.text).join(", ") || "none"}`);
  lines.push(`  control socket: ${n.control.socket}`);
  lines.push(`  workers: ${n.workers}`);
  if (n.metrics) lines.push(`  metrics: ${"path" in n.metrics.listen ? n.metrics.listen.path : `${n.metrics.listen.host}:${n.metrics.listen.port}`}`);
  for (const p of c.peers) {
    const encap = p.mode === "ipip" || p.mode === "gre" ? "plain" : `${p.encap}${p.natT ? " nat-t" : ""}`;
    const gre = p.gre.key !== undefined || p.gre.sequence ? ` gre(key=${p.gre.key ?? "none"}, seq=${p.gre.sequence})` : "";
    lines.push(`peer ${p.name}: ${p.address.text} port ${p.port} via ${p.wan}, mode ${p.mode}, ${encap}${gre}${p.mtu ? `, mtu ${p.mtu}` : ""}${p.keepalive ? `, keepalive ${p.keepalive}s` : ""}`);
    lines.push(`  prefixes: ${p.prefixes.map((x) => x.text).join(", ")}`);
    const k = p.ike;
    if (k) {
      lines.push(
        `  ike: ${k.certs ? `certificate "${k.certs.chain[0].subject.split("\n").join(", ")}" (+${k.certs.chain.length - 1} intermediates, ${k.certs.cas.length} CAs)` : `psk ${k.psk.length} bytes`}, ${k.localId.type} ${k.localId.value} -> ${k.remoteId.type} ${k.remoteId.value}, ike [${k.proposals.ike.join(", ")}], esp [${k.proposals.esp.join(", ")}], ` +
          `lifetimes ike ${k.lifetime.ikeSeconds}s child ${k.lifetime.childSeconds}s, dpd ${k.dpd}s, retry ${k.retry.min}-${k.retry.max}s alarm after ${k.retry.alarmAfter}${k.initiate ? ", initiates" : ", waits"}`,
      );
    }
    for (const sa of p.sas) {
      const auth = sa.authKeyIn ? `, auth keys ${sa.authKeyIn.length}/${sa.authKeyOut?.length ?? 0} bytes` : "";
      const life = Object.entries(sa.lifetime).map(([k, v]) => `${k}=${v}`).join(" ");
      lines.push(
        `  sa[${sa.index}] ${SUITES[sa.suite].label}: in 0x${hex8(sa.spiIn)} out 0x${hex8(sa.spiOut)}, ` +
          `keys ${sa.keyIn.length}/${sa.keyOut.length} bytes${auth}, replay ${sa.replayWindow}, esn ${sa.esn}${life ? `, lifetime ${life}` : ""}`,
      );
    }
  }
  return lines.join("\n");
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, "0");
}
