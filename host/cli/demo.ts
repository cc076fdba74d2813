// `wesp demo [--keep] [--down] [--static-keys]`: a three-site ESP VPN in network
// namespaces, its SAs negotiated with IKEv2, end to end (host/demo/run.ts does
// the work; docs/demo.md explains it).
import { existsSync, writeFileSync } from "node:fs";
import { removeLeftovers } from "../lab/leftovers.ts";
import { packagePath } from "../util/package_root.ts";
import { defaultPrefix } from "../demo/plan.ts";
import { runDemo } from "../demo/run.ts";
import { prepareTools } from "../demo/tools.ts";
import { EXIT_FAILURE, EXIT_OK, EXIT_PERMISSION } from "./exit_codes.ts";
import { parseCommandArgs, UsageError } from "./usage.ts";

export const summary = "build a three-site ESP VPN in namespaces, send traffic, check it, tear it down";

export const help = `Usage: wesp demo [--keep | --down] [options]

Builds a three-site CE VPN in network namespaces: three CEs running
'wesp up' in a full mesh (AES-GCM-128, AES-GCM-256, ChaCha20-Poly1305), a
LAN host behind each, an "Internet" bridge between them and site C behind a
source NAT (nftables), so C's ESP goes in UDP (RFC 3948) and its peers learn
C's translated address and port. The CEs negotiate their SAs with IKEv2
(pre-shared keys fresh for the run; C initiates from behind the NAT), and the
demo waits until every IKE SA is up. Then it pings (IPv4, IPv6) and sends
1 MiB over TCP between every pair of sites, prints the per-SA counters of each
CE ('wesp status') and what crossed the wire, decrypted and authenticated by
tshark with the keys IKE negotiated (each CE's WESP_ESP_KEYLOG), and tears
everything down, also on Ctrl-C or failure. Needs root, iproute2 and a built
core (npm run build:wasm; 'npm run demo' does both). It installs nftables,
tcpdump and tshark with apt-get when they are missing (unless --no-install),
or runs without them and says what it skipped. See docs/demo.md.

Options:
      --static-keys    static SAs with keys in the configs instead of IKEv2
                       (the wire then decrypted with 'wesp keys --wireshark')
      --keep           leave the lab up at the end, and print how to look around
      --down           remove a lab left by --keep (or by a killed run), then exit
      --report FILE    also write the result as JSON to FILE
      --prefix NAME    name namespaces and the scratch dir NAME* (default
                       \$WESP_NS_PREFIX followed by demo-, else wesp-demo-)
      --no-install     never install missing Debian tools; run without them
  -h, --help           show this help

Exit status: 0 every check it could run passed, 1 a check failed or the demo
could not run (with CI set: also a tool still missing), 2 bad usage, 3 not root.
`;

const WASM = packagePath("build/wesp.wasm");

export async function main(args: string[]): Promise<number> {
  const { values, positionals, help: wantHelp } = parseCommandArgs("demo", args, {
    keep: { type: "boolean" },
    down: { type: "boolean" },
    "static-keys": { type: "boolean" },
    report: { type: "string" },
    prefix: { type: "string" },
    "no-install": { type: "boolean" },
  });
  if (wantHelp) {
    process.stdout.write(help);
    return EXIT_OK;
  }
  if (positionals.length) throw new UsageError(`takes no arguments (got "${positionals[0]}")`, "demo");
  if (values.keep && values.down) throw new UsageError("--keep and --down exclude each other", "demo");
  if (values.down && values["static-keys"]) throw new UsageError("--down takes no --static-keys", "demo");
  const prefix = (values.prefix as string | undefined) ?? defaultPrefix();
  // Names end up in /run/netns and /tmp: keep them to a safe alphabet.
  if (!/^[a-z][a-z0-9-]{0,23}$/.test(prefix)) throw new UsageError(`${values.prefix === undefined ? "WESP_NS_PREFIX" : "--prefix"}: 1-24 of a-z 0-9 -, starting with a letter (got "${prefix}")`, "demo");

  if (process.getuid?.() !== 0) {
    process.stderr.write("wesp demo: needs root (network namespaces, TUN devices, nftables)\n");
    return EXIT_PERMISSION;
  }
  if (values.down) {
    const gone = await removeLeftovers(prefix);
    process.stdout.write(gone.length ? `removed ${gone.join(", ")}\n` : `no demo lab (${prefix}*) found\n`);
    return EXIT_OK;
  }
  if (!process.env.WESP_WASM && !existsSync(WASM)) {
    process.stderr.write(`wesp demo: ${WASM} is missing: run 'npm run build:wasm' (or 'npm run demo')\n`);
    return EXIT_FAILURE;
  }

  // `wesp demo | head` must not kill the demo before it has torn the lab down.
  process.stdout.on("error", () => {});
  const tools = await prepareTools({ install: values["no-install"] !== true });
  if (tools.error) {
    process.stderr.write(`wesp demo: ${tools.error}\n`);
    return EXIT_FAILURE;
  }
  const result = await runDemo({ keep: values.keep === true, prefix, tools: tools.tools, mode: values["static-keys"] ? "static" : "ike" });
  if (typeof values.report === "string") writeFileSync(values.report, JSON.stringify(result, null, 2) + "\n");
  return result.ok ? EXIT_OK : EXIT_FAILURE;
}
