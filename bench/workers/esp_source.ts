// The ESP source of bench/workers/inbound.ts: plays the peers of a `wesp up`
// under test and floods it with ESP in UDP (RFC 3948), as UDP_SEGMENT trains,
// so the forwarder alone does the work and the source costs little (one
// sendmmsg per 64 datagrams of a train; the packets are sealed once, up front).
//
//   node --import tsx bench/workers/esp_source.ts CONFIG WORKERS SIZE SECONDS RATE [distinct|same] [TICK_MS]
//
// CONFIG is the wesp config under test. Each of its peers is mirrored (we are
// that peer: SPIs and keys swapped, our node at the peer's address) and
// planned through the same code wesp runs (sa/lifecycle.ts, worker_sas.ts:
// worker i's SA has SPI + i and keys derived for i), so for every (peer,
// worker) of wesp we hold the outbound SA that matches its inbound one. Each
// seals POOL packets of SIZE-byte inner UDP (peer's prefix .0.2 → 10.1.200.1:
// inside the selectors, to an address the receiving kernel drops on arrival,
// from port 40000 + 256·i + k: each worker's pool its own flows, as a flow
// reaches one worker in a real tunnel; `same` gives every worker's pool the
// same 256 flows, see below) with sequence numbers 1..POOL; the config under
// test has replay_window 0, so sending the pool over and over is accepted.
// Each peer sends from its own
// socket bound to its address; trains go to the (peer, worker) pairs in turn,
// and the kernel steers each by its SPI. RATE (datagrams per second, offered)
// paces the source: unpaced it would spend a core making trains the receiving
// socket then drops, as a UDP sender never waits for its receiver.
// Prints the datagrams sent when SECONDS are over or on SIGTERM, and so far
// ("sent N") on SIGUSR2.
//
// Why the flows may matter: a multi-queue TUN (two workers and more) hashes
// every packet written to it and records the writing queue in its flow table
// (drivers/net/tun.c tun_flow_update), so that packets of the flow going the
// other way are read by the same queue; with `same`, two workers rewrite the
// same entries from two cores. Measured, that costs no more than distinct
// flows do (docs/performance.md "Workers"); distinct is what a tunnel sees.
import { readFileSync } from "node:fs";
import { Core, VERDICT } from "../../host/core/core.ts";
import { parseConfig } from "../../host/config/load.ts";
import { SaLifecycle } from "../../host/sa/lifecycle.ts";
import { SaTable } from "../../host/sa/install.ts";
import { peersForWorker } from "../../host/sa/worker_sas.ts";
import { UdpSocket } from "../../host/net/udp_linux.ts";
import { innerUdp } from "../../host/lab/packets.ts";

const [configPath, workersArg, sizeArg, secondsArg, rateArg, flowsArg = "distinct", tickArg = "5"] = process.argv.slice(2);
if (flowsArg !== "distinct" && flowsArg !== "same") throw new Error(`flows: distinct or same, not ${flowsArg}`);
const workers = Number(workersArg), size = Number(sizeArg), seconds = Number(secondsArg), rate = Number(rateArg);
/** How long to sleep when ahead of the rate (ms): fewer, larger bursts preempt a worker on this core less often. */
const tickMs = Number(tickArg);
if (!(tickMs >= 1 && tickMs <= 100)) throw new Error(`TICK_MS: 1..100, not ${tickArg}`);
const POOL = 256, TRAIN = 64;

const theirs = JSON.parse(readFileSync(configPath, "utf8"));
const wan = theirs.node.wan[0];

/** A peer as the config under test spells it (bench/workers/inbound.ts writes it). */
interface PeerConfig { name: string; address: string; port: number; prefixes: string[]; sas: Record<string, unknown>[] }

/** Peer `peer` of the config under test, mirrored: our node is it, its one peer the node under test. */
function mirrorOf(peer: PeerConfig) {
  const mirror = {
    version: 1,
    node: { name: peer.name, wan: [{ name: "wan", address: peer.address, port: peer.port, encap: "udp" }], local_prefixes: peer.prefixes, workers },
    peers: [{
      name: theirs.node.name, address: wan.address, port: wan.port, nat_t: true, prefixes: theirs.node.local_prefixes, mode: "tunnel",
      sas: peer.sas.map((s) => ({ ...s, spi_in: s.spi_out, spi_out: s.spi_in, key_in: s.key_out, key_out: s.key_in, replay_window: 0 })),
    }],
  };
  const config = parseConfig(JSON.stringify(mirror), { baseDir: "/tmp", source: "<esp_source>" }).config;
  return new SaLifecycle({ apply: async () => {} }).initial(config);
}

/** Worker i's pool for one mirrored peer: POOL sealed ESP payloads (what follows the UDP header), back to back. */
async function pool(plan: ReturnType<typeof mirrorOf>, from: string, i: number): Promise<Buffer> {
  const core = await Core.create({ slots: POOL });
  new SaTable(core).apply(peersForWorker(plan.peers, i, workers).peers);
  const [dst] = theirs.node.local_prefixes[0].split("/");
  const to = dst.replace(/\.\d+\.\d+$/, ".200.1");
  for (let k = 0; k < POOL; k++) core.writePacket(k, innerUdp(from, to, size - 28, 40000 + (flowsArg === "same" ? 0 : 256 * i) + k, 9));
  core.processOutbound(POOL);
  const out: Buffer[] = [];
  for (let k = 0; k < POOL; k++) {
    if (core.verdict(k) !== VERDICT.TO_NETWORK) throw new Error(`worker ${i}: packet ${k} not sealed (${core.reasonName(k)})`);
    out.push(Buffer.from(core.packet(k).subarray(core.hdrLen(k))));
  }
  if (new Set(out.map((b) => b.length)).size !== 1) throw new Error("sealed packets differ in size: no single train");
  return Buffer.concat(out);
}

/** What one train goes out of: a peer's socket and the pool of one of wesp's workers. */
interface Lane { sock: UdpSocket; pool: Buffer }
const lanes: Lane[] = [];
for (const peer of theirs.peers as PeerConfig[]) {
  const plan = mirrorOf(peer);
  const from = peer.prefixes[0].split("/")[0].replace(/\.0$/, ".2");
  const sock = UdpSocket.bind({ family: 4, address: peer.address, port: peer.port, gso: true, sndbuf: 8 << 20 });
  // Workers ≥ 1 first: planning worker 0 wipes the configured keys the others derive from.
  const pools = new Map<number, Buffer>();
  for (let i = workers - 1; i >= 0; i--) pools.set(i, await pool(plan, from, i));
  for (let i = 0; i < workers; i++) lanes.push({ sock, pool: pools.get(i)! });
}
const esp = lanes[0].pool.length / POOL;
if (lanes.some((l) => l.pool.length !== esp * POOL)) throw new Error("pools differ in packet size");

const addrs = new Uint8Array(TRAIN * 16);
const dstBytes = wan.address.split(".").map(Number);
for (let k = 0; k < TRAIN; k++) addrs.set(dstBytes, k * 16);
const ports = new Uint16Array(TRAIN).fill(wan.port);
const fams = new Uint8Array(TRAIN).fill(4);
const lens = new Uint32Array(TRAIN).fill(esp);
const offs = Array.from({ length: POOL / TRAIN }, (_, t) => new Uint32Array(TRAIN).map((_, k) => (t * TRAIN + k) * esp));

let sent = 0, offered = 0, l = 0, t = 0;
let stop = false;
process.on("SIGTERM", () => (stop = true));
// What the bench reads at both ends of its measured interval (inbound.ts): the datagrams sent so far.
process.on("SIGUSR2", () => console.log(`sent ${sent}`));
const start = performance.now();
const end = start + seconds * 1000;
for (let now = start; !stop && now < end; now = performance.now()) {
  // ahead of the rate: wait (tickMs at a time; the trains then leave in bursts)
  if (offered > ((now - start) * rate) / 1000) {
    await new Promise((r) => setTimeout(r, tickMs));
    continue;
  }
  const lane = lanes[l];
  sent += lane.sock.sendBatch(lane.pool, offs[t], lens, addrs, ports, fams, TRAIN);
  offered += TRAIN;
  l = (l + 1) % lanes.length;
  if (l === 0) t = (t + 1) % offs.length;
}
for (const lane of lanes) lane.sock.close(); // each peer's socket once per worker: close is idempotent
console.log(sent);
