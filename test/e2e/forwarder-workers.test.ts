// node.workers = 2 end to end (docs/forwarder.md "Workers"): two sites, each
// CE running `wesp up` with two packet workers, one peer with one configured
// SA pair. Many UDP flows between the site hosts spread over the TUN queues,
// so both workers seal; inbound ESP is steered by SPI to the worker that owns
// it (SO_REUSEPORT + classic BPF for NAT-T, a socket filter per worker for
// raw ESP). What must hold:
//   - every datagram comes back, byte for byte;
//   - each worker carried traffic of the one peer, both directions, on both
//     CEs (per-worker counters in `wesp status`);
//   - no SA is in two workers: worker i's SPIs are the configured ones + i,
//     all distinct, and each inbound SPI ≡ i (mod 2);
//   - no packet reached a worker without its SA (NO_SA = 0): the kernel
//     steered every one, and raw sockets did not deliver each packet to both;
//   - the top-level counters are the sums of the workers';
//   - each worker's SA has its own sequence-state file (durable per SA).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { requireTools } from "../helpers/require.ts";
import { waitFor } from "../helpers/netns.ts";
import { ADDR, startPair, status, stopPair, useSites, wesp, type Case, type Sites } from "./forwarder-util.ts";

const ECHO_PY = String.raw`
import socket, sys
addr, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((addr, port))
print("listening", flush=True)
while True:
    d, a = s.recvfrom(65535)
    s.sendto(d, a)
`;

// FLOWS sockets (each its own source port: a flow of its own for the TUN's
// queue hash); each sends a random datagram and waits for it to come back,
// resending up to 5 times. Prints how many came back equal.
const FLOWS_PY = String.raw`
import os, socket, sys
dst, port, flows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ok = 0
for _ in range(flows):
    s = socket.socket(socket.AF_INET6 if ":" in dst else socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1)
    d = os.urandom(200)
    for _ in range(5):
        s.sendto(d, (dst, port))
        try:
            if s.recv(65535) == d: ok += 1; break
        except socket.timeout: pass
    s.close()
print(ok)
`;

const FLOWS = 16;
const CASES: Case[] = [
  { name: "tunnel, ESP in UDP (NAT-T) over IPv4, IPv4 inside", mode: "tunnel", outer: 4, encap: "udp", workers: 2 },
  { name: "tunnel, raw ESP over IPv4, IPv4 inside", mode: "tunnel", outer: 4, encap: "raw", workers: 2 },
  { name: "tunnel, raw ESP over IPv6, IPv6 inside", mode: "tunnel", outer: 6, encap: "raw", workers: 2 },
];

type Sa = { spi: number; counters: { packets: number } };
type PeerWorker = { worker: number; outbound: Sa; inbound: Sa[] };

/** Per worker: packets sealed and opened on the peer's own SAs. */
function perWorker(st: any): { out: number; in: number }[] {
  return (st.peers[0].workers as PeerWorker[]).map((w) => ({ out: w.outbound.counters.packets, in: w.inbound.reduce((n, s) => n + s.counters.packets, 0) }));
}

function checkSas(st: any, base: { in: number; out: number }, side: string): void {
  const ws = st.peers[0].workers as PeerWorker[];
  assert.equal(st.workers, 2, `${side}: workers in status`);
  assert.equal(ws.length, 2, `${side}: one entry per worker`);
  const spis = new Set<number>();
  ws.forEach((w, i) => {
    assert.equal(w.worker, i);
    assert.equal(w.outbound.spi, base.out + i, `${side} worker ${i}: outbound SPI`);
    assert.equal(w.inbound.length, 1);
    assert.equal(w.inbound[0].spi, base.in + i, `${side} worker ${i}: inbound SPI`);
    assert.equal(w.inbound[0].spi % 2, i, `${side} worker ${i}: inbound SPI steers to it`);
    for (const s of [w.outbound, ...w.inbound]) {
      assert.ok(!spis.has(s.spi), `${side}: SPI 0x${s.spi.toString(16)} in two workers`);
      spis.add(s.spi);
    }
  });
  // the top level is the sum
  const p = st.peers[0];
  assert.equal(p.outbound.counters.packets, ws.reduce((n, w) => n + w.outbound.counters.packets, 0), `${side}: outbound sum`);
  assert.equal(p.inbound[0].counters.packets, ws.reduce((n, w) => n + w.inbound[0].counters.packets, 0), `${side}: inbound sum`);
  assert.equal(st.global.inbound.packets, st.perWorker.reduce((n: number, w: any) => n + w.global.inbound.packets, 0), `${side}: global sum`);
  assert.equal(st.global.inbound.drops.NO_SA ?? 0, 0, `${side}: an ESP packet reached a worker without its SA (steering failed)`);
  assert.equal(st.global.inbound.drops.REPLAY ?? 0, 0, `${side}: replay drops (a packet delivered to two workers?)`);
}

describe("wesp up with node.workers = 2", { skip: requireTools(["netns", "python3", "sysctl"], { why: "e2e wesp up with two workers" }) }, () => {
  let s!: Sites;
  useSites((x) => (s = x));

  CASES.forEach((c, k) => {
    it(c.name, { timeout: 180_000 }, async () => {
      const stateFiles = (side: string) => {
        try {
          return readdirSync(join(s.lab.dir, `${side}-state`, "sa")).filter((f) => f.endsWith(".json"));
        } catch {
          return [];
        }
      };
      const before = new Set(["ceA", "ceB"].flatMap(stateFiles));
      const r = await startPair(s, c, `wk${k}`);
      const fam = c.outer === 4 ? "v4" : "v6";
      const port = 7000 + k;
      const echo = s.hostB.spawn(["/usr/bin/python3", "-c", ECHO_PY, ADDR.hostB[fam], String(port)]);
      try {
        await waitFor(() => /listening/.test(echo.stdout) || !echo.running, "UDP echo on hostB");
        assert.ok(echo.running, `echo server: ${echo.stderr}`);
        // Rounds of fresh flows until both workers of both CEs carried traffic both ways.
        // The TUN spreads flows by hash: 16 flows all on one queue is a 2^-15 chance per round.
        let rounds = 0;
        const busy = async () => {
          const [a, b] = [perWorker(await status(r.sockA)), perWorker(await status(r.sockB))];
          return [...a, ...b].every((w) => w.out > 0 && w.in > 0);
        };
        do {
          const back = Number((await s.hostA.run(["/usr/bin/python3", "-c", FLOWS_PY, ADDR.hostB[fam], String(port), String(FLOWS)], { timeoutMs: 120_000 })).trim());
          assert.equal(back, FLOWS, `round ${rounds}: every flow's datagram came back`);
          rounds++;
        } while (!(await busy()) && rounds < 8);
        const stA = await status(r.sockA), stB = await status(r.sockB);
        for (const [side, st] of [["ceA", stA], ["ceB", stB]] as const) {
          for (const [i, w] of perWorker(st).entries()) {
            assert.ok(w.out > 0 && w.in > 0, `${side} worker ${i} carried the peer's traffic both ways (${JSON.stringify(perWorker(st))}, ${rounds} rounds)`);
          }
        }
        checkSas(stA, { in: 0x10020, out: 0x10010 }, "ceA");
        checkSas(stB, { in: 0x10010, out: 0x10020 }, "ceB");
        if (k === 0) {
          // A reload of the same config goes to every worker (its own derived, key-less set) and changes
          // nothing: each worker keeps its SAs, sequence numbers and counters, and traffic goes on.
          const rl = await wesp("reload", "--control", r.sockA);
          assert.equal(rl.code, 0, `wesp reload: ${rl.stderr}`);
          const after = await status(r.sockA);
          (after.peers[0].workers as PeerWorker[]).forEach((w, i) => {
            const was = (stA.peers[0].workers as PeerWorker[])[i];
            assert.equal(w.outbound.spi, was.outbound.spi);
            assert.ok(w.outbound.counters.packets >= was.outbound.counters.packets, `ceA worker ${i}: its outbound SA was kept across the reload`);
          });
          const back = Number((await s.hostA.run(["/usr/bin/python3", "-c", FLOWS_PY, ADDR.hostB[fam], String(port), String(FLOWS)], { timeoutMs: 120_000 })).trim());
          assert.equal(back, FLOWS, "after the reload, every flow's datagram came back");
          checkSas(await status(r.sockA), { in: 0x10020, out: 0x10010 }, "ceA after reload");
        }
      } finally {
        await echo.stop();
      }
      await stopPair(s, r);
      // one state file per SA and direction per worker (host/sa/worker_sas.ts key ids)
      for (const side of ["ceA", "ceB"]) {
        const files = stateFiles(side).filter((f) => !before.has(f));
        assert.equal(files.filter((f) => f.startsWith("out-")).length, 2, `${side}: outbound state files of this case: ${files}`);
        assert.equal(files.filter((f) => f.startsWith("in-")).length, 2, `${side}: inbound state files of this case: ${files}`);
      }
    });
  });
});
