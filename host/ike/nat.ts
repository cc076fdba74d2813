// NAT detection, RFC 7296 §2.23: each side sends SHA-1(SPIi | SPIr | IP | Port)
// of its source (NAT_DETECTION_SOURCE_IP) and of the destination it sent to
// (NAT_DETECTION_DESTINATION_IP). A mismatch on receipt means a NAT rewrote
// that address: the exchange then moves to UDP 4500 (§2.23, RFC 3948) and the
// CHILD_SAs use UDP-encapsulated ESP. In IKE_SA_INIT's request SPIr is zero.
import { createHash } from "node:crypto";
import { parseAddress } from "../config/addr.ts";
import { concatBytes } from "./result.ts";

/** Network-order bytes of an IPv4 or IPv6 address in text form (host/config/addr.ts parses). */
export function addressBytes(addr: string): Uint8Array {
  const a = parseAddress(addr);
  if (!a.ok) throw new RangeError(a.message);
  return a.value.bytes;
}

/** SHA-1(SPIi | SPIr | IP | Port), §2.23. */
export function natHash(spiI: Uint8Array, spiR: Uint8Array, addr: string, port: number): Uint8Array {
  return new Uint8Array(createHash("sha1").update(concatBytes(spiI, spiR, addressBytes(addr), Uint8Array.of(port >> 8, port))).digest());
}
