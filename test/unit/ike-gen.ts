// fast-check arbitraries for IKEv2 messages (RFC 7296 §3) that are valid as far
// as the codec goes: every length consistent, proposal numbering as §3.3.1
// wants, selectors and identities the sizes their types fix. Shared by the
// codec round-trip test and the decoder fuzz test (which mutates them).
import fc from "fast-check";
import { IdType, PayloadType, Protocol, TsType } from "../../host/ike/constants.ts";
import type { Message } from "../../host/ike/message.ts";
import type { Payload, TrafficSelector } from "../../host/ike/payloads.ts";
import type { Proposal, Transform, TransformAttribute } from "../../host/ike/sa_payload.ts";

/** Records with an ordinary prototype, so they deep-equal what the decoder builds. */
const rec: typeof fc.record = ((model: never) => fc.record(model, { noNullPrototype: true })) as never;
const bytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max });

const attribute: fc.Arbitrary<TransformAttribute> = fc.oneof(
  rec({ type: fc.integer({ min: 0, max: 0x7fff }), value: fc.integer({ min: 0, max: 0xffff }) }),
  rec({ type: fc.integer({ min: 0, max: 0x7fff }), value: bytes(0, 12) }),
);
const transform: fc.Arbitrary<Transform> = rec({
  type: fc.integer({ min: 0, max: 255 }),
  id: fc.integer({ min: 0, max: 0xffff }),
  attributes: fc.array(attribute, { maxLength: 3 }),
});
const protocolAndSpi = fc.oneof(
  rec({ protocol: fc.constant(Protocol.IKE), spi: fc.oneof(bytes(0, 0), bytes(8, 8)) }),
  rec({ protocol: fc.constantFrom(Protocol.ESP, Protocol.AH), spi: bytes(4, 4) }),
  rec({ protocol: fc.integer({ min: 4, max: 255 }), spi: bytes(0, 8) }),
);
/** Proposals numbered 1, then the same (AND) or one more (OR), as §3.3.1 requires. */
const proposals: fc.Arbitrary<Proposal[]> = fc
  .array(fc.tuple(fc.boolean(), protocolAndSpi, fc.array(transform, { maxLength: 6 })), { minLength: 1, maxLength: 4 })
  .map((xs) => {
    let num = 0;
    return xs.map(([same, ps, transforms], i) => ({ num: i > 0 && same ? num : ++num, ...ps, transforms }));
  });

const selector: fc.Arbitrary<TrafficSelector> = fc.oneof(
  ...([[TsType.IPV4_ADDR_RANGE, 4], [TsType.IPV6_ADDR_RANGE, 16]] as const).map(([tsType, n]) =>
    rec({
      tsType: fc.constant(tsType as number),
      ipProtocol: fc.integer({ min: 0, max: 255 }),
      startPort: fc.integer({ min: 0, max: 0xffff }),
      endPort: fc.integer({ min: 0, max: 0xffff }),
      start: bytes(n, n),
      end: bytes(n, n),
    }),
  ),
);

const idData = fc.oneof(
  rec({ idType: fc.constant(IdType.IPV4_ADDR as number), data: bytes(4, 4) }),
  rec({ idType: fc.constant(IdType.IPV6_ADDR as number), data: bytes(16, 16) }),
  rec({ idType: fc.constantFrom(IdType.FQDN, IdType.RFC822_ADDR, IdType.DER_ASN1_DN, IdType.KEY_ID, 200), data: bytes(0, 40) }),
);
const KNOWN = new Set<number>(Object.values(PayloadType));

/** Every payload kind except the Encrypted one (which must be last: see `message`). */
export const payload: fc.Arbitrary<Payload> = fc.oneof(
  proposals.map((p): Payload => ({ kind: "sa", proposals: p })),
  rec({ kind: fc.constant("ke" as const), group: fc.integer({ min: 0, max: 0xffff }), data: bytes(0, 300) }),
  fc.tuple(fc.constantFrom(35 as const, 36 as const), idData).map(([type, d]): Payload => ({ kind: "id", type, ...d })),
  rec({ kind: fc.constant("cert" as const), type: fc.constantFrom(37 as const, 38 as const), encoding: fc.integer({ min: 0, max: 255 }), data: bytes(0, 64) }),
  rec({ kind: fc.constant("auth" as const), method: fc.integer({ min: 0, max: 255 }), data: bytes(0, 64) }),
  rec({ kind: fc.constant("nonce" as const), data: bytes(16, 256) }),
  rec({ kind: fc.constant("notify" as const), protocol: fc.integer({ min: 0, max: 255 }), spi: bytes(0, 8), notifyType: fc.integer({ min: 0, max: 0xffff }), data: bytes(0, 40) }),
  fc.oneof(
    rec({ kind: fc.constant("delete" as const), protocol: fc.constant(Protocol.IKE as number), spis: fc.array(bytes(0, 0), { maxLength: 3 }) }),
    rec({ kind: fc.constant("delete" as const), protocol: fc.constantFrom(Protocol.ESP as number, Protocol.AH as number), spis: fc.array(bytes(4, 4), { maxLength: 5 }) }),
  ),
  rec({ kind: fc.constant("vendor" as const), data: bytes(0, 40) }),
  rec({ kind: fc.constant("ts" as const), type: fc.constantFrom(44 as const, 45 as const), selectors: fc.array(selector, { maxLength: 4 }) }),
  rec({
    kind: fc.constant("opaque" as const),
    type: fc.integer({ min: 1, max: 255 }).filter((t) => !KNOWN.has(t) || t === PayloadType.CP || t === PayloadType.EAP),
    critical: fc.boolean(),
    body: bytes(0, 40),
  }),
);

const sk: fc.Arbitrary<Payload> = rec({
  kind: fc.constant("sk" as const),
  type: fc.constantFrom(46 as const, 53 as const),
  firstPayload: fc.integer({ min: 0, max: 255 }),
  body: bytes(0, 120),
});

export const message: fc.Arbitrary<Message> = rec({
  header: rec({
    spiI: bytes(8, 8),
    spiR: bytes(8, 8),
    version: fc.integer({ min: 0x20, max: 0x2f }),
    exchange: fc.integer({ min: 0, max: 255 }),
    flags: fc.integer({ min: 0, max: 255 }),
    messageId: fc.integer({ min: 0, max: 0xffffffff }),
  }),
  payloads: fc.tuple(fc.array(payload, { maxLength: 8 }), fc.option(sk, { nil: undefined })).map(([ps, s]) => (s ? [...ps, s] : ps)),
});
