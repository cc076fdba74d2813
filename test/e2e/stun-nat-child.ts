// Run inside the CE namespace by stun-nat.test.ts: RFC 5780 NAT behaviour
// discovery from the WAN port WAN_ADDRESS:4500, then one STUN Binding
// transaction from it to the controller, first
// over a plain UDP socket bound to that port (no data plane running), then
// through a running data plane's NAT-T socket on the same port (the core
// hands the response up as STUN, assembly/udp_encap.ts; the request leaves
// without the non-ESP marker). Prints one JSON line.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { parseConfig } from "../../host/config/load.ts";
import { Forwarder } from "../../host/pipeline/forwarder.ts";
import { discover } from "../../host/net/stun_client.ts";
import { learnWanPorts } from "../../host/net/stun_wan.ts";
import { classifyNat } from "../../host/net/stun_nat_type.ts";

const [wanAddress, serverHost, serverPort, peerAddress] = process.argv.slice(2);
const server = { host: serverHost, port: Number(serverPort) };
const behaviour = await classifyNat(wanAddress, 4500, server, { timeoutMs: 20_000 });
const viaSocket = await discover(wanAddress, 4500, server, { timeoutMs: 20_000 });

const dir = mkdtempSync(join(tmpdir(), "wsg-stun-"));
const hex = (n: number) => randomBytes(n).toString("hex");
const { config } = parseConfig(JSON.stringify({
  version: 1,
  node: { name: "stun-ce", wan: [{ name: "wan", address: wanAddress, port: 4500 }], tun: { name: "wsg-stun" }, control: { socket: join(dir, "c.sock") }, state_dir: join(dir, "state"), workers: 1 },
  peers: [{ name: "p", address: peerAddress, prefixes: ["10.99.0.0/16"], sas: [{ spi_in: 0x9001, spi_out: 0x9002, suite: "aes-128-gcm", key_in: hex(20), key_out: hex(20) }] }],
}), { baseDir: dir });
const ike: number[] = [];
const fwd = await Forwarder.start(config, { log: () => {}, onHostPacket: (p) => void ike.push(p.bytes.length) });
let viaDataPlane;
try {
  viaDataPlane = await learnWanPorts(fwd, config.node.wan, server, { timeoutMs: 20_000 });
} finally {
  const st = await fwd.status();
  await fwd.stop();
  console.log(JSON.stringify({ behaviour, viaSocket, viaDataPlane, toHost: st.host.toHost, ikeHandedUp: ike.length }));
}
