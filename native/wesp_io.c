/*
 * wesp_io: the native side of wesp's packet I/O (Linux only).
 *
 * Why an addon at all: Node cannot open a TUN device (it needs an ioctl) and
 * node:dgram moves one datagram per syscall and per JS callback, which caps a
 * forwarder near 80 kpps per core. This addon does the few syscalls the host
 * needs -- TUNSETIFF, read/write, recvmmsg/sendmmsg, setns, poll -- straight
 * into and out of caller-owned memory (the WASM ring), one call per batch.
 * docs/io.md has the measurements against koffi, raw-socket and dgram.
 *
 * Shape of the API: flat functions over file descriptor numbers and typed
 * arrays. No objects are built on the packet path; the TypeScript wrappers in
 * host/tun and host/net give it types.
 *
 * Context-aware (NAPI_MODULE_INIT, no global mutable state) so that every
 * node:worker_threads worker can load it and own its fds and poll handles.
 *
 * This file: the module entry, argument helpers, and the fd-level calls that
 * are not specific to TUN or sockets (close, eventfd wakers, a bounded poll
 * for worker loops that prefer to block, and network-namespace switching).
 */
#define _GNU_SOURCE
#include "io_util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <uv.h>

/* ---- helpers ---------------------------------------------------------- */

napi_value wio_throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  /* error.code is the errno name, as Node's own errors have it (libuv's
   * codes are the negated errno values on Linux); error.errno the number. */
  const char *name = uv_err_name(-err);
  napi_value vcode, vmsg, verr, vnum;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &vcode);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &vmsg);
  napi_create_error(env, vcode, vmsg, &verr);
  napi_create_int32(env, err, &vnum);
  napi_set_named_property(env, verr, "errno", vnum);
  napi_throw(env, verr);
  return NULL;
}

napi_value wio_throw_range(napi_env env, const char *msg) {
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
  return NULL;
}

napi_value wio_throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return NULL;
}

int wio_args(napi_env env, napi_callback_info info, size_t want,
             napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return 0;
  /* Missing trailing arguments read as undefined (napi fills them). */
  return 1;
}

int wio_i32(napi_env env, napi_value v, int32_t *out) {
  if (napi_get_value_int32(env, v, out) != napi_ok) {
    wio_throw_type(env, "expected a number");
    return 0;
  }
  return 1;
}

int wio_u32(napi_env env, napi_value v, uint32_t *out) {
  if (napi_get_value_uint32(env, v, out) != napi_ok) {
    wio_throw_type(env, "expected a number");
    return 0;
  }
  return 1;
}

int wio_bool(napi_env env, napi_value v, int *out) {
  bool b = false;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return 0;
  if (t == napi_undefined || t == napi_null) {
    *out = 0;
    return 1;
  }
  if (napi_get_value_bool(env, v, &b) != napi_ok) {
    wio_throw_type(env, "expected a boolean");
    return 0;
  }
  *out = b ? 1 : 0;
  return 1;
}

int wio_typed(napi_env env, napi_value v, napi_typedarray_type type,
              int optional, void **data, size_t *len, const char *name) {
  char msg[128];
  napi_typedarray_type got;
  /* One napi call on the fast path: it fails (without throwing) for
   * anything that is not a typed array. data already points at byteOffset
   * inside the (possibly shared) buffer. */
  if (napi_get_typedarray_info(env, v, &got, len, data, NULL, NULL) ==
      napi_ok) {
    if (got == type) return 1;
    snprintf(msg, sizeof msg, "%s has the wrong element type", name);
    wio_throw_type(env, msg);
    return 0;
  }
  napi_valuetype t;
  if (optional && napi_typeof(env, v, &t) == napi_ok &&
      (t == napi_undefined || t == napi_null)) {
    *data = NULL;
    *len = 0;
    return 1;
  }
  snprintf(msg, sizeof msg, "%s must be a typed array", name);
  wio_throw_type(env, msg);
  return 0;
}

int wio_string(napi_env env, napi_value v, char *buf, size_t cap,
               const char *name) {
  char msg[128];
  size_t n = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &n) != napi_ok) {
    snprintf(msg, sizeof msg, "%s must be a string", name);
    wio_throw_type(env, msg);
    return 0;
  }
  if (n + 1 > cap) {
    snprintf(msg, sizeof msg, "%s is longer than %zu bytes", name, cap - 1);
    wio_throw_range(env, msg);
    return 0;
  }
  napi_get_value_string_utf8(env, v, buf, cap, &n);
  return 1;
}

napi_value wio_int(napi_env env, int64_t v) {
  napi_value r;
  napi_create_int64(env, v, &r);
  return r;
}

void *wio_external(napi_env env, napi_value v, const char *msg) {
  void *data = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external ||
      napi_get_value_external(env, v, &data) != napi_ok) {
    wio_throw_type(env, msg);
    return NULL;
  }
  return data;
}

int wio_export(napi_env env, napi_value exports, const wio_fn *fns, size_t n) {
  for (size_t i = 0; i < n; i++) {
    napi_value f;
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn,
                             NULL, &f) != napi_ok)
      return 0;
    if (napi_set_named_property(env, exports, fns[i].name, f) != napi_ok)
      return 0;
  }
  return 1;
}

int wio_ring_unpack(napi_env env, napi_value *argv, uint32_t count,
                    uint32_t span, int span_from_lens, wio_ring *r) {
  size_t noffs, nlens;
  if (!wio_typed(env, argv[0], napi_uint8_array, 0, (void **)&r->mem,
                 &r->mem_len, "mem") ||
      !wio_typed(env, argv[1], napi_uint32_array, 0, (void **)&r->offs, &noffs,
                 "offs") ||
      !wio_typed(env, argv[2], napi_uint32_array, 0, (void **)&r->lens, &nlens,
                 "lens"))
    return 0;
  /* Reads may be offered more room than one call fills; a write or send of
   * more than one call takes would silently lose packets, so it throws. */
  if (count > WIO_MAX_BATCH) {
    if (span_from_lens) {
      wio_throw_range(env, "batch larger than MAX_BATCH");
      return 0;
    }
    count = WIO_MAX_BATCH;
  }
  if (count > noffs || count > nlens) {
    wio_throw_range(env, "offs/lens shorter than the batch");
    return 0;
  }
  for (uint32_t i = 0; i < count; i++) {
    uint64_t end = (uint64_t)r->offs[i] + (span_from_lens ? r->lens[i] : span);
    if (end > r->mem_len) {
      wio_throw_range(env, "slot outside mem");
      return 0;
    }
  }
  r->count = count;
  return 1;
}

uint32_t *wio_stats_n(napi_env env, napi_value v, size_t need) {
  uint32_t *st;
  size_t n;
  if (!wio_typed(env, v, napi_uint32_array, 0, (void **)&st, &n, "stats"))
    return NULL;
  if (n < need) {
    char msg[64];
    snprintf(msg, sizeof msg, "stats needs %zu elements", need);
    wio_throw_range(env, msg);
    return NULL;
  }
  return st;
}

uint32_t *wio_stats(napi_env env, napi_value v) { return wio_stats_n(env, v, WIO_ST_COUNT); }

/* ---- fds owned per env ------------------------------------------------ */

/* Depth of nested netnsEnter calls one env may have open. */
#define WIO_NETNS_DEPTH 8

/* Instance data of one env: the fds it opened and has not closed. A plain
 * array: an env holds a handful (one TUN queue, a socket or two, a waker).
 * The namespace fds netnsEnter handed out are kept apart, innermost last:
 * only netnsRestore takes them back, and close() never does. */
typedef struct {
  int *fds;
  size_t n, cap;
  int ns[WIO_NETNS_DEPTH];
  size_t nns;
} owned_fds;

static owned_fds *owned(napi_env env) {
  void *p = NULL;
  napi_get_instance_data(env, &p);
  return (owned_fds *)p;
}

void wio_own_fd(napi_env env, int fd) {
  owned_fds *o = owned(env);
  if (o == NULL) return;
  if (o->n == o->cap) {
    size_t cap = o->cap ? o->cap * 2 : 16;
    int *fds = (int *)realloc(o->fds, cap * sizeof *fds);
    if (fds == NULL) return; /* then this fd is merely not closed at teardown */
    o->fds = fds;
    o->cap = cap;
  }
  o->fds[o->n++] = fd;
}

/* Forgets fd; returns whether this env owned it. */
static int disown_fd(napi_env env, int fd) {
  owned_fds *o = owned(env);
  if (o == NULL) return 0;
  for (size_t i = 0; i < o->n; i++) {
    if (o->fds[i] == fd) {
      o->fds[i] = o->fds[--o->n];
      return 1;
    }
  }
  return 0;
}

/* Env teardown: runs after the async cleanup hooks that stopped the polls. */
static void close_owned(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  owned_fds *o = (owned_fds *)data;
  for (size_t i = 0; i < o->n; i++) close(o->fds[i]);
  for (size_t i = 0; i < o->nns; i++) close(o->ns[i]);
  free(o->fds);
  free(o);
}

/* ---- fd-level calls --------------------------------------------------- */

/* close(fd) of an fd this env opened. Callers stop any poll handle on the
 * fd first (epoll must not watch a number that may be reused). Refuses fds
 * the env does not own, so a stale number can never close someone else's. */
static napi_value fd_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!wio_args(env, info, 1, argv) || !wio_i32(env, argv[0], &fd)) return NULL;
  if (!disown_fd(env, fd)) return wio_throw_errno(env, "close (not opened here)", EBADF);
  if (close(fd) < 0 && errno != EINTR) return wio_throw_errno(env, "close", errno);
  return NULL;
}

/* eventfdOpen() -> fd. A waker: any thread (or process holding the fd) can
 * make a worker's waitReadable() return at once, e.g. on shutdown. */
static napi_value ev_open(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return wio_throw_errno(env, "eventfd", errno);
  wio_own_fd(env, fd);
  return wio_int(env, fd);
}

/* eventfdSignal(fd): add one to the counter (the fd becomes readable). */
static napi_value ev_signal(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!wio_args(env, info, 1, argv) || !wio_i32(env, argv[0], &fd)) return NULL;
  uint64_t one = 1;
  if (write(fd, &one, sizeof one) < 0 && errno != EAGAIN)
    return wio_throw_errno(env, "eventfd write", errno);
  return NULL;
}

/* eventfdDrain(fd) -> count since the last drain (0 when not signalled). */
static napi_value ev_drain(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!wio_args(env, info, 1, argv) || !wio_i32(env, argv[0], &fd)) return NULL;
  uint64_t v = 0;
  if (read(fd, &v, sizeof v) < 0) {
    if (errno == EAGAIN) return wio_int(env, 0);
    return wio_throw_errno(env, "eventfd read", errno);
  }
  return wio_int(env, (int64_t)v);
}

/* waitReadable(fds: Int32Array, timeoutMs) -> bit mask of readable fds
 * (bit i = fds[i]; at most 31 fds), 0 on timeout.
 *
 * For a worker that prefers a blocking loop over uv_poll callbacks: it blocks
 * the calling thread, and an eventfd in `fds` lets another thread end the
 * wait at once. POLLERR/POLLHUP count as readable so the next read reports
 * the error instead of the loop spinning.
 *
 * No single wait lasts longer than WIO_WAIT_SLICE_MS, whatever timeoutMs says
 * (-1 included): Worker.terminate() can only stop a thread when it next runs
 * JS, so a wait without an end would make a worker unkillable. Callers loop
 * on 0 anyway. */
#define WIO_WAIT_SLICE_MS 200
static napi_value wait_readable(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t *fds;
  size_t n;
  int32_t timeout;
  if (!wio_args(env, info, 2, argv) ||
      !wio_typed(env, argv[0], napi_int32_array, 0, (void **)&fds, &n, "fds") ||
      !wio_i32(env, argv[1], &timeout))
    return NULL;
  if (n == 0 || n > 31) return wio_throw_range(env, "fds: 1 to 31 descriptors");
  struct pollfd p[31];
  for (size_t i = 0; i < n; i++) {
    p[i].fd = fds[i];
    p[i].events = POLLIN;
    p[i].revents = 0;
  }
  if (timeout < 0 || timeout > WIO_WAIT_SLICE_MS) timeout = WIO_WAIT_SLICE_MS;
  int r;
  do {
    r = poll(p, n, timeout);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return wio_throw_errno(env, "poll", errno);
  int32_t mask = 0;
  for (size_t i = 0; i < n; i++)
    if (p[i].revents & (POLLIN | POLLERR | POLLHUP | POLLNVAL)) mask |= 1 << i;
  return wio_int(env, mask);
}

/* netnsEnter(path) -> fd of the namespace the calling thread was in.
 *
 * setns(CLONE_NEWNET) moves only the calling thread, and sockets and TUN
 * devices stay in the namespace they were created in. So a host can create
 * its outer socket in one namespace and its TUN in another (WireGuard's
 * "birthplace namespace" trick), and tests can own sockets in several
 * namespaces from one process. Needs CAP_SYS_ADMIN. Always pair with
 * netnsRestore(prev) before returning to the event loop. The env owns the
 * returned fd (closed at teardown if never restored); nesting is LIFO. */
static napi_value netns_enter(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  char path[512];
  if (!wio_args(env, info, 1, argv) ||
      !wio_string(env, argv[0], path, sizeof path, "path"))
    return NULL;
  owned_fds *o = owned(env);
  if (o == NULL || o->nns == WIO_NETNS_DEPTH)
    return wio_throw_range(env, "netnsEnter nested too deep");
  int prev = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (prev < 0) return wio_throw_errno(env, "open /proc/thread-self/ns/net", errno);
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    int e = errno;
    close(prev);
    return wio_throw_errno(env, path, e);
  }
  if (setns(target, CLONE_NEWNET) < 0) {
    int e = errno;
    close(target);
    close(prev);
    return wio_throw_errno(env, "setns", e);
  }
  close(target);
  o->ns[o->nns++] = prev;
  return wio_int(env, prev);
}

/* netnsRestore(prevFd): back to the namespace netnsEnter returned; closes it.
 * Only the innermost fd this env's netnsEnter handed out is taken: any other
 * number (a socket, a TUN queue, a file of the host, one already restored
 * and since reused) is refused with EBADF and left alone -- setns on it
 * would move the thread somewhere unintended, or fail, and the close would
 * take an fd the addon does not own. */
static napi_value netns_restore(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!wio_args(env, info, 1, argv) || !wio_i32(env, argv[0], &fd)) return NULL;
  owned_fds *o = owned(env);
  if (o == NULL || o->nns == 0 || o->ns[o->nns - 1] != fd)
    return wio_throw_errno(env, "netnsRestore (not the fd netnsEnter returned last)", EBADF);
  o->nns--;
  int r = setns(fd, CLONE_NEWNET);
  int e = errno;
  close(fd);
  if (r < 0) return wio_throw_errno(env, "setns (restore)", e);
  return NULL;
}

int wio_init_fd(napi_env env, napi_value exports) {
  static const wio_fn fns[] = {
      {"close", fd_close},
      {"eventfdOpen", ev_open},
      {"eventfdSignal", ev_signal},
      {"eventfdDrain", ev_drain},
      {"waitReadable", wait_readable},
      {"netnsEnter", netns_enter},
      {"netnsRestore", netns_restore},
  };
  return wio_export(env, exports, fns, sizeof fns / sizeof fns[0]);
}

NAPI_MODULE_INIT() {
  owned_fds *o = (owned_fds *)calloc(1, sizeof *o);
  if (o == NULL || napi_set_instance_data(env, o, close_owned, NULL) != napi_ok) {
    free(o);
    return NULL;
  }
  if (!wio_init_fd(env, exports) || !wio_init_tun(env, exports) ||
      !wio_init_sock(env, exports) || !wio_init_poll(env, exports) ||
      !wio_init_tun_offload(env, exports) || !wio_init_udp_offload(env, exports) || !wio_init_filter(env, exports) ||
      !wio_init_mem(env, exports) || !wio_init_tun_uring(env, exports))
    return NULL;
  napi_value max;
  napi_create_uint32(env, WIO_MAX_BATCH, &max);
  napi_set_named_property(env, exports, "MAX_BATCH", max);
  return exports;
}
