import { test } from "node:test";
import assert from "node:assert/strict";
import { loadCore, Scratch, hex } from "../../host/core/raw_exports.ts";

test("arena hands out aligned, zeroed memory and ctEqual compares", () => {
  const ex = loadCore();
  const s = new Scratch(ex, 4096);
  assert.equal(s.base % 64, 0);
  const a = s.put(hex("00112233445566778899"));
  const b = s.put(hex("00112233445566778899"));
  assert.equal(ex.ctEqual(a, b, 10), 1);
  s.u8()[b + 9] ^= 1;
  assert.equal(ex.ctEqual(a, b, 10), 0);
  assert.equal(ex.ctEqual(a, b, 9), 1);
});

test("arena memory is zero whether it existed before (cleared) or was just grown (zero by the spec), across the boundary", () => {
  const ex = loadCore();
  const mem = () => new Uint8Array((ex.memory as WebAssembly.Memory).buffer);
  ex.arenaAlloc(5 * 65536 + 1000, 64); // grown memory, its last page partly handed out
  const from = Number(ex.arenaTop());
  const size = mem().length;
  assert.ok(size - from > 4096, "slack left in the last page");
  // scribble over what exists above the arena's top: only a clear can undo that
  mem().fill(0xa5, from, size);
  const bytes = size - from + 3 * 65536 + 123; // reaches 3+ pages past the current end
  const p = Number(ex.arenaAlloc(bytes, 64));
  assert.ok(p > 0 && p + bytes > size, "the block reaches into grown memory");
  const m = mem();
  let nonzero = -1;
  for (let i = p; i < p + bytes; i++) if (m[i] !== 0) { nonzero = i; break; }
  assert.equal(nonzero, -1, `byte ${nonzero - p} of the block is not zero`);
});
