// Hostile bytes through the STUN decoder (host/net/stun.ts): fast-check
// messages, encoded, must decode to themselves; then ≥100,000 mutations of
// those encodings (each lies in one place and usually re-fixes the header
// length, or re-signs the FINGERPRINT, so the decoder gets past RFC 8489 §5
// and into the attributes). Nothing may throw; every refusal carries a reason
// from STUN_DECODE_REASONS; whatever is accepted re-encodes to the same message.
// A failure prints its seed; WESP_SEED=<n> replays it.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { crc32 as zcrc } from "node:zlib";
import { STUN_DECODE_REASONS, decodeStun, encodeStun, verifyIntegrity, type StunAddress, type StunMessage } from "../../host/net/stun.ts";
import { Rng, seedFromEnv } from "../helpers/gen.ts";

const ROUNDS = 120_000;
const KEY = new TextEncoder().encode("wesp-fuzz");

// (noNullPrototype: the decoder makes plain objects, and deepEqual compares prototypes.)
const plain = { noNullPrototype: true } as const;
const address: fc.Arbitrary<StunAddress> = fc.oneof(
  fc.record({ family: fc.constant(4 as const), address: fc.uint8Array({ minLength: 4, maxLength: 4 }), port: fc.integer({ min: 0, max: 65535 }) }, plain),
  fc.record({ family: fc.constant(6 as const), address: fc.uint8Array({ minLength: 16, maxLength: 16 }), port: fc.integer({ min: 0, max: 65535 }) }, plain),
);
const shortText = fc.string({ maxLength: 40, unit: "grapheme" }).filter((s) => [...s].length < 128);
const message: fc.Arbitrary<StunMessage> = fc.record(
  {
    cls: fc.constantFrom("request", "indication", "success", "error" as const),
    method: fc.integer({ min: 0, max: 0xfff }),
    transactionId: fc.uint8Array({ minLength: 12, maxLength: 12 }),
    xorMappedAddress: address,
    mappedAddress: address,
    software: shortText,
    username: shortText,
    errorCode: fc.record({ code: fc.integer({ min: 300, max: 699 }), reason: shortText }, plain),
    unknownAttributes: fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 6 }),
    changeRequest: fc.record({ ip: fc.boolean(), port: fc.boolean() }, plain),
    responseOrigin: address,
    otherAddress: address,
  },
  { requiredKeys: ["cls", "method", "transactionId"], ...plain },
);
const options = fc.record({
  fingerprint: fc.boolean(),
  integrity: fc.option(fc.record({ key: fc.constant(KEY), kind: fc.constantFrom("sha1", "sha256" as const) }), { nil: undefined }),
});

test("STUN: every generated message round-trips through encode and decode", () => {
  fc.assert(
    fc.property(message, options, (m, o) => {
      const r = decodeStun(encodeStun(m, o));
      assert.ok(r.ok, r.ok ? "" : `${r.reason}: ${r.detail}`);
      assert.deepEqual(r.value.message, m);
      assert.equal(r.value.fingerprint, o.fingerprint);
      assert.equal(r.value.integrity?.kind, o.integrity?.kind);
    }),
    { numRuns: 5000, seed: seedFromEnv() },
  );
});

const MUTATIONS = ["bitflip", "bytes", "truncate", "extend", "attr-length", "attr-type", "splice", "cookie-keep", "refingerprint"] as const;

/** Offsets of the attribute headers of a valid message. */
function attrOffsets(b: Uint8Array): number[] {
  const out: number[] = [];
  for (let o = 20; o + 4 <= b.length; o += 4 + ((((b[o + 2] << 8) | b[o + 3]) + 3) & ~3)) out.push(o);
  return out;
}

function mutate(r: Rng, src: Uint8Array, other: Uint8Array): Uint8Array {
  let b = src.slice();
  const offs = attrOffsets(b);
  const at = () => (offs.length ? r.pick(offs) : 20);
  const m = r.pick(MUTATIONS);
  switch (m) {
    case "bitflip":
      for (let k = r.int(1, 4); k > 0; k--) b[r.int(0, b.length - 1)] ^= 1 << r.int(0, 7);
      break;
    case "bytes":
      for (let k = r.int(1, 3); k > 0; k--) b[r.int(0, b.length - 1)] = r.pick([0, 0xff, 0x80, 0x7f, r.int(0, 255)]);
      break;
    case "truncate":
      b = b.subarray(0, r.int(0, b.length));
      break;
    case "extend": {
      const e = new Uint8Array(b.length + r.int(1, 40));
      e.set(b);
      e.set(r.bytes(e.length - b.length), b.length);
      b = e;
      break;
    }
    case "attr-length": {
      const o = at();
      if (o + 4 <= b.length) { b[o + 2] = r.int(0, 1) ? r.int(0, 255) : 0; b[o + 3] = r.int(0, 255); }
      break;
    }
    case "attr-type": {
      const o = at();
      const t = r.pick([0x0001, 0x0003, 0x0006, 0x0008, 0x0009, 0x000a, 0x001c, 0x0020, 0x8022, 0x8028, 0x802b, 0x802c, r.int(0, 0xffff)]);
      if (o + 4 <= b.length) { b[o] = t >> 8; b[o + 1] = t; }
      break;
    }
    case "splice": {
      const from = r.int(20, Math.max(20, other.length));
      const e = new Uint8Array(at() + (other.length - from));
      e.set(b.subarray(0, Math.min(b.length, e.length)));
      e.set(other.subarray(from), e.length - (other.length - from));
      b = e;
      break;
    }
    case "cookie-keep":
      // A random body behind a valid header: the attribute walk on noise.
      b = Uint8Array.from([...b.subarray(0, 20), ...r.bytes(4 * r.int(0, 24))]);
      break;
    case "refingerprint":
      break;
  }
  // Most of the time re-fix Message Length, so the lie reaches the attributes.
  if (b.length >= 4 && r.bool(0.8)) { const n = Math.max(0, b.length - 20); b[2] = n >> 8; b[3] = n; }
  if (m === "refingerprint" || r.bool(0.1)) resign(b);
  return b;
}

/** Rewrites a trailing FINGERPRINT's CRC (§14.7) over whatever precedes it, so the lie reaches the order checks. */
function resign(b: Uint8Array): void {
  if (b.length < 28 || b[b.length - 8] !== 0x80 || b[b.length - 7] !== 0x28) return;
  const head = b.slice(0, b.length - 8);
  const crc = (zcrc(head) ^ 0x5354554e) >>> 0;
  b.set([crc >>> 24, crc >>> 16, crc >>> 8, crc], b.length - 4);
}
test(`STUN decoder: ${ROUNDS.toLocaleString("en")} mutated messages, no exception, every refusal has a reason`, () => {
  const seed = seedFromEnv();
  const r = new Rng(seed);
  const corpus = fc.sample(fc.tuple(message, options), { numRuns: 400, seed }).map(([m, o]) => encodeStun(m, o));
  const known = new Set<string>(STUN_DECODE_REASONS);
  const reasons = new Map<string, number>();
  let accepted = 0;
  for (let i = 0; i < ROUNDS; i++) {
    const input = mutate(r, r.pick(corpus), r.pick(corpus));
    let res;
    try {
      res = decodeStun(input);
    } catch (e) {
      assert.fail(`seed ${seed} round ${i}: decoder threw ${(e as Error).stack}\ninput ${Buffer.from(input).toString("hex")}`);
    }
    if (res.ok) {
      accepted++;
      // Whatever integrity attribute an accepted message points at can be checked without a throw.
      if (res.value.integrity) verifyIntegrity(input, res.value, KEY);
      const again = decodeStun(encodeStun(res.value.message, { fingerprint: res.value.fingerprint }));
      assert.ok(again.ok, `seed ${seed} round ${i}: accepted message does not re-encode`);
      assert.deepEqual(again.value.message, res.value.message, `seed ${seed} round ${i}: re-encoding changed the message`);
      continue;
    }
    assert.ok(known.has(res.reason), `seed ${seed} round ${i}: unknown reason ${res.reason}`);
    reasons.set(res.reason, (reasons.get(res.reason) ?? 0) + 1);
  }
  // The mutations must reach past the header: most reasons are seen, and some inputs pass.
  assert.ok(accepted > ROUNDS / 50, `seed ${seed}: only ${accepted} accepted`);
  for (const want of ["length", "attr-truncated", "after-fingerprint", "fingerprint", "bad-address", "bad-text"]) {
    assert.ok((reasons.get(want) ?? 0) > 0, `seed ${seed}: no input refused for ${want} (${[...reasons].join(", ")})`);
  }
});
