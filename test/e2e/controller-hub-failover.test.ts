// Issue 8 item 7, end to end in network namespaces: hub-and-spoke with a
// backup hub, from the controller (keying ike, topology dpd DPD seconds).
//
//        ctl 192.0.2.100 (wesp controller)
//           │                  all on one bridge (ns "sw"), 192.0.2.0/24;
//   hub ────┼──── hub2         site i: prefix 10.i.0.0/16, TUN address 10.i.0.1
//   .1      │      .2          (hub 1, hub2 2, s3 3, s4 4: the spokes have the
//     s3 .3 ┴ s4 .4             higher site ids, so they initiate every pair)
//
// A numbered UDP stream s3 → s4 (10.3.0.1 → 10.4.0.1:9000, one datagram every
// PERIOD_MS, its send time inside) crosses a hub (spoke to spoke: `transit`).
// 1. it flows through the hub (the hub's ESP counters for s3 move; both spokes'
//    `wesp status` says failover via hub);
// 1b. a spoke added (s5, its CE not running): every spoke's hub peers and the
//    hubs' transit selectors change; the IKE SAs stay (new CHILD_SAs with the
//    new selectors replace the old ones) and the stream loses nothing;
// 2. the hub is killed (SIGKILL: no IKE DELETE): both spokes declare it dead on
//    IKE liveness and move to hub2 (`backup_for`); the first datagram through
//    the backup was sent at most 3 liveness intervals after the kill (the bound
//    is in intervals, from the datagrams' own send times); the loss is counted;
// 3. the hub restarts from its state: the spokes hear it is up (peer-online) and
//    initiate at once, both move back ("via hub again") and the stream flows
//    through the hub; the loss is counted.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { Lab, waitFor, type LabProcess } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { assertNoNamespacesLeft } from "./io-util.ts";
import { WESP_BIN, status } from "./forwarder-util.ts";
import { CTL_URL, labOnBridge, lanAddr, lines, operator, startController, wanAddr as wan } from "./controller-util.ts";
import { ikeUp } from "./ike-util.ts";

const DPD = 3;
const PERIOD_MS = 20;
const NAMES = ["", "hub", "hub2", "s3", "s4"];

const SENDER = `const d = require("dgram").createSocket("udp4"); d.on("error", () => {}); let i = 0;
setInterval(() => { const b = Buffer.alloc(12); b.writeUInt32BE(i++, 0); b.writeDoubleBE(Date.now(), 4); d.send(b, 9000, process.argv[1]); }, ${PERIOD_MS});`;
const RECEIVER = `const d = require("dgram").createSocket("udp4");
d.on("message", (m) => process.stdout.write(m.readUInt32BE(0) + " " + m.readDoubleBE(4) + "\\n")); d.bind(9000, process.argv[1]);`;

interface Rx { seq: number; sent: number }
const received = (p: LabProcess): Rx[] => p.stdout.split("\n").filter(Boolean).map((l) => {
  const [seq, sent] = l.split(" ").map(Number);
  return { seq, sent };
});

/** The datagrams sent at or after `from` (ms): how many of their numbers are missing, and the first one that arrived after the longest run of missing ones. */
function outage(rx: Rx[], from: number): { lost: number; resumed: Rx | undefined } {
  const after = rx.filter((r) => r.sent >= from).sort((a, b) => a.seq - b.seq);
  const before = rx.filter((r) => r.sent < from).reduce((m, r) => Math.max(m, r.seq), -1);
  let lost = 0, longest = 0, resumed: Rx | undefined, prev = before;
  for (const r of after) {
    const gap = r.seq - prev - 1;
    lost += Math.max(0, gap);
    if (gap > longest) [longest, resumed] = [gap, r];
    prev = Math.max(prev, r.seq);
  }
  return { lost, resumed };
}

/** ESP packets the CE at `sock` took in from `peer`, all inbound SAs. */
async function inFrom(sock: string, peer: string): Promise<number> {
  const p = (await status(sock)).peers.find((x: { name: string }) => x.name === peer);
  return (p?.inbound ?? []).reduce((n: number, s: { counters: { packets: number } }) => n + s.counters.packets, 0);
}

async function via(sock: string): Promise<string | null> {
  return (await status(sock)).failover?.[0]?.via ?? null;
}

describe("controller hub-and-spoke with a backup hub: spokes fail over on IKE liveness and back", { skip: requireTools(["netns", "python3"], { why: "e2e controller and CE agents" }) }, () => {
  it(`the primary hub killed: s3 → s4 flows through hub2 within 3 liveness intervals (dpd ${DPD} s); back through the hub when it returns`, { timeout: 180_000 }, async () => {
    const lab = new Lab(`${process.env.WESP_NS_PREFIX ?? "wfo-"}`);
    const agents: LabProcess[] = [];
    const extra: LabProcess[] = [];
    try {
      const { ctlNs, ce } = await labOnBridge(lab, NAMES.slice(1));
      // A hub forwards from its TUN back into it (spoke to spoke); no ICMP redirects for that.
      for (const i of [1, 2]) await ce[i].exec(["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.send_redirects=0"]);

      const state = join(lab.dir, "controller");
      await startController(ctlNs, state, "off");
      const ctl = operator(ctlNs, state);
      await ctl("create-vpn", "v", "--hub", "hub", "--backup-hub", "hub2", "--dpd", String(DPD));
      for (let i = 1; i <= 4; i++) await ctl("add-site", "v", NAMES[i], "--prefix", `10.${i}.0.0/16`, "--wan", `inet=${wan(i)}`);
      const sock = (i: number) => join(lab.dir, `${NAMES[i]}.sock`);
      const argv = (i: number, token: string) => [process.execPath, WESP_BIN, "up", "--controller", CTL_URL, "--token", token,
        "--state", join(lab.dir, `${NAMES[i]}-state`), "--tun-address", `${lanAddr(i)}/16`, "--control", sock(i), "--poll", "30"];
      const start = async (i: number, token: string) => {
        agents[i] = ce[i].spawn(argv(i, token));
        await waitFor(() => /forwarding on/.test(agents[i].stderr) || !agents[i].running, `${NAMES[i]} forwarding`, 60_000, 20);
        assert.ok(agents[i].running, `${NAMES[i]} exited ${agents[i].exitCode}: ${agents[i].stderr}`);
      };
      const tokens: string[] = [];
      for (let i = 1; i <= 4; i++) {
        tokens[i] = join(lab.dir, `${NAMES[i]}.token`);
        await ctl("token", "v", NAMES[i], "--ttl", "600", "--out", tokens[i]);
      }
      await Promise.all([1, 2, 3, 4].map((i) => start(i, tokens[i])));
      for (const s of [3, 4]) for (const h of ["hub", "hub2"]) await ikeUp(sock(s), h, 60_000);
      for (const h of [1, 2]) for (const s of ["s3", "s4"]) await ikeUp(sock(h), s, 60_000);

      // ---- 1. the stream, through the hub
      const rx = ce[4].spawn([process.execPath, "-e", RECEIVER, lanAddr(4)]);
      extra.push(rx);
      await new Promise((r) => setTimeout(r, 300)); // the receiver binds; datagrams before that only count as not sent
      extra.push(ce[3].spawn([process.execPath, "-e", SENDER, lanAddr(4)]));
      await waitFor(() => received(rx).length >= 50, "the stream s3 → s4 flows", 30_000, 20);
      assert.equal(await via(sock(3)), "hub");
      assert.equal(await via(sock(4)), "hub");
      assert.ok((await inFrom(sock(1), "s3")) >= 50, "the stream enters the hub from s3");

      // ---- 1b. a spoke added: the spokes' IKE SAs with both hubs stay, the stream loses nothing
      const ikeSas = async (i: number) => Object.fromEntries(((await status(sock(i))).ike as { name: string; ikeSa: string }[]).map((p) => [p.name, p.ikeSa]));
      const sasBefore = [await ikeSas(3), await ikeSas(4)];
      const addedAt = Date.now();
      await ctl("add-site", "v", "s5", "--prefix", "10.5.0.0/16", "--wan", `inet=${wan(5)}`);
      const reselected = (i: number) => lines(agents[i], /ike: new traffic selectors for peers \[hub, hub2\]: their IKE SAs stay; new CHILD_SAs replace the old ones/).length > 0;
      await waitFor(() => reselected(3) && reselected(4), "both spokes take s5's prefix without an IKE restart", 30_000, 20);
      const newChild = async (i: number) => ((await status(sock(i))).ike as { name: string; childSas: unknown[] }[]).every((p) => p.childSas.length === 1);
      await waitFor(async () => (await newChild(3)) && (await newChild(4)), "the old CHILD_SAs deleted", 30_000, 100);
      await new Promise((r) => setTimeout(r, 3000)); // past the old inbound SAs' retirement, the stream still flowing
      const added = outage(received(rx), addedAt);
      console.log(`# spoke s5 added: s3 → s4 through the hub lost ${added.lost} datagrams (${received(rx).filter((r) => r.sent >= addedAt).length} sent since)`);
      assert.equal(added.lost, 0, "zero loss on the other spokes' traffic while a spoke joins");
      assert.deepEqual([await ikeSas(3), await ikeSas(4)], sasBefore, "the same IKE SAs with both hubs");
      for (const i of [3, 4]) assert.equal(lines(agents[i], /ike: restarted or removed peers/).length, 0, `${NAMES[i]}: no IKE peer restarted`);
      const hub2Before = await inFrom(sock(2), "s3");

      // ---- 2. the hub killed: to hub2 within 3 liveness intervals
      const killedAt = Date.now();
      await agents[1].stop("SIGKILL");
      const moved = (i: number) => lines(agents[i], /failover: hub's prefixes now via the backup hub2/).length > 0;
      await waitFor(() => moved(3) && moved(4) && outage(received(rx), killedAt).resumed !== undefined && received(rx).at(-1)!.sent > killedAt,
        "both spokes move to hub2 and the stream resumes", 20 * DPD * 1000, 50);
      await new Promise((r) => setTimeout(r, 1000));
      const down = outage(received(rx), killedAt);
      const intervals = (down.resumed!.sent - killedAt) / (DPD * 1000);
      console.log(`# hub killed: ${down.lost} datagrams lost (of one every ${PERIOD_MS} ms); the first through hub2 was sent ${intervals.toFixed(2)} liveness intervals (dpd ${DPD} s) after the kill`);
      for (const i of [3, 4]) console.log(`# ${NAMES[i]}: ${lines(agents[i], /failover: hub's/).at(-1)!.trim()}`);
      assert.ok(intervals <= 3, `resumed through the backup ${intervals.toFixed(2)} liveness intervals after the kill (bound: 3)`);
      assert.ok(down.lost > 0, "the kill cost datagrams (otherwise it was not measured)");
      assert.equal(await via(sock(3)), "hub2");
      assert.equal(await via(sock(4)), "hub2");
      assert.ok((await inFrom(sock(2), "s3")) - hub2Before >= 25, "the stream now enters hub2 from s3");

      // ---- 3. the hub back: the spokes return to it
      const restartedAt = Date.now();
      await start(1, tokens[1]);
      const back = (i: number) => lines(agents[i], /failover: hub's prefixes now via hub again \(was hub2\)/).length > 0;
      await waitFor(() => back(3) && back(4), "both spokes move back to the hub", 60_000, 50);
      const backAt = Date.now();
      await waitFor(() => received(rx).at(-1)!.sent > backAt + 500, "the stream flows after the return", 30_000, 20);
      const ret = outage(received(rx), restartedAt);
      console.log(`# hub restarted: ${ret.lost} datagrams lost from its start to the spokes' return (${((backAt - restartedAt) / 1000).toFixed(1)} s)`);
      assert.equal(await via(sock(3)), "hub");
      assert.equal(await via(sock(4)), "hub");
      const n0 = await inFrom(sock(1), "s3");
      await waitFor(async () => (await inFrom(sock(1), "s3")) >= n0 + 25, "the stream enters the restarted hub from s3", 30_000, 100);
      const text = await ce[3].exec([process.execPath, WESP_BIN, "status", "--control", sock(3)]);
      assert.match(text.stdout, /failover hub {2}backup hub2 {2}via hub/, "wesp status names the carrier");
    } catch (e) {
      for (const [i, a] of agents.entries()) if (a) console.log(`# ${NAMES[i]} log:\n${a.stderr.split("\n").slice(-30).map((l) => `#   ${l}`).join("\n")}`);
      throw e;
    } finally {
      for (const p of extra) await p.stop("SIGKILL");
      await lab.teardown();
      assertNoNamespacesLeft(lab);
    }
  });
});
