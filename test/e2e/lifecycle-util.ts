// Shared by the SA-lifecycle end-to-end tests (restart-nonce.test.ts,
// reload-load.test.ts, reload-move.test.ts): starting `wesp up` in a namespace, and a numbered
// UDP stream whose receiver records every counter it got, and replaying
// captured ESP-in-UDP packets.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { waitFor, type Netns, type LabProcess } from "../helpers/netns.ts";
import { WESP_BIN } from "./forwarder-util.ts";

/** `wesp up CFG` in `ns`, waited for until it forwards. */
export async function upCe(ns: Netns, cfg: string, env?: NodeJS.ProcessEnv): Promise<LabProcess> {
  const p = ns.spawn([process.execPath, WESP_BIN, "up", cfg], env ? { env: { ...process.env, ...env } } : {});
  await waitFor(async () => !p.running || /forwarding on/.test(p.stderr), `wesp up in ${ns.name}`, 60_000, 20);
  assert.ok(p.running, `wesp up in ${ns.name} exited ${p.exitCode}: ${p.stderr}`);
  return p;
}

// Numbered datagrams (8-byte counter, then filler) to dst:port at `pps`, paced in
// 10 ms bursts, until the file STOP exists; then prints "sent N". With FLOWS > 1
// they go round-robin over that many sockets, each its own source port (a flow
// of its own for a multi-queue TUN's hash). Send errors (no route while a CE is
// down) are counted as sent: the number was used.
const SENDER_PY = String.raw`
import os, socket, struct, sys, time
dst, port, pps, stop, flows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(flows)]
n, t0 = 0, time.time()
print("sending", flush=True)
while not os.path.exists(stop):
    for _ in range(max(1, pps // 100)):
        n += 1
        try: socks[n % flows].sendto(struct.pack("!Q", n) + b"n" * 100, (dst, port))
        except OSError: pass
    d = t0 + n / pps - time.time()
    if d > 0: time.sleep(d)
print("sent %d" % n, flush=True)
`;

// Records the counters arriving on addr:port; prints "rx COUNT DISTINCT MAX" whenever they changed (every 50 ms at most).
const RECEIVER_PY = String.raw`
import socket, struct, sys, select
addr, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind((addr, port)); s.setblocking(False)
seen, n, top, shown = set(), 0, 0, -1
print("rx 0 0 0", flush=True)
while True:
    if select.select([s], [], [], 0.05)[0]:
        while True:
            try: d = s.recv(65535)
            except BlockingIOError: break
            n += 1
            if len(d) >= 8:
                c = struct.unpack("!Q", d[:8])[0]; seen.add(c); top = max(top, c)
    if n != shown:
        print("rx %d %d %d" % (n, len(seen), top), flush=True); shown = n
`;

/** A numbered stream's receiver in `ns` on addr:port, started and ready. */
export async function streamReceiver(ns: Netns, addr: string, port: number): Promise<LabProcess> {
  const p = ns.spawn(["/usr/bin/python3", "-c", RECEIVER_PY, addr, String(port)]);
  await waitFor(() => /rx/.test(p.stdout) || !p.running, `stream receiver in ${ns.name}`);
  assert.ok(p.running, `stream receiver: ${p.stderr}`);
  return p;
}

/** A numbered stream's sender in `ns` to dst:port over `flows` source ports; it stops once the file `stop` exists. */
export function streamSender(ns: Netns, dst: string, port: number, pps: number, stop: string, flows = 1): LabProcess {
  return ns.spawn(["/usr/bin/python3", "-c", SENDER_PY, dst, String(port), String(pps), stop, String(flows)]);
}

/** How many datagrams the receiver got, how many distinct counters, and the highest. */
export function received(p: LabProcess): { count: number; distinct: number; max: number } {
  const m = [...p.stdout.matchAll(/rx (\d+) (\d+) (\d+)/g)].at(-1);
  return { count: Number(m?.[1] ?? 0), distinct: Number(m?.[2] ?? 0), max: Number(m?.[3] ?? 0) };
}

/** What a sender said it sent once stopped (NaN before). */
export function sentCount(p: LabProcess): number {
  return Number(/sent (\d+)/.exec(p.stdout)?.[1]);
}

/**
 * Numbered streams hostA → hostB (to `bAddr`:9100) and hostB → hostA (to
 * `aAddr`:9101) at `pps` each, started and seen flowing. `finish` stops both
 * senders (a file in `dir`) and waits for the last datagrams.
 */
export async function streamsBothWays(hA: Netns, hB: Netns, aAddr: string, bAddr: string, pps: number, dir: string) {
  const stop = join(dir, "stop-streams");
  const rxB = await streamReceiver(hB, bAddr, 9100);
  const rxA = await streamReceiver(hA, aAddr, 9101);
  const txA = streamSender(hA, bAddr, 9100, pps, stop);
  const txB = streamSender(hB, aAddr, 9101, pps, stop);
  await waitFor(() => received(rxB).count > 50 && received(rxA).count > 50, "both streams flowing", 20_000);
  return {
    async finish(): Promise<{ nAB: number; nBA: number; gotB: ReturnType<typeof received>; gotA: ReturnType<typeof received> }> {
      writeFileSync(stop, "");
      await Promise.all([txA.exited, txB.exited]);
      const [nAB, nBA] = [sentCount(txA), sentCount(txB)];
      assert.ok(nAB > 0 && nBA > 0, `senders: ${txA.stdout} ${txB.stdout} ${txA.stderr}${txB.stderr}`);
      await waitFor(() => received(rxB).count >= nAB && received(rxA).count >= nBA, "the streams' last datagrams", 5_000).catch(() => {});
      await new Promise((r) => setTimeout(r, 500));
      return { nAB, nBA, gotB: received(rxB), gotA: received(rxA) };
    },
  };
}

// Sends each hex payload of stdin (one a line) as a UDP datagram src:sport → dst:dport over a raw socket
// (the port is held by wesp), with a valid checksum (RFC 768). Prints how many it sent.
const INJECT_PY = String.raw`
import socket, struct, sys, time
src, sport, dst, dport = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
s.bind((src, 0))
n = 0
for line in sys.stdin:
    data = bytes.fromhex(line.strip())
    if not data: continue
    ulen = 8 + len(data)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!xBH", 17, ulen)
    c = csum(pseudo + struct.pack("!HHHH", sport, dport, ulen, 0) + data) or 0xffff
    s.sendto(struct.pack("!HHHH", sport, dport, ulen, c) + data, (dst, 0))
    n += 1
    if n % 50 == 0: time.sleep(0.01)
print(n)
`;

/**
 * Sends each of `payloads` as one UDP datagram from.addr:from.port → to (from
 * `ns`, over a raw socket: the port is wesp's); returns how many were sent.
 * For replaying captured ESP-in-UDP packets (RFC 3948) as if the peer sent them again.
 */
export async function injectUdp(ns: Netns, from: { addr: string; port: number }, to: { addr: string; port: number }, payloads: Buffer[]): Promise<number> {
  const input = payloads.map((p) => p.toString("hex")).join("\n") + "\n";
  return Number((await ns.run(["/usr/bin/python3", "-c", INJECT_PY, from.addr, String(from.port), to.addr, String(to.port)], { input })).trim());
}
