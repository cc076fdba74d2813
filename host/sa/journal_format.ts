// The bytes of a reservation journal (journal.ts has its life and the rule
// it keeps). Version 2 is binary: an install of 100,000 SAs spent 0.3 s
// building the text lines of version 1 (16 MB: three decimal u64s and two
// JSON strings a record) and encoded the text to UTF-8 twice, once to hash
// it and once to write it; version 2 is about 7.5 MB written straight into
// one buffer, hashed and written as it is. Version 1 (text) journals an
// earlier wesp left are still read.
//
// Version 2, little-endian. One SHA-256 over every byte before it catches
// any damage, and the count, in the header and again at the end, a cut
// (journal.ts: per-record checks would add nothing).
//
//   header, 40 bytes
//   ┌────────────┬─────────┬──────────┬─────┬──────────┬──────────┬─────────────────────┐
//   │ "wespjrnl" │ version │ owner    │  0  │ count    │ seq      │ owner, ASCII,       │
//   │ 8 bytes    │ u16 = 2 │ length u8│     │ u32      │ u64      │ zero-padded to 16   │
//   └────────────┴─────────┴──────────┴─────┴──────────┴──────────┴─────────────────────┘
//    0            8         10         11    12         16         24
//
//   `count` records, each 56 bytes and its two strings
//   ┌─────┬──────────┬──────────┬─────┬──────────────┬──────────┬─────────┬───────┬─────────┬───────┬──────┐
//   │ dir │ suite    │ peer     │ spi │ key id       │ reserved │ packets │ bytes │ created │ suite │ peer │
//   │ u8  │ length u8│ length   │ u32 │ 16 bytes     │ u64      │ u64     │ u64   │ f64, ms │ UTF-8 │ UTF-8│
//   │1 in │          │ u16      │     │ (32 hex      │          │         │       │ (a safe │       │      │
//   │2 out│          │          │     │  digits)     │          │         │       │ integer)│       │      │
//   └─────┴──────────┴──────────┴─────┴──────────────┴──────────┴─────────┴───────┴─────────┴───────┴──────┘
//    0     1          2          4     8              24         32        40      48        56
//
//   trailer, 36 bytes: count again (u32), SHA-256 of every byte before it (32)
//
// Version 1, text, one JSON value a line:
//   {"format":"wesp sa-journal","version":1,"owner":"w0","seq":7,"count":N}
//   N lines: a record body as state_file.ts writes it, without "check"
//   {"end":N,"check":"…sha-256 of every byte above…"}
import { createHash } from "node:crypto";
import { bodyFault, bodyRecord, type SaStateRecord } from "./state_file.ts";

/** A key id as key_id.ts makes it: what a journal record may name (it becomes a file name). */
export const KEY_ID = /^[0-9a-f]{32}$/;

/** Whether `k` is of KEY_ID: a loop, not the regular expression (once per record of an install's journal). */
export function isKeyId(k: string): boolean {
  if (k.length !== 32) return false;
  for (let i = 0; i < 32; i++) {
    const c = k.charCodeAt(i);
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false;
  }
  return true;
}

const MAGIC = Buffer.from("wespjrnl", "latin1");
const HEADER = 40;
const RECORD = 56;
const TRAILER = 36;
const OWNER_MAX = 16;
const V1_FORMAT = "wesp sa-journal";

export type JournalRead = { kind: "ok"; records: SaStateRecord[] } | { kind: "bad"; why: string };

/**
 * Journal `seq` of `owner` holding `records` (version 2). Throws on a record
 * it cannot hold: a key id not of KEY_ID, a string too long, a number out
 * of range (the caller writes a file per key instead).
 */
export function encodeJournal(owner: string, seq: number, records: readonly SaStateRecord[]): Buffer {
  if (owner.length > OWNER_MAX || !/^[a-z0-9]+$/.test(owner)) throw new RangeError(`journal owner ${JSON.stringify(owner)}`);
  let size = HEADER + TRAILER;
  const lens = new Uint16Array(2 * records.length);
  records.forEach((r, i) => {
    const s = utf8Length(r.suite), p = utf8Length(r.peer);
    if (s > 0xff || p > 0xffff) throw new RangeError(`journal record of ${r.keyId}: suite or peer name too long`);
    if (!isKeyId(r.keyId)) throw new RangeError(`journal record: key id ${JSON.stringify(r.keyId)} is not one key_id.ts makes`);
    lens[2 * i] = s;
    lens[2 * i + 1] = p;
    size += RECORD + s + p;
  });
  const b = Buffer.alloc(size);
  // DataView's setters allocate nothing (Buffer's writeBigUInt64LE makes BigInts of each half)
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  MAGIC.copy(b, 0);
  b.writeUInt16LE(2, 8);
  b[10] = owner.length;
  b.writeUInt32LE(records.length, 12);
  b.writeBigUInt64LE(BigInt(seq), 16);
  b.write(owner, 24, "latin1");
  let o = HEADER;
  records.forEach((r, i) => {
    const s = lens[2 * i], p = lens[2 * i + 1];
    if (!Number.isSafeInteger(r.created) || r.created < 0) throw new RangeError(`journal record of ${r.keyId}: created ${r.created}`);
    b[o] = r.dir === "in" ? 1 : 2;
    b[o + 1] = s;
    dv.setUint16(o + 2, p, true);
    dv.setUint32(o + 4, r.spi >>> 0, true);
    hexInto(b, r.keyId, o + 8);
    dv.setBigUint64(o + 24, u64(r.reserved), true);
    dv.setBigUint64(o + 32, u64(r.packets), true);
    dv.setBigUint64(o + 40, u64(r.bytes), true);
    dv.setFloat64(o + 48, r.created, true);
    utf8Into(b, r.suite, o + RECORD, s);
    utf8Into(b, r.peer, o + RECORD + s, p);
    o += RECORD + s + p;
  });
  b.writeUInt32LE(records.length, o);
  createHash("sha256").update(b.subarray(0, o + 4)).digest().copy(b, o + 4);
  return b;
}

// Three strings a record, 300,000 for an install of 100,000 SAs: Buffer's
// byteLength and write (argument checks, a call into C++ each) cost more than
// the bytes (0.2 s of a profiled install, issue 9). Names a config makes are
// ASCII, written char by char; any other string goes through Buffer as before.
// A test holds the bytes equal to Buffer's (sa-journal-format).

/** Bytes of `s` in UTF-8: its length when it is ASCII (UTF-8 takes more bytes than UTF-16 code units for anything else). */
function utf8Length(s: string): number {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return Buffer.byteLength(s, "utf8");
  return s.length;
}

/** Writes `s`, `n` (utf8Length) bytes in UTF-8, at `o`. */
function utf8Into(b: Buffer, s: string, o: number, n: number): void {
  if (n !== s.length) {
    b.write(s, o, n, "utf8");
    return;
  }
  for (let i = 0; i < n; i++) b[o + i] = s.charCodeAt(i);
}

/** Writes key id `k` (KEY_ID: 32 lower-case hex digits, checked before) as its 16 bytes at `o`. */
function hexInto(b: Buffer, k: string, o: number): void {
  for (let i = 0; i < 16; i++) b[o + i] = (nibble(k.charCodeAt(2 * i)) << 4) | nibble(k.charCodeAt(2 * i + 1));
}

const nibble = (c: number): number => (c <= 0x39 ? c - 0x30 : c - 0x57); // '0'-'9', 'a'-'f'

/** `v` if it is a u64 (DataView would wrap it silently), else throws. */
function u64(v: bigint): bigint {
  if (v < 0n || v > 0xffffffffffffffffn) throw new RangeError(`journal record: ${v} is not a u64`);
  return v;
}

/** Parses journal `journal-<owner>-<seq>` of either version: checksum first, then header, count and every record. */
export function decodeJournal(bytes: Uint8Array, owner: string, seq: number): JournalRead {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length >= MAGIC.length && MAGIC.equals(b.subarray(0, MAGIC.length))) return decodeV2(b, owner, seq);
  return decodeV1(b.toString("utf8"), owner, seq);
}

function decodeV2(b: Buffer, owner: string, seq: number): JournalRead {
  const bad = (why: string): JournalRead => ({ kind: "bad", why });
  if (b.length < HEADER + TRAILER) return bad("is cut short (corrupt)");
  const end = b.length - 32;
  if (!createHash("sha256").update(b.subarray(0, end)).digest().equals(b.subarray(end))) return bad("fails its checksum (corrupt)");
  const version = b.readUInt16LE(8);
  if (version !== 2) return bad(`has version ${version}, expected 1 or 2`);
  const ownerLen = b[10];
  if (ownerLen > OWNER_MAX || b.toString("latin1", 24, 24 + ownerLen) !== owner || b.readBigUInt64LE(16) !== BigInt(seq)) return bad("has another journal's header (renamed?)");
  const count = b.readUInt32LE(12);
  if (b.readUInt32LE(end - 4) !== count) return bad("does not hold the records its header counts (corrupt)");
  const records: SaStateRecord[] = [];
  let o = HEADER;
  for (let i = 0; i < count; i++) {
    if (o + RECORD > end - 4) return bad(`record ${i + 1} is cut short (corrupt)`);
    const s = b[o + 1], p = b.readUInt16LE(o + 2);
    if (o + RECORD + s + p > end - 4) return bad(`record ${i + 1} is cut short (corrupt)`);
    const dir = b[o] === 1 ? "in" : b[o] === 2 ? "out" : null;
    if (!dir) return bad(`record ${i + 1} names no direction (corrupt)`);
    const created = b.readDoubleLE(o + 48);
    if (!Number.isSafeInteger(created) || created < 0) return bad(`record ${i + 1} has no valid "created" (corrupt)`);
    records.push({
      dir, keyId: b.toString("hex", o + 8, o + 24), spi: b.readUInt32LE(o + 4),
      suite: b.toString("utf8", o + RECORD, o + RECORD + s), peer: b.toString("utf8", o + RECORD + s, o + RECORD + s + p),
      reserved: b.readBigUInt64LE(o + 24), packets: b.readBigUInt64LE(o + 32), bytes: b.readBigUInt64LE(o + 40), created,
    });
    o += RECORD + s + p;
  }
  if (o !== end - 4) return bad("holds more than the records its header counts (corrupt)");
  return { kind: "ok", records };
}

const sha256 = (s: string): string => createHash("sha256").update(s).digest("hex");
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function parse(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}

/** Version 1 (text), as an earlier wesp wrote it. */
function decodeV1(text: string, owner: string, seq: number): JournalRead {
  const bad = (why: string): JournalRead => ({ kind: "bad", why });
  const cut = text.endsWith("\n") ? text.lastIndexOf("\n", text.length - 2) + 1 : 0;
  if (cut === 0) return bad("is cut short (corrupt)");
  const body = text.slice(0, cut);
  const trailer = parse(text.slice(cut));
  if (!isObject(trailer) || typeof trailer.check !== "string") return bad("has no trailer (cut short or corrupt)");
  if (trailer.check !== sha256(body)) return bad("fails its checksum (corrupt)");
  const lines = body.split("\n");
  lines.pop(); // after the last newline
  const head = parse(lines[0]);
  if (!isObject(head) || head.format !== V1_FORMAT) return bad("is not a reservation journal (corrupt)");
  if (head.version !== 1) return bad(`has version ${JSON.stringify(head.version)}, expected 1`);
  if (head.owner !== owner || head.seq !== seq) return bad("has another journal's header (renamed?)");
  if (head.count !== lines.length - 1 || trailer.end !== head.count) return bad("does not hold the records its header counts (corrupt)");
  const records: SaStateRecord[] = [];
  for (let i = 1; i < lines.length; i++) {
    const v = parse(lines[i]);
    if (!isObject(v)) return bad(`line ${i + 1} is not a record (corrupt)`);
    const fault = bodyFault(v);
    if (fault) return bad(`line ${i + 1} ${fault}`);
    if ((v.dir !== "in" && v.dir !== "out") || typeof v.keyId !== "string" || !isKeyId(v.keyId)) return bad(`line ${i + 1} names no key (corrupt)`);
    records.push(bodyRecord(v, v.dir as "in" | "out", v.keyId as string));
  }
  return { kind: "ok", records };
}
