// Builds the demo's network (plan.ts) in namespaces: the WAN bridge, the NAT,
// three CEs and three site hosts, with addresses, routes and forwarding. The
// routes into each CE's TUN are added later (routesIntoTun), once `wesp up`
// has made the device.
import { IF, NAT_INSIDE, NS, SITES, WAN_LEN, type Site } from "./plan.ts";
import type { Lab } from "../lab/lab.ts";
import { setUpNat } from "./nat.ts";

/**
 * Turns a namespace into an IPv4/IPv6 router; no reverse-path filter (asymmetric
 * paths via the TUN). Written to /proc/sys by sh, not by sysctl: procps is one
 * Debian package fewer to need (/proc/sys/net shows the writer's namespace).
 */
async function router(lab: Lab, ns: string): Promise<void> {
  const set = Object.entries(ROUTER_SYSCTLS).map(([k, v]) => `echo ${v} > /proc/sys/net/${k}`);
  await lab.at(ns).run(["sh", "-ec", set.join("; ")]);
}

const ROUTER_SYSCTLS = { "ipv4/ip_forward": 1, "ipv6/conf/all/forwarding": 1, "ipv4/conf/all/rp_filter": 0, "ipv4/conf/default/rp_filter": 0 };

async function addr(lab: Lab, ns: string, ifname: string, cidr: string): Promise<void> {
  // nodad: an IPv6 address is usable at once instead of after duplicate address detection
  await lab.at(ns).ip("addr", "add", cidr, "dev", ifname, ...(cidr.includes(":") ? ["nodad"] : []));
}

/** The whole topology of plan.ts, without the TUN routes; `nat: false` (no nft) routes site C instead of translating it. */
export async function buildTopology(lab: Lab, opts: { nat: boolean } = { nat: true }): Promise<void> {
  await lab.ns(NS.wan);
  await lab.ns(NS.nat);
  for (const s of SITES) {
    await lab.ns(NS.ce(s));
    await lab.ns(NS.host(s));
  }

  // The "Internet": one bridge, so a single capture on it sees every outer packet once.
  await lab.at(NS.wan).ip("link", "add", IF.bridge, "type", "bridge");
  await lab.at(NS.wan).ip("link", "set", IF.bridge, "up");
  const attach = async (label: string, peerNs: string, peerIf: string) => {
    await lab.veth(lab.at(NS.wan), IF.wanPort(label), lab.at(peerNs), peerIf);
    await lab.at(NS.wan).ip("link", "set", IF.wanPort(label), "master", IF.bridge);
  };

  for (const s of SITES) {
    const ce = NS.ce(s);
    const host = NS.host(s);
    await router(lab, ce);
    if (s.behindNat) await lab.veth(lab.at(NS.nat), IF.natInside, lab.at(ce), IF.ceWan);
    else await attach(s.id, ce, IF.ceWan);
    // A wire carries datagrams of at most its MTU: wesp sends ESP-in-UDP as UDP_SEGMENT trains
    // (docs/io.md, offloads), which a veth would pass on whole; gso_max_segs 1 makes the CE's
    // WAN port cut them as a NIC would, so the capture shows one ESP packet per frame.
    await lab.at(ce).ip("link", "set", "dev", IF.ceWan, "gso_max_segs", "1");
    await addr(lab, ce, IF.ceWan, `${s.wan}/${s.behindNat ? NAT_INSIDE.len : WAN_LEN}`);
    if (s.behindNat) await lab.at(ce).ip("route", "add", "default", "via", NAT_INSIDE.nat);

    await lab.veth(lab.at(ce), IF.ceLan, lab.at(host), IF.hostLan);
    await addr(lab, ce, IF.ceLan, `${s.gateway.v4}/${s.lanLen.v4}`);
    await addr(lab, ce, IF.ceLan, `${s.gateway.v6}/${s.lanLen.v6}`);
    await addr(lab, host, IF.hostLan, `${s.host.v4}/${s.lanLen.v4}`);
    await addr(lab, host, IF.hostLan, `${s.host.v6}/${s.lanLen.v6}`);
    await lab.at(host).ip("route", "add", "default", "via", s.gateway.v4);
    await lab.at(host).ip("-6", "route", "add", "default", "via", s.gateway.v6);
  }

  await attach(NS.nat, NS.nat, IF.natOutside);
  await router(lab, NS.nat);
  await setUpNat(lab, opts.nat);
}

/**
 * Routes the other sites' prefixes into `wesp0` of `site`'s CE. `replace`,
 * so it does not matter whether `wesp up` installed them already.
 */
export async function routesIntoTun(lab: Lab, site: Site): Promise<void> {
  for (const other of SITES) {
    if (other.id === site.id) continue;
    await lab.at(NS.ce(site)).ip("route", "replace", other.prefixes[0], "dev", IF.tun);
    await lab.at(NS.ce(site)).ip("-6", "route", "replace", other.prefixes[1], "dev", IF.tun);
  }
}
