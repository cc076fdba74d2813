// Checking captured ESP frames with @noble/ciphers — an implementation that
// shares no code with wesp's core: the SAs Wireshark 4.0 cannot decrypt
// (ChaCha20-Poly1305, RFC 7634: its ESP dissector has no such algorithm), and
// every SA when tshark is not installed (AES-GCM, RFC 4106, has the same layout).
//
// ESP packet (RFC 4303 §2) as carried in UDP (RFC 3948):
//
//   0        4        8                16                    len-16     len
//   ┌────────┬────────┬────────────────┬─────────────────────┬──────────┐
//   │  SPI   │  seq   │ IV (8 bytes)   │ ciphertext:         │ ICV (16) │
//   │        │ (low)  │ RFC 7634 §2    │ inner ‖ pad ‖ pl ‖nh│          │
//   └────────┴────────┴────────────────┴─────────────────────┴──────────┘
//
// Nonce = salt (last 4 bytes of the KEYMAT) ‖ IV (RFC 7634 §2, RFC 4106 §4);
// AAD = SPI ‖ sequence number, 8 bytes without ESN (RFC 7634 §2.1, RFC 4106 §5).
// The tag is checked before anything is decrypted (noble's AEADs do that).
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { gcm } from "@noble/ciphers/aes.js";
import { formatAddress } from "../config/addr.ts";
import type { DemoSa } from "./configs.ts";

export interface OpenedEsp {
  icv: "good" | "bad";
  /** ESP next header (RFC 4303 §2.6) and the inner packet, when the ICV was good. */
  nextHeader?: number;
  inner?: Uint8Array;
}

/** Opens one ESP packet (`esp`: the whole UDP payload) of any demo suite (AES-GCM or ChaCha20-Poly1305) with `sa`. */
export function openEsp(esp: Uint8Array, sa: DemoSa): OpenedEsp {
  if (esp.length < 8 + 8 + 16 + 2) return { icv: "bad" };
  const key = sa.keymat.subarray(0, sa.keymat.length - 4);
  const nonce = new Uint8Array(12);
  nonce.set(sa.keymat.subarray(sa.keymat.length - 4), 0);
  nonce.set(esp.subarray(8, 16), 4);
  const aead = sa.suite === "chacha20-poly1305" ? chacha20poly1305 : gcm;
  let plain: Uint8Array;
  try {
    plain = aead(key, nonce, esp.subarray(0, 8)).decrypt(esp.subarray(16));
  } catch {
    return { icv: "bad" };
  }
  const nextHeader = plain[plain.length - 1];
  const padLen = plain[plain.length - 2];
  return { icv: "good", nextHeader, inner: plain.subarray(0, Math.max(0, plain.length - 2 - padLen)) };
}

const PROTO: Record<number, string> = { 1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6" };

/** A one-line description of an inner IPv4/IPv6 packet, in the spirit of tshark's Info column. */
export function describeInner(p: Uint8Array): { src: string; dst: string; info: string } {
  const v = p[0] >> 4;
  if (v !== 4 && v !== 6) return { src: "?", dst: "?", info: `not IP (${p.length} bytes)` };
  const [proto, hl, src, dst] = v === 4
    ? [p[9], (p[0] & 15) * 4, [...p.subarray(12, 16)].join("."), [...p.subarray(16, 20)].join(".")]
    : [p[6], 40, formatAddress(p.subarray(8, 24)), formatAddress(p.subarray(24, 40))];
  const l4 = p.subarray(hl);
  let info = PROTO[proto] ?? `protocol ${proto}`;
  if ((proto === 1 || proto === 58) && l4.length >= 8) {
    const kind = { 0: "Echo reply", 8: "Echo request", 128: "Echo request", 129: "Echo reply" }[l4[0]] ?? `type ${l4[0]}`;
    info += ` ${kind} seq=${(l4[6] << 8) | l4[7]}`;
  } else if (proto === 6 && l4.length >= 20) {
    const flags = ["FIN", "SYN", "RST", "PSH", "ACK"].filter((_, i) => l4[13] & (1 << i)).join(",");
    const data = p.length - hl - (l4[12] >> 4) * 4;
    info += ` ${(l4[0] << 8) | l4[1]} → ${(l4[2] << 8) | l4[3]} [${flags}] len=${data}`;
  }
  return { src, dst, info };
}
