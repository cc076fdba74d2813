/*
 * TSO/USO segmentation and checksums (gso_linux.c), shared by the TUN and
 * UDP offload paths (tun_offload_linux.c, udp_coalesce_linux.c,
 * udp_offload_linux.c).
 */
#ifndef WESP_GSO_LINUX_H
#define WESP_GSO_LINUX_H

#include "io_util.h"

#include <linux/virtio_net.h>
#include <sys/types.h>

#ifndef VIRTIO_NET_HDR_GSO_UDP_L4
#define VIRTIO_NET_HDR_GSO_UDP_L4 5 /* USO, Linux 6.2 uapi: older headers lack it */
#endif

/* struct virtio_net_hdr without the num_buffers field (TUNSETVNETHDRSZ
 * is left at its default, 10). */
#define WIO_VNET_HDR_LEN 10

/* Extra counters of an offloading fd, after the WIO_ST_* four: the stats
 * array of such an fd has WIO_ST_OFFLOAD_COUNT elements. */
enum {
  WIO_ST_SUPER = 4,    /* TUN: super-packets segmented / UDP: GRO trains split */
  WIO_ST_SEGMENTS = 5, /* segments they made */
  WIO_ST_BAD = 6,      /* super-packets refused as malformed, dropped */
  WIO_ST_CSUM = 7,     /* TUN: partial checksums completed */
  WIO_ST_COALESCED = 8,      /* TUN: TCP super-packets written (coalesced segments) */
  WIO_ST_COALESCED_SEGS = 9, /* the segments they held */
  WIO_ST_COALESCED_UDP = 10,      /* TUN: UDP super-packets written (USO) */
  WIO_ST_COALESCED_UDP_SEGS = 11, /* the datagrams they held */
  WIO_ST_OFFLOAD_COUNT = 12
};

/* Return codes of wio_gso_split besides a segment count. */
#define WIO_GSO_BAD (-1)

uint64_t wio_csum_add(const uint8_t *p, size_t len, uint64_t sum);
uint16_t wio_csum_fold(uint64_t sum);

/* Segments one TUN read (virtio_net_hdr + packet, `total` bytes): segments
 * first, first+1, ... into slots offs[0..max), as many as fit. Returns how
 * many slots it filled (0 when first is past the end or max is 0: a call
 * with max 0 just parses), WIO_GSO_BAD when malformed; *nseg = the
 * packet's segment count (1 for a packet without GSO, which fills one slot,
 * lens = 0 when longer than cap). */
int wio_gso_split(const uint8_t *vh, size_t total, uint32_t first,
                  uint8_t *mem, const uint32_t *offs, uint32_t *lens,
                  uint32_t max, uint32_t cap, uint32_t *st, uint32_t *nseg);

/* Largest vnet TUN read: the header and an IP packet (IPv6: 40 + 65,535). */
#define WIO_TUN_READ_MAX (WIO_VNET_HDR_LEN + 40 + 65535)

/* Cuts segments *done.. of one vnet TUN read (vh, len bytes) into slots
 * n.. of r (tun_offload_linux.c; readBatchVnet and the io_uring reader).
 * Returns the slots filled, or -1 when the packet does not fit what is left
 * of a batch that already holds packets (it then opens the next batch).
 * *done advances; *finished = 1 when the packet is used up: every segment
 * out, or dropped as malformed (counted in WIO_ST_BAD). */
int wio_vnet_take(const uint8_t *vh, uint32_t len, uint32_t *done, wio_ring *r,
                  uint32_t n, uint32_t cap, uint32_t *st, int *finished);

/* Writes a batch to a vnet-header TUN, coalescing TCP runs, and UDP runs
 * when `uso` (the TUN took TUN_F_USO4|USO6) (tun_offload_linux.c); *fatal =
 * errno when the fd is unusable. */
uint32_t wio_tun_write_vnet(int fd, wio_ring *r, int uso, uint32_t *st, int *fatal);

/* Most segments one coalesced TUN write holds (Linux UDP_GRO_CNT_MAX, and
 * what wireguard-go and the kernel's TCP GRO settle on). */
#define WIO_SUPER_MAX_SEGS 64

/* Shared by the TCP and UDP coalescers (tun_offload_linux.c): */
/* The first slot's IP header rewritten for a super-packet of `total` bytes
 * (IPv4 total length and header checksum / IPv6 payload length); returns
 * the pseudo-header sum (RFC 9293 §3.1, RFC 768, RFC 8200 §8.1) for the L4
 * checksum field, which the kernel finishes (NEEDS_CSUM). */
uint16_t wio_super_ip(uint8_t *p, int v6, uint32_t l4, uint32_t total, uint8_t proto);
/* The length of slots [i, j) as one packet: the first whole, the others
 * without their hl bytes of headers. */
uint32_t wio_super_len(const wio_ring *r, uint32_t i, uint32_t j, uint32_t hl);
/* One writev: h, the first slot whole, the others from byte hl on (EINTR
 * retried). */
ssize_t wio_write_super(int fd, const struct virtio_net_hdr *h, wio_ring *r, uint32_t i, uint32_t j, uint32_t hl);

/* A UDP datagram as the UDP coalescer sees it (udp_coalesce_linux.c). */
typedef struct {
  const uint8_t *p;
  uint32_t len, l4; /* IP packet length, UDP header offset */
  int v6;
} wio_udp_dgram;

/* Whether slot bytes are a datagram a run may hold (IPv4 without options or
 * fragments / IPv6 without extension headers, UDP length = IP payload, some
 * payload, a non-zero checksum); the checksum itself is summed only by
 * wio_udp_run_end. */
int wio_udp_parse(const uint8_t *p, uint32_t len, wio_udp_dgram *u);
/* The end (exclusive) of the run of datagrams of first's flow starting at
 * slot i; i + 1 when there is none (every member's checksum verified). */
uint32_t wio_udp_run_end(wio_ring *r, uint32_t i, const wio_udp_dgram *first);
/* One writev of slots [i, j) as a GSO_UDP_L4 super-packet; the first slot's
 * headers are rewritten for the whole. */
ssize_t wio_udp_write_run(int fd, wio_ring *r, uint32_t i, uint32_t j, const wio_udp_dgram *first);

/* Sends a batch as UDP_SEGMENT trains (udp_offload_linux.c); returns the
 * datagrams sent, or -errno when the fd is unusable. */
int64_t wio_udp_send_gso(int fd, int sfam, wio_ring *r, const uint8_t *addrs,
                         const uint16_t *ports, const uint8_t *fams, uint32_t *st);

#endif
