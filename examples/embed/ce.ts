// Embedding wesp: start a CE from a config object, hear its events, add a
// peer without a restart, read the status, stop. Run as root (it makes a TUN):
//
//   node --import tsx examples/embed/ce.ts STATE_DIR
//
// test/e2e/api-example.test.ts runs it in a network namespace of its own.
import { randomBytes } from "node:crypto";
import { startCe, type SaEvent } from "wesp";

const stateDir = process.argv[2] ?? "/tmp/wesp-embed-state";
const hex = (n: number) => randomBytes(n).toString("hex"); // fresh keys each run: never reuse a static key's state

const peer = (name: string, last: number, net: number, spi: number) => ({
  name,
  address: `127.0.0.${last}`,
  prefixes: [`10.${net}.0.0/16`],
  sas: [{ spi_in: spi, spi_out: spi + 1, suite: "aes-128-gcm", key_in: hex(20), key_out: hex(20) }],
});

const base = {
  version: 1,
  node: {
    name: "embedded",
    wan: [{ name: "wan", address: "127.0.0.1", port: 4500 }],
    tun: { name: "wesp-embed", addresses: ["10.1.0.1/16"] },
    local_prefixes: ["10.1.0.0/16"],
    control: { socket: `${stateDir}/control.sock` },
    state_dir: stateDir,
    workers: 1,
  },
  peers: [peer("branch-a", 2, 2, 0x1000)],
};

const ce = await startCe(base);
const seen: SaEvent[] = [];
for (const ev of ["sa-installed", "sa-removed", "needs-rekey", "alarm"] as const) ce.on(ev, (e: SaEvent) => void seen.push(e));
console.log(`started ${ce.name} on ${ce.tun}`);

// Apply a new config: branch-a is unchanged (its SAs keep all their state), branch-b is added.
const report = await ce.apply({ ...base, peers: [...base.peers, peer("branch-b", 3, 3, 0x2000)] });
console.log(`applied: added ${report.added.join(",")} unchanged ${report.unchanged.join(",")}`);

const st = await ce.status();
console.log(`peers: ${st.peers.map((p) => `${p.name}(out spi 0x${p.outbound?.spi.toString(16)})`).join(" ")}`);

await ce.stop();
console.log(`events: ${seen.map((e) => ("peer" in e ? `${e.event}:${e.peer}` : e.event)).join(" ")}`);
