// Shared by the controller e2e tests: one bridge (ns "sw") that namespaces
// join on their "wan" interface, a /24 address each; the controller and the
// operator's `wesp ctl`, run in a namespace.
import assert from "node:assert/strict";
import { run, waitFor, type Lab, type Netns, type Spawned } from "../helpers/netns.ts";
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

/** Starts `wesp controller --state STATE …args` in `ns`; resolves once it listens (asserted running). */
export async function startController(ns: Netns, state: string, args: string[]): Promise<Spawned> {
  const p = ns.spawn([process.execPath, WESP_BIN, "controller", "--state", state, ...args]);
  await waitFor(() => /^https:/m.test(p.stdout) || !p.running, "controller up", 60_000, 20);
  assert.ok(p.running, `controller exited: ${p.stderr}`);
  return p;
}

/** `wesp ctl` run in `ns` against `url` with the controller's STATE: asserts it succeeded, resolves to its stdout. */
export function operatorIn(ns: Netns, state: string, url: string): (...args: string[]) => Promise<string> {
  return async (...args) => {
    const r = await ns.exec([process.execPath, WESP_BIN, "ctl", "--state", state, "--url", url, ...args]);
    assert.equal(r.code, 0, `wesp ctl ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
}
