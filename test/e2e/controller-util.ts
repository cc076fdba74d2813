// Shared by the controller e2e tests: one bridge (ns "sw") that namespaces
// join on their "wan" interface, a /24 address each.
import { run, type Lab, type Netns } from "../helpers/netns.ts";

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
