// Advice to the kernel about the core's linear memory (Linux; the wesp_io
// addon's memAdvise and memPopulate, native/mem_linux.c). The core reserves
// every SA record at init and touches one only when an SA is installed in it
// (arena.ts: grown memory is not cleared), so the first install of many SAs
// is where the kernel backs that memory: 100,000 SAs = 262 MB of records,
// 64,000 pages of 4 KiB, each a page fault, which on this VM cost about 1 s
// of a 1.3-s `addSa` loop (docs/bench.md "Less per SA").
//
//   - huge pages: asked for over every record (memAdvise), the kernel backs
//     them 2 MiB at a time when touched. Nothing is backed in advance.
//   - populate: the records the first apply will fill are backed from
//     create on, on a thread of libuv's pool (memPopulate), while the host
//     does the rest of its start and the install's journal; the install
//     then finds them backed. The memory is the same the install would
//     back; the work moves off the install's thread, not away.
//
// Advice only: without the addon (not built, not Linux) or without the
// kernel's support nothing changes but the speed of the first install.

type Native = typeof import("../io/native_linux.ts");

/** The addon where it is built and new enough, else null. */
async function native(): Promise<Native | null> {
  if (process.platform !== "linux") return null;
  try {
    const n = await import("../io/native_linux.ts");
    // an addon built before these existed has neither
    return typeof n.io.memAdvise === "function" && typeof n.io.memPopulate === "function" ? n : null;
  } catch {
    return null; // not built: plain pages
  }
}

/** Asks for huge pages over `length` bytes of `mem` from `offset`; bytes advised, 0 when it cannot. */
export async function adviseHugePages(mem: Uint8Array, offset: number, length: number): Promise<number> {
  const n = length > 0 ? await native() : null;
  return n ? n.io.memAdvise(mem, offset, length, n.MEM_HUGE_PAGES) : 0;
}

/**
 * Starts backing `length` bytes of `mem` from `offset` in the background;
 * resolves with the bytes backed (0 when it cannot). Never rejects: a
 * failure only leaves the install to back the memory itself.
 */
export async function populateInBackground(mem: Uint8Array, offset: number, length: number): Promise<number> {
  const n = length > 0 ? await native() : null;
  if (!n) return 0;
  try {
    return await n.io.memPopulate(mem, offset, length);
  } catch {
    return 0;
  }
}
