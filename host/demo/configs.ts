// The three CE configs of the demo (docs/config.md), with fresh secrets.
//
// IKEv2 (the default): each pair of sites gets a random pre-shared key, written
// to a key file of mode 0600 in the lab directory; each peer has an `ike` block
// naming that file, its proposals and whether this side initiates (plan.ts).
// The SAs' keys are negotiated, so nothing but the CEs knows them: each CE
// appends every CHILD_SA's SPIs and keys to its own key log (WESP_ESP_KEYLOG,
// host/ike/keylog.ts; 0600, in the same directory), which the demo reads to
// check the wire (ike.ts).
//
// Static keys (--static-keys): every SA direction gets its own random KEYMAT
// (key ‖ 4-byte salt for the AEADs, RFC 4106 §8.1 / RFC 7634 §2) in a key file.
//
// The configs refer to the key files, so the YAML itself holds no secret; the
// lab directory (0700) and everything in it is removed at teardown.
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ESP_PORT, KEEPALIVE_S, PAIRS, SITES, ikeId, type DemoMode, type DemoSuite, type Pair, type Site, type SiteId } from "./plan.ts";

/** Bytes of KEYMAT per suite: cipher key + 4-byte salt. */
const KEYMAT: Record<DemoSuite, number> = {
  "aes-128-gcm": 20,
  "aes-256-gcm": 36,
  "chacha20-poly1305": 36,
};

/** Bytes of each pair's random PSK (RFC 7296 §2.15: as strong as the PRF's key). */
const PSK_BYTES = 32;

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
  mode: DemoMode;
  /** Config file per site. */
  files: Record<SiteId, string>;
  /** Control socket per site (`wesp status` finds it through the config too). */
  sockets: Record<SiteId, string>;
  /** IKE: each CE's WESP_ESP_KEYLOG file (written by `wesp up`). */
  keyLogs: Record<SiteId, string>;
  /** Static keys: from the configs. IKE: empty until the key logs are read (ike.ts negotiatedSas). */
  sas: DemoSa[];
}

const hex8 = (n: number) => "0x" + n.toString(16).padStart(8, "0");

/**
 * Writes configs and key files under `dir`; returns where they are (and, for
 * static keys, the SAs). `nat: false`: the NAT namespace only routes (no nft).
 */
export function writeConfigs(dir: string, mode: DemoMode = "ike", opts: { nat: boolean } = { nat: true }): DemoConfigs {
  const keyDir = join(dir, "keys");
  mkdirSync(keyDir, { mode: 0o700, recursive: true });
  const sas = mode === "static" ? writeStaticKeys(keyDir) : [];
  if (mode === "ike") writePsks(keyDir);
  const files = {} as Record<SiteId, string>;
  const sockets = {} as Record<SiteId, string>;
  const keyLogs = {} as Record<SiteId, string>;
  for (const s of SITES) {
    sockets[s.id] = join(dir, `${s.name}.sock`);
    files[s.id] = join(dir, `${s.name}.yaml`);
    keyLogs[s.id] = join(keyDir, `${s.name}.esp-keylog.jsonl`);
    writeFileSync(files[s.id], configText(s, sockets[s.id], mode, sas, opts.nat), { mode: 0o600 });
  }
  return { mode, files, sockets, keyLogs, sas };
}

function writeStaticKeys(keyDir: string): DemoSa[] {
  const sas: DemoSa[] = [];
  for (const p of PAIRS) {
    for (const [from, to, spi] of [[p.a, p.b, p.spiAB], [p.b, p.a, p.spiBA]] as const) {
      const sa: DemoSa = { spi, from: from.id, to: to.id, suite: p.suite, keymat: randomBytes(KEYMAT[p.suite]) };
      writeFileSync(join(keyDir, `${sa.from}-to-${sa.to}.key`), `# ${from.name} -> ${to.name}, SPI ${hex8(spi)}, ${p.suite}: key then 4-byte salt\n${Buffer.from(sa.keymat).toString("hex")}\n`, { mode: 0o600 });
      sas.push(sa);
    }
  }
  return sas;
}

/** One PSK per pair, as hex (`0x…`: the config takes the decoded bytes). */
function writePsks(keyDir: string): void {
  for (const p of PAIRS) writeFileSync(join(keyDir, pskFile(p)), `0x${randomBytes(PSK_BYTES).toString("hex")}\n`, { mode: 0o600 });
}

const pskFile = (p: Pair) => `${p.a.id}-${p.b.id}.psk`;

function natLines(s: Site, peer: Site): string {
  if (s.behindNat) return `    nat_t: true                  # we are behind a NAT: ESP in UDP (RFC 3948) ...\n    keepalive: ${KEEPALIVE_S}                 # ... and NAT-keepalives hold the mapping open\n`;
  if (peer.behindNat) return `    nat_t: true                  # ${peer.name} is behind a NAT: follow its mapping from authenticated packets\n`;
  return `    nat_t: true\n`;
}

/**
 * Where a CE sends to `peer`: its public address. Without the NAT (no nft) C's
 * packets keep their own address; static SAs learn it from authenticated ESP,
 * but an IKE responder takes only IKE_SA_INIT from a peer's configured address
 * (host/ike/runtime.ts configFor), so with IKE the peers are given C's own.
 */
export function peerAddress(peer: Site, mode: DemoMode, nat: boolean): string {
  return peer.behindNat && !nat && mode === "ike" ? peer.wan : peer.publicAddress;
}

function configText(s: Site, socket: string, mode: DemoMode, sas: DemoSa[], nat: boolean): string {
  const peers = PAIRS.filter((p) => p.a.id === s.id || p.b.id === s.id).map((p) => {
    const peer = p.a.id === s.id ? p.b : p.a;
    const address = peerAddress(peer, mode, nat);
    const note = !peer.behindNat ? "" : address === peer.wan ? "           # no NAT (no nft): its own address" : "            # the NAT's outside address; the port it really uses is learned";
    return `  - name: ${peer.name}
    address: ${address}${note}
    port: ${ESP_PORT}
${natLines(s, peer)}    prefixes: [${peer.prefixes[0]}, "${peer.prefixes[1]}"]
    mode: tunnel
${mode === "ike" ? ikeBlock(s, peer, p) : sasBlock(s, peer, p, sas)}`;
  });
  const how = mode === "ike"
    ? `# IKEv2 negotiates every SA; the pre-shared keys are fresh for every run and
# live in keys/ next to this file (mode 0600).`
    : `# Static keys, fresh for every run, in keys/ next to this file (mode 0600).`;
  return `# ${s.name}: written by 'wesp demo' (host/demo/configs.ts).
${how}
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

function sasBlock(s: Site, peer: Site, p: Pair, sas: DemoSa[]): string {
  const out = sas.find((x) => x.from === s.id && x.to === peer.id)!;
  const inn = sas.find((x) => x.from === peer.id && x.to === s.id)!;
  return `    sas:
      - spi_in: ${hex8(inn.spi)}        # ${peer.name} -> ${s.name}
        spi_out: ${hex8(out.spi)}       # ${s.name} -> ${peer.name}
        suite: ${p.suite}
        key_in_file: keys/${inn.from}-to-${inn.to}.key
        key_out_file: keys/${out.from}-to-${out.to}.key
`;
}

/** The peer's `ike` block (docs/config.md "peers[].ike"). */
function ikeBlock(s: Site, peer: Site, p: Pair): string {
  const id = (x: { type: string; value: string }) => `{ type: ${x.type}, value: ${x.value} }`;
  const ours = ikeId(s);
  const theirs = ikeId(peer);
  const initiate = p.ike.initiator === s.id;
  const lines = [
    `      auth: { psk_file: keys/${pskFile(p)} }`,
    ...(ours ? [`      local_id: ${id(ours)}      # our own address is private: the peers know us by this name`] : []),
    ...(theirs ? [`      remote_id: ${id(theirs)}     # what ${peer.name} proves: its address is the NAT's, not its own`] : []),
    `      proposals: { ike: [${p.ike.proposal}], esp: [${p.ike.esp}] }`,
    `      initiate: ${initiate}${initiate ? "" : `               # ${peer.name} initiates: one initiator per pair, or two IKE SAs`}`,
    `      retry: { min: 1, max: 10 }     # a failed set-up is retried after 1, 2, 4, 8, 10 s`,
  ];
  return `    ike:\n${lines.join("\n")}\n`;
}
