// A veth pair joining two namespaces of a lab.
import { run } from "../util/proc.ts";
import type { Netns } from "./namespace.ts";

/**
 * A veth pair with end `aIf` in `a` and `bIf` in `b` (the same namespace for a
 * pair inside one), both up, with `mtu` when given. The ends are created
 * directly in their namespaces, so no name is ever taken in the root namespace
 * and deleting a namespace deletes its end. Names are at most 15 bytes (IFNAMSIZ).
 */
export async function veth(a: Netns, aIf: string, b: Netns, bIf: string, opts: { mtu?: number } = {}): Promise<void> {
  const mtu = opts.mtu === undefined ? [] : ["mtu", String(opts.mtu)];
  // "name" spelled out: a bare short name like "a" would parse as the keyword "address"
  await run(["ip", "link", "add", "name", aIf, "netns", a.name, ...mtu, "type", "veth", "peer", "name", bIf, "netns", b.name, ...mtu]);
  await a.up(aIf);
  await b.up(bIf);
}
