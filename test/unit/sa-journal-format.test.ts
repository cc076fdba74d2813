// The journal's bytes (host/sa/journal_format.ts version 2): its strings are
// written char by char when ASCII and the key id decoded from its hex digits
// by hand (Buffer.write per string cost more than the bytes at 100,000 SAs).
// Held equal here to a reference that writes every string with Buffer, as
// the layout drawn in journal_format.ts says, over random records: ASCII and
// other names (non-Latin, astral, lone surrogates), every key id digit.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import { decodeJournal, encodeJournal } from "../../host/sa/journal_format.ts";
import type { SaStateRecord } from "../../host/sa/state_file.ts";

/** The layout of journal_format.ts written with Buffer's own methods. */
function reference(owner: string, seq: number, records: SaStateRecord[]): Buffer {
  const lens = records.map((r) => [Buffer.byteLength(r.suite), Buffer.byteLength(r.peer)]);
  const b = Buffer.alloc(40 + 36 + lens.reduce((n, [s, p]) => n + 56 + s + p, 0));
  b.write("wespjrnl", 0, "latin1");
  b.writeUInt16LE(2, 8);
  b[10] = owner.length;
  b.writeUInt32LE(records.length, 12);
  b.writeBigUInt64LE(BigInt(seq), 16);
  b.write(owner, 24, "latin1");
  let o = 40;
  records.forEach((r, i) => {
    const [s, p] = lens[i];
    b[o] = r.dir === "in" ? 1 : 2;
    b[o + 1] = s;
    b.writeUInt16LE(p, o + 2);
    b.writeUInt32LE(r.spi >>> 0, o + 4);
    b.write(r.keyId, o + 8, 16, "hex");
    b.writeBigUInt64LE(r.reserved, o + 24);
    b.writeBigUInt64LE(r.packets, o + 32);
    b.writeBigUInt64LE(r.bytes, o + 40);
    b.writeDoubleLE(r.created, o + 48);
    b.write(r.suite, o + 56, s, "utf8");
    b.write(r.peer, o + 56 + s, p, "utf8");
    o += 56 + s + p;
  });
  b.writeUInt32LE(records.length, o);
  createHash("sha256").update(b.subarray(0, o + 4)).digest().copy(b, o + 4);
  return b;
}

const name = fc.oneof(
  fc.string({ unit: fc.constantFrom(..."abcxyz-_.019ABZ"), maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 20 }), // any code point, astral ones included
  fc.string({ unit: fc.constantFrom("é", "ü", "\u{1F600}", "\ud800", "\udfff", "a", "日"), maxLength: 10 }), // lone surrogates too
);
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const record: fc.Arbitrary<SaStateRecord> = fc.record({
  dir: fc.constantFrom("in" as const, "out" as const),
  keyId: fc.string({ unit: fc.constantFrom(..."0123456789abcdef"), minLength: 32, maxLength: 32 }),
  spi: fc.integer({ min: 0, max: 0xffffffff }),
  suite: fc.oneof(fc.constantFrom("aes-256-gcm", "chacha20-poly1305"), name),
  peer: name,
  reserved: u64,
  packets: u64,
  bytes: u64,
  created: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
});

test("encodeJournal writes the bytes Buffer's methods write, for any names (fast-check)", () => {
  fc.assert(fc.property(fc.array(record, { maxLength: 12 }), fc.integer({ min: 0, max: 2 ** 40 }), (records, seq) => {
    const got = encodeJournal("w0", seq, records);
    assert.deepEqual(got, reference("w0", seq, records));
    // and a journal of ASCII names reads back as written
    if (records.every((r) => /^[\x00-\x7f]*$/.test(r.peer + r.suite))) {
      const back = decodeJournal(got, "w0", seq);
      assert.equal(back.kind, "ok");
      if (back.kind === "ok") assert.deepEqual(back.records, records.map((r) => ({ ...r })));
    }
  }), { numRuns: 500 });
});
