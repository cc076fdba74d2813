// host/ike/runtime.ts SpiAllocator: the inbound SPIs IKE hands out in `wesp up` are
// ≥ 256 (RFC 4303 §2.1), never a static SA's, never a live CHILD_SA's, never one
// handed out in the last ten minutes; a scripted random source walks every rule.
import { test } from "node:test";
import assert from "node:assert/strict";
import { SpiAllocator } from "../../host/ike/runtime.ts";

const be = (n: number) => Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);

function scripted(values: number[]) {
  const left = [...values];
  return (n: number) => {
    assert.equal(n, 4);
    const v = left.shift();
    assert.ok(v !== undefined, "the allocator drew more than the script holds");
    return be(v);
  };
}

test("skips reserved, static, live and recently handed-out SPIs", () => {
  let now = 0;
  const live = new Set([0x2000]);
  const spis = new SpiAllocator(() => ({ statics: new Set([0x1000]), live }), scripted([0, 255, 0x1000, 0x2000, 0x3000, 0x3000, 0xffffffff, 0x3000]), () => now);
  assert.equal(spis.next(), 0x3000, "0, 255 (reserved), a static and a live SPI are passed over");
  assert.equal(spis.next(), 0xffffffff, "0x3000 was just handed out; the top of the range is fine");
  now += 10 * 60_000 + 1;
  assert.equal(spis.next(), 0x3000, "after ten minutes, not live: free again");
});

test("a handed-out SPI that became live stays taken past the quarantine", () => {
  let now = 0;
  const live = new Set<number>();
  const spis = new SpiAllocator(() => ({ statics: new Set(), live }), scripted([0x5000, 0x5000, 0x6000]), () => now);
  assert.equal(spis.next(), 0x5000);
  live.add(0x5000);
  now += 60 * 60_000;
  assert.equal(spis.next(), 0x6000);
});

test("a random source that only ever returns taken values is an error, not a hang", () => {
  const spis = new SpiAllocator(() => ({ statics: new Set(), live: new Set() }), () => be(7));
  assert.throws(() => spis.next(), /no free SPI/);
});

test("for a packet worker: an SPI in its residue class (the kernel steers SPI mod N), reserved and top values still refused", () => {
  // 0xffffffff ≡ 0 (mod 3), so for worker 1 of 3 it becomes 0x100000000: out of range, drawn again;
  // 2 becomes 1: reserved (RFC 4303 §2.1), drawn again
  const spis = new SpiAllocator(() => ({ statics: new Set(), live: new Set() }), scripted([0xffffffff, 2, 0x12345678, 0x9abcdef0, 0x55555555]));
  assert.equal(spis.next({ worker: 1, of: 3 }), 0x12345678 - (0x12345678 % 3) + 1);
  const got = spis.next({ worker: 2, of: 3 });
  assert.equal(got % 3, 2);
  assert.ok(got >= 256 && got <= 0xffffffff);
  const w0 = spis.next({ worker: 0, of: 2 });
  assert.equal(w0 % 2, 0);
});
