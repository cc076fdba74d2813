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
//
//   TUN (outbound) — without a program the kernel hashes every packet written
//   to a multi-queue TUN and records the writing queue in a flow table
//   (drivers/net/tun.c tun_flow_update), then reads each flow from the queue
//   its table names: per packet work on the inbound path of every worker
//   (~0.2 µs, docs/performance.md "Workers"). An eBPF steering program
//   (TUNSETSTEERINGEBPF) replaces both: it returns a symmetric flow hash
//   (addresses XOR, ports XOR for TCP/UDP unless a fragment, protocol), and
//   the kernel reads the packet from queue hash mod N. One flow, either way,
//   always lands on one worker, as before.
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

// eBPF (linux/bpf.h; struct bpf_insn as two little-endian words:
// code | dst << 8 | src << 12 | off << 16, imm). Only what tunSteerProgram uses.
const E = {
  ALU: 0x04, ALU64: 0x07, JMP: 0x05, LD: 0x00, K: 0x00, X: 0x08, ABS: 0x20, IND: 0x40, W: 0x00, H: 0x08, B: 0x10,
  AND: 0x50, LSH: 0x60, RSH: 0x70, MUL: 0x20, XOR: 0xa0, MOV: 0xb0, JEQ: 0x10, JNE: 0x50, JA: 0x00, EXIT: 0x90,
} as const;

/** One instruction; `jump` names a label whose position sets `off` (target = here + 1 + off). */
type EInsn = { code: number; dst?: number; src?: number; off?: number; imm?: number; jump?: string } | { label: string };

function assembleEbpf(prog: EInsn[]): Uint32Array {
  const at = new Map<string, number>();
  const insns: Exclude<EInsn, { label: string }>[] = [];
  for (const i of prog) {
    if ("label" in i) at.set(i.label, insns.length);
    else insns.push(i);
  }
  const out = new Uint32Array(insns.length * 2);
  insns.forEach((i, k) => {
    const off = i.jump === undefined ? (i.off ?? 0) : at.get(i.jump)! - k - 1;
    out[2 * k] = (i.code | ((i.dst ?? 0) << 8) | ((i.src ?? 0) << 12) | ((off & 0xffff) << 16)) >>> 0;
    out[2 * k + 1] = (i.imm ?? 0) >>> 0;
  });
  return out;
}

const alu = (op: number, dst: number, imm: number): EInsn => ({ code: E.ALU | op | E.K, dst, imm });
const aluX = (op: number, dst: number, src: number): EInsn => ({ code: E.ALU | op | E.X, dst, src });
/** r0 = the big-endian 1/2/4 bytes at `off` of the packet (LD_ABS: r6 holds the context; r1-r5 are clobbered). */
const ldAbs = (size: number, off: number): EInsn => ({ code: E.LD | E.ABS | size, imm: off });
const jeq = (dst: number, imm: number, to: string): EInsn => ({ code: E.JMP | E.JEQ | E.K, dst, imm, jump: to });

/**
 * The TUN steering program (see the file comment). A TUN's packets start at
 * the IP header. r7: offset of the L4 header, r8: the hash, r9: the protocol.
 */
export function tunSteerProgram(): Uint32Array {
  const v6Words = [8, 12, 16, 20, 24, 28, 32, 36]; // source then destination address, 4 words each (RFC 8200 §3)
  return assembleEbpf([
    { code: E.ALU64 | E.MOV | E.X, dst: 6, src: 1 },
    ldAbs(E.B, 0),
    aluX(E.MOV, 7, 0),
    alu(E.RSH, 7, 4),
    jeq(7, 4, "v4"),
    jeq(7, 6, "v6"),
    alu(E.MOV, 0, 0),
    { code: E.JMP | E.EXIT },
    { label: "v4" }, // RFC 791 §3.1: IHL in the low nibble of byte 0, protocol at 9, addresses at 12 and 16
    aluX(E.MOV, 7, 0),
    alu(E.AND, 7, 0xf),
    alu(E.LSH, 7, 2),
    ldAbs(E.W, 12),
    aluX(E.MOV, 8, 0),
    ldAbs(E.W, 16),
    aluX(E.XOR, 8, 0),
    ldAbs(E.B, 9),
    aluX(E.MOV, 9, 0),
    ldAbs(E.H, 6), // a fragment (MF or an offset) has no ports, or not in this packet: hash without them
    alu(E.AND, 0, 0x3fff),
    { code: E.JMP | E.JNE | E.K, dst: 0, imm: 0, jump: "mix" },
    { code: E.JMP | E.JA, jump: "ports" },
    { label: "v6" }, // next header at 6 (a TCP/UDP header right after the fixed header only), addresses 8..39
    alu(E.MOV, 7, 40),
    ldAbs(E.B, 6),
    aluX(E.MOV, 9, 0),
    ldAbs(E.W, v6Words[0]),
    aluX(E.MOV, 8, 0),
    ...v6Words.slice(1).flatMap((off) => [ldAbs(E.W, off), aluX(E.XOR, 8, 0)]),
    { label: "ports" }, // TCP and UDP: source and destination port, XOR (symmetric)
    jeq(9, 6, "l4"),
    jeq(9, 17, "l4"),
    { code: E.JMP | E.JA, jump: "mix" },
    { label: "l4" },
    { code: E.LD | E.IND | E.W, src: 7, imm: 0 },
    aluX(E.MOV, 1, 0),
    alu(E.RSH, 1, 16),
    alu(E.AND, 0, 0xffff),
    aluX(E.XOR, 0, 1),
    aluX(E.XOR, 8, 0),
    { label: "mix" }, // protocol in, then a multiplicative mix: the queue is the result mod N (the kernel keeps 16 bits)
    aluX(E.XOR, 8, 9),
    alu(E.MUL, 8, 0x9e3779b1),
    alu(E.RSH, 8, 16),
    aluX(E.MOV, 0, 8),
    { code: E.JMP | E.EXIT },
  ]);
}

/** Makes tunSteerProgram the queue selector of the multi-queue TUN `fd` belongs to. */
export function steerTun(fd: number): void {
  io.tunAttachSteering(fd, tunSteerProgram());
}
