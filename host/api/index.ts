// wesp as a library, for those who embed a CE data plane in their own vCPE
// software: the same operations as the command line, typed. Start a CE from
// a config object (or a file), apply a new config (the reload path: atomic,
// unchanged SAs keep their state), read its status, hear its events, stop.
// docs/api.md documents it; examples/embed/ce.ts is run by a test.
//
//   const ce = await startCe({ version: 1, node: {...}, peers: [...] });
//   ce.on("sa-installed", (e) => ...);  ce.on("alarm", (e) => ...);
//   await ce.apply(nextConfig);  const st = await ce.status();  await ce.stop();
import { EventEmitter } from "node:events";
import { ConfigError, formatIssue, loadConfigSync, parseConfig, type LoadResult } from "../config/load.ts";
import type { Config, ConfigIssue } from "../config/model.ts";
import { selftest, DEFAULT_VECTORS } from "../core/selftest.ts";
import { ForwarderError, type Forwarder } from "../pipeline/forwarder.ts";
import { startWithIke, statusWithIke, type IkeRuntime } from "../ike/runtime.ts";
import type { Status } from "../control/status.ts";
import type { ApplyReport, SaLifecycleEvents } from "../sa/lifecycle.ts";

export type { Status } from "../control/status.ts";
export type { ApplyReport } from "../sa/lifecycle.ts";
export type { SaEvent } from "../sa/spec.ts";
export type { ConfigIssue } from "../config/model.ts";
export { ConfigError } from "../config/load.ts";
export { ForwarderError } from "../pipeline/forwarder.ts";

/** A config: an object shaped as the YAML file (docs/config.md), or the path of a file. */
export type ConfigInput = string | Record<string, unknown>;

export interface StartOptions {
  /** Where relative paths of a config object (key files, sockets) resolve from; default the working directory. */
  baseDir?: string;
  /** Log lines of the data plane (default: none). */
  log?: (line: string) => void;
  /** Run the known-answer self-test first and refuse to start on a failure (default true). */
  selftest?: boolean;
  /** Ring slots per worker (default 256). */
  slots?: number;
  /** UDP port of IKE proper for the peers with an `ike` block, ours and the peers' (default: the config's node.ike_port). */
  ikePort?: number;
}

/**
 * Validates a config like `wesp check`, without starting anything. Throws
 * ConfigError whose `issues` each name a field path; returns the warnings.
 */
export function checkConfig(input: ConfigInput, opts: { baseDir?: string } = {}): ConfigIssue[] {
  const r = load(input, opts.baseDir);
  wipe(r.config);
  return r.warnings;
}

function load(input: ConfigInput, baseDir = process.cwd()): LoadResult {
  if (typeof input === "string") return loadConfigSync(input);
  let text: string;
  try {
    text = JSON.stringify(input);
  } catch (e) {
    throw new ConfigError("<object>", [{ path: "", message: `cannot be serialised (${(e as Error).message})` }]);
  }
  return parseConfig(text ?? "", { baseDir, source: "<object>" });
}

function wipe(c: Config): void {
  for (const p of c.peers) for (const sa of p.sas) for (const k of [sa.keyIn, sa.keyOut, sa.authKeyIn, sa.authKeyOut]) k?.fill(0);
}

/** A running CE. Events: "sa-installed", "sa-removed", "needs-rekey", "alarm" (see SaEvent). */
export class Ce extends EventEmitter<SaLifecycleEvents> {
  private constructor(private readonly fwd: Forwarder, private readonly ike: IkeRuntime, private readonly baseDir: string | undefined) {
    super();
  }

  /** Starts a CE: self-test, TUN, sockets, SAs. Rejects with ConfigError or ForwarderError. */
  static async start(input: ConfigInput, opts: StartOptions = {}): Promise<Ce> {
    const { config } = load(input, opts.baseDir);
    if (opts.selftest !== false) {
      const st = await selftest(DEFAULT_VECTORS, () => {});
      if (st.failed > 0) {
        wipe(config);
        throw new ForwarderError(`self-test failed (${st.failed} of ${st.passed + st.failed} vectors): not starting`);
      }
    }
    let ce: Ce | undefined;
    const early: [keyof SaLifecycleEvents, unknown][] = [];
    const { fwd, ike } = await startWithIke(config, {
      ikePort: opts.ikePort,
      slots: opts.slots,
      log: opts.log ?? (() => {}),
      onLifecycle: (lc) => {
        for (const ev of ["sa-installed", "sa-removed", "needs-rekey", "alarm"] as const) {
          lc.on(ev, (e: unknown) => (ce ? ce.emit(ev, e as never) : early.push([ev, e])));
        }
      },
    });
    ce = new Ce(fwd, ike, opts.baseDir);
    // Events of the start itself reach listeners attached right after `await startCe(...)`.
    setImmediate(() => { for (const [ev, e] of early.splice(0)) ce!.emit(ev, e as never); });
    return ce;
  }

  /** The node's name and its TUN interface. */
  get name(): string {
    return this.fwd.config.node.name;
  }
  get tun(): string {
    return this.fwd.tunName;
  }

  /**
   * Applies a new config (what `wesp reload` does): peers and SAs added,
   * changed or removed atomically; unchanged SAs keep their sequence numbers,
   * replay windows, counters and learned NAT addresses; IKE peers added
   * start, removed ones get a DELETE, changed ones restart. Rejects with
   * ConfigError (invalid: nothing changed) or ReloadRefused (needs a restart).
   */
  async apply(input: ConfigInput): Promise<ApplyReport> {
    const { config } = load(input, this.baseDir);
    return this.ike.apply(config);
  }

  /** Counters and identities (never keys): what `wesp status --json` prints. */
  status(): Promise<Status> {
    return statusWithIke(this.fwd, this.ike);
  }

  /** Deletes the IKE SAs, stops forwarding, writes final sequence state, closes the TUN and sockets. */
  async stop(): Promise<void> {
    await this.ike.stop();
    return this.fwd.stop();
  }
}

/** Starts a CE (see Ce.start). */
export function startCe(input: ConfigInput, opts: StartOptions = {}): Promise<Ce> {
  return Ce.start(input, opts);
}

export { ReloadRefused } from "../sa/lifecycle.ts";
/** "FILE:LINE: FIELD: MESSAGE" for one issue of a ConfigError. */
export { formatIssue };
