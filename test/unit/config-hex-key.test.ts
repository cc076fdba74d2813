// decodeHexKey (host/config/keys.ts) against a plain reference: the regular
// expression per character and parseInt per byte it used before it read char
// codes. Random texts over hex digits, their neighbours in ASCII ('/', ':',
// '@', 'G', '`', 'g'), non-ASCII and the 0x prefix: the same key bytes, or the
// same message (position only, never the character).
import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeHexKey, type KeyResult } from "../../host/config/keys.ts";

function reference(text: string): KeyResult | { ok: true; bytes: number[] } {
  const body = text.startsWith("0x") || text.startsWith("0X") ? text.slice(2) : text;
  const offset = text.length - body.length;
  if (body.length === 0) return { ok: false, message: "is empty" };
  for (let i = 0; i < body.length; i++) {
    if (!/^[0-9a-fA-F]$/.test(body[i])) return { ok: false, message: `is not hex: character ${i + offset + 1} is not 0-9/a-f` };
  }
  if (body.length % 2 !== 0) return { ok: false, message: `has an odd number of hex digits (${body.length})` };
  const bytes: number[] = [];
  for (let i = 0; i < body.length / 2; i++) bytes.push(parseInt(body.substr(i * 2, 2), 16));
  return { ok: true, bytes };
}

test("decodeHexKey equals the reference on random texts", () => {
  const alphabet = "0123456789abcdefABCDEF/:@G`gxX é";
  let seed = 12345;
  const rnd = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n);
  for (let round = 0; round < 20_000; round++) {
    const hexOnly = rnd(3) > 0;
    const len = rnd(40);
    let text = rnd(4) === 0 ? (rnd(2) ? "0x" : "0X") : "";
    for (let i = 0; i < len; i++) text += hexOnly ? "0123456789abcdefABCDEF"[rnd(22)] : alphabet[rnd(alphabet.length)];
    const got = decodeHexKey(text), want = reference(text);
    if (want.ok) {
      assert.ok(got.ok, text);
      assert.deepEqual([...(got as { key: Uint8Array }).key], (want as { bytes: number[] }).bytes, text);
    } else assert.deepEqual(got, want, text);
  }
});

test("every byte value round-trips, upper and lower case", () => {
  const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  for (const text of [all.toString("hex"), all.toString("hex").toUpperCase(), "0x" + all.toString("hex")]) {
    const r = decodeHexKey(text);
    assert.ok(r.ok);
    assert.deepEqual([...r.key], [...all]);
  }
});
