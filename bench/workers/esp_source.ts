// The ESP source of bench/workers/inbound.ts: plays the peer of a `wesp up`
// under test and floods it with ESP in UDP (RFC 3948), as UDP_SEGMENT trains,
// so the forwarder alone does the work and the source costs little (one
// sendmmsg per 64 datagrams of a train; the packets are sealed once, up front).
//
//   node --import tsx bench/workers/esp_source.ts CONFIG WORKERS SIZE SECONDS RATE
//
// CONFIG is the wesp config under test. Its first peer is mirrored (our node is
// that peer: SPIs and keys swapped) and planned through the same code wesp
// runs (sa/lifecycle.ts, worker_sas.ts: worker i's SA has SPI + i and keys
// derived for i), so for every worker of wesp we hold the outbound SA that
// matches its inbound one. Each seals POOL packets of SIZE-byte inner UDP
// (10.2.0.2 → 10.1.200.1: inside the selectors, to an address the receiving
// kernel drops on arrival) with sequence numbers 1..POOL; the config under
// test has replay_window 0, so sending the pool over and over is accepted.
// Trains go to the workers in turn; the kernel steers each by its SPI. RATE
// (datagrams per second, offered) paces the source: unpaced it would spend a
// core making trains the receiving socket then drops, as a UDP sender never
// waits for its receiver.
// Prints the datagrams sent when SECONDS are over or on SIGTERM.
import { readFileSync } from "node:fs";
import { Core, VERDICT } from "../../host/core/core.ts";
import { parseConfig } from "../../host/config/load.ts";
import { SaLifecycle } from "../../host/sa/lifecycle.ts";
import { SaTable } from "../../host/sa/install.ts";
import { peersForWorker } from "../../host/sa/worker_sas.ts";
import { UdpSocket } from "../../host/net/udp_linux.ts";
import { innerUdp } from "../../test/unit/core-helpers.ts";

const [configPath, workersArg, sizeArg, secondsArg, rateArg] = process.argv.slice(2);
const workers = Number(workersArg), size = Number(sizeArg), seconds = Number(secondsArg), rate = Number(rateArg);
const POOL = 256, TRAIN = 64;

const theirs = JSON.parse(readFileSync(configPath, "utf8"));
const peer = theirs.peers[0];
const wan = theirs.node.wan[0];
// Our side: the peer of the node under test.
const mirror = {
  version: 1,
  node: { name: peer.name, wan: [{ name: "wan", address: peer.address, port: peer.port, encap: "udp" }], local_prefixes: peer.prefixes, workers },
  peers: [{
    name: theirs.node.name, address: wan.address, port: wan.port, nat_t: true, prefixes: theirs.node.local_prefixes, mode: "tunnel",
    sas: peer.sas.map((s: Record<string, unknown>) => ({ ...s, spi_in: s.spi_out, spi_out: s.spi_in, key_in: s.key_out, key_out: s.key_in, replay_window: 0 })),
  }],
};
const config = parseConfig(JSON.stringify(mirror), { baseDir: "/tmp", source: "<esp_source>" }).config;
const plan = new SaLifecycle({ apply: async () => {} }).initial(config);

/** Worker i's pool: POOL sealed ESP payloads (what follows the UDP header), back to back. */
async function pool(i: number): Promise<Buffer> {
  const core = await Core.create({ slots: POOL });
  new SaTable(core).apply(peersForWorker(plan.peers, i, workers).peers);
  const [dst] = theirs.node.local_prefixes[0].split("/");
  const to = dst.replace(/\.\d+\.\d+$/, ".200.1");
  for (let k = 0; k < POOL; k++) core.writePacket(k, innerUdp("10.2.0.2", to, size - 28, 40000 + k, 9));
  core.processOutbound(POOL);
  const out: Buffer[] = [];
  for (let k = 0; k < POOL; k++) {
    if (core.verdict(k) !== VERDICT.TO_NETWORK) throw new Error(`worker ${i}: packet ${k} not sealed (${core.reasonName(k)})`);
    out.push(Buffer.from(core.packet(k).subarray(core.hdrLen(k))));
  }
  if (new Set(out.map((b) => b.length)).size !== 1) throw new Error("sealed packets differ in size: no single train");
  return Buffer.concat(out);
}

// Workers ≥ 1 first: planning worker 0 wipes the configured keys the others derive from.
const order = Array.from({ length: workers }, (_, i) => workers - 1 - i);
const pools = new Map<number, Buffer>();
for (const i of order) pools.set(i, await pool(i));
const esp = pools.get(0)!.length / POOL;

const sock = UdpSocket.bind({ family: 4, address: peer.address, port: peer.port, gso: true, sndbuf: 8 << 20 });
const addrs = new Uint8Array(TRAIN * 16);
const dstBytes = wan.address.split(".").map(Number);
for (let k = 0; k < TRAIN; k++) addrs.set(dstBytes, k * 16);
const ports = new Uint16Array(TRAIN).fill(wan.port);
const fams = new Uint8Array(TRAIN).fill(4);
const lens = new Uint32Array(TRAIN).fill(esp);
const offs = Array.from({ length: POOL / TRAIN }, (_, t) => new Uint32Array(TRAIN).map((_, k) => (t * TRAIN + k) * esp));

let sent = 0, offered = 0, w = 0, t = 0;
let stop = false;
process.on("SIGTERM", () => (stop = true));
const start = performance.now();
const end = start + seconds * 1000;
for (let now = start; !stop && now < end; now = performance.now()) {
  // ahead of the rate: wait (a millisecond at a time; the trains then leave in bursts)
  if (offered > ((now - start) * rate) / 1000) {
    await new Promise((r) => setTimeout(r, 1));
    continue;
  }
  sent += sock.sendBatch(pools.get(w)!, offs[t], lens, addrs, ports, fams, TRAIN);
  offered += TRAIN;
  w = (w + 1) % workers;
  if (w === 0) t = (t + 1) % offs.length;
}
sock.close();
console.log(sent);
