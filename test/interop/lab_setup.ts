// The lab both interop tests run in: two customer edges joined by a WAN link, each
// with one site behind it, a charon for each edge, and the replay/forgery probe
// that checks strongSwan drops what it must.
//
//   siteL ──s── gl  ceL  wl ═══ 10.99.0.0/24 ═══ wr  ceR  gr ──s── siteR
//   192.168.1.2   .1     .1                      .2       .1   192.168.2.2
import { after, before } from "node:test";
import { exec, Lab, sweepStale, waitFor, type Netns } from "../helpers/netns.ts";
import { requireTools, type Need } from "../helpers/require.ts";
import { Charon, espDrops, type EspDrop, type Suite } from "./strongswan.ts";

export const WAN_L = "10.99.0.1";
export const WAN_R = "10.99.0.2";
export const SITE_L = "192.168.1.2";
export const SITE_R = "192.168.2.2";
export const NET_L = "192.168.1.0/24";
export const NET_R = "192.168.2.0/24";
export const PINGS = 3;
const PSK = "wesp-interop-psk-0123456789";

/**
 * Why the interop tests cannot run here, or false when they can (test/helpers/require.ts:
 * under CI a missing tool throws instead). `extra`: what one file needs besides the lab.
 */
export function labSkip(why: string, extra: Need[] = []): string | false {
  return requireTools(["netns", "python3", "sysctl", "charon", "kernel-libipsec", "swanctl", "tcpdump", "tshark", "scapy", ...extra], { why });
}

export interface Topo {
  lab: Lab;
  ceL: Netns;
  ceR: Netns;
  siteL: Netns;
  siteR: Netns;
}

/** `nsPrefix`: a test file's own namespace prefix (default NS_PREFIX, WESP_NS_PREFIX). */
export async function buildTopo(nsPrefix?: string): Promise<Topo> {
  const lab = new Lab(nsPrefix);
  const [ceL, ceR, siteL, siteR] = [await lab.ns("ceL"), await lab.ns("ceR"), await lab.ns("siteL"), await lab.ns("siteR")];
  await lab.veth(ceL, "wl", ceR, "wr");
  await ceL.addr("wl", `${WAN_L}/24`);
  await ceR.addr("wr", `${WAN_R}/24`);
  await lab.veth(ceL, "gl", siteL, "s");
  await ceL.addr("gl", "192.168.1.1/24");
  await siteL.addr("s", `${SITE_L}/24`);
  await siteL.route("default", "192.168.1.1");
  await lab.veth(ceR, "gr", siteR, "s");
  await ceR.addr("gr", "192.168.2.1/24");
  await siteR.addr("s", `${SITE_R}/24`);
  await siteR.route("default", "192.168.2.1");
  await ceL.forwarding();
  await ceR.forwarding();
  return { lab, ceL, ceR, siteL, siteR };
}

/**
 * Builds the topology before the enclosing describe's tests (sweeping leftovers of
 * dead runs first) and tears it down after them; call inside `describe`.
 * Returns a getter, since the topology exists only once `before` has run.
 */
export function useTopo(nsPrefix?: string): () => Topo {
  let topo: Topo | undefined;
  before(async () => {
    sweepStale();
    topo = await buildTopo(nsPrefix);
  });
  after(async () => {
    await topo?.lab.teardown();
  });
  return () => topo!;
}

/** Charon L on ceL and charon R on ceR, one PSK, tunnelling siteL's net to siteR's over `suite`. */
export function charons(t: Topo, suite: Suite): [Charon, Charon] {
  const common = { psk: PSK, suites: [suite] as Suite[] };
  return [
    new Charon(t.ceL, { name: `L-${suite}`, local: WAN_L, remote: WAN_R, localTs: [NET_L], remoteTs: [NET_R], ...common }),
    new Charon(t.ceR, { name: `R-${suite}`, local: WAN_R, remote: WAN_L, localTs: [NET_R], remoteTs: [NET_L], ...common }),
  ];
}

export const linkExists = async (ns: Netns, dev: string) => (await exec(["ip", "-n", ns.name, "link", "show", dev])).code === 0;

/**
 * Sends R, from L's WAN address, `esp` again (a replay) and a forgery of it: sequence
 * number set to `forgedSeq` (RFC 4303 §2.2: SN at offset 4) and one ciphertext/ICV bit
 * flipped. Returns the drops R's log then shows, once it shows two.
 */
export async function replayAndForge(ceL: Netns, R: Charon, esp: Uint8Array, forgedSeq: number): Promise<EspDrop[]> {
  const forged = Uint8Array.from(esp);
  new DataView(forged.buffer).setUint32(4, forgedSeq);
  forged[forged.length - 20] ^= 0x80;
  await ceL.sendUdp(WAN_L, 4500, WAN_R, 4500, esp);
  await ceL.sendUdp(WAN_L, 4500, WAN_R, 4500, forged);
  // waitFor resolves only on a truthy value: the list, never false
  return (await waitFor(() => {
    const d = espDrops(R.log());
    return d.length >= 2 && d;
  }, "strongSwan R to log both drops")) as EspDrop[];
}
