// Issue 7: the CE document's virtual links (draft-ietf-l3vpn-ce-based-02 §5),
// IP-in-IP and GRE protected by ESP in transport mode, with SAs from IKEv2:
//
//   hostA ─lan─ ceA ══ wan (capture) ══ ceB ─lan─ hostB      (forwarder-util.ts's lab)
//
// For transport-gre (raw ESP) and transport-ipip (ESP in UDP), both over IPv4,
// `wesp up` alone brings the peer up: USE_TRANSPORT_MODE (RFC 7296 §1.3.1) is
// negotiated, both CEs' status lists the CHILD_SA in transport mode, ping (both
// inner families) and TCP pass both ways through the link; the CHILD_SA is
// rekeyed (child_seconds 10: every ~7 s) and stays in transport mode, traffic
// passes on the new pair. Once both CEs have stopped, their key logs
// (WESP_ESP_KEYLOG, host/ike/keylog.ts) hold mirrored SPIs and keys for the first
// CHILD_SA and at least one rekeyed one, and every ESP frame captured on the WAN
// decrypts (tshark) with those keys to next header GRE 47, or IPIP 4 / IPv6 41,
// carrying a packet between the two hosts; frames of at least two CHILD_SAs
// (before and after the rekey) are among them.
import { describe, it } from "node:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";
import { Lab, tcpEcho } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { checkEsp, startCapture, type EspSa } from "../helpers/tshark.ts";
import { assertNoNamespacesLeft } from "./io-util.ts";
import { ADDR, buildSites, status, wesp, type Sites } from "./forwarder-util.ts";
import { ikeNode, ikeOf, ikeUp, writeConfig } from "./ike-util.ts";
import { upCe } from "./lifecycle-util.ts";
import type { KeyLogLine } from "../../host/ike/keylog.ts";

const PSK = "wesp-up-ike-transport-mode-key";
const NETS = { a: ["10.1.0.0/24", "fd00:1::/64"], b: ["10.2.0.0/24", "fd00:2::/64"] };
const REKEYING = { lifetime: { child_seconds: 10, rekey_margin: 3, rekey_jitter: 0 }, dpd: 0 };

/** A key log line as the two SA directions of the capture (AES-GCM-16, the default ESP proposal). */
function espSas(k: KeyLogLine): EspSa[] {
  const b = (h: string) => Uint8Array.from(Buffer.from(h, "hex"));
  return [
    { spi: k.spiIn, enc: "aes-gcm-16", encKey: b(k.keyIn), auth: "none" },
    { spi: k.spiOut, enc: "aes-gcm-16", encKey: b(k.keyOut), auth: "none" },
  ];
}

async function run(s: Sites, mode: "transport-gre" | "transport-ipip", encap: "udp" | "raw"): Promise<void> {
  const dir = s.lab.dir;
  const peer = (name: string, address: string, prefixes: string[], initiate: boolean) => ({ name, address, prefixes, initiate, encap, psk: PSK, mode, ike: REKEYING });
  const cfgA = writeConfig(dir, `${mode}-a.json`, ikeNode(dir, "ceA", ADDR.ceAwan.v4, NETS.a, [peer("ceB", ADDR.ceBwan.v4, NETS.b, true)]));
  const cfgB = writeConfig(dir, `${mode}-b.json`, ikeNode(dir, "ceB", ADDR.ceBwan.v4, NETS.b, [peer("ceA", ADDR.ceAwan.v4, NETS.a, false)]));
  const sockA = `${dir}/ceA.sock`, sockB = `${dir}/ceB.sock`;
  const keyLog = { a: join(dir, `keys-${mode}-a.jsonl`), b: join(dir, `keys-${mode}-b.jsonl`) };
  const cap = await startCapture(s.ceA, "wan", join(dir, `wan-${mode}.pcap`), encap === "udp" ? ["udp", "port", "4500"] : ["esp"]);
  const b = await upCe(s.ceB, cfgB, { WESP_ESP_KEYLOG: keyLog.b });
  const a = await upCe(s.ceA, cfgA, { WESP_ESP_KEYLOG: keyLog.a });
  try {
    // CHILD_SAs are rekeyed every ~7 s: what is compared across two status answers is read from the key logs at the end
    const stA = await ikeUp(sockA, "ceB");
    const stB = await ikeUp(sockB, "ceA");
    const [ia, ib] = [ikeOf(stA, "ceB"), ikeOf(stB, "ceA")];
    for (const c of [...ia.childSas, ...ib.childSas]) assert.equal(c.mode, "transport", "USE_TRANSPORT_MODE negotiated");
    assert.equal(stA.peers.find((p: any) => p.name === "ceB").mode, mode);
    const text = await wesp("status", "--control", sockA);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^ {2}child in 0x[0-9a-f]{8} {2}out 0x[0-9a-f]{8} {2}transport/m);

    const traffic = async (port: number) => {
      for (const fam of ["v4", "v6"] as const) {
        assert.deepEqual(await s.hostA.ping(ADDR.hostB[fam], 3), { sent: 3, received: 3 }, `ping ${fam} A→B`);
        assert.deepEqual(await s.hostB.ping(ADDR.hostA[fam], 3), { sent: 3, received: 3 }, `ping ${fam} B→A`);
      }
      const n = 256 << 10;
      assert.deepEqual(await tcpEcho(s.hostB, ADDR.hostB.v4, s.hostA, n, port), { sent: n, echoed: n, equal: true }, "TCP A→B→A");
      assert.deepEqual(await tcpEcho(s.hostA, ADDR.hostA.v6, s.hostB, n, port + 1), { sent: n, echoed: n, equal: true }, "TCP B→A→B (IPv6 inside)");
    };
    await traffic(5111);

    // a CHILD_SA rekey after that traffic (by either side: both have child_seconds 10), still in transport mode
    const before = ikeOf(await status(sockA), "ceB").childSas[0].spiIn;
    const ia2 = ikeOf(await ikeUp(sockA, "ceB", 30_000, (c) => c.spiIn === before), "ceB");
    assert.equal(ia2.childSas[0].mode, "transport", "the rekeyed CHILD_SA is in transport mode");
    await traffic(5121);
    assert.equal(ikeOf(await status(sockA), "ceB").failures, 0);
    const pcap = await cap.stop();
    assert.equal(cap.stats?.dropped, 0, "tcpdump dropped nothing");
    await a.stop("SIGTERM", 10_000);
    await b.stop("SIGTERM", 10_000);
    // both CEs gone: every CHILD_SA either side installed is in its key log
    const log = (f: string) => readFileSync(f, "utf8").trim().split("\n").map((l) => JSON.parse(l) as KeyLogLine);
    const [ka, kb] = [log(keyLog.a), log(keyLog.b)];
    const mirrored = ka.filter((x) => kb.some((y) => y.spiIn === x.spiOut && y.spiOut === x.spiIn && y.keyIn === x.keyOut && y.keyOut === x.keyIn));
    assert.equal(mirrored[0], ka[0], "the first CHILD_SA: SPIs and keys mirror");
    assert.ok(mirrored.length >= 2, `the first CHILD_SA and a rekeyed one on both sides (${mirrored.length} of ${ka.length})`);
    const frames = await checkEsp(pcap, [...ka, ...kb].flatMap(espSas).filter((x, i, all) => all.findIndex((y) => y.spi === x.spi) === i));
    const bad = frames.filter((f) => f.icv !== "good");
    assert.deepEqual(bad.map((f) => `${f.frame}: spi ${f.spi.toString(16)} ${f.icv}`), [], "every ESP frame authenticates and decrypts with wesp's keys");
    const want = mode === "transport-gre" ? [47] : [4, 41];
    const wrong = frames.filter((f) => !want.includes(f.nextHeader ?? -1));
    assert.deepEqual(wrong.map((f) => `${f.frame}: nh ${f.nextHeader}`), [], `every decrypted next header is ${want.join(" or ")}`);
    const hosts = [ADDR.hostA.v4, ADDR.hostB.v4, ADDR.hostA.v6, ADDR.hostB.v6];
    const stray = frames.filter((f) => !hosts.includes(f.innerSrc ?? "") || !hosts.includes(f.innerDst ?? ""));
    assert.deepEqual(stray.map((f) => `${f.frame}: ${f.innerSrc}>${f.innerDst}`), [], "every link packet carries one between the hosts");
    if (mode === "transport-ipip") assert.deepEqual([...new Set(frames.map((f) => f.nextHeader))].sort(), [4, 41], "both inner families");
    const spis = new Set(frames.map((f) => f.spi));
    assert.ok(mirrored.filter((k) => spis.has(k.spiOut) && spis.has(k.spiIn)).length >= 2, "frames on two CHILD_SAs (before and after the rekey), both directions");
    assert.doesNotMatch(a.stderr + b.stderr, /refused \(internal\)|declined transport mode/);
  } finally {
    await cap.stop();
    await a.stop("SIGTERM", 10_000);
    await b.stop("SIGTERM", 10_000);
  }
  assert.equal(a.exitCode, 0, a.stderr);
  assert.equal(b.exitCode, 0, b.stderr);
}

describe("wesp up: transport-gre and transport-ipip peers over IKEv2 (USE_TRANSPORT_MODE)", { skip: requireTools(["netns", "tcpdump", "tshark"], { why: "e2e IKEv2 transport mode" }) }, () => {
  it("transport-gre (raw ESP) and transport-ipip (ESP in UDP): up, ping and TCP both ways, a rekey, ESP carrying GRE / IPIP", async () => {
    const lab = new Lab();
    try {
      const s = await buildSites(lab);
      await run(s, "transport-gre", "raw");
      await run(s, "transport-ipip", "udp");
    } finally {
      await lab.teardown();
      assertNoNamespacesLeft(lab);
    }
  });
});
