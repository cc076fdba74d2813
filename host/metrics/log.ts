// One logger for `wesp up` and `wesp controller`: text lines (the default,
// what people read: "2026-12-06T17:08:00.123Z wesp up: forwarding on wesp0",
// the time in ISO 8601 UTC, as JSON's `time`, so lines from two CEs or a
// CE and its peer sort and compare without knowing either's time zone)
// or one JSON object a line through pino (`--log-format json`), for log
// collectors.
//
// No key material reaches a log, by three layers:
//   1. callers build messages from names, SPIs and lengths, never key values
//      (the config and IKE code already do: host/config/redact.ts);
//   2. every field passed here is walked before it is written: a field whose
//      name says secret (key, psk, token, …) becomes "[redacted]", bytes
//      (Buffer, Uint8Array, ArrayBuffer) become their length, and every
//      string — the message too — goes through `scrub`, which blanks runs
//      shaped like hex or base64 keys;
//   3. pino's own `redact` paths on the same names, for whatever reaches pino
//      past the wrapper (child bindings).
// test/e2e/metrics-ce.test.ts runs a CE with known keys at debug level and
// looks for each key's hex, base64 and raw bytes in everything it logged.
import pino, { type Logger as Pino } from "pino";
import { scrub } from "../config/redact.ts";

export const LOG_FORMATS = ["text", "json"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFields = Record<string, unknown>;

export interface Logger {
  readonly level: LogLevel;
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** Writes what is buffered (pino's destination is synchronous; here for callers about to exit). */
  flush(): void;
}

export interface LoggerOptions {
  /** "wesp up", "wesp controller": the text prefix and JSON `name`. */
  name: string;
  format?: LogFormat;
  level?: LogLevel;
  /** Where lines go (default: stderr, synchronously). */
  write?: (line: string) => void;
  /** The clock text lines are stamped with (default: the system's); tests fix it. */
  now?: () => Date;
}

/** Field names whose values are secrets wherever they appear (compared in lower case, without _ and -). */
const SECRET_NAMES = new Set([
  "key", "keys", "keyin", "keyout", "authkeyin", "authkeyout", "authkey", "psk", "secret", "password",
  "token", "authorization", "sealedkey", "masterkey", "privatekey", "skd", "skei", "sker", "skai", "skar", "skpi", "skpr",
]);
const isSecretName = (k: string) => SECRET_NAMES.has(k.toLowerCase().replace(/[_-]/g, ""));

/** pino `redact` paths: the same names at the top level and one level down. */
export const REDACT_PATHS = [
  "key", "keys", "keyIn", "keyOut", "authKeyIn", "authKeyOut", "key_in", "key_out", "auth_key_in", "auth_key_out",
  "psk", "secret", "password", "token", "authorization", "sealedKey", "masterKey", "privateKey",
].flatMap((k) => [k, `*.${k}`]);

const MAX_DEPTH = 4;

// An IKE SA's id, "SPIi_SPIr" (RFC 7296 §3.1: two 8-byte SPIs, as hex): what
// an operator matches against `wesp status`. Exactly 16 hex digits, "_", 16
// more — a shape no key is printed in — so it is kept; `scrub` alone would
// blank each half (16+ hex digits look like a key to it).
const IKE_SA_ID = /(?<![0-9A-Za-z_])[0-9a-f]{16}_[0-9a-f]{16}(?![0-9A-Za-z_])/g;

/** `scrub` (host/config/redact.ts) except on IKE SA ids. */
export function scrubLog(text: string): string {
  let out = "";
  let last = 0;
  for (const m of text.matchAll(IKE_SA_ID)) {
    out += scrub(text.slice(last, m.index)) + m[0];
    last = m.index + m[0].length;
  }
  return out + scrub(text.slice(last));
}

/** A copy of `v` safe to log (see the file comment, layer 2). */
export function clean(v: unknown, depth = 0): unknown {
  if (typeof v === "string") return scrubLog(v);
  if (v === null || typeof v !== "object") return typeof v === "bigint" ? v.toString() : v;
  if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer || v instanceof SharedArrayBuffer) return `[${v.byteLength} bytes]`;
  if (v instanceof Error) return { name: v.name, message: scrubLog(v.message), ...("code" in v ? { code: String(v.code) } : {}) };
  if (depth >= MAX_DEPTH) return "[…]";
  if (Array.isArray(v)) return v.slice(0, 100).map((x) => clean(x, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = isSecretName(k) ? "[redacted]" : clean(x, depth + 1);
  return out;
}

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export function createLogger(opts: LoggerOptions): Logger {
  const level = opts.level ?? "info";
  return (opts.format ?? "text") === "json" ? jsonLogger(opts, level) : textLogger(opts, level);
}

/**
 * "TIME NAME: message" ("TIME warning: message" for warnings), fields
 * appended as key=value; TIME is ISO 8601 in UTC with milliseconds
 * (Date.toISOString: 2026-12-06T17:08:00.123Z).
 */
function textLogger(opts: LoggerOptions, level: LogLevel): Logger {
  const write = opts.write ?? ((l: string) => void process.stderr.write(l));
  const now = opts.now ?? (() => new Date());
  const line = (at: LogLevel, msg: string, fields?: LogFields) => {
    if (RANK[at] < RANK[level]) return;
    const f = fields ? clean(fields) as LogFields : undefined;
    const tail = f ? Object.entries(f).map(([k, v]) => ` ${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join("") : "";
    write(`${now().toISOString()} ${at === "warn" ? "warning" : opts.name}: ${scrubLog(msg)}${tail}\n`);
  };
  return {
    level,
    debug: (m, f) => line("debug", m, f),
    info: (m, f) => line("info", m, f),
    warn: (m, f) => line("warn", m, f),
    error: (m, f) => line("error", m, f),
    flush: () => {},
  };
}

function jsonLogger(opts: LoggerOptions, level: LogLevel): Logger {
  const dest = opts.write ? { write: opts.write } : pino.destination({ fd: 2, sync: true });
  const p: Pino = pino({
    name: opts.name,
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: REDACT_PATHS, censor: "[redacted]" },
  }, dest);
  const at = (l: LogLevel) => (msg: string, fields?: LogFields) => {
    if (RANK[l] < RANK[level]) return;
    if (fields) p[l](clean(fields) as object, scrubLog(msg));
    else p[l](scrubLog(msg));
  };
  return {
    level,
    debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error"),
    flush: () => { if ("flushSync" in dest) (dest as { flushSync(): void }).flushSync(); },
  };
}

/** Parses `--log-format` / `--log-level` values (undefined = default). */
export function parseLogOptions(format: unknown, level: unknown, quiet: boolean): { format: LogFormat; level: LogLevel } | string {
  const f = format ?? "text";
  if (!LOG_FORMATS.includes(f as LogFormat)) return `--log-format: expected ${LOG_FORMATS.join(" or ")}, got "${String(f)}"`;
  const l = level ?? (quiet ? "warn" : "info");
  if (!LOG_LEVELS.includes(l as LogLevel)) return `--log-level: expected one of ${LOG_LEVELS.join(", ")}, got "${String(l)}"`;
  return { format: f as LogFormat, level: l as LogLevel };
}
