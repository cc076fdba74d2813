// wesp against a live strongSwan (issue 3, item 7). Two charons negotiate IKEv2 with a
// PSK; charon L is then killed without a word (SIGKILL: no IKE DELETE, so charon R
// keeps its CHILD_SA) and wesp takes its place with the SPIs and keys from L's log.
// Ping and TCP must work both ways between the sites; tshark, given the table from
// `wesp keys --wireshark`, must find every ICV good (scapy for ChaCha20-Poly1305,
// which Wireshark 4.0 cannot decrypt); and a replayed or forged packet sent by the
// harness from wesp's address must be dropped by strongSwan, its log saying why.
//
//   siteL ──s── gl  ceL (charon L → wesp)  wl ═══ 10.99.0.0/24 ═══ wr  ceR (charon R)  gr ──s── siteR
//   192.168.1.2   .1                       .1                      .2                 .1   192.168.2.2
//
// No traffic crosses before the switch: wesp starts its sequence numbers at 1, and
// R's replay window would reject them had charon L already used them.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { tcpEcho, waitFor, type Netns } from "../helpers/netns.ts";
import { checkEspTable, startCapture, tsharkSupports } from "../helpers/tshark.ts";
import { espParsed, parseChildSas, SUITES, toEspSas } from "./strongswan.ts";
import { charons, labSkip, linkExists, NET_L, NET_R, PINGS, replayAndForge, SITE_L, SITE_R, useTopo, WAN_L, WAN_R } from "./lab_setup.ts";
import { wesp, wespConfig, wespUp, writeWespConfig } from "./wesp-peer.ts";

const UP_TS = fileURLToPath(new URL("../../host/cli/up.ts", import.meta.url));
const skip = labSkip("interop wesp against strongSwan", [
  { name: "wesp up (host/cli/up.ts)", present: () => existsSync(UP_TS), install: "a build with host/cli/up.ts" },
]);

const TCP_BYTES = 256 << 10;
const TUN = "wesp0";

/** UDP datagrams the namespace's kernel dropped because a socket's buffer was full (/proc/net/snmp). */
async function udpRcvbufErrors(ns: Netns): Promise<number> {
  const lines = (await ns.run(["cat", "/proc/net/snmp"])).split("\n").filter((l) => l.startsWith("Udp:"));
  const [names, values] = lines.map((l) => l.split(/\s+/));
  return Number(values[names.indexOf("RcvbufErrors")]);
}

describe("wesp in place of a charon, against strongSwan over kernel-libipsec", { skip }, () => {
  const getTopo = useTopo();

  for (const suite of SUITES) {
    test(`${suite}: ping + TCP both ways, every ICV good, replay and forgery dropped by strongSwan`, async () => {
      const topo = getTopo();
      const { lab, ceL, siteL, siteR } = topo;
      const [L, R] = charons(topo, suite);
      let w: ReturnType<typeof wespUp> | undefined;
      try {
        await L.start();
        await R.start();
        await L.initiate(suite);
        const [child] = parseChildSas(L.log());
        const [peer] = parseChildSas(R.log());
        assert.ok(child && peer, "both logs have the CHILD_SA");
        assert.equal(child.outbound.spi, peer.inbound.spi);

        // charon L goes away without telling R; its TUN and routes go with it
        await L.stop(true);
        assert.equal(await linkExists(ceL, "ipsec0"), false, "charon L's TUN is gone");

        const cfg = writeWespConfig(join(lab.dir, `wesp-${suite}.json`), wespConfig(child, suite, {
          name: "ceL", wanAddress: WAN_L, peerAddress: WAN_R, localPrefixes: [NET_L], peerPrefixes: [NET_R],
          tunName: TUN, controlSocket: join(lab.dir, `wesp-${suite}.sock`),
        }));
        const checked = await wesp("check", cfg);
        assert.equal(checked.code, 0, `wesp check: ${checked.stderr}${checked.stdout}`);

        const cap = await startCapture(ceL, "wl", join(lab.dir, `wesp-${suite}.pcap`), ["udp", "port", "4500"]);
        w = wespUp(ceL, cfg);
        await waitFor(async () => !w!.running || (await linkExists(ceL, TUN)), `wesp up to create ${TUN}`, 30_000);
        assert.ok(w.running, `wesp up exited ${w.exitCode}: ${w.stderr}`);
        // wesp may or may not route its peers' prefixes itself; make sure they are
        await ceL.ip("link", "set", TUN, "up");
        await ceL.ip("route", "replace", NET_R, "dev", TUN);

        const there = await siteL.ping(SITE_R, PINGS);
        const back = await siteR.ping(SITE_L, PINGS);
        const tcpLR = await tcpEcho(siteR, SITE_R, siteL, TCP_BYTES);
        const tcpRL = await tcpEcho(siteL, SITE_L, siteR, TCP_BYTES);
        const pcap = await cap.stop();
        assert.equal(there.received, PINGS, "siteL → siteR: wesp → strongSwan");
        assert.equal(back.received, PINGS, "siteR → siteL: strongSwan → wesp");
        const whole = { sent: TCP_BYTES, echoed: TCP_BYTES, equal: true };
        assert.deepEqual(tcpLR, whole, "TCP opened from siteL, bytes intact both ways");
        assert.deepEqual(tcpRL, whole, "TCP opened from siteR, bytes intact both ways");

        // what crossed the wire, checked with the table wesp itself writes
        const table = await wesp("keys", "--wireshark", cfg);
        assert.equal(table.code, 0, `wesp keys: ${table.stderr}`);
        const sas = toEspSas(child);
        const frames = await checkEspTable(pcap, table.stdout, sas.filter((s) => !tsharkSupports(s)));
        const fromWesp = frames.filter((f) => f.spi === child.outbound.spi);
        const toWesp = frames.filter((f) => f.spi === child.inbound.spi);
        assert.equal(fromWesp.length + toWesp.length, frames.length, "only the negotiated SPIs on the wire");
        assert.ok(fromWesp.length >= PINGS * 2 && toWesp.length >= PINGS * 2, "both directions captured");
        for (const f of frames) {
          assert.equal(f.icv, "good", `frame ${f.frame} SPI ${f.spi.toString(16)} seq ${f.seq}: ICV ${f.icv}`);
          assert.equal(f.udp, true);
          assert.equal(f.nextHeader, 4, "tunnel mode, inner IPv4");
        }
        for (const f of fromWesp) {
          assert.deepEqual([f.outerSrc, f.outerDst, f.sport, f.dport], [WAN_L, WAN_R, 4500, 4500]);
          assert.deepEqual([f.innerSrc, f.innerDst], [SITE_L, SITE_R], "inner: siteL → siteR");
        }
        // RFC 4303 §3.3.3: a fresh SA's sender counts from 1, one per packet. Judged by
        // what strongSwan received: a capture on a loaded machine may miss packets.
        // Seen at R and in the capture together: R's UDP socket may overflow under a
        // TCP burst (counted as RcvbufErrors in its namespace), tcpdump may drop too.
        const received = espParsed(R.log(), child.outbound.spi);
        const seen = [...new Set([...received, ...fromWesp.map((f) => f.seq)])].sort((a, b) => a - b);
        const rcvbuf = await udpRcvbufErrors(topo.ceR);
        assert.deepEqual(seen, seen.map((_, i) => i + 1), `wesp's sequence numbers (R lost ${rcvbuf} to a full socket buffer, capture ${JSON.stringify(cap.stats)})`);
        assert.deepEqual(received, [...received].sort((a, b) => a - b), "in order at R");
        assert.deepEqual(fromWesp.map((f) => f.seq), [...fromWesp.map((f) => f.seq)].sort((a, b) => a - b), "captured in order");

        // the harness replays wesp's last packet and forges a new one from wesp's address
        const atR = new Set(received);
        const last = fromWesp.filter((f) => atR.has(f.seq)).pop()!; // known to have reached R
        const forgedSeq = last.seq + 1000;
        const drops = await replayAndForge(ceL, R, last.esp!, forgedSeq);
        assert.deepEqual(drops, [
          { reason: "replay", spi: child.outbound.spi, seq: last.seq },
          { reason: "icv", spi: child.outbound.spi, seq: forgedSeq },
        ]);
        assert.equal((await siteL.ping(SITE_R, 1)).received, 1, "the SA survives the drops");

        await w.stop("SIGTERM", 10_000);
        assert.equal(w.exitCode, 0, `wesp up exit status: ${w.stderr}`);
        assert.equal(await linkExists(ceL, TUN), false, "wesp released its TUN");
      } catch (err) {
        console.error(`--- wesp stderr ---\n${w?.stderr ?? ""}`);
        console.error(`--- charon R log tail ---\n${R.log().split("\n").slice(-40).join("\n")}`);
        throw err;
      } finally {
        await w?.stop("SIGTERM", 5000);
        await L.stop(true);
        await R.stop();
      }
    });
  }
});
