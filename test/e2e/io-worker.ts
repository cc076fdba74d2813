// Worker-thread side of io-worker.test.ts: what a pipeline worker does with
// the I/O layer — opens its own fds (inside a namespace, from its own
// thread), reads on its own event loop or in a blocking loop, and reports
// counts to the main thread.
import { parentPort, workerData } from "node:worker_threads";
import { readlinkSync } from "node:fs";
import { Tun } from "../../host/tun/tun_linux.ts";
import { UdpSocket } from "../../host/net/udp_linux.ts";
import { waitReadable } from "../../host/io/wait_linux.ts";

interface Data {
  mode: "udp-poll" | "tun-poll" | "blocking";
  ns: string;
  port?: number;
  tunName?: string;
  wakeFd?: number;
  /** tun-poll: the TUN reader (default readv) and whether the device is multi-queue (default true). */
  reader?: "auto" | "readv";
  multiQueue?: boolean;
}
const d = workerData as Data;
const port = parentPort!;
const threadNs = () => readlinkSync("/proc/thread-self/ns/net");

const mem = new Uint8Array(new WebAssembly.Memory({ initial: 4 }).buffer);
const offs = Uint32Array.from({ length: 64 }, (_, i) => i * 2048);
const lens = new Uint32Array(64);

const nsBefore = threadNs();
if (d.mode === "udp-poll") {
  const s = UdpSocket.bind({ family: 4, port: d.port, reusePort: true, netns: d.ns });
  port.postMessage({ ready: true, nsBefore, nsAfter: threadNs() });
  s.onReadable(() => port.postMessage({ got: s.recvBatch(mem, offs, lens, null, null, 64, 2048) }));
} else if (d.mode === "tun-poll") {
  const tun = Tun.open({ name: d.tunName!, multiQueue: d.multiQueue ?? true, netns: d.ns, reader: d.reader ?? "readv" });
  port.postMessage({ ready: true, nsBefore, nsAfter: threadNs(), reader: tun.reader.reader });
  tun.onReadable(() => {
    const n = tun.readBatch(mem, offs, lens, 64, 2048);
    let udp = 0;
    for (let i = 0; i < n; i++) if (mem[offs[i]] >> 4 === 4 && mem[offs[i] + 9] === 17) udp++;
    port.postMessage({ got: udp });
  });
} else {
  // Blocking style: this thread's event loop is not running while it waits;
  // only the Waker (an eventfd another thread signals) can end the wait early.
  const s = UdpSocket.bind({ family: 4, port: d.port, netns: d.ns });
  port.postMessage({ ready: true, nsBefore, nsAfter: threadNs() });
  const fds = Int32Array.of(s.fd, d.wakeFd!);
  for (;;) {
    const m = waitReadable(fds, -1);
    if (m & 2) break;
    if (m & 1) port.postMessage({ got: s.recvBatch(mem, offs, lens, null, null, 64, 2048) });
  }
  s.close();
  port.postMessage({ stopped: true });
}
