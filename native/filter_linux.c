/*
 * Classic-BPF programs on sockets, for steering packets to packet workers
 * (docs/forwarder.md "Workers"):
 *
 *   SO_ATTACH_REUSEPORT_CBPF  on one socket of an SO_REUSEPORT group: the
 *                             program's return value is the index (join
 *                             order) of the socket that gets the datagram;
 *                             for UDP it sees the payload from offset 0.
 *   SO_ATTACH_FILTER          on one socket: 0 = drop, else accept (raw
 *                             sockets: IPv4 from the IP header, IPv6 from the
 *                             payload, RFC 3542 section 3).
 *
 * The host builds the programs (host/net/steer_linux.ts); here they are only
 * handed to the kernel, which verifies them (EINVAL for a bad one).
 */
#define _GNU_SOURCE
#include "io_util.h"

#include <errno.h>
#include <linux/filter.h>
#include <sys/socket.h>

#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF 51 /* asm-generic/socket.h, Linux 4.5+ */
#endif

/* sockAttachFilter(fd, reuseport, program, drain) -> packets drained
 * program: Uint32Array of 2 words per instruction, {code | jt << 16 | jf << 24,
 * k} (struct sock_filter). With drain, datagrams queued before the filter
 * took (which it never judged) are read and discarded. */
static napi_value sock_attach_filter(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int32_t fd;
  int reuseport, drain;
  void *words;
  size_t n;
  if (!wio_args(env, info, 4, argv) || !wio_i32(env, argv[0], &fd) ||
      !wio_bool(env, argv[1], &reuseport) ||
      !wio_typed(env, argv[2], napi_uint32_array, 0, &words, &n, "program") ||
      !wio_bool(env, argv[3], &drain))
    return NULL;
  if (n == 0 || n % 2 != 0 || n / 2 > BPF_MAXINSNS)
    return wio_throw_range(env, "program: 1..4096 instructions of 2 words");
  struct sock_filter insns[BPF_MAXINSNS];
  const uint32_t *w = words;
  for (size_t i = 0; i < n / 2; i++) {
    insns[i].code = (uint16_t)(w[2 * i] & 0xffff);
    insns[i].jt = (uint8_t)((w[2 * i] >> 16) & 0xff);
    insns[i].jf = (uint8_t)(w[2 * i] >> 24);
    insns[i].k = w[2 * i + 1];
  }
  struct sock_fprog prog = {.len = (unsigned short)(n / 2), .filter = insns};
  int opt = reuseport ? SO_ATTACH_REUSEPORT_CBPF : SO_ATTACH_FILTER;
  if (setsockopt(fd, SOL_SOCKET, opt, &prog, sizeof prog) < 0)
    return wio_throw_errno(env, reuseport ? "SO_ATTACH_REUSEPORT_CBPF" : "SO_ATTACH_FILTER", errno);
  int drained = 0;
  if (drain) {
    static char sink[65536];
    while (recv(fd, sink, sizeof sink, MSG_DONTWAIT | MSG_TRUNC) >= 0) drained++;
  }
  napi_value out;
  WIO_TRY(napi_create_int32(env, drained, &out));
  return out;
}

int wio_init_filter(napi_env env, napi_value exports) {
  static const wio_fn fns[] = {{"sockAttachFilter", sock_attach_filter}};
  return wio_export(env, exports, fns, sizeof fns / sizeof fns[0]);
}
