// Steering inbound packets to the packet worker that owns their SA
// (docs/forwarder.md "Workers"): classic-BPF programs the kernel runs per
// packet, so no packet is read by a worker that would only drop it.
//
// Worker i of N owns the SAs whose SPI ≡ i (mod N) (host/sa/worker_sas.ts
// derives them so). The programs compute exactly that:
//
//   UDP (NAT-T, RFC 3948) — one SO_REUSEPORT socket per worker, joined in
//   worker order; SO_ATTACH_REUSEPORT_CBPF returns the index of the socket
//   that gets the datagram, reading the UDP payload from offset 0:
//
//     payload < 8 bytes (NAT-keepalive 0xFF, RFC 3948 §2.3) ────────► 0
//     STUN: cookie 0x2112A442 in bytes 4..7, first two bits 0
//           (RFC 8489 §5, the core's test in assembly/udp_encap.ts) ─► 0
//     non-ESP marker: bytes 0..3 zero (IKE, RFC 3948 §2.2) ─────────► 0
//     ESP: SPI = bytes 0..3 ────────────────────────────────────────► SPI mod N
//
//   raw ESP (IP protocol 50) — one raw socket per worker, each with an
//   SO_ATTACH_FILTER that accepts only SPI mod N == i. An IPv4 raw socket
//   sees the IP header first (SPI at 4·IHL), an IPv6 one the payload (SPI at
//   0, RFC 3542 §3). A packet too short to hold an SPI fails the load and is
//   dropped by every filter (it could be nobody's ESP).
//
// Plain raw sockets (IP-in-IP, GRE) carry no SPI: worker 0 receives them
// and the others get a filter that accepts nothing, keeping their socket for
// sending only (NONE).
import { io } from "../io/native_linux.ts";

// Classic BPF opcodes (linux/bpf_common.h, linux/filter.h).
const LD_W_ABS = 0x20, LD_W_IND = 0x40, LD_W_LEN = 0x80, LDX_B_MSH = 0xb1;
const ALU_AND_K = 0x54, ALU_MOD_K = 0x94, JEQ_K = 0x15, JGE_K = 0x35, RET_K = 0x06, RET_A = 0x16;
const STUN_COOKIE = 0x2112a442;
/** "Accept the whole packet" for SO_ATTACH_FILTER (the kernel keeps min(this, length)). */
const ACCEPT = 0xffffffff;

type Insn = [code: number, jt: number, jf: number, k: number];

function assemble(insns: Insn[]): Uint32Array {
  const out = new Uint32Array(insns.length * 2);
  insns.forEach(([code, jt, jf, k], i) => {
    out[2 * i] = (code | (jt << 16) | (jf << 24)) >>> 0;
    out[2 * i + 1] = k >>> 0;
  });
  return out;
}

/** The SO_REUSEPORT group program of a NAT-T port for `n` workers (see the file comment). */
export function udpSteerProgram(n: number): Uint32Array {
  // Jumps count instructions skipped after the next one (target = here + 1 + offset).
  return assemble([
    /*  0 */ [LD_W_LEN, 0, 0, 0],
    /*  1 */ [JGE_K, 0, 9, 8], //           shorter than an ESP header → 11
    /*  2 */ [LD_W_ABS, 0, 0, 4],
    /*  3 */ [JEQ_K, 0, 3, STUN_COOKIE], // not STUN's cookie → 7
    /*  4 */ [LD_W_ABS, 0, 0, 0],
    /*  5 */ [ALU_AND_K, 0, 0, 0xc0000000],
    /*  6 */ [JEQ_K, 4, 0, 0], //           STUN's first two bits zero → 11
    /*  7 */ [LD_W_ABS, 0, 0, 0],
    /*  8 */ [JEQ_K, 2, 0, 0], //           non-ESP marker → 11
    /*  9 */ [ALU_MOD_K, 0, 0, n],
    /* 10 */ [RET_A, 0, 0, 0],
    /* 11 */ [RET_K, 0, 0, 0],
  ]);
}

/** The raw ESP socket filter of worker `index` of `n`: accepts SPI mod n == index. */
export function espFilterProgram(family: 4 | 6, index: number, n: number): Uint32Array {
  const spi: Insn[] = family === 4 ? [[LDX_B_MSH, 0, 0, 0], [LD_W_IND, 0, 0, 0]] : [[LD_W_ABS, 0, 0, 0]];
  return assemble([...spi, [ALU_MOD_K, 0, 0, n], [JEQ_K, 0, 1, index], [RET_K, 0, 0, ACCEPT], [RET_K, 0, 0, 0]]);
}

/** A filter that accepts nothing: the socket only sends. */
export const NONE: Uint32Array = assemble([[RET_K, 0, 0, 0]]);

/** Steers a NAT-T port's SO_REUSEPORT group (any member's fd sets it for the group). */
export function steerUdp(fd: number, n: number): void {
  io.sockAttachFilter(fd, true, udpSteerProgram(n), false);
}

/** Attaches `program` to a raw socket and discards what it queued before the filter took. */
export function filterRaw(fd: number, program: Uint32Array): number {
  return io.sockAttachFilter(fd, false, program, true);
}
