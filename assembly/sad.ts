// Security Association Database for inbound traffic (RFC 4301 §4.4.2):
// SPI → SA in O(1), plus plain IP-in-IP / GRE SAs found by outer addresses.
//
// A chained hash table: `buckets` (a power of two ≥ maxSas) heads of i32 SA
// ids, the chain threaded through each record's SA_NEXT field, so the table
// costs 4 bytes per bucket and nothing per lookup beyond the chain walk.
//
//   bucket[h(key)] ──► SA 17 ──SA_NEXT──► SA 3 ──SA_NEXT──► -1
//
// Keys are 32 bits: the SPI for ESP SAs (RFC 4301 §4.1: for unicast SAs the
// SPI alone may select the SA, and wesp allocates inbound SPIs uniquely), a
// fold of the remote outer address for plain tunnels. Both kinds share the
// table; a chain walk compares the full identity, so a colliding key only
// costs a step. Fibonacci hashing spreads SPIs that differ in any bits.
import { arenaAlloc } from "./arena";
import { DIR_IN, MODE_IPIP, SA_DIR, SA_FAMILY, SA_FLAGS, SA_GREKEY, SA_LOCAL, SA_MODE, SA_NEXT, SA_REMOTE, SA_SPI, SA_STATE, SA_SUITE, SUITE_NONE, FLAG_GRE_KEY } from "./layout";
import { addrEq } from "./ip";
import { saCount, saRec } from "./sa";

let buckets: usize = 0;
let bits: i32 = 0;

/** Sizes the bucket array for `maxSas` SAs (4 bytes per bucket). */
export function sadInit(maxSas: i32): bool {
  bits = 4;
  while ((1 << bits) < maxSas && bits < 24) bits++;
  buckets = arenaAlloc(<usize>(4 << bits), 64);
  if (buckets == 0) return false;
  memory.fill(buckets, 0xff, <usize>(4 << bits)); // every head -1
  return true;
}

// @ts-ignore: decorator
@inline function bucketOf(key: u32): usize {
  return buckets + (<usize>((key * 0x9e3779b1) >> (32 - bits)) << 2);
}

/** The 32-bit key of a plain tunnel: a fold of its remote address (4 or 16 bytes at `remote`, record or packet). */
export function tunnelKey(remote: usize, family: i32, mode: u8): u32 {
  let k = load<u32>(remote);
  if (family == 6) k ^= load<u32>(remote + 4) ^ load<u32>(remote + 8) ^ load<u32>(remote + 12);
  return k ^ (<u32>mode * 0x01000193);
}

export function sadInsert(id: i32, key: u32): void {
  const b = bucketOf(key);
  store<i32>(saRec(id) + SA_NEXT, load<i32>(b));
  store<i32>(b, id);
}

export function sadRemove(id: i32, key: u32): void {
  let link = bucketOf(key);
  let cur = load<i32>(link);
  while (cur >= 0) {
    const rec = saRec(cur);
    if (cur == id) {
      store<i32>(link, load<i32>(rec + SA_NEXT));
      store<i32>(rec + SA_NEXT, -1);
      return;
    }
    link = rec + SA_NEXT;
    cur = load<i32>(link);
  }
}

/** The live inbound ESP SA with this SPI, or -1. */
export function sadFindSpi(spi: u32): i32 {
  let cur = load<i32>(bucketOf(spi));
  while (cur >= 0) {
    const rec = saRec(cur);
    if (load<u32>(rec + SA_SPI) == spi && load<u8>(rec + SA_SUITE) != SUITE_NONE) return cur;
    cur = load<i32>(rec + SA_NEXT);
  }
  return -1;
}

/**
 * The live inbound plain tunnel SA (MODE_IPIP / MODE_GRE) whose remote and
 * local outer addresses are `remote`/`local` (packet pointers of `family`)
 * and, for GRE, whose key matches (`hasKey`, `key`; RFC 2890 §2.1: a key
 * present on one side only is a mismatch). -1 when none.
 */
export function sadFindTunnel(mode: u8, family: i32, remote: usize, local: usize, hasKey: bool, key: u32): i32 {
  let cur = load<i32>(bucketOf(tunnelKey(remote, family, mode)));
  while (cur >= 0) {
    const rec = saRec(cur);
    if (
      load<u8>(rec + SA_MODE) == mode &&
      <i32>load<u8>(rec + SA_FAMILY) == family &&
      addrEq(rec + SA_REMOTE, remote, family) &&
      addrEq(rec + SA_LOCAL, local, family)
    ) {
      if (mode == MODE_IPIP) return cur;
      const saHasKey = (load<u16>(rec + SA_FLAGS) & FLAG_GRE_KEY) != 0;
      if (saHasKey == hasKey && (!hasKey || load<u32>(rec + SA_GREKEY) == key)) return cur;
    }
    cur = load<i32>(rec + SA_NEXT);
  }
  return -1;
}

/** Reference lookup by linear scan over every record: the property test's model. */
export function sadFindSpiLinear(spi: u32): i32 {
  const n = saCount();
  for (let i = 0; i < n; i++) {
    const rec = saRec(i);
    if (
      load<u8>(rec + SA_STATE) == 1 &&
      load<u8>(rec + SA_DIR) == DIR_IN &&
      load<u8>(rec + SA_SUITE) != SUITE_NONE &&
      load<u32>(rec + SA_SPI) == spi
    ) return i;
  }
  return -1;
}
