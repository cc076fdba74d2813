// Shared by the SA-lifecycle end-to-end tests (restart-nonce.test.ts,
// reload-load.test.ts, reload-move.test.ts): starting `wesp up` in a namespace, and a numbered
// UDP stream whose receiver records every counter it got.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { waitFor, type Netns, type Spawned } from "../helpers/netns.ts";
import { WESP_BIN } from "./forwarder-util.ts";

/** `wesp up CFG` in `ns`, waited for until it forwards. */
export async function upCe(ns: Netns, cfg: string, env?: NodeJS.ProcessEnv): Promise<Spawned> {
  const p = ns.spawn([process.execPath, WESP_BIN, "up", cfg], env ? { env: { ...process.env, ...env } } : {});
  await waitFor(async () => !p.running || /forwarding on/.test(p.stderr), `wesp up in ${ns.name}`, 60_000, 20);
  assert.ok(p.running, `wesp up in ${ns.name} exited ${p.exitCode}: ${p.stderr}`);
  return p;
}

// Numbered datagrams (8-byte counter, then filler) to dst:port at `pps`, paced in
// 10 ms bursts, until the file STOP exists; then prints "sent N". Send errors
// (no route while a CE is down) are counted as sent: the number was used.
const SENDER_PY = String.raw`
import os, socket, struct, sys, time
dst, port, pps, stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
n, t0 = 0, time.time()
print("sending", flush=True)
while not os.path.exists(stop):
    for _ in range(max(1, pps // 100)):
        n += 1
        try: s.sendto(struct.pack("!Q", n) + b"n" * 100, (dst, port))
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
export async function streamReceiver(ns: Netns, addr: string, port: number): Promise<Spawned> {
  const p = ns.spawn(["/usr/bin/python3", "-c", RECEIVER_PY, addr, String(port)]);
  await waitFor(() => /rx/.test(p.stdout) || !p.running, `stream receiver in ${ns.name}`);
  assert.ok(p.running, `stream receiver: ${p.stderr}`);
  return p;
}

/** A numbered stream's sender in `ns` to dst:port; it stops once the file `stop` exists. */
export function streamSender(ns: Netns, dst: string, port: number, pps: number, stop: string): Spawned {
  return ns.spawn(["/usr/bin/python3", "-c", SENDER_PY, dst, String(port), String(pps), stop]);
}

/** How many datagrams the receiver got, how many distinct counters, and the highest. */
export function received(p: Spawned): { count: number; distinct: number; max: number } {
  const m = [...p.stdout.matchAll(/rx (\d+) (\d+) (\d+)/g)].at(-1);
  return { count: Number(m?.[1] ?? 0), distinct: Number(m?.[2] ?? 0), max: Number(m?.[3] ?? 0) };
}

/** What a sender said it sent once stopped (NaN before). */
export function sentCount(p: Spawned): number {
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
