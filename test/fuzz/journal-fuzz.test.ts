// Reservation journals (host/sa/journal_format.ts) are read back after a crash
// from a directory anyone with the node's privileges could have written: every
// byte is hostile. Round trips hold; random bytes, and mutations of valid
// journals — also ones whose checksum was recomputed over the mutation, so the
// structural checks behind it are reached — never throw, and whatever decodes
// holds only records a journal may hold.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import { decodeJournal, encodeJournal, KEY_ID } from "../../host/sa/journal_format.ts";
import type { SaStateRecord } from "../../host/sa/state_file.ts";

const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const record: fc.Arbitrary<SaStateRecord> = fc.record({
  dir: fc.constantFrom("in" as const, "out" as const),
  keyId: fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Buffer.from(b).toString("hex")),
  spi: fc.integer({ min: 0, max: 0xffffffff }),
  suite: fc.string({ maxLength: 40 }).filter((s) => Buffer.byteLength(s) <= 255),
  peer: fc.string({ maxLength: 80 }),
  reserved: u64, packets: u64, bytes: u64,
  created: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
}).map((r) => ({ ...r })); // fast-check's records have no prototype; decoded ones do
const records = fc.array(record, { maxLength: 12 });
const OWNER = "w0", SEQ = 7;

function wellFormed(r: SaStateRecord): void {
  assert.ok(r.dir === "in" || r.dir === "out");
  assert.match(r.keyId, KEY_ID);
  assert.ok(Number.isInteger(r.spi) && r.spi >= 0 && r.spi <= 0xffffffff);
  for (const v of [r.reserved, r.packets, r.bytes]) assert.ok(v >= 0n && v < 1n << 64n);
  assert.ok(Number.isSafeInteger(r.created) && r.created >= 0);
}

/** `b` with its trailing SHA-256 recomputed (a writer that knows the format). */
function resealed(b: Uint8Array): Uint8Array {
  if (b.length < 32) return b;
  const out = Uint8Array.from(b);
  out.set(createHash("sha256").update(out.subarray(0, out.length - 32)).digest(), out.length - 32);
  return out;
}

test("a journal decodes to the records encoded, under its own name only", () => {
  fc.assert(fc.property(records, (rs) => {
    const b = encodeJournal(OWNER, SEQ, rs);
    const got = decodeJournal(b, OWNER, SEQ);
    assert.equal(got.kind, "ok");
    if (got.kind === "ok") assert.deepEqual(got.records, rs);
    assert.equal(decodeJournal(b, "w1", SEQ).kind, "bad");
    assert.equal(decodeJournal(b, OWNER, SEQ + 1).kind, "bad");
  }), { numRuns: 300 });
});

test("random bytes, and random bytes after the magic, are refused without a throw", () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), fc.boolean(), (tail, magic) => {
    const b = magic ? Buffer.concat([Buffer.from("wespjrnl"), tail]) : Buffer.from(tail);
    for (const x of [b, resealed(b)]) {
      const got = decodeJournal(x, OWNER, SEQ);
      if (got.kind === "ok") got.records.forEach(wellFormed);
    }
  }), { numRuns: 2000 });
});

test("mutations of valid journals: refused, or (resealed) only well-formed records, never a throw", () => {
  const mutation = fc.record({
    at: fc.nat(), value: fc.integer({ min: 0, max: 255 }), cut: fc.nat(), grow: fc.uint8Array({ maxLength: 8 }),
    kind: fc.constantFrom("flip", "cut", "grow"),
  });
  fc.assert(fc.property(records, fc.array(mutation, { minLength: 1, maxLength: 4 }), (rs, ms) => {
    let b: Uint8Array = encodeJournal(OWNER, SEQ, rs);
    for (const m of ms) {
      if (m.kind === "flip") {
        b = Uint8Array.from(b);
        b[m.at % b.length] = m.value;
      } else if (m.kind === "cut") b = b.subarray(0, m.cut % (b.length + 1));
      else b = Buffer.concat([b, m.grow]);
    }
    const plain = decodeJournal(b, OWNER, SEQ);
    if (plain.kind === "ok") plain.records.forEach(wellFormed);
    const sealed = decodeJournal(resealed(b), OWNER, SEQ);
    if (sealed.kind === "ok") sealed.records.forEach(wellFormed);
  }), { numRuns: 2000 });
});

test("encodeJournal refuses what a journal cannot hold, rather than writing it", () => {
  const ok: SaStateRecord = { dir: "in", keyId: "ab".repeat(16), spi: 1, suite: "aes-128-gcm", peer: "p", reserved: 1n, packets: 0n, bytes: 0n, created: 1 };
  assert.throws(() => encodeJournal(OWNER, SEQ, [{ ...ok, keyId: "../../etc/x" }]), RangeError);
  assert.throws(() => encodeJournal(OWNER, SEQ, [{ ...ok, reserved: 1n << 64n }]), RangeError);
  assert.throws(() => encodeJournal(OWNER, SEQ, [{ ...ok, created: 0.5 }]), RangeError);
  assert.throws(() => encodeJournal(OWNER, SEQ, [{ ...ok, suite: "x".repeat(256) }]), RangeError);
  assert.throws(() => encodeJournal("W0/..", SEQ, [ok]), RangeError);
});
