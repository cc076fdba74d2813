// ESP-in-UDP packets read straight from a pcap file, independent of wesp: what
// the end-to-end tests check on the wire (sequence numbers never reused across
// restarts, SPIs fresh after an IKE re-negotiation).
import assert from "node:assert/strict";

export interface EspPacket {
  /** Capture time, ms since the epoch (the kernel's clock, as Date.now()). */
  t: number;
  src: string;
  spi: number;
  seq: number;
  /** The whole UDP payload (the ESP packet), for replaying it. */
  esp: Buffer;
}

/**
 * ESP-in-UDP packets of a pcap (Ethernet, IPv4): UDP payloads to port 4500
 * that are neither a NAT-keepalive (one 0xff byte) nor IKE (non-ESP marker,
 * four zero bytes: RFC 3948 §2.2). Parsed here, independent of wesp.
 */
export function espPackets(pcap: Buffer): EspPacket[] {
  const magic = pcap.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && pcap.readUInt32BE(0) !== 0xa1b2c3d4 && pcap.readUInt32BE(0) !== 0xa1b23c4d) throw new Error("not a pcap file");
  const nano = (le ? magic : pcap.readUInt32BE(0)) === 0xa1b23c4d;
  const u32 = (o: number) => (le ? pcap.readUInt32LE(o) : pcap.readUInt32BE(o));
  assert.equal(u32(20), 1, "link type Ethernet");
  const out: EspPacket[] = [];
  for (let o = 24; o + 16 <= pcap.length;) {
    const sec = u32(o), frac = u32(o + 4), incl = u32(o + 8);
    const f = pcap.subarray(o + 16, o + 16 + incl);
    o += 16 + incl;
    if (f.length < 14 + 20 + 8 || f.readUInt16BE(12) !== 0x0800) continue;
    const ip = f.subarray(14);
    const ihl = (ip[0] & 15) * 4;
    if (ip[9] !== 17 || (ip.readUInt16BE(6) & 0x3fff) !== 0) continue; // UDP, not a fragment
    const udp = ip.subarray(ihl, ip.readUInt16BE(2));
    if (udp.readUInt16BE(2) !== 4500) continue;
    const pl = udp.subarray(8, udp.readUInt16BE(4));
    if (pl.length < 8 || pl.readUInt32BE(0) === 0) continue;
    out.push({
      t: sec * 1000 + (nano ? frac / 1e6 : frac / 1e3),
      src: `${ip[12]}.${ip[13]}.${ip[14]}.${ip[15]}`,
      spi: pl.readUInt32BE(0),
      seq: pl.readUInt32BE(4),
      esp: Buffer.from(pl),
    });
  }
  return out;
}
