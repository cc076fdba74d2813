// Two in-memory wesp IKE endpoints over a fake network that can drop, alter and
// NAT datagrams, with a clock the test moves: the harness of the exchange tests.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { IkeEndpoint } from "../../host/ike/endpoint.ts";
import { ikeSaConfig } from "../../host/ike/config.ts";
import { IkeTransport } from "../../host/ike/transport.ts";
import type { ChildSaEstablished, IkeEvent, IkeSaConfig, Outgoing, Path, Step } from "../../host/ike/types.ts";

export const A = "10.99.0.1";
export const B = "10.99.0.2";
export function config(name: string, local: string, remote: string, o: Partial<IkeSaConfig> & { ike?: string[]; esp?: string[]; lts?: string[]; rts?: string[] } = {}): IkeSaConfig {
  const { ike, esp, lts, rts, ...rest } = o;
  return {
    ...ikeSaConfig({
      name, local, remote, psk: "wesp-ike-unit-psk",
      ike: ike ?? ["aes128gcm16-prfsha256-ecp256"],
      esp: esp ?? ["aes128gcm16"],
      localTs: lts ?? (local === A ? ["192.168.1.0/24"] : ["192.168.2.0/24"]),
      remoteTs: rts ?? (local === A ? ["192.168.2.0/24"] : ["192.168.1.0/24"]),
      lifetimeSeconds: 3600,
      retransmit: { baseMs: 1000, tries: 3 },
    }),
    ...rest,
  };
}

/** Two endpoints, a clock, and a network that can lose, alter or NAT datagrams. */
export function lab(cfgA: IkeSaConfig, cfgB: IkeSaConfig, opts: { cookieThreshold?: number } = {}) {
  let now = 0;
  let spi = 0x1000;
  const deps = () => ({ random: (n: number) => new Uint8Array(randomBytes(n)), now: () => now, allocateSpi: () => ++spi });
  const a = new IkeEndpoint((r) => (r === B ? cfgA : undefined), deps(), opts);
  const b = new IkeEndpoint((r) => (r === A ? cfgB : undefined), deps(), opts);
  const events = { a: [] as IkeEvent[], b: [] as IkeEvent[] };
  const wire: { from: "a" | "b"; out: Outgoing }[] = [];
  const pending: { to: "a" | "b"; bytes: Uint8Array; path: Path }[] = [];
  /** How the network treats a datagram: undefined drops it; a path rewrite is a NAT. */
  let net = (d: { from: "a" | "b"; bytes: Uint8Array; path: Path }): { bytes: Uint8Array; path: Path } | undefined => d;
  const take = (from: "a" | "b", s: Step) => {
    events[from].push(...s.events);
    for (const out of s.send) {
      wire.push({ from, out });
      if (out.keepalive) continue; // the transport drops these before IKE (RFC 3948 §2.3)
      const to = from === "a" ? "b" : "a";
      // the receiver sees the path mirrored
      const seen = { localAddress: out.path.remoteAddress, localPort: out.path.remotePort, remoteAddress: out.path.localAddress, remotePort: out.path.localPort };
      const d = net({ from, bytes: out.bytes, path: seen });
      if (d) pending.push({ to, ...d });
    }
  };
  const run = () => {
    for (let i = 0; pending.length && i < 100; i++) {
      const d = pending.shift()!;
      take(d.to, (d.to === "a" ? a : b).receive(d.bytes, d.path));
    }
  };
  const start = () => {
    const r = a.initiate(cfgA, { localAddress: A, localPort: 500, remoteAddress: B, remotePort: 500 });
    take("a", r.step);
    run();
    return r.sa;
  };
  const tick = (ms: number) => {
    now += ms;
    take("a", a.tick(now));
    take("b", b.tick(now));
    run();
  };
  /** Puts what an SA method returned (rekeyChild, close, …) on the network and runs it to quiet. */
  const inject = (from: "a" | "b", s: Step) => {
    take(from, s);
    run();
  };
  /** Puts a step on the network without running it (to cross requests in flight). */
  const post = (from: "a" | "b", s: Step) => take(from, s);
  return { a, b, events, wire, start, run, tick, inject, post, setNet: (f: typeof net) => (net = f) };
}

export const child = (es: IkeEvent[]) => es.filter((e): e is ChildSaEstablished => e.type === "childSaEstablished");
export const kinds = (es: IkeEvent[]) => es.map((e) => e.type);
export const hex = (b?: Uint8Array) => (b ? Buffer.from(b).toString("hex") : "-");

export function assertMirrored(x: ChildSaEstablished, y: ChildSaEstablished) {
  assert.equal(x.spiIn, y.spiOut);
  assert.equal(x.spiOut, y.spiIn);
  assert.equal(hex(x.keyIn), hex(y.keyOut));
  assert.equal(hex(x.keyOut), hex(y.keyIn));
  assert.equal(hex(x.authKeyIn), hex(y.authKeyOut));
  assert.equal(x.suite, y.suite);
  assert.notEqual(hex(x.keyIn), hex(x.keyOut));
}

/**
 * Two IKE transports on loopback (A 127.0.0.1 initiates, B 127.0.0.2 responds),
 * forced NAT-T so IKE_AUTH runs on the NAT-T port; `portBase` keeps concurrent
 * test files apart. Call `close()` when done.
 */
export async function loopbackPair(o: { ike: string; esp: string; portBase: number; cookieThreshold?: number }) {
  const ports = { ike: o.portBase + (process.pid % 10000), natt: o.portBase + (process.pid % 10000) + 1 };
  const [LA, LB] = ["127.0.0.1", "127.0.0.2"];
  const text = (local: string, remote: string, lts: string, rts: string) =>
    ikeSaConfig({ name: `to-${remote}`, local, remote, psk: "loopback-psk", ike: [o.ike], esp: [o.esp], localTs: [lts], remoteTs: [rts], ports, forceEncap: true });
  const cfgA = text(LA, LB, "10.1.0.0/16", "10.2.0.0/16");
  const cfgB = text(LB, LA, "10.2.0.0/16", "10.1.0.0/16");
  let spi = 0x2000;
  const deps = () => ({ random: (n: number) => new Uint8Array(randomBytes(n)), now: Date.now, allocateSpi: () => ++spi });
  const events: { a: IkeEvent[]; b: IkeEvent[] } = { a: [], b: [] };
  const epA = new IkeEndpoint(() => undefined, deps());
  const epB = new IkeEndpoint((r) => (r === LA ? cfgB : undefined), deps(), { cookieThreshold: o.cookieThreshold });
  const ta = new IkeTransport(epA, { address: LA, ports }, (e) => events.a.push(e));
  const tb = new IkeTransport(epB, { address: LB, ports }, (e) => events.b.push(e));
  await ta.start();
  await tb.start();
  return {
    A: LA, B: LB, ports, epA, epB, ta, tb, events,
    /** A starts an IKE SA towards B. */
    initiate: () => ta.apply(epA.initiate(cfgA, { localAddress: LA, localPort: ports.ike, remoteAddress: LB, remotePort: ports.ike }).step),
    close: () => {
      ta.close();
      tb.close();
    },
  };
}
