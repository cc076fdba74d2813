// `node --import tsx bench/workers/twin_control.ts [--seconds S] [--rounds R] [--size B]`:
// the control experiment for the workers benchmarks (docs/performance.md
// "Workers"). Does the same CPU work cost more when both cores are busy?
//
// One child process seals 256 packets of B bytes with AES-256-GCM in the WASM
// core (Core.processOutbound: the core's whole outbound path, SPD lookup,
// padding, sequence number, seal), over and over, for S seconds, and reports
// packets per CPU-second of its own (process.cpuUsage). No I/O, no shared
// memory, no syscalls on the way: nothing of wesp's threading can touch it.
// Run alone, then as two copies at once (one per core): if each copy then
// seals fewer packets per CPU-second, the machine itself (clock frequency
// with both cores loaded, a hypervisor's scheduling, a shared cache or memory
// bus) makes a packet dearer on two cores, and a forwarder with two workers
// inherits that before any cost of its own.
//
//   node --import tsx bench/workers/twin_control.ts --child S B   (one copy; prints its rate)
import { spawn } from "node:child_process";
import { cpus, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { Core, VERDICT } from "../../host/core/core.ts";
import { parseConfig } from "../../host/config/load.ts";
import { SaLifecycle } from "../../host/sa/lifecycle.ts";
import { SaTable } from "../../host/sa/install.ts";
import { innerUdp } from "../../host/lab/packets.ts";
import { median } from "../stats.ts";

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const SLOTS = 256;

/** One copy: seals for `seconds`, prints packets per CPU-second (after a 1-s warm-up: WASM tier-up). */
async function child(seconds: number, size: number): Promise<void> {
  const cfg = {
    version: 1,
    node: { name: "a", wan: [{ name: "wan", address: "192.0.2.1", port: 4500, encap: "udp" }], local_prefixes: ["10.1.0.0/16"] },
    peers: [{
      name: "b", address: "192.0.2.2", port: 4500, nat_t: true, prefixes: ["10.2.0.0/16"], mode: "tunnel",
      sas: [{ spi_in: 0x1000, spi_out: 0x2000, suite: "aes-256-gcm", key_in: "11".repeat(36), key_out: "22".repeat(36) }],
    }],
  };
  const config = parseConfig(JSON.stringify(cfg), { baseDir: "/tmp", source: "<twin_control>" }).config;
  const core = await Core.create({ slots: SLOTS });
  new SaTable(core).apply(new SaLifecycle({ apply: async () => {} }).initial(config).peers);
  const packets = Array.from({ length: SLOTS }, (_, k) => innerUdp("10.1.0.2", "10.2.0.2", size - 28, 40000 + k, 9));
  const batch = () => {
    for (let k = 0; k < SLOTS; k++) core.writePacket(k, packets[k]);
    core.processOutbound(SLOTS);
  };
  batch();
  if (core.verdict(0) !== VERDICT.TO_NETWORK) throw new Error(`not sealed: ${core.reasonName(0)}`);
  for (const end = performance.now() + 1000; performance.now() < end; ) batch();
  const c0 = process.cpuUsage();
  let n = 0;
  for (const end = performance.now() + seconds * 1000; performance.now() < end; n += SLOTS) batch();
  const c = process.cpuUsage(c0);
  console.log(String(n / ((c.user + c.system) / 1e6)));
}

/** Runs `copies` children at once; resolves with each one's packets per CPU-second. */
function run(copies: number, seconds: number, size: number): Promise<number[]> {
  const me = fileURLToPath(import.meta.url);
  return Promise.all(Array.from({ length: copies }, () => new Promise<number>((resolve, reject) => {
    const c = spawn(process.execPath, ["--import", "tsx", me, "--child", String(seconds), String(size)], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    c.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    c.on("close", (code) => (code === 0 ? resolve(Number(out.trim())) : reject(new Error(`control copy exited ${code}`))));
  })));
}

async function main(): Promise<void> {
  if (args[0] === "--child") return child(Number(args[1]), Number(args[2]));
  const seconds = Number(opt("--seconds", "5")), size = Number(opt("--size", "1300")), rounds = Number(opt("--rounds", "3"));
  const alone: number[] = [], twins: number[] = [];
  for (let r = 0; r < rounds; r++) {
    alone.push(...(await run(1, seconds, size)));
    twins.push(...(await run(2, seconds, size)));
  }
  const a = median(alone), t = median(twins);
  if (args.includes("--json")) {
    console.log(JSON.stringify({ size, seconds, rounds, load: loadavg(), alone, twins, ratio: t / a }));
    return;
  }
  console.log(`control: AES-256-GCM seal of ${size}-byte packets in the WASM core, ${seconds} s per copy, ${rounds} rounds`);
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? "?"}, load average ${loadavg().map((l) => l.toFixed(1)).join(" ")} at the end`);
  console.log(`alone:           ${Math.round(a)} packets per CPU-s (runs: ${alone.map(Math.round).join(", ")})`);
  console.log(`two at once:     ${Math.round(t)} packets per CPU-s per copy (runs: ${twins.map(Math.round).join(", ")})`);
  console.log(`two : alone      ${(t / a).toFixed(3)}`);
}

main().catch((e) => {
  console.error((e as Error).message);
  process.exitCode = 1;
});
