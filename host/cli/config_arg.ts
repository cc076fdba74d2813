// The CONFIG argument of commands that need a valid config (up, keys).
import { ConfigError, formatIssue, loadConfigSync, type LoadResult } from "../config/load.ts";

/**
 * Loads and validates `file`. On an invalid or unreadable config, prints each
 * problem as `FILE:LINE: FIELD: MESSAGE` on stderr and returns undefined: the
 * caller exits with EXIT_USAGE (2). Other errors propagate.
 */
export function loadConfigOrReport(file: string): LoadResult | undefined {
  try {
    return loadConfigSync(file);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    for (const i of e.issues) process.stderr.write(`${formatIssue(e.source, i)}\n`);
    return undefined;
  }
}
