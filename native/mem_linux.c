/*
 * wesp_io: advice to the kernel about a range of the caller's memory (the
 * WASM core's linear memory), for the control path.
 *
 * Why: installing 100,000 SAs writes 262 MB of SA records the core reserved
 * at start but never touched (assembly/arena.ts does not clear grown memory,
 * on purpose), and on this VM the kernel backing that memory a 4 KiB page at
 * a time was most of the install's time in the core (docs/bench.md "Less
 * per SA").
 *
 *   memAdvise(mem: Uint8Array, offset, length, kind) -> bytes advised
 *
 * kind 1 (MEM_HUGE_PAGES): MADV_HUGEPAGE. Transparent huge pages back the
 * range 2 MiB at a time once touched; with
 * /sys/kernel/mm/transparent_hugepage/enabled at "madvise" (a common
 * default) a range only gets them when asked. Widened to whole 2 MiB blocks
 * inside mem (a huge page only backs an aligned block), so up to 2 MiB on
 * each side shares the advice. Nothing is backed here. Returns 0 when the
 * kernel refuses (no THP: EINVAL) -- advice, not a requirement.
 *
 *   memPopulate(mem: Uint8Array, offset, length) -> Promise<bytes>
 *
 * MADV_POPULATE_WRITE (Linux 5.14) on a thread of libuv's pool: the kernel
 * backs the range as if it were written, without writing it, while the
 * caller goes on (an install writes its reservation journal meanwhile).
 * Safe beside the caller's own writes to the same pages: populating only
 * faults pages in, it never changes a byte. The Uint8Array is held until
 * the work is done, so its memory cannot be freed under it. Resolves 0 where
 * the kernel has no MADV_POPULATE_WRITE (EINVAL).
 */
#define _GNU_SOURCE
#include "io_util.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* linux/mman.h, 5.14 */
#endif

#define HUGE_BYTES ((uintptr_t)2 << 20)
#define PAGE_BYTES ((uintptr_t)4096)

#define ADVISE_HUGE 1

/* The whole pages of mem covering [off, off + n), each end widened to a
 * multiple of `align` but never past mem's own whole pages. 0 on a range
 * outside mem (a RangeError is pending). */
static int mem_range(napi_env env, napi_value *argv, uintptr_t align, uintptr_t *start, uintptr_t *end) {
  void *data;
  size_t len;
  uint32_t off, n;
  if (!wio_typed(env, argv[0], napi_uint8_array, 0, &data, &len, "mem") || !wio_u32(env, argv[1], &off) ||
      !wio_u32(env, argv[2], &n))
    return 0;
  if ((size_t)off > len || (size_t)n > len - off) {
    wio_throw_range(env, "range outside mem");
    return 0;
  }
  uintptr_t lo = (uintptr_t)data, hi = lo + len;
  /* never memory the caller does not own: only whole pages inside mem */
  uintptr_t first = (lo + PAGE_BYTES - 1) & ~(PAGE_BYTES - 1), last = hi & ~(PAGE_BYTES - 1);
  *start = (lo + off) & ~(align - 1);
  *end = (lo + off + n + align - 1) & ~(align - 1);
  if (*start < first) *start = first;
  if (*end > last) *end = last;
  if (n == 0 || *end < *start) *end = *start;
  return 1;
}

static napi_value mem_advise(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  uint32_t kind;
  uintptr_t start, end;
  if (!wio_args(env, info, 4, argv) || !wio_u32(env, argv[3], &kind)) return NULL;
  if (kind != ADVISE_HUGE) return wio_throw_range(env, "memAdvise: unknown kind");
  if (!mem_range(env, argv, HUGE_BYTES, &start, &end)) return NULL;
  if (end == start) return wio_int(env, 0);
  if (madvise((void *)start, end - start, MADV_HUGEPAGE) != 0) {
    if (errno == EINVAL) return wio_int(env, 0);
    return wio_throw_errno(env, "madvise", errno);
  }
  return wio_int(env, (int64_t)(end - start));
}

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref mem; /* keeps the memory alive while the pool thread works on it */
  uintptr_t start, end;
  int err;
} populate_job;

static void populate_exec(napi_env env, void *data) {
  populate_job *j = (populate_job *)data;
  j->err = madvise((void *)j->start, j->end - j->start, MADV_POPULATE_WRITE) == 0 ? 0 : errno;
}

static void populate_done(napi_env env, napi_status status, void *data) {
  populate_job *j = (populate_job *)data;
  napi_value v;
  if (status == napi_ok && (j->err == 0 || j->err == EINVAL)) {
    napi_create_int64(env, j->err == 0 ? (int64_t)(j->end - j->start) : 0, &v);
    napi_resolve_deferred(env, j->deferred, v);
  } else {
    napi_value msg;
    char text[96];
    snprintf(text, sizeof text, "memPopulate: %s", status == napi_ok ? strerror(j->err) : "cancelled");
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &v);
    napi_reject_deferred(env, j->deferred, v);
  }
  napi_delete_reference(env, j->mem);
  napi_delete_async_work(env, j->work);
  free(j);
}

static napi_value mem_populate(napi_env env, napi_callback_info info) {
  napi_value argv[3], promise, name;
  uintptr_t start, end;
  if (!wio_args(env, info, 3, argv) || !mem_range(env, argv, PAGE_BYTES, &start, &end)) return NULL;
  populate_job *j = (populate_job *)calloc(1, sizeof *j);
  if (j == NULL) return wio_throw_errno(env, "memPopulate", ENOMEM);
  j->start = start;
  j->end = end;
  if (napi_create_promise(env, &j->deferred, &promise) != napi_ok) goto fail;
  if (napi_create_reference(env, argv[0], 1, &j->mem) != napi_ok) goto fail;
  napi_create_string_utf8(env, "wesp_io.memPopulate", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, populate_exec, populate_done, j, &j->work) != napi_ok) goto fail;
  if (napi_queue_async_work(env, j->work) != napi_ok) goto fail;
  return promise;
fail:
  /* nothing queued: undo what was made and throw (the promise is dropped unsettled) */
  if (j->work != NULL) napi_delete_async_work(env, j->work);
  if (j->mem != NULL) napi_delete_reference(env, j->mem);
  free(j);
  return wio_throw_errno(env, "memPopulate", EIO);
}

int wio_init_mem(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "memAdvise", NAPI_AUTO_LENGTH, mem_advise, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "memAdvise", fn) != napi_ok)
    return 0;
  if (napi_create_function(env, "memPopulate", NAPI_AUTO_LENGTH, mem_populate, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "memPopulate", fn) != napi_ok)
    return 0;
  return 1;
}
