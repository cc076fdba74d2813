// `wesp demo` end to end: the real command, as `npm run demo` runs it, in real
// namespaces. Its JSON report (--report) must show every pair of sites
// reached both ways over IPv4 and IPv6, every TCP transfer's bytes equal at
// the far end, every captured ESP frame authenticated by tshark or
// @noble/ciphers, C's NAT mapping learned by its peers — and afterwards
// nothing left: no namespace, no scratch dir, no process. Also: Ctrl-C in
// the middle, a run that fails, and --keep followed by --down.
//
// Each run uses its own name prefix (`--prefix`), so it cannot touch a lab
// someone keeps under the default name.
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { requireTools } from "../helpers/require.ts";
import { sealEsp } from "../helpers/ref_esp.ts";
import { leftovers, removeLeftovers } from "../../host/demo/lab.ts";
import { parseConntrack } from "../../host/demo/nat.ts";
import { describeInner, openChachaEsp } from "../../host/demo/esp_check.ts";
import { PAIRS, SITES } from "../../host/demo/plan.ts";
import type { DemoResult } from "../../host/demo/run.ts";

const WESP = fileURLToPath(new URL("../../bin/wesp.js", import.meta.url));
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), "wesp-demo-test-"));
const prefixes: string[] = [];
let runs = 0;

function newPrefix(): string {
  const p = `wdt${process.pid}-${runs++}-`;
  prefixes.push(p);
  return p;
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
}

/** `wesp demo ARGS`; `onOutput` may act on the output so far (e.g. send a signal). */
function demo(args: string[], onOutput?: (out: string, pid: number) => void): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [WESP, "demo", ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
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

  it("reaches every pair of sites through wesp, the wire checks out, and nothing is left", async () => {
    const prefix = newPrefix();
    const report = join(scratch, "report.json");
    const r = await demo(["--prefix", prefix, "--report", report]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /^PASS: (\d+) of \1 checks passed$/m);
    const res: DemoResult = JSON.parse(readFileSync(report, "utf8"));
    assert.equal(res.ok, true);
    assert.equal(res.error, undefined);
    for (const c of res.checks) assert.ok(c.ok, `${c.name}: ${c.detail}`);

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
    assert.deepEqual(res.wire.map((s) => s.spi).sort(), PAIRS.flatMap((p) => [p.spiAB, p.spiBA]).sort());
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
    // The kept CEs still answer `wesp status` over their control sockets.
    const st = await new Promise<string>((resolve) => {
      const c = spawn(process.execPath, [WESP, "status", join(dir, "site-a.yaml")], { cwd: ROOT });
      let out = "";
      c.stdout.on("data", (d) => (out += d));
      c.on("exit", () => resolve(out));
    });
    assert.match(st, /^node site-a /m);
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

  it("opens ChaCha20-Poly1305 ESP sealed by the reference ESP, and refuses any changed bit or a wrong key", () => {
    const keymat = Uint8Array.from({ length: 36 }, (_, i) => i * 7 + 1);
    const inner = Uint8Array.from([
      0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 10, 3, 0, 2, 10, 2, 0, 2, // IPv4 10.3.0.2 → 10.2.0.2, ICMP
      8, 0, 0, 0, 0x12, 0x34, 0, 5, // echo request, seq 5
    ]);
    const sa = { spi: 0xcb01, from: "c" as const, to: "b" as const, suite: "chacha20-poly1305" as const, keymat };
    const esp = sealEsp(
      { suite: "chacha20-poly1305", spi: sa.spi, key: keymat.subarray(0, 32), salt: keymat.subarray(32), esn: false },
      { seq: 7n, iv: Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 7), payload: inner, nextHeader: 4 },
    );
    const ok = openChachaEsp(esp, sa);
    assert.equal(ok.icv, "good");
    assert.equal(ok.nextHeader, 4);
    assert.deepEqual(ok.inner, inner);
    assert.deepEqual(describeInner(ok.inner!), { src: "10.3.0.2", dst: "10.2.0.2", info: "ICMP Echo request seq=5" });
    for (let bit = 0; bit < esp.length * 8; bit += 13) {
      const bad = esp.slice();
      bad[bit >> 3] ^= 1 << (bit & 7);
      assert.equal(openChachaEsp(bad, sa).icv, "bad", `bit ${bit}`);
    }
    const wrong = keymat.slice();
    wrong[35] ^= 1; // the salt is part of the nonce (RFC 7634 §2)
    assert.equal(openChachaEsp(esp, { ...sa, keymat: wrong }).icv, "bad");
  });
});
