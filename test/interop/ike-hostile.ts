// The attacker of test/interop/ike-hostile.test.ts, a process in its own namespace:
//   node --import tsx test/interop/ike-hostile.ts <options.json>
// First it captures real messages by talking to the responder as a peer would
// (from `corpusAddr`): one IKE SA established (E), one left half-open with its
// IKE_AUTH request held back (H), and a CREATE_CHILD_SA request sealed for E but
// never sent. Then, from `attackAddr`, it sends `count` hostile datagrams to the
// IKE port and, behind the non-ESP marker (RFC 3948 §2.2), to the NAT-T port:
// garbage, lying headers, crafted payload chains, mutations (../fuzz/ike-mutate.ts)
// of every captured message — so bad ICVs against H and E (§3.14), encrypted
// fragments too (RFC 7383 §2.5) — and some non-IKE datagrams on the NAT-T port.
//
// Pacing instead of loss: every `batch` datagrams it waits until the responder's
// sockets have nothing queued (rx_queue of /proc/<pid>/net/udp, proc(5), read
// through the responder's pid so in its namespace); at the end it reports the
// sockets' drop counters, so the test can account for every datagram.
// Prints one JSON line: {type: "sent", total, byKind, toNatt, drops}.
import { readFileSync } from "node:fs";
import { createSocket } from "node:dgram";
import { randomBytes } from "node:crypto";
import { ikeSaConfig, type IkePeerText } from "../../host/ike/config.ts";
import { IkeEndpoint } from "../../host/ike/endpoint.ts";
import { concatBytes as concat } from "../../host/ike/result.ts";
import { IkeTransport } from "../../host/ike/transport.ts";
import { waitFor } from "../../host/util/proc.ts";
import type { IkeSa } from "../../host/ike/ike_sa.ts";
import type { IkeEvent } from "../../host/ike/types.ts";
import { Rng } from "../helpers/gen.ts";
import { mutate, payloadOffsets } from "../fuzz/ike-mutate.ts";

interface Options {
  responder: string;
  respPid: number;
  corpusAddr: string;
  attackAddr: string;
  peer: Omit<IkePeerText, "local" | "remote" | "name">;
  ports: { ike: number; natt: number };
  count: number;
  seed: number;
  batch?: number;
}
const o = JSON.parse(readFileSync(process.argv[2], "utf8")) as Options;
const r = new Rng(o.seed);
const IKE_AUTH = 35;

// --- capture --------------------------------------------------------------
const cfg = (id: string) => ({ ...ikeSaConfig({ ...o.peer, name: id, local: o.corpusAddr, remote: o.responder, localId: `${id}.hostile.test`, ports: o.ports }), retransmit: { baseMs: 60_000, tries: 1 } });
const endpoint = new IkeEndpoint(() => undefined, {
  random: (n) => new Uint8Array(randomBytes(n)),
  now: Date.now,
  allocateSpi: () => 0x100 + (randomBytes(4).readUInt32BE() % 0xfffff000),
});
const events: IkeEvent[] = [];
const transport = new IkeTransport(endpoint, { address: o.corpusAddr, ports: o.ports }, (e) => events.push(e));
const sent: Uint8Array[] = [];
const heard: Uint8Array[] = [];
let holdAuth = false;
{
  const apply = transport.apply.bind(transport);
  transport.apply = (step) => {
    for (const x of step.send) sent.push(x.bytes);
    if (holdAuth) step = { send: step.send.filter((x) => x.bytes[18] !== IKE_AUTH), events: step.events };
    apply(step);
  };
  const receive = endpoint.receive.bind(endpoint);
  endpoint.receive = (bytes, path) => {
    heard.push(bytes.slice());
    return receive(bytes, path);
  };
}
await transport.start();
const path = { localAddress: o.corpusAddr, localPort: o.ports.ike, remoteAddress: o.responder, remotePort: o.ports.ike };
const e = endpoint.initiate(cfg("e"), path);
transport.apply(e.step);
await waitFor(() => events.some((x) => x.type === "childSaEstablished") || events.find((x) => x.type === "failed"), "E established", 20_000, 10);
if (e.sa.state !== "established") throw new Error(`E: ${JSON.stringify(events)}`);
holdAuth = true;
const h = endpoint.initiate(cfg("h"), path);
transport.apply(h.step);
await waitFor(() => h.sa.state === "auth-sent", "H half-open", 20_000, 10);
const heldAuth = sent[sent.length - 1];
if (heldAuth[18] !== IKE_AUTH) throw new Error("H's IKE_AUTH request not captured");
// sealed for E with its next message ID, never sent: every mutation of it is a bad ICV for an established SA
const childReq = (e.sa as IkeSa).createChild().send[0].bytes;
const corpus = { init: sent[0], authE: sent[1], heldAuth, childReq, responses: heard.slice() };
transport.close();

// --- crafted messages -------------------------------------------------------
/** A header (RFC 7296 §3.1) with `spiI`, `spiR`, first payload, exchange, flags, message ID and Length. */
function header(spiI: Uint8Array, spiR: Uint8Array, next: number, exchange: number, flags: number, id: number, length: number): Uint8Array {
  const b = new Uint8Array(28);
  b.set(spiI, 0);
  b.set(spiR, 8);
  b[16] = next;
  b[17] = 0x20;
  b[18] = exchange;
  b[19] = flags;
  const v = new DataView(b.buffer);
  v.setUint32(20, id);
  v.setUint32(24, length);
  return b;
}

function withLength(b: Uint8Array): Uint8Array {
  new DataView(b.buffer, b.byteOffset).setUint32(24, b.length);
  return b;
}

const spiOf = (m: Uint8Array, at: number) => m.slice(at, at + 8);

/** Lying headers: versions, exchanges, flags, Lengths, SPIs of nobody or of E/H; never the message as it was. */
function badHeader(): Uint8Array {
  for (;;) {
    const src = r.pick([corpus.init, corpus.heldAuth, corpus.childReq]);
    const b = lyingHeader(src);
    if (b.length !== src.length || b.some((x, i) => x !== src[i])) return b;
  }
}

function lyingHeader(src: Uint8Array): Uint8Array {
  const b = src.slice();
  switch (r.int(0, 5)) {
    case 0: b[17] = r.pick([0x10, 0x21, 0x30, 0xff, 0]); break; // §3.1: major version other than 2
    case 1: b[18] = r.pick([0, 33, 39, 40, 255, r.int(0, 255)]); break;
    case 2: b[19] = r.u32() & 0xff; break;
    case 3: new DataView(b.buffer).setUint32(24, r.pick([0, 27, 28, b.length - 1, b.length + 1, 0xffffffff, r.u32()])); break;
    case 4: b.set(r.bytes(8), r.bool() ? 0 : 8); break;
    case 5: new DataView(b.buffer).setUint32(20, r.pick([1, 2, 0x7fffffff, 0xffffffff, r.u32()])); break;
  }
  return b.subarray(0, r.bool(0.1) ? r.int(0, 27) : b.length);
}

/** Payload chains: very long ones, unknown critical payloads (§2.5), truncation, SKF fragments (RFC 7383 §2.5). */
function badChain(): Uint8Array {
  const [spiI, spiR] = r.bool() ? [spiOf(corpus.heldAuth, 0), spiOf(corpus.heldAuth, 8)] : [spiOf(corpus.childReq, 0), spiOf(corpus.childReq, 8)];
  const kind = r.int(0, 3);
  if (kind === 0) {
    // a chain of many tiny payloads, each naming the next as the same type, round and round
    const n = r.int(100, 2000);
    const t = r.pick([41, 43, 48, 200]);
    const body = new Uint8Array(n * 4);
    for (let i = 0; i < n; i++) {
      body[i * 4] = i === n - 1 ? r.pick([0, t]) : t;
      body[i * 4 + 3] = 4;
    }
    const zero = new Uint8Array(8);
    return withLength(concat(header(r.bytes(8), zero, t, 34, 0x08, 0, 0), body));
  }
  if (kind === 1) {
    // an unknown payload type with the critical bit (§2.5), first in a chain or after a valid one
    const body = r.bytes(r.int(0, 64));
    const p = concat(Uint8Array.of(0, 0x80, 0, 4 + body.length), body);
    return withLength(concat(header(spiI, spiR, r.int(54, 127), r.pick([34, 35, 36, 37]), 0x08, r.int(0, 2), 0), p));
  }
  if (kind === 2) {
    // the last payload claims more bytes than the message has
    const b = r.pick([corpus.init, corpus.heldAuth, corpus.childReq]).slice();
    const offs = payloadOffsets(b);
    const at = offs[offs.length - 1];
    const len = b.length - at + r.int(1, 600);
    b[at + 2] = len >> 8;
    b[at + 3] = len;
    return r.bool() ? b : b.subarray(0, r.int(at + 1, b.length));
  }
  // SKF (RFC 7383 §2.5): Fragment Number and Total Fragments, then IV ‖ ciphertext ‖ ICV that cannot verify
  const frag = new Uint8Array(4);
  new DataView(frag.buffer).setUint16(0, r.pick([0, 1, 2, 0xffff, r.int(0, 0xffff)]));
  new DataView(frag.buffer).setUint16(2, r.pick([0, 1, 2, 0xffff, r.int(0, 0xffff)]));
  const data = r.bytes(r.int(0, 300));
  const p = concat(Uint8Array.of(r.pick([0, 35, 36]), 0, 0, 0), frag, data);
  p[2] = p.length >> 8;
  p[3] = p.length;
  return withLength(concat(header(spiI, spiR, 53, r.pick([35, 36, 37]), 0x08, r.int(1, 2), 0), p));
}

function mutated(src: Uint8Array): Uint8Array {
  for (;;) {
    const m = mutate(r, src, payloadOffsets(src), r.pick([corpus.init, corpus.heldAuth, corpus.childReq]));
    if (m.length !== src.length || m.some((x, i) => x !== src[i])) return m;
  }
}

const KINDS = ["garbage", "header", "chain", "init", "auth-half-open", "auth-established", "child-established", "response", "natt-other"] as const;
function next(kind: (typeof KINDS)[number]): Uint8Array {
  switch (kind) {
    case "garbage": return r.bytes(r.int(0, 600));
    case "header": return badHeader();
    case "chain": return badChain();
    case "init": return mutated(corpus.init);
    case "auth-half-open": return mutated(corpus.heldAuth);
    case "auth-established": return mutated(corpus.authE);
    case "child-established": return mutated(corpus.childReq);
    case "response": return mutated(r.pick(corpus.responses));
    case "natt-other": return r.pick([Uint8Array.of(0xff), r.bytes(r.int(0, 3)), concat(Uint8Array.of(0, 0, 1, 0), r.bytes(r.int(0, 100)))]);
  }
}

// --- pacing -----------------------------------------------------------------
/** The responder's sockets on our two ports: queued bytes and drops, from /proc/<pid>/net/udp. */
function sockets(): { queued: number; drops: Record<string, number> } {
  let queued = 0;
  const drops: Record<string, number> = {};
  for (const line of readFileSync(`/proc/${o.respPid}/net/udp`, "utf8").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 13) continue;
    const port = parseInt(f[1].split(":")[1], 16);
    if (port !== o.ports.ike && port !== o.ports.natt) continue;
    queued += parseInt(f[4].split(":")[1], 16);
    drops[port] = (drops[port] ?? 0) + Number(f[f.length - 1]);
  }
  return { queued, drops };
}

const sock = createSocket("udp4");
await new Promise<void>((res) => sock.bind(0, o.attackAddr, () => res()));
const send = (b: Uint8Array, port: number) => new Promise<void>((res, rej) => sock.send(b, port, o.responder, (err) => (err ? rej(err) : res())));
const byKind: Record<string, number> = {};
let toNatt = 0;
const batch = o.batch ?? 32;
for (let i = 0; i < o.count; i++) {
  const kind = r.pick(KINDS);
  const m = next(kind);
  byKind[kind] = (byKind[kind] ?? 0) + 1;
  if (kind === "natt-other") {
    await send(m, o.ports.natt);
    toNatt++;
  } else if (r.bool(0.3)) {
    await send(concat(new Uint8Array(4), m), o.ports.natt); // non-ESP marker, RFC 3948 §2.2
    toNatt++;
  } else {
    await send(m, o.ports.ike);
  }
  if (i % batch === batch - 1) await waitFor(() => sockets().queued === 0, "the responder to drain its sockets", 30_000, 1);
}
await waitFor(() => sockets().queued === 0, "the responder to drain its sockets", 30_000, 5);
sock.close();
process.stdout.write(JSON.stringify({ type: "sent", total: o.count, byKind, toNatt, drops: sockets().drops }) + "\n");
