// The WASM module's exports: numbers in, numbers out (STYLE.md §3).
// Only host/core/ calls the data-plane ABI; tests also reach the primitives
// below to check them against published vectors and reference code.
export { arenaAlloc, arenaTop } from "./arena";
export { ctEqual } from "./crypto/ct";
export { sha256 } from "./crypto/sha256";
export { HMAC_CTX_SIZE, hmacSha256Init, hmacSha256 } from "./crypto/hmac_sha256";
export {
  REPLAY_HDR_SIZE, REPLAY_OK, REPLAY_DUPLICATE, REPLAY_TOO_OLD,
  replayWords, replayInit, replayCheck, replayAdvance,
} from "./replay";
export { esnInfer } from "./esn";
export * from "./api";
export {
  AES_CTX_SIZE, aesInit, aesEncryptBlock, aesDecryptBlock, aesEncrypt8, aesDecrypt8,
} from "./crypto/aes";
export { ghashStart, ghashBytes, ghashFinish } from "./crypto/ghash";
export {
  GCM_CTX_SIZE, GCM_MAX_LEN, gcmInit, gcmSeal, gcmOpen, gcmIvToJ0, gcmSealJ0, gcmOpenJ0,
} from "./crypto/gcm";
export { cbcEncrypt, cbcDecrypt } from "./crypto/cbc";
export { chacha20Xor, chacha20Block, chacha20Blocks4 } from "./crypto/chacha20";
export { chacha20BlockRef, chacha20XorRef } from "./crypto/chacha20_ref";
export { poly1305Mac, poly1305MacRef } from "./crypto/poly1305";
export { chachaPolySeal, chachaPolyOpen } from "./crypto/chacha20poly1305";
export { aesWipeScratch } from "./crypto/aes";
export { gcmWipeScratch } from "./crypto/gcm";
export { cbcWipeScratch } from "./crypto/cbc";
