// Issue 7 (NAT): two `wesp up` CEs bring up IKEv2 (PSK) with the initiator
// behind an nftables masquerade, and the test shows what NAT traversal did
// from evidence on the wire and in the NAT, not from the config:
//
//   hA ─lan─ ceA 10.0.0.2 ──wan── 10.0.0.1 nat 192.0.2.3 ──pub── 192.0.2.2 ceB ─lan─ hB
//            (initiator, private)      (masquerade, UDP to :20000-20999)  (responder)
//
// - NAT_DETECTION (RFC 7296 §2.23): both sides' status says natDetected;
// - a capture on the public side: IKE_SA_INIT on 500 and nothing else there;
//   IKE_AUTH on 4500 behind the non-ESP marker (RFC 3948 §2.2), from the
//   NAT's address and mapped port, not 10.0.0.2:4500;
// - ESP flows both ways in UDP (ping and a 1 MiB TCP echo, compared byte for byte);
// - ceB's data plane sends to the NAT's address and mapped port, learned from
//   authenticated packets (status `learned`), the same mapping conntrack holds;
// - NAT-keepalives (one 0xFF byte, RFC 3948 §2.3) leave ceA every `keepalive`
//   seconds while the tunnel is idle, and keep the mapping: with conntrack's UDP
//   timeouts cut to a few seconds in the NAT namespace (per-netns sysctls), the
//   entry and its mapped port outlive an idle period longer than that timeout.
import { describe, it } from "node:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";
import { Lab, tcpEcho, waitFor, type Netns, type LabProcess } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { assertNoNamespacesLeft } from "./io-util.ts";
import { status } from "./forwarder-util.ts";
import { ikeNode, ikeOf, ikeUp, writeConfig } from "./ike-util.ts";
import { upCe } from "./lifecycle-util.ts";
import { masqueradeRules, parseConntrack } from "../../host/demo/nat.ts";

const PSK = "wesp-ike-nat-e2e-shared-key";
const ID_A = { type: "fqdn", value: "ce-a.example" };
const KEEPALIVE = 2;
/** conntrack's UDP timeouts in the NAT namespace: shorter than the idle period, longer than KEEPALIVE. */
const CT_TIMEOUT = 5;
const IP = { hA: "10.1.0.2", ceAlan: "10.1.0.1", ceAwan: "10.0.0.2", natIn: "10.0.0.1", natOut: "192.0.2.3", ceBwan: "192.0.2.2", ceBlan: "10.2.0.1", hB: "10.2.0.2" };
const NFT = masqueradeRules("pub");

async function build(lab: Lab): Promise<Record<"hA" | "ceA" | "nat" | "ceB" | "hB", Netns>> {
  const [hA, ceA, nat, ceB, hB] = await Promise.all(["hA", "ceA", "nat", "ceB", "hB"].map((n) => lab.ns(n)));
  await lab.veth(hA, "lan", ceA, "lan");
  await lab.veth(ceA, "wan", nat, "wan");
  await lab.veth(nat, "pub", ceB, "wan");
  await lab.veth(ceB, "lan", hB, "lan");
  const plan: [Netns, string, string][] = [[hA, "lan", IP.hA], [ceA, "lan", IP.ceAlan], [ceA, "wan", IP.ceAwan], [nat, "wan", IP.natIn],
    [nat, "pub", IP.natOut], [ceB, "wan", IP.ceBwan], [ceB, "lan", IP.ceBlan], [hB, "lan", IP.hB]];
  for (const [ns, dev, a] of plan) await ns.addr(dev, `${a}/24`);
  for (const ns of [ceA, nat, ceB]) await ns.forwarding();
  await hA.route("default", IP.ceAlan);
  await hB.route("default", IP.ceBlan);
  // ceA's only way out is the NAT; ceB has no route to 10.0.0.0/24 at all
  await ceA.route("default", IP.natIn);
  await nat.run(["nft", "-f", "-"], { input: NFT });
  await nat.run(["sysctl", "-qw", `net.netfilter.nf_conntrack_udp_timeout=${CT_TIMEOUT}`, `net.netfilter.nf_conntrack_udp_timeout_stream=${CT_TIMEOUT}`]);
  return { hA, ceA, nat, ceB, hB };
}

/** `wire`: the frame's length on the wire (a GSO batch from the data plane is one frame here). */
interface Udp { t: number; wire: number; src: string; sport: number; dst: string; dport: number; data: Buffer }

/** The IPv4/UDP datagrams of a pcap file (Ethernet link type, as tcpdump writes for a veth). */
function readPcap(path: string): Udp[] {
  const b = readFileSync(path);
  const out: Udp[] = [];
  if (b.length < 24) return out;
  assert.equal(b.readUInt32LE(20), 1, "Ethernet captures");
  for (let o = 24; o + 16 <= b.length;) {
    const t = b.readUInt32LE(o) + b.readUInt32LE(o + 4) / 1e6, len = b.readUInt32LE(o + 8), wire = b.readUInt32LE(o + 12);
    const f = b.subarray(o + 16, o + 16 + len);
    o += 16 + len;
    if (f.length < 34 || f.readUInt16BE(12) !== 0x0800 || f[23] !== 17) continue;
    const ihl = (f[14] & 15) * 4, u = 14 + ihl;
    const ip = (at: number) => [...f.subarray(at, at + 4)].join(".");
    out.push({ t, wire, src: ip(26), dst: ip(30), sport: f.readUInt16BE(u), dport: f.readUInt16BE(u + 2), data: f.subarray(u + 8, 14 + f.readUInt16BE(16)) });
  }
  return out;
}

/** tcpdump on `dev` in `ns`, started and listening. */
async function capture(ns: Netns, dev: string, file: string): Promise<LabProcess> {
  const p = ns.spawn(["tcpdump", "-i", dev, "-U", "-n", "-w", file, "udp"]);
  await waitFor(() => /listening on/.test(p.stderr) || !p.running, `tcpdump on ${dev}`, 10_000, 20);
  assert.ok(p.running, p.stderr);
  return p;
}

const isKeepalive = (d: Buffer) => d.length === 1 && d[0] === 0xff;
const isMarkedIke = (d: Buffer) => d.length >= 32 && d.readUInt32BE(0) === 0;
/** RFC 7296 §3.1: the exchange type is byte 18 of the IKE header. */
const exchange = (ike: Buffer) => ike[18];
const IKE_SA_INIT = 34, IKE_AUTH = 35;

describe("IKEv2 through a NAT (wesp up, PSK)", { skip: requireTools(["netns", "python3", "nft", "tcpdump", "sysctl"], { why: "e2e IKEv2 behind nftables masquerade" }) }, () => {
  it("NAT detected both ways, IKE moves to 4500, ESP in UDP both ways to the learned mapping, keepalives keep it", async () => {
    const lab = new Lab(`${process.env.WESP_NS_PREFIX ?? ""}wnj`); // a runner's own prefix first, if it has one
    const ces: LabProcess[] = [];
    try {
      const n = await build(lab);
      const dir = lab.dir;
      // ceA's default identity, its WAN address, is private (10.0.0.2), not the address ceB knows
      // it by: behind a NAT the peers agree on a name instead (RFC 7296 §3.5)
      // ceB knows ceA only by the NAT's public address: port 4500 is a guess the mapping overrides
      const cfgA = writeConfig(dir, "a.json", ikeNode(dir, "ceA", IP.ceAwan, ["10.1.0.0/24"], [{ name: "ceB", address: IP.ceBwan, prefixes: ["10.2.0.0/24"], initiate: true, encap: "udp", psk: PSK, ike: { local_id: ID_A } }]));
      const docB: any = ikeNode(dir, "ceB", IP.ceBwan, ["10.2.0.0/24"], [{ name: "ceA", address: IP.natOut, prefixes: ["10.1.0.0/24"], initiate: false, encap: "udp", psk: PSK, ike: { remote_id: ID_A } }]);
      const cfgB = writeConfig(dir, "b.json", docB);
      const docA: any = JSON.parse(readFileSync(cfgA, "utf8"));
      docA.peers[0].keepalive = KEEPALIVE;
      writeConfig(dir, "a.json", docA);
      const sockA = join(dir, "ceA.sock"), sockB = join(dir, "ceB.sock");

      const pcap = join(dir, "pub.pcap");
      const cap = await capture(n.ceB, "wan", pcap);
      const b = await upCe(n.ceB, cfgB);
      const a = await upCe(n.ceA, cfgA);
      ces.push(a, b);
      const stA = await ikeUp(sockA, "ceB");
      const stB = await ikeUp(sockB, "ceA");
      assert.equal(ikeOf(stA, "ceB").natDetected, true, "ceA (behind the NAT) detected it");
      assert.equal(ikeOf(stB, "ceA").natDetected, true, "ceB detected the NAT in front of ceA");
      assert.deepEqual([ikeOf(stA, "ceB").behindNat, ikeOf(stB, "ceA").behindNat], [true, false], "the NAT is in front of ceA, not ceB");
      assert.match(a.stderr, /IKE SA \S+ established as initiator \(.*NAT-T/);
      assert.match(b.stderr, /IKE SA \S+ established as responder \(.*NAT-T/);

      // traffic both ways through the tunnel
      assert.deepEqual(await n.hA.ping(IP.hB, 3), { sent: 3, received: 3 }, "ping A→B");
      assert.deepEqual(await n.hB.ping(IP.hA, 3), { sent: 3, received: 3 }, "ping B→A");
      assert.deepEqual(await tcpEcho(n.hB, IP.hB, n.hA, 1 << 20, 5301), { sent: 1 << 20, echoed: 1 << 20, equal: true }, "TCP A→B→A");

      // the mapping conntrack made for ceA's 4500, and ceB's data plane sending there
      const flows = () => n.nat.run(["cat", "/proc/net/nf_conntrack"]).then((t) => parseConntrack(t).filter((m) => m.inside === `${IP.ceAwan}:4500` && m.remote === `${IP.ceBwan}:4500`));
      const f0 = await flows();
      assert.equal(f0.length, 1, `one conntrack entry for ceA's NAT-T flow: ${JSON.stringify(f0)}`);
      const [pubAddr, pubPortText] = f0[0].outside.split(":");
      const pubPort = Number(pubPortText);
      assert.equal(pubAddr, IP.natOut);
      assert.ok(pubPort >= 20000 && pubPort <= 20999, `masqueraded port ${pubPort}`);
      const peerB = (await status(sockB)).peers.find((p: any) => p.name === "ceA");
      assert.deepEqual({ address: peerB.address, port: peerB.port, learned: peerB.learned }, { address: IP.natOut, port: pubPort, learned: true }, "ceB sends to the NAT's mapping, learned");
      assert.equal(peerB.encap, "udp");

      // idle: only keepalives (and nothing else) keep the mapping across more than the conntrack timeout
      const idleFrom = Date.now() / 1000;
      await new Promise((r) => setTimeout(r, (CT_TIMEOUT + 3) * 1000));
      const idleTo = Date.now() / 1000;
      const f1 = await flows();
      assert.deepEqual(f1.map((m) => m.outside), [`${IP.natOut}:${pubPort}`], "the same mapping after an idle period longer than conntrack's UDP timeout");
      assert.deepEqual(await n.hB.ping(IP.hA, 2), { sent: 2, received: 2 }, "B→A after the idle period: the mapping still lets it in");

      await cap.stop("SIGINT", 5000);
      const pkts = readPcap(pcap);
      const toB = pkts.filter((p) => p.dst === IP.ceBwan), fromB = pkts.filter((p) => p.src === IP.ceBwan);
      assert.ok(toB.every((p) => p.src === IP.natOut), "the public side sees only the NAT's address");
      const on500 = pkts.filter((p) => p.sport === 500 || p.dport === 500);
      assert.ok(on500.length >= 2, `IKE_SA_INIT on 500 (${on500.length})`);
      assert.deepEqual([...new Set(on500.map((p) => exchange(p.data)))], [IKE_SA_INIT], "only IKE_SA_INIT on port 500");
      const natt = pkts.filter((p) => (p.src === IP.natOut && p.sport === pubPort && p.dport === 4500) || (p.dst === IP.natOut && p.dport === pubPort && p.sport === 4500));
      const ike4500 = natt.filter((p) => isMarkedIke(p.data)).map((p) => ({ dir: p.dst === IP.ceBwan ? "in" : "out", x: exchange(p.data.subarray(4)) }));
      assert.ok(ike4500.some((e) => e.dir === "in" && e.x === IKE_AUTH) && ike4500.some((e) => e.dir === "out" && e.x === IKE_AUTH), `IKE_AUTH both ways on 4500 behind the non-ESP marker: ${JSON.stringify(ike4500)}`);
      // the 1 MiB echo went each way inside ESP in UDP on this one flow
      const esp = (d: string) => natt.filter((p) => !isKeepalive(p.data) && !isMarkedIke(p.data) && p.data.length > 8 && (p.dst === IP.ceBwan) === (d === "in")).reduce((n, p) => n + p.wire, 0);
      assert.ok(esp("in") > 1 << 20 && esp("out") > 1 << 20, `ESP in UDP both ways between ceB:4500 and ${IP.natOut}:${pubPort} (bytes in ${esp("in")}, out ${esp("out")})`);
      const other = toB.concat(fromB).filter((p) => !natt.includes(p) && !on500.includes(p));
      assert.deepEqual(other.map((p) => `${p.src}:${p.sport}>${p.dst}:${p.dport}`), [], "no datagram on any other flow");

      const idle = natt.filter((p) => p.t >= idleFrom && p.t <= idleTo && p.dst === IP.ceBwan);
      const kas = idle.filter((p) => isKeepalive(p.data));
      const window = idleTo - idleFrom;
      assert.ok(kas.length >= Math.floor(window / KEEPALIVE) - 1 && kas.length <= Math.ceil(window / KEEPALIVE) + 1,
        `${kas.length} NAT-keepalives from ${IP.natOut}:${pubPort} in ${window.toFixed(1)} s, one per ${KEEPALIVE} s`);
      const gaps = kas.slice(1).map((k, i) => k.t - kas[i].t);
      assert.ok(gaps.every((g) => g > KEEPALIVE * 0.5 && g < KEEPALIVE * 2), `keepalive gaps ${gaps.map((g) => g.toFixed(2))}`);

      console.log(`NAT-T flow ${IP.natOut}:${pubPort}; ${kas.length} keepalives in ${window.toFixed(1)} s idle, gaps ${gaps.map((g) => g.toFixed(2)).join(" ")}`);

      // without ceA (it deletes its SA on SIGTERM), nothing refreshes the entry: it expires after the short
      // timeout, which shows the sysctl above holds in the NAT namespace and the keepalives were what kept it
      assert.equal((await n.nat.run(["sysctl", "-n", "net.netfilter.nf_conntrack_udp_timeout_stream"])).trim(), String(CT_TIMEOUT));
      await a.stop("SIGTERM", 10_000);
      await waitFor(async () => (await flows()).length === 0, "the NAT-T mapping expiring once ceA is gone", (CT_TIMEOUT + 15) * 1000, 250);
      await b.stop("SIGTERM", 10_000);
      assert.doesNotMatch(a.stderr + b.stderr, /refused \(internal\)/);
    } catch (e) {
      // the CEs' logs say why IKE or the data plane did not do what was expected
      for (const c of ces) console.error(`--- ${c.argv.join(" ")}\n${c.stderr.slice(-4000)}`);
      throw e;
    } finally {
      await lab.teardown();
      assertNoNamespacesLeft(lab);
    }
  });
});
