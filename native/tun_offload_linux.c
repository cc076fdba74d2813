/*
 * Batched TUN read and write for a device opened with IFF_VNET_HDR
 * (tunOpen(name, mq, true)): every read and write starts with a 10-byte
 * struct virtio_net_hdr.
 *
 * Read: the packet (up to 64 KiB: a TCP super-packet when the kernel took
 * TUNSETOFFLOAD, a UDP one when it took USO too) lands in a caller-owned
 * scratch buffer and is cut into ring slots by wio_gso_split (gso_linux.c).
 * A super-packet that needs more slots than the batch has left stays in the
 * scratch buffer and opens the next batch, so nothing is lost; one that
 * needs more than a whole batch (a tiny MSS) is spread over consecutive
 * batches.
 *
 *   scratch ┌ pending u32 ┬ done u32 ┬ (56) ┬ virtio_net_hdr ┬ packet ≤ 65,600 ┬ spill ┐
 *           0             4          8      64               74                      end
 *   (pending: bytes held, 0 = none; done: its segments already delivered)
 *
 * Write (writeBatch with vnet set): runs of consecutive TCP segments of one
 * flow, as a UDP_GRO train brings them, are written as one super-packet
 * behind a GSO header, and so are runs of UDP datagrams when the TUN took
 * USO (udp_coalesce_linux.c); anything else behind a zeroed header
 * (GSO_NONE, no checksum flags: the receiving stack checks every inner
 * checksum itself).
 */
#define _GNU_SOURCE
#include "gso_linux.h"

#include <errno.h>
#include <linux/virtio_net.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define SCRATCH_HEAD 64
/* Largest IP packet (IPv6: 40 + 65,535) with its header, plus a spill byte
 * that tells a truncated read from a full one. */
#define READ_MAX WIO_TUN_READ_MAX
#define SCRATCH_MIN (SCRATCH_HEAD + READ_MAX + 1)

int wio_vnet_take(const uint8_t *vh, uint32_t len, uint32_t *done, wio_ring *r,
                  uint32_t n, uint32_t cap, uint32_t *st, int *finished) {
  uint32_t nseg;
  *finished = 1;
  if (wio_gso_split(vh, len, *done, r->mem, r->offs, r->lens, 0, cap, st, &nseg) < 0) {
    st[WIO_ST_BAD]++; /* malformed: dropped */
    return 0;
  }
  /* A super-packet that does not fit what is left of this batch opens the
   * next one; only one larger than a whole batch is split across batches. */
  if (n > 0 && nseg - *done > r->count - n) {
    *finished = 0;
    return -1;
  }
  int k = wio_gso_split(vh, len, *done, r->mem, r->offs + n, r->lens + n, r->count - n, cap, st, &nseg);
  if (k < 0) { /* a partial checksum whose offsets lie outside the packet */
    st[WIO_ST_BAD]++;
    return 0;
  }
  *done += (uint32_t)k;
  *finished = *done >= nseg;
  return k;
}

/* readBatchVnet(fd, mem, offs, lens, max, slotCap, stats, scratch) -> n
 * As readBatch, for a vnet-header TUN: up to `max` slots filled with inner
 * packets, super-packets segmented. stats has 8 elements (gso_linux.h);
 * scratch is at least SCRATCH_MIN bytes and kept by the caller between
 * calls (it may hold a pending super-packet). */
static napi_value read_batch_vnet(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  int32_t fd;
  uint32_t max, cap, *st;
  uint8_t *scratch;
  size_t slen;
  wio_ring r;
  if (!wio_args(env, info, 8, argv) || !wio_i32(env, argv[0], &fd) ||
      !wio_u32(env, argv[4], &max) || !wio_u32(env, argv[5], &cap) ||
      !(st = wio_stats_n(env, argv[6], WIO_ST_OFFLOAD_COUNT)) ||
      !wio_typed(env, argv[7], napi_uint8_array, 0, (void **)&scratch, &slen, "scratch") ||
      !wio_ring_unpack(env, argv + 1, max, cap, 0, &r))
    return NULL;
  if (slen < SCRATCH_MIN) return wio_throw_range(env, "scratch too small");
  uint32_t pend, done; /* the held packet's length, and how many of its segments went out */
  memcpy(&pend, scratch, 4);
  memcpy(&done, scratch + 4, 4);
  if (pend > READ_MAX) pend = 0;
  uint8_t *buf = scratch + SCRATCH_HEAD;
  uint32_t n = 0;
  while (n < r.count) {
    if (pend == 0) {
      done = 0;
      ssize_t got = read(fd, buf, READ_MAX + 1);
      if (got < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) break;
        if (n > 0) break;
        return wio_throw_errno(env, "tun read", errno);
      }
      if ((size_t)got > READ_MAX) {
        st[WIO_ST_TRUNCATED]++;
        continue;
      }
      pend = (uint32_t)got;
    }
    int finished;
    int k = wio_vnet_take(buf, pend, &done, &r, n, cap, st, &finished);
    if (k < 0) break;
    n += (uint32_t)k;
    if (finished) pend = 0;
  }
  memcpy(scratch, &pend, 4);
  memcpy(scratch + 4, &done, 4);
  return wio_int(env, n);
}

/* A TCP segment as the coalescer sees it: where its parts are. */
typedef struct {
  const uint8_t *p;
  uint32_t len, l4, hl, seq;
  int v6;
} tcp_seg;

/* Parses slot bytes as a coalescable TCP segment: IPv4 without options or
 * fragments / IPv6 without extension headers, flags ACK or ACK|PSH, some
 * payload, and a valid checksum (coalescing hands the kernel a partial
 * checksum to finish, so a segment corrupted before its sender's ESP would
 * otherwise be repaired instead of dropped). */
static int tcp_parse(const uint8_t *p, uint32_t len, tcp_seg *t) {
  if (len < 40) return 0;
  uint64_t ps;
  if ((p[0] >> 4) == 4) {
    if (p[0] != 0x45 || p[9] != 6 || (((uint32_t)p[2] << 8) | p[3]) != len) return 0;
    if ((p[6] & 0x3f) != 0 || p[7] != 0) return 0; /* MF or an offset: a fragment */
    t->v6 = 0;
    t->l4 = 20;
    ps = wio_csum_add(p + 12, 8, 0);
  } else if ((p[0] >> 4) == 6) {
    if (len < 60 || p[6] != 6 || (((uint32_t)p[4] << 8) | p[5]) + 40 != len) return 0;
    t->v6 = 1;
    t->l4 = 40;
    ps = wio_csum_add(p + 8, 32, 0);
  } else {
    return 0;
  }
  const uint8_t *th = p + t->l4;
  t->hl = t->l4 + (uint32_t)(th[12] >> 4) * 4;
  if (t->hl < t->l4 + 20 || t->hl >= len) return 0;
  if (th[13] != 0x10 && th[13] != 0x18) return 0;
  uint8_t ph[4] = {0, 6, (uint8_t)((len - t->l4) >> 8), (uint8_t)(len - t->l4)};
  ps = wio_csum_add(ph, 4, ps);
  if (wio_csum_fold(wio_csum_add(th, len - t->l4, ps)) != 0) return 0;
  t->p = p;
  t->len = len;
  t->seq = (uint32_t)th[4] << 24 | (uint32_t)th[5] << 16 | (uint32_t)th[6] << 8 | th[7];
  return 1;
}

/* Whether b continues a's flow right where a ends (Linux tcp_gro_receive's
 * rule: every header byte equal but the IP length, ID and checksum and the
 * TCP sequence number, PSH and checksum). */
static int tcp_follows(const tcp_seg *a, const tcp_seg *b) {
  if (a->v6 != b->v6 || a->hl != b->hl) return 0;
  if (b->seq != a->seq + (a->len - a->hl)) return 0;
  const uint8_t *x = a->p, *y = b->p;
  if (a->v6) {
    if (memcmp(x, y, 4) != 0 || memcmp(x + 6, y + 6, 34) != 0) return 0;
  } else {
    if (x[1] != y[1] || memcmp(x + 6, y + 6, 4) != 0 || memcmp(x + 12, y + 12, 8) != 0) return 0;
  }
  const uint8_t *tx = x + a->l4, *ty = y + b->l4;
  return memcmp(tx, ty, 4) == 0 && memcmp(tx + 8, ty + 8, 5) == 0 &&
         memcmp(tx + 14, ty + 14, 2) == 0 && memcmp(tx + 18, ty + 18, a->hl - a->l4 - 18) == 0;
}

uint16_t wio_super_ip(uint8_t *p, int v6, uint32_t l4, uint32_t total, uint8_t proto) {
  uint64_t ps;
  if (v6) {
    p[4] = (uint8_t)((total - 40) >> 8);
    p[5] = (uint8_t)(total - 40);
    ps = wio_csum_add(p + 8, 32, 0);
  } else {
    p[2] = (uint8_t)(total >> 8);
    p[3] = (uint8_t)total;
    p[10] = p[11] = 0;
    uint16_t c = wio_csum_fold(wio_csum_add(p, 20, 0));
    memcpy(p + 10, &c, 2);
    ps = wio_csum_add(p + 12, 8, 0);
  }
  uint8_t ph[4] = {0, proto, (uint8_t)((total - l4) >> 8), (uint8_t)(total - l4)};
  return (uint16_t)~wio_csum_fold(wio_csum_add(ph, 4, ps));
}

uint32_t wio_super_len(const wio_ring *r, uint32_t i, uint32_t j, uint32_t hl) {
  uint32_t total = r->lens[i];
  for (uint32_t k = i + 1; k < j; k++) total += r->lens[k] - hl;
  return total;
}

ssize_t wio_write_super(int fd, const struct virtio_net_hdr *h, wio_ring *r, uint32_t i, uint32_t j, uint32_t hl) {
  struct iovec iov[1 + WIO_SUPER_MAX_SEGS];
  iov[0].iov_base = (void *)h;
  iov[0].iov_len = WIO_VNET_HDR_LEN;
  iov[1].iov_base = r->mem + r->offs[i];
  iov[1].iov_len = r->lens[i];
  for (uint32_t k = i + 1; k < j; k++) {
    iov[1 + k - i].iov_base = r->mem + r->offs[k] + hl;
    iov[1 + k - i].iov_len = r->lens[k] - hl;
  }
  ssize_t w;
  do {
    w = writev(fd, iov, (int)(1 + j - i));
  } while (w < 0 && errno == EINTR);
  return w;
}

/* One write of slots [i, j) as a TCP super-packet behind a GSO header: the
 * first slot's headers are rewritten in place for the whole (IP length and
 * checksum, PSH of the last, the pseudo-header sum for the kernel to finish
 * - virtio 1.1 §5.1.6.2), the others give their payloads. */
static ssize_t write_coalesced(int fd, wio_ring *r, uint32_t i, uint32_t j, const tcp_seg *first, uint8_t last_flags) {
  uint8_t *p = r->mem + r->offs[i];
  uint8_t *th = p + first->l4;
  th[13] |= last_flags & 0x08;
  uint16_t partial = wio_super_ip(p, first->v6, first->l4, wio_super_len(r, i, j, first->hl), 6);
  memcpy(th + 16, &partial, 2);
  struct virtio_net_hdr h = {
      .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
      .gso_type = first->v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4,
      .hdr_len = (uint16_t)first->hl,
      .gso_size = (uint16_t)(first->len - first->hl),
      .csum_start = (uint16_t)first->l4,
      .csum_offset = 16,
  };
  return wio_write_super(fd, &h, r, i, j, first->hl);
}

/* The slots of a run starting at i: consecutive segments of one flow, all
 * of the first one's size but the last, at most 64 KiB of IP packet. */
static uint32_t run_end(wio_ring *r, uint32_t i, const tcp_seg *first, uint8_t *last_flags) {
  tcp_seg prev = *first, t;
  uint32_t size = first->len - first->hl, total = first->len, j = i + 1;
  /* IPv4 total length / IPv6 payload length: 16 bits. */
  uint32_t limit = first->v6 ? 65535 + 40 : 65535;
  *last_flags = first->p[first->l4 + 13];
  if (*last_flags & 0x08) return j; /* PSH ends a run (as in Linux GRO) */
  while (j < r->count && j - i < WIO_SUPER_MAX_SEGS && r->lens[j] != 0 &&
         tcp_parse(r->mem + r->offs[j], r->lens[j], &t) && tcp_follows(&prev, &t) &&
         t.len - t.hl <= size && total + (t.len - t.hl) <= limit) {
    total += t.len - t.hl;
    *last_flags = t.p[t.l4 + 13];
    j++;
    if ((*last_flags & 0x08) || t.len - t.hl < size) break;
    prev = t;
  }
  return j;
}

/* Writes r's packets to a vnet-header TUN: runs of TCP segments of one flow
 * coalesced into super-packets (the receive half of GRO; the kernel
 * segments them again where it must), runs of UDP datagrams too when `uso`,
 * everything else one by one behind a zeroed header. Returns the packets
 * written; *fatal = errno when the fd is unusable. stats: [8] coalesced TCP
 * writes, [9] segments they held, [10] coalesced UDP writes, [11] their
 * datagrams. */
uint32_t wio_tun_write_vnet(int fd, wio_ring *r, int uso, uint32_t *st, int *fatal) {
  uint8_t zero[WIO_VNET_HDR_LEN] = {0};
  struct iovec one[2] = {{zero, sizeof zero}, {NULL, 0}};
  uint32_t written = 0;
  *fatal = 0;
  for (uint32_t i = 0; i < r->count;) {
    if (r->lens[i] == 0) {
      i++;
      continue;
    }
    tcp_seg first;
    wio_udp_dgram ufirst = {0};
    uint32_t j = i + 1;
    uint8_t last_flags = 0;
    int udp = 0;
    const uint8_t *p = r->mem + r->offs[i];
    if (tcp_parse(p, r->lens[i], &first)) {
      j = run_end(r, i, &first, &last_flags);
    } else if (uso && wio_udp_parse(p, r->lens[i], &ufirst)) {
      j = wio_udp_run_end(r, i, &ufirst);
      udp = 1;
    }
    ssize_t w;
    if (j - i > 1) {
      w = udp ? wio_udp_write_run(fd, r, i, j, &ufirst) : write_coalesced(fd, r, i, j, &first, last_flags);
    } else {
      one[1].iov_base = r->mem + r->offs[i];
      one[1].iov_len = r->lens[i];
      do {
        w = writev(fd, one, 2);
      } while (w < 0 && errno == EINTR);
    }
    if (w < 0) {
      if (errno == EBADF || errno == EBADFD) {
        *fatal = errno;
        return written;
      }
      st[WIO_ST_FAILED] += j - i;
      st[WIO_ST_ERRNO] = (uint32_t)errno;
    } else {
      written += j - i;
      if (j - i > 1) {
        st[udp ? WIO_ST_COALESCED_UDP : WIO_ST_COALESCED]++;
        st[udp ? WIO_ST_COALESCED_UDP_SEGS : WIO_ST_COALESCED_SEGS] += j - i;
      }
    }
    i = j;
  }
  return written;
}

/* gsoSplit(packet, mem, offs, lens, max, slotCap, stats, first = 0) -> slots
 * filled (segments first.. as many as fit max), or -1 (malformed). packet =
 * virtio_net_hdr + IP packet, as a vnet TUN read returns it. For tests of
 * the segmenter (the same code readBatchVnet runs). */
static napi_value gso_split(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  uint8_t *pkt;
  size_t plen;
  uint32_t max, cap, *st, first = 0, nseg;
  napi_valuetype ft;
  wio_ring r;
  if (!wio_args(env, info, 8, argv) ||
      !wio_typed(env, argv[0], napi_uint8_array, 0, (void **)&pkt, &plen, "packet") ||
      !wio_u32(env, argv[4], &max) || !wio_u32(env, argv[5], &cap) ||
      !(st = wio_stats_n(env, argv[6], WIO_ST_OFFLOAD_COUNT)) ||
      napi_typeof(env, argv[7], &ft) != napi_ok ||
      (ft != napi_undefined && !wio_u32(env, argv[7], &first)) ||
      !wio_ring_unpack(env, argv + 1, max, cap, 0, &r))
    return NULL;
  return wio_int(env, wio_gso_split(pkt, plen, first, r.mem, r.offs, r.lens, r.count, cap, st, &nseg));
}

int wio_init_tun_offload(napi_env env, napi_value exports) {
  static const wio_fn fns[] = {
      {"readBatchVnet", read_batch_vnet},
      {"gsoSplit", gso_split},
  };
  napi_value v;
  napi_create_uint32(env, SCRATCH_MIN, &v);
  napi_set_named_property(env, exports, "TUN_SCRATCH", v);
  return wio_export(env, exports, fns, sizeof fns / sizeof fns[0]);
}
