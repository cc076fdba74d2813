// `wesp selftest [--vectors FILE]`: runs a known-answer vector file through
// the core's ESP path (host/core/selftest.ts); the core build's name, one
// line per vector, then "N passed, M failed". Exit 0 only when every vector passes.

import { selftest, selftestCore, DEFAULT_VECTORS } from "../core/selftest.ts";
import { EXIT_FAILURE, EXIT_OK } from "./exit_codes.ts";
import { parseCommandArgs, UsageError } from "./usage.ts";

export const summary = "check the WASM core against test vectors";

export const help = `Usage: wesp selftest [--vectors FILE]

Run ESP known-answer vectors through the WASM core: each vector is sealed
(the result must equal expected_esp, and expected_packet where given) and
opened again (must give back plaintext_payload). Prints which core build
runs ("core build/wesp.relaxed.wasm (relaxed SIMD)"), one line per vector
and a closing "N passed, M failed" line. A vector whose suite the core does
not support counts as failed.

Options:
      --vectors FILE   vector file (format of the shipped one; default:
                       ${DEFAULT_VECTORS})
  -h, --help           show this help

Exit status: 0 all vectors passed, 1 any failed (or the file is unreadable), 2 bad usage.
`;

export async function main(args: string[]): Promise<number> {
  const { values, positionals, help: wantHelp } = parseCommandArgs("selftest", args, {
    vectors: { type: "string" },
  });
  if (wantHelp) {
    process.stdout.write(help);
    return EXIT_OK;
  }
  if (positionals.length !== 0) throw new UsageError(`unexpected argument "${positionals[0]}"`, "selftest");
  const file = typeof values.vectors === "string" ? values.vectors : DEFAULT_VECTORS;
  const core = await selftestCore();
  process.stdout.write(`core ${core.build}\n`);
  const { failed } = await selftest(file, (line) => process.stdout.write(line + "\n"), core);
  return failed === 0 ? EXIT_OK : EXIT_FAILURE;
}
