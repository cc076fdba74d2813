// A separate process for the io-tun tests, for what must not happen inside
// the test runner: running as an unprivileged user, and showing that a
// process with open, polled fds exits by itself once it closes them.
// Started (inside a namespace) by io-tun.test.ts as
//   node --import tsx test/e2e/io-child.ts <mode> [args…]
// and answers with one line of JSON on stdout.
import { Tun } from "../../host/tun/tun_linux.ts";
import { UdpSocket } from "../../host/net/udp_linux.ts";
import { waitReadable } from "../../host/io/wait_linux.ts";

const [mode, ...args] = process.argv.slice(2);

function errCode(f: () => unknown): string | null {
  try {
    const r = f();
    if (r && typeof (r as { close?: () => void }).close === "function") (r as { close: () => void }).close();
    return null;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? String(e);
  }
}

if (mode === "attach") {
  // args: persistent device, persistent multi-queue device, a name that does not exist, an address routed into the device
  const [name, mqName, newName, dst] = args;
  const tun = Tun.open({ name });
  const queues = Tun.openQueues({ name: mqName }, 2);
  const createErr = errCode(() => Tun.open({ name: newName }));
  // The read path works unprivileged: a datagram routed into our device comes out of our fd.
  const s = UdpSocket.bind({ family: 4, port: 0 });
  const mem = new Uint8Array(4096);
  const offs = Uint32Array.of(0, 2048);
  const lens = new Uint32Array(2);
  const addr = new Uint8Array(32);
  addr.set(dst.split(".").map(Number));
  let udpSeen = false;
  for (let i = 0; i < 20 && !udpSeen; i++) {
    // (Re)send until one comes out: the first may be dropped while the
    // device's carrier is still coming up after the attach, on a loaded machine.
    mem.set([1, 2, 3, 4, 5], 0);
    lens[0] = 5;
    s.sendBatch(mem, offs, lens, addr, Uint16Array.of(9, 0), Uint8Array.of(4, 0), 1);
    if (waitReadable(Int32Array.of(tun.fd), 100) === 0) continue;
    const n = tun.readBatch(mem, offs, lens, 2, 2048);
    for (let k = 0; k < n; k++) if (mem[offs[k]] >> 4 === 4 && mem[offs[k] + 9] === 17) udpSeen = true;
  }
  for (const q of queues) q.close();
  tun.close();
  s.close();
  console.log(JSON.stringify({ uid: process.getuid?.(), name: tun.name, queues: queues.length, createErr, udpSeen }));
} else if (mode === "attach-only") {
  console.log(JSON.stringify({ uid: process.getuid?.(), err: errCode(() => Tun.open({ name: args[0] })) }));
} else if (mode === "shutdown") {
  // Open fds with active polls, then close them: nothing may keep the process alive.
  const tun = Tun.open({ name: "wts%d" });
  const s = UdpSocket.bind({ family: 4, port: 0 });
  let calls = 0;
  tun.onReadable(() => calls++);
  s.onReadable(() => calls++);
  setTimeout(() => {
    tun.close();
    s.close();
    console.log(JSON.stringify({ closed: true, name: tun.name }));
  }, 100);
} else {
  console.error(`io-child: unknown mode ${mode}`);
  process.exit(2);
}
