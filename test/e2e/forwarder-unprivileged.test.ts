// wesp up without privileges (issue 3 items 1 and 5): as user nobody, with no
// capabilities, attached to a persistent TUN an administrator made for it
// (`ip tuntap add … user nobody`), carrying ESP in UDP on port 4500 — and the
// exit codes around it: 3 when it would have to create the TUN itself, 2 for
// an invalid config, 1 when the self-test fails, 4 from status with nothing
// running. Also: SIGINT stops it like SIGTERM.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { Lab, tcpEcho, waitFor } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { assertNoNamespacesLeft } from "./io-util.ts";
import { ADDR, buildSites, configs, status, WESP_BIN, wesp, type Sites } from "./forwarder-util.ts";

const uid = Number(execFileSync("id", ["-u", "nobody"], { encoding: "utf8" }).trim());
const gid = Number(execFileSync("id", ["-g", "nobody"], { encoding: "utf8" }).trim());
const asNobody = ["setpriv", `--reuid=${uid}`, `--regid=${gid}`, "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"];

describe("wesp up without privileges", { skip: requireTools(["netns", "python3"], { why: "e2e wesp up without privileges" }) }, () => {
  const lab = new Lab();
  let s: Sites;
  let dir: string;

  before(async () => {
    s = await buildSites(lab);
    // nobody's own directory for its configs and control socket
    dir = join(lab.dir, "nobody");
    mkdirSync(dir, { mode: 0o700 });
    chownSync(dir, uid, gid);
    chmodSync(lab.dir, 0o711);
  });
  after(async () => {
    await lab.teardown();
    assertNoNamespacesLeft(lab);
  });

  function write(name: string, doc: object, owner = uid): string {
    const p = join(dir, name);
    writeFileSync(p, JSON.stringify(doc), { mode: 0o600 });
    chownSync(p, owner, gid);
    return p;
  }

  it("attaches to a persistent TUN as nobody and forwards; SIGINT stops it with status 0", { timeout: 120_000 }, async () => {
    const c = configs({ name: "p", mode: "tunnel", outer: 4, encap: "udp", suite: "chacha20-poly1305" }, dir);
    const a = c.a as any, b = c.b as any;
    a.node.tun.persistent = true;
    // ceB runs as root: its control socket goes in root's lab dir, not in nobody's (refused: not ours)
    b.node.control.socket = join(lab.dir, "ceB.sock");
    // the administrator's part: the device, its MTU, address and routes
    await s.ceA.ip("tuntap", "add", "dev", "wesp0", "mode", "tun", "user", "nobody");
    await s.ceA.ip("link", "set", "dev", "wesp0", "mtu", "1400", "up");
    await s.ceA.ip("route", "add", "10.2.0.0/24", "dev", "wesp0");
    await s.ceA.ip("-6", "route", "add", "fd00:2::/64", "dev", "wesp0");
    const cfgA = write("a.json", a);
    const cfgB = write("b.json", b, 0);
    const pa = s.ceA.spawn([...asNobody, process.execPath, WESP_BIN, "up", cfgA]);
    const pb = s.ceB.spawn([process.execPath, WESP_BIN, "up", cfgB]);
    try {
      for (const p of [pa, pb]) {
        await waitFor(() => !p.running || /forwarding on/.test(p.stderr), "wesp up", 30_000);
        assert.ok(p.running, `wesp up exited ${p.exitCode}: ${p.stderr}`);
      }
      const status0 = readFileSync(`/proc/${pa.pid}/status`, "utf8");
      assert.match(status0, new RegExp(`^Uid:\\s+${uid}\\s`, "m"), "runs as nobody");
      assert.match(status0, /^CapEff:\s+0+$/m, "with no capabilities");
      assert.equal((await s.hostA.ping(ADDR.hostB.v4, 2)).received, 2);
      assert.equal((await s.hostB.ping(ADDR.hostA.v6, 2)).received, 2);
      const t = await tcpEcho(s.hostB, ADDR.hostB.v4, s.hostA, 1 << 20, 5003);
      assert.deepEqual(t, { sent: 1 << 20, echoed: 1 << 20, equal: true });
      const st = await status(join(dir, "ceA.sock"));
      assert.ok(st.peers[0].outbound.counters.packets > 0);
      await pa.stop("SIGINT", 10_000);
      assert.equal(pa.exitCode, 0, pa.stderr);
      // the persistent device stays for the next run, as its administrator made it
      assert.equal((await s.ceA.exec(["ip", "link", "show", "dev", "wesp0"])).code, 0);
    } finally {
      await pa.stop();
      await pb.stop();
      await s.ceA.exec(["ip", "tuntap", "del", "dev", "wesp0", "mode", "tun"]);
    }
  });

  it("exit 3 when nobody would have to create the TUN", { timeout: 60_000 }, async () => {
    const c = configs({ name: "np", mode: "tunnel", outer: 4, encap: "udp" }, dir);
    const cfg = write("np.json", c.a);
    const r = await s.ceA.exec([...asNobody, process.execPath, WESP_BIN, "up", cfg], { timeoutMs: 60_000 });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /CAP_NET_ADMIN/);
  });

  it("exit 3 when nobody needs a raw socket", { timeout: 60_000 }, async () => {
    const c = configs({ name: "raw", mode: "tunnel", outer: 4, encap: "raw" }, dir);
    const a = c.a as any;
    a.node.tun.persistent = true;
    await s.ceA.ip("tuntap", "add", "dev", "wesp0", "mode", "tun", "user", "nobody");
    try {
      const r = await s.ceA.exec([...asNobody, process.execPath, WESP_BIN, "up", write("raw.json", a)], { timeoutMs: 60_000 });
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /CAP_NET_RAW/);
    } finally {
      await s.ceA.exec(["ip", "tuntap", "del", "dev", "wesp0", "mode", "tun"]);
    }
  });

  it("exit 2 for an invalid config, naming the field; exit 1 when the self-test fails; nothing is opened", { timeout: 60_000 }, async () => {
    const c = configs({ name: "bad", mode: "tunnel", outer: 4, encap: "udp" }, dir);
    const bad = structuredClone(c.a) as any;
    bad.peers[0].sas[0].replay_window = 7;
    const r2 = await s.ceA.exec([process.execPath, WESP_BIN, "up", write("bad.json", bad, 0)]);
    assert.equal(r2.code, 2, r2.stderr);
    assert.match(r2.stderr, /peers\[0\]\.sas\[0\]\.replay_window/);

    // a vector file whose one vector expects a wrong ciphertext
    const vectors = JSON.parse(readFileSync(new URL("../../host/core/vectors/esp-vectors.json", import.meta.url), "utf8"));
    const list = vectors.vectors ?? vectors;
    const v = list[0];
    v.expected_esp = v.expected_esp.slice(0, -2) + (v.expected_esp.endsWith("00") ? "01" : "00");
    const vf = join(lab.dir, "bad-vectors.json");
    writeFileSync(vf, JSON.stringify(Array.isArray(vectors) ? [v] : { ...vectors, vectors: [v] }));
    const r1 = await s.ceA.exec([process.execPath, WESP_BIN, "up", "--selftest-vectors", vf, write("ok.json", c.a, 0)]);
    assert.equal(r1.code, 1, r1.stderr);
    assert.match(r1.stderr, /self-test failed/);
    assert.notEqual((await s.ceA.exec(["ip", "link", "show", "dev", "wesp0"])).code, 0, "no TUN was made");
  });

  it("status: exit 4 with nothing running, 2 for bad usage", async () => {
    const r4 = await wesp("status", "--control", join(dir, "nothing.sock"));
    assert.equal(r4.code, 4, r4.stderr);
    assert.match(r4.stderr, /no running wesp/);
    const r2 = await wesp("status", "--control", "x", "also-a-config.yaml");
    assert.equal(r2.code, 2);
  });
});
