// Bump allocator over linear memory, for the control path only.
//
// Everything the data plane touches (ring, SA records, hash tables, counters)
// is carved out of this arena once, when the core is initialised or an SA is
// installed; the packet path never calls it, so memory never grows while
// packets flow (STYLE.md §2). There is no free: pools built on top of it keep
// their own free lists.

const PAGE: usize = 65536;

let top: usize = 0;

function alignUp(x: usize, a: usize): usize {
  return (x + a - 1) & ~(a - 1);
}

/** Reserves `bytes` zeroed bytes aligned to `align` (a power of two); returns 0 if memory cannot grow. */
export function arenaAlloc(bytes: usize, align: usize): usize {
  if (top == 0) top = alignUp(__heap_base, 64);
  const start = alignUp(top, align);
  const end = start + bytes;
  const have = (<usize>memory.size()) * PAGE;
  if (end > have) {
    const pages = <i32>((end - have + PAGE - 1) / PAGE);
    if (memory.grow(pages) < 0) return 0;
  }
  top = end;
  // Pages memory.grow just added are zero already (WebAssembly core spec,
  // memory.grow): clearing them would only make the OS back every page of a
  // large init at once (a hub's 10,000 inbound SAs reserve 320 MiB of replay
  // windows, most never touched) and cost a second per 300 MiB. Only memory
  // that existed before this call is cleared.
  const old = end < have ? end : have;
  if (old > start) memory.fill(start, 0, old - start);
  return start;
}

/** First byte not yet handed out: lets tests prove memory stays flat. */
export function arenaTop(): usize {
  return top;
}
