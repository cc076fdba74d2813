/*
 * TCP and UDP segmentation of TUN super-packets (the receive half of TSO and
 * USO) and the Internet checksum, for a TUN opened with IFF_VNET_HDR.
 *
 * With TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) the kernel hands
 * the TUN reader TCP "super-packets" of up to 64 KiB, each behind a 10-byte
 * struct virtio_net_hdr (virtio 1.1 §5.1.6.2: gso_type, gso_size = MSS,
 * csum_start/csum_offset of a checksum left partial). wesp cuts each into
 * MTU-sized segments, one ring slot each, exactly as the kernel's own
 * tcp_gso_segment() would (net/ipv4/tcp_offload.c): headers copied, IPv4
 * total length / ID (+k) / header checksum, IPv6 payload length, TCP
 * sequence (+k·MSS), FIN and PSH only on the last segment, CWR only on the
 * first, and a full TCP checksum over the pseudo-header (RFC 9293 §3.1).
 *
 * With TUN_F_USO4 | TUN_F_USO6 too (Linux 6.2) the kernel also hands over
 * UDP super-packets (gso_type VIRTIO_NET_HDR_GSO_UDP_L4: a UDP_SEGMENT
 * sender's, or a UDP_GRO train forwarded into the TUN): gso_size is the
 * payload per datagram without the UDP header, and each datagram gets the
 * headers with its own UDP length and a full checksum (RFC 768; RFC 8200
 * §8.1), IPv4 ID + k and lengths as for TCP: Linux __udp_gso_segment().
 *
 * Why here and not in the WASM core: each segment needs its own slot with
 * headroom and tailroom anyway (ESP is sealed in place), so segmentation is
 * a copy of ~MSS bytes per segment plus a checksum pass; done while the
 * super-packet is hot in the cache, right after read(), it costs about
 * 0.2 µs per 1,400-byte segment (docs/performance.md), and it keeps the
 * ring at one slot size: a WASM segmenter would need a 64 KiB slot class
 * and the same copy. The function is pure (memory in, slots out) and is
 * exported as gsoSplit for the property test against a JS reference.
 */
#define _GNU_SOURCE
#include "gso_linux.h"

#include <linux/virtio_net.h>
#include <string.h>

/* Ones' complement sum of len bytes, in host order words (RFC 1071 §2: the
 * sum is byte-order independent as long as it is folded and stored the same
 * way it was read). 64-bit accumulator, 32-bit loads, carries folded last. */
uint64_t wio_csum_add(const uint8_t *p, size_t len, uint64_t sum) {
  while (len >= 32) {
    uint32_t w[8];
    memcpy(w, p, 32);
    sum += (uint64_t)w[0] + w[1] + w[2] + w[3] + w[4] + w[5] + w[6] + w[7];
    p += 32;
    len -= 32;
  }
  while (len >= 4) {
    uint32_t w;
    memcpy(&w, p, 4);
    sum += w;
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    uint16_t h;
    memcpy(&h, p, 2);
    sum += h;
    p += 2;
    len -= 2;
  }
  if (len) {
    uint16_t h = 0;
    memcpy(&h, p, 1); /* the odd byte is the high-order byte of a zero-padded word */
    sum += h;
  }
  return sum;
}

uint16_t wio_csum_fold(uint64_t sum) {
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* VIRTIO_NET_HDR_F_NEEDS_CSUM on a packet that is not GSO: finish the
 * partial checksum the kernel left at csum_start + csum_offset (it holds
 * the pseudo-header sum already; virtio 1.1 §5.1.6.2). Returns 0, -1 when
 * the offsets lie outside the packet. */
static int finish_csum(uint8_t *p, size_t len, uint16_t start, uint16_t off) {
  if ((size_t)start + off + 2 > len) return -1;
  uint16_t c = wio_csum_fold(wio_csum_add(p + start, len - start, 0));
  /* UDP (offset 6) sends an all-zero result as all ones (RFC 768). */
  if (c == 0 && off == 6) c = 0xffff;
  memcpy(p + start + off, &c, 2);
  return 0;
}

/* The TCP or UDP checksum of one segment: pseudo-header (RFC 9293 §3.1 /
 * RFC 768 / RFC 8200 §8.1) + transport header and data, field (at `off`)
 * zeroed first. UDP sends an all-zero result as all ones (RFC 768). */
static void l4_csum(uint8_t *seg, size_t l4, size_t len, int v6, uint8_t proto, size_t off) {
  uint8_t *th = seg + l4;
  th[off] = th[off + 1] = 0;
  uint64_t sum = v6 ? wio_csum_add(seg + 8, 32, 0) : wio_csum_add(seg + 12, 8, 0);
  uint8_t ph[4];
  put16(ph, proto);
  put16(ph + 2, (uint16_t)(len - l4));
  sum = wio_csum_add(ph, 4, sum);
  uint16_t c = wio_csum_fold(wio_csum_add(th, len - l4, sum));
  if (c == 0 && proto == 17) c = 0xffff;
  memcpy(th + off, &c, 2);
}

static void ipv4_csum(uint8_t *ip, size_t ihl) {
  ip[10] = ip[11] = 0;
  uint16_t c = wio_csum_fold(wio_csum_add(ip, ihl, 0));
  memcpy(ip + 10, &c, 2);
}

#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_CWR 0x80

int wio_gso_split(const uint8_t *vh, size_t total, uint32_t first,
                  uint8_t *mem, const uint32_t *offs, uint32_t *lens,
                  uint32_t max, uint32_t cap, uint32_t *st, uint32_t *nseg_out) {
  *nseg_out = 0;
  if (total < WIO_VNET_HDR_LEN) return WIO_GSO_BAD;
  struct virtio_net_hdr h;
  memcpy(&h, vh, sizeof h);
  const uint8_t *p = vh + WIO_VNET_HDR_LEN;
  size_t len = total - WIO_VNET_HDR_LEN;
  uint8_t type = h.gso_type & ~VIRTIO_NET_HDR_GSO_ECN;

  if (type == VIRTIO_NET_HDR_GSO_NONE) {
    *nseg_out = 1;
    if (max == 0 || first > 0) return 0;
    if (len > cap) {
      lens[0] = 0;
      st[WIO_ST_TRUNCATED]++;
      return 1;
    }
    uint8_t *dst = mem + offs[0];
    memcpy(dst, p, len);
    lens[0] = (uint32_t)len;
    if ((h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
        finish_csum(dst, len, h.csum_start, h.csum_offset) < 0) {
      lens[0] = 0;
      return WIO_GSO_BAD;
    }
    if (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) st[WIO_ST_CSUM]++;
    return 1;
  }
  /* Only TSO and USO are offered (TUNSETOFFLOAD). USO's one type covers
   * both families: the IP version says which. */
  int udp = type == VIRTIO_NET_HDR_GSO_UDP_L4;
  if (type != VIRTIO_NET_HDR_GSO_TCPV4 && type != VIRTIO_NET_HDR_GSO_TCPV6 && !udp)
    return WIO_GSO_BAD;
  uint8_t proto = udp ? 17 : 6;
  int v6 = udp ? len > 0 && (p[0] >> 4) == 6 : type == VIRTIO_NET_HDR_GSO_TCPV6;
  size_t l4;
  if (v6) {
    /* No extension headers: the kernel's TSO/USO packets from a socket or
     * forwarded ones carry none, and anything else is refused, not guessed. */
    if (len < 40 || (p[0] >> 4) != 6 || p[6] != proto) return WIO_GSO_BAD;
    l4 = 40;
  } else {
    if (len < 20 || (p[0] >> 4) != 4 || p[9] != proto) return WIO_GSO_BAD;
    l4 = (size_t)(p[0] & 15) * 4;
    if (l4 < 20) return WIO_GSO_BAD;
  }
  if (l4 + (udp ? 8 : 20) > len) return WIO_GSO_BAD;
  size_t hl = udp ? l4 + 8 : l4 + (size_t)(p[l4 + 12] >> 4) * 4;
  if (hl < l4 + (udp ? 8 : 20) || hl > len) return WIO_GSO_BAD;
  size_t mss = h.gso_size;
  if (mss == 0 || hl + mss > cap) return WIO_GSO_BAD;
  size_t data = len - hl;
  uint32_t nseg = data == 0 ? 1 : (uint32_t)((data + mss - 1) / mss);
  *nseg_out = nseg;
  if (first >= nseg) return 0;
  uint32_t end = nseg - first > max ? first + max : nseg;

  uint16_t id0 = v6 ? 0 : be16(p + 4);
  uint32_t seq0 = udp ? 0 : be32(p + l4 + 4);
  uint8_t flags0 = udp ? 0 : p[l4 + 13];
  for (uint32_t k = first; k < end; k++) {
    size_t at = (size_t)k * mss;
    size_t dl = data - at < mss ? data - at : mss;
    uint8_t *s = mem + offs[k - first];
    size_t sl = hl + dl;
    memcpy(s, p, hl);
    memcpy(s + hl, p + hl + at, dl);
    if (v6) {
      put16(s + 4, (uint16_t)(sl - 40));
    } else {
      put16(s + 2, (uint16_t)sl);
      put16(s + 4, (uint16_t)(id0 + k));
      ipv4_csum(s, l4);
    }
    uint8_t *th = s + l4;
    if (udp) {
      put16(th + 4, (uint16_t)(sl - l4));
      l4_csum(s, l4, sl, v6, 17, 6);
    } else {
      put32(th + 4, seq0 + (uint32_t)at);
      uint8_t f = flags0;
      if (k + 1 < nseg) f &= (uint8_t)~(TCP_FIN | TCP_PSH);
      if (k > 0) f &= (uint8_t)~TCP_CWR;
      th[13] = f;
      l4_csum(s, l4, sl, v6, 6, 16);
    }
    lens[k - first] = (uint32_t)sl;
  }
  if (end == nseg) st[WIO_ST_SUPER]++;
  st[WIO_ST_SEGMENTS] += end - first;
  return (int)(end - first);
}
