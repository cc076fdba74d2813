// What the demo must see to pass. Each check says what it looked at, so a
// FAIL names the pair, SPI or CE at fault.
import { ESP_PORT, NAT_OUTSIDE, NAT_PORTS, SITES, siteById, type SiteId } from "./plan.ts";
import { peerAddress } from "./configs.ts";
import type { DemoResult } from "./run.ts";
import { ikeChecks } from "./checks_ike.ts";

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
  /** Not checked: a tool it needs is missing (detail says which). Does not fail the run. */
  skipped?: boolean;
}

const hex = (spi: number) => "0x" + spi.toString(16).padStart(8, "0");
const name = (id: SiteId) => siteById(id).name;

export function judge(r: DemoResult): Check[] {
  const checks: Check[] = [];
  const add = (n: string, ok: boolean, detail: string) => checks.push({ name: n, ok, detail });
  const skip = (n: string, detail: string) => checks.push({ name: n, ok: true, detail, skipped: true });
  const tools = r.tools;
  const c = SITES.find((s) => s.behindNat)!;
  const learnedName = tools.nft ? "NAT: peers learned C's mapping" : "peers learned C's address";

  // IKEv2 first: without its SAs nothing else can pass.
  if (r.mode === "ike") checks.push(...ikeChecks(r));

  // Every ordered pair, both families: pings answered, transfers intact.
  const want = SITES.length * (SITES.length - 1) * 2;
  const badPings = r.pings.filter((p) => p.received !== p.sent || p.sent === 0);
  add("ping", r.pings.length === want && badPings.length === 0,
    r.pings.length < want ? `${r.pings.length} of ${want} pings ran`
      : badPings.length ? badPings.map((p) => `${name(p.from)} → ${p.dst}: ${p.received}/${p.sent}${p.error ? ` (${p.error})` : ""}`).join("; ")
        : `${want} directions × family, every echo answered`);
  const badTcp = r.tcp.filter((t) => !t.ok);
  add("tcp", r.tcp.length === want && badTcp.length === 0,
    r.tcp.length < want ? `${r.tcp.length} of ${want} transfers ran`
      : badTcp.length ? badTcp.map((t) => `${name(t.from)} → ${t.dst}: far end got ${t.farBytes} of ${t.bytes} bytes${t.error ? ` (${t.error})` : ", SHA-256 differs"}`).join("; ")
        : `${want} transfers, bytes and SHA-256 equal at the far end`);

  // On the wire: every SA carried traffic and every frame authenticated.
  if (!tools.tcpdump) {
    skip("wire: every SA used", "no tcpdump: nothing was captured");
    skip("wire: every ICV good", "no tcpdump: nothing was captured");
  } else if (!r.wire) add("wire", false, "no capture was decoded");
  else {
    const empty = r.wire.filter((s) => s.frames === 0).map((s) => hex(s.spi));
    const bad = r.wire.filter((s) => s.bad > 0 || s.unchecked > 0);
    const frames = r.wire.reduce((n, s) => n + s.frames, 0);
    const stray = r.unknownSpi;
    const keys = r.mode === "ike" ? "the keys IKE negotiated (key logs)" : "the configs' keys";
    add("wire: every SA used", r.wire.length > 0 && empty.length === 0, empty.length ? `no frames with SPI ${empty.join(", ")}` : `${r.wire.length} SAs, ${frames} ESP frames`);
    add("wire: every ICV good", frames > 0 && bad.length === 0 && stray.frames === 0,
      [...bad.map((s) => `SPI ${hex(s.spi)}: ${s.bad} bad, ${s.unchecked} unchecked`),
        ...(stray.frames ? [`${stray.frames} frames with SPIs of no SA (${stray.spis.map(hex).join(", ")})`] : [])].join("; ")
        || `${frames} of ${frames} frames authenticated by ${tools.tshark ? "tshark or @noble/ciphers" : "@noble/ciphers (no tshark)"} with ${keys}`);
  }

  // NAT traversal: C's frames leave from the NAT's mapped port, and A and B
  // send to that port (learned), never to the configured 4500. Without nft C is
  // routed, not translated: its peers must still learn its real address.
  // Without a capture, the NAT's table and the peers' `wesp status` tell the same.
  const port = (ep: string) => Number(ep.split(":")[1]);
  const translated = (ep: string) => ep.startsWith(NAT_OUTSIDE + ":") && port(ep) >= NAT_PORTS.first && port(ep) <= NAT_PORTS.last;
  const configured = `configured ${peerAddress(c, r.mode, tools.nft)}:${ESP_PORT}`;
  if (!tools.nft) skip("NAT: C's ESP translated", "no nft: site C is routed, not translated");
  const peersOfC = SITES.filter((s) => s.id !== c.id);
  if (r.wire) {
    const wire = r.wire;
    const ends = (from: SiteId, to: SiteId) => wire.filter((s) => s.from === from && s.to === to).flatMap((s) => s.endpoints.map((e) => e.split(" → ")));
    const fromC = peersOfC.flatMap((p) => ends(c.id, p.id).map(([src]) => src));
    if (tools.nft) {
      add("NAT: C's ESP translated", fromC.length > 0 && fromC.every(translated),
        `${c.name} seen as ${[...new Set(fromC)].join(", ") || "nothing"} (NAT ports ${NAT_PORTS.first}-${NAT_PORTS.last})`);
    }
    // Per peer: it sends to exactly where C's frames to it come from (the NAT keeps a mapping per flow).
    const seen = peersOfC.map((p) => {
      const mine = new Set(ends(c.id, p.id).map(([src]) => src));
      const sentTo = [...new Set(ends(p.id, c.id).map(([, dst]) => dst))];
      return { p, mine, sentTo, ok: sentTo.length > 0 && mine.size === 1 && sentTo.every((ep) => mine.has(ep)) };
    });
    add(learnedName, seen.every((x) => x.ok),
      `${seen.map((x) => `${x.p.name} sent to ${x.sentTo.join(", ") || "nothing"} (${c.name}'s frames to it came from ${[...x.mine].join(", ") || "nowhere"})`).join("; ")}; ${configured}`);
  } else if (!tools.tcpdump) {
    // C's own ESP flows (from its port 4500, one per peer) as the NAT's conntrack table shows them.
    const mappings = peersOfC.map((p) => r.nat.find((m) => m.inside === `${c.wan}:${ESP_PORT}` && m.remote === `${p.wan}:${ESP_PORT}`));
    if (tools.nft) {
      add("NAT: C's ESP translated", mappings.every((m) => !!m && translated(m.outside)),
        `the NAT's table maps ${c.name}'s ${c.wan}:${ESP_PORT} to ${mappings.map((m, i) => `${m?.outside ?? "nothing"} (to ${peersOfC[i].name})`).join(", ")} (NAT ports ${NAT_PORTS.first}-${NAT_PORTS.last})`);
    }
    const seen = peersOfC.map((s, i) => {
      const p = r.status[s.id]?.peers.find((x) => x.name === c.name);
      const want = tools.nft ? mappings[i]?.outside : `${c.wan}:${ESP_PORT}`;
      const ep = p?.learned ? `${p.address}:${p.port}` : p ? "not learned" : "no status";
      return { site: s.name, ep, ok: !!want && ep === want };
    });
    add(learnedName, seen.every((x) => x.ok),
      `wesp status: ${seen.map((x) => `${x.site} sends to ${x.ep}`).join(", ")}; ${configured}`);
  }

  // Counters: each CE answered; per SA, the receiver accepted packets and
  // dropped none (no bad ICV, no replay, no bad padding), and neither it nor
  // the capture saw more than the sender sent. (Fewer is possible: a UDP
  // datagram can be lost on the way, and TCP then sends it again.)
  const missing = SITES.filter((s) => !r.status[s.id]).map((s) => s.name);
  add("wesp status", missing.length === 0, missing.length ? `no answer from ${missing.join(", ")}` : "all three CEs answered");
  if (missing.length === 0) {
    const diffs: string[] = [];
    let sentAll = 0, gotAll = 0;
    for (const { from, to, spi } of r.sas) {
      const out = r.status[from]!.peers.find((x) => x.name === name(to))?.outbound;
      const sent = out?.spi === spi ? out.counters.packets : -1;
      const inSa = r.status[to]!.peers.find((x) => x.name === name(from))?.inbound.find((s) => s.spi === spi);
      const got = inSa?.counters.packets ?? -1;
      const dropped = inSa?.counters.dropped ?? -1;
      const wire = r.wire ? r.wire.find((s) => s.spi === spi)?.frames ?? -1 : 0;
      sentAll += sent;
      gotAll += got;
      if (!(got > 0 && got <= sent && wire <= sent && dropped === 0)) {
        diffs.push(`SPI ${hex(spi)}: ${name(from)} sent ${sent < 0 ? "nothing on it" : sent}, captured ${wire}, ${name(to)} accepted ${got} and dropped ${dropped}`);
      }
    }
    add("counters", r.sas.length > 0 && diffs.length === 0, diffs.length ? diffs.join("; ") : r.sas.length === 0 ? "no SA to count"
      : `per SA: accepted ≤ sent, ${r.wire ? "captured ≤ sent, " : ""}no inbound drops (${gotAll} of ${sentAll} ESP packets arrived)`);
  }
  return checks;
}
