// The core's SA records backed by huge pages (host/core/memory_linux.ts,
// native/mem_linux.c): asked for at create where the kernel offers them,
// never for memory outside the core's own, and changing nothing an SA does.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { SA_SIZE } from "../../host/core/abi.ts";
import { packagePath } from "../../host/util/package_root.ts";
import { keysFor, makeCore } from "./core-helpers.ts";

const ADDON = process.env.WESP_IO_ADDON ?? packagePath("native", "build", "Release", "wesp_io.node");
/** THP the kernel gives on request (enabled: "always" or "madvise"). */
const thp = (() => {
  try {
    return !/\[never\]/.test(readFileSync("/sys/kernel/mm/transparent_hugepage/enabled", "utf8"));
  } catch {
    return false;
  }
})();
const skip = process.platform !== "linux" || !existsSync(ADDON) || !thp ? "needs Linux, the wesp_io addon and transparent huge pages" : false;

test("Core.create asks for huge pages over every SA record (widened to 2 MiB blocks inside the memory), or not when told", { skip }, async () => {
  const maxSas = 4096;
  const c = await makeCore({ maxSas });
  assert.ok(c.hugePageBytes >= maxSas * SA_SIZE, `${c.hugePageBytes} bytes advised`);
  assert.ok(c.hugePageBytes <= maxSas * SA_SIZE + 2 * (2 << 20), "at most a block beyond each end");
  const off = await makeCore({ maxSas, hugePages: false });
  assert.equal(off.hugePageBytes, 0);
});

test("populateSas: the records the first apply fills are backed in the background from create on (whole pages), none when not asked", { skip }, async () => {
  const c = await makeCore({ maxSas: 4096, populateSas: 1000 });
  const n = await c.populated;
  assert.ok(n >= 1000 * SA_SIZE && n <= 1000 * SA_SIZE + 2 * 4096, `${n} bytes populated`);
  assert.equal(n % 4096, 0);
  // never past the records the core has
  assert.ok((await (await makeCore({ maxSas: 100, populateSas: 5000 })).populated) <= 100 * SA_SIZE + 2 * 4096);
  assert.equal(await (await makeCore({ maxSas: 4096 })).populated, 0);
});

test("SAs in huge-page records install, seal and are removed as in any other", { skip }, async () => {
  const c = await makeCore({ maxSas: 2048 });
  assert.ok(c.hugePageBytes > 0);
  const k = keysFor("aes-gcm-16", 32);
  const ids: number[] = [];
  for (let i = 0; i < 1500; i++) ids.push(c.addSa({ direction: i % 2 ? "in" : "out", suite: "aes-gcm-16", mode: "tunnel", spi: 0x1000 + i, key: k.key, salt: k.salt, peerId: 1, local: "192.0.2.1", remote: "192.0.2.2", replayWindow: 64 }));
  assert.deepEqual(ids, ids.map((_, i) => i));
  for (const id of ids) assert.equal(c.saState(id).spi, 0x1000 + id);
  for (const id of ids) c.removeSa(id);
});

test("memAdvise and memPopulate refuse a range outside the memory they are given, and do nothing for an empty one", { skip }, async () => {
  const { io, MEM_HUGE_PAGES } = await import("../../host/io/native_linux.ts");
  const mem = new Uint8Array(new WebAssembly.Memory({ initial: 64 }).buffer); // 4 MiB
  assert.throws(() => io.memAdvise(mem, mem.length, 1, MEM_HUGE_PAGES), RangeError);
  assert.throws(() => io.memAdvise(mem, 0, mem.length + 1, MEM_HUGE_PAGES), RangeError);
  assert.throws(() => io.memAdvise(mem, 0, 1, 99), RangeError);
  assert.equal(io.memAdvise(mem, 0, 0, MEM_HUGE_PAGES), 0);
  const n = io.memAdvise(mem, 4096, 8192, MEM_HUGE_PAGES);
  assert.ok(n <= mem.length, "never past the memory given");
  assert.throws(() => io.memPopulate(mem, 1, mem.length), RangeError);
  assert.equal(await io.memPopulate(mem, 0, 0), 0);
  assert.equal(await io.memPopulate(mem, 0, mem.length), mem.length);
  assert.ok(mem.every((b) => b === 0), "populating writes nothing");
});
