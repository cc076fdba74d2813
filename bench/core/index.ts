// npm run bench:core [-- --json FILE] [--sizes 64,1400] [--suites a,b] [--ops seal,open] [--time SECONDS]
//
// Single-thread ESP throughput of the wesp core (whole ESP seal/open including
// framing, one batch call per ring of packets) against AEAD libraries doing one
// packet per call, all in this one process so that ratios survive the VM's
// ±20 % swings between processes. Prints a table with wesp's ratio to each peer
// and, with --json, writes {"machine", "results": [...]} as the issue specifies.
import Benchmark from "benchmark";
import { writeFileSync } from "node:fs";
import { cpus, totalmem, release } from "node:os";
import { nodeCrypto, noble, sodiumPeer, chainsafe, type Peer, type Suite, type Op, type Runner } from "./peers.ts";
import { wespPeer } from "./wesp.ts";

interface Result { impl: string; suite: Suite; size: number; op: Op; mbps: number; kpps: number; rme: number }

const ALL_SUITES: Suite[] = ["chacha20-poly1305", "aes-128-gcm", "aes-256-gcm", "aes-128-cbc-hmac-sha256"];

function args() {
  const a = process.argv.slice(2);
  const get = (k: string) => { const i = a.indexOf(k); return i >= 0 ? a[i + 1] : undefined; };
  if (a.includes("--help")) {
    console.log("usage: npm run bench:core -- [--json FILE] [--sizes 64,576,1400,8192] [--suites chacha20-poly1305,aes-128-gcm,...] [--ops seal,open] [--time SECONDS]");
    process.exit(0);
  }
  return {
    json: get("--json"),
    sizes: (get("--sizes") ?? "64,576,1400,8192").split(",").map(Number),
    suites: (get("--suites")?.split(",") ?? ALL_SUITES) as Suite[],
    ops: (get("--ops")?.split(",") ?? ["seal", "open"]) as Op[],
    time: Number(get("--time") ?? "1"),
  };
}

/** Packets per second of `run`, which handles `per` packets per call; median-based via benchmark.js. */
function measure(run: Runner, per: number, maxTime: number): { pps: number; rme: number } {
  // Warm-up: new WASM code runs in the baseline tier for the first tens of ms.
  const until = Date.now() + 150;
  while (Date.now() < until) run(per);
  const b = new Benchmark({ fn: () => run(per), maxTime, minSamples: 10, initCount: 1 });
  b.run({ async: false });
  if (b.error) throw b.error;
  return { pps: b.hz * per, rme: b.stats.rme };
}

export function machine(): string {
  const c = cpus();
  return `${c[0]?.model ?? "unknown cpu"} x${c.length}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}, Node ${process.version}`;
}

async function main() {
  (Benchmark as any).support.decompilation = false; // our fns are closures: call them, never inline their source
  const o = args();
  const wesp = await wespPeer();
  const peers: Peer[] = [nodeCrypto, await sodiumPeer(), chainsafe, noble];
  const results: Result[] = [];
  console.log(`machine: ${machine()}`);
  for (const suite of o.suites) {
    for (const size of o.sizes) {
      for (const op of o.ops) {
        const row: Result[] = [];
        for (const p of [wesp, ...peers]) {
          const r = p.make(suite, size, op);
          if (!r) continue;
          const per = p === wesp ? wesp.batch : 1;
          const { pps, rme } = measure(r, per, o.time);
          row.push({ impl: p.name, suite, size, op, mbps: (pps * size) / 1e6, kpps: pps / 1e3, rme });
        }
        results.push(...row);
        printRow(row);
      }
    }
  }
  if (o.json) {
    writeFileSync(o.json, JSON.stringify({ machine: machine(), results: results.map(({ rme, ...r }) => r) }, null, 1));
    console.log(`wrote ${o.json}`);
  }
}

function printRow(row: Result[]) {
  const w = row.find((r) => r.impl === "wesp");
  for (const r of row) {
    const ratio = w && r !== w ? `wesp/${r.impl} = ${(w.mbps / r.mbps).toFixed(2)}x` : "";
    console.log(
      `${r.suite.padEnd(24)} ${String(r.size).padStart(5)} B ${r.op.padEnd(4)} ${r.impl.padEnd(32)} ` +
        `${r.mbps.toFixed(1).padStart(8)} MB/s ${r.kpps.toFixed(1).padStart(9)} kpps ±${r.rme.toFixed(1)}%  ${ratio}`,
    );
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
