// A peer's `ike` block (docs/config.md "peers[].ike"): bad blocks refused with
// an issue naming the exact field (a table, as in config-bad.test.ts), the PSK
// never in a message; valid blocks with their defaults; the PSK file follows
// the mode rule of key files.
import assert from "node:assert/strict";
import { chmodSync } from "node:fs";
import { test } from "node:test";
import { ConfigError, parseConfig } from "../../host/config/load.ts";
import { describeConfig } from "../../host/config/redact.ts";
import { loadSchema } from "../../host/config/schema_errors.ts";
import { baseConfig, tempDir, toYaml, type Doc } from "../helpers/config_fixture.ts";

const PSK = "correct-horse-battery-staple-0123";
const opts = { uid: 1000, env: {} };

/** The base config with peer b negotiated by IKE instead of static SAs. */
function ikeDoc(ike: Doc = {}): Doc {
  const c = baseConfig();
  delete c.peers[0].sas;
  c.peers[0].ike = { auth: { psk: PSK }, ...ike };
  return c;
}

interface BadCase {
  name: string;
  mutate: (c: Doc) => void;
  path: string;
  message: RegExp;
}

const cases: BadCase[] = [
  { name: "sas and ike both", mutate: (c) => { c.peers[0].sas = baseConfig().peers[0].sas; }, path: "peers[0].ike", message: /either sas \(static keys\) or ike \(negotiated\), not both/ },
  { name: "ike on a plain IP-in-IP peer", mutate: (c) => { c.node.wan[0].trusted = true; c.peers[0].mode = "ipip"; c.peers[0].nat_t = false; }, path: "peers[0].ike", message: /must be absent for mode "ipip"/ },
  { name: "two ike peers at one address (a GRE and an IP-in-IP link to one CE)", mutate: (c) => { c.peers[0].mode = "transport-ipip"; c.peers[1].address = c.peers[0].address; c.peers[1].ike = { auth: { psk: PSK } }; delete c.peers[1].sas; }, path: "peers[1].address", message: /same address as peers\[0\], and both have ike/ },
  { name: "no PSK", mutate: (c) => { c.peers[0].ike.auth = {}; }, path: "peers[0].ike.auth.psk", message: /is required \(or psk_file\)/ },
  { name: "no auth at all", mutate: (c) => { delete c.peers[0].ike.auth; }, path: "peers[0].ike.auth", message: /is required/ },
  { name: "psk and psk_file", mutate: (c) => { c.peers[0].ike.auth.psk_file = "b.psk"; }, path: "peers[0].ike.auth.psk_file", message: /either psk or psk_file, not both/ },
  { name: "missing psk_file", mutate: (c) => { c.peers[0].ike.auth = { psk_file: "nope.psk" }; }, path: "peers[0].ike.auth.psk_file", message: /cannot read PSK file .*nope\.psk \(ENOENT\)/ },
  { name: "PSK in 0x form that is not hex", mutate: (c) => { c.peers[0].ike.auth.psk = "0xzz11"; }, path: "peers[0].ike.auth.psk", message: /is not hex: character 3/ },
  { name: "unknown ESP keyword", mutate: (c) => { c.peers[0].ike.proposals = { esp: ["aes128gcm16", "aes999"] }; }, path: "peers[0].ike.proposals.esp[1]", message: /"aes999" .* not a known ESP algorithm keyword/ },
  { name: "IKE proposal without a DH group", mutate: (c) => { c.peers[0].ike.proposals = { ike: ["aes128gcm16-prfsha256"] }; }, path: "peers[0].ike.proposals.ike[0]", message: /names no Diffie-Hellman group/ },
  { name: "empty proposal list", mutate: (c) => { c.peers[0].ike.proposals = { esp: [] }; }, path: "peers[0].ike.proposals.esp", message: /at least 1 item/ },
  { name: "DN identity that is not a DN", mutate: (c) => { c.peers[0].ike.remote_id = { type: "dn", value: "CN=b, wesp" }; }, path: "peers[0].ike.remote_id.value", message: /is not a DN \("wesp" is not TYPE=value\)/ },
  { name: "unknown identity type", mutate: (c) => { c.peers[0].ike.local_id = { type: "keyid", value: "x" }; }, path: "peers[0].ike.local_id.type", message: /one of: "ipv4"/ },
  { name: "ipv4 identity that is not an address", mutate: (c) => { c.peers[0].ike.local_id = { type: "ipv4", value: "site-a.example" }; }, path: "peers[0].ike.local_id.value", message: /is not an IPv4 address/ },
  { name: "ipv6 identity given an IPv4 address", mutate: (c) => { c.peers[0].ike.remote_id = { type: "ipv6", value: "198.51.100.2" }; }, path: "peers[0].ike.remote_id.value", message: /is not an IPv6 address/ },
  { name: "rekey margin past the CHILD_SA lifetime", mutate: (c) => { c.peers[0].ike.lifetime = { child_seconds: 600, rekey_margin: 540, rekey_jitter: 180 }; }, path: "peers[0].ike.lifetime.rekey_margin", message: /\(720 s\) must be less than child_seconds \(600 s\)/ },
  { name: "CHILD_SA lifetime under ten seconds", mutate: (c) => { c.peers[0].ike.lifetime = { child_seconds: 9, rekey_margin: 2, rekey_jitter: 0 }; }, path: "peers[0].ike.lifetime.child_seconds", message: /at least 10/ },
  { name: "retry.min above retry.max", mutate: (c) => { c.peers[0].ike.retry = { min: 120, max: 60 }; }, path: "peers[0].ike.retry.min", message: /\(120 s\) is more than retry\.max \(60 s\)/ },
  { name: "alarm_after 0", mutate: (c) => { c.peers[0].ike.retry = { alarm_after: 0 }; }, path: "peers[0].ike.retry.alarm_after", message: /at least 1/ },
  { name: "misspelt ike field", mutate: (c) => { c.peers[0].ike.initiator = true; }, path: "peers[0].ike.initiator", message: /unknown field \(did you mean "initiate"\?\)/ },
  { name: "ike_port 0", mutate: (c) => { c.node.ike_port = 0; }, path: "node.ike_port", message: /at least 1/ },
  { name: "ike_port the WAN port's NAT-T port", mutate: (c) => { c.node.ike_port = c.node.wan[0].port ?? 4500; }, path: "node.wan[0].port", message: /is node\.ike_port \(\d+\) on an address IKE uses/ },
  { name: "dpd negative", mutate: (c) => { c.peers[0].ike.dpd = -1; }, path: "peers[0].ike.dpd", message: /at least 0/ },
];

for (const c of cases) {
  test(`refused: ${c.name} → ${c.path}`, () => {
    const doc = ikeDoc();
    c.mutate(doc);
    const dir = tempDir();
    try {
      assert.throws(() => parseConfig(toYaml(doc), { baseDir: dir.path, source: "bad.yaml", ...opts }), (e: unknown) => {
        assert.ok(e instanceof ConfigError, String(e));
        const hit = e.issues.find((i) => i.path === c.path);
        assert.ok(hit, `no issue at "${c.path}"; got:\n${e.message}`);
        assert.match(hit.message, c.message);
        assert.ok(!e.message.includes(PSK), "the PSK is never shown");
        return true;
      });
    } finally {
      dir.remove();
    }
  });
}

test("a valid ike block: defaults filled, identities from the outer addresses, the PSK as KeyBytes, sas empty", () => {
  const { config, warnings } = parseConfig(toYaml(ikeDoc()), { baseDir: "/", ...opts });
  assert.deepEqual(warnings, []);
  const b = config.peers[0];
  assert.deepEqual(b.sas, []);
  const k = b.ike!;
  assert.equal(Buffer.from(k.psk).toString(), PSK);
  assert.equal(String(k.psk), `<key ${PSK.length} bytes>`, "redacted when printed");
  assert.deepEqual([k.localId, k.remoteId], [{ type: "ipv4", value: "192.0.2.1" }, { type: "ipv4", value: "198.51.100.2" }]);
  const d = (loadSchema() as { $defs: Record<string, Doc> }).$defs.ike.properties;
  assert.deepEqual(k.proposals, { ike: d.proposals.properties.ike.default, esp: d.proposals.properties.esp.default });
  assert.deepEqual(k.lifetime, {
    ikeSeconds: d.lifetime.properties.ike_seconds.default, childSeconds: d.lifetime.properties.child_seconds.default,
    rekeyMargin: d.lifetime.properties.rekey_margin.default, rekeyJitter: d.lifetime.properties.rekey_jitter.default,
  });
  assert.deepEqual([k.dpd, k.initiate], [d.dpd.default, d.initiate.default]);
  assert.deepEqual(k.retry, { min: d.retry.properties.min.default, max: d.retry.properties.max.default, alarmAfter: d.retry.properties.alarm_after.default });
  const summary = describeConfig(config);
  assert.match(summary, /\n {2}ike: psk 33 bytes, ipv4 192\.0\.2\.1 -> ipv4 198\.51\.100\.2, ike \[aes128gcm16-prfsha256-ecp256\], esp \[aes128gcm16\], lifetimes ike 14400s child 3600s, dpd 30s, retry 5-600s alarm after 8, initiates\n/);
  assert.ok(!summary.includes(PSK));
});

test("every field given: identities of each type, several proposals, byte and packet lifetimes, a hex PSK", () => {
  const doc = ikeDoc({
    auth: { psk: "0x" + "ab".repeat(32) },
    local_id: { type: "fqdn", value: "site-a.example" },
    remote_id: { type: "rfc822", value: "ce@b.example" },
    proposals: { ike: ["aes256gcm16-prfsha384-ecp256", "aes128-sha256-modp2048"], esp: ["chacha20poly1305-esn", "aes128-sha256"] },
    lifetime: { ike_seconds: 7200, child_seconds: 1200, child_bytes: 1e9, child_packets: 1e6, rekey_margin: 60, rekey_jitter: 30 },
    dpd: 0, retry: { min: 2, max: 64, alarm_after: 3 }, initiate: false,
  });
  doc.peers.push({ name: "v6", address: "2001:db8::9", wan: "v6", prefixes: ["10.9.0.0/16"], ike: { auth: { psk: PSK + "-v6" }, remote_id: { type: "ipv6", value: "2001:DB8::9" } } });
  doc.node.wan.push({ name: "v6", address: "2001:db8::1" });
  doc.peers.forEach((p: Doc) => { p.wan ??= "inet"; });
  const { config } = parseConfig(toYaml(doc), { baseDir: "/", ...opts });
  const k = config.peers[0].ike!;
  assert.deepEqual([...k.psk], Array(32).fill(0xab));
  assert.deepEqual([k.localId.type, k.remoteId.type], ["fqdn", "rfc822"]);
  assert.deepEqual(k.lifetime, { ikeSeconds: 7200, childSeconds: 1200, childBytes: 1e9, childPackets: 1e6, rekeyMargin: 60, rekeyJitter: 30 });
  assert.deepEqual([k.dpd, k.retry, k.initiate], [0, { min: 2, max: 64, alarmAfter: 3 }, false]);
  assert.deepEqual(config.peers[2].ike!.remoteId, { type: "ipv6", value: "2001:db8::9" }, "canonical form");
  assert.deepEqual(config.peers[2].ike!.localId, { type: "ipv6", value: "2001:db8::1" }, "default: the WAN port's address");
});

test("a short PSK loads with a warning (RFC 7296 §2.15)", () => {
  const { warnings } = parseConfig(toYaml(ikeDoc({ auth: { psk: "secret" } })), { baseDir: "/", ...opts });
  assert.deepEqual(warnings.map((w) => w.path), ["peers[0].ike.auth"]);
  assert.match(warnings[0].message, /6 bytes.*offline/);
});

test("psk_file: read relative to the config, trailing newline dropped; the mode rule of key files", () => {
  const dir = tempDir();
  try {
    const p = dir.write("b.psk", `${PSK}\n`);
    const doc = ikeDoc({ auth: { psk_file: "b.psk" } });
    const ok = parseConfig(toYaml(doc), { baseDir: dir.path, ...opts });
    assert.equal(Buffer.from(ok.config.peers[0].ike!.psk).toString(), PSK);
    assert.deepEqual(ok.warnings, []);
    chmodSync(p, 0o640);
    const readable = parseConfig(toYaml(doc), { baseDir: dir.path, ...opts });
    assert.match(readable.warnings.find((w) => w.path === "peers[0].ike.auth.psk_file")!.message, /PSK file .*b\.psk is readable by group or others \(mode 0640\)/);
    chmodSync(p, 0o620);
    assert.throws(() => parseConfig(toYaml(doc), { baseDir: dir.path, ...opts }), (e: unknown) =>
      e instanceof ConfigError && e.issues.some((i) => i.path === "peers[0].ike.auth.psk_file" && /writable by group or others \(mode 0620\)/.test(i.message)) && !e.message.includes(PSK));
  } finally {
    dir.remove();
  }
});
