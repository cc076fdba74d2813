// `wesp up` against charon for each ESP suite of issue 7, with the IKE proposal
// that goes with it, and every ESP frame on the WAN decrypted with the CHILD_SA
// keys wesp negotiated (its WESP_ESP_KEYLOG, host/ike/keylog.ts — not charon's):
//
//   siteL ── ceL (wesp up) wl ═══ capture ═══ wr ceR (charon) ── siteR     (lab_setup.ts, `wtk…` namespaces)
//
// Per suite, wesp initiating and responding in turn: the tunnel comes up, the key
// log holds the pair wesp lists in its status, ping and a TCP transfer pass both
// ways, and in the capture of the WAN link every ESP frame authenticates and
// decrypts (tshark; scapy for ChaCha20-Poly1305, which Wireshark 4.0 lacks) to an
// inner packet between the two sites.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { tcpEcho, waitFor } from "../helpers/netns.ts";
import { checkEsp, startCapture, type EspSa } from "../helpers/tshark.ts";
import { ikeNode, ikeOf, ikeUp, writeConfig } from "../e2e/ike-util.ts";
import { PSK, sameChild, startCharon } from "./ike-lab.ts";
import { labSkip, NET_L, NET_R, PINGS, SITE_L, SITE_R, useTopo, WAN_L, WAN_R } from "./lab_setup.ts";
import { wespUp } from "./wesp-peer.ts";
import type { KeyLogLine } from "../../host/ike/keylog.ts";

interface SuiteCase {
  name: string;
  ike: string;
  esp: string;
  wespInitiates: boolean;
}

const CASES: SuiteCase[] = [
  { name: "gcm128", ike: "aes128gcm16-prfsha256-ecp256", esp: "aes128gcm16", wespInitiates: true },
  { name: "gcm256", ike: "aes256gcm16-prfsha384-ecp256", esp: "aes256gcm16", wespInitiates: false },
  { name: "chacha", ike: "chacha20poly1305-prfsha256-curve25519", esp: "chacha20poly1305", wespInitiates: true },
  { name: "cbc128", ike: "aes128-sha256-ecp256", esp: "aes128-sha256", wespInitiates: false },
];

/** A key log line as the two SA directions of the capture (SPIs are unique here: no addresses needed). */
function espSas(k: KeyLogLine): EspSa[] {
  const enc: EspSa["enc"] = k.suite.includes("gcm") ? "aes-gcm-16" : k.suite === "chacha20-poly1305" ? "chacha20-poly1305" : "aes-cbc";
  const auth: EspSa["auth"] = k.authKeyIn ? "hmac-sha256-128" : "none";
  const b = (h?: string) => (h ? Uint8Array.from(Buffer.from(h, "hex")) : undefined);
  return [
    { spi: k.spiIn, enc, encKey: b(k.keyIn)!, auth, authKey: b(k.authKeyIn) },
    { spi: k.spiOut, enc, encKey: b(k.keyOut)!, auth, authKey: b(k.authKeyOut) },
  ];
}

describe("wesp up against charon, each ESP suite: every ESP frame decrypted with wesp's keys", { skip: labSkip("interop wesp up (IKE) ESP decryption") }, () => {
  const getTopo = useTopo("wtk");

  for (const c of CASES) {
    test(`${c.esp} (IKE ${c.ike}), wesp ${c.wespInitiates ? "initiates" : "responds"}: ping and TCP both ways, all ESP frames decrypt`, async (tc) => {
      const t = getTopo();
      const dir = t.lab.dir;
      const keyLog = join(dir, `keys-${c.name}.jsonl`);
      const charon = await startCharon(t.ceR, { name: c.name, ike: c.ike, esp: c.esp });
      const doc = ikeNode(dir, `wesp-${c.name}`, WAN_L, [NET_L], [{
        name: "charon", address: WAN_R, prefixes: [NET_R], initiate: true, encap: "udp", psk: PSK,
        ike: { dpd: 0, initiate: c.wespInitiates, proposals: { ike: [c.ike], esp: [c.esp] } },
      }]);
      const w = wespUp(t.ceL, writeConfig(dir, `wesp-${c.name}.json`, doc), { WESP_ESP_KEYLOG: keyLog });
      const cap = await startCapture(t.ceL, "wl", join(dir, `wan-${c.name}.pcap`), ["udp", "port", "4500"]);
      try {
        await waitFor(() => !w.running || /forwarding on/.test(w.stderr), "wesp up forwarding", 60_000);
        assert.ok(w.running, `wesp up exited: ${w.stderr}`);
        const sock = join(dir, `wesp-${c.name}.sock`);
        if (!c.wespInitiates) await charon.swanctl("--initiate", "--child", c.name, "--timeout", "15");
        const st = await ikeUp(sock, "charon");
        assert.equal(ikeOf(st, "charon").role, c.wespInitiates ? "initiator" : "responder");
        await sameChild(st, charon);

        // the key log: one line, the pair wesp lists, 0600; no key in wesp's log
        assert.ok(existsSync(keyLog), "WESP_ESP_KEYLOG written");
        assert.equal(statSync(keyLog).mode & 0o777, 0o600);
        const lines = readFileSync(keyLog, "utf8").trim().split("\n").map((l) => JSON.parse(l) as KeyLogLine);
        assert.equal(lines.length, 1, "one CHILD_SA");
        const k = lines[0];
        const child = ikeOf(st, "charon").childSas[0];
        assert.deepEqual([k.spiIn, k.spiOut], [child.spiIn, child.spiOut], "the key log's SPIs are the CHILD_SA's");
        for (const key of [k.keyIn, k.keyOut, k.authKeyIn, k.authKeyOut].filter((x): x is string => !!x)) {
          assert.ok(!w.stderr.includes(key), "a key in wesp's log");
        }

        assert.deepEqual(await t.siteL.ping(SITE_R, PINGS), { sent: PINGS, received: PINGS }, "siteL → siteR");
        assert.deepEqual(await t.siteR.ping(SITE_L, PINGS), { sent: PINGS, received: PINGS }, "siteR → siteL");
        const n = 32 << 10;
        assert.deepEqual(await tcpEcho(t.siteR, SITE_R, t.siteL, n, 5201), { sent: n, echoed: n, equal: true }, "TCP siteL → siteR");
        assert.deepEqual(await tcpEcho(t.siteL, SITE_L, t.siteR, n, 5202), { sent: n, echoed: n, equal: true }, "TCP siteR → siteL");

        const pcap = await cap.stop();
        assert.equal(cap.stats?.dropped, 0, "tcpdump dropped nothing");
        const frames = await checkEsp(pcap, espSas(k));
        const by = c.esp === "chacha20poly1305" ? "scapy" : "tshark";
        tc.diagnostic(`${frames.length} ESP frames, checked by ${by}`);
        // 2 × PINGS echoes each way and two TCP transfers: well over this many
        assert.ok(frames.length >= 8 * PINGS, `ESP frames captured: ${frames.length}`);
        const bad = frames.filter((f) => f.icv !== "good" || f.checkedBy !== by);
        assert.deepEqual(bad.map((f) => `${f.frame}: spi ${f.spi.toString(16)} ${f.icv} by ${f.checkedBy}`), [], "every ESP frame authenticates and decrypts");
        const sites = [`${SITE_L}>${SITE_R}`, `${SITE_R}>${SITE_L}`];
        const inner = frames.filter((f) => f.nextHeader !== 4 || !sites.includes(`${f.innerSrc}>${f.innerDst}`));
        assert.deepEqual(inner.map((f) => `${f.frame}: nh ${f.nextHeader} ${f.innerSrc}>${f.innerDst}`), [], "every inner packet is IPv4 between the sites");
        for (const spi of [k.spiIn, k.spiOut]) assert.ok(frames.some((f) => f.spi === spi), `frames on SPI ${spi.toString(16)}`);
        // the control: the same capture with every key's first byte flipped authenticates nothing
        const flip = (h?: string) => (h ? ((parseInt(h.slice(0, 2), 16) ^ 0xff).toString(16).padStart(2, "0") + h.slice(2)) : h);
        const wrong = { ...k, keyIn: flip(k.keyIn)!, keyOut: flip(k.keyOut)!, authKeyIn: flip(k.authKeyIn), authKeyOut: flip(k.authKeyOut) };
        assert.deepEqual((await checkEsp(pcap, espSas(wrong))).filter((f) => f.icv === "good"), [], "wrong keys: no frame authenticates");
      } finally {
        await cap.stop();
        await w.stop("SIGTERM", 10_000);
        await charon.stop();
      }
    });
  }
});
