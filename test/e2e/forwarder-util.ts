// Two sites joined by wesp, for the forwarder-*.test.ts end-to-end tests:
//
//   hostA ─lan─ ceA ══════ wan ══════ ceB ─lan─ hostB
//   10.1.0.2    10.1.0.1   192.0.2.1  192.0.2.2   10.2.0.1   10.2.0.2
//   fd00:1::2   fd00:1::1  2001:db8::1 2001:db8::2 fd00:2::1 fd00:2::2
//
// ceA and ceB each run `wesp up` (a child process, bin/wesp.js) with a config
// this file writes; hostA and hostB are the "site hosts" behind them, whose
// default routes point at their CE. The lab (namespaces, veths) is built once
// per test file and shared by every case; each case starts a fresh pair of
// wesp processes with its own mode/encapsulation/suite and stops them again.
import assert from "node:assert/strict";
import { after, before } from "node:test";
import { assertNoNamespacesLeft } from "./io-util.ts";
import { randomBytes } from "node:crypto";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { exec, Lab, waitFor, type Netns, type LabProcess } from "../helpers/netns.ts";

export const WESP_BIN = fileURLToPath(new URL("../../bin/wesp.js", import.meta.url));

export const ADDR = {
  hostA: { v4: "10.1.0.2", v6: "fd00:1::2" },
  ceAlan: { v4: "10.1.0.1", v6: "fd00:1::1" },
  ceAwan: { v4: "192.0.2.1", v6: "2001:db8::1" },
  ceBwan: { v4: "192.0.2.2", v6: "2001:db8::2" },
  ceBlan: { v4: "10.2.0.1", v6: "fd00:2::1" },
  hostB: { v4: "10.2.0.2", v6: "fd00:2::2" },
};

export interface Sites {
  lab: Lab;
  hostA: Netns;
  ceA: Netns;
  ceB: Netns;
  hostB: Netns;
}

/** Builds the four namespaces and three links (see the file comment). */
export async function buildSites(lab: Lab): Promise<Sites> {
  const [hostA, ceA, ceB, hostB] = await Promise.all(["hA", "ceA", "ceB", "hB"].map((n) => lab.ns(n)));
  await lab.veth(hostA, "lan", ceA, "lan");
  await lab.veth(ceA, "wan", ceB, "wan");
  await lab.veth(ceB, "lan", hostB, "lan");
  const plan: [Netns, string, { v4: string; v6: string }, number][] = [
    [hostA, "lan", ADDR.hostA, 24],
    [ceA, "lan", ADDR.ceAlan, 24],
    [ceA, "wan", ADDR.ceAwan, 24],
    [ceB, "wan", ADDR.ceBwan, 24],
    [ceB, "lan", ADDR.ceBlan, 24],
    [hostB, "lan", ADDR.hostB, 24],
  ];
  for (const [ns, dev, a, len] of plan) {
    await ns.addr(dev, `${a.v4}/${len}`);
    await ns.addr(dev, `${a.v6}/64`);
  }
  for (const ce of [ceA, ceB]) await ce.forwarding();
  await hostA.ip("route", "add", "default", "via", ADDR.ceAlan.v4);
  await hostA.ip("-6", "route", "add", "default", "via", ADDR.ceAlan.v6);
  await hostB.ip("route", "add", "default", "via", ADDR.ceBlan.v4);
  await hostB.ip("-6", "route", "add", "default", "via", ADDR.ceBlan.v6);
  return { lab, hostA, ceA, ceB, hostB };
}

/**
 * Builds the two-site lab once for a describe block and tears it down after
 * (even when a test failed), checking that no namespace is left behind.
 */
export function useSites(set: (s: Sites) => void): void {
  const lab = new Lab();
  before(async () => set(await buildSites(lab)));
  after(async () => {
    await lab.teardown();
    assertNoNamespacesLeft(lab);
  });
}

export type Mode = "tunnel" | "transport-ipip" | "transport-gre" | "ipip" | "gre";

export interface Case {
  name: string;
  mode: Mode;
  /** Outer (WAN) family. */
  outer: 4 | 6;
  /** ESP in UDP (NAT-T) or as IP protocol 50; ignored for plain ipip/gre. */
  encap: "udp" | "raw";
  suite?: string;
  /** Peer path MTU (both sides). */
  mtu?: number;
  tunMtu?: number;
  gre?: { key?: number; sequence?: boolean };
  /** UDP port (both sides). */
  port?: number;
  /** ceA's NAT-keepalive interval towards ceB (seconds). */
  keepaliveA?: number;
  /** Hard lifetime of the SA pair on ceA, in packets per direction. */
  lifetimePacketsA?: number;
  /** node.workers on both sides (default 1); SPIs are then multiples of 16 (docs/config.md). */
  workers?: number;
  /** node.tun.reader on both sides (default: the config's, auto). */
  tunReader?: "auto" | "readv";
}

const KEY_BYTES: Record<string, number> = {
  "aes-128-gcm": 20, "aes-192-gcm": 28, "aes-256-gcm": 36, "chacha20-poly1305": 36,
  "aes-128-cbc-hmac-sha256": 16, "aes-256-cbc-hmac-sha256": 32,
};

/** Both sides' config documents for a case; keys are fresh and mirrored (A's out = B's in). */
export function configs(c: Case, dir: string): { a: object; b: object; keys: string[] } {
  const plain = c.mode === "ipip" || c.mode === "gre";
  const fam = c.outer === 4 ? "v4" : "v6";
  const suite = c.suite ?? "aes-256-gcm";
  const hex = (n: number) => randomBytes(n).toString("hex");
  const kAB = hex(KEY_BYTES[suite]), kBA = hex(KEY_BYTES[suite]);
  const hAB = hex(32), hBA = hex(32);
  const cbc = suite.includes("cbc");
  const keys = [kAB, kBA, ...(cbc ? [hAB, hBA] : [])];
  const side = (me: "A" | "B") => {
    const A = me === "A";
    const local = A ? ["10.1.0.0/24", "fd00:1::/64"] : ["10.2.0.0/24", "fd00:2::/64"];
    const remote = A ? ["10.2.0.0/24", "fd00:2::/64"] : ["10.1.0.0/24", "fd00:1::/64"];
    const port = c.port ?? 4500;
    return {
      version: 1,
      node: {
        name: `ce${me}`,
        wan: [{ name: "wan", address: (A ? ADDR.ceAwan : ADDR.ceBwan)[fam], port, encap: plain ? "udp" : c.encap, trusted: plain }],
        tun: { name: "wesp0", mtu: c.tunMtu ?? 1400, ...(c.tunReader ? { reader: c.tunReader } : {}) },
        local_prefixes: local,
        control: { socket: join(dir, `ce${me}.sock`) },
        state_dir: join(dir, `ce${me}-state`),
        workers: c.workers ?? 1,
      },
      peers: [{
        name: A ? "ceB" : "ceA",
        address: (A ? ADDR.ceBwan : ADDR.ceAwan)[fam],
        port,
        ...(plain ? {} : { nat_t: c.encap === "udp" }),
        prefixes: remote,
        mode: c.mode,
        ...(c.gre ? { gre: c.gre } : {}),
        ...(c.mtu ? { mtu: c.mtu } : {}),
        ...(A && c.keepaliveA ? { keepalive: c.keepaliveA } : {}),
        ...(plain ? {} : {
          sas: [{
            spi_in: c.workers ? (A ? 0x10020 : 0x10010) : A ? 0x1000b : 0x1000a,
            spi_out: c.workers ? (A ? 0x10010 : 0x10020) : A ? 0x1000a : 0x1000b,
            suite,
            key_in: A ? kBA : kAB,
            key_out: A ? kAB : kBA,
            ...(cbc ? { auth_key_in: A ? hBA : hAB, auth_key_out: A ? hAB : hBA } : {}),
            ...(A && c.lifetimePacketsA ? { lifetime: { packets: c.lifetimePacketsA } } : {}),
          }],
        }),
      }],
    };
  };
  return { a: side("A"), b: side("B"), keys };
}

/** Runs `wesp ARGS` to completion outside the namespaces (status, check). */
export function wesp(...args: string[]) {
  return exec([process.execPath, WESP_BIN, ...args], { timeoutMs: 60_000 });
}

export interface Running {
  a: LabProcess;
  b: LabProcess;
  sockA: string;
  sockB: string;
  cfgA: string;
  cfgB: string;
  keys: string[];
}

async function linkExists(ns: Netns, dev: string): Promise<boolean> {
  return (await ns.exec(["ip", "link", "show", "dev", dev])).code === 0;
}

/** Starts wesp up in ceA and ceB for case `c` and waits until both answer on their control sockets. */
export async function startPair(s: Sites, c: Case, tag: string): Promise<Running> {
  const { a, b, keys } = configs(c, s.lab.dir);
  const cfgA = join(s.lab.dir, `${tag}-a.json`), cfgB = join(s.lab.dir, `${tag}-b.json`);
  writeFileSync(cfgA, JSON.stringify(a, null, 1), { mode: 0o600 });
  writeFileSync(cfgB, JSON.stringify(b, null, 1), { mode: 0o600 });
  // Each case starts with no path MTU learned by an earlier one.
  for (const ns of [s.hostA, s.ceA, s.ceB, s.hostB]) {
    await ns.ip("route", "flush", "cache");
    await ns.ip("-6", "route", "flush", "cache");
  }
  const pa = s.ceA.spawn([process.execPath, WESP_BIN, "up", cfgA]);
  const pb = s.ceB.spawn([process.execPath, WESP_BIN, "up", cfgB]);
  const sockA = join(s.lab.dir, "ceA.sock"), sockB = join(s.lab.dir, "ceB.sock");
  for (const [p, ns] of [[pa, s.ceA], [pb, s.ceB]] as const) {
    await waitFor(async () => !p.running || /forwarding on/.test(p.stderr), `wesp up in ${ns.name}`, 30_000);
    assert.ok(p.running, `wesp up exited ${p.exitCode}: ${p.stderr}`);
  }
  return { a: pa, b: pb, sockA, sockB, cfgA, cfgB, keys };
}

/** SIGTERM both, and check the clean exit: status 0, TUN and control socket gone. */
export async function stopPair(s: Sites, r: Running): Promise<void> {
  await Promise.all([r.a.stop("SIGTERM", 10_000), r.b.stop("SIGTERM", 10_000)]);
  assert.equal(r.a.exitCode, 0, `ceA exit: ${r.a.stderr}`);
  assert.equal(r.b.exitCode, 0, `ceB exit: ${r.b.stderr}`);
  assert.match(r.a.stderr, /stopped: TUN and sockets closed/);
  assert.equal(await linkExists(s.ceA, "wesp0"), false, "ceA's TUN is gone");
  assert.equal(await linkExists(s.ceB, "wesp0"), false, "ceB's TUN is gone");
  assert.equal(existsSync(r.sockA), false, "ceA's control socket is removed");
}

/** `wesp status --control SOCK --json`, parsed. */
export async function status(sock: string): Promise<any> {
  const r = await wesp("status", "--control", sock, "--json");
  assert.equal(r.code, 0, `wesp status: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

// Sends one UDP datagram of SIZE payload bytes with DF set (PMTUDISC_DO) and
// waits for the kernel to learn a smaller path MTU from an ICMP error; prints
// the MTU it learned (IP_MTU / IPV6_MTU), or 0 if none came.
const PMTU_PY = String.raw`
import errno, socket, sys, time
dst, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
v6 = ":" in dst
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
if v6: s.setsockopt(socket.IPPROTO_IPV6, 23, 2)   # IPV6_MTU_DISCOVER = IPV6_PMTUDISC_DO
else: s.setsockopt(socket.IPPROTO_IP, 10, 2)      # IP_MTU_DISCOVER = IP_PMTUDISC_DO
s.connect((dst, port))
mtu = 0
end = time.time() + 5
while time.time() < end:
    try:
        s.send(b"p" * size)
    except OSError as e:
        if e.errno != errno.EMSGSIZE: raise
        mtu = s.getsockopt(socket.IPPROTO_IPV6, 24) if v6 else s.getsockopt(socket.IPPROTO_IP, 14)  # IPV6_MTU / IP_MTU
        break
    time.sleep(0.1)
print(mtu)
`;

/** Path MTU that `ns` learns towards dst when sending `size`-byte UDP payloads with DF. */
export async function learnedMtu(ns: Netns, dst: string, size: number, port = 9): Promise<number> {
  return Number((await ns.run(["/usr/bin/python3", "-c", PMTU_PY, dst, String(port), String(size)])).trim());
}

// UDP receiver: prints the length of the first datagram (or -1 after the timeout).
const UDP_RECV_PY = String.raw`
import socket, sys
addr, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((addr, port)); s.settimeout(5)
print("ready", flush=True)
try: print(len(s.recv(65535)), flush=True)
except socket.timeout: print(-1, flush=True)
`;
// UDP sender without DF (IP_PMTUDISC_DONT): the path may fragment it.
const UDP_SEND_DONT_PY = String.raw`
import socket, sys
dst, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 10, 0)  # IP_MTU_DISCOVER = IP_PMTUDISC_DONT
s.sendto(b"f" * size, (dst, port))
`;

/** One IPv4 UDP datagram with DF clear from `from` to dst; returns the length `to` received (-1 none). */
export async function udpNoDf(from: Netns, to: Netns, dst: string, size: number, port = 7001): Promise<number> {
  const rx = to.spawn(["/usr/bin/python3", "-c", UDP_RECV_PY, dst, String(port)]);
  await waitFor(() => /ready/.test(rx.stdout) || !rx.running, "udp receiver");
  await from.run(["/usr/bin/python3", "-c", UDP_SEND_DONT_PY, dst, String(port), String(size)]);
  await rx.exited;
  return Number(rx.stdout.split("\n")[1]);
}

/** The largest inner packet an ESP SA carries within `mtu` (RFC 4303 §2.4 padding), by trying sizes. */
export function espInnerMtu(mtu: number, o: { outerIp: number; udp: boolean; iv: number; icv: number; align: number; extra?: number }): number {
  let best = 0;
  for (let l = 1; l < mtu; l++) {
    const body = l + (o.extra ?? 0) + 2; // + pad length + next header
    const padded = Math.ceil(body / o.align) * o.align;
    if (o.outerIp + (o.udp ? 8 : 0) + 8 + o.iv + padded + o.icv <= mtu) best = l;
  }
  return best;
}
