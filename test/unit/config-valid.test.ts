// Valid configurations: the shipped example, defaults, normalization of
// addresses, SPIs and keys (inline, from files, JSON input).

import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { KeyBytes } from "../../host/config/keys.ts";
import { loadConfigSync, parseConfig } from "../../host/config/load.ts";
import { SUITES } from "../../host/config/suites.ts";
import { baseConfig, hexKey, REPO, tempDir, toYaml } from "../helpers/config_fixture.ts";

const opts = { baseDir: "/", uid: 1000, env: {} };

test("every examples/three-sites config loads without errors or warnings", () => {
  const dir = join(REPO, "examples/three-sites");
  const files = readdirSync(dir).filter((f) => f.endsWith(".yaml"));
  assert.equal(files.length, 3);
  for (const f of files) {
    const { config, warnings } = loadConfigSync(join(dir, f), { uid: 0, env: {} });
    // Their (example) inline keys draw the mode warning when the checkout made them world-readable.
    const readable = (statSync(join(dir, f)).mode & 0o044) !== 0;
    assert.deepEqual(warnings.filter((w) => !(readable && w.path === "" && /inline keys .* readable by group or others/.test(w.message))), [], f);
    assert.ok(config.peers.length === 2, f);
  }
});

test("the three example sites agree with each other: SPIs and keys mirror, plain GRE only over MPLS", () => {
  const dir = join(REPO, "examples/three-sites");
  const sites = ["hq", "branch-b", "branch-c"].map((n) => loadConfigSync(join(dir, `${n}.yaml`), { uid: 0, env: {} }).config);
  const byName = new Map(sites.map((s) => [s.node.name, s]));
  for (const s of sites) {
    for (const p of s.peers) {
      const other = byName.get(p.name);
      assert.ok(other, `${s.node.name}: peer ${p.name} is one of the sites`);
      const back = other.peers.find((q) => q.name === s.node.name);
      assert.ok(back, `${p.name} has ${s.node.name} as a peer`);
      assert.equal(back.mode, p.mode);
      assert.deepEqual(back.prefixes.map((x) => x.text), s.node.localPrefixes.map((x) => x.text));
      assert.equal(back.sas.length, p.sas.length);
      p.sas.forEach((sa, i) => {
        assert.equal(back.sas[i].spiIn, sa.spiOut);
        assert.equal(back.sas[i].spiOut, sa.spiIn);
        assert.equal(back.sas[i].suite, sa.suite);
        assert.deepEqual(Buffer.from(back.sas[i].keyIn), Buffer.from(sa.keyOut));
        assert.deepEqual(Buffer.from(back.sas[i].keyOut), Buffer.from(sa.keyIn));
      });
      if (p.mode === "gre" || p.mode === "ipip") assert.ok(s.node.wan[p.wanIndex].trusted);
    }
  }
  // The one behind NAT: its peers use UDP with NAT-T towards the NAT's address.
  const b = byName.get("branch-b")!;
  assert.ok(b.peers.every((p) => p.natT && p.encap === "udp" && p.keepalive > 0));
});

test("defaults are filled in", () => {
  const { config: c } = parseConfig(toYaml(baseConfig()), opts);
  assert.equal(c.node.tun.name, "wesp0");
  assert.equal(c.node.tun.mtu, 1400);
  assert.equal(c.node.tun.persistent, false);
  assert.equal(c.node.tun.reader, "readv");
  assert.deepEqual(c.node.tun.addresses, []);
  assert.ok(c.node.workers >= 1);
  assert.equal(c.node.wan[0].port, 4500);
  assert.equal(c.node.wan[0].encap, "udp");
  assert.equal(c.node.wan[0].trusted, false);
  const [b, cc] = c.peers;
  assert.equal(b.port, 4500);
  assert.equal(b.mode, "tunnel");
  assert.equal(b.wan, "inet");
  assert.equal(b.wanIndex, 0);
  assert.equal(b.natT, true, "nat_t auto on a UDP port");
  assert.equal(b.keepalive, 0);
  assert.equal(b.mtu, undefined);
  assert.equal(b.sas[0].replayWindow, 1024);
  assert.equal(b.sas[0].esn, false);
  assert.deepEqual(b.sas[0].lifetime, {});
  assert.deepEqual(cc.gre, { key: 7, sequence: false });
});

test("control socket default depends on the user", () => {
  const text = toYaml(baseConfig());
  assert.equal(parseConfig(text, { baseDir: "/", uid: 0, env: {} }).config.node.control.socket, "/run/wesp/site-a.sock");
  assert.equal(parseConfig(text, { baseDir: "/", uid: 1000, env: { XDG_RUNTIME_DIR: "/run/user/1000" } }).config.node.control.socket, "/run/user/1000/wesp/site-a.sock");
  assert.equal(parseConfig(text, { baseDir: "/", uid: 1000, env: {} }).config.node.control.socket, "/tmp/wesp-1000/site-a.sock");
  const doc = baseConfig();
  doc.node.control = { socket: "run/ctl.sock" };
  assert.equal(parseConfig(toYaml(doc), { baseDir: "/etc/wesp", uid: 0, env: {} }).config.node.control.socket, "/etc/wesp/run/ctl.sock");
});

test("keys decode to KeyBytes of the suite's size, salt included", () => {
  const doc = baseConfig();
  const { config: c } = parseConfig(toYaml(doc), opts);
  const gcm = c.peers[0].sas[0];
  assert.ok(gcm.keyIn instanceof KeyBytes && gcm.keyIn instanceof Uint8Array);
  assert.equal(gcm.keyIn.length, SUITES["aes-256-gcm"].keyBytes);
  assert.equal(Buffer.from(gcm.keyIn).toString("hex"), doc.peers[0].sas[0].key_in);
  assert.equal(gcm.authKeyIn, undefined);
  const cbc = c.peers[1].sas[0];
  assert.equal(Buffer.from(cbc.authKeyOut!).toString("hex"), doc.peers[1].sas[0].auth_key_out);
});

test("SPIs as numbers or 0x strings; hex keys with 0x prefix and upper case", () => {
  const doc = baseConfig();
  doc.peers[0].sas[0].spi_in = "0xDEADBEEF";
  doc.peers[0].sas[0].spi_out = 4294967295;
  const k = hexKey(36);
  doc.peers[0].sas[0].key_in = `0x${k.toUpperCase()}`;
  const sa = parseConfig(toYaml(doc), opts).config.peers[0].sas[0];
  assert.equal(sa.spiIn, 0xdeadbeef);
  assert.equal(sa.spiOut, 0xffffffff);
  assert.equal(Buffer.from(sa.keyIn).toString("hex"), k);
});

test("key files are read relative to the config file; comments and whitespace ignored", () => {
  const dir = tempDir();
  try {
    const doc = baseConfig();
    const k = hexKey(36);
    dir.write("b-in.key", `# AES-256-GCM key + salt for b\n${k.slice(0, 40)}\n  ${k.slice(40)}\n`);
    delete doc.peers[0].sas[0].key_in;
    doc.peers[0].sas[0].key_in_file = "b-in.key";
    const file = dir.write("site.yaml", toYaml(doc));
    const { config, warnings } = loadConfigSync(file, { uid: 1000, env: {} });
    assert.equal(Buffer.from(config.peers[0].sas[0].keyIn).toString("hex"), k);
    assert.deepEqual(warnings, []);
  } finally {
    dir.remove();
  }
});

test("a key file readable by others loads with a warning naming the field", () => {
  const dir = tempDir();
  try {
    const doc = baseConfig();
    dir.write("open.key", hexKey(36), 0o644);
    delete doc.peers[0].sas[0].key_out;
    doc.peers[0].sas[0].key_out_file = "open.key";
    const { warnings } = loadConfigSync(dir.write("site.yaml", toYaml(doc)), { uid: 1000, env: {} });
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0].path, "peers[0].sas[0].key_out_file");
    assert.match(warnings[0].message, /readable by group or others.*chmod 600/);
  } finally {
    dir.remove();
  }
});

test("JSON is accepted and gives the same model as YAML", () => {
  const doc = baseConfig();
  const fromYaml = parseConfig(toYaml(doc), opts).config;
  const fromJson = parseConfig(JSON.stringify(doc), opts).config;
  assert.deepEqual({ ...fromJson, source: "" }, { ...fromYaml, source: "" });
});

test("IPv6 outer addresses, IPv6 prefixes canonicalized, two SAs during rekey", () => {
  const doc = baseConfig();
  doc.node.wan = [{ name: "v6", address: "2001:DB8:0:0::1" }];
  doc.peers[0].address = "2001:db8::2";
  doc.peers[0].prefixes = ["FD00:0002:0000::/48"];
  doc.peers[0].sas.push({ spi_in: 0x1101, spi_out: 0x2101, suite: "chacha20-poly1305", key_in: hexKey(36), key_out: hexKey(36), esn: true, replay_window: 0 });
  doc.peers[1].address = "2001:db8::3";
  doc.peers[1].mtu = 1280;
  const c = parseConfig(toYaml(doc), opts).config;
  assert.equal(c.node.wan[0].address.text, "2001:db8::1");
  assert.equal(c.node.wan[0].address.family, 6);
  assert.equal(c.peers[0].prefixes[0].text, "fd00:2::/48");
  assert.equal(c.peers[0].prefixes[0].bytes.length, 16);
  assert.equal(c.peers[0].sas.length, 2);
  assert.equal(c.peers[0].sas[1].index, 1);
  assert.equal(c.peers[0].sas[1].esn, true);
  assert.equal(c.peers[0].sas[1].replayWindow, 0);
});

test("trusted MPLS port: plain GRE and IP-in-IP peers without SAs; raw ESP port", () => {
  const doc = baseConfig();
  doc.node.wan.push({ name: "mpls", address: "10.255.0.1", trusted: true }, { name: "raw", address: "192.0.2.77", encap: "raw" });
  doc.peers[0].wan = "raw";
  doc.peers[1].wan = "inet";
  doc.peers.push(
    { name: "d", address: "10.255.0.4", wan: "mpls", mode: "gre", gre: { key: 42, sequence: true }, prefixes: ["10.4.0.0/16"] },
    { name: "e", address: "10.255.0.5", wan: "mpls", mode: "ipip", prefixes: ["10.5.0.0/16"] },
  );
  const c = parseConfig(toYaml(doc), opts).config;
  assert.equal(c.peers[0].encap, "raw");
  assert.equal(c.peers[0].natT, false, "nat_t auto on a raw port");
  assert.equal(c.peers[2].sas.length, 0);
  assert.deepEqual(c.peers[2].gre, { key: 42, sequence: true });
  assert.equal(c.peers[2].natT, false);
  assert.equal(c.peers[3].mode, "ipip");
  assert.equal(c.peers[3].wanIndex, 1);
});

test("aes-128-cbc is accepted with allow_no_integrity (and nat_t: false: no address learning without an ICV)", () => {
  const doc = baseConfig();
  doc.peers[1].nat_t = false;
  const s = doc.peers[1].sas[0];
  s.suite = "aes-128-cbc";
  s.allow_no_integrity = true;
  s.replay_window = 0;
  delete s.auth_key_in;
  delete s.auth_key_out;
  const { config, warnings } = parseConfig(toYaml(doc), opts);
  assert.equal(config.peers[1].sas[0].suite, "aes-128-cbc");
  assert.deepEqual(warnings, []);
});

test("a node with no peers is valid", () => {
  const doc = baseConfig();
  doc.peers = [];
  assert.equal(parseConfig(toYaml(doc), opts).config.peers.length, 0);
});

test("AEAD KEYMAT is cipher key then 4-byte salt, as the core splits it (saltInKey); CBC keys have no salt", async () => {
  const { Core } = await import("../../host/core/core.ts");
  const { innerUdp, nodeOpenEsp } = await import("./core-helpers.ts");
  const doc = baseConfig();
  const c = parseConfig(toYaml(doc), opts).config;
  const keymat = c.peers[0].sas[0].keyIn;
  assert.ok(keymat instanceof KeyBytes);
  assert.equal(SUITES["aes-256-gcm"].saltBytes, 4);
  // The config's key_in sealed through the core as the SA table installs it (install.ts saParams),
  // opened by node:crypto with key_in's first 32 bytes as the key and its last 4 as the salt.
  const core = await Core.create({ slots: 1, maxSas: 2, maxPolicies: 2, largeWindowBlocks: 0 });
  const id = core.addSa({ direction: "out", suite: "aes-gcm-16", mode: "payload", spi: 0x100, key: keymat, saltInKey: true, peerId: 1 });
  core.writePacket(0, innerUdp("10.1.0.1", "10.2.0.1", 24), 0, id, 4);
  assert.equal(core.processOutbound(1), 1);
  const hex = doc.peers[0].sas[0].key_in;
  nodeOpenEsp(core.packet(0), "aes-gcm-16", { key: Buffer.from(hex.slice(0, 64), "hex"), salt: Buffer.from(hex.slice(64), "hex") }); // throws on a bad tag
  const cbc = c.peers[1].sas[0].keyIn;
  assert.equal(cbc.length, 16);
  assert.equal(SUITES["aes-128-cbc-hmac-sha256"].saltBytes, 0);
});

test("docs/config.md shows the three example files verbatim", () => {
  const doc = readFileSync(join(REPO, "docs/config.md"), "utf8");
  for (const f of ["hq.yaml", "branch-b.yaml", "branch-c.yaml"]) {
    const text = readFileSync(join(REPO, "examples/three-sites", f), "utf8");
    assert.ok(doc.includes("```yaml\n" + text + "```"), `${f} differs from docs/config.md`);
  }
});

test("the defaults the schema documents are the ones the loader applies", async () => {
  const { loadSchema } = await import("../../host/config/schema_errors.ts");
  const defs = (loadSchema() as { $defs: Record<string, { properties: Record<string, { default?: unknown }> }> }).$defs;
  const doc = baseConfig();
  doc.node.tun = {};
  const c = parseConfig(toYaml(doc), opts).config;
  const pairs: [unknown, unknown][] = [
    [defs.wan.properties.port.default, c.node.wan[0].port],
    [defs.wan.properties.encap.default, c.node.wan[0].encap],
    [defs.wan.properties.trusted.default, c.node.wan[0].trusted],
    [defs.tun.properties.name.default, c.node.tun.name],
    [defs.tun.properties.mtu.default, c.node.tun.mtu],
    [defs.tun.properties.persistent.default, c.node.tun.persistent],
    [defs.tun.properties.reader.default, c.node.tun.reader],
    [defs.peer.properties.port.default, c.peers[0].port],
    [defs.peer.properties.mode.default, c.peers[0].mode],
    [defs.peer.properties.keepalive.default, c.peers[0].keepalive],
    [defs.sa.properties.replay_window.default, c.peers[0].sas[0].replayWindow],
    [defs.sa.properties.esn.default, c.peers[0].sas[0].esn],
  ];
  for (const [schema, model] of pairs) assert.equal(model, schema);
  assert.equal(defs.peer.properties.nat_t.default, "auto");
});
