// The IKE_SA_INIT flood of test/interop/ike-hostile.test.ts, a process in the
// attacker's namespace:  node --import tsx test/interop/ike-init-flood.ts <options.json>
// From each of `addresses`, `perAddress` IKE_SA_INIT requests, each with a fresh
// SPIi, and — the strongest attacker that can receive at its addresses — every
// N(COOKIE) answered at once by the same request with the cookie first (RFC 7296
// §2.6), so only the responder's own bounds hold it. Paced like ike-hostile.ts:
// every `batch` requests it waits until the responder's sockets are drained.
// Prints one JSON line: {requests, withCookie, answered, drops}.
import { readFileSync } from "node:fs";
import { createSocket, type Socket } from "node:dgram";
import { randomBytes } from "node:crypto";
import { ikeSaConfig, type IkePeerText } from "../../host/ike/config.ts";
import { Notify } from "../../host/ike/constants.ts";
import { IkeSa } from "../../host/ike/ike_sa.ts";
import { decodeMessage, encodeMessage, type Message } from "../../host/ike/message.ts";
import { waitFor } from "../../host/util/proc.ts";

interface Options {
  responder: string;
  respPid: number;
  addresses: string[];
  perAddress: number;
  ports: { ike: number; natt: number };
  peer: IkePeerText;
  batch?: number;
}
const o = JSON.parse(readFileSync(process.argv[2], "utf8")) as Options;

const cfg = ikeSaConfig(o.peer);
const deps = { random: (n: number) => new Uint8Array(randomBytes(n)), now: Date.now, allocateSpi: () => 0x1000 };
const path = { localAddress: o.peer.local, localPort: o.ports.ike, remoteAddress: o.responder, remotePort: o.ports.ike };
const base = decodeMessage(IkeSa.initiate(cfg, path, deps).step.send[0].bytes);
if (!base.ok) throw new Error("own request does not decode");
const request = (spiI: Uint8Array, cookie?: Uint8Array): Uint8Array => {
  const m: Message = { header: { ...base.value.header, spiI }, payloads: base.value.payloads };
  if (cookie) m.payloads = [{ kind: "notify", protocol: 0, spi: new Uint8Array(0), notifyType: Notify.COOKIE, data: cookie }, ...m.payloads];
  return encodeMessage(m);
};

/** Queued bytes and drops of the responder's IKE socket (/proc/<pid>/net/udp, proc(5)). */
function socket(): { queued: number; drops: number } {
  let queued = 0;
  let drops = 0;
  for (const line of readFileSync(`/proc/${o.respPid}/net/udp`, "utf8").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 13 || parseInt(f[1].split(":")[1], 16) !== o.ports.ike) continue;
    queued += parseInt(f[4].split(":")[1], 16);
    drops += Number(f[f.length - 1]);
  }
  return { queued, drops };
}

let withCookie = 0;
let answered = 0;
let lastHeard = Date.now();
const sockets: Socket[] = [];
for (const a of o.addresses) {
  const s = createSocket("udp4");
  s.on("message", (msg) => {
    lastHeard = Date.now();
    const d = decodeMessage(new Uint8Array(msg));
    const first = d.ok ? d.value.payloads[0] : undefined;
    if (d.ok && first?.kind === "notify" && first.notifyType === Notify.COOKIE) {
      withCookie++;
      s.send(request(d.value.header.spiI, first.data), o.ports.ike, o.responder);
    } else {
      answered++;
    }
  });
  await new Promise<void>((res) => s.bind(0, a, () => res()));
  sockets.push(s);
}

const batch = o.batch ?? 32;
let requests = 0;
for (let i = 0; i < o.perAddress; i++) {
  for (const s of sockets) {
    await new Promise<void>((res, rej) => s.send(request(new Uint8Array(randomBytes(8))), o.ports.ike, o.responder, (e) => (e ? rej(e) : res())));
    if (++requests % batch === 0) await waitFor(() => socket().queued === 0, "the responder to drain its socket", 30_000, 1);
  }
}
// the last cookie round trips: quiet for half a second
await waitFor(() => socket().queued === 0 && Date.now() - lastHeard > 500, "the flood to settle", 30_000, 20);
for (const s of sockets) s.close();
process.stdout.write(JSON.stringify({ requests, withCookie, answered, drops: socket().drops }) + "\n");
