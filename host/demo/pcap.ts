// The UDP datagrams of a capture file, read without tshark: what the demo
// uses to look at the wire when tshark is not installed.
//
// tcpdump -w writes the classic pcap format: a 24-byte file header (magic
// 0xa1b2c3d4, or 0xa1b23c4d with nanosecond stamps, in the writer's byte
// order; the link type at offset 20), then per packet a 16-byte record header
// (captured length at offset 8) and the bytes. The WAN bridge is Ethernet
// (link type 1); the outer headers are IPv4 (RFC 791) or IPv6 (RFC 8200,
// without extension headers), then UDP (RFC 768).
import { readFileSync } from "node:fs";
import { formatAddress } from "../config/addr.ts";

export interface UdpFrame {
  /** 1-based, as tshark numbers frames. */
  frame: number;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  payload: Uint8Array;
}

const LINKTYPE_ETHERNET = 1;

export function readPcapUdp(file: string): UdpFrame[] {
  return parsePcapUdp(readFileSync(file));
}

export function parsePcapUdp(buf: Uint8Array): UdpFrame[] {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (buf.length < 24) throw new Error("not a pcap file (too short)");
  const magic = dv.getUint32(0, false);
  const le = magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1;
  if (!le && magic !== 0xa1b2c3d4 && magic !== 0xa1b23c4d) throw new Error(`not a classic pcap file (magic 0x${magic.toString(16)})`);
  const link = dv.getUint32(20, le);
  if (link !== LINKTYPE_ETHERNET) throw new Error(`pcap link type ${link}, not Ethernet`);
  const out: UdpFrame[] = [];
  let frame = 0;
  for (let off = 24; off + 16 <= buf.length; ) {
    const caplen = dv.getUint32(off + 8, le);
    const start = off + 16;
    off = start + caplen;
    frame++;
    if (off > buf.length) break; // a truncated last record
    const udp = ethernetUdp(buf.subarray(start, off));
    if (udp) out.push({ frame, ...udp });
  }
  return out;
}

function ethernetUdp(f: Uint8Array): Omit<UdpFrame, "frame"> | null {
  if (f.length < 14) return null;
  let type = (f[12] << 8) | f[13];
  let l3 = 14;
  if (type === 0x8100 && f.length >= 18) {
    type = (f[16] << 8) | f[17]; // one 802.1Q tag
    l3 = 18;
  }
  const ip = f.subarray(l3);
  let src: string, dst: string, l4: Uint8Array;
  if (type === 0x0800 && ip.length >= 20 && ip[0] >> 4 === 4) {
    const fragmented = (((ip[6] << 8) | ip[7]) & 0x3fff) !== 0; // MF or an offset
    if (ip[9] !== 17 || fragmented) return null;
    src = ip.subarray(12, 16).join(".");
    dst = ip.subarray(16, 20).join(".");
    l4 = ip.subarray((ip[0] & 15) * 4, Math.min(ip.length, (ip[2] << 8) | ip[3]));
  } else if (type === 0x86dd && ip.length >= 40 && ip[6] === 17) {
    src = formatAddress(ip.subarray(8, 24));
    dst = formatAddress(ip.subarray(24, 40));
    l4 = ip.subarray(40, 40 + ((ip[4] << 8) | ip[5]));
  } else {
    return null;
  }
  if (l4.length < 8) return null;
  const len = (l4[4] << 8) | l4[5];
  return { src, dst, sport: (l4[0] << 8) | l4[1], dport: (l4[2] << 8) | l4[3], payload: l4.subarray(8, Math.max(8, Math.min(len, l4.length))) };
}
