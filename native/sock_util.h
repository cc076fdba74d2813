/*
 * Per-slot side arrays and sockaddr conversions of sock_linux.c, shared with
 * the UDP offload paths (udp_offload_linux.c).
 */
#ifndef WESP_SOCK_UTIL_H
#define WESP_SOCK_UTIL_H

#include "io_util.h"
#include <sys/socket.h>

/* A side array of `per` bytes (or elements) per slot, long enough for n; NULL when absent. */
int wio_side(napi_env env, napi_value v, napi_typedarray_type t, size_t per,
             uint32_t n, void **p, const char *name);
/* The peer's address and port from a recvmmsg name of length len (zero when incomplete). */
void wio_put_addr(const struct sockaddr_storage *ss, socklen_t len,
                  uint8_t *a16, uint16_t *port);
/* The packet's destination address from its IP(V6)_PKTINFO control message. */
void wio_put_local(struct msghdr *m, uint8_t *a16);
/* The sockaddr for a peer of family fam on a socket of family sfam; 0 when impossible. */
socklen_t wio_make_addr(int sfam, uint8_t fam, const uint8_t *a16,
                        uint16_t port, struct sockaddr_storage *ss);

#endif
