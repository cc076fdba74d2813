// `wesp up CONFIG`: the data plane in the foreground. Self-test first (a core
// that fails its known answers must not carry traffic), then the control
// socket, the worker with its TUN and sockets, and forwarding until SIGINT or
// SIGTERM; then TUN and sockets are closed and the exit status is 0.
import { ConfigError, formatIssue, loadConfigSync } from "../config/load.ts";
import { loadConfigOrReport, MAX_CONFIG_BYTES_OPTION, maxConfigBytesArg } from "./config_arg.ts";
import { selftest, DEFAULT_VECTORS } from "../core/selftest.ts";
import { ControlServer } from "../control/server.ts";
import type { ForwarderError, Forwarder } from "../pipeline/forwarder.ts";
import { startWithIke, statusWithIke, type IkeRuntime } from "../ike/runtime.ts";
import { EXIT_FAILURE, EXIT_OK, EXIT_PERMISSION, EXIT_USAGE } from "./exit_codes.ts";
import { parseCommandArgs, UsageError } from "./usage.ts";
import { createLogger, parseLogOptions } from "../metrics/log.ts";
import { CeMetrics } from "../metrics/ce.ts";
import type { MetricsServer } from "../metrics/http.ts";
import { describeConfig } from "../config/redact.ts";
import { isPermissionError, startFailure, stopNode, StopSignals } from "./node_run.ts";
import { phaseStart, phaseTime, plural } from "../util/elapsed.ts";

export const summary = "run the data plane in the foreground (SIGINT/SIGTERM stop it cleanly)";

export const help = `Usage: wesp up [options] CONFIG
       wesp up --controller URL --token FILE [...]   (see: wesp up --controller - --help)

Run the ESP data plane of the node described by CONFIG in the foreground:
  1. check the config (as 'wesp check') and run the known-answer self-test
     (as 'wesp selftest'); refuse to start if either fails;
  2. open the control socket (node.control.socket, mode 0600) for 'wesp status';
  3. create the TUN interface (or attach to a persistent one), open the UDP
     and raw sockets of each WAN port, install SAs and policies;
  4. start IKEv2 for the peers with an 'ike' block (UDP node.ike_port, 500
     by default, and the NAT-T port shared with ESP): initiators connect,
     negotiated CHILD_SAs are installed, rekeyed before their lifetimes,
     retried with backoff when the peer fails or refuses the CHILD_SA
     (docs/ike.md);
  5. forward until SIGINT or SIGTERM; then IKE SAs are deleted (DELETE sent
     to each peer), and the TUN and sockets closed.
SIGHUP (or 'wesp reload') re-reads CONFIG and applies it without a restart:
peers and SAs added, changed or removed atomically; every unchanged SA keeps
its sequence number, replay window, counters and learned NAT address. An
IKE peer added starts, one removed gets a DELETE and loses its SAs, one whose
'ike' block (or address, prefixes) changed is restarted alone. A config
that fails 'wesp check' is refused and the running one stays.
Static SAs resume past their last durable sequence reservation, kept under
node.state_dir (docs/config.md "Restarts"): never at sequence number 1.
With node.metrics configured it serves Prometheus metrics on GET /metrics
(docs/metrics.md).
Without 'tun.persistent', wesp sets the TUN's MTU and addresses, brings it up
and routes every peer prefix into it (needs CAP_NET_ADMIN); a persistent TUN
is left as the administrator configured it. Raw ESP, IP-in-IP and GRE ports
need CAP_NET_RAW; UDP-encapsulated ESP needs no privilege; IKE's port 500
needs CAP_NET_BIND_SERVICE (node.ike_port ≥ 1024 does not).

Options:
  -q, --quiet                  log only warnings and errors
      --log-format text|json   log lines as text (default) or one JSON
                               object a line (docs/metrics.md); keys never logged
      --log-level LEVEL        debug, info (default), warn or error
      --selftest-vectors FILE  known-answer vectors for the self-test
                               (default: the shipped ones, as 'wesp selftest')
      --max-config-bytes N     read a JSON CONFIG of up to N bytes, at start
                               and on reload (KiB and MiB allowed: 40MiB);
                               4 MiB (the default) to 64 MiB. YAML stays
                               under 4 MiB (docs/config.md "Size limits")
  -h, --help                   show this help

Exit status: 0 stopped by a signal, 1 runtime failure (self-test, I/O),
2 invalid config or bad usage, 3 missing privilege (CAP_NET_ADMIN / CAP_NET_RAW).
`;

export async function main(args: string[]): Promise<number> {
  // A CE whose config comes from a controller: host/cli/up_controller.ts.
  if (args.some((a) => a === "--controller" || a.startsWith("--controller="))) return (await import("./up_controller.ts")).main(args);
  const { values, positionals, help: wantHelp } = parseCommandArgs("up", args, {
    quiet: { type: "boolean", short: "q" },
    "selftest-vectors": { type: "string" },
    "log-format": { type: "string" },
    "log-level": { type: "string" },
    ...MAX_CONFIG_BYTES_OPTION,
  });
  if (wantHelp) {
    process.stdout.write(help);
    return EXIT_OK;
  }
  if (positionals.length !== 1) throw new UsageError("expects exactly one CONFIG file", "up");
  const maxBytes = maxConfigBytesArg(values["max-config-bytes"], "up");
  const logOpts = parseLogOptions(values["log-format"], values["log-level"], values.quiet === true);
  if (typeof logOpts === "string") throw new UsageError(logOpts, "up");
  const log = createLogger({ name: "wesp up", ...logOpts });
  const err = (l: string) => log.error(l);
  const info = (l: string) => log.info(l);

  const loadStart = phaseStart();
  const loaded = loadConfigOrReport(positionals[0], { maxBytes });
  if (!loaded) return EXIT_USAGE;
  const { config, warnings } = loaded;
  const sas = config.peers.reduce((k, p) => k + 2 * p.sas.length, 0);
  info(`config ${config.source}: ${plural(config.peers.length, "peer")}, ${sas} static SAs, loaded and checked in ${phaseTime(loadStart)}`);
  for (const w of warnings) log.warn(formatIssue(config.source, w));
  if (log.level === "debug") log.debug(describeConfig(config));

  const lines: string[] = [];
  const vectors = values["selftest-vectors"];
  const st = await selftest(typeof vectors === "string" ? vectors : DEFAULT_VECTORS, (l) => lines.push(l));
  if (st.failed > 0) {
    for (const l of lines) if (l.startsWith("FAIL")) log.error(l);
    err(`self-test failed (${st.failed} of ${st.passed + st.failed} vectors): not starting`);
    return EXIT_FAILURE;
  }
  info(`self-test: ${st.passed} vectors passed`);
  if (config.node.workers > 1) info(`running ${config.node.workers} packet workers, each with its own SAs (docs/forwarder.md)`);

  let fwd: Forwarder | undefined;
  let ike: IkeRuntime | undefined;
  let control: ControlServer;
  const configPath = config.source;
  // Reload: the same checks as 'wesp check', then one atomic apply (host/sa/lifecycle.ts).
  const reload = async () => {
    if (!fwd || !ike) throw new Error("starting");
    let next;
    try {
      next = loadConfigSync(configPath, { maxBytes });
    } catch (e) {
      if (e instanceof ConfigError) throw new Error(`reload refused, the running config stays:\n${e.message}`);
      throw e;
    }
    for (const w of next.warnings) log.warn(formatIssue(configPath, w));
    try {
      const r = await ike.apply(next.config);
      info(`reloaded ${configPath}: added [${r.added.join(", ")}] removed [${r.removed.join(", ")}] changed [${r.changed.join(", ")}] unchanged ${r.unchanged.length}`);
      return r;
    } catch (e) {
      throw new Error(`reload refused, the running config stays: ${(e as Error).message}`);
    }
  };
  try {
    control = await ControlServer.listen(config.node.control.socket, async (cmd) => {
      if (!fwd || !ike) throw new Error("starting");
      return cmd === "reload" ? reload() : statusWithIke(fwd, ike);
    });
  } catch (e) {
    err(`control socket ${config.node.control.socket}: ${(e as Error).message}`);
    return isPermissionError(e) ? EXIT_PERMISSION : EXIT_FAILURE;
  }

  const telemetry = new CeMetrics(log);
  let metrics: MetricsServer | undefined;
  let fatal: ForwarderError | undefined;
  const signals = new StopSignals(() => void reload().catch((e) => err((e as Error).message)));
  try {
    ({ fwd, ike } = await startWithIke(config, {
      log: info,
      onLifecycle: (l) => telemetry.watch(l),
      onIke: telemetry.ike,
      onFatal: (e) => {
        fatal ??= e;
        signals.wake("error");
      },
    }));
  } catch (e) {
    await control.close();
    signals.release();
    return startFailure(e, config, err);
  }
  const [f, i] = [fwd, ike];
  metrics = await telemetry.serveOrLog(config.node.metrics?.listen, () => statusWithIke(f, i));
  info(`node ${config.node.name}: forwarding on ${fwd.tunName}, ${plural(config.peers.length, "peer")}, control ${control.path}; ${process.uptime().toFixed(2)} s after launch`);

  const why = await signals.stopped;
  if (why === "error") err(`stopping: ${fatal?.message}`);
  else info(`stopping (${why})`);
  await stopNode({ control, metrics, ike, fwd });
  signals.release();
  info("stopped: TUN and sockets closed");
  return fatal ? EXIT_FAILURE : EXIT_OK;
}
