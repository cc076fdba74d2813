// Two strongSwan charons negotiate IKEv2 (PSK) and carry ping between two sites over
// UDP-encapsulated ESP, for each of the four suites. What this proves, before wesp is
// plugged in: the namespace harness works, the key extraction from charon's log is
// right (both daemons' logs agree, and the keys decrypt what was on the wire) and the
// tshark/scapy checking can both pass and fail.
//
//   siteL ──s── gl  ceL (charon L)  wl ═══ 10.99.0.0/24 ═══ wr  ceR (charon R)  gr ──s── siteR
//   192.168.1.2   .1                .1                      .2                 .1   192.168.2.2
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { exec, Lab, NS_PREFIX, run, sweepStale, tcpEcho, waitFor, type Netns } from "../helpers/netns.ts";
import { checkEsp, checkEspTable, startCapture, tsharkSupports, type EspSa } from "../helpers/tshark.ts";
import { wesp, wespConfig, writeWespConfig } from "./wesp-peer.ts";
import { concat, inetChecksum, ipv4Header, openEsp, PROTO, sealEsp, type RefSa } from "../helpers/ref_esp.ts";
import { espDrops, espParsed, parseChildSas, SUITES, toEspSas, type ChildSa, type EspDirection, type Suite } from "./strongswan.ts";
import { charons, labSkip, linkExists, NET_L, NET_R, PINGS, replayAndForge, SITE_L, SITE_R, useTopo, WAN_L, WAN_R } from "./lab_setup.ts";

const skip = labSkip("interop strongSwan pair");

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** The two daemons' views of one CHILD_SA must mirror each other exactly. */
function assertMirrored(l: ChildSa, r: ChildSa): void {
  assert.equal(l.initiator, true, "L initiated");
  assert.equal(r.initiator, false, "R responded");
  assert.equal(l.proposal, r.proposal);
  for (const [a, b] of [[l.outbound, r.inbound], [l.inbound, r.outbound]] as const) {
    assert.equal(a.spi, b.spi);
    assert.equal(a.src, b.src);
    assert.equal(a.dst, b.dst);
    assert.equal(hex(a.encKey), hex(b.encKey));
    assert.equal(hex(a.integKey), hex(b.integKey));
  }
  assert.notEqual(hex(l.outbound.encKey), hex(l.inbound.encKey), "directions have distinct keys");
}

/** Expected algorithm facts per suite (RFC 4106 / RFC 7634 salt, RFC 4868 key size). */
const EXPECT: Record<Suite, { enc: string; integ: string; encKeyLen: number; integKeyLen: number; bits: number }> = {
  aes128gcm16: { enc: "AES_GCM_16", integ: "", encKeyLen: 16 + 4, integKeyLen: 0, bits: 128 },
  aes256gcm16: { enc: "AES_GCM_16", integ: "", encKeyLen: 32 + 4, integKeyLen: 0, bits: 256 },
  chacha20poly1305: { enc: "CHACHA20_POLY1305", integ: "", encKeyLen: 32 + 4, integKeyLen: 0, bits: 256 },
  "aes128-sha256": { enc: "AES_CBC", integ: "HMAC_SHA2_256_128", encKeyLen: 16, integKeyLen: 32, bits: 128 },
};

/** A CHILD_SA direction as the reference ESP's SA (test/helpers/ref_esp.ts, on @noble). */
function refSa(c: ChildSa, d: EspDirection): RefSa {
  if (c.integAlg === "") {
    const suite = c.encAlg === "CHACHA20_POLY1305" ? "chacha20-poly1305" : "aes-gcm-16";
    return { suite, spi: d.spi, key: d.encKey.slice(0, -4), salt: d.encKey.slice(-4), esn: false };
  }
  return { suite: "aes-cbc-hmac-sha256-128", spi: d.spi, key: d.encKey, authKey: d.integKey, esn: false };
}

const ip4 = (a: string) => Uint8Array.from(a.split(".").map(Number));

/** An ICMP echo request (RFC 792) in IPv4, `from` → `to`. */
function echoRequest(from: string, to: string, id: number, payload: Uint8Array): Uint8Array {
  const icmp = new Uint8Array(8 + payload.length);
  const v = new DataView(icmp.buffer);
  icmp[0] = 8;
  v.setUint16(4, id);
  v.setUint16(6, 1);
  icmp.set(payload, 8);
  v.setUint16(2, inetChecksum(icmp));
  return concat(ipv4Header({ src: ip4(from), dst: ip4(to) }, PROTO.ICMP, icmp.length), icmp);
}

/** The key the ICV depends on, with one bit flipped: the AEAD key, or the HMAC key. */
function flipBit(sa: EspSa): EspSa {
  const field = sa.authKey?.length ? "authKey" : "encKey";
  const k = Uint8Array.from(sa[field]!);
  k[0] ^= 1;
  return { ...sa, [field]: k };
}

describe("strongSwan pair over kernel-libipsec", { skip }, () => {
  const getTopo = useTopo();

  for (const suite of SUITES) {
    test(`${suite}: negotiate, ping + TCP both ways, keys from the log decrypt the wire with good ICVs, replay/forgery dropped`, async () => {
      const topo = getTopo();
      const [L, R] = charons(topo, suite);
      try {
        await L.start();
        await R.start();
        await L.initiate(suite);

        const ls = parseChildSas(L.log());
        const rs = parseChildSas(R.log());
        assert.equal(ls.length, 1, "one CHILD_SA in L's log");
        assert.equal(rs.length, 1, "one CHILD_SA in R's log");
        const [l, r] = [ls[0], rs[0]];
        assertMirrored(l, r);
        const e = EXPECT[suite];
        assert.equal(l.encAlg, e.enc);
        assert.equal(l.integAlg, e.integ);
        assert.equal(l.encKeyBits, e.bits);
        assert.equal(l.esn, false, "libipsec has no ESN");
        assert.equal(l.outbound.encKey.length, e.encKeyLen);
        assert.equal(l.outbound.integKey.length, e.integKeyLen);
        assert.deepEqual([l.outbound.src, l.outbound.dst], [WAN_L, WAN_R]);
        assert.equal(l.localTs, NET_L);
        assert.equal(l.remoteTs, NET_R);
        // swanctl (over vici, not the log) reports the same SPIs
        const listed = await L.listSas();
        for (const spi of [l.inbound.spi, l.outbound.spi]) assert.match(listed, new RegExp(spi.toString(16).padStart(8, "0")));

        const cap = await startCapture(topo.ceL, "wl", join(topo.lab.dir, `${suite}.pcap`), ["udp", "port", "4500"]);
        const there = await topo.siteL.ping(SITE_R, PINGS);
        const back = await topo.siteR.ping(SITE_L, PINGS);
        const tcp = await tcpEcho(topo.siteR, SITE_R, topo.siteL, 256 << 10);
        const pcap = await cap.stop();
        assert.deepEqual(tcp, { sent: 256 << 10, echoed: 256 << 10, equal: true }, "TCP both ways, bytes intact");
        assert.equal(there.received, PINGS, "siteL → siteR through ESP");
        assert.equal(back.received, PINGS, "siteR → siteL through ESP");

        const sas = toEspSas(l);
        const frames = await checkEsp(pcap, sas);
        assert.ok(frames.length >= 4 * PINGS, `at least ${4 * PINGS} ESP frames, got ${frames.length}`);
        for (const f of frames) {
          assert.equal(f.icv, "good", `frame ${f.frame} SPI ${f.spi.toString(16)}: ICV ${f.icv}`);
          assert.equal(f.udp, true, "UDP-encapsulated");
          assert.equal(f.checkedBy, tsharkSupports(sas[0]) ? "tshark" : "scapy");
          assert.equal(f.nextHeader, 4, "tunnel mode: inner IPv4");
          const outbound = f.spi === l.outbound.spi;
          assert.ok(outbound || f.spi === l.inbound.spi, "only the negotiated SPIs");
          assert.deepEqual([f.outerSrc, f.outerDst], outbound ? [WAN_L, WAN_R] : [WAN_R, WAN_L]);
          assert.ok([SITE_L, SITE_R].includes(f.innerSrc!) && [SITE_L, SITE_R].includes(f.innerDst!), "inner = sites");
        }
        assert.ok(frames.some((f) => f.spi === l.outbound.spi) && frames.some((f) => f.spi === l.inbound.spi), "both directions seen");

        // scapy agrees with tshark on what tshark can check (the fallback is sound)
        if (tsharkSupports(sas[0])) {
          const viaScapy = await checkEsp(pcap, sas, "scapy");
          assert.deepEqual(viaScapy.map((f) => [f.frame, f.icv, f.checkedBy]), frames.map((f) => [f.frame, "good", "scapy"]));
        }
        // The same SAs as a wesp config (what wesp will run with in L's place): it
        // passes `wesp check`, and the table `wesp keys --wireshark` writes from it
        // makes tshark reach the same verdicts as the SAs taken from the log.
        const cfg = writeWespConfig(join(topo.lab.dir, `wesp-${suite}.json`), wespConfig(l, suite, {
          name: "ceL", wanAddress: WAN_L, peerAddress: WAN_R, localPrefixes: [NET_L],
          peerPrefixes: [NET_R], tunName: "wesp0", controlSocket: join(topo.lab.dir, "wesp.sock"),
        }));
        const checked = await wesp("check", cfg);
        assert.equal(checked.code, 0, `wesp check: ${checked.stderr}${checked.stdout}`);
        const table = await wesp("keys", "--wireshark", cfg);
        assert.equal(table.code, 0, `wesp keys: ${table.stderr}`);
        const viaTable = await checkEspTable(pcap, table.stdout, sas.filter((s) => !tsharkSupports(s)));
        assert.deepEqual(viaTable.map((f) => [f.frame, f.icv, f.checkedBy]), frames.map((f) => [f.frame, "good", f.checkedBy]));

        // R drops a replayed packet and a forged one, says why, and keeps working
        // (the forgery's high sequence number must not have moved R's window).
        const sent = frames.filter((f) => f.spi === l.outbound.spi);
        // a packet R is known to have received (its socket may drop some under load)
        const atR = new Set(espParsed(R.log(), l.outbound.spi));
        const replayed = sent.filter((f) => atR.has(f.seq)).pop()!;
        const forgedSeq = Math.max(...sent.map((f) => f.seq)) + 1000;
        const drops = await replayAndForge(topo.ceL, R, replayed.esp!, forgedSeq);
        assert.deepEqual(drops, [
          { reason: "replay", spi: l.outbound.spi, seq: replayed.seq },
          { reason: "icv", spi: l.outbound.spi, seq: forgedSeq },
        ]);
        assert.equal((await topo.siteL.ping(SITE_R, 1)).received, 1, "still up after the drops");
        assert.deepEqual(espDrops(L.log()), [], "L dropped nothing");

        // and the check can fail: with one flipped key bit no frame checks good. (Not
        // "every frame bad": tshark 4.0 reports no ICV status when the garbage
        // plaintext makes its dissector throw, e.g. on a nonsense next header.)
        const wrong = await checkEsp(pcap, sas.map(flipBit));
        assert.equal(wrong.length, frames.length);
        assert.ok(wrong.every((f) => f.icv !== "good"), "wrong key → no ICV good");
        assert.ok(wrong.filter((f) => f.icv === "bad").length >= frames.length / 2, "wrong key → ICVs bad");

        // The premise of wesp's interop test, shown with an independent ESP (the
        // @noble reference) in L's place: L killed without a word, R keeps the SA,
        // accepts the stand-in's next sequence number and answers it.
        await L.stop(true);
        assert.equal(await linkExists(topo.ceL, "ipsec0"), false, "L's TUN gone");
        const cap2 = await startCapture(topo.ceL, "wl", join(topo.lab.dir, `${suite}-standin.pcap`), ["udp", "port", "4500"]);
        const id = 0x5e5e;
        const hello = new TextEncoder().encode(`stand-in for charon L, ${suite}`);
        // just ahead of what R got from L, far below the forgery's: R's window must
        // not have moved to the forgery (RFC 4303 §3.4.3)
        const nextSeq = Math.max(...espParsed(R.log(), l.outbound.spi).filter((q) => q !== forgedSeq)) + 1;
        const iv = randomBytes(l.integAlg === "" ? 8 : 16);
        const sealed = sealEsp(refSa(l, l.outbound), { seq: BigInt(nextSeq), iv, payload: echoRequest(SITE_L, SITE_R, id, hello), nextHeader: 4 });
        await topo.ceL.sendUdp(WAN_L, 4500, WAN_R, 4500, sealed);
        const spiIn = `0x${l.inbound.spi.toString(16).padStart(8, "0")}`;
        const seen = async () => (await exec(["tshark", "-r", cap2.pcap, "-Y", `esp.spi == ${spiIn}`, "-T", "fields", "-e", "frame.number"])).stdout.trim();
        await waitFor(seen, "R's answer on the wire", 30_000, 200);
        await cap2.stop();
        const answer = (await checkEsp(cap2.pcap, sas)).find((f) => f.spi === l.inbound.spi)!;
        assert.equal(answer.icv, "good");
        const opened = openEsp(refSa(l, l.inbound), answer.esp!);
        assert.ok(opened.ok, "the reference opens R's answer");
        const reply = opened.payload;
        assert.deepEqual([opened.nextHeader, reply[9], reply[20]], [4, PROTO.ICMP, 0], "tunnel mode, ICMP echo reply");
        assert.deepEqual([reply.slice(12, 16), reply.slice(16, 20)], [ip4(SITE_R), ip4(SITE_L)]);
        assert.equal(new DataView(reply.buffer, reply.byteOffset).getUint16(24), id);
        assert.deepEqual(reply.slice(28), hello, "our payload echoed back");
        assert.equal(espDrops(R.log()).length, 2, "no drop beyond the replay and the forgery");
      } catch (err) {
        console.error(`--- charon L log tail ---\n${L.log().split("\n").slice(-40).join("\n")}`);
        console.error(`--- charon R log tail ---\n${R.log().split("\n").slice(-40).join("\n")}`);
        throw err;
      } finally {
        await L.stop();
        await R.stop();
      }
    });
  }

  test("teardown leaves no namespace, process or directory behind", async () => {
    const { lab } = getTopo();
    const names = lab.namespaces.map((n) => n.name);
    const pids = lab.processes.map((p) => p.pid);
    await lab.teardown();
    const list = await run(["ip", "netns", "list"]);
    for (const n of names) assert.ok(!list.split("\n").some((l) => l.split(" ")[0] === n), `${n} deleted`);
    for (const pid of pids) assert.equal(existsSync(`/proc/${pid}`), false, `pid ${pid} gone`);
    if (!process.env.WESP_KEEP_LABDIR) assert.equal(existsSync(lab.dir), false, "scratch dir removed");
  });
});

describe("harness hygiene", { skip }, () => {
  test("a lab whose test throws is still torn down, processes included", async () => {
    const lab = new Lab();
    let ns: Netns | undefined;
    let pid = 0;
    await assert.rejects(
      (async () => {
        try {
          ns = await lab.ns("boom");
          pid = ns.spawn(["sleep", "600"]).pid;
          throw new Error("test body fails");
        } finally {
          await lab.teardown();
        }
      })(),
      /test body fails/,
    );
    assert.ok(pid > 0);
    assert.equal(existsSync(`/proc/${pid}`), false, "sleep killed");
    assert.equal((await exec(["ip", "netns", "pids", ns!.name])).code !== 0, true, "namespace deleted");
  });

  test("sweepStale removes leftovers of dead test processes only", async () => {
    // a pid above the kernel's pid_max cannot be alive
    const pidMax = Number((await run(["cat", "/proc/sys/kernel/pid_max"])).trim());
    const dead = `${NS_PREFIX}${pidMax + 1}-0-stale`;
    const mine = `${NS_PREFIX}${process.pid}-999-live`;
    await run(["ip", "netns", "add", dead]);
    await run(["ip", "netns", "add", mine]);
    try {
      const removed = sweepStale();
      assert.ok(removed.includes(dead), "dead owner's namespace swept");
      assert.ok(!removed.includes(mine), "live owner's namespace kept");
      const list = await run(["ip", "netns", "list"]);
      assert.ok(!list.includes(dead));
      assert.ok(list.includes(mine));
    } finally {
      await exec(["ip", "netns", "del", dead]);
      await exec(["ip", "netns", "del", mine]);
    }
  });
});
