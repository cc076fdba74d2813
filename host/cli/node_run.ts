// What `wesp up CONFIG` (up.ts) and `wesp up --controller` (up_controller.ts)
// share around a running node: the signals that stop it, the exit status and
// message of a start that failed, and the order in which it stops.
import type { ControlServer } from "../control/server.ts";
import type { Config } from "../config/model.ts";
import { ForwarderError, type Forwarder } from "../pipeline/forwarder.ts";
import type { IkeRuntime } from "../ike/runtime.ts";
import type { MetricsServer } from "../metrics/http.ts";
import { EXIT_FAILURE, EXIT_PERMISSION } from "./exit_codes.ts";

const PERMISSION_CODES = new Set(["EPERM", "EACCES"]);

/** Whether an error's errno code means a missing privilege. */
export function isPermissionError(e: unknown): boolean {
  return PERMISSION_CODES.has((e as NodeJS.ErrnoException)?.code ?? "");
}

/**
 * SIGINT and SIGTERM (and SIGHUP when given a handler) while the node runs:
 * `stopped` resolves with the signal's name, or with what `wake` was given
 * (an error, a removal by the controller). `release` takes the handlers off.
 */
export class StopSignals {
  readonly stopped: Promise<string>;
  wake: (why: string) => void = () => {};
  private readonly onSignal = (sig: NodeJS.Signals) => this.wake(sig);

  constructor(private readonly onHup?: () => void) {
    this.stopped = new Promise<string>((r) => (this.wake = r));
    process.once("SIGINT", this.onSignal);
    process.once("SIGTERM", this.onSignal);
    if (onHup) process.on("SIGHUP", onHup);
  }

  release(): void {
    process.off("SIGINT", this.onSignal);
    process.off("SIGTERM", this.onSignal);
    if (this.onHup) process.off("SIGHUP", this.onHup);
  }
}

/**
 * The exit status of a start that threw, after saying why; an error that is
 * not the forwarder's is thrown on (a bug, for the CLI's crash report).
 */
export function startFailure(e: unknown, config: Config, err: (l: string) => void): number {
  if (!(e instanceof ForwarderError)) throw e;
  err(e.message);
  if (!isPermissionError(e)) return EXIT_FAILURE;
  err(e.where === "ike" ? `missing privilege: IKE's UDP port ${config.node.ikePort} needs CAP_NET_BIND_SERVICE (or set node.ike_port ≥ 1024, the same on every CE)` : e.where === "socket"
    ? "missing privilege: raw ESP, IP-in-IP and GRE sockets need CAP_NET_RAW"
    : "missing privilege: creating a TUN needs CAP_NET_ADMIN (or attach to one made beforehand: tun.persistent)");
  return EXIT_PERMISSION;
}

/**
 * Stops a running node: no more control commands or scrapes, then IKE (its
 * DELETEs go out while the data plane still runs, RFC 7296 §1.4.1), then the
 * workers (final sequence records, TUN and sockets closed).
 */
export async function stopNode(parts: { control: ControlServer; metrics?: MetricsServer; ike: IkeRuntime; fwd: Forwarder }): Promise<void> {
  await parts.control.close();
  await parts.metrics?.close();
  await parts.ike.stop();
  await parts.fwd.stop();
}
