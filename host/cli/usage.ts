// Argument parsing shared by the commands: node's util.parseArgs, with its
// errors turned into a UsageError (exit 2) and `--help` handled uniformly.

import { parseArgs, type ParseArgsConfig } from "node:util";

/** Bad command line; main.ts prints it with a hint and exits 2. */
export class UsageError extends Error {
  constructor(message: string, readonly command?: string) {
    super(message);
    this.name = "UsageError";
  }
}

type Options = NonNullable<ParseArgsConfig["options"]>;

export interface Parsed {
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  positionals: string[];
  help: boolean;
}

/** Parse `args` for `command`; `-h/--help` is always accepted. */
export function parseCommandArgs(command: string, args: string[], options: Options): Parsed {
  try {
    const { values, positionals } = parseArgs({
      args,
      options: { ...options, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
    return { values, positionals, help: values.help === true };
  } catch (e) {
    // parseArgs messages name the option, never a value we would have to hide.
    throw new UsageError((e as Error).message.split("\n")[0], command);
  }
}
