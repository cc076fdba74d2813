// Key material: decoding from hex (inline or from a key file) into `KeyBytes`,
// a Uint8Array that refuses to show its contents when logged.
//
// Rule: no function in this file puts key bytes or key text into an error
// message. Errors say where (character position, file name) and how long, never what.

import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { inspect } from "node:util";

/**
 * Key bytes. A real Uint8Array (copy it into WASM memory with `.set`), but
 * `console.log`, `util.inspect`, `JSON.stringify` and `String()` print only
 * its length, so a config dumped for debugging leaks nothing.
 * (A structured clone, e.g. `postMessage` to a worker, yields a plain Uint8Array.)
 */
export class KeyBytes extends Uint8Array {
  // Derived arrays (subarray, slice, map) are built through Symbol.species,
  // which a subclass inherits as itself: they stay KeyBytes, hence redacted too.
  [inspect.custom](): string {
    return `<key ${this.length} bytes>`;
  }
  toJSON(): string {
    return `<key ${this.length} bytes>`;
  }
  override toString(): string {
    return `<key ${this.length} bytes>`;
  }
  override toLocaleString(): string {
    return this.toString();
  }
  override join(_separator?: string): string {
    return this.toString();
  }
  /** Overwrite with zeros (when an SA is removed). */
  wipe(): void {
    this.fill(0);
  }
}

/** Result of decoding: the key, or a message safe to print. */
export type KeyResult = { ok: true; key: KeyBytes } | { ok: false; message: string };

/** The value of hex digit `c` (a char code), or -1 for any other character. */
function nibble(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30; // 0-9
  const l = c | 0x20; // A-F as a-f
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1;
}

/**
 * Decode inline hex ("0x" prefix optional). The message on failure names the
 * 1-based character position but never the character itself. Char codes,
 * not a regular expression and parseInt per digit: a hub's config has
 * 100,000 keys (docs/bench.md "Start-up"), and the text of a key is never
 * sliced into new strings.
 */
export function decodeHexKey(text: string): KeyResult {
  const offset = text.startsWith("0x") || text.startsWith("0X") ? 2 : 0;
  const digits = text.length - offset;
  if (digits === 0) return { ok: false, message: "is empty" };
  for (let i = offset; i < text.length; i++) {
    if (nibble(text.charCodeAt(i)) < 0) return { ok: false, message: `is not hex: character ${i + 1} is not 0-9/a-f` };
  }
  if (digits % 2 !== 0) {
    return { ok: false, message: `has an odd number of hex digits (${digits})` };
  }
  const key = new KeyBytes(digits / 2);
  for (let i = 0; i < key.length; i++) {
    key[i] = (nibble(text.charCodeAt(offset + 2 * i)) << 4) | nibble(text.charCodeAt(offset + 2 * i + 1));
  }
  return { ok: true, key };
}

/**
 * The mode rule for every file that holds keys: a key file, or a config with
 * inline keys. Writable by group or others (mode & 0o022): refused, since
 * whoever can write the file can put in keys they know and read the traffic.
 * Readable by group or others (mode & 0o044): a warning. `what` names the
 * file in the message ("key file /etc/wesp/a.key").
 */
export function secretFileMode(what: string, mode: number): { error?: string; warning?: string } {
  const octal = `mode 0${(mode & 0o777).toString(8)}`;
  if ((mode & 0o022) !== 0) return { error: `${what} is writable by group or others (${octal}); chmod 600 it` };
  if ((mode & 0o044) !== 0) return { warning: `${what} is readable by group or others (${octal}); chmod 600 it` };
  return {};
}

/**
 * Read a whole file (at most `maxBytes`, else an EFBIG error) and the mode of
 * the very file read (fstat on the open descriptor, so a rename between the
 * check and the read cannot swap it).
 */
export function readFileAndMode(path: string, maxBytes: number): { text: string; mode: number } {
  const fd = openSync(path, "r");
  try {
    const mode = fstatSync(fd).mode;
    // Read in chunks rather than by st_size: a device or FIFO has none and may never end.
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(65536);
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      total += n;
      if (total > maxBytes) throw Object.assign(new Error(`${path} is larger than ${maxBytes} bytes`), { code: "EFBIG" });
      chunks.push(chunk.subarray(0, n));
    }
    return { mode, text: Buffer.concat(chunks, total).toString("utf8") };
  } finally {
    closeSync(fd);
  }
}

/** Longest key file read: keys are at most 128 bytes, comments aside. */
const MAX_KEY_FILE_BYTES = 65536;

/**
 * Key file format: text; hex digits (optionally "0x"-prefixed) with any
 * whitespace in between; lines whose first non-blank character is `#` are comments.
 * Returns the key, or a message naming the file (never its contents).
 * The file's mode follows `secretFileMode`: refused when group or others can
 * write it; `warn` receives a note when they can read it.
 */
export function readKeyFile(path: string, warn: (message: string) => void): KeyResult {
  let text: string;
  let mode: number;
  try {
    ({ text, mode } = readFileAndMode(path, MAX_KEY_FILE_BYTES));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "error";
    return { ok: false, message: `cannot read key file ${path} (${code})` };
  }
  const rule = secretFileMode(`key file ${path}`, mode);
  if (rule.error) return { ok: false, message: rule.error };
  if (rule.warning) warn(rule.warning);
  const hex = text
    .split("\n")
    .filter((line) => !line.trimStart().startsWith("#"))
    .join("")
    .replace(/\s+/g, "");
  const r = decodeHexKey(hex);
  if (!r.ok) return { ok: false, message: `key file ${path} ${r.message}` };
  return r;
}

/** True when every byte is zero (a placeholder key). Runs over the whole key. */
export function isAllZero(key: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < key.length; i++) acc |= key[i];
  return acc === 0;
}

/** Constant-time equality of two keys (lengths are not secret). */
export function keysEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let acc = 0;
  for (let i = 0; i < a.length; i++) acc |= a[i] ^ b[i];
  return acc === 0;
}

/** Lower-case hex of a key, for the one place that must write keys out (`wesp keys`). */
export function keyToHex(key: Uint8Array): string {
  let s = "";
  for (let i = 0; i < key.length; i++) s += key[i].toString(16).padStart(2, "0");
  return s;
}
