// `wesp demo` end to end: the real command, from its sources (bin/wesp.js;
// `npm run demo` runs the compiled dist/bin/wesp.js, whose `wesp up`
// test/e2e/compiled-cli.test.ts runs), in real namespaces, with IKEv2 (the
// default) and with --static-keys. Its JSON report (--report) must show
// every IKE SA up with its planned initiator and one CHILD_SA, the NAT
// detected in front of site C only, every pair of sites
// reached both ways over IPv4 and IPv6, every TCP transfer's bytes equal at
// the far end, every captured ESP frame authenticated by tshark or
// @noble/ciphers with the keys IKE negotiated (or the configs' keys), C's NAT
// mapping learned by its peers — and afterwards nothing left: no namespace, no
// scratch dir, no process. Also: Ctrl-C in the middle, a run that fails, and
// --keep followed by --down.
//
// Each run uses its own name prefix (`--prefix`; WESP_NS_PREFIX first, when
// set), so it cannot touch a lab someone keeps under the default name.
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { requireTools } from "../helpers/require.ts";
import { sealEsp } from "../helpers/ref_esp.ts";
import { leftovers, removeLeftovers } from "../../host/lab/leftovers.ts";
import { parseConntrack } from "../../host/demo/nat.ts";
import { parsePcapUdp } from "../../host/demo/pcap.ts";
import { prepareTools } from "../../host/demo/tools.ts";
import { describeInner, openEsp } from "../../host/demo/esp_check.ts";
import { PAIRS, SITES } from "../../host/demo/plan.ts";
import { judge } from "../../host/demo/checks.ts";
import type { DemoResult } from "../../host/demo/run.ts";

const WESP = fileURLToPath(new URL("../../bin/wesp.js", import.meta.url));
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), "wesp-demo-test-"));
const prefixes: string[] = [];
let runs = 0;

function newPrefix(): string {
  const p = `${process.env.WESP_NS_PREFIX ?? "w"}dt${process.pid}-${runs++}-`;
  prefixes.push(p);
  return p;
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
}

/**
 * `wesp demo ARGS`; `onOutput` may act on the output so far (e.g. send a signal).
 * `env` is laid over ours; a variable set to undefined there is removed.
 */
function demo(args: string[], onOutput?: (out: string, pid: number) => void, env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
    for (const [k, v] of Object.entries(env)) if (v === undefined) delete childEnv[k];
    const child = spawn(process.execPath, [WESP, "demo", ...args], { cwd: ROOT, env: childEnv, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    const take = (d: Buffer) => {
      out += d;
      onOutput?.(out, child.pid!);
    };
    child.stdout.on("data", take);
    child.stderr.on("data", take);
    const killer = setTimeout(() => child.kill("SIGKILL"), 300_000); // a hang must not hang the suite
    child.on("exit", (code, signal) => {
      clearTimeout(killer);
      resolve({ code, signal, out });
    });
  });
}

/** Pids whose command line mentions `dir` (wesp up, agents and tcpdump all name the lab dir or run inside it). */
function processesMentioning(dir: string): number[] {
  const found: number[] = [];
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(dir)) found.push(Number(pid));
    } catch {
      /* gone meanwhile */
    }
  }
  return found;
}

/** A PATH of one directory: every command of ours except `hidden` (a machine without those tools). */
function pathWithout(hidden: string[]): string {
  const d = mkdtempSync(join(scratch, "path-"));
  for (const dir of (process.env.PATH ?? "").split(":")) {
    let names: string[] = [];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const n of names) if (!hidden.includes(n) && !existsSync(join(d, n))) symlinkSync(join(dir, n), join(d, n));
  }
  return d;
}

function assertNothingLeft(prefix: string, dir?: string): void {
  const left = leftovers(prefix);
  assert.deepEqual(left.namespaces, [], "namespaces left behind");
  assert.deepEqual(left.dirs, [], "scratch dirs left behind");
  if (dir) assert.deepEqual(processesMentioning(dir), [], `processes of ${dir} still running`);
}

describe("wesp demo", { skip: requireTools(["netns", "nft", "tcpdump", "tshark"], { why: "e2e wesp demo" }) }, () => {
  after(async () => {
    for (const p of prefixes) await removeLeftovers(p); // only if a test failed half-way
    rmSync(scratch, { recursive: true, force: true });
  });

  /** What both modes must show: traffic, the wire (SAs `spis`), C's NAT mapping, counters. */
  function assertTrafficAndWire(res: DemoResult, spis: number[]): void {
    // Every ordered pair, IPv4 and IPv6.
    const pairs = (xs: { from: string; to: string; family: number }[]) => new Set(xs.map((x) => `${x.from}${x.to}${x.family}`));
    const want = new Set(SITES.flatMap((a) => SITES.filter((b) => b !== a).flatMap((b) => [`${a.id}${b.id}4`, `${a.id}${b.id}6`])));
    assert.deepEqual(pairs(res.pings), want);
    assert.deepEqual(pairs(res.tcp), want);
    for (const p of res.pings) assert.ok(p.sent > 0 && p.received === p.sent, `ping ${p.from} → ${p.dst}: ${p.received}/${p.sent}`);
    for (const t of res.tcp) {
      assert.equal(t.farBytes, t.bytes, `tcp ${t.from} → ${t.dst}`);
      assert.match(t.sha256, /^[0-9a-f]{64}$/);
      assert.equal(t.farSha256, t.sha256, `tcp ${t.from} → ${t.dst}: SHA-256 at the far end`);
    }

    // The wire: all six SAs carried frames, each one authenticated; AES-GCM by tshark, ChaCha20-Poly1305 by noble.
    assert.ok(res.wire);
    assert.deepEqual(res.wire.map((s) => s.spi).sort(), [...spis].sort());
    assert.deepEqual(res.unknownSpi, { frames: 0, spis: [] }, "every ESP frame has an SA's SPI");
    for (const s of res.wire) {
      assert.ok(s.frames > 0, `SPI ${s.spi.toString(16)}: no frames`);
      assert.equal(s.good, s.frames, `SPI ${s.spi.toString(16)}: ${s.bad} bad, ${s.unchecked} unchecked`);
      assert.deepEqual(s.checkedBy, [s.suite === "chacha20-poly1305" ? "noble" : "tshark"]);
    }
    // C behind the NAT: its frames come from a translated port, and its peers send back to that port.
    const fromC = res.wire.filter((s) => s.from === "c").flatMap((s) => s.endpoints.map((e) => e.split(" → ")[0]));
    const toC = res.wire.filter((s) => s.to === "c").flatMap((s) => s.endpoints.map((e) => e.split(" → ")[1]));
    assert.equal(new Set(fromC).size, 1, `C seen from ${fromC}`);
    assert.match(fromC[0], /^192\.0\.2\.3:(2\d{4})$/);
    assert.notEqual(fromC[0], "192.0.2.3:4500");
    assert.deepEqual([...new Set(toC)], [fromC[0]]);
    assert.ok(res.nat.some((m) => m.inside === "172.16.3.2:4500" && m.outside === fromC[0]), JSON.stringify(res.nat));
    assert.ok(res.keepalives > 0, "site C sent no NAT-keepalives");

    // Counters from `wesp status`: each inbound SA accepted packets and dropped none.
    for (const s of SITES) {
      const st = res.status[s.id];
      assert.ok(st, `no status from ${s.name}`);
      assert.equal(st.peers.length, 2);
      for (const p of st.peers) {
        assert.ok(p.outbound && p.outbound.counters.packets > 0, `${s.name} → ${p.name}: nothing sent`);
        for (const i of p.inbound) {
          assert.ok(i.counters.packets > 0, `${s.name} ← ${p.name}: nothing accepted`);
          assert.equal(i.counters.dropped, 0, `${s.name} ← ${p.name}: drops ${JSON.stringify(i.counters.drops)}`);
        }
      }
    }
  }

  it("IKEv2 (the default): every IKE SA up, C behind the NAT, every pair reached, the wire decrypted with the negotiated keys, nothing left", async () => {
    const prefix = newPrefix();
    const report = join(scratch, "report.json");
    const r = await demo(["--prefix", prefix, "--report", report]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /^PASS: 10 of 10 checks passed$/m);
    const res: DemoResult = JSON.parse(readFileSync(report, "utf8"));
    assert.equal(res.ok, true);
    assert.equal(res.error, undefined);
    assert.equal(res.mode, "ike");
    for (const c of res.checks) assert.ok(c.ok && !c.skipped, `${c.name}: ${c.detail}`);
    assert.deepEqual(res.checks.slice(0, 2).map((c) => c.name), ["IKE: every SA established", "IKE: NAT detected for site-c"]);

    // One IKE SA per pair, its initiator the planned one; one CHILD_SA each, mirrored.
    for (const p of PAIRS) {
      const [i, j] = p.ike.initiator === p.a.id ? [p.a, p.b] : [p.b, p.a];
      const si = res.status[i.id]!.ike!.find((x) => x.name === j.name)!;
      const sj = res.status[j.id]!.ike!.find((x) => x.name === i.name)!;
      assert.deepEqual([si.state, si.role, sj.state, sj.role], ["up", "initiator", "up", "responder"], `${i.name} → ${j.name}`);
      assert.equal(si.ikeSa, sj.ikeSa, "one IKE SA, the same at both ends");
      assert.equal(si.childSas.length, 1);
      assert.deepEqual([si.childSas[0].spiIn, si.childSas[0].spiOut], [sj.childSas[0].spiOut, sj.childSas[0].spiIn]);
      // §2.23: NAT-T everywhere (nat_t forces it), but only C is behind a NAT
      assert.deepEqual([si.natDetected, sj.natDetected], [true, true]);
      assert.deepEqual([si.behindNat, sj.behindNat], [i.behindNat, j.behindNat], `${i.name} → ${j.name}: who is behind the NAT`);
    }
    // The SAs are the key logs' (both ends logged each CHILD_SA alike), with random SPIs, not the static ones.
    assert.deepEqual(res.keyLog, { lines: 6, problems: [] });
    const spis = res.sas.map((s) => s.spi);
    assert.equal(new Set(spis).size, 6);
    for (const p of PAIRS) assert.ok(!spis.includes(p.spiAB) && !spis.includes(p.spiBA), "a static SPI");
    assert.deepEqual(res.sas.map((s) => s.suite).sort(), PAIRS.flatMap((p) => [p.suite, p.suite]).sort());
    assert.ok(res.ikeDatagrams >= 8, `IKE on the wire: ${res.ikeDatagrams} datagrams (IKE_SA_INIT and IKE_AUTH, 3 pairs)`);
    assertTrafficAndWire(res, spis);

    // The IKE checks can fail: the same report with C not behind a NAT, or with a second CHILD_SA, does not pass.
    const doctored = (edit: (r: DemoResult) => void) => {
      const copy: DemoResult = JSON.parse(JSON.stringify(res));
      edit(copy);
      return judge(copy).filter((c) => !c.ok).map((c) => c.name);
    };
    assert.deepEqual(doctored((x) => void (x.status.c!.ike![0].behindNat = false)), ["IKE: NAT detected for site-c"]);
    assert.deepEqual(doctored((x) => void (x.status.a!.ike![0].behindNat = true)), ["IKE: NAT detected for site-c"]);
    assert.deepEqual(doctored((x) => void x.status.a!.ike![0].childSas.push({ spiIn: 0x1234, spiOut: 0x5678 })), ["IKE: every SA established"]);
    assert.deepEqual(doctored((x) => void (x.status.b!.ike![1].role = "initiator")), ["IKE: every SA established"]);
    assert.deepEqual(doctored((x) => void (x.unknownSpi = { frames: 1, spis: [0x1234] })), ["wire: every ICV good"]);
    assertNothingLeft(prefix, res.lab.dir);
  });

  it("--static-keys: today's static SAs, decrypted with 'wesp keys --wireshark', no IKE", async () => {
    const prefix = newPrefix();
    const report = join(scratch, "static.json");
    const r = await demo(["--prefix", prefix, "--report", report, "--static-keys"]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /^PASS: 8 of 8 checks passed$/m);
    assert.match(r.out, /esp_sa table: 4 rows from 'wesp keys --wireshark --any-address' of the three configs/);
    const res: DemoResult = JSON.parse(readFileSync(report, "utf8"));
    assert.equal(res.mode, "static");
    for (const c of res.checks) assert.ok(c.ok && !c.skipped, `${c.name}: ${c.detail}`);
    assert.ok(!res.checks.some((c) => c.name.startsWith("IKE")));
    for (const s of SITES) assert.equal(res.status[s.id]!.ike, undefined, `${s.name} runs no IKE`);
    assert.equal(res.ikeDatagrams, 0);
    assertTrafficAndWire(res, PAIRS.flatMap((p) => [p.spiAB, p.spiBA]));
    assertNothingLeft(prefix, res.lab.dir);
  });

  it("on a bare machine (no nft, tcpdump or tshark; --no-install) it runs, says what it skipped, and passes the rest", async () => {
    const prefix = newPrefix();
    const report = join(scratch, "bare.json");
    // A person's bare machine, not CI (under CI a missing tool fails the demo: tested below).
    const r = await demo(["--prefix", prefix, "--report", report, "--no-install"], undefined, { PATH: pathWithout(["nft", "tcpdump", "tshark"]), CI: undefined });
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /^wesp demo: nft, tcpdump, tshark not found, not installing them \(--no-install\)$/m);
    assert.match(r.out, /^ {2}for the whole demo: apt-get install -y --no-install-recommends nftables tcpdump tshark, then run it again$/m);
    assert.match(r.out, /^PASS: 7 of 7 checks passed, 3 skipped \(without nft, tcpdump, tshark\)$/m);
    const res: DemoResult = JSON.parse(readFileSync(report, "utf8"));
    assert.deepEqual(res.tools, { nft: false, tcpdump: false, tshark: false });
    assert.deepEqual(res.checks.filter((c) => c.skipped).map((c) => c.name), ["wire: every SA used", "wire: every ICV good", "NAT: C's ESP translated"]);
    const learned = res.checks.find((c) => c.name === "peers learned C's address");
    assert.ok(learned?.ok, JSON.stringify(learned));
    // no NAT at all: IKE must not claim one in front of C (it still forces NAT-T: nat_t)
    const noNat = res.checks.find((c) => c.name === "IKE: no NAT in front of site-c");
    assert.ok(noNat?.ok && !noNat.skipped, JSON.stringify(noNat));
    assert.ok(res.checks.find((c) => c.name === "IKE: every SA established")?.ok);
    assert.equal(res.wire, null);
    for (const p of res.pings) assert.equal(p.received, p.sent, `ping ${p.from} → ${p.dst}`);
    for (const t of res.tcp) assert.equal(t.farSha256, t.sha256, `tcp ${t.from} → ${t.dst}`);
    assertNothingLeft(prefix, res.lab.dir);
  });

  it("without tshark, @noble/ciphers reads the capture and authenticates every frame", async () => {
    const prefix = newPrefix();
    const report = join(scratch, "no-tshark.json");
    const r = await demo(["--prefix", prefix, "--report", report, "--no-install"], undefined, { PATH: pathWithout(["tshark"]), CI: undefined });
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /^PASS: 10 of 10 checks passed \(without tshark\)$/m);
    const res: DemoResult = JSON.parse(readFileSync(report, "utf8"));
    assert.ok(res.wire);
    for (const s of res.wire) {
      assert.ok(s.frames > 0, `SPI ${s.spi.toString(16)}: no frames`);
      assert.equal(s.good, s.frames, `SPI ${s.spi.toString(16)}: ${s.bad} bad, ${s.unchecked} unchecked`);
      assert.deepEqual(s.checkedBy, ["noble"]);
    }
    assert.ok(res.checks.every((c) => c.ok && !c.skipped), JSON.stringify(res.checks));
    assertNothingLeft(prefix, res.lab.dir);
  });

  it("Ctrl-C in the middle of a run tears everything down", async () => {
    const prefix = newPrefix();
    let sent = false;
    let dir = "";
    const r = await demo(["--prefix", prefix], (out, pid) => {
      dir ||= /configs with fresh keys in (\S+)/.exec(out)?.[1] ?? "";
      // once wesp runs in all three CEs and traffic flows
      if (!sent && /\[3\/6\]/.test(out)) {
        sent = true;
        process.kill(pid, "SIGINT");
      }
    });
    assert.ok(sent, r.out);
    assert.equal(r.code, 130, r.out);
    assert.match(r.out, /SIGINT: tearing the lab down/);
    assert.ok(dir.startsWith(join(tmpdir(), prefix)), r.out);
    assertNothingLeft(prefix, dir);
  });

  it("a run that cannot start wesp says FAIL, exits 1 and leaves nothing", async () => {
    const prefix = newPrefix();
    const child = await new Promise<Run>((resolve) => {
      const c = spawn(process.execPath, [WESP, "demo", "--prefix", prefix], {
        cwd: ROOT,
        env: { ...process.env, WESP_WASM: join(scratch, "no-such.wasm") },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      c.stdout.on("data", (d) => (out += d));
      c.stderr.on("data", (d) => (out += d));
      c.on("exit", (code, signal) => resolve({ code, signal, out }));
    });
    assert.equal(child.code, 1, child.out);
    assert.match(child.out, /the demo stopped: wesp up in \S+ exited/);
    assert.match(child.out, /^FAIL: /m);
    const dir = /configs with fresh keys in (\S+)/.exec(child.out)?.[1];
    assert.ok(dir);
    assertNothingLeft(prefix, dir);
  });

  it("--keep leaves a working lab; --down removes it", async () => {
    const prefix = newPrefix();
    const r = await demo(["--prefix", prefix, "--keep"]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /the lab is still up/);
    const dir = /configs with fresh keys in (\S+)/.exec(r.out)![1];
    const left = leftovers(prefix);
    assert.equal(left.namespaces.length, 8);
    assert.deepEqual(left.dirs, [dir]);
    assert.equal(processesMentioning(dir).length >= 3, true, "the three wesp up processes run on");
    // The secrets: the pairs' PSKs and the CEs' key logs, each 0600, in a 0700 directory.
    const keys = join(dir, "keys");
    assert.equal(statSync(keys).mode & 0o777, 0o700);
    assert.deepEqual(readdirSync(keys).sort(), ["a-b.psk", "a-c.psk", "b-c.psk", "site-a.esp-keylog.jsonl", "site-b.esp-keylog.jsonl", "site-c.esp-keylog.jsonl"]);
    for (const f of readdirSync(keys)) assert.equal(statSync(join(keys, f)).mode & 0o777, 0o600, f);
    // The kept CEs still answer `wesp status` over their control sockets.
    const st = await new Promise<string>((resolve) => {
      const c = spawn(process.execPath, [WESP, "status", join(dir, "site-a.yaml")], { cwd: ROOT });
      let out = "";
      c.stdout.on("data", (d) => (out += d));
      c.on("exit", () => resolve(out));
    });
    assert.match(st, /^node site-a /m);
    assert.match(st, /^ike site-b {2}up {2}initiator /m);
    assert.match(st, /^ike site-c {2}up {2}responder /m);
    const down = await new Promise<Run>((resolve) => {
      const c = spawn(process.execPath, [WESP, "demo", "--down", "--prefix", prefix], { cwd: ROOT });
      let out = "";
      c.stdout.on("data", (d) => (out += d));
      c.on("exit", (code, signal) => resolve({ code, signal, out }));
    });
    assert.equal(down.code, 0);
    assert.match(down.out, new RegExp(`removed .*${prefix}ce-c`));
    assertNothingLeft(prefix, dir);
  });
});

describe("demo helpers", () => {
  it("reads NAT mappings from conntrack: inside source → translated source", () => {
    const text = [
      "ipv4     2 udp      17 170 src=172.16.3.2 dst=192.0.2.1 sport=4500 dport=4500 src=192.0.2.1 dst=192.0.2.3 sport=4500 dport=20092 [ASSURED] mark=0 zone=0 use=2",
      "ipv4     2 tcp      6 10 TIME_WAIT src=172.16.3.2 dst=192.0.2.1 sport=40000 dport=80 src=192.0.2.1 dst=192.0.2.3 sport=80 dport=40000 [ASSURED] mark=0 zone=0 use=2",
    ].join("\n");
    assert.deepEqual(parseConntrack(text), [{ inside: "172.16.3.2:4500", outside: "192.0.2.3:20092", remote: "192.0.2.1:4500" }]);
  });

  for (const [suite, keyLen] of [["chacha20-poly1305", 32], ["aes-128-gcm", 16], ["aes-256-gcm", 32]] as const) {
    it(`opens ${suite} ESP sealed by the reference ESP, and refuses any changed bit or a wrong key`, () => {
      const keymat = Uint8Array.from({ length: keyLen + 4 }, (_, i) => i * 7 + 1);
      const inner = Uint8Array.from([
        0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 10, 3, 0, 2, 10, 2, 0, 2, // IPv4 10.3.0.2 → 10.2.0.2, ICMP
        8, 0, 0, 0, 0x12, 0x34, 0, 5, // echo request, seq 5
      ]);
      const sa = { spi: 0xcb01, from: "c" as const, to: "b" as const, suite, keymat };
      const esp = sealEsp(
        { suite: suite === "chacha20-poly1305" ? suite : "aes-gcm-16", spi: sa.spi, key: keymat.subarray(0, keyLen), salt: keymat.subarray(keyLen), esn: false },
        { seq: 7n, iv: Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 7), payload: inner, nextHeader: 4 },
      );
      const ok = openEsp(esp, sa);
      assert.equal(ok.icv, "good");
      assert.equal(ok.nextHeader, 4);
      assert.deepEqual(ok.inner, inner);
      assert.deepEqual(describeInner(ok.inner!), { src: "10.3.0.2", dst: "10.2.0.2", info: "ICMP Echo request seq=5" });
      for (let bit = 0; bit < esp.length * 8; bit += 13) {
        const bad = esp.slice();
        bad[bit >> 3] ^= 1 << (bit & 7);
        assert.equal(openEsp(bad, sa).icv, "bad", `bit ${bit}`);
      }
      const wrong = keymat.slice();
      wrong[keyLen + 3] ^= 1; // the salt is part of the nonce (RFC 7634 §2, RFC 4106 §4)
      assert.equal(openEsp(esp, { ...sa, keymat: wrong }).icv, "bad");
    });
  }

  it("reads the UDP datagrams of a pcap file (what the demo looks at without tshark)", () => {
    const udp = Uint8Array.of(0x11, 0x94, 0x4e, 0x84, 0, 13, 0, 0, 0, 0, 0xab, 1, 0xff); // 4500 → 20100, 5 bytes
    const ip4 = Uint8Array.of(0x45, 0, 0, 20 + udp.length, 0, 0, 0x40, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 3);
    const eth = (type: number, body: Uint8Array) => Uint8Array.from([...new Array(12).fill(2), type >> 8, type & 255, ...body]);
    const frames = [eth(0x0800, Uint8Array.from([...ip4, ...udp])), eth(0x0806, new Uint8Array(28)), eth(0x0800, Uint8Array.from([...ip4, ...udp]))];
    frames[2][14 + 9] = 6; // TCP: not UDP
    for (const le of [true, false]) {
      const parts: number[] = [];
      const u32 = (n: number) => { const b = Buffer.alloc(4); if (le) b.writeUInt32LE(n); else b.writeUInt32BE(n); parts.push(...b); };
      const u16 = (n: number) => { const b = Buffer.alloc(2); if (le) b.writeUInt16LE(n); else b.writeUInt16BE(n); parts.push(...b); };
      u32(0xa1b2c3d4); u16(2); u16(4); u32(0); u32(0); u32(65535); u32(1);
      for (const f of frames) { u32(0); u32(0); u32(f.length); u32(f.length); parts.push(...f); }
      assert.deepEqual(parsePcapUdp(Uint8Array.from(parts)), [
        { frame: 1, src: "192.0.2.1", dst: "192.0.2.3", sport: 4500, dport: 20100, payload: Uint8Array.of(0, 0, 0xab, 1, 0xff) },
      ]);
    }
  });
});

describe("wesp demo: the tools it installs or does without", () => {
  const scratch = mkdtempSync(join(tmpdir(), "wesp-demo-tools-"));
  after(() => rmSync(scratch, { recursive: true, force: true }));
  // A PATH of one directory holding a fake apt-get that logs its arguments and
  // "installs" a package by creating its command there (or fails, like an offline machine).
  const PKG_CMD: Record<string, string> = { iproute2: "ip", nftables: "nft", tcpdump: "tcpdump", tshark: "tshark" };
  function bin(have: string[], apt: "works" | "offline" | "none"): { path: string; log: string } {
    const d = mkdtempSync(join(scratch, "bin-"));
    const log = join(d, "apt.log");
    for (const c of have) writeFileSync(join(d, c), "#!/bin/sh\n", { mode: 0o755 });
    if (apt !== "none") {
      const install = Object.entries(PKG_CMD).map(([p, c]) => `    ${p}) printf '#!/bin/sh\\n' > ${d}/${c}; /bin/chmod 755 ${d}/${c};;`).join("\n");
      writeFileSync(join(d, "apt-get"), `#!/bin/sh
echo "$DEBIAN_FRONTEND $*" >> ${log}
${apt === "offline" ? 'echo "Temporary failure resolving deb.debian.org"; exit 100' : ""}
[ "$1" = install ] || exit 0
for p in "$@"; do
  case "$p" in
${install}
  esac
done
echo "Setting up $*"
`, { mode: 0o755 });
    }
    return { path: d, log };
  }
  const aptLog = (log: string) => (existsSync(log) ? readFileSync(log, "utf8").trim().split("\n") : []);
  const prepare = (path: string, o: { install?: boolean; strict?: boolean } = {}) => {
    const lines: string[] = [];
    return prepareTools({ ...o, strict: o.strict ?? false, root: true, env: { PATH: path }, out: (l) => lines.push(l) }).then((r) => ({ ...r, text: lines.join("\n") }));
  };

  it("installs what is missing with apt-get, saying which packages and why", async () => {
    const b = bin(["ip"], "works");
    const r = await prepare(b.path);
    assert.deepEqual(aptLog(b.log), ["noninteractive update -q", "noninteractive install -y -q --no-install-recommends nftables tcpdump tshark"]);
    assert.match(r.text, /installing Debian packages for tools that are not here/);
    assert.match(r.text, /nftables +nft: the NAT in front of site C/);
    assert.match(r.text, /tshark +tshark: decrypting and authenticating the capture/);
    assert.match(r.text, /installed nftables, tcpdump, tshark/);
    assert.deepEqual(r.tools, { nft: true, tcpdump: true, tshark: true });
    assert.deepEqual(r.installed, ["nftables", "tcpdump", "tshark"]);
    assert.equal(r.error, undefined);
  });

  it("nothing missing: apt-get is never run", async () => {
    const b = bin(["ip", "nft", "tcpdump", "tshark"], "works");
    const r = await prepare(b.path);
    assert.deepEqual(aptLog(b.log), []);
    assert.equal(r.text, "");
    assert.deepEqual(r.skipped, []);
  });

  it("--no-install, offline, no apt-get or not root: it runs without them and says what it skips", async () => {
    for (const [apt, install, why] of [["works", false, "--no-install"], ["offline", true, "apt-get failed (offline? no such package?): tcpdump, tshark not installed"], ["none", true, "no apt-get here"]] as const) {
      const b = bin(["ip", "nft"], apt);
      const r = await prepare(b.path, { install });
      assert.equal(r.error, undefined);
      assert.deepEqual(r.tools, { nft: true, tcpdump: false, tshark: false }, apt);
      assert.ok(r.text.includes(why), r.text);
      assert.match(r.text, /running without tcpdump, tshark:\n {2}tcpdump: no capture/);
      assert.match(r.text, /for the whole demo: apt-get install -y --no-install-recommends tcpdump tshark/);
      if (!install) assert.deepEqual(aptLog(b.log), []);
    }
    const b = bin(["ip"], "works");
    const lines: string[] = [];
    const r = await prepareTools({ root: false, strict: false, env: { PATH: b.path }, out: (l) => lines.push(l) });
    assert.deepEqual(aptLog(b.log), []);
    assert.match(lines[0], /not installing them \(not root\)/);
    assert.deepEqual(r.tools, { nft: false, tcpdump: false, tshark: false });
  });

  it("without ip it cannot run; with CI set neither without the others", async () => {
    const noIp = await prepare(bin([], "none").path);
    assert.match(noIp.error ?? "", /^needs ip \(network namespaces.*\); install: apt-get install -y --no-install-recommends iproute2$/);
    const ci = await prepare(bin(["ip"], "offline").path, { strict: true });
    assert.match(ci.error ?? "", /^CI is set and nft, tcpdump, tshark are missing/);
  });
});
