// The `wesp` command: parses the command name and hands the rest of the
// arguments to that command's `main(args): Promise<number>`.
//
// Commands written in other parts of the tree (up, status, bench, selftest)
// are loaded with a dynamic import, so a build without one of them still runs
// every other command and says "not available in this build" (exit 1).

import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { scrub } from "../config/redact.ts";
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from "./exit_codes.ts";
import { UsageError } from "./usage.ts";
import { packagePath, siblingUrl } from "../util/package_root.ts";

type CommandMain = (args: string[]) => Promise<number>;

interface Command {
  name: string;
  summary: string;
  usage: string;
  /** Module next to this file exporting `main(args: string[]): Promise<number>` (its source name: up.js when compiled). */
  module: string;
}

export const COMMANDS: readonly Command[] = [
  { name: "up", usage: "up [-q] [--selftest-vectors FILE] CONFIG", summary: "run the data plane in the foreground (SIGINT/SIGTERM stop it cleanly)", module: "./up.ts" },
  { name: "status", usage: "status [--control PATH | CONFIG] [--json]", summary: "show per-SA counters of the running instance (control socket)", module: "./status.ts" },
  { name: "reload", usage: "reload [--control PATH | CONFIG]", summary: "apply the running instance's edited config without a restart", module: "./reload.ts" },
  { name: "check", usage: "check CONFIG", summary: "validate a config file; exit 2 naming the field at fault", module: "./check.ts" },
  { name: "keys", usage: "keys --wireshark CONFIG [-o FILE]", summary: "write the SA keys as Wireshark's esp_sa table (debugging)", module: "./keys.ts" },
  { name: "selftest", usage: "selftest [--vectors FILE]", summary: "run ESP known-answer vectors through the WASM core", module: "./selftest.ts" },
  { name: "bench", usage: "bench [tunnel|ike]", summary: "the core's throughput per cipher and size; tunnel: iperf3 through wesp and its peers; ike: IKE SA setups per second against charon", module: "./bench.ts" },
  { name: "demo", usage: "demo [--keep | --down]", summary: "three-site ESP VPN in namespaces: build, send traffic, check, tear down", module: "./demo.ts" },
  { name: "controller", usage: "controller [--state DIR] [--db FILE]", summary: "serve the VPN database and its operator API (HTTPS)", module: "./controller.ts" },
  { name: "ctl", usage: "ctl COMMAND [ARGS]", summary: "operator commands for a controller: create-vpn, add-site, remove-site, list", module: "./ctl.ts" },
  { name: "stun", usage: "stun SERVER --from ADDR:PORT [--nat-type]", summary: "ask a STUN server for a WAN port's public address and port (and NAT type)", module: "./stun.ts" },
];

/** Width of the usage column: the longest usage line and two spaces. */
const USAGE_WIDTH = Math.max(36, ...COMMANDS.map((c) => c.usage.length + 2));

export const HELP = `Usage: wesp COMMAND [options] [arguments]

wesp: a userspace IPsec ESP data plane (RFC 4303) for CE-based VPNs.

Commands:
${COMMANDS.map((c) => `  ${c.usage.padEnd(USAGE_WIDTH)}${c.summary}`).join("\n")}
  ${"help [COMMAND]".padEnd(USAGE_WIDTH)}show this help, or a command's

Options:
  -h, --help      show help (after a command: that command's help)
  -V, --version   print the version

Exit status (all commands):
  0  success
  1  runtime failure (I/O error, failed self-test, command not in this build)
  2  bad usage, or an invalid or unreadable config
  3  missing privilege (CAP_NET_ADMIN / CAP_NET_RAW)
  4  no running instance on the control socket (status)

See docs/cli.md and docs/config.md.
`;

export interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

const defaultIo: Io = {
  stdout: (t) => void process.stdout.write(t),
  stderr: (t) => void process.stderr.write(t),
};

/** Run `wesp` with `argv` (without node and script); resolves to the exit code. */
export async function run(argv: string[], io: Io = defaultIo): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    io.stderr(HELP);
    return EXIT_USAGE;
  }
  if (first === "-h" || first === "--help") {
    io.stdout(HELP);
    return EXIT_OK;
  }
  if (first === "-V" || first === "--version") {
    io.stdout(`wesp ${version()}\n`);
    return EXIT_OK;
  }
  if (first === "help") {
    if (rest.length === 0) {
      io.stdout(HELP);
      return EXIT_OK;
    }
    return run([rest[0], "--help"], io);
  }
  const command = COMMANDS.find((c) => c.name === first);
  if (!command) {
    io.stderr(`wesp: unknown command "${scrub(first)}"\nRun 'wesp --help' for the list of commands.\n`);
    return EXIT_USAGE;
  }
  const main = await loadCommand(command, io);
  if (!main) return EXIT_FAILURE;
  try {
    return await main(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr(`wesp ${command.name}: ${scrub(e.message)}\nRun 'wesp ${command.name} --help' for usage.\n`);
      return EXIT_USAGE;
    }
    // Errors from other modules are scrubbed too: we cannot vouch for what they quote.
    io.stderr(`wesp ${command.name}: ${scrub(e instanceof Error ? e.message : String(e))}\n`);
    if (process.env.WESP_DEBUG && e instanceof Error && e.stack) io.stderr(scrub(e.stack) + "\n");
    return EXIT_FAILURE;
  }
}

async function loadCommand(c: Command, io: Io): Promise<CommandMain | undefined> {
  const url = siblingUrl(c.module, import.meta.url);
  const file = basename(url.pathname);
  let mod: { main?: unknown };
  try {
    mod = await import(url.href);
  } catch (e) {
    if (isMissing(e, url)) {
      io.stderr(`wesp ${c.name}: not available in this build (${file} is missing)\n`);
      return undefined;
    }
    // The file exists but fails to load (a broken import inside it): say so, do not mask it.
    io.stderr(`wesp ${c.name}: cannot load the command: ${scrub((e as Error).message.split("\n")[0])}\n`);
    return undefined;
  }
  if (typeof mod.main !== "function") {
    io.stderr(`wesp ${c.name}: not available in this build (${file} has no main(args))\n`);
    return undefined;
  }
  return mod.main as CommandMain;
}

/** True when `e` reports that the command module itself (not one it imports) is absent. */
function isMissing(e: unknown, url: URL): boolean {
  const err = e as NodeJS.ErrnoException & { url?: string };
  if (err?.code !== "ERR_MODULE_NOT_FOUND") return false;
  const path = decodeURIComponent(url.pathname);
  return err.url === url.href || (typeof err.message === "string" && err.message.includes(`'${path}'`));
}

function version(): string {
  try {
    return JSON.parse(readFileSync(packagePath("package.json"), "utf8")).version;
  } catch {
    return "unknown";
  }
}
