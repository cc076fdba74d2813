// Issue 8 item 2, end to end in network namespaces: zero-touch CEs whose
// certificate is their IKEv2 identity (a VPN keyed `ike`, the default). No
// pre-shared secret, and no SA key in the controller: each pair of CEs
// negotiates its SAs with the certificates the controller's CA issued them.
//
//        ctl 192.0.2.100 (wesp controller)
//           │                all on one bridge (ns "sw"), 192.0.2.0/24;
//   ce1 ────┼──── ce2        site i: prefix 10.i.0.0/16, TUN address 10.i.0.1
//   .1      │      .2
//          ce3 .3
//
// 1. three sites enrol from token files alone; every pair brings an IKE SA up
//    (exactly one side initiates: the higher site id), `wesp status` shows it
//    authenticated by the peer's certificate, and the full mesh pings;
// 2. site 3 revoked (`wesp ctl revoke`): its CE drops its VPN state; its
//    peers apply the revocation (s3's block only). A rogue copy of CE 3 —
//    its certificate, key and last config, kept before the revocation, run
//    as a plain `wesp up CONFIG` that ignores the controller — is refused at
//    IKE_AUTH by both peers (their log and status say "revoked"), both when
//    it initiates and when they do;
// 3. site 2 removed: CE 1 deletes its IKE SA with CE 2 (an IKE DELETE, RFC
//    7296 §1.4.1) and no longer has the peer.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { cpSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Lab, waitFor, type Netns, type LabProcess } from "../helpers/netns.ts";
import { requireTools } from "../helpers/require.ts";
import { assertNoNamespacesLeft } from "./io-util.ts";
import { WESP_BIN, status } from "./forwarder-util.ts";
import { CTL, CTL_URL, lanAddr, lines, operator, startController, wanAddr as wan, wanBridge } from "./controller-util.ts";
import { ikeOf, ikeUp } from "./ike-util.ts";

describe("controller + zero-touch CEs keyed by IKEv2 with their enrolled certificates", { skip: requireTools(["netns", "python3"], { why: "e2e controller and CE agents" }) }, () => {
  it("3 CEs from tokens negotiate a full mesh; a revoked site is refused at IKE_AUTH; a removed one gets a DELETE", { timeout: 240_000 }, async () => {
    const lab = new Lab(`${process.env.WESP_NS_PREFIX ?? "wci-"}`);
    const agents: LabProcess[] = [];
    try {
      const attach = await wanBridge(lab);
      const ctlNs = await lab.ns("ctl");
      await attach(ctlNs, "pctl", CTL);
      const ce: Netns[] = [];
      for (let i = 1; i <= 3; i++) {
        ce[i] = await lab.ns(`ce${i}`);
        await attach(ce[i], `p${i}`, wan(i));
      }

      const state = join(lab.dir, "controller");
      await startController(ctlNs, state, "off");
      const ctl = operator(ctlNs, state);
      assert.match(await ctl("create-vpn", "v"), /keying ike/, "IKE is the default keying");
      for (const i of [1, 2, 3]) await ctl("add-site", "v", `s${i}`, "--prefix", `10.${i}.0.0/16`, "--wan", `inet=${wan(i)}`);
      const agentState = (i: number) => join(lab.dir, `ce${i}-state`);
      const sock = (i: number) => join(lab.dir, `ce${i}.sock`);
      await Promise.all([1, 2, 3].map(async (i) => {
        const token = join(lab.dir, `s${i}.token`);
        await ctl("token", "v", `s${i}`, "--ttl", "600", "--out", token);
        agents[i] = ce[i].spawn([process.execPath, WESP_BIN, "up", "--controller", CTL_URL, "--token", token,
          "--state", agentState(i), "--tun-address", `${lanAddr(i)}/16`, "--control", sock(i), "--poll", "30"]);
        await waitFor(() => /forwarding on/.test(agents[i].stderr) || !agents[i].running, `CE ${i} forwarding`, 60_000, 20);
        assert.ok(agents[i].running, `CE ${i} exited ${agents[i].exitCode}: ${agents[i].stderr}`);
      }));
      const reach = async (from: number, to: number) => (await ce[from].ping(lanAddr(to), 2, 2).catch(() => ({ received: 0 }))).received > 0;

      // ---- 1. IKE SAs between every pair, certificate-authenticated; full mesh
      for (const [a, b] of [[1, 2], [1, 3], [2, 3]]) {
        const sa = ikeOf(await ikeUp(sock(a), `s${b}`, 60_000), `s${b}`);
        const sb = ikeOf(await ikeUp(sock(b), `s${a}`, 60_000), `s${a}`);
        assert.equal(sb.role, "initiator", `s${b} (the higher site id: the newer site) initiates towards s${a}`);
        assert.equal(sa.role, "responder");
        assert.equal(sa.ikeSa, sb.ikeSa, "one IKE SA per pair");
        assert.deepEqual({ ...sa.peerAuth, serial: "" }, { method: "certificate", subject: `CN=s${b}@v`, serial: "" });
        assert.deepEqual({ ...sb.peerAuth, serial: "" }, { method: "certificate", subject: `CN=s${a}@v`, serial: "" });
        assert.match(sa.proposal, /aes-gcm-256/, "the VPN's suite");
      }
      for (const [a, b] of [[1, 2], [1, 3], [2, 3], [2, 1], [3, 1], [3, 2]]) assert.ok(await reach(a, b), `ce${a} → ce${b} over IKE-negotiated SAs`);
      for (const i of [1, 2, 3]) {
        const saved = readFileSync(join(agentState(i), "config.json"), "utf8");
        assert.doesNotMatch(saved, /key_in|key_out|psk/, `ce${i}'s config holds no key`);
        assert.match(agents[i].stderr, /IKE SA \S+ established .*peer authenticated by certificate "CN=s\d@v"/);
      }
      const text = await ce[1].exec([process.execPath, WESP_BIN, "status", "--control", sock(1)]);
      assert.match(text.stdout, /ike s2 {2}up {2}responder .*cert "CN=s2@v"/, "wesp status names the peer's certificate");

      // ---- 2. site 3 revoked: its peers refuse its certificate at IKE_AUTH
      const rogue = join(lab.dir, "rogue3");
      cpSync(agentState(3), rogue, { recursive: true });
      await ctl("revoke", "v", "s3");
      assert.equal(await agents[3].exited, 1, "the revoked CE stops");
      assert.match(agents[3].stderr, /certificate-revoked.*dropped its VPN state: removed peers \[s1, s2\]/);
      for (const i of [1, 2]) {
        await waitFor(() => lines(agents[i], /applied config .*changed \[s3\] unchanged 1$/).length > 0, `ce${i} applies the revocation (s3's IKE restarted, the other peer left alone)`, 30_000, 10);
      }
      const saved = JSON.parse(readFileSync(join(rogue, "config.json"), "utf8")) as { config: { node: Record<string, unknown>; peers: { ike: { initiate: boolean } }[] } };
      const doc = {
        ...saved.config,
        node: { ...saved.config.node, tun: { addresses: [`${lanAddr(3)}/16`] }, control: { socket: join(lab.dir, "rogue3.sock") } },
        peers: saved.config.peers.map((p) => ({ ...p, ike: { ...p.ike, initiate: true, retry: { min: 1, max: 2 } } })),
      };
      writeFileSync(join(rogue, "rogue.json"), JSON.stringify(doc), { mode: 0o600 });
      const r3 = ce[3].spawn([process.execPath, WESP_BIN, "up", join(rogue, "rogue.json")]);
      const revoked = (i: number) => lines(agents[i], /ike: .*s3.*CN=s3@v.* is revoked/);
      for (const i of [1, 2]) await waitFor(() => revoked(i).length > 0, `ce${i} refuses the revoked s3`, 60_000, 20);
      for (const i of [1, 2]) {
        console.log(`# ce${i}: ${revoked(i)[0].trim()}`);
        const st = ikeOf(await status(sock(i)), "s3");
        assert.notEqual(st.state, "up", `ce${i} has no IKE SA with the revoked s3`);
        assert.ok(!(await reach(i, 3)), `ce${i} does not reach the revoked site`);
      }
      // and when the rogue initiates, the peers as responders refuse its IKE_AUTH (RFC 7296 §2.21.2)
      await waitFor(() => /the responder sent AUTHENTICATION_FAILED/.test(r3.stderr), "the rogue CE's IKE_AUTH refused by a responder", 30_000, 20);
      await r3.stop("SIGTERM");

      // ---- 3. site 2 removed: CE 1 deletes its IKE SA with it
      const sa12 = ikeOf(await status(sock(1)), "s2").ikeSa as string;
      await ctl("remove-site", "v", "s2");
      await waitFor(() => lines(agents[1], /applied config .*removed \[s2\]/).length > 0, "ce1 drops s2", 30_000, 10);
      // Both CEs learn of the removal at about the same time (CE 2 through the controller's refusal), so whichever
      // acts first sends the DELETE (RFC 7296 §1.4.1) and the other sees it deleted by the peer; either way the
      // IKE SA must end on both sides with one of the two.
      const gone = (peer: string) => new RegExp(`ike: peer ${peer}: (deleting IKE SA ${sa12} \\(DELETE sent|IKE SA ${sa12} .*deleted by the peer)`);
      await waitFor(() => lines(agents[1], gone("s2")).length > 0, "ce1's IKE SA with s2 is deleted (by ce1 or by s2)", 30_000, 10);
      assert.equal(await agents[2].exited, 1, "the removed CE stops");
      const seen = [...lines(agents[1], /ike: peer s2: .*delet/), ...lines(agents[2], /ike: peer s1: .*delet/)].map((l) => l.trim());
      console.log(`# ${seen.join(" | ")}`);
      assert.ok(lines(agents[2], gone("s1")).length > 0, "CE 2's side of the IKE SA is deleted too");
      assert.ok(
        lines(agents[1], new RegExp(`deleting IKE SA ${sa12} \\(DELETE sent`)).length + lines(agents[2], new RegExp(`deleting IKE SA ${sa12} \\(DELETE sent`)).length > 0,
        "one of the two sent a DELETE for it",
      );
      assert.equal(ikeOf(await status(sock(1)), "s2"), undefined, "s2 is no IKE peer of CE 1 any more");
    } catch (e) {
      for (const [i, a] of agents.entries()) if (a) console.log(`# ce${i} log:\n${a.stderr.split("\n").slice(-40).map((l) => `#   ${l}`).join("\n")}`);
      throw e;
    } finally {
      await lab.teardown();
      assertNoNamespacesLeft(lab);
    }
  });
});
