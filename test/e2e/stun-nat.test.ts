// A CE behind an nftables masquerade learns its WAN port's public address
// and port from the controller's STUN responder (RFC 8489; net2cloud §5.2),
// and they are the NAT's: equal to the translated source conntrack holds
// for that flow, and different from the private ones. Once over a plain
// socket on the WAN port, once through a running data plane's NAT-T socket
// on the same port (the core hands the STUN response up, not to ESP). And
// RFC 5780 discovery names the masquerade's behaviour: Linux keeps one
// mapping per source whatever the destination (endpoint-independent), and
// conntrack lets in only replies from where the flow went
// (address-and-port-dependent filtering). `wesp stun --nat-type` prints the same.
//
//   ce       10.0.0.2 ──veth── 10.0.0.1  nat       198.51.100.2 ──veth── 198.51.100.1  srv      (a test Lab)
//   (client, WAN port :4500)   (masquerade to :20000-20999)               198.51.100.3
//                                                     (wesp controller --stun :3478 --stun-alternate .3)
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireTools } from "../helpers/require.ts";
import { Lab, waitFor, type LabProcess, type Netns } from "../helpers/netns.ts";
import { masqueradeRules, parseConntrack } from "../../host/demo/nat.ts";

const WESP = join(import.meta.dirname, "..", "..", "bin", "wesp.js");
const NFT = masqueradeRules("n-out");
const LONG = { timeoutMs: 120_000 };

async function build(lab: Lab): Promise<{ ce: Netns; nat: Netns; srv: Netns }> {
  const ns = { ce: await lab.ns("ce"), nat: await lab.ns("nat"), srv: await lab.ns("srv") };
  await lab.veth(ns.ce, "c-wan", ns.nat, "n-in");
  await lab.veth(ns.nat, "n-out", ns.srv, "s-wan");
  const cfg: [Netns, string, string][] = [[ns.ce, "c-wan", "10.0.0.2/24"], [ns.nat, "n-in", "10.0.0.1/24"], [ns.nat, "n-out", "198.51.100.2/24"], [ns.srv, "s-wan", "198.51.100.1/24"], [ns.srv, "s-wan", "198.51.100.3/24"]];
  for (const [n, dev, addr] of cfg) await n.addr(dev, addr);
  await ns.ce.route("default", "10.0.0.1");
  await ns.nat.run(["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  await ns.nat.run(["nft", "-f", "-"], { input: NFT });
  return ns;
}

describe("STUN through a NAT", { skip: requireTools(["netns", "nft", "sysctl"], { why: "e2e STUN behind nftables masquerade" }) }, () => {
  test("the CE learns the masqueraded address and port conntrack shows, by socket and through the data plane", async () => {
    const state = mkdtempSync(join(tmpdir(), "wsg-ctl-"));
    const lab = new Lab();
    try {
      const ns = await build(lab);
      const ctl: LabProcess = ns.srv.spawn([process.execPath, WESP, "controller", "--state", state, "--listen", "198.51.100.1:0", "--stun", "198.51.100.1:3478", "--stun-alternate", "198.51.100.3"]);
      await waitFor(() => /stun: answering Binding requests on 198\.51\.100\.1:3478/.test(ctl.stderr) || !ctl.running, "the controller's STUN responder", 60_000);
      assert.ok(ctl.running, `controller did not start its STUN responder:\n${ctl.stderr}`);
      const out = await ns.ce.run([process.execPath, "--import", "tsx", join(import.meta.dirname, "stun-nat-child.ts"), "10.0.0.2", "198.51.100.1", "3478", "198.51.100.9"], LONG);
      const r = JSON.parse(out.trim().split("\n").at(-1)!);
      const flows = parseConntrack(await ns.nat.run(["cat", "/proc/net/nf_conntrack"])).filter((m) => m.remote === "198.51.100.1:3478");
      assert.equal(flows.length, 1, `one STUN flow in conntrack: ${JSON.stringify(flows)}`);
      assert.equal(flows[0].inside, "10.0.0.2:4500");
      const [addr, port] = flows[0].outside.split(":");
      const want = { publicAddress: addr, publicPort: Number(port), natted: true };
      assert.equal(want.publicAddress, "198.51.100.2");
      assert.ok(want.publicPort >= 20000 && want.publicPort <= 20999, `masqueraded port ${port}`);
      assert.deepEqual(r.viaSocket, want, "plain socket on the WAN port");
      assert.deepEqual(r.viaDataPlane, [{ wan: "wan", local: { host: "10.0.0.2", port: 4500 }, ...want }], "the data plane's NAT-T socket (learnWanPorts): the same mapping");
      assert.deepEqual(r.behaviour, { publicAddress: want.publicAddress, publicPort: want.publicPort, mapping: "endpoint-independent", filtering: "address-and-port-dependent" });
      const cli = JSON.parse(await ns.ce.run([process.execPath, WESP, "stun", "198.51.100.1:3478", "--from", "10.0.0.2:4500", "--nat-type", "--json"], LONG));
      assert.deepEqual(cli, r.behaviour, "wesp stun --nat-type says the same");
      assert.ok(r.toHost >= 1, "the response reached the host as TO_HOST");
      assert.equal(r.ikeHandedUp, 0, "STUN is not handed to the IKE side");
      await ctl.stop("SIGTERM");
      // Every request was answered, the filtering probes too: their answers are what the NAT dropped.
      assert.match(ctl.stderr, /stun: answered \d+, errors 0, rateLimited 0, malformed 0, ignored 0/);
    } finally {
      await lab.teardown();
      rmSync(state, { recursive: true, force: true });
    }
  });
});
