// The lab of the IKE stress tests (ike-hostile.test.ts): wesp's IKE responder
// (ike-peer.ts) alone in one namespace, and everyone else — the attacker, a
// flood from many addresses, a genuine initiator — in the other.
//
//   responder (wic…-R)  r 10.99.0.1 ═══════ a  (wic…-A) 10.99.0.2 attacker
//                                              10.99.0.3 capture, 10.99.0.4 genuine
//                                              10.99.1.1… the flood's addresses
//
// Namespaces are named `wic<pid>-<n>-<label>` (a test Lab; `<WESP_NS_PREFIX>ic…` when set); `sweepStale` removes those of test
// processes that died without tearing down.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Lab, sweepStale, waitFor, type Netns, type LabProcess } from "../helpers/netns.ts";
import type { IkePeerText } from "../../host/ike/config.ts";
import { eventsOf, type WespEvent } from "./ike-lab.ts";

export const RESPONDER = "10.99.0.1";
export const ATTACKER = "10.99.0.2";
export const CAPTURE = "10.99.0.3";
export const GENUINE = "10.99.0.4";
export const PORTS = { ike: 500, natt: 4500 };
export const PROPOSALS = { ike: ["aes128gcm16-prfsha256-x25519"], esp: ["aes128gcm16"] };
export const PSK = "wesp-ike-stress-psk-0123456789";
/** `wic`, or under WESP_NS_PREFIX (a runner's own namespaces) `<that>ic`. */
const NS_PREFIX = process.env.WESP_NS_PREFIX ? `${process.env.WESP_NS_PREFIX}ic` : "wic";

/** The flood's i-th source address (0-based). */
export const floodAddress = (i: number) => `10.99.1.${i + 1}`;

export interface StressTopo {
  lab: Lab;
  nsR: Netns;
  nsA: Netns;
}

/** Both namespaces, the link, and `floodAddresses` extra addresses on the attacker's side. */
export async function buildStressTopo(floodAddresses = 0): Promise<StressTopo> {
  sweepStale(NS_PREFIX);
  const lab = new Lab(NS_PREFIX);
  const nsR = await lab.ns("R");
  const nsA = await lab.ns("A");
  await lab.veth(nsR, "r", nsA, "a");
  await nsR.addr("r", `${RESPONDER}/16`);
  for (const a of [ATTACKER, CAPTURE, GENUINE]) await nsA.addr("a", `${a}/16`);
  for (let i = 0; i < floodAddresses; i++) await nsA.addr("a", `${floodAddress(i)}/16`);
  return { lab, nsR, nsA };
}

/** The initiator's side of the configuration (the responder takes any address and identity). */
export function initiatorPeer(local: string, id: string): IkePeerText {
  return { name: id, local, remote: RESPONDER, localId: id, psk: PSK, ...PROPOSALS, localTs: ["192.168.1.0/24"], remoteTs: ["192.168.2.0/24"], ports: PORTS };
}

/** Starts ike-peer.ts in `ns` with `opts` ({peer, role, …}); resolves once its sockets are bound. */
export async function startPeer(t: StressTopo, ns: Netns, label: string, opts: object): Promise<LabProcess> {
  const path = join(t.lab.dir, `${label}.json`);
  writeFileSync(path, JSON.stringify(opts));
  const p = ns.spawn([process.execPath, "--import", "tsx", join(import.meta.dirname, "ike-peer.ts"), path], { stdin: true });
  await waitFor(() => eventsOf(p).some((e) => e.type === "ready") || !p.running, `${label} ready`, 20_000);
  if (!p.running) throw new Error(`${label} exited: ${p.stderr}`);
  return p;
}

/** wesp's responder for any address, with `o` (cookieThreshold, halfOpen…) on top; quiet. */
export function startResponder(t: StressTopo, o: object): Promise<LabProcess> {
  const peer: IkePeerText = { name: "stress", local: RESPONDER, remote: "0.0.0.0", psk: PSK, ...PROPOSALS, localTs: ["192.168.2.0/24"], remoteTs: ["192.168.1.0/24"], ports: PORTS };
  return startPeer(t, t.nsR, "responder", { peer, role: "responder", anyRemote: true, quiet: true, ...o });
}

export interface PeerStats extends WespEvent {
  endpoint: Record<string, number>;
  transport: Record<string, number>;
  perDatagram: Record<string, number>;
  sas: number;
  halfOpen: number;
  rss: number;
  heapUsed: number;
  maxRssKiB: number;
}

/** Asks a running ike-peer.ts for its counters and memory ("stats" on stdin). */
export async function stats(p: LabProcess): Promise<PeerStats> {
  const before = eventsOf(p).filter((e) => e.type === "stats").length;
  p.child.stdin!.write("stats\n");
  await waitFor(() => eventsOf(p).filter((e) => e.type === "stats").length > before || !p.running, "stats", 10_000, 10);
  if (!p.running) throw new Error(`peer exited: ${p.stderr}`);
  return eventsOf(p).filter((e) => e.type === "stats").pop() as PeerStats;
}

/** Datagrams the responder has put under a reason: the endpoint's one per datagram, and the NAT-T port's non-IKE ones. */
export const accounted = (s: PeerStats) =>
  Object.values(s.perDatagram).reduce((a, b) => a + b, 0) + Object.values(s.transport).reduce((a, b) => a + b, 0);
