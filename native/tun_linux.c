/*
 * TUN devices: open/attach, and batched read/write straight into ring slots.
 *
 * Linux's TUN driver has no batched read (one read() returns one packet), so
 * a "batch" here is a loop of read()s inside one JS->C call: the cost that
 * batching saves is the JS/C crossing and the per-packet JS work, not the
 * syscall. With IFF_VNET_HDR + TUNSETOFFLOAD (tun_offload_linux.c) one read
 * carries up to 64 KiB of TCP (or UDP with USO), as wireguard-go does.
 *
 * Ring memory as the caller hands it over (the WASM linear memory):
 *
 *   mem  ┌──────┬────────────── slot 0 ──────────────┬──────┬─── slot 1 ...
 *        │ ...  │ packet bytes (<= slotCap)            │ ...  │
 *        └──────┴──────────────────────────────────────┴──────┴──────────
 *               ^ offs[0]                                     ^ offs[1]
 *   lens[i] = bytes of packet i (0 = dropped: truncated, see below)
 *
 * Headroom before offs[i] and tailroom after offs[i]+slotCap are the
 * caller's business: the addon never touches bytes outside
 * [offs[i], offs[i]+slotCap) and checks that range lies inside mem.
 */
#define _GNU_SOURCE
#include "gso_linux.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

/* Linux 6.2 uapi (older headers lack them; older kernels refuse them). */
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#endif
#ifndef TUN_F_USO6
#define TUN_F_USO6 0x40
#endif

/* tunOpen(name, multiQueue, vnetHdr) -> [fd, actualName, vnet, offloadErrno, usoErrno]
 *
 * Creates the device if it does not exist (needs CAP_NET_ADMIN) or attaches
 * to an existing persistent one made with `ip tuntap add dev X mode tun user
 * U [multi_queue]` (the owner needs no capability). IFF_NO_PI: packets are
 * bare IP, no 4-byte packet-info prefix. IFF_MULTI_QUEUE must match how the
 * device was made (the kernel answers EINVAL otherwise); each call then adds
 * one queue, and the kernel spreads flows over the queues by hash, so each
 * worker owns one fd. The fd is non-blocking: reads end a batch at EAGAIN
 * and readiness comes from uv_poll or waitReadable.
 *
 * vnetHdr: IFF_VNET_HDR (every read and write carries a struct
 * virtio_net_hdr, tun_offload_linux.c), then TUNSETOFFLOAD(TUN_F_CSUM |
 * TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN) so the kernel may hand over TCP
 * super-packets, first with TUN_F_USO4 | TUN_F_USO6 added (Linux 6.2: UDP
 * super-packets both ways; the kernel enables them only as a pair) and
 * without them when that is refused. vnet says whether IFF_VNET_HDR took (a
 * kernel or device that refuses it is opened without: 0); offloadErrno is 0
 * when the kernel took the TCP offloads, else its errno (the header stays,
 * with no GSO); usoErrno likewise for USO (-1: not asked). */
static napi_value tun_open(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char name[IFNAMSIZ];
  int mq, vnet;
  if (!wio_args(env, info, 3, argv) ||
      !wio_string(env, argv[0], name, sizeof name, "name") ||
      !wio_bool(env, argv[1], &mq) || !wio_bool(env, argv[2], &vnet))
    return NULL;

  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return wio_throw_errno(env, "open /dev/net/tun", errno);

  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (mq ? IFF_MULTI_QUEUE : 0) | (vnet ? IFF_VNET_HDR : 0);
  memcpy(ifr.ifr_name, name, strlen(name));
  int r = ioctl(fd, TUNSETIFF, &ifr);
  if (r < 0 && vnet && errno == EINVAL) {
    vnet = 0; /* no IFF_VNET_HDR here: plain packets, no offloads */
    ifr.ifr_flags &= ~IFF_VNET_HDR;
    r = ioctl(fd, TUNSETIFF, &ifr);
  }
  int e = errno;
  int offload_err = vnet ? 0 : -1, uso_err = -1;
  if (r >= 0 && vnet) {
    unsigned long tso = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
    uso_err = 0;
    if (ioctl(fd, TUNSETOFFLOAD, tso | TUN_F_USO4 | TUN_F_USO6) < 0) {
      uso_err = errno;
      if (ioctl(fd, TUNSETOFFLOAD, tso) < 0) offload_err = errno;
    }
  }
  if (r < 0) {
    close(fd);
    char what[64];
    snprintf(what, sizeof what, "TUNSETIFF %s", name);
    return wio_throw_errno(env, what, e);
  }

  wio_own_fd(env, fd);
  napi_value out, vfd, vname;
  WIO_TRY(napi_create_array_with_length(env, 5, &out));
  WIO_TRY(napi_create_int32(env, fd, &vfd));
  WIO_TRY(napi_create_string_utf8(env, ifr.ifr_name,
                                  strnlen(ifr.ifr_name, IFNAMSIZ), &vname));
  napi_set_element(env, out, 0, vfd);
  napi_set_element(env, out, 1, vname);
  napi_set_element(env, out, 2, wio_int(env, vnet));
  napi_set_element(env, out, 3, wio_int(env, offload_err));
  napi_set_element(env, out, 4, wio_int(env, uso_err));
  return out;
}

/* readBatch(fd, mem, offs, lens, max, slotCap, stats) -> n
 *
 * Reads up to `max` packets, packet i into mem[offs[i] .. offs[i]+slotCap),
 * its length into lens[i]. Returns how many slots were filled; 0 means
 * nothing was ready. A packet longer than slotCap gets lens[i] = 0 so it is
 * dropped, never half-processed, and counts in stats[WIO_ST_TRUNCATED];
 * slotCap should be at least the device MTU.
 *
 * The TUN driver truncates silently (read returns min(packet, buffer)), so
 * each read offers one spill byte after the slot through readv: a read that
 * fills it was longer than slotCap. The spill byte is on our stack; the slot's
 * neighbour in mem is never touched. */
static napi_value tun_read_batch(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  int32_t fd;
  uint32_t max, cap, *st;
  wio_ring r;
  if (!wio_args(env, info, 7, argv) || !wio_i32(env, argv[0], &fd) ||
      !wio_u32(env, argv[4], &max) || !wio_u32(env, argv[5], &cap) ||
      !(st = wio_stats(env, argv[6])) ||
      !wio_ring_unpack(env, argv + 1, max, cap, 0, &r))
    return NULL;
  uint32_t n = 0;
  uint8_t spill;
  struct iovec iov[2] = {{NULL, cap}, {&spill, 1}};
  while (n < r.count) {
    iov[0].iov_base = r.mem + r.offs[n];
    ssize_t got = readv(fd, iov, 2);
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      if (n > 0) break; /* report what we have; the error comes back next call */
      return wio_throw_errno(env, "tun read", errno);
    }
    if ((uint64_t)got > cap) {
      r.lens[n] = 0;
      st[WIO_ST_TRUNCATED]++;
    } else {
      r.lens[n] = (uint32_t)got;
    }
    n++;
  }
  return wio_int(env, n);
}

/* writeBatch(fd, mem, offs, lens, n, stats, vnet?, uso?) -> written
 *
 * Writes packets 0..n-1 (mem[offs[i] .. offs[i]+lens[i]), lens[i] = 0 is
 * skipped). A packet the kernel refuses (EINVAL for a malformed header, EIO
 * while the link is down) is skipped, not retried, and counted in
 * stats[WIO_ST_FAILED] with its errno in stats[WIO_ST_ERRNO]. TUN writes
 * never block, so there is no EAGAIN case worth waiting for.
 *
 * vnet: the fd was opened with IFF_VNET_HDR; packets go out behind a
 * virtio_net_hdr, TCP runs coalesced (wio_tun_write_vnet), and stats needs
 * WIO_ST_OFFLOAD_COUNT elements. uso: the TUN took TUN_F_USO4|USO6 (tunOpen's
 * usoErrno 0), so UDP runs are coalesced too. */
static napi_value tun_write_batch(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  int32_t fd;
  uint32_t n, *st;
  int vnet, uso;
  wio_ring r;
  if (!wio_args(env, info, 8, argv) || !wio_i32(env, argv[0], &fd) ||
      !wio_u32(env, argv[4], &n) || !wio_bool(env, argv[6], &vnet) || !wio_bool(env, argv[7], &uso) ||
      !(st = wio_stats_n(env, argv[5], vnet ? WIO_ST_OFFLOAD_COUNT : WIO_ST_COUNT)) ||
      !wio_ring_unpack(env, argv + 1, n, 0, 1, &r))
    return NULL;
  if (vnet) {
    int fatal;
    uint32_t w = wio_tun_write_vnet(fd, &r, uso, st, &fatal);
    if (fatal) return wio_throw_errno(env, "tun write", fatal);
    return wio_int(env, w);
  }
  uint32_t written = 0;
  for (uint32_t i = 0; i < r.count; i++) {
    if (r.lens[i] == 0) continue;
    ssize_t w;
    do {
      w = write(fd, r.mem + r.offs[i], r.lens[i]);
    } while (w < 0 && errno == EINTR);
    if (w < 0) {
      if (errno == EBADF || errno == EBADFD)
        return wio_throw_errno(env, "tun write", errno);
      st[WIO_ST_FAILED]++;
      st[WIO_ST_ERRNO] = (uint32_t)errno;
      continue;
    }
    written++;
  }
  return wio_int(env, written);
}

int wio_init_tun(napi_env env, napi_value exports) {
  static const wio_fn fns[] = {
      {"tunOpen", tun_open},
      {"readBatch", tun_read_batch},
      {"writeBatch", tun_write_batch},
  };
  return wio_export(env, exports, fns, sizeof fns / sizeof fns[0]);
}
