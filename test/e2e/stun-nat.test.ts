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
//   wsgN-ce  10.0.0.2 ──veth── 10.0.0.1  wsgN-nat  198.51.100.2 ──veth── 198.51.100.1  wsgN-srv
//   (client, WAN port :4500)   (masquerade to :20000-20999)               198.51.100.3
//                                                     (wesp controller --stun :3478 --stun-alternate .3)
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireTools } from "../helpers/require.ts";
import { masqueradeRules, parseConntrack } from "../../host/demo/nat.ts";

const P = `wsg${process.pid % 100000}`;
const NS = { ce: `${P}-ce`, nat: `${P}-nat`, srv: `${P}-srv` };
const WESP = join(import.meta.dirname, "..", "..", "bin", "wesp.js");
const ip = (...a: string[]) => execFileSync("ip", a, { stdio: ["ignore", "pipe", "pipe"] });
const inNs = (ns: string, argv: string[], input?: string) =>
  execFileSync("ip", ["netns", "exec", ns, ...argv], { encoding: "utf8", input, timeout: 120_000 });

const NFT = masqueradeRules("n-out");

function build(): void {
  for (const ns of Object.values(NS)) {
    ip("netns", "add", ns);
    ip("-n", ns, "link", "set", "lo", "up");
  }
  ip("link", "add", "c-wan", "netns", NS.ce, "type", "veth", "peer", "name", "n-in", "netns", NS.nat);
  ip("link", "add", "n-out", "netns", NS.nat, "type", "veth", "peer", "name", "s-wan", "netns", NS.srv);
  const cfg: [string, string, string][] = [[NS.ce, "c-wan", "10.0.0.2/24"], [NS.nat, "n-in", "10.0.0.1/24"], [NS.nat, "n-out", "198.51.100.2/24"], [NS.srv, "s-wan", "198.51.100.1/24"], [NS.srv, "s-wan", "198.51.100.3/24"]];
  for (const [ns, dev, addr] of cfg) {
    ip("-n", ns, "addr", "add", addr, "dev", dev);
    ip("-n", ns, "link", "set", dev, "up");
  }
  ip("-n", NS.ce, "route", "add", "default", "via", "10.0.0.1");
  inNs(NS.nat, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  inNs(NS.nat, ["nft", "-f", "-"], NFT);
}

describe("STUN through a NAT", { skip: requireTools(["netns", "nft", "sysctl"], { why: "e2e STUN behind nftables masquerade" }) }, () => {
  test("the CE learns the masqueraded address and port conntrack shows, by socket and through the data plane", async () => {
    const state = mkdtempSync(join(tmpdir(), "wsg-ctl-"));
    let ctl: ReturnType<typeof spawn> | undefined;
    try {
      build();
      ctl = spawn("ip", ["netns", "exec", NS.srv, process.execPath, WESP, "controller", "--state", state, "--listen", "198.51.100.1:0", "--stun", "198.51.100.1:3478", "--stun-alternate", "198.51.100.3"], { stdio: ["ignore", "pipe", "pipe"] });
      let err = "";
      ctl.stderr!.on("data", (c) => (err += c));
      const deadline = Date.now() + 60_000;
      while (!/stun: answering Binding requests on 198\.51\.100\.1:3478/.test(err)) {
        assert.ok(Date.now() < deadline && ctl.exitCode === null, `controller did not start its STUN responder:\n${err}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const out = inNs(NS.ce, [process.execPath, "--import", "tsx", join(import.meta.dirname, "stun-nat-child.ts"), "10.0.0.2", "198.51.100.1", "3478", "198.51.100.9"]);
      const r = JSON.parse(out.trim().split("\n").at(-1)!);
      const flows = parseConntrack(inNs(NS.nat, ["cat", "/proc/net/nf_conntrack"])).filter((m) => m.remote === "198.51.100.1:3478");
      assert.equal(flows.length, 1, `one STUN flow in conntrack: ${JSON.stringify(flows)}`);
      assert.equal(flows[0].inside, "10.0.0.2:4500");
      const [addr, port] = flows[0].outside.split(":");
      const want = { publicAddress: addr, publicPort: Number(port), natted: true };
      assert.equal(want.publicAddress, "198.51.100.2");
      assert.ok(want.publicPort >= 20000 && want.publicPort <= 20999, `masqueraded port ${port}`);
      assert.deepEqual(r.viaSocket, want, "plain socket on the WAN port");
      assert.deepEqual(r.viaDataPlane, [{ wan: "wan", local: { host: "10.0.0.2", port: 4500 }, ...want }], "the data plane's NAT-T socket (learnWanPorts): the same mapping");
      assert.deepEqual(r.behaviour, { publicAddress: want.publicAddress, publicPort: want.publicPort, mapping: "endpoint-independent", filtering: "address-and-port-dependent" });
      const cli = JSON.parse(inNs(NS.ce, [process.execPath, WESP, "stun", "198.51.100.1:3478", "--from", "10.0.0.2:4500", "--nat-type", "--json"]));
      assert.deepEqual(cli, r.behaviour, "wesp stun --nat-type says the same");
      assert.ok(r.toHost >= 1, "the response reached the host as TO_HOST");
      assert.equal(r.ikeHandedUp, 0, "STUN is not handed to the IKE side");
      ctl.kill("SIGTERM");
      await new Promise((done) => ctl!.once("exit", done));
      // Every request was answered, the filtering probes too: their answers are what the NAT dropped.
      assert.match(err, /stun: answered \d+, errors 0, rateLimited 0, malformed 0, ignored 0/);
    } finally {
      if (ctl && ctl.exitCode === null) ctl.kill("SIGKILL");
      for (const ns of Object.values(NS)) {
        try { ip("netns", "del", ns); } catch { /* not made */ }
      }
      rmSync(state, { recursive: true, force: true });
    }
  });
});
