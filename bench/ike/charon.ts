// strongSwan's side of `wesp bench ike`: two charon daemons (kernel-libipsec,
// as in bench/tunnel/strongswan.ts), each in its namespace with its own /run
// (`unshare -m`, a tmpfs: charon insists on /var/run/charon.pid).
//
// The initiator gets one connection per tunnel (t<i>, identity t<i>.bench, one
// CHILD_SA), all loaded before the clock starts; then `window` VICI
// connections (vici.ts) each initiate one CHILD_SA at a time, as wesp's
// initiator keeps `window` exchanges in flight. The second mode ("charon-all")
// is charon's own: the connections loaded with `start_action = start`, so it
// starts them all at once as they load and paces itself (job queue, thread
// pool, retransmissions); its clock and CPU include the load, and progress is
// counted in the log ("CHILD_SA … established" is logged at level 0,
// child_create.c). Debian ships no load-tester plugin. The responder has one
// connection for any identity. Both are tuned as strongSwan's docs advise for
// many SAs (a hashed IKE_SA table) and the responder's half-open defences are
// lifted (block_threshold 5 per address would stall one initiator address);
// each has 16 threads (the default) plus one per VICI request it may be waiting on;
// no routes are installed (wesp's side installs none either). Log level 0.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { run } from "../../host/util/proc.ts";
import type { Netns } from "../../host/lab/namespace.ts";
import type { LabProcess } from "../../host/lab/process.ts";
import { until } from "../tunnel/contender.ts";
import { CHARON, strongswanConf } from "../tunnel/strongswan.ts";
import { Vici } from "./vici.ts";


export interface CharonSide {
  ns: Netns;
  dir: string;
  local: string;
  remote: string;
  core: number;
}

/** `threads`: each blocking VICI `initiate` holds one of charon's threads while it waits. */
function conf(dir: string, threads: number): string {
  const settings = [
    `threads = ${threads}`, "install_routes = no", "ikesa_table_size = 1024", "ikesa_table_segments = 16",
    "block_threshold = 1000000", "cookie_threshold = 1000000", "init_limit_half_open = 0",
  ];
  return strongswanConf(dir, { settings, log: ["flush_line = yes", "default = 0"] });
}

const conn = (name: string, s: CharonSide, localId: string, remoteId: string, lts: string, rts: string, p: { ike: string; esp: string }, start = false) => `  ${name} {
    version = 2
    local_addrs = ${s.local}
    remote_addrs = ${s.remote}
    encap = yes
    proposals = ${p.ike}
    rekey_time = 0
    dpd_delay = 0
    local {
      auth = psk
      id = ${localId}
    }
    remote {
      auth = psk
      id = ${remoteId}
    }
    children {
      ${name} {
        local_ts = ${lts}
        remote_ts = ${rts}
        esp_proposals = ${p.esp}
        mode = tunnel
        rekey_time = 0
        life_time = 0
        start_action = ${start ? "start" : "none"}
      }
    }
  }`;

const secrets = (psk: string) => `secrets {
  ike-any {
    secret = "${psk}"
  }
}
`;

export class Charon {
  proc?: LabProcess;
  private readonly vici: Vici[] = [];
  constructor(readonly side: CharonSide) {}

  private get env(): NodeJS.ProcessEnv {
    return { ...process.env, STRONGSWAN_CONF: join(this.side.dir, "strongswan.conf") };
  }

  /** Starts the daemon with room for `window` blocking VICI requests beside its 16 default threads. */
  async start(window: number): Promise<void> {
    const d = this.side.dir;
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, "strongswan.conf"), conf(d, 16 + window));
    this.proc = this.side.ns.spawn(["unshare", "-m", "sh", "-c", `mount -t tmpfs tmpfs /run && exec ${CHARON}`], { core: this.side.core, env: this.env });
    await until(() => existsSync(join(d, "charon.vici")) || !this.proc!.running, "charon's vici socket", 20_000);
    if (!this.proc.running) throw new Error(`charon died: ${this.proc.output}`);
  }

  /** Writes `conf` and loads it (connections and secrets). */
  async load(conf: string): Promise<void> {
    const file = join(this.side.dir, "swanctl.conf");
    writeFileSync(file, conf, { mode: 0o600 });
    await run(["swanctl", "--load-all", "--file", file, "--uri", `unix://${this.side.dir}/charon.vici`], { env: this.env, timeoutMs: 120_000 });
  }

  /** Opens `window` VICI connections (before the clock starts), for `initiateAll`. */
  async connect(window: number): Promise<void> {
    // one after the other: charon's listen backlog is short (EAGAIN on a burst of connects)
    for (let k = 0; k < window; k++) this.vici.push(await Vici.open(join(this.side.dir, "charon.vici")));
  }

  /** Initiates CHILD_SAs t0…t<tunnels-1>, one per VICI connection at a time; resolves to how many were established. */
  async initiateAll(tunnels: number): Promise<number> {
    let next = 0;
    let established = 0;
    await Promise.all(this.vici.map(async (v) => {
      while (next < tunnels) if (await v.initiate(`t${next++}`)) established++;
    }));
    return established;
  }

  /** "CHILD_SA … established" lines in the log so far. */
  established(): number {
    const log = join(this.side.dir, "charon.log");
    return existsSync(log) ? (readFileSync(log, "utf8").match(/CHILD_SA \S+ established/g)?.length ?? 0) : 0;
  }

  stop(): Promise<void> {
    for (const v of this.vici.splice(0)) v.close();
    return this.proc?.stop() ?? Promise.resolve();
  }
}

export function responderConf(s: CharonSide, psk: string, p: { ike: string; esp: string }): string {
  return `connections {\n${conn("resp", { ...s, remote: "%any" }, s.local, "%any", "10.2.0.0/24", "10.1.0.0/24", p)}\n}\n${secrets(psk)}`;
}

/** The initiator's connections t0…; `start`: charon starts each as it loads (`start_action = start`). */
export function initiatorConf(s: CharonSide, psk: string, p: { ike: string; esp: string }, tunnels: number, start = false): string {
  const conns = Array.from({ length: tunnels }, (_, i) => conn(`t${i}`, s, `t${i}.bench`, s.remote, "10.1.0.0/24", "10.2.0.0/24", p, start));
  return `connections {\n${conns.join("\n")}\n}\n${secrets(psk)}`;
}
