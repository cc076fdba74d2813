/*
 * Shared helpers of the wesp_io addon: argument unpacking and error throwing.
 *
 * Every exported function takes plain numbers and typed arrays (never
 * objects on the packet path), so the helpers below are all about pulling a
 * pointer and a length out of a TypedArray and checking its element type.
 */
#ifndef WESP_IO_UTIL_H
#define WESP_IO_UTIL_H

#define NAPI_VERSION 8
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

/* Largest batch one call handles: the mmsghdr/iovec arrays live on the C
 * stack (about 200 B per slot), and wireguard-go settles on 128. */
#define WIO_MAX_BATCH 256

/* Bail out of a napi function: the exception is already pending. */
#define WIO_TRY(call)                                                          \
  do {                                                                         \
    if ((call) != napi_ok) return NULL;                                        \
  } while (0)

napi_value wio_throw_errno(napi_env env, const char *what, int err);
napi_value wio_throw_range(napi_env env, const char *msg);
napi_value wio_throw_type(napi_env env, const char *msg);

int wio_args(napi_env env, napi_callback_info info, size_t want,
             napi_value *argv);
int wio_i32(napi_env env, napi_value v, int32_t *out);
int wio_u32(napi_env env, napi_value v, uint32_t *out);
int wio_bool(napi_env env, napi_value v, int *out);

/* A typed array of the given type, or NULL/0 when `optional` and the value is
 * null/undefined. `len` is in elements. */
int wio_typed(napi_env env, napi_value v, napi_typedarray_type type,
              int optional, void **data, size_t *len, const char *name);

/* The string value into buf (NUL-terminated), failing when it does not fit. */
int wio_string(napi_env env, napi_value v, char *buf, size_t cap,
               const char *name);

napi_value wio_int(napi_env env, int64_t v);

/* The pointer a napi external holds (a poll handle, an io_uring reader), or
 * NULL with a TypeError `msg` pending when v is not an external. */
void *wio_external(napi_env env, napi_value v, const char *msg);

/* The ring arguments every batch call takes: (mem, offs, lens). */
typedef struct {
  uint8_t *mem;     /* the caller's memory (WASM linear memory) */
  size_t mem_len;   /* its length in bytes */
  uint32_t *offs;   /* offs[i]: where slot i starts in mem */
  uint32_t *lens;   /* lens[i]: bytes of packet i */
  uint32_t count;   /* batch size, clamped to WIO_MAX_BATCH */
} wio_ring;

/* Unpacks argv[0..2] = (mem: Uint8Array, offs: Uint32Array, lens:
 * Uint32Array) and checks that offs[i] + span (or + lens[i] when
 * span_from_lens) lies inside mem for every i < count, so the batch loops
 * cannot touch memory outside the caller's buffer whatever the numbers say.
 * Reads (span = slotCap) clamp count to WIO_MAX_BATCH; writes (span from
 * lens) throw beyond it rather than drop packets silently. */
int wio_ring_unpack(napi_env env, napi_value *argv, uint32_t count,
                    uint32_t span, int span_from_lens, wio_ring *r);

/* Counters every batch call adds to, in a caller-owned Uint32Array(4) (the
 * wrappers keep one per fd, so these are running totals; they wrap). */
enum {
  WIO_ST_FAILED = 0,    /* packets the kernel refused, skipped */
  WIO_ST_ERRNO = 1,     /* errno of the last refusal */
  WIO_ST_UNSENT = 2,    /* left unsent: socket still full after the timeout */
  WIO_ST_TRUNCATED = 3, /* received packets longer than slotCap, dropped */
  WIO_ST_COUNT = 4
};
uint32_t *wio_stats(napi_env env, napi_value v);
/* The same, with at least `need` elements (offloading fds count more). */
uint32_t *wio_stats_n(napi_env env, napi_value v, size_t need);

/* Every fd the addon opens is owned by the env (main thread or worker) that
 * opened it until close() is called on it; when an env is torn down (a
 * worker terminated, the process exiting) the fds it still owns are closed,
 * so a terminated worker releases its TUN queue and sockets. */
void wio_own_fd(napi_env env, int fd);

/* Registration of the functions of each file on the module's exports. */
typedef struct {
  const char *name;
  napi_callback fn;
} wio_fn;
int wio_export(napi_env env, napi_value exports, const wio_fn *fns, size_t n);

/* Per-file export tables (defined in tun_linux.c, sock_linux.c, ...). */
int wio_init_fd(napi_env env, napi_value exports);
int wio_init_tun(napi_env env, napi_value exports);
int wio_init_sock(napi_env env, napi_value exports);
int wio_init_poll(napi_env env, napi_value exports);
int wio_init_tun_offload(napi_env env, napi_value exports);
int wio_init_udp_offload(napi_env env, napi_value exports);
int wio_init_filter(napi_env env, napi_value exports);
int wio_init_mem(napi_env env, napi_value exports);
int wio_init_tun_uring(napi_env env, napi_value exports);

#endif
