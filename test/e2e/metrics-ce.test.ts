// A CE's Prometheus metrics and logs (host/metrics/), end to end:
//
//   hostA ─lan─ ceA ══ wan ══ ceB ─lan─ hostB      (forwarder-util.ts's lab)
//
// ceA serves /metrics on a Unix socket and logs JSON at debug level; ceB
// serves it on 127.0.0.1:9469 inside its namespace and logs text at debug
// level. A numbered UDP stream flows hostA → hostB while ceA is scraped:
// its SA and peer counters rise. Datagrams with an SPI nobody holds are sent
// to ceA (NO_SA drops). Once the stream stops, a scrape equals
// `wesp status --json` number for number (SAs, peers, every drop reason by
// name, host counters). Hostile bytes sent to the listener are answered 400
// (or the connection closed) and the CE keeps serving and forwarding. Last,
// every line both CEs logged is searched for each SA key: as hex (either
// case, whole or its first 8 bytes), base64, base64url and raw bytes.
// A second pair of CEs negotiates its SAs with IKEv2 (PSK): the IKE state is
// on /metrics, the SAs IKE installed are counted, and the PSK is in no log;
// ceB's metrics port is taken by another process: it logs that and forwards.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { get } from "node:http";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { REASON_NAMES } from "../../host/core/abi.ts";
import { requestStatus } from "../../host/control/client.ts";
import { waitFor, type LabProcess } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { find, parseExposition, rawExchange, value, type Exposition } from "../helpers/prom.ts";
import { ADDR, WESP_BIN, configs, status, useSites, type Sites } from "./forwarder-util.ts";
import { received, streamReceiver, streamSender } from "./lifecycle-util.ts";
import { ikeNode, ikeOf, ikeUp, writeConfig } from "./ike-util.ts";

const PORT = 9000;
const PPS = 400;
const BOGUS = 25;
/** The start of a text log line: its ISO 8601 UTC time (host/metrics/log.ts). */
const STAMP = String.raw`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z `;

/** GET /metrics over a Unix socket. */
function scrapeUnix(path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get({ socketPath: path, path: "/metrics" }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (d) => (body += d)).on("end", () => resolve({ status: res.statusCode!, body }));
    }).on("error", reject);
  });
}

async function scrape(path: string): Promise<Exposition> {
  const r = await scrapeUnix(path);
  assert.equal(r.status, 200, r.body);
  return parseExposition(r.body);
}

const snake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const spiLabel = (spi: number) => `0x${(spi >>> 0).toString(16).padStart(8, "0")}`;

/** Every number of `st` (a `wesp status --json` answer) that /metrics carries, compared with `e`. */
function assertSame(e: Exposition, st: any): void {
  for (const p of st.peers) {
    const sas: [any, string][] = [...(p.outbound ? [[p.outbound, "out"] as [any, string]] : []), ...p.inbound.map((x: any) => [x, "in"] as [any, string])];
    for (const [sa, direction] of sas.filter(([x]) => !x.expired)) {
      const l = { peer: p.name, direction, spi: spiLabel(sa.spi) };
      const what = `${p.name} ${direction} ${l.spi}`;
      assert.equal(value(e, "wesp_sa_packets_total", l), sa.counters.packets, `${what} packets`);
      assert.equal(value(e, "wesp_sa_bytes_total", l), sa.counters.bytes, `${what} bytes`);
      assert.equal(value(e, "wesp_sa_sequence", l), sa.seq, `${what} sequence`);
      for (const [reason, n] of Object.entries(sa.counters.drops)) {
        assert.equal(value(e, "wesp_sa_drops_total", { ...l, reason }), (n as number) > 0 ? n : undefined, `${what} drops ${reason}`);
      }
    }
    for (const direction of ["in", "out"]) {
      const mine = sas.filter(([x, d]) => d === direction && !x.expired).map(([x]) => x.counters);
      assert.equal(value(e, "wesp_peer_packets_total", { peer: p.name, direction }), mine.reduce((a: number, c: any) => a + c.packets, 0));
      assert.equal(value(e, "wesp_peer_bytes_total", { peer: p.name, direction }), mine.reduce((a: number, c: any) => a + c.bytes, 0));
    }
  }
  for (const [direction, blk] of [["in", st.global.inbound], ["out", st.global.outbound]] as const) {
    assert.equal(value(e, "wesp_packets_total", { direction }), blk.packets, `global ${direction} packets`);
    assert.equal(value(e, "wesp_bytes_total", { direction }), blk.bytes, `global ${direction} bytes`);
    for (const [reason, n] of Object.entries(blk.drops)) assert.equal(value(e, "wesp_drops_total", { direction, reason }), n, `global ${direction} drops ${reason}`);
  }
  for (const [k, n] of Object.entries(st.host)) assert.equal(value(e, "wesp_host_packets_total", { counter: snake(k) }), n, `host ${k}`);
  for (const k of st.sockets) {
    assert.equal(value(e, "wesp_socket_datagrams_total", { socket: k.name, direction: "in" }), k.received, `socket ${k.name} received`);
    assert.equal(value(e, "wesp_socket_datagrams_total", { socket: k.name, direction: "out" }), k.sent, `socket ${k.name} sent`);
  }
}

/** The numbers that move with traffic, for telling a settled CE from a busy one. */
const moving = (st: any) => JSON.stringify([st.peers.map((p: any) => [p.outbound?.counters, p.inbound.map((x: any) => x.counters)]), st.global, st.host, st.sockets]);

// Sends N ESP-in-UDP datagrams with SPI 0xdeadbeef (held by nobody) from an ephemeral port.
const BOGUS_PY = String.raw`
import socket, struct, sys
dst, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(n): s.sendto(struct.pack("!II", 0xdeadbeef, i + 1) + b"\x00" * 48, (dst, port))
print(n)
`;

const SCRAPE_TCP_PY = String.raw`
import sys, urllib.request
sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())
`;

describe("CE metrics and logs: /metrics equals wesp status, hostile requests, no key in any log", { skip: requireTools(["netns", "python3"], { why: "e2e metrics" }) }, () => {
  let s: Sites;
  useSites((x) => (s = x));

  test("scrape while traffic flows, compare with status, refuse hostile requests, scan the logs for keys", { timeout: 170_000 }, async () => {
    const dir = s.lab.dir;
    const { a, b, keys } = configs({ name: "metrics", mode: "tunnel", outer: 4, encap: "udp" }, dir);
    const metricsA = join(dir, "ceA-metrics.sock");
    (a as any).node.metrics = { listen: metricsA };
    (b as any).node.metrics = { listen: "127.0.0.1:9469" };
    const cfgA = join(dir, "metrics-a.json"), cfgB = join(dir, "metrics-b.json");
    writeFileSync(cfgA, JSON.stringify(a), { mode: 0o600 });
    writeFileSync(cfgB, JSON.stringify(b), { mode: 0o600 });
    const sockA = join(dir, "ceA.sock");
    const start = async (ns: Sites["ceA"], args: string[]): Promise<LabProcess> => {
      const p = ns.spawn([process.execPath, WESP_BIN, "up", ...args]);
      await waitFor(async () => !p.running || /forwarding on/.test(p.stderr), `wesp up in ${ns.name}`, 60_000, 20);
      assert.ok(p.running, `wesp up in ${ns.name} exited ${p.exitCode}: ${p.stderr}`);
      return p;
    };
    const pa = await start(s.ceA, ["--log-format", "json", "--log-level", "debug", cfgA]);
    const pb = await start(s.ceB, ["--log-level", "debug", cfgB]);

    // ---- counters rise while the stream flows
    const stop = join(dir, "stop-metrics-stream");
    const rx = await streamReceiver(s.hostB, ADDR.hostB.v4, PORT);
    const tx = streamSender(s.hostA, ADDR.hostB.v4, PORT, PPS, stop);
    await waitFor(() => received(rx).count > 100, "the stream through ceA → ceB", 30_000);
    const outSa = { peer: "ceB", direction: "out", spi: spiLabel(0x1000a) };
    const e1 = await scrape(metricsA);
    const n1 = received(rx).count;
    await waitFor(() => received(rx).count > n1 + 100, "100 more datagrams", 30_000);
    const e2 = await scrape(metricsA);
    for (const [name, l] of [["wesp_sa_packets_total", outSa], ["wesp_sa_bytes_total", outSa], ["wesp_sa_sequence", outSa], ["wesp_peer_packets_total", { peer: "ceB", direction: "out" }], ["wesp_packets_total", { direction: "out" }]] as const) {
      const v1 = value(e1, name, l), v2 = value(e2, name, l);
      assert.ok(v1 !== undefined && v1 > 0 && v2! > v1, `${name} ${JSON.stringify(l)} rises while traffic flows: ${v1} then ${v2}`);
    }
    assert.equal(e2.types.get("wesp_sa_packets_total"), "counter");
    assert.equal(e2.types.get("wesp_peer_up"), "gauge");
    assert.equal(value(e2, "wesp_peer_up", { peer: "ceB" }), 1, "the tunnel is up");
    assert.equal(value(e2, "wesp_sas", { direction: "in" }), 1);
    assert.equal(value(e2, "wesp_sas", { direction: "out" }), 1);
    assert.equal(value(e2, "wesp_sa_installs_total", { peer: "ceB", direction: "out" }), 1);
    assert.equal(value(e2, "wesp_info", { node: "ceA", tun: "wesp0" }), 1);
    assert.equal(value(e2, "wesp_peer_info", { peer: "ceB", mode: "tunnel", encap: "udp", suite: "aes-256-gcm" }), 1);
    assert.ok(find(e2, "process_resident_memory_bytes").length === 1, "process metrics (prom-client defaults)");
    assert.deepEqual(find(e2, "wesp_ike_up"), [], "no IKE peers, no IKE series");
    writeFileSync(stop, "");
    await tx.exited;

    // ---- drops by reason name: datagrams for an SPI nobody holds
    assert.equal((await s.ceB.run(["/usr/bin/python3", "-c", BOGUS_PY, ADDR.ceAwan.v4, "4500", String(BOGUS)])).trim(), String(BOGUS));
    await waitFor(async () => (await requestStatus(sockA) as any).global.inbound.drops.NO_SA >= BOGUS, "ceA counts the bogus SPI as NO_SA", 10_000);

    // ---- once settled, a scrape equals `wesp status --json`
    let compared = false;
    for (let i = 0; i < 10 && !compared; i++) {
      const before = await status(sockA);
      const e = await scrape(metricsA);
      const after = await requestStatus(sockA);
      if (moving(before) !== moving(after)) continue; // something moved between the two: again
      assertSame(e, before);
      const reasons = new Set(find(e, "wesp_drops_total", { direction: "in" }).map((x) => x.labels.reason));
      assert.deepEqual([...reasons].sort(), REASON_NAMES.filter((r) => r !== "NONE").sort(), "every drop reason, by name");
      assert.ok(value(e, "wesp_drops_total", { direction: "in", reason: "NO_SA" })! >= BOGUS);
      compared = true;
    }
    assert.ok(compared, "ceA settled for one scrape between two status reads");

    // ---- ceB's TCP listener, scraped from inside its namespace
    const tcp = parseExposition(await s.ceB.run(["/usr/bin/python3", "-c", SCRAPE_TCP_PY, "http://127.0.0.1:9469/metrics"]));
    assert.ok(value(tcp, "wesp_sa_packets_total", { peer: "ceA", direction: "in", spi: spiLabel(0x1000a) })! > 0, "ceB counts what it received from ceA");

    // ---- hostile requests: refused, the CE serves and forwards on
    const target = { path: metricsA };
    assert.match(await rawExchange(target, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n"), /^$|^HTTP\/1\.1 400 /);
    assert.match(await rawExchange(target, `GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ${"b".repeat(64 * 1024)}\r\n\r\n`), /^$|^HTTP\/1\.1 4(00|31) /);
    assert.match(await rawExchange(target, "GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nzz"), /^$|^HTTP\/1\.1 400 /);
    assert.match(await rawExchange(target, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd"), /^HTTP\/1\.1 405 /);
    assert.match(await rawExchange(target, "GET /debug HTTP/1.1\r\nHost: x\r\n\r\n"), /^HTTP\/1\.1 404 /);
    for (let i = 0; i < 30; i++) {
      const junk = randomBytes(1 + (i * 37) % 300);
      const got = await rawExchange(target, i % 2 ? Buffer.concat([Buffer.from("GET /metrics HTTP/1.1\r\n"), junk, Buffer.from("\r\n\r\n")]) : junk);
      assert.match(got, /^$|^HTTP\/1\.1 (200|400|431) /, `random request ${i}`);
    }
    // Idle connections beyond the limit are closed by the server, not piled up; the listener serves afterwards.
    const idle: Socket[] = [];
    for (let i = 0; i < 40; i++) {
      const c = connect(metricsA);
      c.on("error", () => {});
      idle.push(c);
    }
    await new Promise((r) => setTimeout(r, 200));
    for (const c of idle) c.destroy();
    const e3 = await scrape(metricsA);
    assert.ok(value(e3, "wesp_metrics_requests_total", { code: "400" })! >= 1, "refusals are counted");
    assert.ok(value(e3, "wesp_metrics_requests_total", { code: "200" })! >= 3, "the scrapes before this one");
    assert.ok(pa.running, `ceA still runs: ${pa.stderr.slice(-2000)}`);
    const n2 = received(rx).count;
    await s.hostA.run(["/usr/bin/python3", "-c", `import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor i in range(20): s.sendto(b"x" * 64, ("${ADDR.hostB.v4}", ${PORT}))`]);
    await waitFor(() => received(rx).count >= n2 + 20, "ceA still forwards", 10_000);

    // ---- stop; then no key, in any encoding, in anything either CE logged
    await Promise.all([pa.stop("SIGTERM", 10_000), pb.stop("SIGTERM", 10_000)]);
    assert.equal(pa.exitCode, 0, pa.stderr.slice(-2000));
    assert.equal(pb.exitCode, 0, pb.stderr.slice(-2000));
    const logs = [pa.stdout, pa.stderr, pb.stdout, pb.stderr].join("\n");
    const raw = Buffer.from(logs, "utf8");
    assert.ok(keys.length >= 2);
    for (const hex of keys) {
      const bytes = Buffer.from(hex, "hex");
      const forms = [hex, hex.toUpperCase(), hex.slice(0, 16), hex.slice(0, 16).toUpperCase(), bytes.toString("base64").replace(/=+$/, ""), bytes.toString("base64url")];
      for (const f of forms) assert.ok(!logs.includes(f), `a key (form ${forms.indexOf(f)}) appears in the logs`);
      assert.ok(!raw.includes(bytes), "a key's raw bytes appear in the logs");
    }
    // ceA logged JSON objects, one a line, debug ones included; ceB text lines.
    const lines = pa.stderr.split("\n").filter((l) => l.trim() !== "");
    const objs = lines.map((l) => {
      try {
        return JSON.parse(l);
      } catch {
        assert.fail(`ceA logged a line that is not JSON: ${l}`);
      }
    });
    for (const o of objs) {
      assert.equal(o.name, "wesp up");
      assert.ok(["debug", "info", "warn", "error"].includes(o.level), `level ${o.level}`);
      assert.equal(typeof o.msg, "string");
      assert.ok(!Number.isNaN(Date.parse(o.time)), "ISO time");
    }
    assert.ok(objs.some((o) => o.level === "debug" && /^node ceA \(from /.test(o.msg)), "the config summary at debug level");
    assert.ok(objs.some((o) => o.level === "debug" && o.spi === spiLabel(0x1000a) && o.direction === "out"), `SA installs at debug level, with fields: ${lines.filter((l) => /installed/.test(l)).join("\n")}`);
    assert.ok(objs.some((o) => o.level === "info" && /forwarding on wesp0/.test(o.msg)));
    assert.match(pb.stderr, new RegExp(`${STAMP}wesp up: node ceB \\(from `, "m"), "ceB: text lines, debug included");
    assert.match(pb.stderr, new RegExp(`${STAMP}wesp up: stopped: TUN and sockets closed$`, "m"));
  });

  test("IKE peers: their state and events on /metrics, the SAs IKE installed counted, the PSK in no log", { timeout: 120_000 }, async () => {
    const dir = s.lab.dir;
    const psk = randomBytes(24).toString("base64");
    const metricsA = join(dir, "ceA-ike-metrics.sock");
    // a CHILD_SA rekey every 5 s (soft lifetime: 10 s hard less the 5 s margin), for wesp_ike_events_total
    const lifetime = { child_seconds: 10, rekey_margin: 5, rekey_jitter: 0 };
    const docA: any = ikeNode(dir, "ceA", ADDR.ceAwan.v4, ["10.1.0.0/24"], [{ name: "ceB", address: ADDR.ceBwan.v4, prefixes: ["10.2.0.0/24"], initiate: true, encap: "udp", psk, ike: { lifetime } }]);
    const docB: any = ikeNode(dir, "ceB", ADDR.ceBwan.v4, ["10.2.0.0/24"], [{ name: "ceA", address: ADDR.ceAwan.v4, prefixes: ["10.1.0.0/24"], initiate: false, encap: "udp", psk }]);
    docA.node.metrics = { listen: metricsA };
    // ceB's metrics port is taken: wesp up says so and forwards without metrics.
    docB.node.metrics = { listen: "127.0.0.1:9469" };
    const squatter = s.ceB.spawn(["/usr/bin/python3", "-c", "import socket, time\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('127.0.0.1', 9469)); s.listen()\nprint('held', flush=True)\ntime.sleep(600)"]);
    // (SO_REUSEADDR: the first test's scrape may have left 127.0.0.1:9469 in TIME_WAIT.)
    await waitFor(() => /held/.test(squatter.stdout) || !squatter.running, "a process holding ceB's 127.0.0.1:9469");
    assert.ok(squatter.running, `the port holder: ${squatter.stderr}`);
    const cfgA = writeConfig(dir, "ike-metrics-a.json", docA), cfgB = writeConfig(dir, "ike-metrics-b.json", docB);
    const up = async (ns: Sites["ceA"], args: string[]): Promise<LabProcess> => {
      const p = ns.spawn([process.execPath, WESP_BIN, "up", ...args]);
      await waitFor(async () => !p.running || /forwarding on/.test(p.stderr), `wesp up in ${ns.name}`, 60_000, 20);
      assert.ok(p.running, `wesp up in ${ns.name} exited ${p.exitCode}: ${p.stderr}`);
      return p;
    };
    const pb = await up(s.ceB, ["--log-level", "debug", cfgB]);
    const pa = await up(s.ceA, ["--log-format", "json", "--log-level", "debug", cfgA]);
    const st = await ikeUp(join(dir, "ceA.sock"), "ceB", 60_000);
    const child = ikeOf(st, "ceB").childSas[0];
    assert.match(pb.stderr, new RegExp(`${STAMP}wesp up: metrics listener: .*EADDRINUSE.* \\(metrics off; forwarding goes on\\)$`, "m"));
    const e = await scrape(metricsA);
    assert.equal(value(e, "wesp_ike_up", { peer: "ceB" }), 1);
    assert.equal(value(e, "wesp_ike_state", { peer: "ceB", state: "up" }), 1);
    assert.equal(value(e, "wesp_ike_state", { peer: "ceB", state: "retrying" }), 0);
    assert.equal(value(e, "wesp_ike_failures", { peer: "ceB" }), 0);
    assert.equal(value(e, "wesp_ike_alarm", { peer: "ceB" }), 0);
    assert.ok(value(e, "wesp_ike_child_sas", { peer: "ceB" })! >= 1);
    assert.equal(value(e, "wesp_sa_live", { peer: "ceB", direction: "out", spi: spiLabel(child.spiOut) }), 1, "the negotiated outbound SA, by its SPI");
    assert.ok(value(e, "wesp_sa_installs_total", { peer: "ceB", direction: "out" })! >= 1, "IKE's SAs counted as installed");
    assert.equal(value(e, "wesp_peer_up", { peer: "ceB" }), 1);
    assert.equal(value(e, "wesp_ike_events_total", { peer: "ceB", event: "up" }), 1, "one IKE SA set up");
    assert.equal(value(e, "wesp_ike_events_total", { peer: "ceB", event: "failure" }), undefined, "no failure counted");
    // counted as they happen: a CHILD_SA rekey (ceA's lifetime), and a datagram that is no IKE message sent to ceA's port 500
    const junk = s.ceB.spawn(["/usr/bin/python3", "-c", `import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.sendto(b"not an IKE message, 28 bytes", ("${ADDR.ceAwan.v4}", 500))`]);
    await waitFor(() => !junk.running, "the junk datagram sent");
    let e2 = e;
    await waitFor(async () => {
      e2 = await scrape(metricsA);
      return (value(e2, "wesp_ike_events_total", { peer: "ceB", event: "child-rekey" }) ?? 0) >= 1 && find(e2, "wesp_ike_drops_total").some((x) => x.value >= 1);
    }, "a CHILD_SA rekey and the refused datagram on ceA's /metrics", 30_000, 500).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify([...find(e2, "wesp_ike_events_total"), ...find(e2, "wesp_ike_drops_total")])}\n${pa.stderr.slice(-3000)}`);
    });
    assert.equal(value(e2, "wesp_ike_events_total", { peer: "ceB", event: "up" }), 1, "a rekey is not a new IKE SA");
    await Promise.all([pa.stop("SIGTERM", 10_000), pb.stop("SIGTERM", 10_000), squatter.stop("SIGKILL")]);
    assert.equal(pb.exitCode, 0, "ceB ran and stopped cleanly without its metrics");
    const logs = [pa.stdout, pa.stderr, pb.stdout, pb.stderr].join("\n");
    assert.ok(logs.length > 0);
    const raw = Buffer.from(psk, "base64");
    for (const f of [psk, raw.toString("hex"), raw.toString("hex").slice(0, 16), raw.toString("base64url")]) assert.ok(!logs.includes(f), "the PSK appears in the logs");
  });
});
