/*
 * Readiness of an arbitrary fd on the calling thread's own event loop.
 *
 * Node cannot watch a raw fd from JS. uv_poll can: pollStart(fd, cb) puts the
 * fd into this environment's libuv loop (the main thread's, or a worker's --
 * napi_get_uv_event_loop gives the loop of the env that calls), and cb runs
 * on that thread whenever the fd is readable. libuv polls level-triggered, so
 * a callback that reads one batch and returns is called again on the next
 * loop turn while packets remain: no starvation of timers or messages, no
 * lost wakeups.
 *
 * Shutdown: nothing ever blocks in a read (fds are non-blocking / reads use
 * MSG_DONTWAIT), so stopping is pollStop() then close(fd). If a worker is
 * terminated with polls still running, an async cleanup hook closes the
 * handles before the loop goes away.
 *
 * Lifetime of one poller (freed when both the uv handle is closed and the JS
 * external that names it has been collected, so a late pollStop() on a
 * stale handle is harmless):
 *
 *   pollStart ──► active ──pollStop / env teardown──► closing ──uv close cb──► closed
 *                                                                     + external GC ──► free
 */
#include "io_util.h"

#include <errno.h>
#include <stdlib.h>
#include <uv.h>

typedef struct {
  uv_poll_t handle;
  napi_env env;
  napi_ref cb;
  napi_async_context actx;
  napi_async_cleanup_hook_handle hook;
  int closing;   /* uv_close called */
  int closed;    /* uv close callback ran */
  int finalized; /* JS external collected */
} poller;

static void maybe_free(poller *p) {
  if (p->closed && p->finalized) free(p);
}

static void on_closed(uv_handle_t *h) {
  poller *p = (poller *)h->data;
  if (p->hook != NULL) {
    napi_remove_async_cleanup_hook(p->hook);
    p->hook = NULL;
  }
  p->closed = 1;
  maybe_free(p);
}

/* Stop watching and close the handle; `teardown` when the env is going away
 * (JS must not be called then, and references die with the env). */
static void poller_close(poller *p, int teardown) {
  if (p->closing) return;
  p->closing = 1;
  uv_poll_stop(&p->handle);
  if (!teardown) {
    napi_delete_reference(p->env, p->cb);
    napi_async_destroy(p->env, p->actx);
  }
  uv_close((uv_handle_t *)&p->handle, on_closed);
}

static void on_teardown(napi_async_cleanup_hook_handle hook, void *arg) {
  poller *p = (poller *)arg;
  (void)hook;
  poller_close(p, 1);
}

static void on_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  poller *p = (poller *)data;
  p->finalized = 1;
  maybe_free(p);
}

/* Calls cb(status) -- status 0 when readable, a negative libuv error code
 * otherwise -- inside a callback scope, so promises it settles run their
 * reactions right after, as with any Node I/O callback. */
static void on_event(uv_poll_t *h, int status, int events) {
  (void)events;
  poller *p = (poller *)h->data;
  if (p->closing) return;
  napi_env env = p->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, arg, result;
  if (napi_get_reference_value(env, p->cb, &cb) == napi_ok && cb != NULL) {
    napi_get_global(env, &recv); /* make_callback wants an object receiver */
    napi_create_int32(env, status, &arg);
    if (napi_make_callback(env, p->actx, recv, cb, 1, &arg, &result) !=
        napi_ok) {
      /* A throwing callback becomes an uncaught exception of this thread,
       * as it would for any Node I/O callback. */
      bool pending = false;
      napi_is_exception_pending(env, &pending);
      if (pending) {
        napi_value err;
        napi_get_and_clear_last_exception(env, &err);
        napi_fatal_exception(env, err);
      }
    }
  }
  napi_close_handle_scope(env, scope);
}

/* pollStart(fd, cb) -> handle. The handle keeps the loop alive (as a socket
 * would) until pollStop or pollUnref. */
static napi_value poll_start(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd;
  napi_valuetype t;
  if (!wio_args(env, info, 2, argv) || !wio_i32(env, argv[0], &fd)) return NULL;
  if (napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function)
    return wio_throw_type(env, "cb must be a function");

  uv_loop_t *loop;
  WIO_TRY(napi_get_uv_event_loop(env, &loop));
  poller *p = (poller *)calloc(1, sizeof *p);
  if (p == NULL) return wio_throw_errno(env, "pollStart", ENOMEM);
  p->env = env;
  int rc = uv_poll_init(loop, &p->handle, fd);
  if (rc < 0) {
    free(p);
    return wio_throw_errno(env, "uv_poll_init", -rc);
  }
  p->handle.data = p;

  napi_value external = NULL, name, resource;
  if (napi_create_reference(env, argv[1], 1, &p->cb) != napi_ok ||
      napi_create_string_utf8(env, "wesp_io.poll", NAPI_AUTO_LENGTH, &name) !=
          napi_ok ||
      napi_create_object(env, &resource) != napi_ok ||
      napi_async_init(env, resource, name, &p->actx) != napi_ok ||
      napi_create_external(env, p, on_finalize, NULL, &external) != napi_ok ||
      napi_add_async_cleanup_hook(env, on_teardown, p, &p->hook) != napi_ok) {
    /* Rare (out of memory). The handle is initialised, so it is closed
     * through libuv, and p is freed by the last of its two owners: the
     * close callback, and -- only if napi_create_external succeeded -- the
     * external's finalizer, which runs when that (never returned) value is
     * collected. Marking it finalized here too would free p twice. */
    if (p->cb != NULL) napi_delete_reference(env, p->cb);
    if (p->actx != NULL) napi_async_destroy(env, p->actx);
    p->cb = NULL;
    p->actx = NULL;
    p->finalized = external == NULL;
    p->closing = 1;
    uv_close((uv_handle_t *)&p->handle, on_closed);
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    return pending ? NULL : wio_throw_errno(env, "pollStart", ENOMEM);
  }
  rc = uv_poll_start(&p->handle, UV_READABLE, on_event);
  if (rc < 0) {
    poller_close(p, 0);
    return wio_throw_errno(env, "uv_poll_start", -rc);
  }
  return external;
}

static poller *get_poller(napi_env env, napi_value v) {
  return (poller *)wio_external(env, v, "not a poll handle");
}

/* pollStop(handle): no more callbacks; safe to call twice. Call before
 * closing the fd. */
static napi_value poll_stop(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!wio_args(env, info, 1, argv)) return NULL;
  poller *p = get_poller(env, argv[0]);
  if (p == NULL) return NULL;
  poller_close(p, 0);
  return NULL;
}

/* pollRef(handle, keepAlive): whether this poll alone keeps the thread's
 * event loop (and so the process or worker) running. */
static napi_value poll_ref(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int keep;
  if (!wio_args(env, info, 2, argv) || !wio_bool(env, argv[1], &keep)) return NULL;
  poller *p = get_poller(env, argv[0]);
  if (p == NULL || p->closing) return NULL;
  if (keep) uv_ref((uv_handle_t *)&p->handle);
  else uv_unref((uv_handle_t *)&p->handle);
  return NULL;
}

int wio_init_poll(napi_env env, napi_value exports) {
  static const wio_fn fns[] = {
      {"pollStart", poll_start},
      {"pollStop", poll_stop},
      {"pollRef", poll_ref},
  };
  return wio_export(env, exports, fns, sizeof fns / sizeof fns[0]);
}
