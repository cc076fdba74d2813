// The CONFIG argument of commands that read a config file (up, check, keys),
// and `--max-config-bytes`, the operator's cap on its size.
import { ConfigError, configCap, formatIssue, loadConfigSync, MAX_CONFIG_BYTES, MAX_CONFIG_BYTES_CEILING, type LoadOptions, type LoadResult } from "../config/load.ts";
import { UsageError } from "./usage.ts";

/** parseArgs' spec of `--max-config-bytes`. */
export const MAX_CONFIG_BYTES_OPTION = { "max-config-bytes": { type: "string" } } as const;

/**
 * `--max-config-bytes`'s value: bytes, or KiB/MiB (binary) — `41943040`,
 * `40960KiB`, `40MiB`; undefined when not given. A UsageError when it is
 * not a size or out of MAX_CONFIG_BYTES..MAX_CONFIG_BYTES_CEILING.
 */
export function maxConfigBytesArg(v: unknown, command: string): number | undefined {
  if (v === undefined) return undefined;
  const m = typeof v === "string" ? /^(\d{1,12})(KiB|MiB)?$/.exec(v) : null;
  const n = m ? Number(m[1]) * (m[2] === "MiB" ? 1 << 20 : m[2] === "KiB" ? 1 << 10 : 1) : NaN;
  try {
    return configCap(n);
  } catch {
    throw new UsageError(`--max-config-bytes: a size from ${MAX_CONFIG_BYTES} (4MiB) to ${MAX_CONFIG_BYTES_CEILING} (64MiB) bytes, got "${String(v)}"`, command);
  }
}

/**
 * Loads and validates `file`. On an invalid or unreadable config, prints each
 * problem as `FILE:LINE: FIELD: MESSAGE` on stderr and returns undefined: the
 * caller exits with EXIT_USAGE (2). Other errors propagate.
 */
export function loadConfigOrReport(file: string, opts: LoadOptions = {}): LoadResult | undefined {
  try {
    return loadConfigSync(file, opts);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    for (const i of e.issues) process.stderr.write(`${formatIssue(e.source, i)}\n`);
    return undefined;
  }
}
