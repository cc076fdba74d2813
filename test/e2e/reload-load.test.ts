// Issue 6, "Must show" 2: `wesp reload` under load. A hub ceA with spokes
// ceB (always configured) and ceC (added, changed and removed by reloads):
//
//   hostA ─lan─ ceA ─┐               ┌─ ceB ─lan─ hostB
//   10.1.0.2  10.1.0.1│  192.0.2.0/24 │ 10.2.0.1  10.2.0.2
//                 .1  └──── sw ────────┤ .2
//                        (a bridge)    └─ ceC ─lan─ hostC
//                                       .3  10.3.0.1  10.3.0.2
//
// Two numbered UDP streams (every datagram carries its counter; each
// receiver records the counters it got) flow hostA → hostB and hostB →
// hostA for the whole test, while ceA's config file is edited and
// `wesp reload` applied a few rounds over: add peer C (ping hostC through
// it), change something of C's only, try a config that fails `wesp check`
// (refused: exit 1 and a message, the running config stays and the streams
// flow), remove peer C (hostC unreachable). Checked: zero loss and zero
// duplicates on both streams; ceA's SAs with ceB are never reinstalled (same
// SA ids), their sequence numbers and counters only ever grow across every
// reload; each reload reports what it added, changed or removed.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Lab, run, waitFor, type Netns } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { assertNoNamespacesLeft } from "./io-util.ts";
import { status, wesp } from "./forwarder-util.ts";
import { received as rx, sentCount, streamReceiver, streamSender, upCe as up } from "./lifecycle-util.ts";
import { requestStatus } from "../../host/control/client.ts";

const ROUNDS = Number(process.env.WESP_RELOAD_ROUNDS ?? 2);
/** Datagrams per second of each stream. */
const PPS = 400;
const SUITE = "aes-128-gcm";
const key = () => randomBytes(20).toString("hex"); // AES-128 key ‖ 4-byte salt

const WAN = { A: "192.0.2.1", B: "192.0.2.2", C: "192.0.2.3" };
const LAN = { A: "10.1.0", B: "10.2.0", C: "10.3.0" };

interface Keys { ab: string; ba: string; ac: string; ca: string }

function node(me: "A" | "B" | "C", dir: string, locals: string[]) {
  return {
    name: `ce${me}`,
    wan: [{ name: "wan", address: WAN[me], port: 4500, encap: "udp" }],
    tun: { name: "wesp0", mtu: 1400 },
    local_prefixes: locals,
    control: { socket: join(dir, `ce${me}.sock`) },
    state_dir: join(dir, `ce${me}-state`),
    workers: 1,
  };
}

function peer(name: string, address: string, prefixes: string[], spiIn: number, spiOut: number, keyIn: string, keyOut: string, extra: object = {}) {
  return {
    name, address, port: 4500, nat_t: true, prefixes, mode: "tunnel",
    sas: [{ spi_in: spiIn, spi_out: spiOut, suite: SUITE, key_in: keyIn, key_out: keyOut, ...extra }],
  };
}

/** ceA's config: peer ceB always; ceC as `c` says (absent, or with one of two variants of its own fields). */
function configA(dir: string, k: Keys, c: "none" | "v1" | "v2"): object {
  const peers: object[] = [peer("ceB", WAN.B, [`${LAN.B}.0/24`], 0x1000b, 0x1000a, k.ba, k.ab)];
  if (c !== "none") {
    // v2 changes only ceC's entry: one more prefix (a policy change) and a replay window.
    const prefixes = c === "v1" ? [`${LAN.C}.0/24`] : [`${LAN.C}.0/24`, "10.3.1.0/24"];
    peers.push(peer("ceC", WAN.C, prefixes, 0x2000b, 0x2000a, k.ca, k.ac, c === "v2" ? { replay_window: 128 } : {}));
  }
  return { version: 1, node: node("A", dir, [`${LAN.A}.0/24`]), peers };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("wesp reload under load: peers added, changed and removed while the others' traffic flows", { skip: requireTools(["netns", "python3"], { why: "e2e reload under load" }) }, () => {
  it(`${ROUNDS} rounds of add / change / invalid / remove peer C on ceA, numbered streams A ↔ B: zero loss, zero duplicates, B's SAs continue`, { timeout: 300_000 }, async () => {
    const lab = new Lab();
    try {
      // ---- the lab
      const [hA, ceA, ceB, ceC, hB, hC, sw] = await Promise.all(["hA", "ceA", "ceB", "ceC", "hB", "hC", "sw"].map((n) => lab.ns(n)));
      await run(["ip", "-n", sw.name, "link", "add", "br0", "type", "bridge"]);
      await sw.up("br0");
      const sites: [Netns, Netns, "A" | "B" | "C"][] = [[hA, ceA, "A"], [hB, ceB, "B"], [hC, ceC, "C"]];
      for (const [h, ce, me] of sites) {
        await lab.veth(ce, "wan", sw, `p${me}`);
        await sw.ip("link", "set", `p${me}`, "master", "br0");
        await ce.addr("wan", `${WAN[me]}/24`);
        await lab.veth(h, "lan", ce, "lan");
        await ce.addr("lan", `${LAN[me]}.1/24`);
        await h.addr("lan", `${LAN[me]}.2/24`);
        await h.ip("route", "add", "default", "via", `${LAN[me]}.1`);
        await ce.forwarding();
      }

      // ---- the CEs
      const k: Keys = { ab: key(), ba: key(), ac: key(), ca: key() };
      const dir = lab.dir;
      const cfgA = join(dir, "a.json"), cfgB = join(dir, "b.json"), cfgC = join(dir, "c.json");
      const write = (f: string, doc: object) => writeFileSync(f, JSON.stringify(doc, null, 1), { mode: 0o600 });
      write(cfgA, configA(dir, k, "none"));
      write(cfgB, { version: 1, node: node("B", dir, [`${LAN.B}.0/24`]), peers: [peer("ceA", WAN.A, [`${LAN.A}.0/24`], 0x1000a, 0x1000b, k.ab, k.ba)] });
      write(cfgC, { version: 1, node: node("C", dir, [`${LAN.C}.0/24`, "10.3.1.0/24"]), peers: [peer("ceA", WAN.A, [`${LAN.A}.0/24`], 0x2000a, 0x2000b, k.ac, k.ca)] });
      const sockA = join(dir, "ceA.sock"), sockC = join(dir, "ceC.sock");
      const pa = await up(ceA, cfgA);
      await up(ceB, cfgB);
      await up(ceC, cfgC);

      // ---- the numbered streams A → B and B → A
      const stop = join(dir, "stop-streams");
      const rxB = await streamReceiver(hB, `${LAN.B}.2`, 9100);
      const rxA = await streamReceiver(hA, `${LAN.A}.2`, 9101);
      const txA = streamSender(hA, `${LAN.B}.2`, 9100, PPS, stop);
      const txB = streamSender(hB, `${LAN.A}.2`, 9101, PPS, stop);
      await waitFor(() => rx(rxB).count > 50 && rx(rxA).count > 50, "both streams through ceA ↔ ceB", 20_000);

      // ---- ceA's SAs with ceB: same ids, sequence numbers and counters only grow
      type Snap = { outId: number; inId: number; seq: number; outPkts: number; inPkts: number; inSeq: number };
      const snaps: { what: string; s: Snap }[] = [];
      // `wesp status --json` at the start and the end; in between the same control-socket
      // request in-process (a CLI start costs seconds on a loaded machine).
      // `flowing`: the streams run, so every number must have grown (else: never gone back).
      const snapB = async (what: string, cli = false, flowing = true): Promise<any> => {
        const st: any = cli ? await status(sockA) : await requestStatus(sockA);
        const b = st.peers.find((p: { name: string }) => p.name === "ceB");
        assert.ok(b && b.outbound && b.inbound.length === 1, `${what}: ceA holds peer ceB (${JSON.stringify(st.peers.map((p: { name: string }) => p.name))})`);
        const s: Snap = { outId: b.outbound.saId, inId: b.inbound[0].saId, seq: b.outbound.seq, outPkts: b.outbound.counters.packets, inPkts: b.inbound[0].counters.packets, inSeq: b.inbound[0].seq };
        const prev = snaps.at(-1);
        if (prev) {
          const why = `${what}: ceB's SAs on ceA before ${JSON.stringify(prev.s)} (${prev.what}), now ${JSON.stringify(s)}`;
          assert.equal(s.outId, prev.s.outId, `${why}: outbound SA kept`);
          assert.equal(s.inId, prev.s.inId, `${why}: inbound SA kept`);
          const more = (x: number, y: number) => (flowing ? x > y : x >= y);
          assert.ok(more(s.seq, prev.s.seq), `${why}: outbound sequence number goes on`);
          assert.ok(more(s.outPkts, prev.s.outPkts) && more(s.inPkts, prev.s.inPkts), `${why}: counters go on`);
          assert.ok(more(s.inSeq, prev.s.inSeq), `${why}: inbound window goes on`);
          assert.equal(s.seq, s.outPkts + 1, `${why}: one number per packet, none skipped or reused`);
        }
        snaps.push({ what, s });
        return st;
      };
      await snapB("start", true);

      let reloads = 0, refused = 0, pings = 0;
      const names = (st: any) => st.peers.map((p: { name: string }) => p.name);
      const reload = async (doc: object | null, expect: RegExp, what: string): Promise<any> => {
        if (doc) write(cfgA, doc);
        const r = await wesp("reload", "--control", sockA);
        reloads++;
        assert.equal(r.code, 0, `${what}: wesp reload exit ${r.code}: ${r.stderr}${r.stdout}`);
        assert.match(r.stdout, expect, what);
        await sleep(300); // traffic across the apply
        return snapB(what);
      };
      const pingC = async (what: string): Promise<void> => {
        // The first echo may wake ceC's inbound SA up to ceA's resumed sequence numbers (a
        // re-added SA resumes past its reservation; ceC raises its own before it accepts them).
        await hA.ping(`${LAN.C}.2`, 1, 1);
        const r = await hA.ping(`${LAN.C}.2`, 3);
        pings += r.received;
        if (r.received !== 3) {
          const drops = (st: any) => JSON.stringify(st.peers.map((p: any) => ({
            name: p.name, out: p.outbound && { seq: p.outbound.seq, pkts: p.outbound.counters.packets },
            in: p.inbound.map((i: any) => ({ seq: i.seq, pkts: i.counters.packets, drops: Object.fromEntries(Object.entries(i.counters.drops).filter(([, v]) => (v as number) > 0)) })),
          })));
          assert.fail(`${what}: ping hostC through ceC: ${r.received} of 3\nceA ${drops(await requestStatus(sockA))}\nceC ${drops(await requestStatus(sockC))}`);
        }
      };

      for (let round = 1; round <= ROUNDS; round++) {
        const st = await reload(configA(dir, k, "v1"), /added 1 \[ceC\], removed 0 \[\], changed 0 \[\], unchanged 1/, `round ${round}: add ceC`);
        assert.deepEqual(names(st), ["ceB", "ceC"]);
        await pingC(`round ${round}, ceC added`);

        await reload(configA(dir, k, "v2"), /added 0 \[\], removed 0 \[\], changed 1 \[ceC\], unchanged 1/, `round ${round}: change ceC`);
        await pingC(`round ${round}, ceC changed`);

        // an invalid config: `wesp check` rejects it, reload refuses it, the running one stays
        const bad = configA(dir, k, "v2") as { peers: { sas: { key_out: string }[] }[] };
        bad.peers[1].sas[0].key_out = "00ff"; // 2 bytes: AES-128-GCM needs 20 (key ‖ salt)
        write(cfgA, bad);
        const chk = await wesp("check", cfgA);
        assert.notEqual(chk.code, 0, "wesp check rejects the invalid config");
        const r = await wesp("reload", "--control", sockA);
        reloads++;
        refused++;
        assert.equal(r.code, 1, `invalid config: wesp reload exit ${r.code}: ${r.stdout}${r.stderr}`);
        assert.match(r.stderr, /refused.*running config stays/s, "reload says it refused");
        assert.match(r.stderr, /key_out/, "and names the field");
        await sleep(300);
        assert.deepEqual(names(await snapB(`round ${round}: invalid config refused`)), ["ceB", "ceC"], "the running config stays");
        await pingC(`round ${round}, after the refused reload`);

        const gone = await reload(configA(dir, k, "none"), /added 0 \[\], removed 1 \[ceC\], changed 0 \[\], unchanged 1/, `round ${round}: remove ceC`);
        assert.deepEqual(names(gone), ["ceB"]);
        assert.equal((await hA.ping(`${LAN.C}.2`, 1, 1)).received, 0, `round ${round}: hostC unreachable once ceC is removed`);
      }
      // SIGHUP is the same door
      write(cfgA, configA(dir, k, "v1"));
      const applied = () => pa.stderr.match(/reloaded .*added \[ceC\]/g)?.length ?? 0;
      const before = applied();
      process.kill(pa.pid, "SIGHUP");
      await waitFor(() => applied() > before, "SIGHUP reload", 15_000);
      reloads++;
      await pingC("added by SIGHUP");
      await snapB("SIGHUP: add ceC");

      // ---- the streams: zero loss, zero duplicates
      writeFileSync(stop, "");
      await Promise.all([txA.exited, txB.exited]);
      const [nAB, nBA] = [sentCount(txA), sentCount(txB)];
      assert.ok(nAB > 0 && nBA > 0, `senders: ${txA.stdout} ${txB.stdout} ${txA.stderr}${txB.stderr}`);
      await waitFor(() => rx(rxB).count >= nAB && rx(rxA).count >= nBA, "the streams' last datagrams", 5_000).catch(() => {});
      await sleep(500);
      const gotB = rx(rxB), gotA = rx(rxA);
      const end = await snapB("end", true, false);
      const b = end.peers.find((p: { name: string }) => p.name === "ceB");
      console.log(`reload under load: ${reloads} reloads (${refused} refused), ${pings} pings through ceC; stream A→B sent ${nAB}, received ${gotB.count} (${gotB.distinct} distinct); ` +
        `B→A sent ${nBA}, received ${gotA.count} (${gotA.distinct} distinct); ceA's SA to ceB: seq ${snaps[0].s.seq} → ${b.outbound.seq}, drops in ${JSON.stringify(Object.fromEntries(Object.entries(b.inbound[0].counters.drops).filter(([, v]) => (v as number) > 0)))}`);
      assert.deepEqual(gotB, { count: nAB, distinct: nAB, max: nAB }, "A → B: every datagram once");
      assert.deepEqual(gotA, { count: nBA, distinct: nBA, max: nBA }, "B → A: every datagram once");
      assert.equal(b.inbound[0].counters.dropped, 0, "ceA dropped nothing of ceB's");
      assert.equal(b.outbound.counters.dropped, 0, "ceA's outbound SA to ceB dropped nothing");
      assert.ok(existsSync(join(dir, "ceA-state", "sa")), "ceA's state_dir in the lab's temp dir");
    } finally {
      await lab.teardown();
      assertNoNamespacesLeft(lab);
    }
  });
});
