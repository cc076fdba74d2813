// wesp as a contender: `wesp up CONFIG` in eA and eB (the real command, compiled
// or from source as the benchmark itself runs: host/util/package_root.ts), static
// keys, ESP tunnel mode in UDP (RFC 3948, port 4500), fresh random keys and a
// fresh `node.state_dir` for every start.
//
// `--sas N` adds N extra peers to each side's config, each with its own /32
// prefix in 10.128.0.0/9, outer address in 198.18.0.0/15 and one SA pair
// (two fresh keys): the SAD, SPD and routes then hold N + 1 peers while the
// traffic uses the first. A config over 4 MiB (past about 12,000 extra
// peers) is started as an operator would start such a hub: JSON, with
// `wesp up --max-config-bytes` its size (docs/config.md "Size limits").
// The extra SAs' replay window is 960, the most the SA record holds inline:
// the default 1,024 takes a 16 KiB pool block per inbound SA, and the core's
// pool holds about 32,700 of those (docs/bench.md).
//
// With extra peers the measurement starts once wesp's start-up work is done:
// `forwarding on` comes when the SAs are installed with their first
// reservations in a journal (host/sa/journal.ts), and the per-key state
// files are written in the background after it (host/sa/migration.ts) —
// at 20,000 extra peers that took a third of a core for up to a minute on
// a loaded machine, which the first figures of this benchmark measured as
// the cost of the SAs. So it waits until no journal is left in either state
// directory.
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MAX_CONFIG_BYTES } from "../../host/config/load.ts";
import { isJournalName } from "../../host/sa/journal.ts";
import { ADDR, INNER_MTU } from "./lab.ts";
import { until, type Contender, type Running, type StartContext } from "./contender.ts";
import { packagePath, wespArgv } from "../../host/util/package_root.ts";

const KEY_BYTES = { "aes-128-gcm": 20, "chacha20-poly1305": 36 } as const;
export type Suite = keyof typeof KEY_BYTES;
/** The largest replay window held in the SA record itself (assembly: no pool block). */
const INLINE_WINDOW = 960;

let starts = 0;

/** Extra peer i's /32 prefix and outer address (i < 131,072). */
function extra(i: number): { prefix: string; address: string } {
  return {
    prefix: `10.${128 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`,
    address: `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`,
  };
}

/** Whether a wesp state directory still holds a reservation journal (host/sa/journal.ts). */
function journalsLeft(stateDir: string): boolean {
  try {
    return readdirSync(join(stateDir, "sa")).some(isJournalName);
  } catch {
    return false; // no directory: no journal
  }
}

export function configs(suite: Suite, dir: string, sas: number, workers: number): [object, object] {
  const hex = () => randomBytes(KEY_BYTES[suite]).toString("hex");
  const kAB = hex(), kBA = hex();
  // node.workers > 1 wants SPIs that are multiples of the count (docs/config.md); 1 keeps the old ones.
  const w = workers;
  // Extra peers: the same on both sides (they are never used); keys unique per SA and direction.
  const extras = Array.from({ length: sas }, (_, i) => {
    const e = extra(i);
    return { name: `x${i}`, address: e.address, prefixes: [e.prefix], nat_t: true,
      sas: [{ spi_in: (0x100000 + 2 * i) * w, spi_out: (0x100001 + 2 * i) * w, suite, key_in: hex(), key_out: hex(), replay_window: INLINE_WINDOW }] };
  });
  const side = (me: "A" | "B") => {
    const A = me === "A";
    return {
      version: 1,
      node: {
        name: `e${me}`,
        wan: [{ name: "wan", address: A ? ADDR.eAwan : ADDR.eBwan, port: 4500, encap: "udp" }],
        tun: { name: "wesp0", mtu: INNER_MTU },
        local_prefixes: [A ? ADDR.netA : ADDR.netB],
        control: { socket: join(dir, `e${me}.sock`) },
        state_dir: join(dir, `e${me}-state`),
        workers,
      },
      peers: [{
        name: A ? "eB" : "eA",
        address: A ? ADDR.eBwan : ADDR.eAwan,
        port: 4500,
        nat_t: true,
        prefixes: [A ? ADDR.netB : ADDR.netA],
        mode: "tunnel",
        sas: [{ spi_in: (A ? 0x1000b : 0x1000a) * w, spi_out: (A ? 0x1000a : 0x1000b) * w, suite, key_in: A ? kBA : kAB, key_out: A ? kAB : kBA }],
      }, ...extras],
    };
  };
  return [side("A"), side("B")];
}

/**
 * wesp with `suite`; `offloads: false` runs it with WESP_OFFLOADS=off (no TUN
 * TSO, no UDP GSO/GRO: one syscall per packet), the before of issue 9 in the
 * same run as the after.
 */
export function wespContender(suite: Suite, offloads = true): Contender {
  const tag = (suite === "aes-128-gcm" ? "aes128gcm" : "chacha20") + (offloads ? "" : "-nooffload");
  const env = offloads ? undefined : { ...process.env, WESP_OFFLOADS: "off" };
  return {
    id: `wesp-${tag}`,
    family: "wesp",
    label: `wesp ${suite === "aes-128-gcm" ? "AES-128-GCM" : "ChaCha20-Poly1305"}${offloads ? "" : " (offloads off)"}`,
    cipher: suite === "aes-128-gcm" ? "AES-128-GCM (RFC 4106)" : "ChaCha20-Poly1305 (RFC 7634)",
    suite,
    needs: [],
    async version() {
      const pkg = JSON.parse(readFileSync(packagePath("package.json"), "utf8"));
      return `wesp ${pkg.version}, Node ${process.version}`;
    },
    async start(ctx: StartContext): Promise<Running> {
      const dir = join(ctx.lab.dir, `wesp-${starts++}`);
      mkdirSync(dir, { mode: 0o700 });
      const [a, b] = configs(suite, dir, ctx.sas, ctx.workers);
      const argv = (side: object, file: string): string[] => {
        const text = JSON.stringify(side);
        writeFileSync(file, text, { mode: 0o600 });
        const size = Buffer.byteLength(text);
        return wespArgv("up", ...(size > MAX_CONFIG_BYTES ? ["--max-config-bytes", String(size)] : []), file);
      };
      const upA = argv(a, join(dir, "eA.json")), upB = argv(b, join(dir, "eB.json"));
      const pa = ctx.lab.eA.spawn(upA, { core: ctx.cores[0], env });
      const pb = ctx.lab.eB.spawn(upB, { core: ctx.cores[1], env });
      const stop = async () => {
        await Promise.all([pa.stop("SIGTERM", 10_000), pb.stop("SIGTERM", 10_000)]);
      };
      try {
        for (const [p, n] of [[pa, "A"], [pb, "B"]] as const) {
          await until(() => !p.running || /forwarding on/.test(p.output), `wesp up in e${n}`, Math.min(1_800_000, 120_000 + 200 * ctx.sas));
          if (!p.running) throw new Error(`wesp up in e${n} exited ${p.exitCode}: ${p.output.trim().split("\n").slice(-3).join(" | ")}`);
        }
        if (ctx.sas > 0) {
          const t0 = Date.now();
          await until(() => !journalsLeft(join(dir, "eA-state")) && !journalsLeft(join(dir, "eB-state")), "the reservation journals' migration to state files", Math.min(1_800_000, 120_000 + 20 * ctx.sas));
          ctx.log(`  state files written (journals gone) ${((Date.now() - t0) / 1000).toFixed(1)} s after ready`);
        }
      } catch (e) {
        await stop();
        throw e;
      }
      const notes = ctx.workers > 1 ? [`node.workers ${ctx.workers}: iperf3's streams spread over the workers by the TUN's flow hash`] : [];
      return { pids: [pa.pid, pb.pid], notes, controlSockets: [join(dir, "eA.sock"), join(dir, "eB.sock")], stop };
    },
  };
}
