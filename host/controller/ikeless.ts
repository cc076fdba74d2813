// A CE's SPD and SAD as JSON shaped after the `ietf-i2nsf-ikeless` YANG
// module (RFC 9061 §5.3, the IKE-less case: the controller sets the NSF's
// SPD and SAD directly) — the same data as the wesp config the CE runs
// (render.ts), for GET /v1/ce/ikeless. A rendering of the module's tree
// (container ipsec-ikeless: spd/spd-entry, sad/sad-entry), not a validated
// YANG instance: wesp keeps its own config as the source of truth.
//
//   SPD: per peer, per remote prefix × local prefix, one outbound entry
//        (protect through the first SA) and one inbound entry (RFC 4301 §5.2
//        check); SAD: per SA pair, one entry per direction, named as
//        sadb-expire names it (api/ce_rekey.ts saName: SENDER/RECEIVER/0xSPI).
import { saName } from "./api/ce_rekey.ts";
import type { CeConfig, CeLifetime, CePeer, CeSa } from "./render.ts";
import { DEFAULT_REPLAY_WINDOW } from "../config/normalize.ts";

/** IKEv2 transform IDs (IANA "Transform Type 1", RFC 7296 §3.3.2) and key bits of the suites the controller uses. */
const ENCRYPTION: Record<string, { id: number; bits: number }> = {
  "aes-128-gcm": { id: 20, bits: 128 }, // ENCR_AES_GCM_16 (RFC 4106)
  "aes-256-gcm": { id: 20, bits: 256 },
  "chacha20-poly1305": { id: 28, bits: 256 }, // ENCR_CHACHA20_POLY1305 (RFC 7634)
};

/** yang:hex-string ("aa:bb:…") of a hex key. */
const hexString = (hex: string) => hex.match(/../g)?.join(":") ?? "";

/** The inner protocol and mode of a wesp peer mode (docs/config.md "Modes"). */
function modeOf(p: CePeer): { mode: "tunnel" | "transport"; innerProtocol: number | "any" } {
  if (p.mode === "transport-ipip") return { mode: "transport", innerProtocol: 4 };
  if (p.mode === "transport-gre") return { mode: "transport", innerProtocol: 47 };
  return { mode: "tunnel", innerProtocol: "any" };
}

function lifetime(l: CeLifetime | undefined, soft: boolean): Record<string, unknown> {
  const x = soft ? { time: l?.soft_seconds, bytes: l?.soft_bytes, packets: l?.soft_packets } : { time: l?.seconds, bytes: l?.bytes, packets: l?.packets };
  // 0 = no limit (the module's default); a soft expiry asks the controller for a replacement.
  return { time: x.time ?? 0, bytes: x.bytes ?? 0, packets: x.packets ?? 0, idle: 0, ...(soft ? { action: "replace" } : {}) };
}

function sadEntry(c: CeConfig, p: CePeer, sa: CeSa, dir: "in" | "out", reqid: number): Record<string, unknown> {
  const me = c.node.name;
  const port = c.node.wan.find((w) => w.name === p.wan) ?? c.node.wan[0];
  const [local, remote] = [{ address: port.address, port: port.port }, { address: p.address, port: p.port }];
  const [src, dst] = dir === "out" ? [local, remote] : [remote, local];
  const enc = ENCRYPTION[sa.suite] ?? { id: 0, bits: 0 };
  const { mode, innerProtocol } = modeOf(p);
  const spi = dir === "out" ? sa.spi_out : sa.spi_in;
  return {
    name: saName(dir === "out" ? { src: me, dst: p.name, spi } : { src: p.name, dst: me, spi }),
    reqid,
    "ipsec-sa-config": {
      spi,
      "ext-seq-num": false,
      "seq-overflow": false,
      "anti-replay-window-size": dir === "in" ? DEFAULT_REPLAY_WINDOW : 0,
      "traffic-selector": { "local-prefix": c.node.local_prefixes, "remote-prefix": p.prefixes, "inner-protocol": innerProtocol },
      "protocol-parameters": "esp",
      mode,
      "esp-sa": {
        encryption: { "encryption-algorithm": enc.id, "key-length": enc.bits, key: hexString(dir === "out" ? sa.key_out : sa.key_in) },
        integrity: { "integrity-algorithm": 0 }, // AEAD: none separate (RFC 8221 §3)
      },
      "sa-lifetime-hard": lifetime(sa.lifetime, false),
      "sa-lifetime-soft": lifetime(sa.lifetime, true),
      ...(mode === "tunnel" ? { tunnel: { local: src.address, remote: dst.address, "df-bit": "copy", "bypass-dscp": true } } : {}),
      // RFC 3948 ESP in UDP, always on for controller-made peers (nat_t: true).
      "encapsulation-type": { espencap: "espinudp", sport: src.port, dport: dst.port },
    },
  };
}

/** The `ipsec-ikeless` container for the CE whose config is `c`. */
export function ikelessOf(c: CeConfig): Record<string, unknown> {
  const spd: Record<string, unknown>[] = [];
  const sad: Record<string, unknown>[] = [];
  c.peers.forEach((p, i) => {
    const reqid = i + 1;
    const { mode, innerProtocol } = modeOf(p);
    for (const direction of ["outbound", "inbound"] as const) {
      spd.push({
        name: `${c.node.name}/${p.name}/${direction}`,
        direction,
        reqid,
        "ipsec-policy-config": {
          "traffic-selector": { "local-prefix": c.node.local_prefixes, "remote-prefix": p.prefixes, "inner-protocol": innerProtocol },
          "processing-info": { action: "protect", "ipsec-sa-cfg": { "protocol-parameters": "esp", mode, "ext-seq-num": false } },
        },
      });
    }
    // The first SA pair carries outbound traffic; every listed one is accepted inbound (docs/config.md "Rekeying").
    // An IKE-keyed peer (keying ike) has no SAs here: IKE negotiates them on the CE.
    const sas = p.sas ?? [];
    if (sas[0]) sad.push(sadEntry(c, p, sas[0], "out", reqid));
    for (const sa of sas) sad.push(sadEntry(c, p, sa, "in", reqid));
  });
  return { "ietf-i2nsf-ikeless:ipsec-ikeless": { spd: { "spd-entry": spd }, sad: { "sad-entry": sad } } };
}
