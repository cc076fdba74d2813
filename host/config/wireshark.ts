// The `esp_sa` table Wireshark and tshark use to decrypt ESP ("ESP SAs" UAT,
// file `esp_sa` in a Wireshark profile directory). One line per SA direction,
// eight quoted, comma-separated fields:
//
//   "IPv4","192.0.2.1","198.51.100.2","0x000b0a01","AES-GCM with 16 octet ICV [RFC4106]","0x<key‖salt>","NULL",""
//    proto  src           dst            SPI          encryption algorithm                   key          auth    auth key
//
// The algorithm names are Wireshark's own labels (epan/dissectors/packet-ipsec.c);
// checked against tshark 4.0.17 by test/unit/cli-keys-wireshark.test.ts, which
// decrypts packets made by scapy. AES-GCM keys include the 4-byte salt, as in
// RFC 4106 §8.1 and as wesp stores them; Wireshark tells 128/192/256 apart by length.
// Lines starting with '#' are comments to the UAT parser.
//
// Not decodable by Wireshark 4.0 and so written as comments only:
//   chacha20-poly1305 — the ESP dissector has no ChaCha20-Poly1305 (RFC 7634).
// Written, with a warning comment:
//   esn: true — the dissector knows nothing of ESN (RFC 4303 §2.2.1), so the
//   ICV check fails (the high 32 bits are in the ICV / AAD but not on the wire).

import { keyToHex } from "./keys.ts";
import type { Config, PeerConfig, SaConfig, Suite } from "./model.ts";

const ENCRYPTION: Record<Suite, string | undefined> = {
  "aes-128-gcm": "AES-GCM with 16 octet ICV [RFC4106]",
  "aes-192-gcm": "AES-GCM with 16 octet ICV [RFC4106]",
  "aes-256-gcm": "AES-GCM with 16 octet ICV [RFC4106]",
  "chacha20-poly1305": undefined,
  "aes-128-cbc-hmac-sha256": "AES-CBC [RFC3602]",
  "aes-256-cbc-hmac-sha256": "AES-CBC [RFC3602]",
  "aes-128-cbc": "AES-CBC [RFC3602]",
};
const HMAC_SHA256_128 = "HMAC-SHA-256-128 [RFC4868]";

export interface EspSaTableOptions {
  /**
   * Write "*" instead of the outer addresses, so captures taken behind a NAT
   * (where addresses differ from the config's) still match. SPIs that occur
   * twice in the table keep their exact addresses, since "*" would make them ambiguous.
   */
  anyAddress?: boolean;
}

export interface EspSaTable {
  /** The file contents. Holds key material: write it with mode 0600. */
  text: string;
  /** SA directions written as rows. */
  rows: number;
  /** Notes about SA directions Wireshark cannot fully decode (also in `text` as comments). */
  notes: string[];
}

interface Row {
  family: 4 | 6;
  src: string;
  dst: string;
  spi: number;
  sa: SaConfig;
  dir: "in" | "out";
  peer: PeerConfig;
  peerIndex: number;
}

/** Build the `esp_sa` table for every ESP SA of the node, both directions. */
export function espSaTable(c: Config, opts: EspSaTableOptions = {}): EspSaTable {
  const rows: Row[] = [];
  c.peers.forEach((peer, peerIndex) => {
    const local = c.node.wan[peer.wanIndex].address.text;
    for (const sa of peer.sas) {
      const family = peer.address.family;
      rows.push({ family, src: local, dst: peer.address.text, spi: sa.spiOut, sa, dir: "out", peer, peerIndex });
      rows.push({ family, src: peer.address.text, dst: local, spi: sa.spiIn, sa, dir: "in", peer, peerIndex });
    }
  });
  const spiCount = new Map<number, number>();
  for (const r of rows) spiCount.set(r.spi, (spiCount.get(r.spi) ?? 0) + 1);

  const lines = [
    `# Wireshark ESP SAs (esp_sa UAT) for node ${c.node.name}, written by 'wesp keys --wireshark' from ${c.source}.`,
    "# Contains keys: keep it private. Use: copy to ~/.config/wireshark/esp_sa (or a profile's directory), then",
    "#   tshark -o esp.enable_encryption_decode:TRUE -o esp.enable_authentication_check:TRUE -r capture.pcap",
  ];
  const notes: string[] = [];
  let written = 0;
  for (const r of rows) {
    const where = `peers[${r.peerIndex}] ${r.peer.name} sas[${r.sa.index}] ${r.dir} SPI 0x${hex8(r.spi)}`;
    const enc = ENCRYPTION[r.sa.suite];
    if (enc === undefined) {
      const note = `${where}: ${r.sa.suite} is not supported by Wireshark's ESP dissector; not written`;
      notes.push(note);
      lines.push(`# ${note}`);
      continue;
    }
    if (r.sa.esn) {
      const note = `${where}: esn is on; Wireshark does not model ESN, so its ICV check of this SA fails`;
      notes.push(note);
      lines.push(`# ${note}`);
    }
    const wild = opts.anyAddress && spiCount.get(r.spi) === 1;
    const key = r.dir === "out" ? r.sa.keyOut : r.sa.keyIn;
    const authKey = r.dir === "out" ? r.sa.authKeyOut : r.sa.authKeyIn;
    lines.push(espSaRow({
      family: r.family, src: wild ? "*" : r.src, dst: wild ? "*" : r.dst, spi: r.spi, suite: r.sa.suite,
      key: keyToHex(key), authKey: authKey && keyToHex(authKey),
    })!);
    written++;
  }
  return { text: lines.join("\n") + "\n", rows: written, notes };
}

/** One SA direction's keys, hex, as the esp_sa row needs them. */
export interface EspSaRowInput {
  family: 4 | 6;
  /** Outer addresses, or "*" for any. */
  src: string;
  dst: string;
  spi: number;
  suite: Suite;
  /** Cipher key (‖ salt for AES-GCM) and HMAC key, in hex. */
  key: string;
  authKey?: string;
}

/** One row of the table; undefined for a suite the dissector cannot decrypt (ChaCha20-Poly1305). */
export function espSaRow(r: EspSaRowInput): string | undefined {
  const enc = ENCRYPTION[r.suite];
  if (enc === undefined) return undefined;
  const fields = [
    r.family === 4 ? "IPv4" : "IPv6", r.src, r.dst, `0x${hex8(r.spi)}`, enc,
    `0x${r.key}`, r.authKey ? HMAC_SHA256_128 : "NULL", r.authKey ? `0x${r.authKey}` : "",
  ];
  return fields.map((f) => `"${f}"`).join(",");
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, "0");
}
