// wesp's IKE as a process inside a lab namespace, for the interop tests:
//   node --import tsx test/interop/ike-peer.ts <options.json>
// Options: { peer: IkePeerText (host/ike/config.ts), role: "initiator" | "responder",
// transcript?: boolean, cookieThreshold?: number, halfOpenPerAddress?: number, halfOpenMax?: number,
// halfOpenSeconds?: number, anyRemote?: boolean, quiet?: boolean }. Prints one JSON line per event on stdout (byte strings
// as hex), "ready" once both sockets are bound; with `transcript`, also every IKE
// datagram in and out ({type: "datagram", dir, bytes}, non-ESP marker removed).
// `anyRemote`: a responder that takes any address as the peer, with any identity
// that knows the PSK (for floods from many addresses). `quiet`: no per-event lines.
// Every datagram handed to the endpoint is put under exactly one reason in
// `perDatagram`: the endpoint counter it raised, else what came of it.
// Lines on stdin are commands for every established IKE SA: "rekey" rekeys its
// first CHILD_SA, "rekey-ike" the IKE SA itself; "hold" keeps outgoing datagrams
// back until "release" sends them; "stats" prints counters, SA counts and memory;
// after "rekey" and "rekey-ike" it prints {type: "done", cmd} once the requests are made.
// Ends on SIGTERM, printing the same as "stats" ({type: "counters"}).
import { readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { ikeSaConfig, type IkePeerText } from "../../host/ike/config.ts";
import { IkeEndpoint } from "../../host/ike/endpoint.ts";
import { IkeTransport } from "../../host/ike/transport.ts";
import { tsText } from "../../host/ike/ts.ts";
import type { IkeEvent, Outgoing } from "../../host/ike/types.ts";

const opts = JSON.parse(readFileSync(process.argv[2], "utf8")) as {
  peer: IkePeerText; role: "initiator" | "responder"; transcript?: boolean; cookieThreshold?: number;
  halfOpenPerAddress?: number; halfOpenMax?: number; halfOpenSeconds?: number; anyRemote?: boolean; quiet?: boolean;
};
const cfg = { ...ikeSaConfig(opts.peer), halfOpenSeconds: opts.halfOpenSeconds };
const anyCfg = { ...cfg, remoteId: undefined };
const ports = cfg.ports;

const print = (e: object) =>
  (opts.quiet && !("type" in e && ["ready", "counters", "stats", "ikeSaEstablished", "childSaEstablished", "released"].includes(String(e.type)))) ||
  process.stdout.write(
    JSON.stringify(e, (k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString("hex") : (k === "tsLocal" || k === "tsRemote") ? v.map(tsText) : v)) + "\n",
  );

const endpoint = new IkeEndpoint((r) => (opts.anyRemote ? anyCfg : r === opts.peer.remote ? cfg : undefined), {
  random: (n) => new Uint8Array(randomBytes(n)),
  now: Date.now,
  // ≥ 256 (RFC 4303 §2.1); random so that runs differ
  allocateSpi: () => 0x100 + (randomBytes(4).readUInt32BE() % (0xffffffff - 0x100)),
}, { cookieThreshold: opts.cookieThreshold, halfOpenPerAddress: opts.halfOpenPerAddress, halfOpenMax: opts.halfOpenMax });
const transport = new IkeTransport(endpoint, { address: opts.peer.local, ports }, (e: IkeEvent) => print(e));
if (opts.transcript) {
  const receive = endpoint.receive.bind(endpoint);
  endpoint.receive = (bytes, path) => {
    print({ type: "datagram", dir: "in", bytes });
    return receive(bytes, path);
  };
  const apply = transport.apply.bind(transport);
  transport.apply = (step) => {
    for (const o of step.send) print({ type: "datagram", dir: "out", bytes: o.bytes });
    apply(step);
  };
}
// one reason per datagram: the first endpoint counter it raised, else its outcome
const perDatagram = new Map<string, number>();
{
  const receive = endpoint.receive.bind(endpoint);
  endpoint.receive = (bytes, path) => {
    const before = new Map(endpoint.counters);
    const step = receive(bytes, path);
    const raised = [...endpoint.counters].find(([k, v]) => v !== before.get(k))?.[0];
    const failed = step.events.find((e) => e.type === "failed");
    const why = raised ?? (failed?.type === "failed" ? `failed:${failed.reason}` : step.events.some((e) => e.type === "ikeSaEstablished") ? "established" : step.send.length ? "answered" : "no-effect");
    perDatagram.set(why, (perDatagram.get(why) ?? 0) + 1);
    return step;
  };
}
const stats = (type: string) => ({
  type, endpoint: Object.fromEntries(endpoint.counters), transport: Object.fromEntries(transport.counters), perDatagram: Object.fromEntries(perDatagram),
  sas: endpoint.sas.size, halfOpen: endpoint.halfOpenCount, rss: process.memoryUsage().rss, heapUsed: process.memoryUsage().heapUsed,
  maxRssKiB: process.resourceUsage().maxRSS,
});
// "hold" keeps every outgoing datagram back until "release": how the tests make two requests cross
let held: Outgoing[] | undefined;
{
  const apply = transport.apply.bind(transport);
  transport.apply = (step) => {
    if (held) {
      held.push(...step.send);
      step = { send: [], events: step.events };
    }
    apply(step);
  };
}
await transport.start();
print({ type: "ready" });
if (opts.role === "initiator") {
  transport.apply(endpoint.initiate(cfg, { localAddress: opts.peer.local, localPort: ports.ike, remoteAddress: opts.peer.remote, remotePort: ports.ike }).step);
}
let input = "";
process.stdin.on("data", (d) => {
  input += d;
  for (let nl = input.indexOf("\n"); nl >= 0; nl = input.indexOf("\n")) {
    const cmd = input.slice(0, nl).trim();
    input = input.slice(nl + 1);
    if (cmd === "hold") {
      held ??= [];
      continue;
    }
    if (cmd === "stats") {
      print(stats("stats"));
      continue;
    }
    if (cmd === "release") {
      const out = held ?? [];
      held = undefined;
      transport.apply({ send: out, events: [] });
      print({ type: "released", datagrams: out.length });
      continue;
    }
    for (const sa of [...endpoint.sas.values()].filter((s) => s.state === "established")) {
      if (cmd === "rekey" && sa.childSpis.length) transport.apply(sa.rekeyChild(sa.childSpis[0]));
      else if (cmd === "rekey-ike") transport.apply(sa.rekeyIke());
      else print({ type: "bad-command", cmd });
    }
    // a test that must order this command against the network (ike-charon's crossing rekeys) waits for it
    print({ type: "done", cmd });
  }
});
process.on("SIGTERM", () => {
  print(stats("counters"));
  transport.close();
  process.exit(0);
});
