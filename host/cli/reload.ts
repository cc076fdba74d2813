// `wesp reload [--control PATH | CONFIG]`: ask a running `wesp up` to re-read
// its config file and apply it (the same as sending it SIGHUP, but with the
// answer: what changed, or why the new config was refused).
import { NotRunningError, requestReload } from "../control/client.ts";
import { defaultControlDir } from "../control/paths.ts";
import { controlPath } from "./control_arg.ts";
import { EXIT_FAILURE, EXIT_NOT_RUNNING, EXIT_OK } from "./exit_codes.ts";
import { parseCommandArgs } from "./usage.ts";

export const summary = "apply the running instance's edited config without a restart";

export const help = `Usage: wesp reload [--control PATH | CONFIG]

Make a running 'wesp up' re-read its config file and apply it without a
restart (as SIGHUP does): peers and SAs added, changed or removed at once,
between two packet batches. Every SA that did not change keeps its sequence
number, replay window, counters and learned NAT address; a new SA listed
beside an old one is installed inbound first, the outbound switch follows,
and an SA removed from the file is removed last (make before break).
A config that fails 'wesp check', or that changes what needs a restart
(node.name, wan, tun, control, workers, state_dir), is refused: the running
config stays and the reason is printed.

The instance is found by its control socket: --control PATH, or the
control.socket of CONFIG, or else the only socket in ${defaultControlDir()}.

Options:
      --control PATH   the control socket
  -h, --help           show this help

Exit status: 0 applied, 1 refused (the running config stays), 2 bad usage,
4 no running instance.
`;

export async function main(args: string[]): Promise<number> {
  const { values, positionals, help: wantHelp } = parseCommandArgs("reload", args, { control: { type: "string" } });
  if (wantHelp) {
    process.stdout.write(help);
    return EXIT_OK;
  }
  const path = controlPath("reload", values.control, positionals);
  if (typeof path === "number") return path;
  try {
    const r = await requestReload(path);
    process.stdout.write(`applied: added ${r.added.length} [${r.added.join(", ")}], removed ${r.removed.length} [${r.removed.join(", ")}], changed ${r.changed.length} [${r.changed.join(", ")}], unchanged ${r.unchanged.length}\n`);
    return EXIT_OK;
  } catch (e) {
    if (e instanceof NotRunningError) {
      process.stderr.write(`wesp reload: ${e.message}\n`);
      return EXIT_NOT_RUNNING;
    }
    process.stderr.write(`wesp reload: ${(e as Error).message}\n`);
    return EXIT_FAILURE;
  }
}
