// The soak's impairment relay: a userspace "link" between two CEs that talk
// ESP in UDP (RFC 3948). It runs in the middle namespace and is, at the UDP
// level, each CE's peer: ceA sends to the relay's A-side address, the relay
// forwards from its B-side socket to ceB, and ceB's answers come back the same
// way. Nothing else connects the two sides (no IP forwarding in the middle), so
// every ESP packet between the CEs passes through here.
//
// Each datagram from one side is, by a seeded PRNG per direction (so the i-th
// packet of a direction always meets the same fate for a given seed):
//
//   drop      not forwarded
//   dup       forwarded now, and a copy after U(0, dupDelayMax) ms
//   reorder   held back until k = U(1, reorderMax) later packets of its direction
//             have been forwarded (or reorderTimeout ms passed: traffic may stop)
//   delay     forwarded after U(delayMin, delayMax) ms (later packets overtake it)
//   (else)    forwarded now
//
// The first 8 bytes of an ESP-in-UDP payload are the SPI and the sequence
// number (RFC 4303 §2); 1-byte 0xFF keepalives and 0x00000000-prefixed IKE
// datagrams (RFC 3948 §2.2, §2.3) are forwarded untouched and not logged.
//
// The relay also predicts, per SPI, what the receiver's anti-replay check
// (RFC 4303 §3.4.3, window W, no ESN: wesp's docs/replay.md) will say about each
// packet as it leaves: it keeps the same window the receiver keeps, assuming every
// packet it sends arrives and authenticates. So each wesp REPLAY (duplicate
// inside the window) and REPLAY_OLD (left of the window) drop has a line here.
//
// Log (TSV, one line per event; `t` = ms since start, dir AB = ceA → ceB):
//   t  dir  drop     spi  seq
//   t  dir  dup      spi  seq  copyDelayMs
//   t  dir  reorder  spi  seq  k
//   t  dir  delay    spi  seq  ms
//   t  dir  emit     spi  seq  copy|reordered|delayed|normal  OK|REPLAY|REPLAY_OLD  top
// `emit` lines are written for every packet that left late (copy, reordered,
// delayed) and for any packet whose predicted verdict is not OK.
//
// SIGTERM / SIGINT: write the summary JSON (counts per direction and SPI, kernel
// drops of the relay's own sockets from /proc/net/udp) and exit 0.
//
// Usage: node --import tsx test/soak/relay.ts --a-listen IP:PORT --a-peer IP:PORT
//        --b-listen IP:PORT --b-peer IP:PORT --log FILE --summary FILE [--seed N]
//        [--drop P] [--dup P] [--reorder P] [--delay P] [--reorder-max K]
//        [--reorder-timeout MS] [--delay-min MS] [--delay-max MS] [--dup-delay-max MS]
//        [--window W]
import { createSocket, type Socket } from "node:dgram";
import { createWriteStream, readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";

export interface RelayOptions {
  seed: number;
  drop: number;
  dup: number;
  reorder: number;
  delay: number;
  reorderMax: number;
  reorderTimeoutMs: number;
  delayMinMs: number;
  delayMaxMs: number;
  dupDelayMaxMs: number;
  window: number;
}

export type Verdict = "OK" | "REPLAY" | "REPLAY_OLD";

export interface SpiStats {
  received: number;
  dropped: number;
  duplicated: number;
  reordered: number;
  delayed: number;
  emitted: number;
  verdicts: Record<Verdict, number>;
  /** Sequence numbers received from the CE that the receiver will never accept (every copy dropped or refused). */
  lost: number;
  top: number;
}

export interface DirStats {
  received: number;
  nonEsp: number;
  sendErrors: number;
  spis: Record<string, SpiStats>;
}

export interface RelaySummary {
  options: RelayOptions;
  seconds: number;
  dirs: Record<"AB" | "BA", DirStats>;
  /** Datagrams from an address other than the expected CE (ignored). */
  foreign: number;
  /** Packets still held or scheduled when the relay stopped. */
  pendingAtEnd: number;
  /** Receive-buffer drops of the relay's own sockets (/proc/net/udp), by side. */
  kernelDrops: { a: number | null; b: number | null };
}

/** sfc32 (Chris Doty-Humphrey's small fast counting PRNG): floats in [0, 1) from a 32-bit seed. */
export function prng(seed: number): () => number {
  let a = 0x9e3779b9, b = 0x243f6a88, c = 0xb7e15162, d = seed >>> 0;
  const next = () => {
    a >>>= 0; b >>>= 0; c >>>= 0; d >>>= 0;
    const t = (a + b + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) >>> 0;
    return t / 4294967296;
  };
  for (let i = 0; i < 16; i++) next();
  return next;
}

/**
 * The receiver's anti-replay window for one SPI, as wesp keeps it (docs/replay.md):
 * seq 0 and seq ≤ top − W are REPLAY_OLD, a seq already accepted inside the window
 * is REPLAY, anything else is accepted and advances the window.
 */
export class ReplaySim {
  top = 0;
  private readonly ring: Float64Array;
  private readonly mask: number;
  constructor(readonly window: number) {
    let n = 1;
    while (n < window) n <<= 1;
    this.ring = new Float64Array(n).fill(-1);
    this.mask = n - 1;
  }
  check(seq: number): Verdict {
    if (seq === 0) return "REPLAY_OLD";
    if (seq > this.top) return "OK";
    if (this.top - seq >= this.window) return "REPLAY_OLD";
    return this.ring[seq & this.mask] === seq ? "REPLAY" : "OK";
  }
  /** Check, and on OK record it (the receiver advances after the ICV verified). */
  accept(seq: number): Verdict {
    const v = this.check(seq);
    if (v === "OK") {
      this.ring[seq & this.mask] = seq;
      if (seq > this.top) this.top = seq;
    }
    return v;
  }
}

function hostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(":");
  return { host: s.slice(0, i).replace(/^\[|\]$/g, ""), port: Number(s.slice(i + 1)) };
}

/** Receive-queue drops of the UDP socket bound to `port` on `host` (hex in /proc/net/udp), or null. */
function udpDrops(host: string, port: number): number | null {
  try {
    const want = `${host.split(".").map((x) => Number(x).toString(16).padStart(2, "0")).reverse().join("").toUpperCase()}:${port.toString(16).toUpperCase().padStart(4, "0")}`;
    for (const line of readFileSync("/proc/net/udp", "utf8").split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[1] === want) return Number(f[f.length - 1]);
    }
  } catch {
    /* not Linux or not readable */
  }
  return null;
}

function main(): void {
  const { values: v } = parseArgs({
    options: {
      "a-listen": { type: "string" }, "a-peer": { type: "string" },
      "b-listen": { type: "string" }, "b-peer": { type: "string" },
      log: { type: "string" }, summary: { type: "string" },
      seed: { type: "string", default: "1" },
      drop: { type: "string", default: "0.01" }, dup: { type: "string", default: "0.01" },
      reorder: { type: "string", default: "0.02" }, delay: { type: "string", default: "0.01" },
      "reorder-max": { type: "string", default: "32" }, "reorder-timeout": { type: "string", default: "500" },
      "delay-min": { type: "string", default: "10" }, "delay-max": { type: "string", default: "600" },
      "dup-delay-max": { type: "string", default: "600" }, window: { type: "string", default: "128" },
    },
  });
  for (const k of ["a-listen", "a-peer", "b-listen", "b-peer", "log", "summary"] as const) {
    if (!v[k]) throw new Error(`relay: --${k} is required`);
  }
  const opt: RelayOptions = {
    seed: Number(v.seed), drop: Number(v.drop), dup: Number(v.dup), reorder: Number(v.reorder), delay: Number(v.delay),
    reorderMax: Number(v["reorder-max"]), reorderTimeoutMs: Number(v["reorder-timeout"]),
    delayMinMs: Number(v["delay-min"]), delayMaxMs: Number(v["delay-max"]), dupDelayMaxMs: Number(v["dup-delay-max"]),
    window: Number(v.window),
  };
  if (opt.drop + opt.dup + opt.reorder + opt.delay > 1) throw new Error("relay: probabilities add up to more than 1");

  const t0 = Date.now();
  const log = createWriteStream(v.log!, { flags: "w", mode: 0o600, highWaterMark: 1 << 20 });
  const line = (...f: (string | number)[]) => log.write(`${Date.now() - t0}\t${f.join("\t")}\n`);
  const aListen = hostPort(v["a-listen"]!), aPeer = hostPort(v["a-peer"]!);
  const bListen = hostPort(v["b-listen"]!), bPeer = hostPort(v["b-peer"]!);
  let foreign = 0;
  let pending = 0;

  const sims = new Map<number, ReplaySim>();
  const sim = (spi: number) => {
    let s = sims.get(spi);
    if (!s) sims.set(spi, (s = new ReplaySim(opt.window)));
    return s;
  };

  type Held = { pkt: Buffer; spi: number; seq: number; left: number; timer: NodeJS.Timeout | null };

  class Direction {
    readonly stats: DirStats = { received: 0, nonEsp: 0, sendErrors: 0, spis: {} };
    readonly held: Held[] = [];
    readonly rand: () => number;
    out!: Socket;
    constructor(readonly name: "AB" | "BA", readonly dst: { host: string; port: number }, seed: number) {
      this.rand = prng(seed);
    }
    spiStats(spi: number): SpiStats {
      const k = spi.toString(16).padStart(8, "0");
      return (this.stats.spis[k] ??= {
        received: 0, dropped: 0, duplicated: 0, reordered: 0, delayed: 0, emitted: 0,
        verdicts: { OK: 0, REPLAY: 0, REPLAY_OLD: 0 }, lost: 0, top: 0,
      });
    }
    send(pkt: Buffer): void {
      this.out.send(pkt, this.dst.port, this.dst.host, (err) => {
        if (err) this.stats.sendErrors++;
      });
    }
    /** A packet leaves towards the receiver: predict its replay verdict. */
    emit(pkt: Buffer, spi: number, seq: number, tag: "normal" | "copy" | "reordered" | "delayed"): void {
      this.send(pkt);
      const st = this.spiStats(spi);
      const s = sim(spi);
      const verdict = s.accept(seq);
      st.emitted++;
      st.verdicts[verdict]++;
      st.top = s.top;
      if (tag !== "normal" || verdict !== "OK") line(this.name, "emit", hex(spi), seq, tag, verdict, s.top);
    }
    release(h: Held): void {
      const i = this.held.indexOf(h);
      if (i < 0) return;
      this.held.splice(i, 1);
      if (h.timer) clearTimeout(h.timer);
      pending--;
      this.emit(h.pkt, h.spi, h.seq, "reordered");
    }
    /** One more packet of this direction went out now: held packets whose count is up follow it. */
    overtaken(): void {
      if (this.held.length === 0) return;
      for (const h of [...this.held]) if (--h.left <= 0) this.release(h);
    }
    later(ms: number, fn: () => void): void {
      pending++;
      setTimeout(() => {
        pending--;
        fn();
      }, ms);
    }
    onMessage(msg: Buffer): void {
      this.stats.received++;
      if (msg.length < 8 || msg.readUInt32BE(0) === 0) {
        this.stats.nonEsp++;
        this.send(msg);
        return;
      }
      const spi = msg.readUInt32BE(0), seq = msg.readUInt32BE(4);
      const st = this.spiStats(spi);
      st.received++;
      const r = this.rand();
      let edge = opt.drop;
      if (r < edge) {
        st.dropped++;
        line(this.name, "drop", hex(spi), seq);
        return;
      }
      if (r < (edge += opt.dup)) {
        const d = Math.floor(this.rand() * (opt.dupDelayMaxMs + 1));
        st.duplicated++;
        line(this.name, "dup", hex(spi), seq, d);
        this.emit(msg, spi, seq, "normal");
        this.overtaken();
        const copy = Buffer.from(msg);
        this.later(d, () => this.emit(copy, spi, seq, "copy"));
        return;
      }
      if (r < (edge += opt.reorder)) {
        const k = 1 + Math.floor(this.rand() * opt.reorderMax);
        st.reordered++;
        line(this.name, "reorder", hex(spi), seq, k);
        const h: Held = { pkt: msg, spi, seq, left: k, timer: null };
        pending++;
        this.held.push(h);
        h.timer = setTimeout(() => this.release(h), opt.reorderTimeoutMs);
        return;
      }
      if (r < (edge += opt.delay)) {
        const d = opt.delayMinMs + Math.floor(this.rand() * (opt.delayMaxMs - opt.delayMinMs + 1));
        st.delayed++;
        line(this.name, "delay", hex(spi), seq, d);
        this.later(d, () => this.emit(msg, spi, seq, "delayed"));
        return;
      }
      this.emit(msg, spi, seq, "normal");
      this.overtaken();
    }
  }

  const ab = new Direction("AB", bPeer, opt.seed * 2 + 1);
  const ba = new Direction("BA", aPeer, opt.seed * 2 + 2);
  const sockA = createSocket({ type: "udp4", recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
  const sockB = createSocket({ type: "udp4", recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
  ab.out = sockB;
  ba.out = sockA;
  sockA.on("message", (msg, from) => {
    if (from.address !== aPeer.host || from.port !== aPeer.port) return void foreign++;
    ab.onMessage(msg);
  });
  sockB.on("message", (msg, from) => {
    if (from.address !== bPeer.host || from.port !== bPeer.port) return void foreign++;
    ba.onMessage(msg);
  });
  for (const s of [sockA, sockB]) s.on("error", (e) => {
    console.error(`relay: socket error: ${e.message}`);
    process.exit(1);
  });

  let bound = 0;
  const ready = () => {
    if (++bound === 2) console.log(`relay: ready ${v["a-listen"]} <-> ${v["b-listen"]} seed ${opt.seed} ${JSON.stringify(opt)}`);
  };
  sockA.bind(aListen.port, aListen.host, ready);
  sockB.bind(bListen.port, bListen.host, ready);

  const finish = () => {
    // lost: what the receiver will never accept = received from the CE − accepted (each seq at most once)
    for (const d of [ab, ba]) for (const st of Object.values(d.stats.spis)) st.lost = st.received - st.verdicts.OK;
    const summary: RelaySummary = {
      options: opt,
      seconds: (Date.now() - t0) / 1000,
      dirs: { AB: ab.stats, BA: ba.stats },
      foreign,
      pendingAtEnd: pending,
      kernelDrops: { a: udpDrops(aListen.host, aListen.port), b: udpDrops(bListen.host, bListen.port) },
    };
    writeFileSync(v.summary!, JSON.stringify(summary, null, 1) + "\n", { mode: 0o600 });
    log.end(() => process.exit(0));
  };
  process.once("SIGTERM", finish);
  process.once("SIGINT", finish);
}

function hex(spi: number): string {
  return spi.toString(16).padStart(8, "0");
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split("/").pop()!)) main();
