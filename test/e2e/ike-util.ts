// Shared by the `wesp up` IKEv2 end-to-end tests (ike-up.test.ts, ike-mesh.test.ts):
// config documents for CEs whose peers have `ike` blocks, and waiting on
// `wesp status --json` until IKE says what the test needs.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { waitFor } from "../helpers/netns.ts";
import { status } from "./forwarder-util.ts";

export interface IkePeerDoc {
  name: string;
  address: string;
  prefixes: string[];
  initiate: boolean;
  /** ESP in UDP (NAT-T, IKE moves to the NAT-T port after IKE_SA_INIT) or raw ESP (IKE stays on 500). */
  encap: "udp" | "raw";
  psk: string;
  /** Extra `ike` fields (dpd, retry, lifetime, proposals). */
  ike?: Record<string, unknown>;
  /** The peer's ESP mode (docs/config.md); default tunnel. */
  mode?: "tunnel" | "transport-ipip" | "transport-gre";
}

/** Ports other than IKE's 500 and NAT-T's 4500 (node.ike_port, the WAN port's and the peers' `port`). */
export interface IkePorts {
  ike?: number;
  natt?: number;
}

/** A CE's config document: one WAN port, the TUN, its prefixes, one IKE peer each. */
export function ikeNode(dir: string, name: string, wan: string, local: string[], peers: IkePeerDoc[], ports: IkePorts = {}): object {
  const natt = ports.natt ?? 4500;
  return {
    version: 1,
    node: {
      name,
      wan: [{ name: "wan", address: wan, port: natt, encap: peers.length && peers.every((p) => p.encap === "raw") ? "raw" : "udp" }],
      tun: { name: "wesp0", mtu: 1400 },
      local_prefixes: local,
      control: { socket: join(dir, `${name}.sock`) },
      state_dir: join(dir, `${name}-state`),
      workers: 1,
      ...(ports.ike !== undefined ? { ike_port: ports.ike } : {}),
    },
    peers: peers.map((p) => ({
      name: p.name, address: p.address, port: natt, prefixes: p.prefixes, mode: p.mode ?? "tunnel", nat_t: p.encap === "udp",
      ike: { auth: { psk: p.psk }, initiate: p.initiate, ...(p.ike ?? {}) },
    })),
  };
}

/** Writes a config document (mode 0600: it holds a PSK); returns its path. */
export function writeConfig(dir: string, file: string, doc: object): string {
  const path = join(dir, file);
  writeFileSync(path, JSON.stringify(doc, null, 1), { mode: 0o600 });
  return path;
}

export interface IkeChild {
  spiIn: number;
  spiOut: number;
}

/** `wesp status --json` until the IKE peer `peer` is up with a CHILD_SA the data plane sends on; returns the status. */
export async function ikeUp(sock: string, peer: string, timeoutMs = 30_000, not?: (c: IkeChild) => boolean): Promise<any> {
  let st: any;
  await waitFor(async () => {
    st = await status(sock).catch(() => undefined);
    const ike = st?.ike?.find((p: any) => p.name === peer);
    const dp = st?.peers?.find((p: any) => p.name === peer);
    const c = ike?.childSas?.[0];
    return ike?.state === "up" && c !== undefined && dp?.outbound?.spi === c.spiOut && !(not?.(c) ?? false);
  }, `IKE peer ${peer} up on ${sock}`, timeoutMs, 100);
  return st;
}

/** The IKE status of `peer` in a status answer. */
export function ikeOf(st: any, peer: string): any {
  return st.ike?.find((p: any) => p.name === peer);
}
