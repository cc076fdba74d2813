// What ESP hands its combined-mode ciphers, the same in both directions.

import { SA_SALT } from "./layout";

const NONCE = memory.data(16, 16); // salt(4) ‖ IV(8)
const AAD = memory.data(16, 16); // SPI ‖ seqHi ‖ seqLo (ESN)

/**
 * The AAD (RFC 4106 §5, RFC 7634 §2.1): SPI ‖ sequence number as on the wire,
 * 8 bytes read in place from the ESP header at `esp`; with ESN, SPI ‖ seqHi ‖
 * seqLo, 12 bytes built in scratch — the high bits are authenticated but never
 * sent (RFC 4303 §2.2.1). Pair with espAadLen.
 */
export function espAad(esp: usize, seq: u64, esn: bool): usize {
  if (!esn) return esp;
  store<u32>(AAD, load<u32>(esp));
  store<u32>(AAD + 4, bswap<u32>(<u32>(seq >> 32)));
  store<u32>(AAD + 8, load<u32>(esp + 4));
  return AAD;
}

export function espAadLen(esn: bool): i32 {
  return esn ? 12 : 8;
}

/** The 12-byte nonce (RFC 4106 §4, RFC 7634 §2): the SA's 4-byte salt ‖ the 8-byte explicit IV at `iv`. */
export function espNonce(sa: usize, iv: usize): usize {
  store<u32>(NONCE, load<u32>(sa + SA_SALT));
  store<u64>(NONCE + 4, load<u64>(iv));
  return NONCE;
}

/** Zeroes the nonce and AAD scratch (the last SA's salt and IV): called when an SA is removed. */
export function espAeadWipe(): void {
  memory.fill(NONCE, 0, 16);
  memory.fill(AAD, 0, 16);
}
