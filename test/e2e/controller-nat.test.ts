// Issue 8 item 5 end to end: a zero-touch CE behind an nftables masquerade
// learns its WAN port's public address and port with STUN through its running
// data plane, registers them (PUT /v1/ce/wan/inet), and the controller hands
// them to its peer, whose config and data plane then name the NAT's mapping,
// not the private address it could never reach (net2cloud §5.2).
//
//   ctl 192.0.2.100 (wesp controller, STUN :3478)
//      │  bridge (ns "sw") 192.0.2.0/24
//   ce1 .1 ─┤
//           └─ nat .50 (masquerade to :20000-20999) ── 10.0.0.1 ─ 10.0.0.2 ce2
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Lab, waitFor, type LabProcess } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { assertNoNamespacesLeft } from "./io-util.ts";
import { WESP_BIN } from "./forwarder-util.ts";
import { CTL, CTL_URL as URL_, operator, startController, wanBridge } from "./controller-util.ts";
import { masqueradeRules } from "../../host/demo/nat.ts";

const NAT_PUBLIC = "192.0.2.50";
const NFT = masqueradeRules("wan");

describe("controller + a CE behind a NAT (STUN, registration, distribution)", { skip: requireTools(["netns", "nft", "sysctl"], { why: "e2e NAT'd CE" }) }, () => {
  it("the NAT'd CE registers its mapping and its peer's config names it; and its data plane sends there", { timeout: 240_000 }, async () => {
    const lab = new Lab("wsi-");
    try {
      const attach = await wanBridge(lab);
      const ctlNs = await lab.ns("ctl");
      await attach(ctlNs, "pctl", CTL);
      const ce1 = await lab.ns("ce1");
      await attach(ce1, "p1", "192.0.2.1");
      const nat = await lab.ns("nat");
      await attach(nat, "pnat", NAT_PUBLIC);
      const ce2 = await lab.ns("ce2");
      await lab.veth(ce2, "wan", nat, "lan");
      await ce2.addr("wan", "10.0.0.2/24");
      await nat.addr("lan", "10.0.0.1/24");
      await ce2.route("default", "10.0.0.1");
      await nat.forwarding();
      await nat.run(["nft", "-f", "-"], { input: NFT });

      const state = join(lab.dir, "controller");
      const controller = await startController(ctlNs, state, `${CTL}:3478`);
      const ctl = operator(ctlNs, state);
      await ctl("create-vpn", "v", "--keying", "controller");
      await ctl("add-site", "v", "s1", "--prefix", "10.1.0.0/16", "--wan", "inet=192.0.2.1");
      await ctl("add-site", "v", "s2", "--prefix", "10.2.0.0/16", "--wan", "inet=10.0.0.2");
      const agents: LabProcess[] = [];
      for (const [i, ns] of [[1, ce1], [2, ce2]] as const) {
        const tf = join(lab.dir, `s${i}.token`);
        await ctl("token", "v", `s${i}`, "--ttl", "600", "--out", tf);
        agents[i] = ns.spawn([process.execPath, WESP_BIN, "up", "--controller", URL_, "--token", tf, "--state", join(lab.dir, `ce${i}-state`),
          "--tun-address", `10.${i}.0.1/16`, "--control", join(lab.dir, `ce${i}.sock`), "--poll", "30"]);
      }
      for (const i of [1, 2]) {
        await waitFor(() => /forwarding on/.test(agents[i].stderr) || !agents[i].running, `CE ${i} forwarding`, 60_000, 20)
          .catch((e: Error) => assert.fail(`${e.message}: ${agents[i].stderr}`));
        assert.ok(agents[i].running, `CE ${i} exited: ${agents[i].stderr}`);
      }

      // ce2 registers what the NAT made of 10.0.0.2:4500; ce1 (public, no NAT) registers itself as it is.
      await waitFor(() => /WAN port inet: registered public/.test(agents[2].stderr), "ce2 registers", 30_000, 20)
        .catch((e: Error) => assert.fail(`${e.message}: ${agents[2].stderr}`));
      const m = /WAN port inet: registered public 192\.0\.2\.50:(\d+) \(behind a NAT\)/.exec(agents[2].stderr);
      assert.ok(m, `ce2 registered the NAT's address: ${agents[2].stderr}`);
      const port = Number(m[1]);
      assert.ok(port >= 20000 && port <= 20999, `the masquerade's port range: ${port}`);
      await waitFor(() => /WAN port inet: registered public 192\.0\.2\.1:4500 \(no NAT\)/.test(agents[1].stderr), "ce1 registers (no NAT)", 30_000, 20);
      assert.match(controller.stderr, /WAN port v\/s2\/inet registered: public 192\.0\.2\.50:\d+, NAT unknown/);

      // The controller distributes it: ce1's applied config names s2 at the NAT's mapping.
      const s2In = () => {
        const c = JSON.parse(readFileSync(join(lab.dir, "ce1-state", "config.json"), "utf8")) as { config: { peers: { name: string; address: string; port: number }[] } };
        return c.config.peers.find((p) => p.name === "s2");
      };
      await waitFor(() => s2In()?.address === NAT_PUBLIC, "ce1 applies s2's public side", 20_000, 20);
      assert.equal(s2In()!.port, port);
      // A change ce1 applied — unless ce1 fetched its first config after ce2 registered (version 4:
      // create-vpn, two add-sites, ce2's registration; ce1's own changes nothing) and started with it.
      const startedAt = Number(/forwarding on .*config version (\d+)/.exec(agents[1].stderr)?.[1]);
      assert.ok(Number.isInteger(startedAt), `ce1 logs the config version it started with: ${agents[1].stderr}`);
      if (startedAt < 4) assert.match(agents[1].stderr, /applied config .*changed \[s2\]/);

      // ...and its data plane sends to it (wesp status: the peer's address and port in the worker).
      const st = JSON.parse((await ce1.run([process.execPath, WESP_BIN, "status", "--json", "--control", join(lab.dir, "ce1.sock")]))) as { peers: { name: string; address: string; port: number }[] };
      const peer = st.peers.find((p) => p.name === "s2")!;
      assert.deepEqual([peer.address, peer.port], [NAT_PUBLIC, port], "ce1's data plane sends to s2's NAT mapping");
      // Not asserted here: traffic right after the change. The SA installer now moves a peer whose
      // address or port alone changed in place (host/sa/install.ts movePeer: same SAs, sequence
      // numbers and replay windows), which test/e2e/reload-move.test.ts holds with numbered streams.
      // The next timer round re-learns the same mapping and registers nothing.
      assert.equal((agents[2].stderr.match(/WAN port inet: registered/g) ?? []).length, 1);
      await controller.stop("SIGTERM");
    } finally {
      await lab.teardown();
      assertNoNamespacesLeft(lab);
    }
  });
});
