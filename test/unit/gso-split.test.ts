// The TSO segmenter of the TUN reader (native/gso_linux.c, exported as
// gsoSplit) against an independent JS reference written from RFC 9293 / RFC
// 791 / RFC 8200 and Linux's tcp_gso_segment() semantics: random TCP
// super-packets (IPv4 with and without options, IPv6; TCP options; any
// flags; ECN; MSS from 1 byte to jumbo; empty to 64 KiB payloads; sequence
// numbers that wrap) are segmented, and every segment must
//   - equal the reference byte for byte,
//   - carry valid IPv4 header and TCP checksums (checked by summing, not by
//     comparing with the reference's numbers),
//   - have FIN/PSH only on the last segment and CWR only on the first,
//   - and the segments' payloads, concatenated, must equal the original.
// UDP super-packets (GSO_UDP_L4, what a TUN with USO hands over) likewise
// against a reference from RFC 768 and Linux's __udp_gso_segment(): each
// datagram with its own UDP length and a valid checksum, IPv4 ID + k.
// Plus: a non-GSO packet with NEEDS_CSUM gets its partial checksum finished;
// a super-packet cut over several calls (fewer slots than segments) gives
// the same segments;
// hostile headers never crash, never write outside the offered slots.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { io } from "../../host/io/native_linux.ts";

const SLOTS = 256, SLOT = 9472, CAP = 9000;
const mem = new Uint8Array(SLOTS * SLOT);
const offs = Uint32Array.from({ length: SLOTS }, (_, i) => i * SLOT + 128);
const lens = new Uint32Array(SLOTS);
const stats = new Uint32Array(12);

const GSO_NONE = 0, GSO_TCPV4 = 1, GSO_TCPV6 = 4, GSO_UDP_L4 = 5, GSO_ECN = 0x80, NEEDS_CSUM = 1;
const FIN = 0x01, PSH = 0x08, CWR = 0x80;

// ─── the reference ─────────────────────────────────────────────────────────

/** RFC 1071 sum of big-endian 16-bit words (odd byte padded), not folded. */
function sum16(b: Uint8Array, from = 0, to = b.length, acc = 0): number {
  for (let i = from; i + 1 < to; i += 2) acc += (b[i] << 8) | b[i + 1];
  if ((to - from) & 1) acc += b[to - 1] << 8;
  return acc;
}
function fold(acc: number): number {
  while (acc > 0xffff) acc = (acc & 0xffff) + Math.floor(acc / 0x10000);
  return acc;
}
const cksum = (acc: number) => ~fold(acc) & 0xffff;

function pseudo(seg: Uint8Array, v6: boolean, l4len: number): number {
  const acc = v6 ? sum16(seg, 8, 40) : sum16(seg, 12, 20);
  return acc + 6 + l4len;
}

interface Super { v6: boolean; ipOpts: number; tcpOpts: number; flags: number; seq: number; id: number; mss: number; payload: Uint8Array; ecn: boolean }

/** The IP header of a super-packet p (IPv4 with `l4 - 20` bytes of NOP options, DF; or IPv6), next header `proto`. */
function putIp(p: Uint8Array, v6: boolean, l4: number, id: number, proto: number): void {
  const dv = new DataView(p.buffer, p.byteOffset);
  if (v6) {
    p[0] = 0x60;
    dv.setUint16(4, p.length - 40);
    p[6] = proto;
    p[7] = 64;
    for (let i = 8; i < 40; i++) p[i] = (i * 37) & 0xff;
  } else {
    p[0] = 0x40 | (l4 / 4);
    dv.setUint16(2, p.length & 0xffff);
    dv.setUint16(4, id);
    p[6] = 0x40;
    p[8] = 64;
    p[9] = proto;
    for (let i = 12; i < 20; i++) p[i] = (i * 53) & 0xff;
    for (let i = 20; i < l4; i++) p[i] = 1; // NOP options
  }
}

/** What every segment's IP header must become: IPv6 payload length, or IPv4 total length, ID + k and header checksum. */
function fixIp(seg: Uint8Array, v6: boolean, l4: number, id: number): void {
  const dv = new DataView(seg.buffer, seg.byteOffset);
  if (v6) dv.setUint16(4, seg.length - 40);
  else {
    dv.setUint16(2, seg.length);
    dv.setUint16(4, id & 0xffff);
    dv.setUint16(10, 0);
    dv.setUint16(10, cksum(sum16(seg, 0, l4)));
  }
}

/** The super-packet as the kernel hands it over: headers with the partial (pseudo-header) checksum, behind a virtio_net_hdr. */
function build(s: Super): { wire: Uint8Array; hl: number; l4: number } {
  const l4 = s.v6 ? 40 : 20 + 4 * s.ipOpts;
  const hl = l4 + 20 + 4 * s.tcpOpts;
  const p = new Uint8Array(hl + s.payload.length);
  const dv = new DataView(p.buffer);
  putIp(p, s.v6, l4, s.id, 6);
  dv.setUint16(l4, 40000);
  dv.setUint16(l4 + 2, 443);
  dv.setUint32(l4 + 4, s.seq);
  dv.setUint32(l4 + 8, 0x01020304);
  p[l4 + 12] = (5 + s.tcpOpts) << 4;
  p[l4 + 13] = s.flags;
  dv.setUint16(l4 + 14, 512);
  for (let i = l4 + 20; i < hl; i++) p[i] = 1;
  p.set(s.payload, hl);
  dv.setUint16(l4 + 16, fold(pseudo(p, s.v6, p.length - l4))); // what CHECKSUM_PARTIAL leaves there
  const wire = new Uint8Array(10 + p.length);
  const h = new DataView(wire.buffer);
  wire[0] = NEEDS_CSUM;
  wire[1] = (s.v6 ? GSO_TCPV6 : GSO_TCPV4) | (s.ecn ? GSO_ECN : 0);
  h.setUint16(2, hl, true);
  h.setUint16(4, s.mss, true);
  h.setUint16(6, l4, true);
  h.setUint16(8, 16, true);
  wire.set(p, 10);
  return { wire, hl, l4 };
}

/** What each segment must be (tcp_gso_segment: FIN/PSH on the last, CWR on the first; IPv4 ID + k). */
function reference(s: Super, hl: number, l4: number, p: Uint8Array): Uint8Array[] {
  const n = Math.max(1, Math.ceil(s.payload.length / s.mss));
  const out: Uint8Array[] = [];
  for (let k = 0; k < n; k++) {
    const data = s.payload.subarray(k * s.mss, Math.min(s.payload.length, (k + 1) * s.mss));
    const seg = new Uint8Array(hl + data.length);
    seg.set(p.subarray(0, hl));
    seg.set(data, hl);
    const dv = new DataView(seg.buffer);
    fixIp(seg, s.v6, l4, s.id + k);
    dv.setUint32(l4 + 4, (s.seq + k * s.mss) >>> 0);
    let f = s.flags;
    if (k < n - 1) f &= ~(FIN | PSH);
    if (k > 0) f &= ~CWR;
    seg[l4 + 13] = f;
    dv.setUint16(l4 + 16, 0);
    dv.setUint16(l4 + 16, cksum(sum16(seg, l4, seg.length, pseudo(seg, s.v6, seg.length - l4))));
    out.push(seg);
  }
  return out;
}

const superArb = fc
  .record({
    v6: fc.boolean(),
    ipOpts: fc.integer({ min: 0, max: 10 }),
    tcpOpts: fc.integer({ min: 0, max: 10 }),
    flags: fc.integer({ min: 0, max: 255 }),
    seq: fc.integer({ min: 0, max: 0xffffffff }),
    id: fc.integer({ min: 0, max: 0xffff }),
    ecn: fc.boolean(),
    len: fc.oneof(fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 0, max: 65000 })),
    mssPick: fc.double({ min: 0, max: 1, noNaN: true }),
    fill: fc.integer({ min: 0, max: 0xffffffff }),
  })
  .map((r): Super => {
    const hl = (r.v6 ? 40 : 20 + 4 * r.ipOpts) + 20 + 4 * r.tcpOpts;
    const len = Math.min(r.len, 65535 - hl - (r.v6 ? 0 : 0));
    // From the smallest MSS that fits the slots offered to the largest a slot holds.
    const lo = Math.max(1, Math.ceil(len / SLOTS)), hi = CAP - hl;
    const mss = Math.floor(lo + r.mssPick * (hi - lo));
    const payload = new Uint8Array(len);
    let x = r.fill | 1;
    for (let i = 0; i < len; i++) payload[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
    return { v6: r.v6, ipOpts: r.v6 ? 0 : r.ipOpts, tcpOpts: r.tcpOpts, flags: r.flags, seq: r.seq, id: r.id, mss, payload, ecn: r.ecn };
  });

test("gsoSplit: random TCP super-packets segment exactly as the reference, checksums valid, payload intact", () => {
  fc.assert(
    fc.property(superArb, (s) => {
      const { wire, hl, l4 } = build(s);
      const ref = reference(s, hl, l4, wire.subarray(10));
      const n = io.gsoSplit(wire, mem, offs, lens, SLOTS, CAP, stats);
      assert.equal(n, ref.length, "segment count");
      const parts: Uint8Array[] = [];
      for (let k = 0; k < n; k++) {
        const seg = mem.subarray(offs[k], offs[k] + lens[k]);
        assert.deepEqual(seg, ref[k], `segment ${k} of ${n}`);
        if (!s.v6) assert.equal(fold(sum16(seg, 0, l4)), 0xffff, "IPv4 header checksum verifies");
        assert.equal(fold(sum16(seg, l4, seg.length, pseudo(seg, s.v6, seg.length - l4))), 0xffff, "TCP checksum verifies");
        const f = seg[l4 + 13];
        if (k < n - 1) assert.equal(f & (FIN | PSH), 0, "FIN/PSH only on the last");
        else assert.equal(f & (FIN | PSH), s.flags & (FIN | PSH));
        if (k > 0) assert.equal(f & CWR, 0, "CWR only on the first");
        parts.push(seg.subarray(hl));
      }
      assert.deepEqual(Buffer.concat(parts), Buffer.from(s.payload), "payloads concatenate to the original");
    }),
    { numRuns: Number(process.env.WESP_GSO_RUNS ?? 400), seed: Number(process.env.WESP_SEED ?? Date.now() & 0x7fffffff) },
  );
});

// ─── UDP (USO) ─────────────────────────────────────────────────────────────

interface UdpSuper { v6: boolean; ipOpts: number; id: number; size: number; payload: Uint8Array }

function udpPseudo(seg: Uint8Array, v6: boolean, l4len: number): number {
  return (v6 ? sum16(seg, 8, 40) : sum16(seg, 12, 20)) + 17 + l4len;
}

/** A UDP super-packet as a TUN with USO hands it over: the UDP length of the whole, the pseudo-header sum as checksum. */
function buildUdp(s: UdpSuper): { wire: Uint8Array; l4: number } {
  const l4 = s.v6 ? 40 : 20 + 4 * s.ipOpts;
  const p = new Uint8Array(l4 + 8 + s.payload.length);
  const dv = new DataView(p.buffer);
  putIp(p, s.v6, l4, s.id, 17);
  dv.setUint16(l4, 4433);
  dv.setUint16(l4 + 2, 53000);
  dv.setUint16(l4 + 4, (p.length - l4) & 0xffff);
  p.set(s.payload, l4 + 8);
  dv.setUint16(l4 + 6, fold(udpPseudo(p, s.v6, p.length - l4)));
  const wire = new Uint8Array(10 + p.length);
  const h = new DataView(wire.buffer);
  wire[0] = NEEDS_CSUM;
  wire[1] = GSO_UDP_L4;
  h.setUint16(2, l4 + 8, true);
  h.setUint16(4, s.size, true); // gso_size: payload per datagram, without the UDP header
  h.setUint16(6, l4, true);
  h.setUint16(8, 6, true);
  wire.set(p, 10);
  return { wire, l4 };
}

/** Each datagram (__udp_gso_segment): headers copied, UDP length 8 + its payload, full checksum (0 sent as 0xffff), IPv4 ID + k. */
function referenceUdp(s: UdpSuper, l4: number, p: Uint8Array): Uint8Array[] {
  const n = Math.max(1, Math.ceil(s.payload.length / s.size));
  const out: Uint8Array[] = [];
  for (let k = 0; k < n; k++) {
    const data = s.payload.subarray(k * s.size, Math.min(s.payload.length, (k + 1) * s.size));
    const seg = new Uint8Array(l4 + 8 + data.length);
    seg.set(p.subarray(0, l4 + 8));
    seg.set(data, l4 + 8);
    const dv = new DataView(seg.buffer);
    fixIp(seg, s.v6, l4, s.id + k);
    dv.setUint16(l4 + 4, seg.length - l4);
    dv.setUint16(l4 + 6, 0);
    dv.setUint16(l4 + 6, cksum(sum16(seg, l4, seg.length, udpPseudo(seg, s.v6, seg.length - l4))) || 0xffff);
    out.push(seg);
  }
  return out;
}

const udpArb = fc
  .record({
    v6: fc.boolean(),
    ipOpts: fc.integer({ min: 0, max: 10 }),
    id: fc.integer({ min: 0, max: 0xffff }),
    len: fc.oneof(fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 0, max: 65000 })),
    sizePick: fc.double({ min: 0, max: 1, noNaN: true }),
    fill: fc.integer({ min: 0, max: 0xffffffff }),
  })
  .map((r): UdpSuper => {
    const hl = (r.v6 ? 40 : 20 + 4 * r.ipOpts) + 8;
    const len = Math.min(r.len, 65535 - hl);
    const lo = Math.max(1, Math.ceil(len / SLOTS)), hi = CAP - hl;
    const size = Math.floor(lo + r.sizePick * (hi - lo));
    const payload = new Uint8Array(len);
    let x = r.fill | 1;
    for (let i = 0; i < len; i++) payload[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
    return { v6: r.v6, ipOpts: r.v6 ? 0 : r.ipOpts, id: r.id, size, payload };
  });

test("gsoSplit: random UDP super-packets (USO) segment exactly as the reference, checksums valid, payload intact", () => {
  fc.assert(
    fc.property(udpArb, fc.integer({ min: 1, max: 300 }), (s, max) => {
      const { wire, l4 } = buildUdp(s);
      const ref = referenceUdp(s, l4, wire.subarray(10));
      const parts: Uint8Array[] = [];
      // In pieces of `max` slots, as readBatchVnet hands a large one over several batches.
      for (let first = 0; first < ref.length; ) {
        const n = io.gsoSplit(wire, mem, offs, lens, Math.min(max, SLOTS), CAP, stats, first);
        assert.equal(n, Math.min(max, SLOTS, ref.length - first), "segment count");
        for (let k = 0; k < n; k++) {
          const seg = mem.subarray(offs[k], offs[k] + lens[k]);
          assert.deepEqual(seg, ref[first + k], `datagram ${first + k} of ${ref.length}`);
          if (!s.v6) assert.equal(fold(sum16(seg, 0, l4)), 0xffff, "IPv4 header checksum verifies");
          assert.equal(fold(sum16(seg, l4, seg.length, udpPseudo(seg, s.v6, seg.length - l4))), 0xffff, "UDP checksum verifies");
          assert.equal((seg[l4 + 4] << 8) | seg[l4 + 5], seg.length - l4, "UDP length of this datagram");
          parts.push(seg.slice(l4 + 8)); // a copy: the next call reuses the slots
        }
        first += n;
      }
      assert.deepEqual(Buffer.concat(parts), Buffer.from(s.payload), "payloads concatenate to the original");
    }),
    { numRuns: Number(process.env.WESP_GSO_RUNS ?? 300), seed: Number(process.env.WESP_SEED ?? Date.now() & 0x7fffffff) },
  );
});

test("gsoSplit: a UDP super-packet that is not UDP, or whose datagram outgrows the slot, is refused", () => {
  const s: UdpSuper = { v6: false, ipOpts: 0, id: 1, size: 1000, payload: new Uint8Array(5000) };
  const { wire } = buildUdp(s);
  const tcp = wire.slice();
  tcp[10 + 9] = 6; // IPv4 protocol TCP behind a UDP_L4 header
  assert.equal(io.gsoSplit(tcp, mem, offs, lens, SLOTS, CAP, stats), -1);
  assert.equal(io.gsoSplit(wire, mem, offs, lens, SLOTS, 1000, stats), -1, "28 + 1000 bytes do not fit a 1000-byte slot");
  const zero = wire.slice();
  zero[4] = zero[5] = 0; // gso_size 0
  assert.equal(io.gsoSplit(zero, mem, offs, lens, SLOTS, CAP, stats), -1);
  assert.equal(io.gsoSplit(wire, mem, offs, lens, SLOTS, CAP, stats), 5);
});

test("gsoSplit: a non-GSO packet with NEEDS_CSUM gets its checksum finished (TCP and UDP)", () => {
  for (const udp of [false, true]) {
    const len = 20 + (udp ? 8 : 20) + 333;
    const p = new Uint8Array(len);
    p.set([0x45, 0, len >> 8, len & 0xff, 0, 1, 0, 0, 64, udp ? 17 : 6, 0, 0, 10, 1, 0, 2, 10, 2, 0, 2]);
    for (let i = 20; i < len; i++) p[i] = (i * 7) & 0xff;
    const csOff = udp ? 6 : 16;
    if (udp) (p[24] = (len - 20) >> 8), (p[25] = (len - 20) & 0xff);
    p[20 + csOff] = p[21 + csOff] = 0;
    const ps = sum16(p, 12, 20) + (udp ? 17 : 6) + (len - 20);
    const f = fold(ps);
    p[20 + csOff] = f >> 8;
    p[21 + csOff] = f & 0xff;
    const wire = new Uint8Array(10 + len);
    wire[0] = NEEDS_CSUM;
    wire[1] = GSO_NONE;
    new DataView(wire.buffer).setUint16(6, 20, true);
    new DataView(wire.buffer).setUint16(8, csOff, true);
    wire.set(p, 10);
    assert.equal(io.gsoSplit(wire, mem, offs, lens, SLOTS, CAP, stats), 1);
    const seg = mem.subarray(offs[0], offs[0] + lens[0]);
    assert.equal(lens[0], len);
    assert.equal(fold(sum16(seg, 20, len, sum16(seg, 12, 20) + (udp ? 17 : 6) + (len - 20))), 0xffff, udp ? "UDP" : "TCP");
  }
});

test("gsoSplit: a super-packet larger than the slots offered is cut in pieces that equal the whole", () => {
  // What readBatchVnet does with one larger than a whole batch (a tiny MSS): segments first.. per call.
  fc.assert(
    fc.property(superArb, fc.integer({ min: 1, max: 40 }), (s, max) => {
      const { wire, hl, l4 } = build(s);
      const ref = reference(s, hl, l4, wire.subarray(10));
      let first = 0;
      while (first < ref.length) {
        const k = io.gsoSplit(wire, mem, offs, lens, max, CAP, stats, first);
        assert.equal(k, Math.min(max, ref.length - first));
        for (let i = 0; i < k; i++) assert.deepEqual(mem.subarray(offs[i], offs[i] + lens[i]), ref[first + i], `segment ${first + i}`);
        first += k;
      }
      assert.equal(io.gsoSplit(wire, mem, offs, lens, max, CAP, stats, first), 0, "nothing past the end");
    }),
    { numRuns: 100 },
  );
});

test("gsoSplit: hostile headers never crash and never write outside the slots offered", () => {
  const guardMem = new Uint8Array(8 * SLOT);
  const gOffs = Uint32Array.from({ length: 4 }, (_, i) => i * 2 * SLOT + 128);
  const gLens = new Uint32Array(4);
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 3000 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 3000 }), (bytes, type, mss) => {
      const wire = new Uint8Array(Math.max(bytes.length, 10));
      wire.set(bytes);
      if (wire.length >= 6) (wire[1] = type), (wire[4] = mss & 0xff), (wire[5] = mss >> 8);
      guardMem.fill(0xa5);
      const n = io.gsoSplit(wire, guardMem, gOffs, gLens, 4, 1500, stats);
      assert.ok(n >= -1 && n <= 4, `result ${n}`);
      // Every byte outside [offs[i], offs[i] + 1500) keeps the guard pattern.
      for (let i = 0; i < 4; i++) {
        const end = i === 3 ? guardMem.length : gOffs[i + 1];
        for (let b = gOffs[i] + 1500; b < end; b++) if (guardMem[b] !== 0xa5) assert.fail(`byte ${b} written`);
      }
      for (let b = 0; b < gOffs[0]; b++) if (guardMem[b] !== 0xa5) assert.fail(`byte ${b} written`);
    }),
    { numRuns: 300 },
  );
});
