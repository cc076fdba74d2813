// Bad configurations: each must be refused with an issue naming the exact
// field (asserted on the path) and saying why, and no error output may
// contain key material.

import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigError, parseConfig } from "../../host/config/load.ts";
import { baseConfig, findKeyLeaks, hexKey, keysOf, tempDir, toYaml, type Doc } from "../helpers/config_fixture.ts";

interface BadCase {
  name: string;
  /** Change the valid base config into a bad one (or return YAML text to use instead). */
  mutate: (c: Doc, files: (name: string, text: string) => void) => void | string;
  path: string;
  message: RegExp;
}

const MPLS = { name: "mpls", address: "10.255.0.1", trusted: true };

const cases: BadCase[] = [
  { name: "missing node", mutate: (c) => { delete c.node; }, path: "node", message: /is required/ },
  { name: "unknown version", mutate: (c) => { c.version = 2; }, path: "version", message: /must be 1/ },
  { name: "node name with a space", mutate: (c) => { c.node.name = "site a"; }, path: "node.name", message: /letters, digits/ },
  { name: "misspelt wan field", mutate: (c) => { c.node.wan[0].adress = c.node.wan[0].address; delete c.node.wan[0].address; }, path: "node.wan[0].adress", message: /unknown field \(did you mean "address"\?\)/ },
  { name: "no WAN port", mutate: (c) => { c.node.wan = []; }, path: "node.wan", message: /at least 1 item/ },
  { name: "WAN address not an IP", mutate: (c) => { c.node.wan[0].address = "300.1.2.3"; }, path: "node.wan[0].address", message: /not an IPv4 or IPv6 address/ },
  { name: "WAN encap unknown", mutate: (c) => { c.node.wan[0].encap = "esp"; }, path: "node.wan[0].encap", message: /one of: "udp", "raw"/ },
  { name: "duplicate WAN port name", mutate: (c) => { c.node.wan.push({ name: "inet", address: "192.0.2.9" }); c.peers.forEach((p: Doc) => { p.wan = "inet"; }); }, path: "node.wan[1].name", message: /duplicate WAN port name "inet"/ },
  { name: "WAN port number 0", mutate: (c) => { c.node.wan[0].port = 0; }, path: "node.wan[0].port", message: /at least 1/ },
  { name: "TUN MTU too small", mutate: (c) => { c.node.tun = { mtu: 100 }; }, path: "node.tun.mtu", message: /at least 576/ },
  { name: "peer MTU leaving under 1280 bytes for IPv6 inner packets", mutate: (c) => { c.peers[0].mtu = 1300; }, path: "peers[0].mtu", message: /is 1300, which leaves \d+ bytes for inner packets .* peers\[0\]\.prefixes has IPv6 prefixes .*RFC 8200 §5\): use at least 13\d\d/ },
  { name: "TUN MTU below IPv6 minimum", mutate: (c) => { c.node.tun = { mtu: 1000 }; }, path: "node.tun.mtu", message: /IPv6 needs at least 1280/ },
  { name: "TUN reader unknown", mutate: (c) => { c.node.tun = { reader: "io_uring" }; }, path: "node.tun.reader", message: /one of: "auto", "readv"/ },
  { name: "TUN name too long", mutate: (c) => { c.node.tun = { name: "a-very-long-tun-name" }; }, path: "node.tun.name", message: /1-15 characters/ },
  { name: "TUN address without length", mutate: (c) => { c.node.tun = { addresses: ["10.1.0.1"] }; }, path: "node.tun.addresses[0]", message: /missing "\/length"/ },
  { name: "local prefix with host bits", mutate: (c) => { c.node.local_prefixes[0] = "10.1.2.3/16"; }, path: "node.local_prefixes[0]", message: /host bits set \(did you mean 10\.1\.0\.0\/16\?\)/ },
  { name: "control socket path too long", mutate: (c) => { c.node.control = { socket: `/run/${"x".repeat(120)}.sock` }; }, path: "node.control.socket", message: /at most 107/ },
  { name: "zero workers", mutate: (c) => { c.node.workers = 0; }, path: "node.workers", message: /at least 1/ },
  { name: "peer without address", mutate: (c) => { delete c.peers[0].address; }, path: "peers[0].address", message: /is required/ },
  { name: "duplicate peer name", mutate: (c) => { c.peers[1].name = "b"; }, path: "peers[1].name", message: /duplicate peer name "b" \(also peers\[0\]\.name\)/ },
  { name: "peer named like the node", mutate: (c) => { c.peers[0].name = "site-a"; }, path: "peers[0].name", message: /node's own name/ },
  { name: "peer on an unknown WAN port", mutate: (c) => { c.peers[0].wan = "dsl"; }, path: "peers[0].wan", message: /names no WAN port/ },
  { name: "peer without wan when there are two ports", mutate: (c) => { c.node.wan.push(MPLS); }, path: "peers[0].wan", message: /required when the node has several WAN ports/ },
  { name: "IPv6 peer on an IPv4 port", mutate: (c) => { c.peers[0].address = "2001:db8::2"; }, path: "peers[0].address", message: /is IPv6 but WAN port "inet"/ },
  { name: "multicast peer address", mutate: (c) => { c.peers[0].address = "224.0.0.5"; }, path: "peers[0].address", message: /not a unicast address/ },
  { name: "peer address is our own", mutate: (c) => { c.peers[0].address = "192.0.2.1"; }, path: "peers[0].address", message: /node's own address/ },
  { name: "peer address inside a tunnelled prefix", mutate: (c) => { c.peers[1].prefixes.push("198.51.100.0/24"); }, path: "peers[0].address", message: /lies inside peers\[1\]\.prefixes\[1\]/ },
  { name: "peer prefix with bad length", mutate: (c) => { c.peers[0].prefixes[0] = "10.2.0.0/33"; }, path: "peers[0].prefixes[0]", message: /bad prefix length/ },
  { name: "peer without prefixes", mutate: (c) => { c.peers[0].prefixes = []; }, path: "peers[0].prefixes", message: /at least 1 item/ },
  { name: "prefixes overlapping between peers", mutate: (c) => { c.peers[1].prefixes[0] = "10.2.128.0/17"; }, path: "peers[1].prefixes[0]", message: /overlaps another peer's 10\.2\.0\.0\/16 \(peers\[0\]\.prefixes\[0\]\)/ },
  { name: "peer prefix overlapping a local one", mutate: (c) => { c.peers[0].prefixes[0] = "10.0.0.0/8"; }, path: "peers[0].prefixes[0]", message: /this node's own 10\.1\.0\.0\/16/ },
  { name: "unknown mode", mutate: (c) => { c.peers[0].mode = "transport"; }, path: "peers[0].mode", message: /one of: "tunnel"/ },
  { name: "plain GRE on an untrusted port", mutate: (c) => { c.peers[1].mode = "gre"; delete c.peers[1].sas; }, path: "peers[1].mode", message: /only allowed on a trusted WAN port/ },
  { name: "plain IP-in-IP with SAs", mutate: (c) => { c.node.wan[0].trusted = true; c.peers[0].mode = "ipip"; c.peers[0].nat_t = false; }, path: "peers[0].sas", message: /must be absent for mode "ipip"/ },
  { name: "ESP mode without SAs", mutate: (c) => { delete c.peers[0].sas; }, path: "peers[0].sas", message: /needs at least 1 SA/ },
  { name: "three SAs", mutate: (c) => { const s = c.peers[0].sas[0]; c.peers[0].sas.push({ ...s, spi_in: 0x1101, spi_out: 0x2101 }, { ...s, spi_in: 0x1201, spi_out: 0x2201 }); }, path: "peers[0].sas", message: /at most 2 SAs/ },
  { name: "two plain peers at one address", mutate: (c) => { c.node.wan[0].trusted = true; c.peers[0].mode = "ipip"; delete c.peers[0].sas; c.peers[1].mode = "ipip"; delete c.peers[1].sas; delete c.peers[1].gre; c.peers[1].address = "198.51.100.2"; c.peers.forEach((p: Doc) => { p.nat_t = false; }); }, path: "peers[1].address", message: /could not be told apart/ },
  { name: "nat_t on a raw ESP port", mutate: (c) => { c.node.wan[0].encap = "raw"; c.peers[0].nat_t = true; }, path: "peers[0].nat_t", message: /needs UDP encapsulation.*encap: raw/ },
  { name: "nat_t not a boolean", mutate: (c) => { c.peers[0].nat_t = "yes"; }, path: "peers[0].nat_t", message: /one of: true, false, "auto"/ },
  { name: "keepalive without NAT-T", mutate: (c) => { c.peers[0].nat_t = false; c.peers[0].keepalive = 20; }, path: "peers[0].keepalive", message: /need nat_t/ },
  { name: "GRE options on a tunnel-mode peer", mutate: (c) => { c.peers[0].gre = { key: 1 }; }, path: "peers[0].gre", message: /only applies to mode "gre" or "transport-gre"/ },
  { name: "GRE key too large", mutate: (c) => { c.peers[1].gre.key = 2 ** 32; }, path: "peers[1].gre.key", message: /at most 4294967295/ },
  { name: "path MTU below the IPv6 minimum", mutate: (c) => { c.node.wan[0].address = "2001:db8::1"; c.peers[0].address = "2001:db8::2"; c.peers[1].address = "2001:db8::3"; c.peers[0].mtu = 1000; }, path: "peers[0].mtu", message: /below the IPv6 minimum of 1280/ },
  { name: "misspelt SA field", mutate: (c) => { c.peers[0].sas[0].replay = 64; }, path: "peers[0].sas[0].replay", message: /did you mean "replay_window"/ },
  { name: "reserved SPI", mutate: (c) => { c.peers[0].sas[0].spi_in = 100; }, path: "peers[0].sas[0].spi_in", message: /SPIs 0\.\.255 are reserved/ },
  { name: "SPI string not hex", mutate: (c) => { c.peers[0].sas[0].spi_out = "0xZZ"; }, path: "peers[0].sas[0].spi_out", message: /"0x…" hex string/ },
  { name: "duplicate inbound SPI across peers", mutate: (c) => { c.peers[1].sas[0].spi_in = "0x1001"; }, path: "peers[1].sas[0].spi_in", message: /duplicate SPI 0x00001001 \(also peers\[0\]\.sas\[0\]\.spi_in\)/ },
  { name: "duplicate outbound SPI within a peer", mutate: (c) => { c.peers[0].sas.push({ ...c.peers[0].sas[0], spi_in: 0x1101, key_in: hexKey(36), key_out: hexKey(36) }); }, path: "peers[0].sas[1].spi_out", message: /duplicate SPI 0x00002001/ },
  { name: "unknown suite", mutate: (c) => { c.peers[0].sas[0].suite = "aes-256-ccm"; }, path: "peers[0].sas[0].suite", message: /one of: "aes-128-gcm"/ },
  { name: "AES-256-GCM key without salt", mutate: (c) => { c.peers[0].sas[0].key_out = hexKey(20); }, path: "peers[0].sas[0].key_out", message: /^AES-256-GCM needs 36 bytes \(32 key \+ 4 salt\), got 20$/ },
  { name: "ChaCha20-Poly1305 key too short", mutate: (c) => { c.peers[0].sas[0].suite = "chacha20-poly1305"; c.peers[0].sas[0].key_in = hexKey(32); }, path: "peers[0].sas[0].key_in", message: /ChaCha20-Poly1305 needs 36 bytes \(32 key \+ 4 salt\), got 32/ },
  { name: "key with a non-hex character", mutate: (c) => { const k = c.peers[0].sas[0].key_in; c.peers[0].sas[0].key_in = k.slice(0, 10) + "g" + k.slice(11); }, path: "peers[0].sas[0].key_in", message: /not hex: character 11/ },
  { name: "key with an odd number of digits", mutate: (c) => { c.peers[0].sas[0].key_in = hexKey(36).slice(1); }, path: "peers[0].sas[0].key_in", message: /odd number of hex digits/ },
  { name: "key read by YAML as a number", mutate: (c) => toYaml(c).replace(/key_in: "?([0-9a-f]{72})"?/, "key_in: 0x$1"), path: "peers[0].sas[0].key_in", message: /quote it/ },
  { name: "inline key and key file together", mutate: (c, file) => { file("b.in.key", hexKey(36)); c.peers[0].sas[0].key_in_file = "b.in.key"; }, path: "peers[0].sas[0].key_in_file", message: /either key_in or key_in_file, not both/ },
  { name: "no outbound key", mutate: (c) => { delete c.peers[0].sas[0].key_out; }, path: "peers[0].sas[0].key_out", message: /is required \(or key_out_file\)/ },
  { name: "missing key file", mutate: (c) => { delete c.peers[0].sas[0].key_in; c.peers[0].sas[0].key_in_file = "nope.key"; }, path: "peers[0].sas[0].key_in_file", message: /cannot read key file .*nope\.key \(ENOENT\)/ },
  { name: "key file that is not hex", mutate: (c, file) => { file("bad.key", `# bad\n${hexKey(18)}zz${hexKey(16)}\n`); delete c.peers[0].sas[0].key_in; c.peers[0].sas[0].key_in_file = "bad.key"; }, path: "peers[0].sas[0].key_in_file", message: /bad\.key is not hex/ },
  { name: "key file of the wrong length", mutate: (c, file) => { file("short.key", hexKey(16)); delete c.peers[0].sas[0].key_in; c.peers[0].sas[0].key_in_file = "short.key"; }, path: "peers[0].sas[0].key_in_file", message: /AES-256-GCM needs 36 bytes \(32 key \+ 4 salt\), got 16/ },
  { name: "CBC+HMAC without an auth key", mutate: (c) => { delete c.peers[1].sas[0].auth_key_out; }, path: "peers[1].sas[0].auth_key_out", message: /is required/ },
  { name: "HMAC key of the wrong length", mutate: (c) => { c.peers[1].sas[0].auth_key_in = hexKey(20); }, path: "peers[1].sas[0].auth_key_in", message: /HMAC-SHA-256-128 \(RFC 4868 §2\.1\.1\) needs 32 bytes, got 20/ },
  { name: "AES-CBC key of the wrong length", mutate: (c) => { c.peers[1].sas[0].key_in = hexKey(24); }, path: "peers[1].sas[0].key_in", message: /AES-128-CBC \+ HMAC-SHA-256-128 needs 16 bytes, got 24/ },
  { name: "auth key on an AEAD suite", mutate: (c) => { c.peers[0].sas[0].auth_key_in = hexKey(32); }, path: "peers[0].sas[0].auth_key_in", message: /is not used by aes-256-gcm/ },
  { name: "CBC without integrity, not allowed", mutate: (c) => { const s = c.peers[1].sas[0]; s.suite = "aes-128-cbc"; delete s.auth_key_in; delete s.auth_key_out; }, path: "peers[1].sas[0].suite", message: /no integrity protection.*allow_no_integrity: true/ },
  { name: "nat_t on a peer with an SA without integrity", mutate: (c) => { const s = c.peers[1].sas[0]; s.suite = "aes-128-cbc"; s.allow_no_integrity = true; s.replay_window = 0; delete s.auth_key_in; delete s.auth_key_out; c.peers[1].nat_t = true; }, path: "peers[1].nat_t", message: /cannot be true .*peers\[1\]\.sas\[0\]\.suite is aes-128-cbc.*no integrity.*set nat_t: false/ },
  { name: "nat_t auto (UDP port) on a peer with an SA without integrity", mutate: (c) => { const s = c.peers[1].sas[0]; s.suite = "aes-128-cbc"; s.allow_no_integrity = true; s.replay_window = 0; delete s.auth_key_in; delete s.auth_key_out; }, path: "peers[1].nat_t", message: /auto.*peers\[1\]\.sas\[0\]\.suite is aes-128-cbc/ },
  { name: "replay window 16", mutate: (c) => { c.peers[0].sas[0].replay_window = 16; }, path: "peers[0].sas[0].replay_window", message: /must be 0 \(off\) or 32\.\.65536, got 16/ },
  { name: "replay window too large", mutate: (c) => { c.peers[0].sas[0].replay_window = 70000; }, path: "peers[0].sas[0].replay_window", message: /at most 65536/ },
  { name: "zero lifetime", mutate: (c) => { c.peers[0].sas[0].lifetime = { seconds: 0 }; }, path: "peers[0].sas[0].lifetime.seconds", message: /at least 1/ },
  { name: "esn not a boolean", mutate: (c) => { c.peers[0].sas[0].esn = "on"; }, path: "peers[0].sas[0].esn", message: /must be a boolean/ },
  { name: "same key both directions", mutate: (c) => { c.peers[0].sas[0].key_out = c.peers[0].sas[0].key_in; }, path: "peers[0].sas[0].key_out", message: /same key as peers\[0\]\.sas\[0\]\.key_in/ },
  { name: "same HMAC key both directions", mutate: (c) => { c.peers[1].sas[0].auth_key_out = c.peers[1].sas[0].auth_key_in; }, path: "peers[1].sas[0].auth_key_out", message: /same key as peers\[1\]\.sas\[0\]\.auth_key_in/ },
  { name: "one key in two SAs", mutate: (c) => { c.peers[0].sas.push({ ...c.peers[0].sas[0], spi_in: 0x1101, spi_out: 0x2101, key_in: c.peers[0].sas[0].key_out, key_out: hexKey(36) }); }, path: "peers[0].sas[1].key_in", message: /same key as peers\[0\]\.sas\[0\]\.key_out/ },
  { name: "YAML syntax error on a key line", mutate: (c) => toYaml(c).replace(/key_out: "?([0-9a-f]{72})"?/, 'key_out: "$1\n  bad: [unclosed'), path: "", message: /not valid YAML\/JSON/ },
];

/** Load `text` (and key files) in a fresh directory; the ConfigError or undefined. */
function tryLoad(c: BadCase): { err: ConfigError | undefined; keys: string[] } {
  const doc = baseConfig();
  const dir = tempDir();
  const fileKeys: string[] = [];
  try {
    const out = c.mutate(doc, (name, text) => { fileKeys.push(text.replace(/^#.*$/gm, "")); dir.write(name, text); });
    const text = typeof out === "string" ? out : toYaml(doc);
    try {
      parseConfig(text, { baseDir: dir.path, source: "bad.yaml", uid: 1000, env: {} });
      return { err: undefined, keys: [] };
    } catch (e) {
      if (e instanceof ConfigError) return { err: e, keys: keysOf(doc, fileKeys) };
      throw e;
    }
  } finally {
    dir.remove();
  }
}

test("at least 20 distinct bad configurations are covered", () => {
  assert.ok(cases.length >= 20, `${cases.length} cases`);
  assert.equal(new Set(cases.map((c) => c.name)).size, cases.length);
});

test("the base configuration is valid (so each case fails for its own reason)", () => {
  const r = parseConfig(toYaml(baseConfig()), { baseDir: "/", uid: 1000, env: {} });
  assert.equal(r.config.peers.length, 2);
});

for (const c of cases) {
  test(`refused: ${c.name} → ${c.path || "(file)"}`, () => {
    const { err, keys } = tryLoad(c);
    assert.ok(err, "expected a ConfigError");
    const hit = err.issues.find((i) => i.path === c.path);
    assert.ok(hit, `no issue at "${c.path}"; got:\n${err.message}`);
    assert.match(hit.message, c.message);
    assert.ok(err.message.includes(c.path ? `${c.path}: ${hit.message}` : hit.message), "formatted message names the field");
    assert.deepEqual(findKeyLeaks(err.message, keys), [], `key material in:\n${err.message}`);
  });
}

test("issues carry the line of the field in the YAML file", () => {
  const doc = baseConfig();
  doc.peers[0].sas[0].key_out = hexKey(20);
  const text = toYaml(doc);
  const want = text.split("\n").findIndex((l) => l.includes("key_out:")) + 1;
  assert.throws(() => parseConfig(text, { baseDir: "/", source: "x.yaml", uid: 1000, env: {} }), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.issues[0].line, want);
    assert.ok(e.message.startsWith(`x.yaml:${want}: peers[0].sas[0].key_out: `));
    return true;
  });
});

test("all schema problems in a file are reported together", () => {
  const doc = baseConfig();
  doc.node.wan[0].port = 70000;
  doc.peers[0].mode = "bogus";
  doc.peers[1].sas[0].spi_in = 1;
  assert.throws(() => parseConfig(toYaml(doc), { baseDir: "/", uid: 1000, env: {} }), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.deepEqual(e.issues.map((i) => i.path), ["node.wan[0].port", "peers[0].mode", "peers[1].sas[0].spi_in"]);
    return true;
  });
});
