/*
 * UDP coalescing on the TUN write (the receive half of USO): a run of
 * consecutive datagrams of one flow, as a UDP_GRO train of ESP brings them
 * once opened, is written as ONE super-packet behind a virtio_net_hdr with
 * gso_type VIRTIO_NET_HDR_GSO_UDP_L4, so the kernel takes 64 datagrams for
 * the price of one write and re-segments them only where it must (a local
 * socket without UDP_GRO, a device without USO): Linux __udp_gso_segment().
 * Only when the TUN accepted TUNSETOFFLOAD(TUN_F_USO4 | TUN_F_USO6) (Linux
 * 6.2, tun_linux.c): older kernels do not parse GSO_UDP_L4 on write.
 *
 * The run rules follow Linux's own UDP GRO (udp_gro_receive_segment and
 * inet_gro_receive / ipv6_gro_receive), so a run is exactly what the kernel
 * would have merged itself:
 *   - IPv4 without options or fragments, IPv6 without extension headers;
 *     the UDP length equals what the IP header says (no padding);
 *   - every IP header byte equal to the first's but the IPv4 total length,
 *     ID and checksum / the IPv6 payload length (so TOS/traffic class, ECN,
 *     flow label, DF, TTL, addresses), and the same ports;
 *   - IPv4 without DF: IDs consecutive (first + k), the IDs the kernel gives
 *     the segments again (inet_gso_segment), so a datagram that may still be
 *     fragmented downstream keeps its ID; with DF the ID means nothing
 *     (RFC 6864 §4.1) and is not compared;
 *   - every payload of the first one's size but the last, which may be
 *     smaller (it ends the run); none empty;
 *   - at most 64 datagrams (UDP_GRO_CNT_MAX) and 64 KiB of IP packet;
 *   - each datagram's checksum non-zero and valid (RFC 768 / RFC 8200 §8.1).
 * The checksum is verified because the super-packet goes out with
 * NEEDS_CSUM: the kernel computes fresh checksums for the segments, so a
 * datagram corrupted before its sender's ESP would be repaired instead of
 * dropped by its receiver. A zero checksum (RFC 768: IPv4 "no checksum";
 * not allowed for IPv6 but for RFC 6936 tunnels) is never coalesced: the
 * sender chose not to protect it and the kernel would add a checksum it
 * never sent; such a datagram goes out alone, as it came.
 *
 * The checksum of the first datagram is only summed once a second one
 * qualifies, so datagrams that end up alone (interleaved flows) cost a
 * header compare, not a pass over their payload.
 */
#define _GNU_SOURCE
#include "gso_linux.h"

#include <string.h>

#define UDP_HLEN 8

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

int wio_udp_parse(const uint8_t *p, uint32_t len, wio_udp_dgram *u) {
  if (len < 20 + UDP_HLEN + 1) return 0;
  if ((p[0] >> 4) == 4) {
    if (p[0] != 0x45 || p[9] != 17 || be16(p + 2) != len) return 0;
    if ((p[6] & 0x3f) != 0 || p[7] != 0) return 0; /* MF or an offset: a fragment */
    u->v6 = 0;
    u->l4 = 20;
  } else if ((p[0] >> 4) == 6) {
    if (len < 40 + UDP_HLEN + 1 || p[6] != 17 || (uint32_t)be16(p + 4) + 40 != len) return 0;
    u->v6 = 1;
    u->l4 = 40;
  } else {
    return 0;
  }
  const uint8_t *uh = p + u->l4;
  if (be16(uh + 4) != len - u->l4) return 0;
  if (uh[6] == 0 && uh[7] == 0) return 0; /* no checksum: see the file comment */
  u->p = p;
  u->len = len;
  return 1;
}

/* The datagram's checksum over the pseudo-header (RFC 768; RFC 8200 §8.1)
 * sums to zero. */
static int udp_csum_ok(const wio_udp_dgram *u) {
  const uint8_t *p = u->p;
  uint64_t ps = u->v6 ? wio_csum_add(p + 8, 32, 0) : wio_csum_add(p + 12, 8, 0);
  uint32_t ul = u->len - u->l4;
  uint8_t ph[4] = {0, 17, (uint8_t)(ul >> 8), (uint8_t)ul};
  ps = wio_csum_add(ph, 4, ps);
  return wio_csum_fold(wio_csum_add(p + u->l4, ul, ps)) == 0;
}

/* b belongs to a's flow: the IP headers equal but for the length, ID and
 * checksum fields, the ports equal. */
static int udp_same_flow(const wio_udp_dgram *a, const wio_udp_dgram *b) {
  if (a->v6 != b->v6) return 0;
  const uint8_t *x = a->p, *y = b->p;
  if (a->v6) {
    if (memcmp(x, y, 4) != 0 || memcmp(x + 6, y + 6, 34) != 0) return 0;
  } else {
    if (x[1] != y[1] || memcmp(x + 6, y + 6, 4) != 0 || memcmp(x + 12, y + 12, 8) != 0) return 0;
  }
  return memcmp(x + a->l4, y + b->l4, 4) == 0;
}

uint32_t wio_udp_run_end(wio_ring *r, uint32_t i, const wio_udp_dgram *first) {
  uint32_t size = first->len - first->l4 - UDP_HLEN, total = first->len, j = i + 1;
  /* IPv4 total length / IPv6 payload length (= the UDP length): 16 bits. */
  uint32_t limit = first->v6 ? 65535 + 40 : 65535;
  /* IPv4 without DF: the ID the next datagram must carry. */
  int want_id = !first->v6 && !(first->p[6] & 0x40);
  uint16_t id = (uint16_t)(be16(first->p + 4) + 1);
  int first_ok = -1; /* not summed yet */
  wio_udp_dgram u;
  while (j < r->count && j - i < WIO_SUPER_MAX_SEGS && r->lens[j] != 0 &&
         wio_udp_parse(r->mem + r->offs[j], r->lens[j], &u) && udp_same_flow(first, &u)) {
    uint32_t data = u.len - u.l4 - UDP_HLEN;
    if (data > size || total + data > limit) break;
    if (want_id && be16(u.p + 4) != id++) break;
    if (first_ok < 0) first_ok = udp_csum_ok(first);
    if (!first_ok || !udp_csum_ok(&u)) break;
    total += data;
    j++;
    if (data < size) break; /* a smaller one ends the run */
  }
  return j;
}

ssize_t wio_udp_write_run(int fd, wio_ring *r, uint32_t i, uint32_t j, const wio_udp_dgram *first) {
  uint8_t *p = r->mem + r->offs[i];
  uint32_t hl = first->l4 + UDP_HLEN, total = wio_super_len(r, i, j, hl);
  /* The UDP length of the whole (the kernel sets each segment's own), and
   * the pseudo-header sum the kernel finishes (virtio 1.1 §5.1.6.2). */
  uint8_t *uh = p + first->l4;
  uh[4] = (uint8_t)((total - first->l4) >> 8);
  uh[5] = (uint8_t)(total - first->l4);
  uint16_t partial = wio_super_ip(p, first->v6, first->l4, total, 17);
  memcpy(uh + 6, &partial, 2);
  /* gso_size is the payload per segment without the UDP header: Linux
   * virtio_net_hdr_to_skb checks len - (csum_start + 8) <= gso_size * segs,
   * and __udp_gso_segment cuts gso_size bytes after the header. */
  struct virtio_net_hdr h = {
      .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
      .gso_type = VIRTIO_NET_HDR_GSO_UDP_L4,
      .hdr_len = (uint16_t)hl,
      .gso_size = (uint16_t)(first->len - hl),
      .csum_start = (uint16_t)first->l4,
      .csum_offset = 6,
  };
  return wio_write_super(fd, &h, r, i, j, hl);
}
