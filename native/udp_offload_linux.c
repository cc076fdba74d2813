/*
 * UDP segmentation offload on send (UDP_SEGMENT, Linux 4.18) and receive
 * coalescing (UDP_GRO, Linux 5.0) for the ESP-in-UDP socket (RFC 3948).
 *
 * Send (sendBatch with gso set): consecutive slots to the same peer whose datagrams have one size
 * (the last of a run may be shorter) go out as one "train": one msghdr whose
 * iovecs are the slots, with a UDP_SEGMENT control message giving the size;
 * the kernel (or the NIC) cuts it back into datagrams. A TCP super-packet
 * segmented by the TUN reader and sealed slot by slot is exactly such a run.
 * Several trains share one sendmmsg.
 *
 * Receive: with UDP_GRO the kernel may hand over up to 64 KiB of datagrams
 * of one flow glued together, the size in a UDP_GRO control message. They
 * land in a caller-owned landing area and are copied out one datagram per
 * slot (a copy of each datagram: the ring's slots have a single size and
 * each needs its own headroom for in-place decryption). What does not fit
 * the batch stays in the landing area and opens the next one.
 *
 *   landing ┌ head 64: count u32 · next u32 · segOff u32 ┐
 *           ├ meta K × 48: len u32 · gso u32 · port u16 · (2) · addr[16] · local[16]
 *           └ data K × 65,536
 */
#define _GNU_SOURCE
#include "gso_linux.h"
#include "sock_util.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

/* UDP_MAX_SEGMENTS of Linux 4.18..6.x; and what fits one IPv4 datagram's
 * 16-bit total length with room for the outer headers. */
#define TRAIN_MAX_SEGS 64
#define TRAIN_MAX_BYTES 65000

#define LAND_HEAD 64
#define LAND_META 48
#define LAND_DATA 65536

/* udpOffload(fd, gso, gro) -> [gsoErrno, groErrno]: 0 = on, -1 = not asked,
 * else the errno the kernel refused it with. UDP_SEGMENT is probed with size
 * 0 (the socket default stays "off"; each train says its own size). */
static napi_value udp_offload(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd;
  int gso, gro;
  if (!wio_args(env, info, 3, argv) || !wio_i32(env, argv[0], &fd) ||
      !wio_bool(env, argv[1], &gso) || !wio_bool(env, argv[2], &gro))
    return NULL;
  int zero = 0, one = 1;
  int eg = -1, er = -1;
  if (gso) eg = setsockopt(fd, SOL_UDP, UDP_SEGMENT, &zero, sizeof zero) < 0 ? errno : 0;
  if (gro) er = setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) < 0 ? errno : 0;
  napi_value out;
  WIO_TRY(napi_create_array_with_length(env, 2, &out));
  napi_set_element(env, out, 0, wio_int(env, eg));
  napi_set_element(env, out, 1, wio_int(env, er));
  return out;
}

/* One train's datagrams one by one (the kernel refused the train: EIO when
 * the route cannot checksum-offload, e.g. an xfrm policy on the outer path). */
static uint32_t send_singly(int fd, struct msghdr *m, uint32_t *st) {
  uint32_t sent = 0;
  for (size_t k = 0; k < m->msg_iovlen; k++) {
    struct msghdr one = {.msg_name = m->msg_name, .msg_namelen = m->msg_namelen,
                         .msg_iov = m->msg_iov + k, .msg_iovlen = 1};
    ssize_t w;
    do {
      w = sendmsg(fd, &one, 0);
    } while (w < 0 && errno == EINTR);
    if (w < 0) {
      st[WIO_ST_FAILED]++;
      st[WIO_ST_ERRNO] = (uint32_t)errno;
    } else {
      sent++;
    }
  }
  return sent;
}

static int same_peer(const uint8_t *addrs, const uint16_t *ports, const uint8_t *fams, uint32_t a, uint32_t b) {
  return fams[a] == fams[b] && ports[a] == ports[b] && memcmp(addrs + 16 * a, addrs + 16 * b, 16) == 0;
}

/* The body of sendBatch(..., gso = true): runs of same-size datagrams to one
 * peer sent as UDP_SEGMENT trains. stats: [4] trains, [5] datagrams in them.
 * Returns the datagrams sent, or -errno when the fd is unusable. */
int64_t wio_udp_send_gso(int fd, int sfam, wio_ring *rr, const uint8_t *addrs,
                         const uint16_t *ports, const uint8_t *fams, uint32_t *st) {
  wio_ring r = *rr;
  struct mmsghdr msgs[WIO_MAX_BATCH];
  struct iovec iov[WIO_MAX_BATCH];
  struct sockaddr_storage to[WIO_MAX_BATCH];
  union {
    struct cmsghdr align;
    uint8_t b[CMSG_SPACE(sizeof(uint16_t))];
  } ctl[WIO_MAX_BATCH];
  uint32_t m = 0, v = 0;
  for (uint32_t i = 0; i < r.count;) {
    if (r.lens[i] == 0) {
      i++;
      continue;
    }
    socklen_t sl = wio_make_addr(sfam, fams[i], addrs + 16 * i, ports[i], &to[m]);
    if (sl == 0) {
      st[WIO_ST_FAILED]++;
      st[WIO_ST_ERRNO] = EAFNOSUPPORT;
      i++;
      continue;
    }
    uint32_t size = r.lens[i], segs = 0, bytes = 0;
    struct iovec *first = &iov[v];
    /* The run: same peer, same size; a shorter datagram ends it (UDP_SEGMENT
     * cuts every segment to `size` but the last). */
    uint32_t j = i;
    while (j < r.count && r.lens[j] != 0 && segs < TRAIN_MAX_SEGS &&
           bytes + r.lens[j] <= TRAIN_MAX_BYTES && r.lens[j] <= size &&
           (j == i || (r.lens[j - 1] == size && same_peer(addrs, ports, fams, i, j)))) {
      iov[v].iov_base = r.mem + r.offs[j];
      iov[v].iov_len = r.lens[j];
      v++;
      segs++;
      bytes += r.lens[j];
      j++;
    }
    struct msghdr *h = &msgs[m].msg_hdr;
    memset(h, 0, sizeof *h);
    h->msg_iov = first;
    h->msg_iovlen = segs;
    h->msg_name = &to[m];
    h->msg_namelen = sl;
    if (segs > 1) {
      h->msg_control = ctl[m].b;
      h->msg_controllen = sizeof ctl[m].b;
      struct cmsghdr *c = CMSG_FIRSTHDR(h);
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      uint16_t gs = (uint16_t)size;
      memcpy(CMSG_DATA(c), &gs, sizeof gs);
      st[WIO_ST_SUPER]++;
      st[WIO_ST_SEGMENTS] += segs;
    }
    m++;
    i = j;
  }
  uint32_t k = 0, sent = 0;
  while (k < m) {
    int w = sendmmsg(fd, msgs + k, m - k, 0);
    if (w > 0) {
      for (int q = 0; q < w; q++) sent += (uint32_t)msgs[k + q].msg_hdr.msg_iovlen;
      k += (uint32_t)w;
      continue;
    }
    if (errno == EINTR) continue;
    uint32_t left = 0;
    if (errno == EAGAIN) {
      for (uint32_t q = k; q < m; q++) left += (uint32_t)msgs[q].msg_hdr.msg_iovlen;
      st[WIO_ST_UNSENT] += left;
      break;
    }
    if (errno == EBADF || errno == ENOTSOCK) return -(int64_t)errno;
    /* sendmmsg reports an error only for the first message of a call. */
    if (errno == EIO && msgs[k].msg_hdr.msg_iovlen > 1) {
      sent += send_singly(fd, &msgs[k].msg_hdr, st);
    } else {
      st[WIO_ST_FAILED] += (uint32_t)msgs[k].msg_hdr.msg_iovlen;
      st[WIO_ST_ERRNO] = (uint32_t)errno;
    }
    k++;
  }
  return sent;
}

typedef struct {
  uint32_t len, gso;
  uint16_t port, pad;
  uint8_t addr[16], local[16];
} land_meta;

/* The landing area's messages: K of them, each a meta record and 64 KiB. */
typedef struct {
  uint8_t *base;
  uint32_t k;
} landing;

static land_meta *meta_at(landing *l, uint32_t i) {
  return (land_meta *)(void *)(l->base + LAND_HEAD + (size_t)i * LAND_META);
}
static uint8_t *data_at(landing *l, uint32_t i) {
  return l->base + LAND_HEAD + (size_t)l->k * LAND_META + (size_t)i * LAND_DATA;
}

/* Copies held datagrams into slots from *n on, one per slot, until the
 * batch is full or the landing area is empty. head = {count, next, segOff}. */
static void drain_landing(landing *l, uint32_t *head, wio_ring *r, uint32_t *n,
                          uint32_t cap, uint8_t *addrs, uint16_t *ports,
                          uint8_t *locals, uint32_t *st) {
  while (head[1] < head[0] && *n < r->count) {
    land_meta *mt = meta_at(l, head[1]);
    if (mt->len == 0 || mt->gso == 0) { /* truncated, or empty: nothing to deliver */
      head[1]++;
      head[2] = 0;
      continue;
    }
    uint32_t seg = mt->len - head[2] < mt->gso ? mt->len - head[2] : mt->gso;
    uint32_t i = *n;
    if (seg > cap) {
      r->lens[i] = 0;
      st[WIO_ST_TRUNCATED]++;
    } else {
      memcpy(r->mem + r->offs[i], data_at(l, head[1]) + head[2], seg);
      r->lens[i] = seg;
    }
    if (addrs) memcpy(addrs + 16 * i, mt->addr, 16);
    if (ports) ports[i] = mt->port;
    if (locals) memcpy(locals + 16 * i, mt->local, 16);
    (*n)++;
    head[2] += seg;
    if (head[2] >= mt->len) {
      head[1]++;
      head[2] = 0;
    }
  }
}

/* The UDP_GRO segment size of a received message, 0 when it has none. */
static uint32_t gro_size(struct msghdr *m) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO &&
        c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      int v;
      memcpy(&v, CMSG_DATA(c), sizeof v);
      return v > 0 ? (uint32_t)v : 0;
    }
  }
  return 0;
}

#define GRO_CMSG_ROOM 128

/* recvBatchGro(fd, mem, offs, lens, addrs|null, ports|null, locals|null, max,
 *              slotCap, stats, landing) -> n
 * As recvBatch on a socket with UDP_GRO on: coalesced trains are cut back
 * into one datagram per slot (each slot gets the train's peer and local
 * address). landing: 64 + K × (48 + 65,536) bytes, kept by the caller
 * between calls. stats has 8 elements: [4] trains, [5] datagrams in them. */
static napi_value recv_batch_gro(napi_env env, napi_callback_info info) {
  napi_value argv[11];
  int32_t fd;
  uint32_t max, cap, *st;
  wio_ring r;
  uint8_t *addrs, *locals;
  uint16_t *ports;
  size_t llen;
  landing l;
  if (!wio_args(env, info, 11, argv) || !wio_i32(env, argv[0], &fd) ||
      !wio_u32(env, argv[7], &max) || !wio_u32(env, argv[8], &cap) ||
      !(st = wio_stats_n(env, argv[9], WIO_ST_OFFLOAD_COUNT)) ||
      !wio_typed(env, argv[10], napi_uint8_array, 0, (void **)&l.base, &llen, "landing") ||
      !wio_ring_unpack(env, argv + 1, max, cap, 0, &r) ||
      !wio_side(env, argv[4], napi_uint8_array, 16, r.count, (void **)&addrs, "addrs") ||
      !wio_side(env, argv[5], napi_uint16_array, 1, r.count, (void **)&ports, "ports") ||
      !wio_side(env, argv[6], napi_uint8_array, 16, r.count, (void **)&locals, "locals"))
    return NULL;
  if (llen < LAND_HEAD + LAND_META + LAND_DATA) return wio_throw_range(env, "landing too small");
  l.k = (uint32_t)((llen - LAND_HEAD) / (LAND_META + LAND_DATA));
  if (l.k > WIO_MAX_BATCH) l.k = WIO_MAX_BATCH;
  uint32_t head[3];
  memcpy(head, l.base, sizeof head);
  if (head[0] > l.k || head[1] > head[0]) head[0] = head[1] = head[2] = 0;

  struct mmsghdr msgs[WIO_MAX_BATCH];
  struct iovec iov[WIO_MAX_BATCH];
  struct sockaddr_storage from[WIO_MAX_BATCH];
  union {
    struct cmsghdr align;
    uint8_t b[GRO_CMSG_ROOM];
  } ctl[WIO_MAX_BATCH];
  uint32_t n = 0;
  for (;;) {
    drain_landing(&l, head, &r, &n, cap, addrs, ports, locals, st);
    if (n >= r.count) break;
    uint32_t want = r.count - n < l.k ? r.count - n : l.k;
    for (uint32_t i = 0; i < want; i++) {
      iov[i].iov_base = data_at(&l, i);
      iov[i].iov_len = LAND_DATA;
      memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &from[i];
      msgs[i].msg_hdr.msg_namelen = sizeof from[i];
      msgs[i].msg_hdr.msg_control = ctl[i].b;
      msgs[i].msg_hdr.msg_controllen = GRO_CMSG_ROOM;
    }
    int got;
    do {
      got = recvmmsg(fd, msgs, want, MSG_DONTWAIT, NULL);
    } while (got < 0 && errno == EINTR);
    if (got <= 0) {
      if (got < 0 && errno != EAGAIN && n == 0) {
        memcpy(l.base, head, sizeof head);
        return wio_throw_errno(env, "recvmmsg", errno);
      }
      break;
    }
    for (int i = 0; i < got; i++) {
      land_meta *mt = meta_at(&l, (uint32_t)i);
      struct msghdr *h = &msgs[i].msg_hdr;
      mt->len = msgs[i].msg_len;
      if (h->msg_flags & MSG_TRUNC) {
        mt->len = 0;
        st[WIO_ST_TRUNCATED]++;
      }
      uint32_t g = gro_size(h);
      mt->gso = g > 0 && g < mt->len ? g : mt->len;
      if (mt->gso < mt->len) {
        st[WIO_ST_SUPER]++;
        st[WIO_ST_SEGMENTS] += (mt->len + mt->gso - 1) / mt->gso;
      }
      wio_put_addr(&from[i], h->msg_namelen, mt->addr, &mt->port);
      wio_put_local(h, mt->local);
    }
    head[0] = (uint32_t)got;
    head[1] = head[2] = 0;
  }
  memcpy(l.base, head, sizeof head);
  return wio_int(env, n);
}

int wio_init_udp_offload(napi_env env, napi_value exports) {
  napi_value v;
  napi_create_uint32(env, LAND_HEAD, &v);
  napi_set_named_property(env, exports, "GRO_LANDING_HEAD", v);
  napi_create_uint32(env, LAND_META + LAND_DATA, &v);
  napi_set_named_property(env, exports, "GRO_LANDING_PER_MSG", v);
  static const wio_fn fns[] = {
      {"udpOffload", udp_offload},
      {"recvBatchGro", recv_batch_gro},
  };
  return wio_export(env, exports, fns, sizeof fns / sizeof fns[0]);
}
