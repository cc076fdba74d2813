// The packet generator of bench/workers: floods UDP datagrams of SIZE bytes
// (payload) to DSTS (a comma-separated list: one address per peer) on FLOWS
// destination ports, flow f to DSTS[f mod P] port 10000 + f (each its own
// flow, so the TUN's queue hash spreads them over the workers), for SECONDS,
// paced at RATE datagrams per second (offered; 0: unpaced). Run inside the
// forwarder's namespace: the kernel routes them into wesp's TUN.
//
//   node --import tsx bench/workers/generator.ts DSTS SIZE FLOWS SECONDS RATE [trains|datagrams]
//
// Pacing: a TUN drops what its full queue cannot take and never pushes back
// on the sender, so an unpaced generator spins on a core of its own however
// little each datagram costs it. Paced a little above what wesp can take,
// it costs what its datagrams cost.
//
// trains (the default): each sendmmsg carries runs of R datagrams of one flow
//   (R = 64, or fewer so a run fits 65,000 bytes) as UDP_SEGMENT trains
//   (udp_offload_linux.c): the kernel routes a run once, as one GSO packet,
//   and hands it to the TUN whole (USO, Linux 6.2: wesp's reader cuts it back
//   into datagrams, gso_linux.c). The generator's cost is one trip through
//   the stack per run instead of per datagram: what a UDP_SEGMENT sender
//   (QUIC) or a forwarded UDP_GRO train costs the kernel.
// datagrams: one datagram per message, 64 per sendmmsg (the earlier
//   generator, which needed most of a core to feed one worker).
// All datagrams point at one buffer: nothing is built per packet.
// Prints the datagrams it handed over when SECONDS are over or on SIGTERM.
import { UdpSocket } from "../../host/net/udp_linux.ts";

const [dstsArg, sizeArg, flowsArg, secondsArg, rateArg, modeArg = "trains"] = process.argv.slice(2);
const dsts = dstsArg.split(",").map((d) => d.split(".").map(Number));
const size = Number(sizeArg), flows = Number(flowsArg), seconds = Number(secondsArg), rate = Number(rateArg);
if (modeArg !== "trains" && modeArg !== "datagrams") throw new Error(`mode: trains or datagrams, not ${modeArg}`);
const trains = modeArg === "trains";
/** Datagrams per run of one flow, and runs per sendmmsg (the addon takes 256 slots a call). */
const RUN = trains ? Math.min(64, Math.floor(65000 / size)) : 1;
const BATCH = trains ? Math.floor(256 / RUN) * RUN : 64;
const sock = UdpSocket.bind({ family: 4, port: 0, sndbuf: 4 << 20, gso: trains });
if (trains && sock.offloads.gso !== "on") throw new Error(`the kernel refused UDP_SEGMENT (${sock.offloads.gso}): use datagrams`);
const mem = new Uint8Array(size).fill(0x5a);
const offs = new Uint32Array(BATCH);
const lens = new Uint32Array(BATCH).fill(size);
const addrs = new Uint8Array(BATCH * 16);
const ports = new Uint16Array(BATCH);
const fams = new Uint8Array(BATCH).fill(4);
let sent = 0, offered = 0, flow = 0, stop = false;
// Unpaced, the loop never yields to the event loop: keep SIGTERM's default (exit) then.
if (rate > 0) process.on("SIGTERM", () => (stop = true));
const start = performance.now();
const end = start + seconds * 1000;
for (let now = start; !stop && now < end; now = performance.now()) {
  // ahead of the rate: wait (a millisecond at a time; the batches then leave in bursts)
  if (rate > 0 && offered > ((now - start) * rate) / 1000) {
    await new Promise((r) => setTimeout(r, 1));
    continue;
  }
  for (let i = 0; i < BATCH; i += RUN) {
    const f = flow++ % flows;
    for (let k = i; k < i + RUN; k++) {
      addrs.set(dsts[f % dsts.length], k * 16);
      ports[k] = 10000 + f;
    }
  }
  sent += sock.sendBatch(mem, offs, lens, addrs, ports, fams, BATCH);
  offered += BATCH;
}
sock.close();
console.log(sent);
