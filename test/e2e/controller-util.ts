// Shared by the controller e2e tests: one bridge (ns "sw") that namespaces
// join on their "wan" interface, a /24 address each; the controller and the
// operator's `wesp ctl` in a namespace.
import assert from "node:assert/strict";
import { run, waitFor, type Lab, type Netns, type LabProcess } from "../helpers/netns.ts";
import { WESP_BIN } from "./forwarder-util.ts";

/** Makes the bridge; resolves to `attach(ns, bridgePort, address)`. */
export async function wanBridge(lab: Lab): Promise<(ns: Netns, port: string, addr: string) => Promise<void>> {
  const sw = await lab.ns("sw");
  await run(["ip", "-n", sw.name, "link", "add", "br0", "type", "bridge"]);
  await sw.up("br0");
  return async (ns, port, addr) => {
    await lab.veth(ns, "wan", sw, port);
    await sw.ip("link", "set", port, "master", "br0");
    await ns.addr("wan", `${addr}/24`);
  };
}

/** The bridge, the controller's namespace on it (CTL) and one namespace per name, the i-th (from 1) at wanAddr(i): `ce[i]`. */
export async function labOnBridge(lab: Lab, names: string[]): Promise<{ ctlNs: Netns; ce: Netns[] }> {
  const attach = await wanBridge(lab);
  const ctlNs = await lab.ns("ctl");
  await attach(ctlNs, "pctl", CTL);
  const ce: Netns[] = [];
  for (const [k, name] of names.entries()) {
    ce[k + 1] = await lab.ns(name);
    await attach(ce[k + 1], `p${k + 1}`, wanAddr(k + 1));
  }
  return { ctlNs, ce };
}

/** Where the controller e2e tests run their controller, and the CEs' addresses on the bridge and behind their TUN. */
export const CTL = "192.0.2.100";
export const CTL_URL = `https://${CTL}:8443`;
export const wanAddr = (i: number) => `192.0.2.${i}`;
export const lanAddr = (i: number) => `10.${i}.0.1`;

/** Lines of `p`'s stderr that match `re`. */
export const lines = (p: LabProcess, re: RegExp) => p.stderr.split("\n").filter((l) => re.test(l));

/** `wesp controller` in `ns` with its state in `state`, once it serves (STUN as `stun`: off or HOST:PORT). */
export async function startController(ns: Netns, state: string, stun: string): Promise<LabProcess> {
  const p = ns.spawn([process.execPath, WESP_BIN, "controller", "--state", state, "--listen", `${CTL}:8443`, "--stun", stun]);
  await waitFor(() => /^https:/m.test(p.stdout) || !p.running, "controller up", 60_000, 20);
  assert.ok(p.running, `controller exited: ${p.stderr}`);
  return p;
}

/** Runs `wesp ctl ARGS` in `ns` against that controller; resolves to its output (a refusal fails the test). */
export function operator(ns: Netns, state: string): (...args: string[]) => Promise<string> {
  return async (...args) => {
    const r = await ns.exec([process.execPath, WESP_BIN, "ctl", "--state", state, "--url", CTL_URL, ...args]);
    assert.equal(r.code, 0, `wesp ctl ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
}
