// Constant-time helpers shared by every primitive.
//
// Tags are compared without an early exit so the time taken does not reveal
// how many leading bytes of a forged ICV were right (RFC 4303 §3.4.4 asks for
// the ICV check; timing-safety is what keeps it meaningful).

/** Returns true when the `len` bytes at `a` and `b` are equal; time depends on `len` only. */
export function ctEqual(a: usize, b: usize, len: i32): bool {
  let diff: u64 = 0;
  let i = 0;
  for (; i + 8 <= len; i += 8) diff |= load<u64>(a + i) ^ load<u64>(b + i);
  for (; i < len; i++) diff |= <u64>(load<u8>(a + i) ^ load<u8>(b + i));
  return diff == 0;
}

/** Overwrites `len` bytes with zeros (keys when an SA is removed, scratch after use). */
export function wipe(p: usize, len: i32): void {
  memory.fill(p, 0, <usize>len);
}
