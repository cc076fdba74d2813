// Run in a network namespace of its own by host-packet.test.ts: a CE whose
// WAN port is 127.0.0.1:4500, and a stand-in IKE peer on 127.0.0.2:5000 that
// sends IKE-shaped datagrams behind the non-ESP marker, plus one ESP-looking
// datagram and a keepalive. The Forwarder must hand up exactly the marked
// ones (marker removed, sender address and port right), and sendHost must
// answer from 4500 behind the marker. Prints one JSON line.
import { createSocket } from "node:dgram";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { parseConfig } from "../../host/config/load.ts";
import { Forwarder } from "../../host/pipeline/forwarder.ts";
import type { HostPacket } from "../../host/pipeline/pipeline.ts";

const dir = mkdtempSync(join(tmpdir(), "wesp-host-"));
const hex = (n: number) => randomBytes(n).toString("hex");
const { config } = parseConfig(JSON.stringify({
  version: 1,
  node: { name: "ike-host", wan: [{ name: "wan", address: "127.0.0.1", port: 4500 }], tun: { name: "wesp-host" }, control: { socket: join(dir, "c.sock") }, state_dir: join(dir, "state"), workers: 1 },
  peers: [{ name: "p", address: "127.0.0.2", prefixes: ["10.9.0.0/16"], sas: [{ spi_in: 0x9001, spi_out: 0x9002, suite: "aes-128-gcm", key_in: hex(20), key_out: hex(20) }] }],
}), { baseDir: dir });

const got: HostPacket[] = [];
const fwd = await Forwarder.start(config, { log: () => {}, onHostPacket: (p) => void got.push(p) });
const peer = createSocket("udp4");
await new Promise<void>((r) => peer.bind(5000, "127.0.0.2", () => r()));
const answers: Buffer[] = [];
peer.on("message", (m) => void answers.push(m));
const marker = Buffer.alloc(4);
const ike1 = Buffer.concat([marker, Buffer.from("IKE_SA_INIT request, 28+ bytes of it........")]);
const ike2 = Buffer.concat([marker, Buffer.from("another one")]);
const esp = Buffer.concat([Buffer.from([0, 0, 0x90, 0x01]), randomBytes(40)]); // SPI 0x9001: ESP, not IKE
const keepalive = Buffer.from([0xff]);
for (const d of [ike1, esp, keepalive, ike2]) peer.send(d, 4500, "127.0.0.1");
const until = Date.now() + 5000;
while (got.length < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
if (got[0]) fwd.sendHost({ wanIndex: got[0].wanIndex, family: got[0].family, address: got[0].address, port: got[0].port, bytes: Buffer.from("IKE_SA_INIT response") });
while (answers.length < 1 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
const st = await fwd.status();
await fwd.stop();
peer.close();
console.log(JSON.stringify({
  handedUp: got.map((p) => ({ wan: p.wanIndex, family: p.family, from: `${[...p.address.subarray(0, 4)].join(".")}:${p.port}`, local: [...p.local.subarray(0, 4)].join("."), text: Buffer.from(p.bytes).toString() })),
  answers: answers.map((a) => ({ marker: a.subarray(0, 4).toString("hex"), text: a.subarray(4).toString() })),
  toHost: st.host.toHost,
  keepalives: st.global.inbound.drops.KEEPALIVE,
  espDrops: st.global.inbound.dropped - st.global.inbound.drops.KEEPALIVE,
}));
