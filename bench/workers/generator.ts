// The packet generator of bench/workers: floods UDP datagrams of SIZE bytes
// to DST on FLOWS destination ports (each its own flow, so the TUN's queue
// hash spreads them over the workers) for SECONDS, with sendmmsg batches of
// 64 through the wesp_io addon. Run inside the forwarder's namespace: the
// kernel routes them into wesp's TUN. Prints the datagrams it handed over
// (unless killed first, as bench/workers/index.ts does).
//   node --import tsx bench/workers/generator.ts DST SIZE FLOWS SECONDS
import { UdpSocket } from "../../host/net/udp_linux.ts";

const [dst, sizeArg, flowsArg, secondsArg] = process.argv.slice(2);
const size = Number(sizeArg), flows = Number(flowsArg), seconds = Number(secondsArg);
const BATCH = 64;
const sock = UdpSocket.bind({ family: 4, port: 0, sndbuf: 4 << 20 });
const mem = new Uint8Array(BATCH * size).fill(0x5a);
const offs = new Uint32Array(BATCH).map((_, i) => i * size);
const lens = new Uint32Array(BATCH).fill(size);
const addrs = new Uint8Array(BATCH * 16);
const ports = new Uint16Array(BATCH);
const fams = new Uint8Array(BATCH).fill(4);
const a = dst.split(".").map(Number);
for (let i = 0; i < BATCH; i++) addrs.set(a, i * 16);
let sent = 0, flow = 0;
const end = Date.now() + seconds * 1000;
while (Date.now() < end) {
  for (let i = 0; i < BATCH; i++) ports[i] = 10000 + (flow++ % flows);
  sent += sock.sendBatch(mem, offs, lens, addrs, ports, fams, BATCH);
}
sock.close();
console.log(sent);
