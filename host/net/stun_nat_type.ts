// NAT behaviour discovery (RFC 5780 §4.3, §4.4) for one WAN port, against a
// STUN server with an alternate address (wesp controller --stun-alternate):
// how the NAT maps the port (the "NAT type" a WAN port registers, net2cloud
// §3) and which senders it lets back in — whether peers can reach the port
// at the address STUN gave, or only the server can.
//
//   mapping (§4.3), each request from the same local port:
//     I   → primary address, primary port      X1 (and OTHER-ADDRESS)
//         X1 = local: no NAT
//     II  → alternate address, primary port    X2; X2 = X1: endpoint-independent
//     III → alternate address, alternate port  X3; X3 = X2: address-dependent,
//                                                  else address-and-port-dependent
//   filtering (§4.4), both to the primary:
//     II  CHANGE-REQUEST ip+port: answered → endpoint-independent
//     III CHANGE-REQUEST port:    answered → address-dependent,
//                                 else address-and-port-dependent
// A filtering test that gets no answer is the expected outcome, not an
// error: it runs with a short retransmission schedule of its own. The
// filtering tests run right after test I, before anything was sent to the
// alternate address or port: a NAT with address-dependent filtering would
// otherwise already let those in (RFC 5780 §4.4).
import { canonicalAddress } from "../config/addr.ts";
import { binding, udpTransport, StunError, type DiscoverOptions, type StunServerAddress } from "./stun_client.ts";

export type MappingBehaviour = "no-nat" | "endpoint-independent" | "address-dependent" | "address-and-port-dependent";
export type FilteringBehaviour = "endpoint-independent" | "address-dependent" | "address-and-port-dependent";

export interface NatBehaviour {
  publicAddress: string;
  publicPort: number;
  mapping: MappingBehaviour;
  filtering: FilteringBehaviour;
}

const same = (a: StunServerAddress, b: StunServerAddress) => canonicalAddress(a.host) === canonicalAddress(b.host) && a.port === b.port;

export interface ClassifyOptions extends DiscoverOptions {
  /** Retransmission schedule of the filtering tests, whose silence is an answer (default RTO 200 ms, Rc 3, Rm 4: 2.2 s). */
  probe?: { rtoMs: number; rc: number; rm: number };
}

/** Classifies the NAT in front of wanAddress:wanPort. Rejects when the server has no alternate address (no OTHER-ADDRESS). */
export async function classifyNat(
  wanAddress: string, wanPort: number, server: StunServerAddress, opts: ClassifyOptions = {},
): Promise<NatBehaviour> {
  const own = !opts.transport;
  const t = opts.transport ?? (await udpTransport(wanAddress, wanPort));
  try {
    const one = await binding(t, server, opts);
    const other = one.other;
    if (!other) throw new StunError(`STUN server ${server.host}:${server.port} gave no OTHER-ADDRESS: it has no alternate address (RFC 5780 §4.2)`);
    const probe = { ...opts, ...(opts.probe ?? { rtoMs: 200, rc: 3, rm: 4 }), timeoutMs: undefined };
    const answered = (change: { ip: boolean; port: boolean }, from: StunServerAddress) =>
      binding(t, server, { ...probe, change, expectFrom: from }).then(() => true, (e: StunError) => {
        if (e.code !== undefined) throw e; // an error response (420: no CHANGE-REQUEST support) is not silence
        return false;
      });
    let filtering: FilteringBehaviour;
    if (await answered({ ip: true, port: true }, other)) filtering = "endpoint-independent";
    else if (await answered({ ip: false, port: true }, { host: server.host, port: other.port })) filtering = "address-dependent";
    else filtering = "address-and-port-dependent";
    const x1 = one.mapped;
    let mapping: MappingBehaviour;
    if (same(x1, { host: wanAddress, port: wanPort })) mapping = "no-nat";
    else {
      const x2 = (await binding(t, { host: other.host, port: server.port }, opts)).mapped;
      if (same(x2, x1)) mapping = "endpoint-independent";
      else {
        const x3 = (await binding(t, other, opts)).mapped;
        mapping = same(x3, x2) ? "address-dependent" : "address-and-port-dependent";
      }
    }
    return { publicAddress: x1.host, publicPort: x1.port, mapping, filtering };
  } finally {
    if (own) t.close?.();
  }
}
