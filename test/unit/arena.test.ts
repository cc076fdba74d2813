import { test } from "node:test";
import assert from "node:assert/strict";
import { loadCore, Scratch, hex } from "../helpers/wasm.ts";

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
