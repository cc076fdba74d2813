// IKEv2 protocol numbers: the IANA "Internet Key Exchange Version 2 (IKEv2)
// Parameters" registry, as RFC 7296 §3 defines the fields that carry them.
// Only the values wesp reads or writes are named; every other value still
// decodes (as a number) and is handled by the rules of §2.5 (ignore unless
// critical) or §3.10.1 (unknown notify types are ignored).

/** Exchange types, RFC 7296 §3.1. */
export const Exchange = {
  IKE_SA_INIT: 34,
  IKE_AUTH: 35,
  CREATE_CHILD_SA: 36,
  INFORMATIONAL: 37,
} as const;

/** Header flags, RFC 7296 §3.1 (bit 3 = Initiator, 4 = Version, 5 = Response). */
export const Flag = { INITIATOR: 0x08, VERSION: 0x10, RESPONSE: 0x20 } as const;

/** Next Payload values, RFC 7296 §3.2 (and RFC 7383 §2.5 for SKF). */
export const PayloadType = {
  NONE: 0,
  SA: 33,
  KE: 34,
  IDi: 35,
  IDr: 36,
  CERT: 37,
  CERTREQ: 38,
  AUTH: 39,
  NONCE: 40,
  NOTIFY: 41,
  DELETE: 42,
  VENDOR: 43,
  TSi: 44,
  TSr: 45,
  SK: 46,
  CP: 47,
  EAP: 48,
  SKF: 53,
} as const;

/** Protocol IDs in proposals, notifications and deletes, RFC 7296 §3.3.1. */
export const Protocol = { IKE: 1, AH: 2, ESP: 3 } as const;

/** Transform types, RFC 7296 §3.3.2. */
export const TransformType = { ENCR: 1, PRF: 2, INTEG: 3, DH: 4, ESN: 5 } as const;

/** Encryption transform IDs (IANA "Transform Type 1"). */
export const Encr = {
  AES_CBC: 12, // RFC 3602; key length attribute required (RFC 7296 §3.3.5)
  AES_GCM_16: 20, // RFC 4106 (ESP), RFC 5282 (IKE)
  CHACHA20_POLY1305: 28, // RFC 7634
} as const;

/** Pseudorandom functions (IANA "Transform Type 2"), RFC 4868. */
export const Prf = { HMAC_SHA2_256: 5, HMAC_SHA2_384: 6, HMAC_SHA2_512: 7 } as const;

/** Integrity algorithms (IANA "Transform Type 3"), RFC 4868. */
export const Integ = { NONE: 0, HMAC_SHA2_256_128: 12, HMAC_SHA2_384_192: 13, HMAC_SHA2_512_256: 14 } as const;

/** Diffie-Hellman groups (IANA "Transform Type 4"). */
export const DhGroup = { MODP_2048: 14, ECP_256: 19, CURVE25519: 31 } as const;

/** Extended Sequence Numbers (IANA "Transform Type 5"). */
export const Esn = { NO: 0, YES: 1 } as const;

/** Transform attribute types, RFC 7296 §3.3.5. */
export const Attribute = { KEY_LENGTH: 14 } as const;

/** Identification types, RFC 7296 §3.5. */
export const IdType = {
  IPV4_ADDR: 1,
  FQDN: 2,
  RFC822_ADDR: 3,
  IPV6_ADDR: 5,
  DER_ASN1_DN: 9,
  DER_ASN1_GN: 10,
  KEY_ID: 11,
} as const;

/** Authentication methods, RFC 7296 §3.8 (and RFC 7427 for 14). */
export const AuthMethod = { RSA_SIG: 1, SHARED_KEY_MIC: 2, DSS_SIG: 3, DIGITAL_SIGNATURE: 14 } as const;

/** Traffic selector types, RFC 7296 §3.13.1. */
export const TsType = { IPV4_ADDR_RANGE: 7, IPV6_ADDR_RANGE: 8 } as const;

/**
 * Notify message types, RFC 7296 §3.10.1. Below 16384 an error, from 16384 a
 * status; §3.10.1: "a type not recognized ... MUST be ignored" unless it is an
 * error type in a response, which means the request failed.
 */
export const Notify = {
  UNSUPPORTED_CRITICAL_PAYLOAD: 1,
  INVALID_IKE_SPI: 4,
  INVALID_MAJOR_VERSION: 5,
  INVALID_SYNTAX: 7,
  INVALID_MESSAGE_ID: 9,
  INVALID_SPI: 11,
  NO_PROPOSAL_CHOSEN: 14,
  INVALID_KE_PAYLOAD: 17,
  AUTHENTICATION_FAILED: 24,
  SINGLE_PAIR_REQUIRED: 34,
  NO_ADDITIONAL_SAS: 35,
  INTERNAL_ADDRESS_FAILURE: 36,
  FAILED_CP_REQUIRED: 37,
  TS_UNACCEPTABLE: 38,
  INVALID_SELECTORS: 39,
  TEMPORARY_FAILURE: 43,
  CHILD_SA_NOT_FOUND: 44,
  INITIAL_CONTACT: 16384,
  SET_WINDOW_SIZE: 16385,
  ADDITIONAL_TS_POSSIBLE: 16386,
  IPCOMP_SUPPORTED: 16387,
  NAT_DETECTION_SOURCE_IP: 16388,
  NAT_DETECTION_DESTINATION_IP: 16389,
  COOKIE: 16390,
  USE_TRANSPORT_MODE: 16391,
  REKEY_SA: 16393,
  ESP_TFC_PADDING_NOT_SUPPORTED: 16394,
  NON_FIRST_FRAGMENTS_ALSO: 16395,
  IKEV2_FRAGMENTATION_SUPPORTED: 16430, // RFC 7383 §2.3
  SIGNATURE_HASH_ALGORITHMS: 16431, // RFC 7427 §4
} as const;

/** First status type; notify types below it are errors (RFC 7296 §3.10.1). */
export const NOTIFY_STATUS_MIN = 16384;

/** Sizes fixed by RFC 7296 §3. */
export const HEADER_BYTES = 28; // §3.1
export const GENERIC_HEADER_BYTES = 4; // §3.2
export const SPI_BYTES = 8; // IKE SPIs, §3.1
export const NONCE_MIN = 16; // §3.9: "between 16 and 256 octets"
export const NONCE_MAX = 256;
/** IKE major version 2, minor 0 (§3.1: minor MUST be 0 when sending, ignored on receipt). */
export const VERSION = 0x20;
