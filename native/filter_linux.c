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
 * And one eBPF program on a multi-queue TUN:
 *
 *   TUNSETSTEERINGEBPF        the program's return value (mod the number of
 *                             queues) is the queue that reads the packet;
 *                             with one attached the kernel no longer hashes
 *                             every packet written to the TUN into its flow
 *                             table (drivers/net/tun.c tun_get_user).
 *
 * The host builds the programs (host/net/steer_linux.ts); here they are only
 * handed to the kernel, which verifies them (EINVAL for a bad one).
 */
#define _GNU_SOURCE
#include "io_util.h"

#include <errno.h>
#include <linux/bpf.h>
#include <linux/filter.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

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
    /* MSG_TRUNC: each datagram is discarded whole whatever the buffer, so one
     * byte on this thread's stack (a static buffer was shared by workers). */
    char sink;
    while (recv(fd, &sink, sizeof sink, MSG_DONTWAIT | MSG_TRUNC) >= 0) drained++;
  }
  napi_value out;
  WIO_TRY(napi_create_int32(env, drained, &out));
  return out;
}

/* Most eBPF instructions a TUN steering program may have (ours has ~50). */
#define STEER_MAX_INSNS 256

/* tunAttachSteering(fd, program) -> undefined
 * program: Uint32Array of 2 words per instruction, struct bpf_insn as laid
 * out on a little-endian host: {code | dst << 8 | src << 12 | off << 16, imm}.
 * Loaded as BPF_PROG_TYPE_SOCKET_FILTER (what TUNSETSTEERINGEBPF takes) and
 * attached to the TUN of `fd` (one program per device, any queue's fd sets
 * it); our reference to the program is closed, the TUN keeps its own. A
 * refusal throws with the errno and the verifier's first line. */
static napi_value tun_attach_steering(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd;
  void *words;
  size_t n;
  if (!wio_args(env, info, 2, argv) || !wio_i32(env, argv[0], &fd) ||
      !wio_typed(env, argv[1], napi_uint32_array, 0, &words, &n, "program"))
    return NULL;
  if (n == 0 || n % 2 != 0 || n / 2 > STEER_MAX_INSNS)
    return wio_throw_range(env, "program: 1..256 instructions of 2 words");
  struct bpf_insn insns[STEER_MAX_INSNS];
  memcpy(insns, words, n * 4);
  static const char license[] = "MIT";
  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
  attr.insn_cnt = (uint32_t)(n / 2);
  attr.insns = (uint64_t)(uintptr_t)insns;
  attr.license = (uint64_t)(uintptr_t)license;
  int prog = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof attr);
  if (prog < 0) {
    /* Refused: load again with the verifier's log, whose last line says why
     * (a log too small for the whole trace fails with ENOSPC: keep the first errno). */
    int err = errno;
    char log[16384];
    log[0] = 0;
    attr.log_level = 1;
    attr.log_size = sizeof log;
    attr.log_buf = (uint64_t)(uintptr_t)log;
    int again = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof attr);
    if (again >= 0) close(again);
    log[sizeof log - 1] = 0;
    size_t len = strlen(log);
    while (len > 0 && log[len - 1] == '\n') log[--len] = 0;
    char *last = strrchr(log, '\n');
    last = last ? last + 1 : log;
    char what[160];
    snprintf(what, sizeof what, "BPF_PROG_LOAD (TUN steering)%s%.100s", last[0] ? ": " : "", last);
    return wio_throw_errno(env, what, err);
  }
  int r = ioctl(fd, TUNSETSTEERINGEBPF, &prog);
  int err = errno;
  close(prog);
  if (r < 0) return wio_throw_errno(env, "TUNSETSTEERINGEBPF", err);
  return NULL;
}

int wio_init_filter(napi_env env, napi_value exports) {
  static const wio_fn fns[] = {{"sockAttachFilter", sock_attach_filter}, {"tunAttachSteering", tun_attach_steering}};
  return wio_export(env, exports, fns, sizeof fns / sizeof fns[0]);
}
