// `wesp status [--control PATH | CONFIG] [--json]`: per-SA counters of the
// running instance, read over its control socket (host/control/).
import { ConfigError, formatIssue, loadConfigSync } from "../config/load.ts";
import { NotRunningError, requestStatus } from "../control/client.ts";
import { formatStatus } from "../control/format.ts";
import { defaultControlDir, defaultSockets } from "../control/paths.ts";
import { EXIT_FAILURE, EXIT_NOT_RUNNING, EXIT_OK, EXIT_USAGE } from "./exit_codes.ts";
import { parseCommandArgs, UsageError } from "./usage.ts";

export const summary = "show per-SA counters of the running instance (control socket)";

export const help = `Usage: wesp status [--control PATH | CONFIG] [--json]

Print the counters of a running 'wesp up': per peer and SA (SPI) the packets
and bytes that passed and every drop by reason, the global counters, and the
host side (TUN, sockets, ICMP too-big answers). Keys are never shown.

The instance is found by its control socket: --control PATH, or the
control.socket of CONFIG, or else the only socket in ${defaultControlDir()}.

Options:
      --control PATH   the control socket
      --json           print the whole status as JSON (every drop reason, zeros too)
  -h, --help           show this help

Exit status: 0 printed, 2 bad usage or invalid CONFIG, 4 no running instance,
1 any other failure.
`;

export async function main(args: string[]): Promise<number> {
  const { values, positionals, help: wantHelp } = parseCommandArgs("status", args, {
    control: { type: "string" },
    json: { type: "boolean" },
  });
  if (wantHelp) {
    process.stdout.write(help);
    return EXIT_OK;
  }
  if (positionals.length > 1) throw new UsageError("expects at most one CONFIG file", "status");
  if (positionals.length === 1 && values.control !== undefined) throw new UsageError("give --control or CONFIG, not both", "status");
  let path: string;
  if (typeof values.control === "string") path = values.control;
  else if (positionals.length === 1) {
    try {
      path = loadConfigSync(positionals[0]).config.node.control.socket;
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      for (const i of e.issues) process.stderr.write(`${formatIssue(e.source, i)}\n`);
      return EXIT_USAGE;
    }
  } else {
    const found = defaultSockets();
    if (found.length === 0) {
      process.stderr.write(`wesp status: no running wesp (no socket in ${defaultControlDir()})\n`);
      return EXIT_NOT_RUNNING;
    }
    if (found.length > 1) throw new UsageError(`several instances run (${found.join(", ")}): give --control PATH or CONFIG`, "status");
    path = found[0];
  }
  try {
    const st = await requestStatus(path);
    process.stdout.write(values.json ? JSON.stringify(st, null, 2) + "\n" : formatStatus(st));
    return EXIT_OK;
  } catch (e) {
    if (e instanceof NotRunningError) {
      process.stderr.write(`wesp status: ${e.message}\n`);
      return EXIT_NOT_RUNNING;
    }
    process.stderr.write(`wesp status: ${(e as Error).message}\n`);
    return EXIT_FAILURE;
  }
}
