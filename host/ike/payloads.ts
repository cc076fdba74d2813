// The payloads of RFC 7296 §3.4–§3.14 as typed values, with the codec for each
// body (what follows the 4-byte generic payload header, §3.2). Each decoder
// gets exactly its body and checks every length against it; the chain that
// carries the bodies is in message.ts.
import { IdType, PayloadType, Protocol, TsType, NONCE_MAX, NONCE_MIN } from "./constants.ts";
import { concatBytes, fail, ok, put16, u16, type Result } from "./result.ts";
import { decodeSa, encodeSa, type Proposal } from "./sa_payload.ts";

export interface SaPayload { kind: "sa"; proposals: Proposal[] }
/** §3.4: Diffie-Hellman Group Num and the public value. */
export interface KePayload { kind: "ke"; group: number; data: Uint8Array }
/** §3.5: IDi (35) or IDr (36). */
export interface IdPayload { kind: "id"; type: 35 | 36; idType: number; data: Uint8Array }
/** §3.6/§3.7: CERT (37) or CERTREQ (38), kept opaque for now. */
export interface CertPayload { kind: "cert"; type: 37 | 38; encoding: number; data: Uint8Array }
/** §3.8 */
export interface AuthPayload { kind: "auth"; method: number; data: Uint8Array }
/** §3.9 */
export interface NoncePayload { kind: "nonce"; data: Uint8Array }
/** §3.10: protocol 0 and an empty SPI unless the notification is about an SA. */
export interface NotifyPayload { kind: "notify"; protocol: number; spi: Uint8Array; notifyType: number; data: Uint8Array }
/** §3.11 */
export interface DeletePayload { kind: "delete"; protocol: number; spis: Uint8Array[] }
/** §3.12 */
export interface VendorPayload { kind: "vendor"; data: Uint8Array }
/** §3.13.1: one selector; addresses are 4 or 16 bytes per the type. */
export interface TrafficSelector {
  tsType: number;
  ipProtocol: number;
  startPort: number;
  endPort: number;
  start: Uint8Array;
  end: Uint8Array;
}
/** §3.13: TSi (44) or TSr (45). */
export interface TsPayload { kind: "ts"; type: 44 | 45; selectors: TrafficSelector[] }
/**
 * §3.14 Encrypted (46) or RFC 7383 Encrypted Fragment (53), still sealed:
 * `firstPayload` is the type of the first payload inside, `body` is
 * IV ‖ ciphertext ‖ ICV (for SKF preceded by Fragment Number and Total Fragments).
 */
export interface SkPayload { kind: "sk"; type: 46 | 53; firstPayload: number; body: Uint8Array }
/** Any other payload (CP, EAP, types unknown to us), kept as bytes with its critical bit (§2.5). */
export interface OpaquePayload { kind: "opaque"; type: number; critical: boolean; body: Uint8Array }

export type Payload =
  | SaPayload | KePayload | IdPayload | CertPayload | AuthPayload | NoncePayload
  | NotifyPayload | DeletePayload | VendorPayload | TsPayload | SkPayload | OpaquePayload;

/** The Next Payload number of a payload (§3.2). */
export function payloadType(p: Payload): number {
  switch (p.kind) {
    case "sa": return PayloadType.SA;
    case "ke": return PayloadType.KE;
    case "auth": return PayloadType.AUTH;
    case "nonce": return PayloadType.NONCE;
    case "notify": return PayloadType.NOTIFY;
    case "delete": return PayloadType.DELETE;
    case "vendor": return PayloadType.VENDOR;
    case "id": case "cert": case "ts": case "sk": case "opaque": return p.type;
  }
}

/** The selectors of the TSi (44) or TSr (45) payload among `ps`, if present. */
export function selectorsOf(ps: readonly Payload[], type: 44 | 45): TrafficSelector[] | undefined {
  for (const p of ps) if (p.kind === "ts" && p.type === type) return p.selectors;
  return undefined;
}

const KNOWN_TYPES = new Set<number>(Object.values(PayloadType));

/**
 * §2.5: the type of the first payload we do not recognize whose critical bit is
 * set, if any: "the message MUST be rejected" with UNSUPPORTED_CRITICAL_PAYLOAD
 * naming it. Payloads of known types (CP and EAP included) ignore the bit.
 */
export function unsupportedCritical(ps: readonly Payload[]): number | undefined {
  for (const p of ps) if (p.kind === "opaque" && p.critical && !KNOWN_TYPES.has(p.type)) return p.type;
  return undefined;
}

const TS_HEADER = 8; // type, protocol, length, start port, end port (§3.13.1)

/** Decodes the body of a payload of type `type`; `base` is the body's offset in the message. */
export function decodeBody(type: number, critical: boolean, b: Uint8Array, base: number): Result<Payload> {
  switch (type) {
    case PayloadType.SA: {
      const r = decodeSa(b, base);
      return r.ok ? ok({ kind: "sa", proposals: r.value }) : r;
    }
    case PayloadType.KE:
      if (b.length < 4) return fail("body-short", `KE body of ${b.length} bytes`, base);
      return ok({ kind: "ke", group: u16(b, 0), data: b.slice(4) });
    case PayloadType.IDi:
    case PayloadType.IDr: {
      if (b.length < 4) return fail("body-short", `ID body of ${b.length} bytes`, base);
      const idType = b[0];
      const data = b.slice(4);
      // §3.5: ID_IPV4_ADDR is "a single four (4) octet IPv4 address", ID_IPV6_ADDR sixteen.
      if ((idType === IdType.IPV4_ADDR && data.length !== 4) || (idType === IdType.IPV6_ADDR && data.length !== 16)) {
        return fail("id-length", `ID type ${idType} with ${data.length} bytes`, base + 4);
      }
      return ok({ kind: "id", type, idType, data });
    }
    case PayloadType.CERT:
    case PayloadType.CERTREQ:
      if (b.length < 1) return fail("body-short", "CERT body without an encoding", base);
      return ok({ kind: "cert", type, encoding: b[0], data: b.slice(1) });
    case PayloadType.AUTH:
      if (b.length < 4) return fail("body-short", `AUTH body of ${b.length} bytes`, base);
      return ok({ kind: "auth", method: b[0], data: b.slice(4) });
    case PayloadType.NONCE:
      if (b.length < NONCE_MIN || b.length > NONCE_MAX) return fail("nonce-size", `nonce of ${b.length} bytes`, base);
      return ok({ kind: "nonce", data: b.slice() });
    case PayloadType.NOTIFY:
      return decodeNotify(b, base);
    case PayloadType.DELETE:
      return decodeDelete(b, base);
    case PayloadType.VENDOR:
      return ok({ kind: "vendor", data: b.slice() });
    case PayloadType.TSi:
    case PayloadType.TSr: {
      const r = decodeTs(b, base);
      return r.ok ? ok({ kind: "ts", type, selectors: r.value }) : r;
    }
    default:
      return ok({ kind: "opaque", type, critical, body: b.slice() });
  }
}

function decodeNotify(b: Uint8Array, base: number): Result<NotifyPayload> {
  if (b.length < 4) return fail("body-short", `Notify body of ${b.length} bytes`, base);
  const spiSize = b[1];
  if (4 + spiSize > b.length) return fail("spi-size", `SPI size ${spiSize} in a ${b.length}-byte Notify body`, base + 1);
  return ok({ kind: "notify", protocol: b[0], notifyType: u16(b, 2), spi: b.slice(4, 4 + spiSize), data: b.slice(4 + spiSize) });
}

function decodeDelete(b: Uint8Array, base: number): Result<DeletePayload> {
  if (b.length < 4) return fail("body-short", `Delete body of ${b.length} bytes`, base);
  const protocol = b[0];
  const spiSize = b[1];
  const n = u16(b, 2);
  // §3.11: "SPI Size ... MUST be zero for IKE (SPI is in message header) or four for AH and ESP."
  if ((protocol === Protocol.IKE && spiSize !== 0) || ((protocol === Protocol.ESP || protocol === Protocol.AH) && spiSize !== 4)) {
    return fail("spi-size", `SPI size ${spiSize} for protocol ${protocol}`, base + 1);
  }
  if (n * spiSize !== b.length - 4) return fail("delete-count", `${n} SPIs of ${spiSize} bytes in ${b.length - 4} bytes`, base + 2);
  const spis: Uint8Array[] = [];
  for (let i = 0; i < n && spiSize > 0; i++) spis.push(b.slice(4 + i * spiSize, 4 + (i + 1) * spiSize));
  // IKE deletes carry a count but no SPI bytes; keep the count as empty SPIs so it round-trips
  if (spiSize === 0) for (let i = 0; i < n; i++) spis.push(new Uint8Array(0));
  return ok({ kind: "delete", protocol, spis });
}

function decodeTs(b: Uint8Array, base: number): Result<TrafficSelector[]> {
  if (b.length < 4) return fail("body-short", `TS body of ${b.length} bytes`, base);
  const count = b[0];
  const out: TrafficSelector[] = [];
  let o = 4;
  while (o < b.length) {
    if (b.length - o < TS_HEADER) return fail("ts-length", "selector header truncated", base + o);
    const tsType = b[o];
    const len = u16(b, o + 2);
    const addr = tsType === TsType.IPV4_ADDR_RANGE ? 4 : tsType === TsType.IPV6_ADDR_RANGE ? 16 : 0;
    if (addr === 0) return fail("ts-type", `selector type ${tsType}`, base + o);
    if (len !== TS_HEADER + 2 * addr || len > b.length - o) return fail("ts-length", `type ${tsType} selector of ${len} bytes`, base + o + 2);
    out.push({
      tsType,
      ipProtocol: b[o + 1],
      startPort: u16(b, o + 4),
      endPort: u16(b, o + 6),
      start: b.slice(o + TS_HEADER, o + TS_HEADER + addr),
      end: b.slice(o + TS_HEADER + addr, o + len),
    });
    o += len;
  }
  if (out.length !== count) return fail("ts-count", `Number of TSs ${count}, found ${out.length}`, base);
  return ok(out);
}

/** Encodes a payload's body (everything after the generic header). */
export function encodeBody(p: Payload): Uint8Array {
  switch (p.kind) {
    case "sa": return encodeSa(p.proposals);
    case "ke": return withHead(Uint8Array.of(p.group >>> 8, p.group, 0, 0), p.data);
    case "id": return withHead(Uint8Array.of(p.idType, 0, 0, 0), p.data);
    case "cert": return withHead(Uint8Array.of(p.encoding), p.data);
    case "auth": return withHead(Uint8Array.of(p.method, 0, 0, 0), p.data);
    case "nonce": return p.data.slice();
    case "notify": return concatBytes(Uint8Array.of(p.protocol, p.spi.length, p.notifyType >>> 8, p.notifyType), p.spi, p.data);
    case "delete": {
      const size = p.spis.length ? p.spis[0].length : p.protocol === Protocol.IKE ? 0 : 4;
      return concatBytes(Uint8Array.of(p.protocol, size, p.spis.length >>> 8, p.spis.length), ...p.spis);
    }
    case "vendor": return p.data.slice();
    case "ts": return concatBytes(Uint8Array.of(p.selectors.length, 0, 0, 0), ...p.selectors.map(encodeSelector));
    case "sk": case "opaque": return p.body.slice();
  }
}

function encodeSelector(s: TrafficSelector): Uint8Array {
  const x = new Uint8Array(TS_HEADER + s.start.length + s.end.length);
  x[0] = s.tsType;
  x[1] = s.ipProtocol;
  put16(x, 2, x.length);
  put16(x, 4, s.startPort);
  put16(x, 6, s.endPort);
  x.set(s.start, TS_HEADER);
  x.set(s.end, TS_HEADER + s.start.length);
  return x;
}

const withHead = (head: Uint8Array, data: Uint8Array) => concatBytes(head, data);
