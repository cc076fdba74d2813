// `wesp controller`: the VPN database and its operator API (issue 8), served
// over HTTPS from a SQLite file (or a PostgreSQL URL) until SIGINT/SIGTERM.
// On first start in its state directory it makes what it needs, each 0600:
// the master key that seals SA keys, its CA (ca/: the key CE certificates are
// signed with), a TLS certificate that CA issues, and an operator token named
// "admin"; it prints where they are and the CA's fingerprint, never a secret.
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { Controller } from "../controller/controller.ts";
import { KeySealer, loadOrCreateMasterKey } from "../controller/keys.ts";
import { startApi } from "../controller/api/server.ts";
import { ensureServerCert, loadTls } from "../controller/api/tls.ts";
import { ControllerCa } from "../controller/ca.ts";
import { colonHex } from "../util/pki.ts";
import { openStore } from "../controller/store/store.ts";
import { DEFAULT_STUN_PORT, StunServer } from "../controller/stun_server.ts";
import { formatAddress, formatEndpoint } from "../config/addr.ts";
import { EXIT_OK } from "./exit_codes.ts";
import { createLogger, parseLogOptions } from "../metrics/log.ts";
import { ControllerMetrics } from "../metrics/controller.ts";
import { routeOf } from "../controller/api/server.ts";
import { parseListen as parseMetricsListen } from "../config/listen.ts";
import { UsageError, parseCommandArgs } from "./usage.ts";

export const summary = "serve the VPN database and its operator API (HTTPS)";

function defaultStateDir(): string {
  if (process.getuid?.() === 0) return "/var/lib/wesp-controller";
  return join(process.env.XDG_STATE_HOME ?? join(homedir(), ".local", "state"), "wesp-controller");
}

export const help = `Usage: wesp controller [--state DIR] [--db FILE|URL] [--listen HOST:PORT]
                       [--tls-name NAME]... [--tls-cert FILE --tls-key FILE]

Serve the VPN database (VPNs, sites, topology, controller-made SAs) and its
operator API over HTTPS (docs/controller.md, docs/controller-openapi.yaml)
until SIGINT or SIGTERM.

On first start it makes, in DIR (mode 0700): controller.db (SQLite),
master.key (seals every SA key in the database), ca/ca.key and ca/ca.pem
(the CA that enrols CEs: give CEs its SHA-256 fingerprint, printed at start),
tls/cert.pem and key.pem (issued by that CA for localhost, 127.0.0.1, ::1,
the --listen address and every --tls-name), and operator.token (the "admin"
operator's token for 'wesp ctl'). Keep DIR private and backed up: without
master.key the SAs in the database cannot be opened, without ca/ no CE can
enrol or be trusted.

Options:
      --state DIR        state directory (default ${defaultStateDir()})
      --db FILE|URL      SQLite file, or postgres://… shared by replicas
                         (default DIR/controller.db)
      --listen HOST:PORT where to listen (default 127.0.0.1:8443; port 0: any)
      --tls-name NAME    another DNS name or address CEs reach this
                         controller at (its TLS certificate covers it)
      --tls-cert FILE    certificate to serve instead of the CA-issued one
                         (CEs trust only the controller's CA: issue it there)
      --tls-key FILE     its private key
      --metrics HOST:PORT|PATH
                         serve Prometheus metrics on plain HTTP GET /metrics
                         there (off by default; keep it on 127.0.0.1 or a
                         Unix socket: docs/metrics.md)
      --log-format text|json
                         log lines as text (default) or JSON objects
      --log-level LEVEL  debug, info (default), warn or error
      --stun HOST:PORT   answer STUN Binding requests (RFC 8489) there, so CEs
                         learn their WAN ports' public address and port
                         (default: the --listen host, port ${DEFAULT_STUN_PORT}; "off": none)
      --stun-alternate ADDRESS
                         a second address of this host: STUN also on it and on
                         port + 1 of both, so CEs can classify their NAT
                         (RFC 5780 behaviour discovery)
  -h, --help             show this help
`;

function parseListen(text: string, option = "--listen"): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(text);
  if (!m || Number(m[3]) > 65535) throw new UsageError(`${option}: expected HOST:PORT or [IPv6]:PORT, got "${text}"`);
  return { host: m[1] ?? m[2], port: Number(m[3]) };
}

export async function main(args: string[]): Promise<number> {
  const { values, positionals, help: wantHelp } = parseCommandArgs("controller", args, {
    state: { type: "string" }, db: { type: "string" }, listen: { type: "string" },
    "tls-cert": { type: "string" }, "tls-key": { type: "string" }, "tls-name": { type: "string", multiple: true }, stun: { type: "string" }, "stun-alternate": { type: "string" },
    metrics: { type: "string" }, "log-format": { type: "string" }, "log-level": { type: "string" },
  });
  if (wantHelp) {
    process.stdout.write(help);
    return EXIT_OK;
  }
  if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  if ((values["tls-cert"] === undefined) !== (values["tls-key"] === undefined)) throw new UsageError("--tls-cert and --tls-key go together");
  const state = resolve((values.state as string | undefined) ?? defaultStateDir());
  const listen = parseListen((values.listen as string | undefined) ?? "127.0.0.1:8443");
  const stunArg = values.stun as string | undefined;
  const stunAt = stunArg === "off" ? null : stunArg !== undefined ? parseListen(stunArg, "--stun") : { host: listen.host, port: DEFAULT_STUN_PORT };
  mkdirSync(state, { recursive: true, mode: 0o700 });
  const db = (values.db as string | undefined) ?? join(state, "controller.db");
  const dbUrl = /^postgres(ql)?:\/\//.test(db) || db === ":memory:" || isAbsolute(db) ? db : resolve(db);
  const logOpts = parseLogOptions(values["log-format"], values["log-level"], false);
  if (typeof logOpts === "string") throw new UsageError(logOpts);
  const metricsAt = values.metrics === undefined ? undefined : parseMetricsListen(values.metrics as string, process.cwd());
  if (typeof metricsAt === "string") throw new UsageError(`--metrics: ${metricsAt}`);
  const logger = createLogger({ name: "wesp controller", ...logOpts });
  const log = (line: string) => logger.info(line);
  const telemetry = new ControllerMetrics(routeOf);

  const sealer = new KeySealer(loadOrCreateMasterKey(join(state, "master.key")));
  const ca = await ControllerCa.open(join(state, "ca"));
  const names = [...((values["tls-name"] as string[] | undefined) ?? []), ...(/^(0\.0\.0\.0|::)$/.test(listen.host) ? [] : [listen.host])];
  const tls = values["tls-cert"]
    ? loadTls(values["tls-cert"] as string, values["tls-key"] as string)
    : await ensureServerCert(join(state, "tls"), ca, names);
  const store = telemetry.timeStore(await openStore(dbUrl, { log }));
  const tokenFile = join(state, "operator.token");
  if (!existsSync(tokenFile)) {
    try {
      const token = await store.createOperatorToken("admin");
      writeFileSync(tokenFile, token + "\n", { mode: 0o600, flag: "wx" });
      log(`operator "admin" created; its token is in ${tokenFile}`);
    } catch (e) {
      // Another replica (or an earlier run whose token file was deleted) made "admin": leave it.
      log(`no operator token written (${(e as Error).message})`);
    }
  }
  const ctl = new Controller(store, sealer);
  // STUN first: CEs are told its port with their config (they learn and register their WAN ports, docs/controller.md "STUN").
  const stunAlternate = values["stun-alternate"] as string | undefined;
  if (stunAlternate !== undefined && !stunAt) throw new UsageError("--stun-alternate needs STUN on (not --stun off)");
  const stun = stunAt && (await startStun({ ...stunAt, alternate: stunAlternate }, stunArg !== undefined || stunAlternate !== undefined, log));
  if (stun) telemetry.stun(stun.counters);
  const api = await startApi({ controller: ctl, tls, ca, host: listen.host, port: listen.port, log, observer: telemetry, stunPort: stun ? stun.address.port : undefined });
  log(`serving ${api.url} (store: ${store.kind}; certificate ${tls.certPath}; CA ${join(state, "ca", "ca.pem")}, SHA-256 fingerprint ${colonHex(ca.fingerprint)})`);
  process.stdout.write(`${api.url}\n`);
  const metrics = metricsAt && (await telemetry.serve(metricsAt));
  if (metrics) log(`metrics on ${"path" in metricsAt ? `unix:${metrics.where}` : `http://${metrics.where}`}/metrics`);

  await new Promise<void>((done) => {
    const stop = () => done();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  log("stopping");
  if (stun) {
    log(`stun: ${Object.entries(stun.counters).map(([k, v]) => `${k} ${v}`).join(", ")}`);
    await stun.close();
  }
  await api.close();
  await metrics?.close();
  await store.close();
  sealer.wipe();
  return EXIT_OK;
}

/**
 * The STUN responder (controller/stun_server.ts). On the default port a port
 * already taken (another controller on this host) is logged and skipped; an
 * explicit --stun that cannot bind is an error.
 */
async function startStun(at: { host: string; port: number; alternate?: string }, explicit: boolean, log: (l: string) => void): Promise<StunServer | null> {
  try {
    const s = await StunServer.start({ host: at.host, port: at.port, alternate: at.alternate, log });
    const a = s.address;
    log(`stun: answering Binding requests on ${formatEndpoint(a.host, a.port)} (UDP)${at.alternate ? `, RFC 5780 on ${s.addresses().flat().map((x) => formatEndpoint(formatAddress(x.address), x.port)).join(" ")}` : ""}`);
    return s;
  } catch (e) {
    if (explicit) throw new Error(`--stun ${at.host}:${at.port}: ${(e as Error).message}`);
    log(`stun: not started (${(e as Error).message}); give --stun HOST:PORT or --stun off`);
    return null;
  }
}
