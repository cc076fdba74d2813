// The `--control PATH | CONFIG` argument of commands that talk to a running
// instance (status, reload): which control socket to use.
import { ConfigError, formatIssue, loadConfigSync } from "../config/load.ts";
import { defaultControlDir, defaultSockets } from "../control/paths.ts";
import { EXIT_NOT_RUNNING, EXIT_USAGE } from "./exit_codes.ts";
import { UsageError } from "./usage.ts";

/** The socket path, or an exit code after printing why there is none. */
export function controlPath(cmd: string, control: unknown, positionals: string[]): string | number {
  if (positionals.length > 1) throw new UsageError("expects at most one CONFIG file", cmd);
  if (positionals.length === 1 && control !== undefined) throw new UsageError("give --control or CONFIG, not both", cmd);
  if (typeof control === "string") return control;
  if (positionals.length === 1) {
    try {
      return loadConfigSync(positionals[0]).config.node.control.socket;
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      for (const i of e.issues) process.stderr.write(`${formatIssue(e.source, i)}\n`);
      return EXIT_USAGE;
    }
  }
  const found = defaultSockets();
  if (found.length === 0) {
    process.stderr.write(`wesp ${cmd}: no running wesp (no socket in ${defaultControlDir()})\n`);
    return EXIT_NOT_RUNNING;
  }
  if (found.length > 1) throw new UsageError(`several instances run (${found.join(", ")}): give --control PATH or CONFIG`, cmd);
  return found[0];
}
