// The three CE configs of the demo (docs/config.md), with fresh keys.
//
// Every SA direction gets its own random KEYMAT (key ‖ 4-byte salt for the
// AEADs, RFC 4106 §8.1 / RFC 7634 §2), written to a key file of mode 0600 in
// the lab directory, which is removed at teardown. The configs refer to the
// key files, so the YAML itself holds no key material.
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ESP_PORT, KEEPALIVE_S, PAIRS, SITES, type DemoSuite, type Site, type SiteId } from "./plan.ts";

/** Bytes of KEYMAT per suite: cipher key + 4-byte salt. */
const KEYMAT: Record<DemoSuite, number> = {
  "aes-128-gcm": 20,
  "aes-256-gcm": 36,
  "chacha20-poly1305": 36,
};

/** One SA direction, as the demo's checks need it. */
export interface DemoSa {
  spi: number;
  from: SiteId;
  to: SiteId;
  suite: DemoSuite;
  /** KEYMAT: key ‖ salt. */
  keymat: Uint8Array;
}

export interface DemoConfigs {
  /** Config file per site. */
  files: Record<SiteId, string>;
  /** Control socket per site (`wesp status` finds it through the config too). */
  sockets: Record<SiteId, string>;
  sas: DemoSa[];
}

const hex8 = (n: number) => "0x" + n.toString(16).padStart(8, "0");

/** Writes configs and key files under `dir`; returns where they are and the SAs. */
export function writeConfigs(dir: string): DemoConfigs {
  const keyDir = join(dir, "keys");
  mkdirSync(keyDir, { mode: 0o700, recursive: true });
  const sas: DemoSa[] = [];
  for (const p of PAIRS) {
    for (const [from, to, spi] of [[p.a, p.b, p.spiAB], [p.b, p.a, p.spiBA]] as const) {
      const sa: DemoSa = { spi, from: from.id, to: to.id, suite: p.suite, keymat: randomBytes(KEYMAT[p.suite]) };
      writeFileSync(keyFile(keyDir, sa), `# ${from.name} -> ${to.name}, SPI ${hex8(spi)}, ${p.suite}: key then 4-byte salt\n${Buffer.from(sa.keymat).toString("hex")}\n`, { mode: 0o600 });
      sas.push(sa);
    }
  }
  const files = {} as Record<SiteId, string>;
  const sockets = {} as Record<SiteId, string>;
  for (const s of SITES) {
    sockets[s.id] = join(dir, `${s.name}.sock`);
    files[s.id] = join(dir, `${s.name}.yaml`);
    writeFileSync(files[s.id], configText(s, sockets[s.id], sas), { mode: 0o600 });
  }
  return { files, sockets, sas };
}

function keyFile(keyDir: string, sa: DemoSa): string {
  return join(keyDir, `${sa.from}-to-${sa.to}.key`);
}

function configText(s: Site, socket: string, sas: DemoSa[]): string {
  const peers = PAIRS.filter((p) => p.a.id === s.id || p.b.id === s.id).map((p) => {
    const peer = p.a.id === s.id ? p.b : p.a;
    const out = sas.find((x) => x.from === s.id && x.to === peer.id)!;
    const inn = sas.find((x) => x.from === peer.id && x.to === s.id)!;
    const nat = s.behindNat
      ? `    nat_t: true                  # we are behind a NAT: ESP in UDP (RFC 3948) ...\n    keepalive: ${KEEPALIVE_S}                 # ... and NAT-keepalives hold the mapping open\n`
      : peer.behindNat
        ? `    nat_t: true                  # ${peer.name} is behind a NAT: follow its mapping from authenticated packets\n`
        : `    nat_t: true\n`;
    return `  - name: ${peer.name}
    address: ${peer.publicAddress}${peer.behindNat ? "            # the NAT's outside address; the port it really uses is learned" : ""}
    port: ${ESP_PORT}
${nat}    prefixes: [${peer.prefixes[0]}, "${peer.prefixes[1]}"]
    mode: tunnel
    sas:
      - spi_in: ${hex8(inn.spi)}        # ${peer.name} -> ${s.name}
        spi_out: ${hex8(out.spi)}       # ${s.name} -> ${peer.name}
        suite: ${p.suite}
        key_in_file: keys/${inn.from}-to-${inn.to}.key
        key_out_file: keys/${out.from}-to-${out.to}.key
`;
  });
  return `# ${s.name}: written by 'wesp demo' (host/demo/configs.ts). Keys are fresh for
# every run and live in keys/ next to this file (mode 0600).
version: 1
node:
  name: ${s.name}
  wan:
    - name: internet
      address: ${s.wan}${s.behindNat ? "            # private: the NAT translates it" : ""}
      port: ${ESP_PORT}
      encap: udp
  tun:
    name: wesp0
    mtu: 1400
  local_prefixes: [${s.prefixes[0]}, "${s.prefixes[1]}"]
  control:
    socket: ${socket}
  workers: 1                     # three CEs share this machine's cores
peers:
${peers.join("")}`;
}
