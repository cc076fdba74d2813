// wesp's side of `wesp bench ike`: one process, IkeEndpoint + IkeTransport on
// real UDP sockets, as responder or initiator of many tunnels.
//   node --import tsx bench/ike/wesp_peer.ts <options.json>
// Options: { role, local, remote, psk, ike, esp, tunnels, window }.
// The responder takes every address and identity that knows the PSK, with the
// cookie and half-open bounds out of the way (a benchmark, not an attack).
// The initiator waits for SIGUSR2 (SIGUSR1 is node's inspector), then keeps `window` IKE_SA_INIT +
// IKE_AUTH exchanges in flight, each IKE SA with its own identity
// (t<i>.bench, so INITIAL_CONTACT retires nothing, RFC 7296 §2.4) and one
// CHILD_SA, and prints {type: "done", established, failed, ms} when all are up.
// Both print {type: "ready"} once bound. UDP encapsulation is forced on both,
// as charon's kernel-libipsec needs it (IKE_AUTH on port 4500, §2.23).
import { readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { identity, ikeSaConfig } from "../../host/ike/config.ts";
import { IkeEndpoint } from "../../host/ike/endpoint.ts";
import { IkeTransport } from "../../host/ike/transport.ts";
import type { IkeEvent } from "../../host/ike/types.ts";

export interface WespPeerOptions {
  role: "initiator" | "responder";
  local: string;
  remote: string;
  psk: string;
  ike: string;
  esp: string;
  tunnels: number;
  window: number;
}

const o = JSON.parse(readFileSync(process.argv[2], "utf8")) as WespPeerOptions;
const initiator = o.role === "initiator";
const base = {
  ...ikeSaConfig({
    name: "bench", local: o.local, remote: o.remote, psk: o.psk, ike: [o.ike], esp: [o.esp], forceEncap: true,
    localTs: [initiator ? "10.1.0.0/24" : "10.2.0.0/24"], remoteTs: [initiator ? "10.2.0.0/24" : "10.1.0.0/24"],
  }),
  // charon's default retransmission (4 s, doubling) would hide nothing here: no loss is expected
  retransmit: { baseMs: 4000, tries: 5 },
};
const responderCfg = { ...base, remoteId: undefined };
const print = (e: object) => process.stdout.write(JSON.stringify(e) + "\n");

let established = 0;
let failed = 0;
let started = 0;
let t0 = 0;
const onEvent = (e: IkeEvent) => {
  if (!initiator) return;
  if (e.type === "childSaEstablished") established++;
  else if (e.type === "failed") failed++;
  else return;
  if (established + failed === o.tunnels) print({ type: "done", established, failed, ms: performance.now() - t0 });
  else startNext();
};

const endpoint = new IkeEndpoint(() => (initiator ? undefined : responderCfg), {
  random: (n) => new Uint8Array(randomBytes(n)),
  now: Date.now,
  allocateSpi: () => 0x100 + (randomBytes(4).readUInt32BE() % (0xffffffff - 0x100)),
}, { cookieThreshold: Number.MAX_SAFE_INTEGER, halfOpenPerAddress: Number.MAX_SAFE_INTEGER, halfOpenMax: Number.MAX_SAFE_INTEGER });
const transport = new IkeTransport(endpoint, { address: o.local, ports: base.ports }, onEvent);

function startNext(): void {
  if (started >= o.tunnels) return;
  const i = started++;
  const cfg = { ...base, name: `t${i}`, localId: identity(`t${i}.bench`) };
  transport.apply(endpoint.initiate(cfg, { localAddress: o.local, localPort: base.ports.ike, remoteAddress: o.remote, remotePort: base.ports.ike }).step);
}

await transport.start();
print({ type: "ready" });
process.on("SIGUSR2", () => {
  if (!initiator || t0) return;
  t0 = performance.now();
  for (let i = 0; i < Math.min(o.window, o.tunnels); i++) startNext();
});
process.on("SIGTERM", () => {
  transport.close();
  process.exit(0);
});
