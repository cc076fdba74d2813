// What the demo must see to pass. Each check says what it looked at, so a
// FAIL names the pair, SPI or CE at fault.
import { ESP_PORT, NAT_OUTSIDE, NAT_PORTS, PAIRS, SITES, siteById, type SiteId } from "./plan.ts";
import type { DemoResult } from "./run.ts";

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

const hex = (spi: number) => "0x" + spi.toString(16).padStart(8, "0");
const name = (id: SiteId) => siteById(id).name;

export function judge(r: DemoResult): Check[] {
  const checks: Check[] = [];
  const add = (n: string, ok: boolean, detail: string) => checks.push({ name: n, ok, detail });

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
  if (!r.wire) add("wire", false, "no capture was decoded");
  else {
    const empty = r.wire.filter((s) => s.frames === 0).map((s) => hex(s.spi));
    const bad = r.wire.filter((s) => s.bad > 0 || s.unchecked > 0);
    const frames = r.wire.reduce((n, s) => n + s.frames, 0);
    add("wire: every SA used", empty.length === 0, empty.length ? `no frames with SPI ${empty.join(", ")}` : `${r.wire.length} SAs, ${frames} ESP frames`);
    add("wire: every ICV good", frames > 0 && bad.length === 0,
      bad.length ? bad.map((s) => `SPI ${hex(s.spi)}: ${s.bad} bad, ${s.unchecked} unchecked`).join("; ") : `${frames} of ${frames} frames authenticated by tshark or @noble/ciphers`);

    // NAT traversal: C's frames leave from the NAT's mapped port, and A and B
    // send to that port (learned), never to the configured 4500.
    const c = SITES.find((s) => s.behindNat)!;
    const fromC = r.wire.filter((s) => s.from === c.id).flatMap((s) => s.endpoints.map((e) => e.split(" → ")[0]));
    const toC = r.wire.filter((s) => s.to === c.id).flatMap((s) => s.endpoints.map((e) => e.split(" → ")[1]));
    const port = (ep: string) => Number(ep.split(":")[1]);
    const mapped = fromC.length > 0 && fromC.every((ep) => ep.startsWith(NAT_OUTSIDE + ":") && port(ep) >= NAT_PORTS.first && port(ep) <= NAT_PORTS.last);
    const learned = toC.length > 0 && toC.every((ep) => fromC.includes(ep));
    add("NAT: C's ESP translated", mapped, `${c.name} seen as ${[...new Set(fromC)].join(", ") || "nothing"} (NAT ports ${NAT_PORTS.first}-${NAT_PORTS.last})`);
    add("NAT: peers learned C's mapping", learned,
      `${c.name}'s peers sent to ${[...new Set(toC)].join(", ") || "nothing"}; configured ${NAT_OUTSIDE}:${ESP_PORT}`);
  }

  // Counters: each CE answered; per SA, the receiver accepted packets and
  // dropped none (no bad ICV, no replay, no bad padding), and neither it nor
  // the capture saw more than the sender sent. (Fewer is possible: a UDP
  // datagram can be lost on the way, and TCP then sends it again.)
  const missing = SITES.filter((s) => !r.status[s.id]).map((s) => s.name);
  add("wesp status", missing.length === 0, missing.length ? `no answer from ${missing.join(", ")}` : "all three CEs answered");
  if (missing.length === 0 && r.wire) {
    const diffs: string[] = [];
    let sentAll = 0, gotAll = 0;
    for (const p of PAIRS) {
      for (const [from, to, spi] of [[p.a, p.b, p.spiAB], [p.b, p.a, p.spiBA]] as const) {
        const sent = r.status[from.id]!.peers.find((x) => x.name === to.name)?.outbound?.counters.packets ?? -1;
        const inSa = r.status[to.id]!.peers.find((x) => x.name === from.name)?.inbound.find((s) => s.spi === spi);
        const got = inSa?.counters.packets ?? -1;
        const dropped = inSa?.counters.dropped ?? -1;
        const wire = r.wire.find((s) => s.spi === spi)?.frames ?? -1;
        sentAll += sent;
        gotAll += got;
        if (!(got > 0 && got <= sent && wire <= sent && dropped === 0)) {
          diffs.push(`SPI ${hex(spi)}: ${from.name} sent ${sent}, captured ${wire}, ${to.name} accepted ${got} and dropped ${dropped}`);
        }
      }
    }
    add("counters", diffs.length === 0, diffs.length ? diffs.join("; ")
      : `per SA: accepted ≤ sent, captured ≤ sent, no inbound drops (${gotAll} of ${sentAll} ESP packets arrived)`);
  }
  return checks;
}
