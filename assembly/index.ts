// The WASM module's exports: numbers in, numbers out (STYLE.md §3).
// Only host/core/ calls the data-plane ABI; tests also reach the primitives
// below to check them against published vectors and reference code.
export { arenaAlloc, arenaTop } from "./arena";
export { ctEqual } from "./crypto/ct";
