/*
 * TSO segmentation and checksums (gso_linux.c), shared by the TUN and UDP
 * offload paths (offload_linux.c).
 */
#ifndef WESP_GSO_LINUX_H
#define WESP_GSO_LINUX_H

#include "io_util.h"

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
  WIO_ST_COALESCED = 8,      /* TUN: super-packets written (coalesced segments) */
  WIO_ST_COALESCED_SEGS = 9, /* the segments they held */
  WIO_ST_OFFLOAD_COUNT = 10
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

/* Writes a batch to a vnet-header TUN, coalescing TCP runs
 * (tun_offload_linux.c); *fatal = errno when the fd is unusable. */
uint32_t wio_tun_write_vnet(int fd, wio_ring *r, uint32_t *st, int *fatal);

/* Sends a batch as UDP_SEGMENT trains (udp_offload_linux.c); returns the
 * datagrams sent, or -errno when the fd is unusable. */
int64_t wio_udp_send_gso(int fd, int sfam, wio_ring *r, const uint8_t *addrs,
                         const uint16_t *ports, const uint8_t *fams, uint32_t *st);

#endif
