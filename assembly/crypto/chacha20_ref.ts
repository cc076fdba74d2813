// ChaCha20, the plain way: one 64-byte block at a time, written straight from
// RFC 8439 §2.1–§2.4. This is the reference twin of the 4-lane SIMD code in
// chacha20.ts; test/unit/crypto-chacha20.test.ts holds them equal. It is not
// on any packet path.
//
// State (RFC 8439 §2.3), 16 little-endian u32 words:
//   ┌────────┬────────┬────────┬────────┐
//   │ "expa" │ "nd 3" │ "2-by" │ "te k" │  words 0..3   constants
//   ├────────┼────────┼────────┼────────┤
//   │ key[0] │ key[1] │ key[2] │ key[3] │  words 4..7
//   │ key[4] │ key[5] │ key[6] │ key[7] │  words 8..11
//   ├────────┼────────┼────────┼────────┤
//   │counter │nonce[0]│nonce[1]│nonce[2]│  words 12..15
//   └────────┴────────┴────────┴────────┘

const C0: u32 = 0x61707865;
const C1: u32 = 0x3320646e;
const C2: u32 = 0x79622d32;
const C3: u32 = 0x6b206574;

const REF_STATE = memory.data(64, 16);

/** Column or diagonal quarter round over four words of the state at `x` (RFC 8439 §2.1). */
function quarterRound(x: usize, a: usize, b: usize, c: usize, d: usize): void {
  let va = load<u32>(x + a * 4), vb = load<u32>(x + b * 4);
  let vc = load<u32>(x + c * 4), vd = load<u32>(x + d * 4);
  va += vb; vd = rotl<u32>(vd ^ va, 16);
  vc += vd; vb = rotl<u32>(vb ^ vc, 12);
  va += vb; vd = rotl<u32>(vd ^ va, 8);
  vc += vd; vb = rotl<u32>(vb ^ vc, 7);
  store<u32>(x + a * 4, va); store<u32>(x + b * 4, vb);
  store<u32>(x + c * 4, vc); store<u32>(x + d * 4, vd);
}

/**
 * One ChaCha20 block (RFC 8439 §2.3). key: 32 bytes; nonce: 12 bytes;
 * out: 64 bytes of keystream.
 */
export function chacha20BlockRef(key: usize, nonce: usize, counter: u32, out: usize): void {
  const x = REF_STATE;
  store<u32>(x, C0); store<u32>(x, C1, 4); store<u32>(x, C2, 8); store<u32>(x, C3, 12);
  for (let i: usize = 0; i < 8; i++) store<u32>(x + 16 + i * 4, load<u32>(key + i * 4));
  store<u32>(x, counter, 48);
  for (let i: usize = 0; i < 3; i++) store<u32>(x + 52 + i * 4, load<u32>(nonce + i * 4));
  for (let i = 0; i < 10; i++) {
    quarterRound(x, 0, 4, 8, 12); quarterRound(x, 1, 5, 9, 13);
    quarterRound(x, 2, 6, 10, 14); quarterRound(x, 3, 7, 11, 15);
    quarterRound(x, 0, 5, 10, 15); quarterRound(x, 1, 6, 11, 12);
    quarterRound(x, 2, 7, 8, 13); quarterRound(x, 3, 4, 9, 14);
  }
  // §2.3: add the input words back; recompute them rather than keep a copy.
  store<u32>(out, load<u32>(x) + C0); store<u32>(out, load<u32>(x, 4) + C1, 4);
  store<u32>(out, load<u32>(x, 8) + C2, 8); store<u32>(out, load<u32>(x, 12) + C3, 12);
  for (let i: usize = 0; i < 8; i++) store<u32>(out + 16 + i * 4, load<u32>(x + 16 + i * 4) + load<u32>(key + i * 4));
  store<u32>(out, load<u32>(x, 48) + counter, 48);
  for (let i: usize = 0; i < 3; i++) store<u32>(out + 52 + i * 4, load<u32>(x + 52 + i * 4) + load<u32>(nonce + i * 4));
}

const REF_BLOCK = memory.data(64, 16);

/**
 * ChaCha20 encryption (RFC 8439 §2.4): XORs `len` bytes at `data` in place with
 * the keystream starting at block `counter` (which wraps modulo 2^32).
 * key: 32 bytes; nonce: 12 bytes.
 */
export function chacha20XorRef(key: usize, nonce: usize, counter: u32, data: usize, len: i32): void {
  for (let off = 0; off < len; off += 64) {
    chacha20BlockRef(key, nonce, counter++, REF_BLOCK);
    const n = min(64, len - off);
    for (let i = 0; i < n; i++) {
      store<u8>(data + off + i, load<u8>(data + off + i) ^ load<u8>(REF_BLOCK + i));
    }
  }
}
