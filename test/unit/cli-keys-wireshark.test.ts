// `wesp keys --wireshark`: the esp_sa table must let the installed tshark
// decrypt and authenticate ESP that scapy (an independent implementation)
// made with the same SAs, for every suite Wireshark supports, both
// directions, IPv4 and IPv6 outer, raw and UDP-encapsulated.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { requireTools } from "../helpers/require.ts";
import { findKeyLeaks, hexKey, keysOf, tempDir, toYaml, wesp, type Doc } from "../helpers/config_fixture.ts";

const PYTHON = "/usr/bin/python3";
const skipWireshark = requireTools(["tshark", "scapy"], { why: "unit tshark decrypts scapy's ESP" });

// Reads [{family, src, dst, spi, crypt, key, auth, auth_key, udp, payload, esn}] as JSON on
// stdin and writes one Ethernet frame per entry (ESP tunnel mode around ICMP echo) to argv[1].
const SCAPY = `
import json, sys
from scapy.all import Ether, IP, IPv6, ICMP, UDP, Raw, wrpcap
from scapy.layers.ipsec import SecurityAssociation, ESP
frames = []
for p in json.load(sys.stdin):
    outer = IP(src=p["src"], dst=p["dst"]) if p["family"] == 4 else IPv6(src=p["src"], dst=p["dst"])
    sa = SecurityAssociation(ESP, spi=p["spi"], crypt_algo=p["crypt"], crypt_key=bytes.fromhex(p["key"]),
        auth_algo=p["auth"], auth_key=bytes.fromhex(p["auth_key"]) if p["auth_key"] else None,
        tunnel_header=outer, nat_t_header=UDP(sport=4500, dport=4500) if p["udp"] else None, esn_en=p["esn"])
    inner = IP(src="10.1.0.1", dst="10.2.0.1") / ICMP() / Raw(bytes.fromhex(p["payload"]))
    esp = sa.encrypt(inner, seq_num=7)
    if UDP in esp:
        # scapy 2.5 leaves the NAT-T UDP length at 8 for IPv4 outer headers: recompute it.
        esp[UDP].len = None
        esp[UDP].chksum = None
        esp = esp.__class__(bytes(esp))
    frames.append(Ether() / esp)
wrpcap(sys.argv[1], frames)
`;

const SCAPY_SUITE: Record<string, { crypt: string; auth: string | null; keyBytes: number; authBytes: number }> = {
  "aes-128-gcm": { crypt: "AES-GCM", auth: null, keyBytes: 20, authBytes: 0 },
  "aes-192-gcm": { crypt: "AES-GCM", auth: null, keyBytes: 28, authBytes: 0 },
  "aes-256-gcm": { crypt: "AES-GCM", auth: null, keyBytes: 36, authBytes: 0 },
  "chacha20-poly1305": { crypt: "CHACHA20-POLY1305", auth: null, keyBytes: 36, authBytes: 0 },
  "aes-128-cbc-hmac-sha256": { crypt: "AES-CBC", auth: "SHA2-256-128", keyBytes: 16, authBytes: 32 },
  "aes-256-cbc-hmac-sha256": { crypt: "AES-CBC", auth: "SHA2-256-128", keyBytes: 32, authBytes: 32 },
  "aes-128-cbc": { crypt: "AES-CBC", auth: null, keyBytes: 16, authBytes: 0 },
};

/** One peer per suite; v4 peers alternate raw and UDP ports, aes-256-gcm also over IPv6. */
function suiteConfig(): Doc {
  const peers: Doc[] = [];
  let n = 0;
  const add = (suite: string, v6: boolean, wan: string, extra: Doc = {}) => {
    n++;
    const s = SCAPY_SUITE[suite];
    const sa: Doc = { spi_in: 0x1000 + n, spi_out: 0x2000 + n, suite, key_in: hexKey(s.keyBytes), key_out: hexKey(s.keyBytes), ...extra };
    if (s.authBytes) { sa.auth_key_in = hexKey(s.authBytes); sa.auth_key_out = hexKey(s.authBytes); }
    peers.push({ name: `p${n}`, address: v6 ? `2001:db8::${n + 1}` : `198.51.100.${n}`, wan, prefixes: [v6 ? `fd00:${n}::/48` : `10.${n + 1}.0.0/16`], sas: [sa] });
  };
  add("aes-128-gcm", false, "udp");
  add("aes-192-gcm", false, "raw");
  add("aes-256-gcm", false, "udp");
  add("aes-256-gcm", true, "v6");
  add("aes-128-cbc-hmac-sha256", false, "raw");
  add("aes-256-cbc-hmac-sha256", false, "udp");
  add("aes-128-cbc", false, "raw", { allow_no_integrity: true, replay_window: 0 });
  add("chacha20-poly1305", false, "udp");
  add("aes-128-gcm", false, "udp", { esn: true });
  return {
    node: {
      name: "a",
      wan: [
        { name: "udp", address: "192.0.2.1" },
        { name: "raw", address: "192.0.2.2", encap: "raw" },
        { name: "v6", address: "2001:db8::1" },
      ],
      local_prefixes: ["10.1.0.0/16"],
    },
    peers,
  };
}

interface Packet { spi: number; suite: string; dir: "in" | "out"; payload: string; esn: boolean }

test("tshark decrypts and authenticates scapy's ESP with the table from wesp keys --wireshark", { skip: skipWireshark }, () => {
  const dir = tempDir();
  try {
    const doc = suiteConfig();
    const cfg = dir.write("a.yaml", toYaml(doc));
    mkdirSync(join(dir.path, "wireshark"));
    const table = join(dir.path, "wireshark/esp_sa");
    const r = wesp(["keys", "--wireshark", cfg, "-o", table]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /wrote 16 ESP SA entries for node a/);
    assert.match(r.stderr, /note: peers\[7\] p8 sas\[0\] out SPI 0x00002008: chacha20-poly1305 is not supported/);
    assert.match(r.stderr, /note: peers\[8\] p9 sas\[0\] in SPI 0x00001009: esn is on/);
    assert.equal(statSync(table).mode & 0o777, 0o600);

    // Every SA direction: we send with spi_out/key_out, the peer with spi_in/key_in.
    const pkts: Packet[] = [];
    const spec = doc.peers.flatMap((p: Doc, i: number) => {
      const sa = p.sas[0];
      const s = SCAPY_SUITE[sa.suite];
      const wan = doc.node.wan.find((w: Doc) => w.name === p.wan);
      return (["out", "in"] as const).map((dir) => {
        const payload = Buffer.from(`wesp ${p.name} ${dir} ${i}`).toString("hex");
        const spi = dir === "out" ? sa.spi_out : sa.spi_in;
        pkts.push({ spi, suite: sa.suite, dir, payload, esn: sa.esn === true });
        return {
          family: p.address.includes(":") ? 6 : 4,
          src: dir === "out" ? wan.address : p.address,
          dst: dir === "out" ? p.address : wan.address,
          spi, crypt: s.crypt, auth: s.auth,
          key: dir === "out" ? sa.key_out : sa.key_in,
          auth_key: s.authBytes ? (dir === "out" ? sa.auth_key_out : sa.auth_key_in) : "",
          udp: wan.encap !== "raw", payload, esn: sa.esn === true,
        };
      });
    });
    const pcap = join(dir.path, "esp.pcap");
    const py = spawnSync(PYTHON, ["-c", SCAPY, pcap], { input: JSON.stringify(spec), encoding: "utf8" });
    assert.equal(py.status, 0, py.stderr);

    const ts = spawnSync("tshark", [
      "-r", pcap, "-o", "esp.enable_encryption_decode:TRUE", "-o", "esp.enable_authentication_check:TRUE",
      "-T", "fields", "-E", "separator=|", "-e", "esp.spi", "-e", "esp.icv_good", "-e", "esp.icv_bad", "-e", "data.data",
    ], { encoding: "utf8", env: { ...process.env, XDG_CONFIG_HOME: dir.path, HOME: dir.path } });
    assert.equal(ts.status, 0, ts.stderr);
    assert.doesNotMatch(ts.stderr, /Error loading table/);
    const rows = ts.stdout.trim().split("\n").map((l) => l.split("|"));
    assert.equal(rows.length, pkts.length);

    const seen = new Set<string>();
    rows.forEach(([spi, good, bad, data], i) => {
      const p = pkts[i];
      const what = `${p.suite} ${p.dir} SPI 0x${p.spi.toString(16)}${p.esn ? " esn" : ""}`;
      assert.equal(Number(spi), p.spi, what);
      if (p.suite === "chacha20-poly1305") {
        // Wireshark 4.0 cannot decrypt it: nothing decoded, no ICV verdict. Fails (and needs
        // updating) the day Wireshark learns RFC 7634.
        assert.notEqual(data, p.payload, `${what}: unexpectedly decrypted`);
        assert.equal(good, "", what);
        return;
      }
      assert.equal(data, p.payload, `${what}: payload not decrypted`);
      if (p.esn) {
        assert.equal(bad, "1", `${what}: Wireshark ignores ESN, so the ICV must fail`);
      } else if (p.suite === "aes-128-cbc") {
        assert.equal(good, "", `${what}: no ICV to check`);
      } else {
        assert.equal(good, "1", `${what}: ICV not good`);
        seen.add(p.suite);
      }
    });
    assert.deepEqual([...seen].sort(), ["aes-128-cbc-hmac-sha256", "aes-128-gcm", "aes-192-gcm", "aes-256-cbc-hmac-sha256", "aes-256-gcm"]);
  } finally {
    dir.remove();
  }
});

test("table format: 8 quoted fields per row, both directions, comments for what Wireshark cannot do", () => {
  const dir = tempDir();
  try {
    const doc = suiteConfig();
    const r = wesp(["keys", "--wireshark", dir.write("a.yaml", toYaml(doc))]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    const rows = lines.filter((l) => !l.startsWith("#"));
    assert.equal(rows.length, 16);
    for (const row of rows) assert.match(row, /^"IPv[46]","[^"]+","[^"]+","0x[0-9a-f]{8}","[^"]+","0x[0-9a-f]+","[^"]+","(0x[0-9a-f]+)?"$/);
    const p1 = doc.peers[0].sas[0];
    assert.ok(rows.includes(`"IPv4","192.0.2.1","198.51.100.1","0x00002001","AES-GCM with 16 octet ICV [RFC4106]","0x${p1.key_out}","NULL",""`));
    assert.ok(rows.includes(`"IPv4","198.51.100.1","192.0.2.1","0x00001001","AES-GCM with 16 octet ICV [RFC4106]","0x${p1.key_in}","NULL",""`));
    const p6 = doc.peers[5].sas[0];
    assert.ok(rows.includes(`"IPv4","192.0.2.1","198.51.100.6","0x00002006","AES-CBC [RFC3602]","0x${p6.key_out}","HMAC-SHA-256-128 [RFC4868]","0x${p6.auth_key_out}"`));
    const p4 = doc.peers[3].sas[0];
    assert.ok(rows.includes(`"IPv6","2001:db8::5","2001:db8::1","0x00001004","AES-GCM with 16 octet ICV [RFC4106]","0x${p4.key_in}","NULL",""`));
    const chacha = doc.peers[7].sas[0];
    assert.deepEqual(findKeyLeaks(r.stdout, [chacha.key_in, chacha.key_out]), [], "ChaCha keys are not written");
    assert.deepEqual(findKeyLeaks(r.stderr, keysOf(doc)), [], "notes carry no keys");

    const any = wesp(["keys", "--wireshark", "--any-address", dir.write("a.yaml", toYaml(doc))]);
    assert.ok(any.stdout.includes(`"IPv4","*","*","0x00002001",`));
  } finally {
    dir.remove();
  }
});

test("--any-address keeps exact addresses for an SPI used in both directions", () => {
  const dir = tempDir();
  try {
    const doc = suiteConfig();
    doc.peers[1].sas[0].spi_out = doc.peers[0].sas[0].spi_in; // 0x1001 both ways, different keys
    const r = wesp(["keys", "--wireshark", "--any-address", dir.write("a.yaml", toYaml(doc))]);
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout.split("\n").filter((l) => l.includes('"0x00001001"'));
    assert.equal(rows.length, 2);
    for (const row of rows) assert.doesNotMatch(row, /"\*"/);
  } finally {
    dir.remove();
  }
});

test("-o replaces an existing file and makes it private; bad usage and bad configs exit 2", () => {
  const dir = tempDir();
  try {
    const cfg = dir.write("a.yaml", toYaml(suiteConfig()));
    const out = join(dir.path, "esp_sa");
    writeFileSync(out, "old contents that are longer than nothing\n", { mode: 0o644 });
    assert.equal(wesp(["keys", "--wireshark", "-o", out, cfg]).code, 0);
    assert.equal(statSync(out).mode & 0o777, 0o600);

    assert.equal(wesp(["keys", cfg]).code, 2, "format required");
    const bad = suiteConfig();
    bad.peers[0].sas[0].key_in = hexKey(16);
    const r = wesp(["keys", "--wireshark", dir.write("bad.yaml", toYaml(bad))]);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, "", "no partial table");
    assert.match(r.stderr, /peers\[0\]\.sas\[0\]\.key_in: AES-128-GCM needs 20 bytes \(16 key \+ 4 salt\), got 16/);

    const unwritable = wesp(["keys", "--wireshark", "-o", join(dir.path, "no/such/dir/esp_sa"), cfg]);
    assert.equal(unwritable.code, 1, "cannot write: runtime failure");
    assert.match(unwritable.stderr, /ENOENT/);
  } finally {
    dir.remove();
  }
});
