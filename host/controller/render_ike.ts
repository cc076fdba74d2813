// The `ike` block of a peer in an IKE-keyed VPN (issue 8 item 2): the CEs of
// a pair negotiate their SAs with IKEv2 (RFC 7296), each proving itself with
// the certificate the controller's CA issued it at enrolment, so no secret is
// shared and none is kept by the controller.
//
//   auth       our certificate and key and the controller's CA as the only
//              trust anchor — files in the agent's state directory
//              (host/agent/state.ts CE_FILES) — and the peer's revoked serials:
//              the controller's CRL (RFC 5280 §5) cut to the one certificate
//              holder this block accepts. A revocation thus changes exactly
//              that peer's block: the IKE runtime restarts that peer alone (a
//              DELETE for a live IKE SA) and refuses its next IKE_AUTH. (A CRL
//              file in every block would restart every IKE peer at every
//              revocation: a changed CRL changes each block's fingerprint.)
//   identities ID_RFC822_ADDR `site@vpn` (RFC 7296 §3.5), which the CA puts in
//              each certificate as its one rfc822Name (RFC 4945 §3.1)
//   initiate   exactly one side of each pair: the one behind a NAT (only it
//              can open the mapping), else the newer site (higher site id)
//   proposals  the VPN's suite, for the IKE SA and the CHILD_SAs
//   lifetime   the VPN's SA lifetimes (ikeLifetime below)
//   dpd        a hub-and-spoke VPN's liveness interval, when it sets one: it
//              bounds how long a spoke takes to fail over to the backup hub
import { IKE_LIFETIME, type ControllerSuite, type SaLifetime, type Site, type Vpn, type WanPort } from "./store/model.ts";
import { siteIdentity } from "../util/pki.ts";
import { CE_FILES } from "../agent/state.ts";

export interface CeIke {
  auth: { cert: string; key: string; ca: string; revoked_serials?: string[] };
  local_id: { type: "rfc822"; value: string };
  remote_id: { type: "rfc822"; value: string };
  proposals: { ike: string[]; esp: string[] };
  initiate: boolean;
  /** A hub-and-spoke VPN's liveness interval (topology `dpd`); else the config's default. */
  dpd?: number;
  lifetime?: CeIkeLifetime;
}

/** docs/config.md `peers[].ike.lifetime`. */
export interface CeIkeLifetime {
  ike_seconds: number;
  child_seconds: number;
  child_bytes?: number;
  child_packets?: number;
  rekey_margin: number;
  rekey_jitter: number;
}

/** The IKE SA's own lifetime unless a CHILD_SA lives longer (docs/config.md `ike_seconds` default). */
const IKE_SA_SECONDS = 14400;

/**
 * The VPN's SA lifetimes as an IKE peer's `lifetime` block, so IKE-keyed CEs
 * rekey when the operator asked, as controller-keyed ones do (item 6): the
 * hard lifetime is the CHILD_SA's (RFC 4301 §4.4.2.1); its rekey starts at
 * the soft one (90 % of the hard one when none is set, the static SAs' rule),
 * up to a tenth of that earlier at random so both ends rarely rekey at once
 * (RFC 7296 §2.8.1 gives the rekey to whichever starts first). Byte and packet
 * hard limits carry over; soft byte and packet limits have no IKE field — the
 * core asks for the rekey at 90 % of the hard ones. The IKE SA lives at least
 * as long as a CHILD_SA, so the one rekey margin fits both (config/semantic.ts).
 * `checkNewVpn` refuses what this cannot express.
 */
export function ikeLifetime(l: SaLifetime): CeIkeLifetime {
  const { minSeconds, maxSeconds, defaultChildSeconds } = IKE_LIFETIME;
  // clamped for VPNs stored before checkNewVpn held IKE-keyed lifetimes to this range
  const child = Math.min(maxSeconds, Math.max(minSeconds, l.seconds ?? defaultChildSeconds));
  const soft = l.softSeconds !== undefined && l.softSeconds < child ? l.softSeconds : Math.floor(child * 0.9);
  return {
    ike_seconds: Math.max(IKE_SA_SECONDS, child),
    child_seconds: child,
    ...(l.bytes !== undefined ? { child_bytes: l.bytes } : {}),
    ...(l.packets !== undefined ? { child_packets: l.packets } : {}),
    rekey_margin: child - soft,
    rekey_jitter: Math.min(180, Math.floor(soft / 10)),
  };
}

/**
 * Proposals per suite (strongSwan keywords, docs/ike.md "Algorithms"): the
 * IKE SA with the same AEAD, PRF-HMAC-SHA-256 and a 128-bit-strength group
 * (ECP-256; Curve25519 beside ChaCha20, as RFC 8031 pairs them).
 */
const PROPOSALS: Record<ControllerSuite, { ike: string; esp: string }> = {
  "aes-256-gcm": { ike: "aes256gcm16-prfsha256-ecp256", esp: "aes256gcm16" },
  "aes-128-gcm": { ike: "aes128gcm16-prfsha256-ecp256", esp: "aes128gcm16" },
  "chacha20-poly1305": { ike: "chacha20poly1305-prfsha256-x25519", esp: "chacha20poly1305" },
};

/** A port a NAT translates (or may: `unknown`): peers cannot open a mapping through it. */
function natted(p: WanPort): boolean {
  return p.natType !== "none";
}

/**
 * Whether `me` (on port `mine`) initiates towards `other` (on `theirs`): the
 * side behind a NAT does, since only its outgoing IKE_SA_INIT opens a mapping
 * its peer can answer through; when both or neither are, the higher site id
 * (unique in the VPN, never reused): the newer site, which knows when it comes
 * up — its peers heard of it when it was added, before its CE enrolled, so
 * their attempts would time out into retry backoff and its tunnels would wait
 * for the next retry instead of coming up as soon as it starts (issue 8 item 4:
 * within 2 s). Both ends compute the same answer, the
 * opposite of each other's, from the same ports (render.ts choosePorts).
 */
export function initiates(me: Site, mine: WanPort, other: Site, theirs: WanPort): boolean {
  if (natted(mine) !== natted(theirs)) return natted(mine);
  return me.siteId > other.siteId;
}

/** `me`'s `ike` block for its peer `other`; `revoked`: `other`'s revoked serials (hex). */
export function ikeBlock(vpn: Vpn, me: Site, mine: WanPort, other: Site, theirs: WanPort, revoked: string[]): CeIke {
  const p = PROPOSALS[vpn.suite];
  return {
    auth: { cert: CE_FILES.cert, key: CE_FILES.key, ca: CE_FILES.ca, ...(revoked.length ? { revoked_serials: [...revoked] } : {}) },
    local_id: { type: "rfc822", value: siteIdentity(vpn.name, me.name) },
    remote_id: { type: "rfc822", value: siteIdentity(vpn.name, other.name) },
    proposals: { ike: [p.ike], esp: [p.esp] },
    initiate: initiates(me, mine, other, theirs),
    lifetime: ikeLifetime(vpn.saLifetime),
    ...(vpn.topology.kind === "hub-and-spoke" && vpn.topology.dpd !== undefined ? { dpd: vpn.topology.dpd } : {}),
  };
}
