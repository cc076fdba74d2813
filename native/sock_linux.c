/*
 * UDP and raw IP sockets with batched receive (recvmmsg) and send (sendmmsg)
 * straight from and into ring slots.
 *
 * Per-slot side arrays, all indexed by slot i (same layout for receive and
 * send, so a slot received from a peer can be answered in place):
 *
 *   addrs  Uint8Array,  16 B per slot: the peer's address.
 *          IPv4 socket: 4 address bytes then 12 zero bytes.
 *          IPv6 socket: 16 bytes (an IPv4 peer of a dual-stack socket is
 *          ::ffff:a.b.c.d, RFC 4291 section 2.5.5.2).
 *   ports  Uint16Array, peer port in host order (0 for raw sockets).
 *   locals Uint8Array,  16 B per slot, same format as addrs: the packet's
 *          destination address (IP_PKTINFO / IPV6_PKTINFO), so a host bound
 *          to 0.0.0.0 still knows which of its addresses a peer used.
 *   fams   Uint8Array,  1 B per slot, send only: 4 or 6, the peer's family.
 *
 * Raw sockets (ESP = 50, IP-in-IP = 4 / 41, GRE = 47): Linux hands an IPv4
 * raw socket the whole datagram including the IPv4 header, but an IPv6 raw
 * socket only the payload (RFC 3542 section 3) -- the wrappers say so. On
 * send, without IP_HDRINCL the kernel writes the outer header; with it the
 * slot must start with one (IPv4: IP_HDRINCL; IPv6: IPV6_HDRINCL, Linux 4.5+).
 *
 * Sockets are left blocking with SO_SNDTIMEO: receives pass MSG_DONTWAIT (so
 * a batch ends when the queue is empty), sends block while the send buffer is
 * full -- backpressure for the pipeline -- but never longer than the timeout,
 * so a stuck link cannot stop a clean shutdown.
 */
#define _GNU_SOURCE
#include "gso_linux.h"
#include "sock_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#ifndef IPV6_HDRINCL
#define IPV6_HDRINCL 36 /* linux/in6.h, Linux 4.5+ */
#endif

/* Flags of sockOpen, one bit each (kept in step with host/io/native_linux.ts). */
#define WIO_F_REUSEPORT 1 /* SO_REUSEPORT: one socket per worker, same port */
#define WIO_F_V6ONLY 2    /* IPV6_V6ONLY: leave IPv4 to an AF_INET socket */
#define WIO_F_PKTINFO 4   /* report each packet's local address */
#define WIO_F_HDRINCL 8   /* raw send: the slot carries the IP header */

/* Room for one IPV6_PKTINFO or IP_PKTINFO control message per slot. */
#define WIO_CMSG_ROOM 64

static int set_int(int fd, int level, int opt, int v) {
  return setsockopt(fd, level, opt, &v, sizeof v);
}

/* Buffer sizes above net.core.[rw]mem_max need CAP_NET_ADMIN (the FORCE
 * options); without it fall back to the capped plain option. */
static void set_buf(int fd, int force_opt, int opt, int bytes) {
  if (bytes <= 0) return;
  if (set_int(fd, SOL_SOCKET, force_opt, bytes) < 0)
    set_int(fd, SOL_SOCKET, opt, bytes);
}

/* sockOpen(raw, family, protocol, address|null, port, flags, rcvbuf, sndbuf,
 *          sndTimeoutMs) -> fd
 * raw = false: UDP (protocol ignored). raw = true: SOCK_RAW of `protocol`
 * (needs CAP_NET_RAW); port ignored, address (optional) filters by local
 * destination. sndTimeoutMs >= 1 (0 would mean "block forever"). */
static napi_value sock_open(napi_env env, napi_callback_info info) {
  napi_value argv[9];
  int raw;
  int32_t family, proto, port, flags, rcvbuf, sndbuf, tmo;
  char addr[64] = "";
  napi_valuetype at;
  if (!wio_args(env, info, 9, argv) || !wio_bool(env, argv[0], &raw) ||
      !wio_i32(env, argv[1], &family) || !wio_i32(env, argv[2], &proto) ||
      napi_typeof(env, argv[3], &at) != napi_ok ||
      (at == napi_string &&
       !wio_string(env, argv[3], addr, sizeof addr, "address")) ||
      !wio_i32(env, argv[4], &port) || !wio_i32(env, argv[5], &flags) ||
      !wio_i32(env, argv[6], &rcvbuf) || !wio_i32(env, argv[7], &sndbuf) ||
      !wio_i32(env, argv[8], &tmo))
    return NULL;
  if (family != 4 && family != 6) return wio_throw_range(env, "family: 4 or 6");
  if (port < 0 || port > 65535) return wio_throw_range(env, "port: 0..65535");
  if (tmo < 1) return wio_throw_range(env, "sndTimeoutMs: at least 1");
  if (raw && (proto < 1 || proto > 255))
    return wio_throw_range(env, "protocol: 1..255");

  int af = family == 4 ? AF_INET : AF_INET6;
  int fd = socket(af, (raw ? SOCK_RAW : SOCK_DGRAM) | SOCK_CLOEXEC,
                  raw ? proto : IPPROTO_UDP);
  if (fd < 0) return wio_throw_errno(env, raw ? "raw socket" : "udp socket", errno);

  const char *step = "setsockopt";
  int ok = 1;
  if ((flags & WIO_F_REUSEPORT) && set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1) < 0)
    ok = 0, step = "SO_REUSEPORT";
  /* (Raw IPv6 sockets never see IPv4 and reject the option.) */
  if (ok && af == AF_INET6 && !raw &&
      set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, (flags & WIO_F_V6ONLY) ? 1 : 0) < 0)
    ok = 0, step = "IPV6_V6ONLY";
  if (ok && (flags & WIO_F_PKTINFO)) {
    int r = af == AF_INET ? set_int(fd, IPPROTO_IP, IP_PKTINFO, 1)
                          : set_int(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1);
    if (r < 0) ok = 0, step = "PKTINFO";
  }
  if (ok && raw && (flags & WIO_F_HDRINCL)) {
    int r = af == AF_INET ? set_int(fd, IPPROTO_IP, IP_HDRINCL, 1)
                          : set_int(fd, IPPROTO_IPV6, IPV6_HDRINCL, 1);
    if (r < 0) ok = 0, step = "HDRINCL";
  }
  if (ok) {
    struct timeval tv = {.tv_sec = tmo / 1000, .tv_usec = (tmo % 1000) * 1000};
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
      ok = 0, step = "SO_SNDTIMEO";
  }
  if (ok) {
    set_buf(fd, SO_RCVBUFFORCE, SO_RCVBUF, rcvbuf);
    set_buf(fd, SO_SNDBUFFORCE, SO_SNDBUF, sndbuf);
  }
  if (ok && (!raw || addr[0] != 0)) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    int pr = 1;
    if (af == AF_INET) {
      struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
      s4->sin_family = AF_INET;
      s4->sin_port = raw ? 0 : htons((uint16_t)port);
      if (addr[0]) pr = inet_pton(AF_INET, addr, &s4->sin_addr);
      sl = sizeof *s4;
    } else {
      struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
      s6->sin6_family = AF_INET6;
      s6->sin6_port = raw ? 0 : htons((uint16_t)port);
      if (addr[0]) pr = inet_pton(AF_INET6, addr, &s6->sin6_addr);
      sl = sizeof *s6;
    }
    if (pr != 1) {
      close(fd);
      return wio_throw_range(env, "address is not an IP address of that family");
    }
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0) ok = 0, step = "bind";
  }
  if (!ok) {
    int e = errno;
    close(fd);
    return wio_throw_errno(env, step, e);
  }
  wio_own_fd(env, fd);
  return wio_int(env, fd);
}

/* sockName(fd) -> [address, port]: where the socket is bound (port 0 asks
 * the kernel for one; this tells which). */
static napi_value sock_name(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!wio_args(env, info, 1, argv) || !wio_i32(env, argv[0], &fd)) return NULL;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
    return wio_throw_errno(env, "getsockname", errno);
  char buf[INET6_ADDRSTRLEN] = "";
  int port = 0;
  if (ss.ss_family == AF_INET) {
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    inet_ntop(AF_INET, &s4->sin_addr, buf, sizeof buf);
    port = ntohs(s4->sin_port);
  } else {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof buf);
    port = ntohs(s6->sin6_port);
  }
  napi_value out, va, vp;
  WIO_TRY(napi_create_array_with_length(env, 2, &out));
  WIO_TRY(napi_create_string_utf8(env, buf, NAPI_AUTO_LENGTH, &va));
  WIO_TRY(napi_create_int32(env, port, &vp));
  napi_set_element(env, out, 0, va);
  napi_set_element(env, out, 1, vp);
  return out;
}

/* A side array of `per` bytes (or elements) per slot, long enough for n. */
int wio_side(napi_env env, napi_value v, napi_typedarray_type t, size_t per,
                uint32_t n, void **p, const char *name) {
  size_t len;
  if (!wio_typed(env, v, t, 1, p, &len, name)) return 0;
  if (*p != NULL && len < (size_t)n * per) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s shorter than the batch", name);
    wio_throw_range(env, msg);
    return 0;
  }
  return 1;
}

/* The peer's address and port from what recvmmsg wrote: `len` is the
 * msg_namelen it returned. The kernel may write none (len 0: a connected
 * stream, a socket type without addresses) and then the buffer holds
 * whatever an earlier call left there -- another packet's peer, or stack
 * bytes -- so only a complete sockaddr_in / sockaddr_in6 is read; anything
 * else reports the zero address and port 0. */
void wio_put_addr(const struct sockaddr_storage *ss, socklen_t len,
                     uint8_t *a16, uint16_t *port) {
  memset(a16, 0, 16);
  *port = 0;
  if (len >= sizeof(struct sockaddr_in) && ss->ss_family == AF_INET) {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
    memcpy(a16, &s4->sin_addr, 4);
    *port = ntohs(s4->sin_port);
  } else if (len >= sizeof(struct sockaddr_in6) && ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
    memcpy(a16, &s6->sin6_addr, 16);
    *port = ntohs(s6->sin6_port);
  }
}

/* The packet's destination address from its IP_PKTINFO / IPV6_PKTINFO
 * control message; zero when there is none (or it is short). */
void wio_put_local(struct msghdr *m, uint8_t *a16) {
  memset(a16, 0, 16);
  for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO &&
        c->cmsg_len >= CMSG_LEN(sizeof(struct in_pktinfo))) {
      struct in_pktinfo pi;
      memcpy(&pi, CMSG_DATA(c), sizeof pi);
      memcpy(a16, &pi.ipi_addr, 4); /* the header's destination */
    } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO &&
               c->cmsg_len >= CMSG_LEN(sizeof(struct in6_pktinfo))) {
      struct in6_pktinfo pi;
      memcpy(&pi, CMSG_DATA(c), sizeof pi);
      memcpy(a16, &pi.ipi6_addr, 16);
    }
  }
}

/* recvBatch(fd, mem, offs, lens, addrs|null, ports|null, locals|null, max,
 *           slotCap, stats) -> n
 * One recvmmsg(MSG_DONTWAIT) of up to `max` datagrams, datagram i into
 * mem[offs[i] .. offs[i]+slotCap). 0 = nothing queued. A datagram longer than
 * slotCap gets lens[i] = 0 and counts in stats[WIO_ST_TRUNCATED]. */
static napi_value sock_recv_batch(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  int32_t fd;
  uint32_t max, cap, *st;
  wio_ring r;
  uint8_t *addrs, *locals;
  uint16_t *ports;
  if (!wio_args(env, info, 10, argv) || !wio_i32(env, argv[0], &fd) ||
      !wio_u32(env, argv[7], &max) || !wio_u32(env, argv[8], &cap) ||
      !(st = wio_stats(env, argv[9])) ||
      !wio_ring_unpack(env, argv + 1, max, cap, 0, &r) ||
      !wio_side(env, argv[4], napi_uint8_array, 16, r.count, (void **)&addrs, "addrs") ||
      !wio_side(env, argv[5], napi_uint16_array, 1, r.count, (void **)&ports, "ports") ||
      !wio_side(env, argv[6], napi_uint8_array, 16, r.count, (void **)&locals, "locals"))
    return NULL;
  if (r.count == 0) return wio_int(env, 0);

  struct mmsghdr msgs[WIO_MAX_BATCH];
  struct iovec iov[WIO_MAX_BATCH];
  struct sockaddr_storage from[WIO_MAX_BATCH];
  /* Aligned for cmsghdr; only touched when locals are wanted. */
  union {
    struct cmsghdr align;
    uint8_t b[WIO_CMSG_ROOM];
  } ctl[locals ? WIO_MAX_BATCH : 1];
  for (uint32_t i = 0; i < r.count; i++) {
    iov[i].iov_base = r.mem + r.offs[i];
    iov[i].iov_len = cap;
    memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &from[i];
    msgs[i].msg_hdr.msg_namelen = sizeof from[i];
    if (locals) {
      msgs[i].msg_hdr.msg_control = ctl[i].b;
      msgs[i].msg_hdr.msg_controllen = WIO_CMSG_ROOM;
    }
  }
  int got;
  do {
    got = recvmmsg(fd, msgs, r.count, MSG_DONTWAIT, NULL);
  } while (got < 0 && errno == EINTR);
  if (got < 0) {
    if (errno == EAGAIN) return wio_int(env, 0);
    return wio_throw_errno(env, "recvmmsg", errno);
  }
  for (int i = 0; i < got; i++) {
    if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
      r.lens[i] = 0;
      st[WIO_ST_TRUNCATED]++;
    } else {
      r.lens[i] = msgs[i].msg_len;
    }
    uint16_t port = 0;
    socklen_t nl = msgs[i].msg_hdr.msg_namelen;
    if (addrs) wio_put_addr(&from[i], nl, addrs + 16 * i, &port);
    else if (ports) wio_put_addr(&from[i], nl, (uint8_t[16]){0}, &port);
    if (ports) ports[i] = port;
    if (locals) wio_put_local(&msgs[i].msg_hdr, locals + 16 * i);
  }
  return wio_int(env, got);
}

/* The sockaddr for slot i: family fams[i] on a socket of family sfam. An
 * IPv4 peer on an IPv6 socket goes out as ::ffff:a.b.c.d (dual stack).
 * Returns the length, 0 when the pair of families cannot work. */
socklen_t wio_make_addr(int sfam, uint8_t fam, const uint8_t *a16,
                           uint16_t port, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof(struct sockaddr_in6));
  if (sfam == 4) {
    if (fam != 4) return 0;
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons(port);
    memcpy(&s4->sin_addr, a16, 4);
    return sizeof *s4;
  }
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
  s6->sin6_family = AF_INET6;
  s6->sin6_port = htons(port);
  if (fam == 6) {
    memcpy(&s6->sin6_addr, a16, 16);
  } else if (fam == 4) {
    s6->sin6_addr.s6_addr[10] = 0xff;
    s6->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&s6->sin6_addr.s6_addr[12], a16, 4);
  } else {
    return 0;
  }
  return sizeof *s6;
}

/* sendBatch(fd, sockFamily, mem, offs, lens, addrs, ports, fams, n, stats, gso?)
 *   -> sent
 * Sends slots 0..n-1 (lens[i] = 0 skipped) to addrs[i]/ports[i] with as few
 * sendmmsg calls as the kernel allows. A datagram the kernel refuses
 * (EMSGSIZE, ENETUNREACH, EPERM from a firewall, ...) is skipped and counted
 * in stats[WIO_ST_FAILED]; when the send buffer stays full past SO_SNDTIMEO,
 * the rest of the batch is left and counted in stats[WIO_ST_UNSENT].
 * gso: UDP_SEGMENT trains (udp_offload_linux.c; stats needs
 * WIO_ST_OFFLOAD_COUNT elements). */
static napi_value sock_send_batch(napi_env env, napi_callback_info info) {
  napi_value argv[11];
  int32_t fd, sfam;
  uint32_t n, *st;
  int gso;
  wio_ring r;
  uint8_t *addrs, *fams;
  uint16_t *ports;
  if (!wio_args(env, info, 11, argv) || !wio_i32(env, argv[0], &fd) ||
      !wio_i32(env, argv[1], &sfam) || !wio_u32(env, argv[8], &n) ||
      !wio_bool(env, argv[10], &gso) ||
      !(st = wio_stats_n(env, argv[9], gso ? WIO_ST_OFFLOAD_COUNT : WIO_ST_COUNT)) ||
      !wio_ring_unpack(env, argv + 2, n, 0, 1, &r) ||
      !wio_side(env, argv[5], napi_uint8_array, 16, r.count, (void **)&addrs, "addrs") ||
      !wio_side(env, argv[6], napi_uint16_array, 1, r.count, (void **)&ports, "ports") ||
      !wio_side(env, argv[7], napi_uint8_array, 1, r.count, (void **)&fams, "fams"))
    return NULL;
  if (!addrs || !ports || !fams) return wio_throw_type(env, "addrs, ports and fams are required");
  if (gso) {
    int64_t sent = wio_udp_send_gso(fd, sfam, &r, addrs, ports, fams, st);
    if (sent < 0) return wio_throw_errno(env, "sendmmsg", (int)-sent);
    return wio_int(env, sent);
  }

  struct mmsghdr msgs[WIO_MAX_BATCH];
  struct iovec iov[WIO_MAX_BATCH];
  struct sockaddr_storage to[WIO_MAX_BATCH];
  uint32_t m = 0;
  for (uint32_t i = 0; i < r.count; i++) {
    if (r.lens[i] == 0) continue;
    socklen_t sl = wio_make_addr(sfam, fams[i], addrs + 16 * i, ports[i], &to[m]);
    if (sl == 0) {
      st[WIO_ST_FAILED]++;
      st[WIO_ST_ERRNO] = EAFNOSUPPORT;
      continue;
    }
    iov[m].iov_base = r.mem + r.offs[i];
    iov[m].iov_len = r.lens[i];
    memset(&msgs[m].msg_hdr, 0, sizeof msgs[m].msg_hdr);
    msgs[m].msg_hdr.msg_iov = &iov[m];
    msgs[m].msg_hdr.msg_iovlen = 1;
    msgs[m].msg_hdr.msg_name = &to[m];
    msgs[m].msg_hdr.msg_namelen = sl;
    m++;
  }
  uint32_t k = 0, sent = 0;
  while (k < m) {
    int w = sendmmsg(fd, msgs + k, m - k, 0);
    if (w > 0) {
      k += (uint32_t)w;
      sent += (uint32_t)w;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      st[WIO_ST_UNSENT] += m - k;
      break;
    }
    if (errno == EBADF || errno == ENOTSOCK) return wio_throw_errno(env, "sendmmsg", errno);
    /* sendmmsg reports an error only for the first datagram of a call. */
    st[WIO_ST_FAILED]++;
    st[WIO_ST_ERRNO] = (uint32_t)errno;
    k++;
  }
  return wio_int(env, sent);
}

int wio_init_sock(napi_env env, napi_value exports) {
  static const wio_fn fns[] = {
      {"sockOpen", sock_open},
      {"sockName", sock_name},
      {"recvBatch", sock_recv_batch},
      {"sendBatch", sock_send_batch},
  };
  return wio_export(env, exports, fns, sizeof fns / sizeof fns[0]);
}
