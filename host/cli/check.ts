// `wesp check CONFIG`: validate a config file and name the field at fault.

import { ConfigError, formatIssue, loadConfigSync } from "../config/load.ts";
import type { ConfigIssue } from "../config/model.ts";
import { describeConfig, scrub } from "../config/redact.ts";
import { EXIT_OK, EXIT_USAGE } from "./exit_codes.ts";
import { parseCommandArgs, UsageError } from "./usage.ts";
import { MAX_CONFIG_BYTES_OPTION, maxConfigBytesArg } from "./config_arg.ts";

export const summary = "validate a config file; exit 2 naming the field at fault";

export const help = `Usage: wesp check [options] CONFIG

Validate CONFIG (YAML or JSON) against the schema and the semantic rules
(unique SPIs, non-overlapping prefixes, key lengths per suite, ...).
Each problem is printed as FILE:LINE: FIELD: MESSAGE, for example
  hq.yaml:42: peers[1].sas[0].key_out: AES-256-GCM needs 36 bytes (32 key + 4 salt), got 20
Key material is never printed.

Options:
  -v, --verbose   also print the loaded config (keys shown as their length only)
  -q, --quiet     print nothing on success
      --json      print {"ok", "errors", "warnings"} as JSON on stdout
      --max-config-bytes N
                  read a JSON CONFIG of up to N bytes (KiB and MiB allowed:
                  40MiB), 4 MiB (the default) to 64 MiB; YAML stays under
                  4 MiB (docs/config.md "Size limits")
  -h, --help      show this help

Exit status: 0 valid (warnings allowed), 2 invalid or unreadable config, or bad usage.
`;

export async function main(args: string[]): Promise<number> {
  const { values, positionals, help: wantHelp } = parseCommandArgs("check", args, {
    verbose: { type: "boolean", short: "v" },
    quiet: { type: "boolean", short: "q" },
    json: { type: "boolean" },
    ...MAX_CONFIG_BYTES_OPTION,
  });
  if (wantHelp) {
    process.stdout.write(help);
    return EXIT_OK;
  }
  if (positionals.length !== 1) throw new UsageError("expects exactly one CONFIG file", "check");
  const file = positionals[0];
  const maxBytes = maxConfigBytesArg(values["max-config-bytes"], "check");
  try {
    const { config, warnings } = loadConfigSync(file, { maxBytes });
    if (values.json) {
      process.stdout.write(JSON.stringify({ ok: true, errors: [], warnings: plain(warnings) }, null, 2) + "\n");
      return EXIT_OK;
    }
    for (const w of warnings) process.stderr.write(`warning: ${formatIssue(config.source, w)}\n`);
    if (values.verbose) process.stdout.write(scrub(describeConfig(config)) + "\n");
    if (!values.quiet) {
      const sas = config.peers.reduce((n, p) => n + p.sas.length, 0);
      process.stdout.write(`${config.source}: ok (node ${config.node.name}, ${config.peers.length} peer${config.peers.length === 1 ? "" : "s"}, ${sas} SA${sas === 1 ? "" : "s"})\n`);
    }
    return EXIT_OK;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    if (values.json) {
      process.stdout.write(JSON.stringify({ ok: false, errors: plain(e.issues), warnings: plain(e.warnings) }, null, 2) + "\n");
      return EXIT_USAGE;
    }
    for (const w of e.warnings) process.stderr.write(`warning: ${formatIssue(e.source, w)}\n`);
    for (const i of e.issues) process.stderr.write(`${formatIssue(e.source, i)}\n`);
    process.stderr.write(`${e.source}: ${e.issues.length} error${e.issues.length === 1 ? "" : "s"}\n`);
    return EXIT_USAGE;
  }
}

function plain(list: ConfigIssue[]): ConfigIssue[] {
  return list.map(({ path, message, line }) => ({ path, message, ...(line !== undefined ? { line } : {}) }));
}
