// `wesp keys --wireshark CONFIG [-o FILE]`: export the node's SAs as the
// `esp_sa` table Wireshark/tshark use to decrypt ESP (for debugging).
// This command exists to write keys out; nothing else in wesp does.

import { closeSync, fchmodSync, fstatSync, openSync, writeSync } from "node:fs";
import { loadConfigOrReport } from "./config_arg.ts";
import { espSaTable } from "../config/wireshark.ts";
import { EXIT_OK, EXIT_USAGE } from "./exit_codes.ts";
import { parseCommandArgs, UsageError } from "./usage.ts";

export const summary = "write the node's SA keys as Wireshark's esp_sa table";

export const help = `Usage: wesp keys --wireshark [options] CONFIG

Write the ESP SAs of CONFIG (both directions of every SA) in the format of
Wireshark's "ESP SAs" table (the esp_sa file of a Wireshark profile), so that
Wireshark or tshark can decrypt and check captured ESP:

  wesp keys --wireshark hq.yaml -o ~/.config/wireshark/esp_sa
  tshark -o esp.enable_encryption_decode:TRUE \\
         -o esp.enable_authentication_check:TRUE -r capture.pcap

The output CONTAINS KEYS. With -o the file is created with mode 0600.
ChaCha20-Poly1305 SAs are listed as comments only: Wireshark's ESP dissector
(checked with 4.0) cannot decrypt them. ESN SAs decrypt but fail the ICV check.

Options:
      --wireshark       the output format (the only one so far; required)
  -o, --output FILE     write to FILE (mode 0600) instead of standard output
      --any-address     write "*" for the outer addresses (captures behind NAT)
  -h, --help            show this help

Exit status: 0 written, 1 cannot write FILE, 2 invalid config or bad usage.
`;

export async function main(args: string[]): Promise<number> {
  const { values, positionals, help: wantHelp } = parseCommandArgs("keys", args, {
    wireshark: { type: "boolean" },
    output: { type: "string", short: "o" },
    "any-address": { type: "boolean" },
  });
  if (wantHelp) {
    process.stdout.write(help);
    return EXIT_OK;
  }
  if (!values.wireshark) throw new UsageError("choose an output format: --wireshark", "keys");
  if (positionals.length !== 1) throw new UsageError("expects exactly one CONFIG file", "keys");
  const loaded = loadConfigOrReport(positionals[0]);
  if (!loaded) return EXIT_USAGE;
  const table = espSaTable(loaded.config, { anyAddress: values["any-address"] === true });
  for (const n of table.notes) process.stderr.write(`note: ${n}\n`);
  const out = values.output as string | undefined;
  if (out === undefined) {
    process.stdout.write(table.text);
    return EXIT_OK;
  }
  writePrivate(out, table.text);
  process.stderr.write(`wrote ${table.rows} ESP SA entr${table.rows === 1 ? "y" : "ies"} for node ${loaded.config.node.name} to ${out}\n`);
  return EXIT_OK;
}

/** Write `text` to `path` readable by the owner only, also when the file already existed. */
function writePrivate(path: string, text: string): void {
  const fd = openSync(path, "w", 0o600);
  try {
    if (fstatSync(fd).isFile()) fchmodSync(fd, 0o600);
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}
