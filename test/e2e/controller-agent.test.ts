// Issue 8, items 2 and 3, end to end in network namespaces: a controller and
// CEs that hold nothing but a token file each (`wesp up --controller URL
// --token FILE`), controller-made keys (static-key mode):
//
//        ctl 192.0.2.100 (wesp controller)
//           │
//   ce1 ────┼──── ce2        all on one bridge (ns "sw"), 192.0.2.0/24;
//   .1      │      .2        site i: prefix 10.i.0.0/16, TUN address 10.i.0.1
//   ce3 ────┴──── ce4
//   .3             .4
//
// 1. three sites enrol from tokens alone and the full mesh passes traffic;
// 2. a numbered UDP stream ce1 → ce2 flows while site 4 is added: the time
//    from the operator's add-site until ce1..ce3 applied it, and until ce1
//    reaches the new CE, are printed (timing belongs in bench/; no assertion
//    on it), and the stream loses nothing;
// 3. site 3 removed: its peers drop it, and its CE, refused (403), drops its
//    VPN state (peers removed, stored config and key shredded) and exits 1;
// 4. controller stopped: traffic goes on, and a CE restarted meanwhile
//    forwards with its stored certificate and last config (no token);
//    controller back: the CEs reconnect and hear the next change.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Lab, waitFor, type Netns, type LabProcess } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { assertNoNamespacesLeft } from "./io-util.ts";
import { WESP_BIN } from "./forwarder-util.ts";
import { CTL, CTL_URL as URL_, lanAddr, lines, operator, startController as controllerIn, wanAddr as wan, wanBridge } from "./controller-util.ts";
import { received, sentCount, streamReceiver, streamSender } from "./lifecycle-util.ts";

describe("controller + zero-touch CEs (enrolment, mTLS, push)", { skip: requireTools(["netns", "python3"], { why: "e2e controller and CE agents" }) }, () => {
  it("3 CEs from tokens alone, a 4th added under a stream, one removed, the controller stopped and back", { timeout: 420_000 }, async () => {
    const lab = new Lab("wcf-");
    try {
      const attach = await wanBridge(lab);
      const ctlNs = await lab.ns("ctl");
      await attach(ctlNs, "pctl", CTL);
      const ce: Netns[] = [];
      for (let i = 1; i <= 4; i++) {
        ce[i] = await lab.ns(`ce${i}`);
        await attach(ce[i], `p${i}`, wan(i));
      }

      // ---- the controller, and the operator's commands (run in its namespace)
      const state = join(lab.dir, "controller");
      const startController = () => controllerIn(ctlNs, state, "off");
      let controller = await startController();
      const ctl = operator(ctlNs, state);
      await ctl("create-vpn", "v", "--keying", "controller");
      const addSite = (i: number) => ctl("add-site", "v", `s${i}`, "--prefix", `10.${i}.0.0/16`, "--wan", `inet=${wan(i)}`);
      const tokenFile = async (i: number) => {
        const f = join(lab.dir, `s${i}.token`);
        await ctl("token", "v", `s${i}`, "--ttl", "600", "--out", f);
        return f;
      };
      const agentState = (i: number) => join(lab.dir, `ce${i}-state`);
      const startCe = async (i: number, token?: string) => {
        const p = ce[i].spawn([process.execPath, WESP_BIN, "up", "--controller", URL_, ...(token ? ["--token", token] : []),
          "--state", agentState(i), "--tun-address", `${lanAddr(i)}/16`, "--control", join(lab.dir, `ce${i}.sock`), "--poll", "30"]);
        await waitFor(() => /forwarding on/.test(p.stderr) || !p.running, `CE ${i} forwarding`, 60_000, 20);
        assert.ok(p.running, `CE ${i} exited ${p.exitCode}: ${p.stderr}`);
        return p;
      };
      // No route (a peer removed) counts as unreachable too.
      const reach = async (from: number, to: number) => (await ce[from].ping(lanAddr(to), 2, 2).catch(() => ({ received: 0 }))).received > 0;

      // ---- 1. three sites, enrolled from tokens alone; full mesh
      await Promise.all([1, 2, 3].map(addSite));
      const tokens = await Promise.all([1, 2, 3].map(tokenFile));
      const tf = JSON.parse(readFileSync(tokens[0], "utf8"));
      assert.match(tf.caFingerprint, /^[0-9a-f]{64}$/, "the token file carries the CA fingerprint");
      assert.equal(statSync(tokens[0]).mode & 0o077, 0, "the token file is private");
      const agents: LabProcess[] = [];
      await Promise.all([1, 2, 3].map(async (i) => (agents[i] = await startCe(i, tokens[i - 1]))));
      for (const i of [1, 2, 3]) {
        assert.match(agents[i].stderr, new RegExp(`enrolled as s${i}@v`));
        for (const f of ["ce.key", "config.json"]) assert.equal(statSync(join(agentState(i), f)).mode & 0o077, 0, `ce${i} ${f} is 0600`);
      }
      for (const [a, b] of [[1, 2], [1, 3], [2, 3], [2, 1], [3, 1], [3, 2]]) assert.ok(await reach(a, b), `ce${a} → ce${b} through the mesh`);
      assert.ok(!controller.stderr.includes(tf.token), "the controller never logs a token");
      const rl = await ce[1].exec([process.execPath, WESP_BIN, "reload", "--control", join(lab.dir, "ce1.sock")]);
      assert.equal(rl.code, 0, `wesp reload on an agent: ${rl.stderr}`);
      assert.match(rl.stdout, /^applied: added 0 \[\], removed 0 \[\], changed 0 \[\], unchanged 2$/m, "wesp reload pulls now; nothing changed");

      // ---- 2. site 4 added while a numbered stream flows ce1 → ce2
      const rx = await streamReceiver(ce[2], lanAddr(2), 9000);
      const stop = join(lab.dir, "stop-stream");
      const tx = streamSender(ce[1], lanAddr(2), 9000, 300, stop);
      await waitFor(() => received(rx).distinct > 100, "stream flowing");
      // The reference point: the controller's log line for the add-site (written once the site and its SAs are committed).
      const logged = () => lines(controller, /POST \/v1\/vpns\/v\/sites → 201/).length;
      const before = logged();
      let tCommitted = 0;
      const applied: number[] = [];
      await Promise.all([
        addSite(4),
        waitFor(() => logged() > before, "the controller logs the add-site", 60_000, 5).then(() => (tCommitted = Date.now())),
        ...[1, 2, 3].map(async (i) => {
          await waitFor(() => lines(agents[i], /applied config .*added \[s4\]/).length > 0, `ce${i} applies s4`, 60_000, 5);
          applied[i] = Date.now();
        }),
      ]);
      const t4 = await tokenFile(4);
      const tStart = Date.now();
      agents[4] = await startCe(4, t4);
      const tForwarding = Date.now();
      await waitFor(() => reach(1, 4), "ce1 → ce4", 20_000, 0);
      const tReached = Date.now();
      for (const i of [2, 3]) assert.ok(await reach(i, 4), `ce${i} → ce4`);
      assert.ok(await reach(4, 1), "ce4 → ce1");
      writeFileSync(stop, "");
      await waitFor(() => !Number.isNaN(sentCount(tx)), "sender stopped");
      await waitFor(() => received(rx).distinct >= sentCount(tx), "stream drained", 5000).catch(() => {});
      const r = received(rx);
      console.log(`# site 4 added: ce1..ce3 applied it ${[1, 2, 3].map((i) => applied[i] - tCommitted).join(" / ")} ms after the controller logged the add-site ` +
        `(seen by polling every 5 ms); CE 4 enrolled and forwarding ${tForwarding - tStart} ms after its start, ` +
        `ce1 → ce4 ping answered ${tReached - tForwarding} ms after that; stream ce1 → ce2: sent ${sentCount(tx)}, received ${r.distinct} distinct (${r.count} datagrams)`);
      assert.equal(r.distinct, sentCount(tx), "zero loss on the stream between the other sites");
      assert.equal(r.count, r.distinct, "no duplicates");
      await rx.stop();

      // ---- 3. site 3 removed: its peers drop it; its CE drops its VPN state
      await ctl("remove-site", "v", "s3");
      for (const i of [1, 2, 4]) await waitFor(() => lines(agents[i], /applied config .*removed \[s3\]/).length > 0, `ce${i} drops s3`, 20_000, 10);
      const code = await agents[3].exited;
      assert.equal(code, 1, "the removed CE stops with status 1");
      assert.match(agents[3].stderr, /site-removed.*dropped its VPN state: removed peers \[s1, s2, s4\], keys zeroed/);
      for (const f of ["config.json", "ce.key", "ce.pem"]) assert.ok(!existsSync(join(agentState(3), f)), `ce3's ${f} is gone`);
      assert.ok(!(await reach(1, 3)), "ce1 no longer reaches site 3");

      // ---- 4. controller stopped: traffic goes on; a CE restarts without it
      await controller.stop("SIGTERM");
      for (const i of [1, 2, 4]) await waitFor(() => lines(agents[i], /push channel down/).length > 0, `ce${i} notices`, 20_000, 20);
      assert.ok(await reach(1, 2) && await reach(4, 2), "traffic goes on without the controller");
      await agents[2].stop("SIGTERM");
      agents[2] = await startCe(2);
      assert.match(agents[2].stderr, /controller unreachable .*starting with the last config applied/);
      assert.ok(await reach(1, 2) && await reach(2, 4), "ce2, restarted without token or controller, forwards with its stored config");

      // ---- controller back: CEs reconnect and hear the next change
      controller = await startController();
      for (const i of [1, 2, 4]) await waitFor(() => lines(agents[i], /push channel connected/).length >= (i === 2 ? 1 : 2), `ce${i} reconnects`, 60_000, 50);
      await ctl("add-site", "v", "s5", "--prefix", "10.5.0.0/16", "--wan", `inet=${wan(5)}`);
      for (const i of [1, 2, 4]) await waitFor(() => lines(agents[i], /applied config .*added \[s5\]/).length > 0, `ce${i} hears of s5`, 20_000, 10);
      assert.ok(await reach(1, 2), "traffic after the reconnect");
    } finally {
      await lab.teardown();
      assertNoNamespacesLeft(lab);
    }
  });
});
