// `wesp status [--control PATH | CONFIG] [--json]`: per-SA counters of the
// running instance, read over its control socket (host/control/).
import { NotRunningError, requestStatus } from "../control/client.ts";
import { formatStatus } from "../control/format.ts";
import { defaultControlDir } from "../control/paths.ts";
import { controlPath } from "./control_arg.ts";
import { EXIT_FAILURE, EXIT_NOT_RUNNING, EXIT_OK } from "./exit_codes.ts";
import { parseCommandArgs } from "./usage.ts";

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
  const path = controlPath("status", values.control, positionals);
  if (typeof path === "number") return path;
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
