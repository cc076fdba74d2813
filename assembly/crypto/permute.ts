// A byte permutation of a v128 by a mask that is not a compile-time constant
// (GHASH's nibble lookups, fixsliced AES's per-round rotations), every index
// below 16.
//
// With relaxed SIMD enabled at compile time (the build/wesp.relaxed.wasm
// build: host/core/core_build.ts) this is i8x16.relaxed_swizzle, which only
// differs from i8x16.swizzle for indices ≥ 16 — never the case here, so both
// builds compute the same bits — and for which V8 emits the bare pshufb,
// without the paddusb it puts in front of every swizzle whose mask is not a
// constant (to zero lanes ≥ 16). Constant time either way: the permute's
// timing does not depend on the index values.

/** Lane m of the result = lane mask[m] of x; mask lanes < 16. */
// @ts-ignore: decorator
@inline export function permute(x: v128, mask: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return i8x16.relaxed_swizzle(x, mask);
  return i8x16.swizzle(x, mask);
}
