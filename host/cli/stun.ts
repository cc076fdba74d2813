// `wesp stun SERVER[:PORT] --from ADDRESS:PORT [--nat-type] [--json]`: asks a
// STUN server (a controller's, docs/controller.md "STUN") what a WAN port
// looks like from outside — for an operator checking a site's NAT by hand.
// It binds the port itself, so it runs only while no `wesp up` holds it; a
// running data plane learns the same through its own NAT-T socket
// (host/net/stun_client.ts forwarderTransport).
import { isIPv4, isIPv6 } from "node:net";
import { formatEndpoint } from "../config/addr.ts";
import { DEFAULT_STUN_PORT } from "../controller/stun_server.ts";
import { discover, type StunServerAddress } from "../net/stun_client.ts";
import { classifyNat } from "../net/stun_nat_type.ts";
import { EXIT_FAILURE, EXIT_OK } from "./exit_codes.ts";
import { UsageError, parseCommandArgs } from "./usage.ts";

export const summary = "ask a STUN server for a WAN port's public address and port (and NAT type)";

export const help = `Usage: wesp stun SERVER[:PORT] --from ADDRESS:PORT [--nat-type] [--timeout MS] [--json]

Send a STUN Binding request (RFC 8489) from ADDRESS:PORT — a WAN port's local
address and its NAT-T port, usually 4500 — to SERVER (an IP address; port
default ${DEFAULT_STUN_PORT}; IPv6 as [ADDRESS]:PORT) and print the public address and
port the server saw. The port must be free: stop 'wesp up' first (a running
data plane learns the same through its own socket).

Options:
      --from ADDRESS:PORT  where the request leaves from (required)
      --nat-type           also classify the NAT (RFC 5780): needs a server
                           started with --stun-alternate
      --timeout MS         give up after MS milliseconds (default: RFC 8489's
                           schedule, 39.5 s)
      --json               print one JSON object
  -h, --help               show this help

Exit status: 0 answered, 2 bad usage, 1 no answer or an error response.
`;

/** "a.b.c.d[:port]", "[v6][:port]" or a bare IPv6 address (no port: its colons would be ambiguous). */
function endpoint(text: string, option: string, defaultPort?: number): StunServerAddress {
  let host = text, port: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
  if (bracketed) [host, port] = [bracketed[1], bracketed[2]];
  else if (!isIPv6(text) && text.includes(":")) [host, port] = [text.slice(0, text.lastIndexOf(":")), text.slice(text.lastIndexOf(":") + 1)];
  if (!(isIPv4(host) || isIPv6(host)) || (port !== undefined && !/^\d{1,5}$/.test(port))) {
    throw new UsageError(`${option}: expected an IP address with an optional :PORT, got "${text}"`);
  }
  const p = port !== undefined ? Number(port) : defaultPort;
  if (p === undefined || p > 65535) throw new UsageError(`${option}: "${text}" needs a port (0..65535)`);
  return { host, port: p };
}

export async function main(args: string[]): Promise<number> {
  const { values, positionals, help: wantHelp } = parseCommandArgs("stun", args, {
    from: { type: "string" }, "nat-type": { type: "boolean" }, timeout: { type: "string" }, json: { type: "boolean" },
  });
  if (wantHelp) {
    process.stdout.write(help);
    return EXIT_OK;
  }
  if (positionals.length !== 1) throw new UsageError("expects exactly one SERVER");
  if (values.from === undefined) throw new UsageError("--from ADDRESS:PORT is required (the WAN port's address and NAT-T port)");
  const server = endpoint(positionals[0], "SERVER", DEFAULT_STUN_PORT);
  const from = endpoint(values.from as string, "--from");
  const timeoutMs = values.timeout === undefined ? undefined : Number(values.timeout);
  if (timeoutMs !== undefined && !(Number.isInteger(timeoutMs) && timeoutMs > 0)) throw new UsageError(`--timeout: expected milliseconds, got "${values.timeout}"`);
  try {
    const r = values["nat-type"]
      ? await classifyNat(from.host, from.port, server, { timeoutMs })
      : await discover(from.host, from.port, server, { timeoutMs });
    if (values.json) process.stdout.write(JSON.stringify(r) + "\n");
    else {
      process.stdout.write(`public ${formatEndpoint(r.publicAddress, r.publicPort)} (from ${formatEndpoint(from.host, from.port)})\n`);
      if ("mapping" in r) process.stdout.write(`mapping ${r.mapping}, filtering ${r.filtering}\n`);
    }
    return EXIT_OK;
  } catch (e) {
    process.stderr.write(`wesp stun: ${(e as Error).message}\n`);
    return EXIT_FAILURE;
  }
}
