// `wesp up --controller URL --token FILE`: a zero-touch CE (issue 8, items 2
// and 3). Enrols when it holds no certificate yet, then runs the data plane
// with the config its controller gives it and keeps it in step (host/agent/).
// `wesp up` hands over here when --controller is on its command line.
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { Agent, isRemoval, type LocalNode } from "../agent/agent.ts";
import { ControllerError } from "../agent/ce_client.ts";
import { enrol, readTokenFile } from "../agent/enrol.ts";
import { AgentState, type Enrolment } from "../agent/state.ts";
import { ConfigError } from "../config/load.ts";
import { ControlServer } from "../control/server.ts";
import { selftest, DEFAULT_VECTORS } from "../core/selftest.ts";
import type { ForwarderError, Forwarder } from "../pipeline/forwarder.ts";
import { startWithIke, statusWithIke, type IkeRuntime } from "../ike/runtime.ts";
import { EXIT_FAILURE, EXIT_OK, EXIT_PERMISSION } from "./exit_codes.ts";
import { parseCommandArgs, UsageError } from "./usage.ts";
import { createLogger, parseLogOptions } from "../metrics/log.ts";
import { CeMetrics } from "../metrics/ce.ts";
import { parseListen } from "../config/listen.ts";
import { isPermissionError, startFailure, stopNode, StopSignals } from "./node_run.ts";

function defaultState(): string {
  if (process.getuid?.() === 0) return "/var/lib/wesp/agent";
  return join(process.env.XDG_STATE_HOME ?? join(homedir(), ".local", "state"), "wesp", "agent");
}

export const help = `Usage: wesp up --controller URL [--token FILE] [--ca-fingerprint SHA256]
               [--state DIR] [--tun NAME] [--tun-address CIDR]... [--control PATH]
               [--poll SECONDS] [-q] [--metrics HOST:PORT|PATH] [--log-format text|json]

Run a CE whose configuration comes from a wesp controller (docs/controller.md):
  1. first start: read the token file ('wesp ctl token VPN SITE --out FILE'),
     check the controller's CA against its fingerprint (--ca-fingerprint, or
     the token file's), make a P-256 key pair here, enrol with a CSR, and keep
     key (0600), certificate and CA in DIR;
  2. fetch this CE's config over mutual TLS (or, with the controller down,
     start with the last config applied, kept 0600 in DIR) and run the data
     plane with it, as 'wesp up CONFIG' does;
  3. keep a push channel open: pull the whole config on connect, on every
     notification and every --poll seconds, and apply it atomically (only the
     peers that changed); reconnect with exponential backoff when it drops —
     forwarding goes on with what was applied.
A site removed by the controller (or whose certificate is revoked) is told so:
every peer is removed, keys zeroed, the stored config, key and certificate
shredded, and wesp exits 1. A restart needs no token.

Options:
      --controller URL       https://HOST:PORT of the controller (default: the
                             token file's, else the enrolment's)
      --token FILE           one-time enrolment token file (first start only)
      --ca-fingerprint FP    SHA-256 of the controller's CA (hex, colons allowed)
      --state DIR            agent state (default ${defaultState()})
      --tun NAME             TUN interface name (default wesp0)
      --tun-address CIDR     address for the TUN (repeatable)
      --control PATH         control socket for 'wesp status'
      --poll SECONDS         fallback pull interval (default 60)
  -q, --quiet                log only warnings and errors
      --metrics HOST:PORT|PATH  serve Prometheus GET /metrics there (docs/metrics.md)
      --log-format text|json log as text (default) or JSON objects, never keys
      --log-level LEVEL      debug, info (default), warn or error
  -h, --help                 show this help

Exit status: 0 stopped by a signal, 1 refused (token, removed site) or a
runtime failure, 2 bad usage, 3 missing privilege.
`;

const OPTIONS = {
  controller: { type: "string" }, token: { type: "string" }, "ca-fingerprint": { type: "string" }, state: { type: "string" },
  tun: { type: "string" }, "tun-address": { type: "string", multiple: true }, control: { type: "string" }, poll: { type: "string" },
  quiet: { type: "boolean", short: "q" },
  metrics: { type: "string" }, "log-format": { type: "string" }, "log-level": { type: "string" },
} as const;

/** The stored enrolment, or a new one from the token file. */
async function enrolment(state: AgentState, values: Record<string, unknown>, log: (l: string) => void): Promise<Enrolment> {
  const stored = state.loadEnrolment();
  if (stored) return { ...stored, url: (values.controller as string | undefined) ?? stored.url };
  if (!values.token) throw new UsageError("not enrolled yet: --token FILE is needed once", "up");
  const t = readTokenFile(values.token as string);
  const url = (values.controller as string | undefined) ?? t.url;
  const pin = (values["ca-fingerprint"] as string | undefined) ?? t.caFingerprint;
  if (!url) throw new UsageError("--controller URL is needed (the token file names none)", "up");
  if (!pin) throw new UsageError("--ca-fingerprint is needed (the token file carries none)", "up");
  // A CE may boot before its network or the controller is up: retry what is not a refusal.
  let e: Enrolment;
  for (let wait = 1000; ; wait = Math.min(wait * 2, 30_000)) {
    try {
      e = await enrol(url, pin, t);
      break;
    } catch (x) {
      if (x instanceof ControllerError || x instanceof UsageError || !(x as NodeJS.ErrnoException).code) throw x;
      log(`enrolment: ${url} unreachable (${(x as Error).message}); retrying in ${wait} ms`);
      await new Promise((r) => setTimeout(r, wait));
    }
  }
  state.saveEnrolment(e);
  log(`enrolled as ${e.identity} with ${url}; certificate, key and CA kept in ${state.dir}`);
  return e;
}

export async function main(args: string[]): Promise<number> {
  const { values, positionals, help: wantHelp } = parseCommandArgs("up", args, OPTIONS);
  if (wantHelp) {
    process.stdout.write(help);
    return EXIT_OK;
  }
  if (positionals.length) throw new UsageError("with --controller, no CONFIG file: the controller gives it", "up");
  const poll = values.poll === undefined ? 60 : Number(values.poll);
  if (!Number.isFinite(poll) || poll < 1 || poll > 86400) throw new UsageError("--poll: 1..86400 seconds", "up");
  const logOpts = parseLogOptions(values["log-format"], values["log-level"], values.quiet === true);
  if (typeof logOpts === "string") throw new UsageError(logOpts, "up");
  const metricsAt = values.metrics === undefined ? undefined : parseListen(values.metrics as string, process.cwd());
  if (typeof metricsAt === "string") throw new UsageError(`--metrics: ${metricsAt}`, "up");
  const log = createLogger({ name: "wesp up", ...logOpts });
  const err = (l: string) => log.error(l);
  const info = (l: string) => log.info(l);
  const telemetry = new CeMetrics(log);
  const state = new AgentState(resolve((values.state as string | undefined) ?? defaultState()));
  const local: LocalNode = {
    ...(values.tun || values["tun-address"] ? { tun: { ...(values.tun ? { name: values.tun as string } : {}), ...(values["tun-address"] ? { addresses: values["tun-address"] as string[] } : {}) } } : {}),
    ...(values.control ? { control: { socket: resolve(values.control as string) } } : {}),
  };

  let agent: Agent;
  let first;
  try {
    const e = await enrolment(state, values, info);
    agent = new Agent({ state, enrolment: e, local, pollMs: poll * 1000, log: info });
    first = await agent.firstConfig();
  } catch (e) {
    if (e instanceof UsageError) throw e;
    if (isRemoval(e)) state.dropVpnState();
    err(e instanceof ControllerError ? `controller: ${e.message}` : `${(e as Error).message}`);
    return EXIT_FAILURE;
  }
  let config;
  try {
    config = agent.configOf(first);
  } catch (e) {
    err(e instanceof ConfigError ? `the controller's config is refused:\n${e.message}` : (e as Error).message);
    return EXIT_FAILURE;
  }

  const st = await selftest(DEFAULT_VECTORS, () => {});
  if (st.failed > 0) {
    err(`self-test failed (${st.failed} of ${st.passed + st.failed} vectors): not starting`);
    return EXIT_FAILURE;
  }
  let fwd: Forwarder | undefined;
  let ike: IkeRuntime | undefined;
  const control = await ControlServer.listen(config.node.control.socket, async (cmd) => {
    if (!fwd || !ike) throw new Error("starting");
    if (cmd === "reload") return agent.reload();
    return statusWithIke(fwd, ike);
  }).catch((e: Error) => e);
  if (control instanceof Error) {
    err(`control socket ${config.node.control.socket}: ${control.message}`);
    return isPermissionError(control) ? EXIT_PERMISSION : EXIT_FAILURE;
  }
  const signals = new StopSignals();
  let fatal: ForwarderError | undefined;
  try {
    // As `wesp up CONFIG` starts it: the data plane and IKE for any peer with an `ike` block.
    ({ fwd, ike } = await startWithIke(config, { log: info, onLifecycle: (l) => (telemetry.watch(l), agent.watchSas(l)), onIke: telemetry.ike, onFatal: (e) => ((fatal ??= e), signals.wake("error")) }));
  } catch (e) {
    await control.close();
    signals.release();
    return startFailure(e, config, err);
  }
  // One apply step for every config, whatever its peers: IKE's apply hands static peers to the SA lifecycle.
  agent.attach(ike, first);
  const [f, i] = [fwd, ike];
  const metrics = await telemetry.serveOrLog(metricsAt, () => statusWithIke(f, i));
  info(`node ${config.node.name} (${agent.identity}): forwarding on ${fwd.tunName}, ${config.peers.length} peers, config version ${first.version}, control ${control.path}`);
  agent.start();
  agent.learnWan(fwd);
  void agent.removed.then(() => signals.wake("removed"));

  const why = await signals.stopped;
  agent.stop();
  if (why === "error") err(`stopping: ${fatal?.message}`);
  else if (why !== "removed") info(`stopping (${why})`);
  await stopNode({ control, metrics, ike, fwd });
  signals.release();
  info("stopped: TUN and sockets closed");
  return why === "removed" || fatal ? EXIT_FAILURE : EXIT_OK;
}
