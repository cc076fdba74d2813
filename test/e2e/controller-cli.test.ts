// `wesp controller` and `wesp ctl` as an operator runs them: the controller
// started from an empty state dir on 127.0.0.1 (port chosen by the kernel),
// then create-vpn, add-site, list, remove-site, token and config through the
// real command line; SIGTERM stops it with exit 0, and a restart keeps the VPN.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { X509Certificate } from "node:crypto";
import { once } from "node:events";
import { requireTools } from "../helpers/require.ts";
import { parseConfig } from "../../host/config/load.ts";

const WESP = join(import.meta.dirname, "..", "..", "bin", "wesp.js");

async function startController(state: string): Promise<{ child: ChildProcess; url: string; stderr: () => string }> {
  const child = spawn(process.execPath, [WESP, "controller", "--state", state, "--listen", "127.0.0.1:0"], { stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stderr!.on("data", (c) => (err += c));
  let out = "";
  const url = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`controller did not start: ${err}`)), 30_000);
    child.stdout!.on("data", (c) => {
      out += c;
      const m = /^(https:\/\/\S+)\n/.exec(out);
      if (m) (clearTimeout(t), resolve(m[1]));
    });
    child.once("exit", (code) => (clearTimeout(t), reject(new Error(`controller exited ${code}: ${err}`))));
  });
  return { child, url, stderr: () => err };
}

function ctl(state: string, url: string, ...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [WESP, "ctl", "--state", state, "--url", url, ...args], { encoding: "utf8", timeout: 60_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

test("wesp controller + wesp ctl: a VPN built, listed and changed from the command line", { skip: requireTools(["openssl"], { why: "wesp controller (self-signed certificate)" }) }, async () => {
  const state = mkdtempSync(join(tmpdir(), "wesp-ctl-cli-"));
  let c = await startController(state);
  try {
    for (const f of ["master.key", "operator.token", "tls/key.pem", "ca/ca.key", "controller.db"]) {
      assert.equal(statSync(join(state, f)).mode & 0o077, 0, `${f} is private`);
    }
    const token = readFileSync(join(state, "operator.token"), "utf8").trim();
    assert.ok(!c.stderr().includes(token), "the token is not printed");

    let r = ctl(state, c.url, "create-vpn", "acme", "--hub", "hq", "--keying", "controller");
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /created VPN acme \(hub-and-spoke, aes-256-gcm, tunnel, keying controller\)/);
    r = ctl(state, c.url, "add-site", "acme", "hq", "--prefix", "10.1.0.0/16", "--wan", "inet=192.0.2.1", "--wan", "mpls=10.255.0.1,trusted");
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /added site hq to acme \(site id 1, system id acme\/hq\)/);
    r = ctl(state, c.url, "add-site", "acme", "b", "--prefix", "10.2.0.0/16", "--wan", "inet=192.168.2.2:4501,public=198.51.100.2:40000,nat=symmetric");
    assert.equal(r.code, 0, r.err);
    r = ctl(state, c.url, "add-site", "acme", "c", "--prefix", "10.3.0.0/16", "--prefix", "fd00:3::/48", "--wan", "inet=203.0.113.3");
    assert.equal(r.code, 0, r.err);
    r = ctl(state, c.url, "list");
    assert.match(r.out, /^acme\thub-and-spoke hub=hq\taes-256-gcm\ttunnel\tcontroller\tversion \d+\n$/);
    r = ctl(state, c.url, "list", "acme");
    assert.equal(r.out.split("\n")[1], "b\tsite 2\t10.2.0.0/16\tinet=192.168.2.2:4501→198.51.100.2:40000 nat=symmetric");
    r = ctl(state, c.url, "--json", "list", "acme");
    assert.deepEqual(JSON.parse(r.out).map((s: { name: string }) => s.name), ["hq", "b", "c"]);

    r = ctl(state, c.url, "config", "acme", "b");
    assert.equal(r.code, 0, r.err);
    const cfg = JSON.parse(r.out);
    assert.deepEqual(cfg.peers.map((p: { name: string }) => p.name), ["hq"]);
    parseConfig(r.out, { baseDir: state, source: "<b>" });
    assert.ok(!c.stderr().includes(cfg.peers[0].sas[0].key_in), "keys are not logged");

    r = ctl(state, c.url, "token", "acme", "c", "--ttl", "600");
    assert.match(r.out, /^wesp-enrol-\S{43}\n$/);
    const tokenFile = join(state, "c.token");
    r = ctl(state, c.url, "site", "token", "acme", "c", "--out", tokenFile);
    assert.equal(r.code, 0, r.err);
    const tf = JSON.parse(readFileSync(tokenFile, "utf8"));
    assert.equal(statSync(tokenFile).mode & 0o077, 0, "the token file is private");
    assert.equal(tf.caFingerprint, new X509Certificate(readFileSync(join(state, "ca", "ca.pem"))).fingerprint256.replace(/:/g, "").toLowerCase(), "it pins the controller's CA");
    assert.deepEqual([tf.url, tf.vpn, tf.site], [c.url, "acme", "c"]);
    assert.match(c.stderr(), /CA .*ca\.pem, SHA-256 fingerprint ([0-9a-f]{2}:){31}[0-9a-f]{2}\)/, "the CA fingerprint is logged at start");
    r = ctl(state, c.url, "revoke", "acme", "c");
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /revoked 0 certificates of c in acme/);

    r = ctl(state, c.url, "remove-site", "acme", "hq");
    assert.equal(r.code, 1);
    assert.match(r.err, /hub of VPN "acme".*\(HTTP 409\)/);
    r = ctl(state, c.url, "remove-site", "acme", "c");
    assert.equal(r.code, 0, r.err);
    r = ctl(state, c.url, "add-site", "acme", "d", "--prefix", "10.2.5.0/24", "--wan", "inet=192.0.2.4");
    assert.equal(r.code, 1);
    assert.match(r.err, /overlaps 10\.2\.0\.0\/16 of site "b"/);
    r = ctl(state, c.url, "add-site", "acme", "d", "--wan", "inet=192.0.2.4");
    assert.equal(r.code, 2, "usage error");
    r = ctl(state, c.url, "add-site", "acme", "d", "--prefix", "10.4.0.0/16", "--wan", "inet=192.0.2.4,nat=weird");
    assert.equal(r.code, 2);
    const bad = spawnSync(process.execPath, [WESP, "ctl", "--url", c.url, "--token-file", join(state, "master.key"), "--ca", join(state, "tls", "cert.pem"), "list"], { encoding: "utf8" });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /operator token is required.*\(HTTP 401\)/);

    c.child.kill("SIGTERM");
    const [code] = await once(c.child, "exit");
    assert.equal(code, 0);
    c = await startController(state);
    r = ctl(state, c.url, "list", "acme");
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.out.trim().split("\n").map((l) => l.split("\t")[0]), ["hq", "b"], "the database survives a restart");
  } finally {
    c.child.kill("SIGTERM");
    await once(c.child, "exit").catch(() => {});
    rmSync(state, { recursive: true, force: true });
  }
});
