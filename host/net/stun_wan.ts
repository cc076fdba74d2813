// Each Internet-facing WAN port's public address and port, learned through
// the running data plane's own NAT-T socket on that port (net2cloud §3,
// §5.2: what a CE registers with its controller for its peers). One STUN
// transaction per port, all at once; a port that gets no answer has an
// error instead, the others are unaffected. Trusted (MPLS-facing) ports are
// skipped: their peers reach them at their private address.
import type { WanPort } from "../config/model.ts";
import { discover, forwarderTransport, type DiscoverOptions, type StunDataPlane, type StunServerAddress } from "./stun_client.ts";

export interface WanMapping {
  wan: string;
  /** The port's local address and UDP port. */
  local: StunServerAddress;
  publicAddress?: string;
  publicPort?: number;
  natted?: boolean;
  /** Why nothing was learned (no answer, an error response, no UDP socket on that port). */
  error?: string;
}

export async function learnWanPorts(
  dp: StunDataPlane, wans: readonly WanPort[], server: StunServerAddress, opts: DiscoverOptions = {},
): Promise<WanMapping[]> {
  const ports = wans.map((w, i) => ({ w, i })).filter(({ w }) => !w.trusted && w.address.family === (server.host.includes(":") ? 6 : 4));
  return Promise.all(ports.map(async ({ w, i }): Promise<WanMapping> => {
    const local = { host: w.address.text, port: w.port };
    try {
      const m = await discover(w.address.text, w.port, server, { ...opts, transport: forwarderTransport(dp, i) });
      return { wan: w.name, local, ...m };
    } catch (e) {
      return { wan: w.name, local, error: (e as Error).message };
    }
  }));
}
