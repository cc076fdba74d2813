// Micro-benchmark for tuning the constant-time AES core: bare AES-GCM seal/open
// (RFC 4106 nonce, no ESP framing), the two GCM halves alone (bitsliced AES
// blocks, GHASH) and AES-CBC, against node:crypto (one createCipheriv per
// packet, as the datapath would have to) and @noble/ciphers in the same
// process. Not a test; prints medians and wesp/peer ratios.
//
//   node --import tsx bench/core/aes_micro.ts                 # the build Core picks (Node 20: build/wesp.wasm)
//   SIZES=1400 CLOCK=wall node --import tsx bench/core/aes_micro.ts
//   WESP_WASM=/abs/other.wasm node --import tsx bench/core/aes_micro.ts
//   WESP_WASM=$PWD/build/wesp.relaxed.wasm node --experimental-wasm-relaxed-simd --import tsx bench/core/aes_micro.ts
//                                                             # the relaxed-SIMD build on Node 20 (host/core/core_build.ts)
//
// New WASM runs in V8's baseline tier at about a third of its speed for the
// first 20–30 ms, so every case is warmed up first; each figure is the median
// of several rounds of this process's CPU time (CLOCK=wall for wall time),
// which on a shared 2-core VM moves far less than wall time when other jobs run.
import crypto from "node:crypto";
import { cpus, loadavg } from "node:os";
import { gcm } from "@noble/ciphers/aes.js";
import { coreFile, loadCore, Scratch } from "../../host/core/raw_exports.ts";
import { rates, SIZES, WALL } from "./micro.ts";

const ex = loadCore();
const s = new Scratch(ex, 1 << 20);
const u8 = () => new Uint8Array(ex.memory.buffer);

const keyBytes = Uint8Array.from({ length: 32 }, (_, i) => 0x40 + i);
const nonceBytes = Uint8Array.from({ length: 12 }, (_, i) => 0xa0 + i);
const aadBytes = Uint8Array.from({ length: 8 }, (_, i) => i);
const nonce = s.put(nonceBytes), aad = s.put(aadBytes), iv = s.put(nonceBytes, 4);
const tag = s.alloc(16), goodTag = s.alloc(16);
const data = s.alloc(9216 + 64), pristine = s.alloc(9216 + 64);
const gcmCtx = s.alloc(ex.GCM_CTX_SIZE.value), aesCtx = s.alloc(ex.AES_CTX_SIZE.value);

type Row = [string, string, number, string, number, number | undefined];
const rows: Row[] = [];
function row(suite: string, op: string, size: number, impl: string, perSec: number, ref?: number) {
  rows.push([suite, op, size, impl, perSec, ref]);
}

for (const keyLen of [16, 32]) {
  const suite = `aes-${keyLen * 8}-gcm`;
  const key = keyBytes.subarray(0, keyLen);
  ex.gcmInit(gcmCtx, s.put(key), keyLen);
  for (const size of SIZES) {
    const pt = Uint8Array.from({ length: size }, (_, i) => (i * 7) & 255);
    const c = crypto.createCipheriv(suite as crypto.CipherGCMTypes, key, nonceBytes);
    c.setAAD(aadBytes);
    const ct = Buffer.concat([c.update(pt), c.final()]), ctTag = c.getAuthTag();
    u8().set(pt, data);
    u8().set(ct, pristine);
    u8().set(ctTag, goodTag);
    const [nodeSeal, seal, nodeOpen, open] = rates([
      () => {
        const e = crypto.createCipheriv(suite as crypto.CipherGCMTypes, key, nonceBytes);
        e.setAAD(aadBytes);
        e.update(pt);
        e.final();
        e.getAuthTag();
      },
      () => ex.gcmSeal(gcmCtx, nonce, aad, 8, data, size, tag),
      () => {
        const d = crypto.createDecipheriv(suite as crypto.CipherGCMTypes, key, nonceBytes);
        d.setAAD(aadBytes);
        d.setAuthTag(ctTag);
        d.update(ct);
        d.final();
      },
      // Open decrypts in place, so every call first restores the ciphertext (a memmove).
      () => {
        u8().copyWithin(data, pristine, pristine + size);
        if (!ex.gcmOpen(gcmCtx, nonce, aad, 8, data, size, goodTag)) throw new Error("gcmOpen rejected a good packet");
      },
    ]);
    row(suite, "seal", size, "node:crypto", nodeSeal);
    row(suite, "seal", size, "wesp", seal, nodeSeal);
    row(suite, "open", size, "node:crypto", nodeOpen);
    row(suite, "open", size, "wesp", open, nodeOpen);
    if (keyLen === 16 && size === 1400) {
      const [noble] = rates([() => gcm(key, nonceBytes, aadBytes).encrypt(pt)]);
      row(suite, "seal", size, "@noble/ciphers", noble);
      row(suite, "seal", size, "wesp vs noble", seal, noble);
    }
  }
}

// The halves of GCM alone, and CBC, at 1,400 bytes (AES-128).
{
  const size = 1400;
  ex.aesInit(aesCtx, s.put(keyBytes.subarray(0, 16)), 16);
  ex.gcmInit(gcmCtx, s.put(keyBytes.subarray(0, 16)), 16);
  const h = s.alloc(16);
  ex.aesEncryptBlock(aesCtx, s.put(new Uint8Array(16)), h);
  const [aes8, gh] = rates([
    () => { for (let i = 0; i < size; i += 128) ex.aesEncrypt8(aesCtx, data + i, data + i); },
    () => { ex.ghashStart(h); ex.ghashBytes(data, size); ex.ghashFinish(goodTag, tag); },
  ]);
  row("aes-128 8-block batches", "encrypt", size, "wesp", aes8);
  row("ghash", "hash", size, "wesp", gh);
  const cbcSize = size & ~15;
  const pt = Uint8Array.from({ length: cbcSize }, (_, i) => i & 255);
  const key = keyBytes.subarray(0, 16), ivBytes = u8().slice(iv, iv + 16);
  u8().set(pt, data);
  for (const op of ["encrypt", "decrypt"] as const) {
    const fn = op === "encrypt" ? ex.cbcEncrypt : ex.cbcDecrypt;
    const [nodeRate, wespRate] = rates([
      () => {
        const c = op === "encrypt" ? crypto.createCipheriv("aes-128-cbc", key, ivBytes) : crypto.createDecipheriv("aes-128-cbc", key, ivBytes);
        c.setAutoPadding(false);
        c.update(pt);
        c.final();
      },
      () => fn(aesCtx, iv, data, cbcSize),
    ]);
    row("aes-128-cbc", op, cbcSize, "node:crypto", nodeRate);
    row("aes-128-cbc", op, cbcSize, "wesp", wespRate, nodeRate);
  }
}

console.log(`# ${cpus()[0]?.model ?? "?"} ×${cpus().length}, node ${process.version}, load ${loadavg().map((x) => x.toFixed(1)).join(" ")}, ${WALL ? "wall" : "CPU"} time, core ${coreFile()}`);
console.log("suite                     op       size  impl              MB/s   kpps   ratio");
for (const [suite, op, size, impl, perSec, ref] of rows) {
  console.log(
    `${suite.padEnd(25)} ${op.padEnd(8)} ${String(size).padStart(5)}  ${impl.padEnd(15)} ${(perSec * size / 1e6).toFixed(0).padStart(6)} ${(perSec / 1e3).toFixed(1).padStart(6)}   ${ref ? (perSec / ref).toFixed(2) + "×" : ""}`,
  );
}
