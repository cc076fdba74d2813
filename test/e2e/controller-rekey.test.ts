// Issue 8 item 6 end to end in network namespaces: controller-made keys
// rekeyed by the controller (RFC 9061 §4.1.2, the IKE-less case), with real
// CEs (`wesp up --controller`) and a short soft lifetime:
//
//        ctl 192.0.2.100 (wesp controller)
//           │                       one bridge (ns "sw"), 192.0.2.0/24;
//   ce1 ────┴──── ce2               site i: prefix 10.i.0.0/16, TUN 10.i.0.1
//   .1             .2               tcpdump on ce2's WAN link
//
// The VPN's SAs have a soft lifetime of 5 s (hard 120 s). While numbered UDP
// streams flow both ways, each CE's data plane reports its SAs' soft expiry
// (POST /v1/ce/sadb-expire), the controller makes the next generation, and
// each CE applies new inbound SAs, then the outbound switch, then the old
// ones' removal, acknowledging each (POST /v1/ce/applied) before the next
// step. Asserted: at least two full rekeys while the streams flow, every step
// in that order in the controller's log, zero datagrams lost or duplicated in
// either direction, at least three of ce1's outbound SPIs on the wire (one
// per generation), each used after the one before it stopped, and no key
// material in any log.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Lab, waitFor, type Netns, type LabProcess } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { startCapture } from "../helpers/tshark.ts";
import { espPackets } from "../helpers/esp_pcap.ts";
import { assertNoNamespacesLeft } from "./io-util.ts";
import { WESP_BIN } from "./forwarder-util.ts";
import { CTL, CTL_URL as URL_, operator, startController, wanBridge } from "./controller-util.ts";
import { streamsBothWays } from "./lifecycle-util.ts";

const wan = (i: number) => `192.0.2.${i}`;
const lanAddr = (i: number) => `10.${i}.0.1`;
const lines = (p: LabProcess, re: RegExp) => p.stderr.split("\n").filter((l) => re.test(l));

describe("controller-driven rekeying (RFC 9061 IKE-less)", { skip: requireTools(["netns", "python3", "tcpdump"], { why: "e2e controller rekeying" }) }, () => {
  it("two CEs rekeyed by the controller twice under numbered streams both ways: no loss, no duplicate, new SPIs on the wire", { timeout: 240_000 }, async () => {
    const lab = new Lab("wik-");
    try {
      const attach = await wanBridge(lab);
      const ctlNs = await lab.ns("ctl");
      await attach(ctlNs, "pctl", CTL);
      const ce: Netns[] = [];
      for (const i of [1, 2]) {
        ce[i] = await lab.ns(`ce${i}`);
        await attach(ce[i], `p${i}`, wan(i));
      }
      const state = join(lab.dir, "controller");
      const controller = await startController(ctlNs, state, "off");
      const ctl = operator(ctlNs, state);
      await ctl("create-vpn", "v", "--keying", "controller", "--sa-lifetime", "soft=5,hard=120");
      const agents: LabProcess[] = [];
      for (const i of [1, 2]) {
        await ctl("add-site", "v", `s${i}`, "--prefix", `10.${i}.0.0/16`, "--wan", `inet=${wan(i)}`);
        const token = join(lab.dir, `s${i}.token`);
        await ctl("token", "v", `s${i}`, "--out", token);
        agents[i] = ce[i].spawn([process.execPath, WESP_BIN, "up", "--controller", URL_, "--token", token, "--state", join(lab.dir, `ce${i}-state`),
          "--tun-address", `${lanAddr(i)}/16`, "--control", join(lab.dir, `ce${i}.sock`), "--poll", "30"]);
      }
      for (const i of [1, 2]) {
        await waitFor(() => /forwarding on/.test(agents[i].stderr) || !agents[i].running, `CE ${i} forwarding`, 60_000, 20);
        assert.ok(agents[i].running, `CE ${i} exited ${agents[i].exitCode}: ${agents[i].stderr}`);
      }
      const config = JSON.parse(readFileSync(join(lab.dir, "ce1-state", "config.json"), "utf8")) as { config: { peers: { sas: { lifetime: unknown }[] }[] } };
      assert.deepEqual(config.config.peers[0].sas[0].lifetime, { seconds: 120, soft_seconds: 5 }, "the VPN's lifetimes reach the CE");

      const capture = await startCapture(ce[2], "wan", join(lab.dir, "ce2.pcap"), ["udp", "port", "4500"]);
      const streams = await streamsBothWays(ce[1], ce[2], lanAddr(1), lanAddr(2), 200, lab.dir);
      const t0 = Date.now();
      const removed = () => lines(controller, /rekey s1<->s2: old generation removed/).length;
      const before = removed();
      await waitFor(() => removed() >= before + 2 || !agents[1].running || !agents[2].running, "two full rekeys under the streams", 120_000, 50);
      const tRekeyed = Date.now();
      const { nAB, nBA, gotA, gotB } = await streams.finish();
      await capture.stop();
      for (const i of [1, 2]) assert.ok(agents[i].running, `CE ${i} still runs: ${agents[i].stderr}`);

      // The steps, in the RFC 9061 §4.1.2 order, as the controller logged them.
      const steps = lines(controller, /sadb-expire from .*rekey started|rekey s1<->s2: /).map((l) =>
        /rekey started/.test(l) ? "inbound" : /used outbound/.test(l) ? "outbound" : /removed/.test(l) ? "removed" : /made \(expired meanwhile\)/.test(l) ? "inbound" : "?");
      const cycles = steps.join(" ").match(/inbound outbound removed/g) ?? [];
      assert.ok(cycles.length >= 2, `inbound → outbound → removed, twice at least: ${steps.join(" ")}`);
      assert.ok(lines(agents[1], /sadb-expire .* \(soft\): controller says rekeying/).length + lines(agents[2], /sadb-expire .* \(soft\): controller says rekeying/).length >= 2,
        "the CEs' soft-expiry reports started the rekeys");

      // Zero loss, zero duplicates, both ways.
      console.log(`# ${removed() - before} rekeys in ${tRekeyed - t0} ms under the streams; s1 → s2 sent ${nAB}, received ${gotB.distinct} distinct (${gotB.count}); ` +
        `s2 → s1 sent ${nBA}, received ${gotA.distinct} distinct (${gotA.count}); steps: ${steps.join(" ")}`);
      assert.equal(gotB.distinct, nAB, "s1 → s2: every datagram arrived");
      assert.equal(gotB.count, gotB.distinct, "s1 → s2: none twice");
      assert.equal(gotA.distinct, nBA, "s2 → s1: every datagram arrived");
      assert.equal(gotA.count, gotA.distinct, "s2 → s1: none twice");

      // New SPIs on the wire: ce1's ESP towards ce2 under at least three SPIs, one after the other.
      const esp = espPackets(readFileSync(capture.pcap)).filter((p) => p.src === wan(1));
      const order: number[] = [];
      for (const p of esp) if (!order.includes(p.spi)) order.push(p.spi);
      assert.ok(order.length >= 3, `ce1 sent under ${order.length} SPIs: ${order.map((s) => s.toString(16)).join(", ")}`);
      for (let k = 1; k < order.length; k++) {
        // Packets sealed before the switch may still leave after the first new one (batches of
        // other workers in flight), but the old SPI is never taken up again: at most a few batches.
        const from = esp.findIndex((p) => p.spi === order[k]);
        const late = esp.slice(from).filter((p) => p.spi === order[k - 1]).length;
        assert.ok(late <= 256, `SPI 0x${order[k - 1].toString(16)}: ${late} packets after 0x${order[k].toString(16)} took over`);
      }

      // Keys are never logged.
      const keys = new Set<string>();
      for (const i of [1, 2]) {
        const c = JSON.parse(readFileSync(join(lab.dir, `ce${i}-state`, "config.json"), "utf8")) as { config: { peers: { sas: { key_in: string; key_out: string }[] }[] } };
        for (const p of c.config.peers) for (const s of p.sas) (keys.add(s.key_in), keys.add(s.key_out));
      }
      for (const p of [controller, agents[1], agents[2]]) for (const k of keys) assert.ok(!p.stderr.includes(k) && !p.stdout.includes(k), "no SA key in a log");
    } finally {
      await lab.teardown();
      assertNoNamespacesLeft(lab);
    }
  });
});
