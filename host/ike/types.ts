// What the IKE state machine takes and gives: configuration, the path a
// datagram travels, and the events the SA-lifecycle module (host/sa/) consumes.
// No I/O here: the state machine returns datagrams to send and events; the
// transport (transport.ts) moves bytes, timers are the caller's (`tick(now)`).
import type { Lifetime, Suite } from "../config/model.ts";
import type { CertAuth } from "./certs.ts";
import type { ProposalSpec } from "./proposals.ts";
import type { TrafficSelector } from "./payloads.ts";

/** A CHILD_SA's ESP mode (RFC 4301 §4.1); transport is asked for with USE_TRANSPORT_MODE (RFC 7296 §1.3.1, child_mode.ts). */
export type ChildMode = "tunnel" | "transport";

/** An identity (RFC 7296 §3.5): ID Type and Identification Data. */
export interface Identity {
  idType: number;
  data: Uint8Array;
}

export interface IkeSaConfig {
  /** A name for logs and events (e.g. the peer's name in the config). */
  name: string;
  localId: Identity;
  /** The identity the peer must prove; undefined accepts any identity that knows the PSK. */
  remoteId?: Identity;
  /** Shared secret for AUTH method 2 (§2.15); unused when `certs` is set. */
  psk: Uint8Array;
  /**
   * Certificates instead of the PSK: both sides authenticate with Digital Signatures
   * (RFC 7427, AUTH method 14), CERT and CERTREQ as RFC 7296 §3.6/§3.7 (certs.ts).
   */
  certs?: CertAuth;
  /**
   * RFC 7383: the largest IP datagram an IKE message may take before it goes as
   * Encrypted Fragments (IP and UDP headers and the non-ESP marker included);
   * default 1280 (strongSwan's fragment_size), 0 = never fragment nor announce it.
   */
  fragmentSize?: number;
  /** IKE proposals in order of preference; the first one's first DH group goes in KE (§1.2). */
  ikeProposals: ProposalSpec[];
  espProposals: ProposalSpec[];
  /** Our side's traffic (TSi when we initiate) and the peer's (TSr). */
  localTs: TrafficSelector[];
  remoteTs: TrafficSelector[];
  /** Transport mode is requested as initiator and required as responder (child_mode.ts). */
  mode: ChildMode;
  lifetime: Lifetime;
  /** IKE ports: 500 and 4500 by default (RFC 7296 §2.23, RFC 3948); ours and the peer's. */
  ports: { ike: number; natt: number };
  /** Pretend a NAT is in the way (§2.23 allows it) so ESP goes over UDP. */
  forceEncap?: boolean;
  /** Send INITIAL_CONTACT in IKE_AUTH (§2.4); default true. */
  initialContact?: boolean;
  /** Retransmission of requests (§2.1): first timeout, doubled each time, number of sends in all. */
  retransmit?: { baseMs: number; tries: number };
  /** Liveness check (§2.4) after this many seconds without an authenticated message from the peer; 0/undefined = none. */
  dpdSeconds?: number;
  /** Seconds between NAT-keepalives while a NAT is in front of us (RFC 3948 §2.3); 0/undefined = none. */
  keepaliveSeconds?: number;
  /** How long a responder waits for IKE_AUTH after answering IKE_SA_INIT; default 30 s. */
  halfOpenSeconds?: number;
}

/** Where a datagram came from or goes to. */
export interface Path {
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
}

export interface Outgoing {
  bytes: Uint8Array;
  /** A NAT-keepalive (RFC 3948 §2.3): sent as it is, without the non-ESP marker. */
  keepalive?: boolean;
  /** The transport prepends the non-ESP marker when `path.localPort` is the NAT-T port (RFC 3948 §2.2). */
  path: Path;
}

/** What the SA-lifecycle module needs to install one CHILD_SA (both directions). */
export interface ChildSaEstablished {
  type: "childSaEstablished";
  ike: string;
  /** SPI we receive on (we chose it) and the peer's, which we send with (§2.17, RFC 4303 §2.1). */
  spiIn: number;
  spiOut: number;
  suite: Suite;
  /** Cipher key, ‖ 4-byte salt for the AEADs: the layouts of host/config/model.ts `Suite`. */
  keyIn: Uint8Array;
  keyOut: Uint8Array;
  /** HMAC keys for the CBC suites; undefined for the AEADs. */
  authKeyIn?: Uint8Array;
  authKeyOut?: Uint8Array;
  esn: boolean;
  mode: ChildMode;
  /** UDP-encapsulated ESP (RFC 3948) when a NAT was detected or forced, else ESP proper. */
  encap: "udp" | "raw";
  path: Path;
  tsLocal: TrafficSelector[];
  tsRemote: TrafficSelector[];
  lifetime: Lifetime;
  /** Whether we initiated the exchange that created it. */
  initiator: boolean;
  /** For a rekey (§1.3.3, §2.8): our inbound SPI of the CHILD_SA it replaces, which is deleted after. */
  rekeyOf?: number;
  /**
   * §2.8.1: a simultaneous rekey by the peer won (the lowest nonce was ours), so we delete
   * this one at once and keep the old pair until the peer deletes it: never send on it.
   */
  redundant?: boolean;
}

/** How the peer of an IKE SA proved itself (§2.15): its PSK, or the certificate whose key signed its AUTH (RFC 7427). */
export type PeerAuth = { method: "psk" } | { method: "certificate"; subject: string; serial: string };

/**
 * Everything IKE reports. `ike` is the configuration's name; `sa` names the IKE SA
 * itself as "SPIi_SPIr" in hex (SPIr all zero until the responder has chosen one),
 * so two IKE SAs with one peer (e.g. around INITIAL_CONTACT) stay apart.
 */
export type IkeEvent = (
  | { type: "ikeSaEstablished"; ike: string; spiI: string; spiR: string; initiator: boolean; proposal: string; natDetected: boolean; behindNat: boolean; initialContact: boolean; peerAuth: PeerAuth }
  | ChildSaEstablished
  /**
   * `deleting`: our inbound SPI of a CHILD_SA the peer set up in a mode we did not
   * ask for (§1.3.1): it is never installed, and an INFORMATIONAL Delete follows.
   * `rekeyOf`: our rekey of the CHILD_SA with that inbound SPI was refused (only that one's rekey is retried).
   */
  | { type: "childSaFailed"; ike: string; notify: number; detail: string; deleting?: number; peerRequest?: true; rekeyOf?: number }
  /** `why` "not-found": the peer answered our rekey with CHILD_SA_NOT_FOUND; a new CHILD_SA is being created (§2.25). */
  | { type: "childSaDeleted"; ike: string; spisIn: number[]; why?: "not-found" }
  /**
   * `why` "rekeyed": its CHILD_SAs live on in its successor (§1.3.2); "redundant": one of the
   * two new IKE SAs of a simultaneous rekey (§2.8.2), deleted without CHILD_SAs ever on it.
   */
  | { type: "ikeSaDeleted"; ike: string; byPeer: boolean; why?: "initial-contact" | "rekeyed" | "redundant" }
  /** The IKE SA `sa` was rekeyed into `newSa` (§1.3.2); its CHILD_SAs now belong to `newSa`. */
  | { type: "ikeSaRekeyed"; ike: string; newSa: string }
  /**
   * `childSaFailed` / `ikeRekeyFailed` with `peerRequest`: we refused the peer's request (its rekey,
   * its new CHILD_SA); without it: the peer refused ours, or its answer would not do.
   */
  | { type: "ikeRekeyFailed"; ike: string; notify: number; detail: string; peerRequest?: true }
  | { type: "failed"; ike: string; reason: FailReason; detail: string }
  | { type: "refused"; ike: string; reason: string; detail: string }
) & { sa?: string };

/** Why an IKE SA could not be set up (or was dropped). */
export type FailReason =
  | "timeout" // no response after every retransmission (§2.1); for a liveness check: the peer is dead (§2.4)
  | "half-open" // a responder SA whose IKE_AUTH never came
  | "peer-error" // the peer answered with an error notification (§3.10.1)
  | "no-proposal" // nothing acceptable in the peer's SA (§2.7)
  | "bad-ke" // KE data refused (RFC 6989) or group mismatch
  | "auth" // AUTH did not verify, or the identity is not the configured one (§2.15)
  | "protocol"; // a response that breaks the exchange's rules

export interface Step {
  send: Outgoing[];
  events: IkeEvent[];
}

/** What the state machine needs from outside: randomness, a clock, SPI allocation. */
export interface Deps {
  random(n: number): Uint8Array;
  now(): number;
  /**
   * A fresh inbound ESP SPI, ≥ 256 (RFC 4303 §2.1) and unique on this node, for
   * a CHILD_SA of IKE peer `peer`. The SPI also picks the packet worker that
   * receives it (node.workers > 1): with `sameWorkerAs` (a rekeyed CHILD_SA's
   * inbound SPI, or a worker index) one for that worker, else for the worker
   * holding the fewest of the peer's CHILD_SAs (host/ike/runtime.ts SpiAllocator).
   */
  allocateSpi(peer: string, sameWorkerAs?: number): number;
}
