// The logger (host/metrics/log.ts) and the CE's metrics over hand-made status
// snapshots (host/metrics/ce.ts): what the redaction layer does with keys
// handed to it by mistake — in fields, nested, as bytes, in the message —
// in both formats; text lines stamped with ISO 8601 UTC time (JSON has its
// own `time`); levels; and the
// CE metrics' IKE series read from status.ike when it is there, nothing (and
// no error) when it is absent or of another shape.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createLogger, parseLogOptions, scrubLog, type LogFormat } from "../../host/metrics/log.ts";
import { CeMetrics } from "../../host/metrics/ce.ts";
import { parseListen } from "../../host/config/listen.ts";
import { ConfigError, parseConfig } from "../../host/config/load.ts";
import { configToDoc } from "../helpers/config_mutate.ts";
import { describeConfig } from "../../host/config/redact.ts";
import type { Status } from "../../host/control/status.ts";
import { find, parseExposition, value } from "../helpers/prom.ts";

/** Every encoding of `key` that must not appear in a log. */
function forms(key: Buffer): string[] {
  const hex = key.toString("hex");
  return [hex, hex.toUpperCase(), hex.slice(0, 16), key.toString("base64").replace(/=+$/, ""), key.toString("base64url"), key.toString("latin1")];
}

function capture(format: LogFormat, level: "debug" | "info" = "debug", now?: () => Date) {
  const lines: string[] = [];
  const log = createLogger({ name: "wesp test", format, level, write: (l) => void lines.push(l), ...(now ? { now } : {}) });
  return { log, lines };
}

describe("logger: no key material reaches a log", () => {
  for (const format of ["text", "json"] as const) {
    test(`${format}: keys in fields, nested fields, bytes and the message are redacted`, () => {
      const { log, lines } = capture(format);
      const k = [randomBytes(36), randomBytes(32), randomBytes(20), randomBytes(16)];
      log.debug(`installing with ${k[0].toString("hex")} and ${k[1].toString("base64")}`, {
        keyIn: k[0].toString("hex"),
        sa: { key_out: k[1].toString("base64"), spi: "0x0001000a", nested: { psk: "correct horse battery staple" } },
        bytes: k[2],
        buffer: k[3].buffer.slice(k[3].byteOffset, k[3].byteOffset + 16),
        note: `the key is ${k[3].toString("hex")}`,
        error: new Error(`bad key ${k[2].toString("hex")}`),
        authorization: "Bearer abc",
      });
      const all = lines.join("");
      for (const key of k) for (const f of forms(key)) assert.ok(!all.includes(f), `${format}: a key (${forms(key).indexOf(f)}) leaked: ${all}`);
      assert.ok(!all.includes("correct horse"), "psk redacted by its field name");
      assert.ok(!all.includes("Bearer abc"), "authorization redacted by its field name");
      assert.match(all, /0x0001000a/, "an SPI is not a key");
      assert.match(all, /\[20 bytes\]/, "bytes become their length");
      if (format === "json") {
        const o = JSON.parse(lines[0]);
        assert.equal(o.level, "debug");
        assert.equal(o.name, "wesp test");
        assert.equal(o.keyIn, "[redacted]");
        assert.equal(o.sa.key_out, "[redacted]");
        assert.equal(o.sa.nested.psk, "[redacted]");
        assert.equal(o.sa.spi, "0x0001000a");
        assert.equal(typeof o.time, "string");
      }
    });
  }

  test("IKE SA ids (SPIi_SPIr) stay readable; anything else key-shaped does not", () => {
    const id = "0123456789abcdef_fedcba9876543210";
    assert.equal(scrubLog(`IKE SA ${id} established`), `IKE SA ${id} established`);
    const key = randomBytes(32).toString("hex");
    for (const t of [key, `${key}_${key}`, `${id}0`, `0${id}`, `${id}_0123456789abcdef`, `x${id}`, "0123456789abcdef0123"]) {
      assert.match(scrubLog(`a ${t} b`), /\[redacted\]/, t);
      assert.ok(!scrubLog(`a ${t} b`).includes(key.slice(0, 16)), t);
    }
  });

  test("text lines: ISO 8601 UTC time, then what wesp always printed; levels filter", () => {
    // a clock in UTC+9 would print 02:03 local: the line says UTC, with its Z
    let t = Date.UTC(2026, 11, 6, 17, 8, 0, 123);
    const { log, lines } = capture("text", "info", () => new Date(t++));
    log.debug("not shown");
    log.info("node ceA: forwarding on wesp0");
    log.warn("site.yaml:3: something");
    log.error("stopping: boom", { spi: "0x0001000a" });
    assert.deepEqual(lines, [
      "2026-12-06T17:08:00.123Z wesp test: node ceA: forwarding on wesp0\n",
      "2026-12-06T17:08:00.124Z warning: site.yaml:3: something\n",
      "2026-12-06T17:08:00.125Z wesp test: stopping: boom spi=0x0001000a\n",
    ]);
    // the system clock by default
    const d = capture("text", "info");
    d.log.info("hello");
    assert.match(d.lines[0], /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z wesp test: hello\n$/);
  });

  test("JSON lines keep pino's own ISO time field and get no text stamp", () => {
    const { log, lines } = capture("json", "info");
    log.info("hello");
    const o = JSON.parse(lines[0]);
    assert.match(o.time, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    assert.equal(o.msg, "hello");
  });

  test("--log-format / --log-level / -q", () => {
    assert.deepEqual(parseLogOptions(undefined, undefined, false), { format: "text", level: "info" });
    assert.deepEqual(parseLogOptions("json", undefined, true), { format: "json", level: "warn" });
    assert.deepEqual(parseLogOptions(undefined, "debug", true), { format: "text", level: "debug" });
    assert.match(parseLogOptions("xml", undefined, false) as string, /--log-format/);
    assert.match(parseLogOptions(undefined, "loud", false) as string, /--log-level/);
  });

  test("metrics listen addresses", () => {
    assert.deepEqual(parseListen("127.0.0.1:9469", "/etc/wesp"), { host: "127.0.0.1", port: 9469 });
    assert.deepEqual(parseListen("[::1]:9469", "/etc/wesp"), { host: "::1", port: 9469 });
    assert.deepEqual(parseListen("localhost:1", "/etc/wesp"), { host: "localhost", port: 1 });
    assert.deepEqual(parseListen("run/m.sock", "/etc/wesp"), { path: "/etc/wesp/run/m.sock" });
    assert.deepEqual(parseListen("/run/wesp/m.sock", "/etc/wesp"), { path: "/run/wesp/m.sock" });
    for (const bad of ["9469", "127.0.0.1:65536", "[zz]:1", "a:b:1", "host:", ":1", `/${"x".repeat(120)}`]) assert.equal(typeof parseListen(bad, "/"), "string", bad);
  });

  test("node.metrics in a config: defaults, errors at node.metrics.listen, a round trip", () => {
    const doc = (metrics: unknown) => JSON.stringify({
      version: 1,
      node: { name: "ce1", wan: [{ name: "wan", address: "192.0.2.1" }], control: { socket: "/tmp/x.sock" }, state_dir: "/tmp/s", workers: 1, ...(metrics === undefined ? {} : { metrics }) },
      peers: [],
    });
    const opts = { baseDir: "/etc/wesp", uid: 1000, env: {}, source: "ce1.yaml" };
    assert.equal(parseConfig(doc(undefined), opts).config.node.metrics, undefined, "off by default");
    assert.deepEqual(parseConfig(doc({}), opts).config.node.metrics, { listen: { host: "127.0.0.1", port: 9469 } });
    assert.match(describeConfig(parseConfig(doc({}), opts).config), /^  metrics: 127\.0\.0\.1:9469$/m, "wesp check -v and the debug log show it");
    for (const listen of ["[::1]:9100", "0.0.0.0:9469", "m.sock/x", "/run/wesp/m.sock"]) {
      const c = parseConfig(doc({ listen }), opts).config;
      assert.deepEqual(parseConfig(JSON.stringify(configToDoc(c)), opts).config.node.metrics, c.node.metrics, listen);
    }
    assert.throws(() => parseConfig(doc({ listen: "nine" }), opts), (e: unknown) => e instanceof ConfigError && /node\.metrics\.listen/.test(e.message));
    assert.throws(() => parseConfig(doc({ listen: "127.0.0.1:9469", extra: 1 }), opts), ConfigError);
  });
});

/** A status snapshot as the forwarder returns it (host/pipeline/status.ts). */
function statusWith(extra: Record<string, unknown>): Status {
  const zero = { packets: 0, bytes: 0, drops: { AUTH: 0, REPLAY: 0 }, dropped: 0 };
  const sa = (spi: number, packets: number, drops: Record<string, number> = {}) => ({
    spi, saId: spi & 0xff, index: 0, live: true, expired: false, seq: packets + 1,
    counters: { packets, bytes: packets * 100, drops: { AUTH: 0, REPLAY: 0, ...drops }, dropped: Object.values(drops).reduce((a, b) => a + b, 0) },
  });
  return {
    node: "ce1", pid: 1, startedAt: "", uptimeSeconds: 1, tun: "wesp0", workers: 1, control: "/x",
    peers: [
      { name: "p1", peerId: 1, mode: "tunnel", encap: "udp", suite: "aes-256-gcm", address: "192.0.2.1", port: 4500, learned: false, configured: { address: "192.0.2.1", port: 4500 }, outbound: sa(0x100, 10), inbound: [sa(0x200, 7, { AUTH: 2 }), { ...sa(0x201, 0), expired: true, live: false }] },
      { name: "p2", peerId: 2, mode: "tunnel", encap: "udp", suite: "aes-256-gcm", address: "192.0.2.2", port: 4500, learned: true, configured: { address: "192.0.2.9", port: 4500 }, outbound: null, inbound: [] },
    ],
    global: { inbound: zero, outbound: zero },
    host: { tunRead: 3 } as Status["host"],
    sockets: [],
    ...extra,
  } as Status;
}

describe("CE metrics from status snapshots", () => {
  test("SAs, peers, tunnel state; an expired SA has no series", async () => {
    const e = parseExposition(await new CeMetrics().scrape(async () => statusWith({})));
    assert.equal(value(e, "wesp_sa_packets_total", { peer: "p1", direction: "out", spi: "0x00000100" }), 10);
    assert.equal(value(e, "wesp_sa_drops_total", { peer: "p1", direction: "in", spi: "0x00000200", reason: "AUTH" }), 2);
    assert.equal(find(e, "wesp_sa_drops_total", { reason: "REPLAY" }).length, 0, "per-SA drops: only reasons that counted");
    assert.equal(find(e, "wesp_sa_packets_total", { spi: "0x00000201" }).length, 0, "expired SA");
    assert.equal(value(e, "wesp_peer_drops_total", { peer: "p1", direction: "in", reason: "AUTH" }), 2);
    assert.equal(value(e, "wesp_peer_up", { peer: "p1" }), 1);
    assert.equal(value(e, "wesp_peer_up", { peer: "p2" }), 0, "no SAs: down");
    assert.equal(value(e, "wesp_peer_remote_learned", { peer: "p2" }), 1);
    assert.equal(value(e, "wesp_host_packets_total", { counter: "tun_read" }), 3);
    assert.equal(find(e, "wesp_sa_journals").length, 0, "no journals section, no journal series");
    const j = parseExposition(await new CeMetrics().scrape(async () => statusWith({ journals: { count: 3, pendingFiles: 5, oldestSeconds: 42 } })));
    assert.equal(value(j, "wesp_sa_journals", {}), 3);
    assert.equal(value(j, "wesp_sa_journal_pending_files", {}), 5);
    assert.equal(value(j, "wesp_sa_journal_oldest_seconds", {}), 42);
    const none = parseExposition(await new CeMetrics().scrape(async () => statusWith({ journals: { count: 0, pendingFiles: 0, oldestSeconds: null } })));
    assert.equal(value(none, "wesp_sa_journal_oldest_seconds", {}), 0, "none: age 0");
  });

  test("per-worker series with node.workers > 1: each worker's core totals and its own SAs (SPI + i); none with one worker", async () => {
    const block = (packets: number, drops: Record<string, number> = {}) => ({ packets, bytes: packets * 100, drops: { AUTH: 0, ...drops }, dropped: 0 });
    const sa = (spi: number, packets: number) => ({ spi, saId: spi & 0xff, index: 0, live: true, expired: false, seq: packets + 1, counters: block(packets) });
    const two = statusWith({
      workers: 2,
      perWorker: [
        { worker: 0, global: { inbound: block(5, { AUTH: 1 }), outbound: block(7) }, host: {} },
        { worker: 1, global: { inbound: block(3), outbound: block(4) }, host: {} },
      ],
    });
    two.peers[0].workers = [
      { worker: 0, outbound: sa(0x100, 7), inbound: [sa(0x200, 5)] },
      { worker: 1, outbound: sa(0x101, 4), inbound: [sa(0x201, 3), { ...sa(0x203, 9), live: false }] },
    ];
    const e = parseExposition(await new CeMetrics().scrape(async () => two));
    assert.equal(value(e, "wesp_worker_packets_total", { worker: "0", direction: "out" }), 7);
    assert.equal(value(e, "wesp_worker_packets_total", { worker: "1", direction: "in" }), 3);
    assert.equal(value(e, "wesp_worker_drops_total", { worker: "0", direction: "in", reason: "AUTH" }), 1);
    assert.equal(find(e, "wesp_worker_drops_total", { worker: "1" }).length, 0, "only reasons that counted");
    assert.equal(value(e, "wesp_worker_sa_packets_total", { peer: "p1", worker: "1", direction: "out", spi: "0x00000101" }), 4);
    assert.equal(value(e, "wesp_worker_sa_packets_total", { peer: "p1", worker: "0", direction: "in", spi: "0x00000200" }), 5);
    assert.equal(find(e, "wesp_worker_sa_packets_total", { spi: "0x00000203" }).length, 0, "a dead SA has no series");
    const one = parseExposition(await new CeMetrics().scrape(async () => statusWith({})));
    assert.equal(find(one, "wesp_worker_packets_total").length + find(one, "wesp_worker_sa_packets_total").length, 0);
  });

  test("IKE series from status.ike; another shape gives none and no error", async () => {
    const ike = [
      { name: "p1", state: "up", failures: 0, alarm: false, childSas: [{ spiIn: 1, spiOut: 2 }], establishedSeconds: 42, lastHeardSeconds: 3 },
      { name: "p2", state: "retrying", failures: 5, alarm: true, childSas: [] },
    ];
    const e = parseExposition(await new CeMetrics().scrape(async () => statusWith({ ike })));
    assert.equal(value(e, "wesp_ike_up", { peer: "p1" }), 1);
    assert.equal(value(e, "wesp_ike_up", { peer: "p2" }), 0);
    assert.equal(value(e, "wesp_ike_state", { peer: "p2", state: "retrying" }), 1);
    assert.equal(value(e, "wesp_ike_state", { peer: "p2", state: "up" }), 0);
    assert.equal(value(e, "wesp_ike_failures", { peer: "p2" }), 5);
    assert.equal(value(e, "wesp_ike_alarm", { peer: "p2" }), 1);
    assert.equal(value(e, "wesp_ike_child_sas", { peer: "p1" }), 1);
    assert.equal(value(e, "wesp_ike_established_seconds", { peer: "p1" }), 42);
    for (const odd of [{ peers: ike }, "up", [null, 3, { state: "up" }, { name: 7 }], [{ name: "p1", state: 1, failures: "many", alarm: "yes", childSas: {} }]]) {
      const o = parseExposition(await new CeMetrics().scrape(async () => statusWith({ ike: odd })));
      assert.equal(find(o, "wesp_ike_up").length + find(o, "wesp_ike_failures").length + find(o, "wesp_ike_alarm").length, 0, JSON.stringify(odd));
      assert.equal(value(o, "wesp_sa_packets_total", { peer: "p1", direction: "out", spi: "0x00000100" }), 10);
    }
  });

  test("a failed status read rejects that scrape only", async () => {
    const m = new CeMetrics();
    await assert.rejects(m.scrape(async () => { throw new Error("worker gone"); }));
    const e = parseExposition(await m.scrape(async () => statusWith({})));
    assert.equal(value(e, "wesp_peers"), 2);
  });
});
