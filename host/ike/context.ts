// The state one IKE SA carries between exchanges (RFC 7296 §2.14–§2.15 need
// the nonces, both IKE_SA_INIT messages as sent, and the derived keys).
import type { X509Certificate } from "node:crypto";
import type { ChildRecord } from "./child_sa.ts";
import type { KeyExchange } from "./dh.ts";
import type { IkeSaKeys } from "./prf.ts";
import type { Chosen } from "./proposals.ts";
import type { SkKeys } from "./sk.ts";
import type { Deps, Identity, IkeSaConfig, Path } from "./types.ts";

export interface SaContext {
  cfg: IkeSaConfig;
  deps: Deps;
  /** We are the original initiator (§2.2: the I flag names this side). */
  initiator: boolean;
  spiI: Uint8Array;
  spiR: Uint8Array;
  path: Path;
  ni?: Uint8Array;
  nr?: Uint8Array;
  ke?: KeyExchange;
  /** DH group our KE uses (changes after INVALID_KE_PAYLOAD, §1.2). */
  group: number;
  /** COOKIE data to echo (§2.6). */
  cookie?: Uint8Array;
  ike?: Chosen;
  keys?: IkeSaKeys;
  /** IKE_SA_INIT request and response as sent: RealMessage1/2 of §2.15. */
  msg1?: Uint8Array;
  msg2?: Uint8Array;
  /** §2.23: a NAT rewrote our address / the peer's (natHere also when we pretend one, `forceEncap`). */
  natHere: boolean;
  natThere: boolean;
  /**
   * §2.23: the peer's NAT_DETECTION_DESTINATION_IP names another address or port than ours:
   * a NAT in front of us, as detected — never set by `forceEncap`, which the peer cannot tell
   * from a real NAT on its side, but which does not change what the peer saw us as.
   */
  behindNat?: boolean;
  /** The identity the peer authenticated as (§2.15), and whether it asked for INITIAL_CONTACT (§2.4). */
  peerId?: Identity;
  peerInitialContact?: boolean;
  /** RFC 7427 §4: the hashes the peer accepts in signatures (empty: it sent no notify). */
  peerSigHashes?: number[];
  /** RFC 7296 §3.7: the CA key hashes of the peer's CERTREQ. */
  peerCertReq?: Uint8Array[];
  /** RFC 7383 §2.3: both sides announced IKEV2_FRAGMENTATION_SUPPORTED. */
  fragmentation?: boolean;
  /** The peer's end-entity certificate, once its chain and AUTH verified. */
  peerCert?: X509Certificate;
  /** Our inbound ESP SPI for the CHILD_SA proposed in IKE_AUTH. */
  childSpiIn?: number;
  /** The CHILD_SAs this IKE SA has set up and not deleted. */
  children: ChildRecord[];
}

/** The SK keys for what we send and what we receive (§2.14: SK_ei/SK_ai protect the initiator's messages). */
export function skKeys(ctx: SaContext): { out: SkKeys; in: SkKeys } {
  const k = ctx.keys!;
  const c = ctx.ike!;
  const i: SkKeys = { encr: c.encr, integ: c.integ, encKey: k.skEi, integKey: k.skAi };
  const r: SkKeys = { encr: c.encr, integ: c.integ, encKey: k.skEr, integKey: k.skAr };
  return ctx.initiator ? { out: i, in: r } : { out: r, in: i };
}

export const hexSpi = (b: Uint8Array): string => Buffer.from(b).toString("hex");
