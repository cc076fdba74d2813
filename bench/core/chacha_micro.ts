// Micro-benchmark for tuning the ChaCha20-Poly1305 core: bare AEAD seal/open
// (no ESP framing) and the two primitives alone, against libsodium-wrappers in
// the same process. Not a test; prints medians.
//
//   SIZES=64,1400 CLOCK=wall node --import tsx bench/core/chacha_micro.ts
//
//   node --import tsx bench/core/chacha_micro.ts            # the build Core picks (Node 20: build/wesp.wasm)
//   WESP_WASM=/abs/other.wasm node --import tsx bench/core/chacha_micro.ts
//
// Timing (warm-up, medians of CPU-time rounds) is bench/core/micro.ts.
import { cpus, loadavg } from "node:os";
import sodium from "libsodium-wrappers";
import { loadCore, Scratch } from "../../host/core/raw_exports.ts";
import { rate as rateOf, ROUND_MS, ROUNDS, SIZES, WALL } from "./micro.ts";

// Batches of 200 calls between clock reads: the smallest cases take well under a microsecond.
const rate = (fn: () => void) => rateOf(fn, 200);

await sodium.ready;
const ex = loadCore();
const s = new Scratch(ex, 1 << 20);
const u8 = () => new Uint8Array(ex.memory.buffer);

const key = s.put(Uint8Array.from({ length: 32 }, (_, i) => i));
const nonce = s.put(Uint8Array.from({ length: 12 }, (_, i) => 0xa0 + i));
const aad = s.put(Uint8Array.from({ length: 8 }, (_, i) => i));
const tag = s.alloc(16);
const data = s.alloc(9216 + 64);
const pristine = s.alloc(9216 + 64);
const pristineTag = s.alloc(16);

const rows: string[][] = [];
const row = (what: string, size: number, perSec: number, ref?: number) =>
  rows.push([what, String(size), (perSec * size / 1e6).toFixed(0), (perSec / 1e3).toFixed(0), ref ? (perSec / ref).toFixed(2) + "×" : ""]);

for (const size of SIZES) {
  const pt = Uint8Array.from({ length: size }, (_, i) => i & 255);
  const sKey = u8().slice(key, key + 32), sNonce = u8().slice(nonce, nonce + 12), sAad = u8().slice(aad, aad + 8);

  const sodiumSeal = rate(() => { sodium.crypto_aead_chacha20poly1305_ietf_encrypt(pt, sAad, null, sNonce, sKey); });
  const sealedBySodium = sodium.crypto_aead_chacha20poly1305_ietf_encrypt(pt, sAad, null, sNonce, sKey);
  const sodiumOpen = rate(() => { sodium.crypto_aead_chacha20poly1305_ietf_decrypt(null, sealedBySodium, sAad, sNonce, sKey); });

  u8().set(pt, data);
  const seal = rate(() => { ex.chachaPolySeal(key, nonce, aad, 8, data, size, tag); });

  // Open needs fresh ciphertext every call (it decrypts in place): copy it back
  // each time and take the copy's own cost out.
  u8().set(pt, pristine);
  ex.chachaPolySeal(key, nonce, aad, 8, pristine, size, pristineTag);
  const mem = u8();
  const copyOnly = rate(() => { mem.copyWithin(data, pristine, pristine + size); });
  const openAndCopy = rate(() => {
    mem.copyWithin(data, pristine, pristine + size);
    if (!ex.chachaPolyOpen(key, nonce, aad, 8, data, size, pristineTag)) throw new Error("open failed");
  });
  const open = 1 / (1 / openAndCopy - 1 / copyOnly);

  const xor = rate(() => { ex.chacha20Xor(key, nonce, 1, data, size); });
  const mac = rate(() => { ex.poly1305Mac(key, data, size, tag); });

  row("wesp seal", size, seal, sodiumSeal);
  row("libsodium-wrappers seal", size, sodiumSeal);
  row("wesp open (copy cost removed)", size, open, sodiumOpen);
  row("libsodium-wrappers open", size, sodiumOpen);
  row("wesp chacha20Xor", size, xor);
  row("wesp poly1305Mac", size, mac);
}

console.log(`machine: ${cpus()[0].model}, ${cpus().length} cpus, node ${process.version}; load ${loadavg()[0].toFixed(1)}; ` +
  `medians of ${ROUNDS}×${ROUND_MS} ms, ${WALL ? "wall" : "process CPU"} time`);
const head = ["what", "bytes", "MB/s", "kpps", "vs libsodium"];
const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
for (const r of [head, ...rows]) console.log(r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join("  "));
