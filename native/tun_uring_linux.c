/*
 * TUN reads through io_uring: one multishot read per TUN queue, so the
 * kernel reads packets for us and a batch call reaps them from shared
 * memory without a syscall per packet (issue 9: 37 % of the sending
 * endpoint's CPU was read(2) entry/exit on the TUN, which has no batched
 * read).
 *
 *   TUN fd ──IORING_OP_READ_MULTISHOT──► pbuf ring: RING_BUFS native buffers
 *                                         │ (malloc/mmap'd here, never WASM
 *                                         │  memory: the kernel never writes
 *                                         ▼  into the ring slots by itself)
 *   CQ ring (mmap'd) ── readBatchUring ──► copy (or TSO/USO segmentation,
 *                                          gso_linux.c) into ring slots,
 *                                          buffer back to the pbuf ring
 *
 * Order: the multishot read posts one CQE per packet in the order the TUN
 * queue gives them, and a batch consumes CQEs strictly from the head (a
 * vnet super-packet that does not fit the rest of a batch stays at the
 * head, as readBatchVnet keeps it in its scratch buffer).
 *
 * Re-arming: a CQE without IORING_CQE_F_MORE ends the multishot (ENOBUFS
 * when every buffer waits in the CQ: the packet stays queued in the TUN);
 * the batch call that sees it submits a new one after returning its
 * buffers, so nothing is lost and order holds. If io_uring_enter refuses
 * that submission (EAGAIN, EBUSY, ...), nothing would ever make the ring fd
 * readable again: the SQE is withdrawn, stats[WIO_ST_REARM_ERRNO] says why,
 * and the host reads the TUN with readv from then on (tun_linux.ts). The
 * CQ holds no read completion at that point (the multishot's last CQE was
 * the last one consumed), so the switch loses nothing and keeps order.
 *
 * Who runs the reads: with IORING_SETUP_COOP_TASKRUN the kernel does them
 * as task_work of the thread that submitted (the worker) the next time it
 * enters the kernel (epoll_pwait, sendmmsg) -- a sleeping worker is woken,
 * a running one is not interrupted (no IPI). Readiness is uv_poll on the
 * ring fd, which polls readable while CQEs are pending.
 *
 * Teardown: the multishot is cancelled (IORING_OP_ASYNC_CANCEL) and CQEs
 * reaped until its final one before the buffers are unmapped; reads only
 * ever run on the owning thread, so once that final CQE is seen nothing can
 * write into them. An env cleanup hook does the same for a worker
 * terminated with the ring live. If the final CQE never comes (it should
 * within one wait), the buffers are leaked, never freed under the kernel.
 *
 * Fallback: io_uring_setup refused (ENOSYS, EPERM from
 * kernel.io_uring_disabled or seccomp), no IORING_OP_READ_MULTISHOT (Linux
 * < 6.7), no provided-buffer rings (< 5.19): tunUringOpen says why and the
 * TUN is read with readv as before (host/tun/tun_linux.ts).
 *
 * Raw syscalls, no liburing; Debian 12's uapi headers (6.1) lack the
 * multishot read, so it is defined below.
 */
#define _GNU_SOURCE
#include "gso_linux.h"

#include <errno.h>
#include <linux/io_uring.h>
#include <linux/time_types.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef IORING_OP_READ_MULTISHOT
#define IORING_OP_READ_MULTISHOT 49 /* Linux 6.7 */
#endif

/* Buffers per ring (a power of two: the pbuf ring's size). Each holds one
 * vnet super-packet; only the pages a read touches become resident. */
#define RING_BUFS 256u
#define BUF_SIZE 65600u /* WIO_TUN_READ_MAX + 1 spill byte, rounded up */
#define CQ_ENTRIES (2 * RING_BUFS) /* every buffer's CQE plus cancels: never overflows */
#define BGID 7
/* The reader's own stat, after the offload ones: the stats array it is
 * given has WIO_ST_URING_COUNT elements (host newStats). */
enum { WIO_ST_REARM_ERRNO = WIO_ST_OFFLOAD_COUNT, WIO_ST_URING_COUNT };
#define UD_READ 1
#define UD_CANCEL 2
/* Teardown: how long to wait for the cancelled read's last CQE, in slices. */
#define STOP_SLICES 20
#define STOP_SLICE_NS 50000000L

typedef struct {
  int ring, tun, vnet;
  int open;    /* ring live (tunUringClose / cleanup not yet run) */
  int armed;   /* a multishot read is queued or in flight */
  int hooked;  /* env cleanup hook registered */
  unsigned unsubmitted; /* SQEs queued that io_uring_enter has not taken yet */
  int fail_arm; /* test hook (tunUringFailRearm): the next arm is refused with this errno */
  uint32_t done; /* segments of the head CQE's super-packet already delivered */
  uint8_t *rings;
  size_t rings_len;
  struct io_uring_sqe *sqes;
  size_t sqes_len;
  unsigned *sq_tail, *sq_mask, *sq_array;
  unsigned *cq_head, *cq_tail, *cq_mask;
  struct io_uring_cqe *cqes;
  struct io_uring_buf_ring *br;
  uint8_t *bufs;
  uint16_t br_tail;
} uring_reader;

static int sys_setup(unsigned entries, struct io_uring_params *p) {
  return (int)syscall(__NR_io_uring_setup, entries, p);
}
static int sys_enter(int fd, unsigned submit, unsigned min, unsigned flags, void *arg, size_t argsz) {
  return (int)syscall(__NR_io_uring_enter, fd, submit, min, flags, arg, argsz);
}
static int sys_register(int fd, unsigned op, void *arg, unsigned n) {
  return (int)syscall(__NR_io_uring_register, fd, op, arg, n);
}

/* Hands the queued SQEs to the kernel. Returns 0 or -errno (they stay
 * queued and the next flush retries them, so a read is never queued twice). */
static int flush_sq(uring_reader *u) {
  if (u->unsubmitted == 0) return 0;
  int r;
  do {
    r = sys_enter(u->ring, u->unsubmitted, 0, 0, NULL, 0);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return -errno;
  u->unsubmitted -= (unsigned)r < u->unsubmitted ? (unsigned)r : u->unsubmitted;
  return 0;
}

/* Queues one SQE (not yet submitted). */
static void queue_sqe(uring_reader *u, uint8_t op, uint64_t addr, uint64_t ud) {
  unsigned tail = *u->sq_tail, idx = tail & *u->sq_mask;
  struct io_uring_sqe *s = &u->sqes[idx];
  memset(s, 0, sizeof *s);
  s->opcode = op;
  s->user_data = ud;
  if (op == IORING_OP_READ_MULTISHOT) {
    /* addr and len 0: each read fills one provided buffer of group BGID. */
    s->fd = u->tun;
    s->flags = IOSQE_BUFFER_SELECT;
    s->buf_group = BGID;
  } else {
    s->fd = -1;
    s->addr = addr; /* ASYNC_CANCEL: the user_data to cancel */
  }
  u->sq_array[idx] = idx;
  __atomic_store_n(u->sq_tail, tail + 1, __ATOMIC_RELEASE);
  u->unsubmitted++;
}

/* Queues one SQE and submits it. Returns 0 or -errno. */
static int submit(uring_reader *u, uint8_t op, uint64_t addr, uint64_t ud) {
  queue_sqe(u, op, addr, ud);
  return flush_sq(u);
}

/* A new multishot read. Returns 0 (armed), or the errno io_uring_enter
 * refused it with: then the SQE is taken back (without SQPOLL only our own
 * io_uring_enter consumes SQEs, so the tail may step back over ones it did
 * not take) and the reader is not armed -- nothing of ours is left in the
 * ring, and nothing will make the ring fd readable. Called with no other
 * SQE pending. */
static int arm(uring_reader *u) {
  u->armed = 1;
  queue_sqe(u, IORING_OP_READ_MULTISHOT, 0, UD_READ);
  int r = u->fail_arm != 0 ? -u->fail_arm : flush_sq(u);
  u->fail_arm = 0;
  if (r == 0 && u->unsubmitted == 0) return 0;
  __atomic_store_n(u->sq_tail, *u->sq_tail - u->unsubmitted, __ATOMIC_RELEASE);
  u->unsubmitted = 0;
  u->armed = 0;
  return r < 0 ? -r : EAGAIN; /* r == 0: the kernel took none of it */
}

/* Past CQE c at the head: the multishot read ended when it lacks F_MORE. */
static unsigned consume(uring_reader *u, const struct io_uring_cqe *c, unsigned head) {
  if (c->user_data == UD_READ && !(c->flags & IORING_CQE_F_MORE)) u->armed = 0;
  return head + 1;
}

/* Buffer bid back to the kernel (published by publish_bufs). */
static void recycle(uring_reader *u, uint16_t bid) {
  struct io_uring_buf *b = &u->br->bufs[u->br_tail & (RING_BUFS - 1)];
  b->addr = (uint64_t)(uintptr_t)(u->bufs + (size_t)bid * BUF_SIZE);
  b->len = BUF_SIZE;
  b->bid = bid;
  u->br_tail++;
}

static void publish_bufs(uring_reader *u) {
  __atomic_store_n(&u->br->tail, u->br_tail, __ATOMIC_RELEASE);
}

/* Unmaps what is mapped and closes the ring; `bufs_too` = 0 leaks the
 * buffers (the kernel may still hold them). */
static void release(uring_reader *u, int bufs_too) {
  if (u->ring >= 0) close(u->ring);
  u->ring = -1;
  if (u->rings != NULL) munmap(u->rings, u->rings_len);
  if (u->sqes != NULL) munmap(u->sqes, u->sqes_len);
  u->rings = NULL;
  u->sqes = NULL;
  if (bufs_too) {
    if (u->br != NULL) munmap(u->br, RING_BUFS * sizeof(struct io_uring_buf));
    if (u->bufs != NULL) munmap(u->bufs, (size_t)RING_BUFS * BUF_SIZE);
  }
  u->br = NULL;
  u->bufs = NULL;
  u->open = 0;
}

/* Reaps every CQE without delivering it (teardown). */
static void discard_cqes(uring_reader *u) {
  unsigned head = *u->cq_head, tail = __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE);
  while (head != tail) head = consume(u, &u->cqes[head & *u->cq_mask], head);
  __atomic_store_n(u->cq_head, head, __ATOMIC_RELEASE);
}

/* Cancels the multishot read, waits for its final CQE, frees everything. */
static void stop(uring_reader *u) {
  if (!u->open) return;
  if (u->armed) {
    submit(u, IORING_OP_ASYNC_CANCEL, UD_READ, UD_CANCEL);
    for (int i = 0; i < STOP_SLICES; i++) {
      discard_cqes(u);
      if (!u->armed) break;
      struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = STOP_SLICE_NS};
      struct io_uring_getevents_arg ga = {.ts = (uint64_t)(uintptr_t)&ts};
      int r = sys_enter(u->ring, u->unsubmitted, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &ga, sizeof ga);
      if (r > 0) u->unsubmitted -= (unsigned)r < u->unsubmitted ? (unsigned)r : u->unsubmitted;
    }
  }
  release(u, !u->armed);
}

/* Sets up the ring, the provided buffers and the multishot read on `tun`.
 * Returns 0, or the errno with *why naming the step refused. */
static int start(uring_reader *u, const char **why) {
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN;
  p.cq_entries = CQ_ENTRIES;
  *why = "io_uring_setup";
  u->ring = sys_setup(4, &p);
  if (u->ring < 0) return errno;
  *why = "io_uring features (Linux < 5.11)";
  if (!(p.features & IORING_FEAT_SINGLE_MMAP) || !(p.features & IORING_FEAT_EXT_ARG)) return ENOSYS;

  *why = "io_uring mmap";
  size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  u->rings_len = sq_len > cq_len ? sq_len : cq_len;
  void *m = mmap(NULL, u->rings_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, u->ring, IORING_OFF_SQ_RING);
  if (m == MAP_FAILED) return errno;
  u->rings = (uint8_t *)m;
  u->sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
  m = mmap(NULL, u->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, u->ring, IORING_OFF_SQES);
  if (m == MAP_FAILED) return errno;
  u->sqes = (struct io_uring_sqe *)m;
  u->sq_tail = (unsigned *)(u->rings + p.sq_off.tail);
  u->sq_mask = (unsigned *)(u->rings + p.sq_off.ring_mask);
  u->sq_array = (unsigned *)(u->rings + p.sq_off.array);
  u->cq_head = (unsigned *)(u->rings + p.cq_off.head);
  u->cq_tail = (unsigned *)(u->rings + p.cq_off.tail);
  u->cq_mask = (unsigned *)(u->rings + p.cq_off.ring_mask);
  u->cqes = (struct io_uring_cqe *)(u->rings + p.cq_off.cqes);

  /* The kernel says which opcodes it knows: an unknown one would only fail
   * at its first submission. */
  size_t plen = sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op);
  struct io_uring_probe *probe = (struct io_uring_probe *)calloc(1, plen);
  if (probe == NULL) return ENOMEM;
  *why = "IORING_REGISTER_PROBE";
  int ok = sys_register(u->ring, IORING_REGISTER_PROBE, probe, 256);
  int e = errno;
  int mshot = ok >= 0 && probe->last_op >= IORING_OP_READ_MULTISHOT &&
              (probe->ops[IORING_OP_READ_MULTISHOT].flags & IO_URING_OP_SUPPORTED);
  free(probe);
  if (ok < 0) return e;
  *why = "no IORING_OP_READ_MULTISHOT (Linux < 6.7)";
  if (!mshot) return EINVAL;

  *why = "buffers";
  m = mmap(NULL, RING_BUFS * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return errno;
  u->br = (struct io_uring_buf_ring *)m;
  m = mmap(NULL, (size_t)RING_BUFS * BUF_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return errno;
  u->bufs = (uint8_t *)m;
  struct io_uring_buf_reg reg;
  memset(&reg, 0, sizeof reg);
  reg.ring_addr = (uint64_t)(uintptr_t)u->br;
  reg.ring_entries = RING_BUFS;
  reg.bgid = BGID;
  *why = "IORING_REGISTER_PBUF_RING (Linux < 5.19)";
  if (sys_register(u->ring, IORING_REGISTER_PBUF_RING, &reg, 1) < 0) return errno;
  for (uint16_t b = 0; b < RING_BUFS; b++) recycle(u, b);
  publish_bufs(u);

  u->open = 1;
  *why = "IORING_OP_READ_MULTISHOT";
  int r = arm(u);
  if (r != 0) return r;
  /* A refusal at prep time (e.g. EBADFD: not pollable) is posted at once. */
  unsigned head = *u->cq_head;
  if (head != __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE)) {
    const struct io_uring_cqe *c = &u->cqes[head & *u->cq_mask];
    if (c->res < 0 && c->res != -ENOBUFS && !(c->flags & IORING_CQE_F_MORE)) {
      u->armed = 0;
      return -c->res;
    }
  }
  return 0;
}

static void on_cleanup(void *arg) {
  uring_reader *u = (uring_reader *)arg;
  u->hooked = 0; /* a hook that ran is gone */
  stop(u);
}

static void on_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  uring_reader *u = (uring_reader *)data;
  stop(u);
  if (u->hooked) napi_remove_env_cleanup_hook(env, on_cleanup, u);
  free(u);
}

/* tunUringOpen(tunFd, vnet) -> [handle | null, ringFd, why, errno]
 * handle: the reader (readBatchUring, tunUringClose); ringFd polls readable
 * when CQEs wait. null: io_uring is not usable here, `why` names the step
 * refused and errno the kernel's answer; read the TUN with readBatch. */
static napi_value uring_open(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t tun;
  int vnet;
  if (!wio_args(env, info, 2, argv) || !wio_i32(env, argv[0], &tun) || !wio_bool(env, argv[1], &vnet)) return NULL;
  napi_value out, handle = NULL, vwhy;
  WIO_TRY(napi_create_array_with_length(env, 4, &out));
  uring_reader *u = (uring_reader *)calloc(1, sizeof *u);
  if (u == NULL) return wio_throw_errno(env, "tunUringOpen", ENOMEM);
  u->ring = -1;
  u->tun = tun;
  u->vnet = vnet;
  const char *why = "";
  int err = start(u, &why);
  if (err != 0) {
    stop(u);
    release(u, !u->armed);
    free(u);
    napi_get_null(env, &handle);
  } else if (napi_create_external(env, u, on_finalize, NULL, &handle) != napi_ok) {
    stop(u);
    free(u);
    return wio_throw_errno(env, "tunUringOpen", ENOMEM);
  } else if (napi_add_env_cleanup_hook(env, on_cleanup, u) == napi_ok) {
    u->hooked = 1;
  }
  napi_create_string_utf8(env, err != 0 ? why : "", NAPI_AUTO_LENGTH, &vwhy);
  napi_set_element(env, out, 0, handle);
  napi_set_element(env, out, 1, wio_int(env, err != 0 ? -1 : u->ring));
  napi_set_element(env, out, 2, vwhy);
  napi_set_element(env, out, 3, wio_int(env, err));
  return out;
}

static uring_reader *get_reader(napi_env env, napi_value v) {
  return (uring_reader *)wio_external(env, v, "not an io_uring reader");
}

/* tunUringClose(handle): cancel, wait for the last CQE, free. Idempotent.
 * Stop polling the ring fd first. */
static napi_value uring_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!wio_args(env, info, 1, argv)) return NULL;
  uring_reader *u = get_reader(env, argv[0]);
  if (u == NULL) return NULL;
  stop(u);
  if (u->hooked) {
    napi_remove_env_cleanup_hook(env, on_cleanup, u);
    u->hooked = 0;
  }
  return NULL;
}

/* One CQE's packet into slots n..: returns slots filled, or -1 when it must
 * wait at the head for the next batch (*finished = 0 also when only part of
 * a super-packet fitted). */
static int deliver(uring_reader *u, const uint8_t *buf, uint32_t got, wio_ring *r, uint32_t n, uint32_t cap, uint32_t *st, int *finished) {
  *finished = 1;
  if (u->vnet) {
    if (got > WIO_TUN_READ_MAX) { /* cannot happen with a 64 KiB IP packet; as readBatchVnet */
      st[WIO_ST_TRUNCATED]++;
      return 0;
    }
    return wio_vnet_take(buf, got, &u->done, r, n, cap, st, finished);
  }
  /* Longer than the slot: a counted drop with length 0, as readBatch. */
  if (got > cap) {
    r->lens[n] = 0;
    st[WIO_ST_TRUNCATED]++;
  } else {
    memcpy(r->mem + r->offs[n], buf, got);
    r->lens[n] = got;
  }
  return 1;
}

/* readBatchUring(handle, mem, offs, lens, max, slotCap, stats) -> n
 * As readBatch (readBatchVnet for a vnet TUN), from the CQEs the multishot
 * read posted: no syscall unless the read must be re-armed. stats has
 * WIO_ST_URING_COUNT elements. A read error is thrown as readBatch throws
 * it (after the packets before it were handed over). A re-arm the kernel
 * refused is not thrown (the n packets are good): its errno goes into
 * stats[WIO_ST_REARM_ERRNO], this reader is spent (later calls return 0),
 * and the caller must read the TUN fd itself from then on. */
static napi_value read_batch_uring(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  uint32_t max, cap, *st;
  wio_ring r;
  if (!wio_args(env, info, 7, argv)) return NULL;
  uring_reader *u = get_reader(env, argv[0]);
  if (u == NULL || !wio_u32(env, argv[4], &max) || !wio_u32(env, argv[5], &cap) ||
      !(st = wio_stats_n(env, argv[6], WIO_ST_URING_COUNT)) ||
      !wio_ring_unpack(env, argv + 1, max, cap, 0, &r))
    return NULL;
  if (!u->open) return wio_throw_errno(env, "tun read (io_uring reader closed)", EBADF);
  uint32_t n = 0;
  int err = 0;
  unsigned head = *u->cq_head, tail = __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE);
  while (n < r.count && head != tail) {
    const struct io_uring_cqe *c = &u->cqes[head & *u->cq_mask];
    if (c->user_data != UD_READ) { /* a cancel's own CQE */
      head = consume(u, c, head);
      continue;
    }
    if (c->res < 0) {
      /* ENOBUFS: every buffer was waiting here; re-armed below. Anything
       * else is the TUN's read error: thrown after the packets before it
       * (left at the head until then). */
      if (c->res != -ENOBUFS && c->res != -ECANCELED) {
        if (n > 0) break;
        err = -c->res;
      }
      head = consume(u, c, head);
      if (err) break;
      continue;
    }
    if (!(c->flags & IORING_CQE_F_BUFFER)) { /* res 0: nothing read */
      head = consume(u, c, head);
      continue;
    }
    uint16_t bid = (uint16_t)(c->flags >> IORING_CQE_BUFFER_SHIFT);
    int finished;
    int k = deliver(u, u->bufs + (size_t)bid * BUF_SIZE, (uint32_t)c->res, &r, n, cap, st, &finished);
    if (k < 0) break;
    n += (uint32_t)k;
    if (!finished) break; /* the rest of a super-packet opens the next batch */
    u->done = 0;
    recycle(u, bid);
    head = consume(u, c, head);
  }
  __atomic_store_n(u->cq_head, head, __ATOMIC_RELEASE);
  publish_bufs(u);
  if (!u->armed && st[WIO_ST_REARM_ERRNO] == 0) {
    int a = arm(u);
    if (a != 0) st[WIO_ST_REARM_ERRNO] = (uint32_t)a; /* spent: the host switches to readv */
  }
  if (err) return wio_throw_errno(env, "tun read", err);
  return wio_int(env, n);
}

/* tunUringFailRearm(handle, errno): TEST HOOK. The next re-arm is refused
 * with errno as if io_uring_enter had said so (the kernel cannot be made to
 * refuse one on demand). Not reachable from config or the CLI: only
 * test/e2e/tun-uring.test.ts calls it, through Tun.failNextRearmForTest. */
static napi_value uring_fail_rearm(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t e;
  if (!wio_args(env, info, 2, argv)) return NULL;
  uring_reader *u = get_reader(env, argv[0]);
  if (u == NULL || !wio_i32(env, argv[1], &e)) return NULL;
  u->fail_arm = e;
  return NULL;
}

int wio_init_tun_uring(napi_env env, napi_value exports) {
  static const wio_fn fns[] = {
      {"tunUringOpen", uring_open},
      {"tunUringClose", uring_close},
      {"readBatchUring", read_batch_uring},
      {"tunUringFailRearm", uring_fail_rearm},
  };
  return wio_export(env, exports, fns, sizeof fns / sizeof fns[0]);
}
