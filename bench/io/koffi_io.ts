// The koffi (FFI) twin of the wesp_io addon's data path, built only far enough
// to measure it against the addon (docs/io.md): TUN open/read/write,
// UDP/raw socket open, recvmmsg/sendmmsg batches into ring slots, readiness
// through koffi.node.poll.
//
// To be fair to FFI it takes the fastest route koffi offers: pointers cross
// as plain numbers (the ring's base address is taken once with
// koffi.address, slot i is base + offs[i]), and the mmsghdr/iovec/sockaddr
// arrays live in koffi.alloc'd memory written through a DataView, so a batch
// costs one FFI call. What it cannot avoid: TUN has no batched read, so a
// batch of reads is one FFI call per packet.
//
// x86-64 Linux layouts used below (glibc):
//   struct iovec   { void *base; size_t len; }                      16 B
//   struct msghdr  { void *name; u32 namelen; (pad 4) iovec *iov;
//                    size_t iovlen; void *control; size_t controllen;
//                    int flags; (pad 4) }                          56 B
//   struct mmsghdr { msghdr hdr; u32 msg_len; (pad 4) }              64 B
//   sockaddr slot: 32 B (sockaddr_in6 is 28)
import koffi from "koffi";

const MSG_DONTWAIT = 0x40;
const EAGAIN = 11;
const EINTR = 4;
const TUNSETIFF = 0x400454ca;
const IFF_TUN = 0x0001;
const IFF_NO_PI = 0x1000;
const IFF_MULTI_QUEUE = 0x0100;
const O_RDWR = 2;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_RCVBUFFORCE = 33;
const SO_SNDBUFFORCE = 32;

const MMSG = 64;
const IOV = 16;
const SA = 32;

const libc = koffi.load("libc.so.6");
const c = {
  open: libc.func("int open(const char *path, int flags, int mode)"),
  close: libc.func("int close(int fd)"),
  ioctl: libc.func("int ioctl(int fd, unsigned long req, ...)"),
  read: libc.func("intptr_t read(int fd, intptr_t buf, size_t n)"),
  write: libc.func("intptr_t write(int fd, intptr_t buf, size_t n)"),
  socket: libc.func("int socket(int domain, int type, int proto)"),
  bind: libc.func("int bind(int fd, const uint8_t *addr, uint32_t len)"),
  setsockopt: libc.func("int setsockopt(int fd, int level, int opt, const int *v, uint32_t len)"),
  recvmmsg: libc.func("int recvmmsg(int fd, intptr_t vec, unsigned int n, int flags, intptr_t timeout)"),
  sendmmsg: libc.func("int sendmmsg(int fd, intptr_t vec, unsigned int n, int flags)"),
};

function fail(what: string): never {
  const e = koffi.errno();
  throw Object.assign(new Error(`${what}: errno ${e}`), { errno: e });
}

/** Address of a typed array's first byte (stable for WASM memory until it grows). */
export function baseAddress(mem: Uint8Array): number {
  return Number(koffi.address(mem));
}

export function kClose(fd: number): void {
  c.close(fd);
}

/** TUNSETIFF through FFI: IFF_TUN | IFF_NO_PI [| IFF_MULTI_QUEUE]. */
export function kTunOpen(name: string, multiQueue = false): number {
  const fd = c.open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC, 0);
  if (fd < 0) fail("open /dev/net/tun");
  const ifr = Buffer.alloc(40); // struct ifreq
  ifr.write(name, 0, 15, "latin1");
  ifr.writeUInt16LE(IFF_TUN | IFF_NO_PI | (multiQueue ? IFF_MULTI_QUEUE : 0), 16);
  if (c.ioctl(fd, TUNSETIFF, "uint8_t *", ifr) < 0) {
    c.close(fd);
    fail("TUNSETIFF");
  }
  return fd;
}

/** One read(2) per packet, one FFI call each; same contract as Tun.readBatch. */
export function kReadBatch(fd: number, base: number, offs: Uint32Array, lens: Uint32Array, max: number, cap: number): number {
  let n = 0;
  while (n < max) {
    const got = Number(c.read(fd, base + offs[n], cap));
    if (got < 0) {
      const e = koffi.errno();
      if (e === EINTR) continue;
      if (e === EAGAIN) break;
      fail("read");
    }
    lens[n] = got > cap ? 0 : got;
    n++;
  }
  return n;
}

export function kWriteBatch(fd: number, base: number, offs: Uint32Array, lens: Uint32Array, n: number): number {
  let w = 0;
  for (let i = 0; i < n; i++) {
    if (lens[i] === 0) continue;
    if (Number(c.write(fd, base + offs[i], lens[i])) >= 0) w++;
  }
  return w;
}

/** socket()+bind() through FFI (IPv4 only; that is all the benchmark needs). */
export function kSocket4(raw: boolean, proto: number, port: number, bufBytes: number): number {
  const fd = c.socket(2 /* AF_INET */, raw ? 3 : 2 /* SOCK_RAW : SOCK_DGRAM */, raw ? proto : 17);
  if (fd < 0) fail("socket");
  if (bufBytes > 0) {
    c.setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, [bufBytes], 4);
    c.setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, [bufBytes], 4);
  }
  if (!raw) {
    const sa = Buffer.alloc(16);
    sa.writeUInt16LE(2, 0);
    sa.writeUInt16BE(port, 2);
    if (c.bind(fd, sa, 16) < 0) fail("bind");
  }
  return fd;
}

/**
 * A preallocated mmsghdr vector for up to `slots` datagrams (IPv4 peers),
 * kept in koffi-allocated memory so one recvmmsg/sendmmsg call moves a batch.
 */
export class KMmsg {
  readonly vec: number; // address of mmsghdr[slots]
  private readonly dv: DataView;
  private readonly iovAt: number; // offsets inside the block
  private readonly saAt: number;
  private readonly blockAddr: number;

  constructor(readonly slots: number) {
    const bytes = slots * (MMSG + IOV + SA);
    const block = koffi.alloc("uint8_t", bytes);
    this.blockAddr = Number(koffi.address(block));
    this.dv = new DataView(koffi.view(block, bytes));
    this.vec = this.blockAddr;
    this.iovAt = slots * MMSG;
    this.saAt = this.iovAt + slots * IOV;
    for (let i = 0; i < slots; i++) {
      const m = i * MMSG;
      this.setPtr(m + 0, this.blockAddr + this.saAt + i * SA); // msg_name
      this.dv.setBigUint64(m + 24, 1n, true); // msg_iovlen
      this.setPtr(m + 16, this.blockAddr + this.iovAt + i * IOV); // msg_iov
    }
  }

  private setPtr(at: number, addr: number): void {
    this.dv.setUint32(at, addr % 0x100000000, true);
    this.dv.setUint32(at + 4, Math.floor(addr / 0x100000000), true);
  }

  /** Points slot i's iovec at `len` bytes at `addr` and sets its msg_namelen. */
  private setSlot(i: number, addr: number, len: number, nameLen: number): void {
    const iov = this.iovAt + i * IOV;
    this.setPtr(iov, addr);
    this.dv.setUint32(iov + 8, len, true);
    this.dv.setUint32(i * MMSG + 8, nameLen, true); // msg_namelen
  }

  /** recvmmsg(MSG_DONTWAIT) into slots; addrs: 16 B per slot (IPv4 in the first 4). */
  recv(fd: number, base: number, offs: Uint32Array, lens: Uint32Array, addrs: Uint8Array, ports: Uint16Array, max: number, cap: number): number {
    const dv = this.dv;
    for (let i = 0; i < max; i++) {
      this.setSlot(i, base + offs[i], cap, SA);
      dv.setInt32(i * MMSG + 48, 0, true); // msg_flags
    }
    const got = c.recvmmsg(fd, this.vec, max, MSG_DONTWAIT, 0);
    if (got < 0) {
      if (koffi.errno() === EAGAIN) return 0;
      fail("recvmmsg");
    }
    for (let i = 0; i < got; i++) {
      const m = i * MMSG;
      const truncated = (dv.getInt32(m + 48, true) & 0x20) !== 0; // MSG_TRUNC
      lens[i] = truncated ? 0 : dv.getUint32(m + 56, true);
      const sa = this.saAt + i * SA;
      ports[i] = dv.getUint16(sa + 2, false);
      for (let b = 0; b < 4; b++) addrs[i * 16 + b] = dv.getUint8(sa + 4 + b); // sin_addr
    }
    return got;
  }

  /** sendmmsg of slots 0..n-1 to IPv4 addrs/ports; returns how many went. */
  send(fd: number, base: number, offs: Uint32Array, lens: Uint32Array, addrs: Uint8Array, ports: Uint16Array, n: number): number {
    const dv = this.dv;
    for (let i = 0; i < n; i++) {
      this.setSlot(i, base + offs[i], lens[i], 16); // sizeof(sockaddr_in)
      const sa = this.saAt + i * SA;
      dv.setUint16(sa, 2, true); // AF_INET
      dv.setUint16(sa + 2, ports[i], false);
      for (let b = 0; b < 4; b++) dv.setUint8(sa + 4 + b, addrs[i * 16 + b]); // sin_addr
    }
    let k = 0;
    while (k < n) {
      const w = c.sendmmsg(fd, this.vec + k * MMSG, n - k, 0);
      if (w > 0) {
        k += w;
        continue;
      }
      if (koffi.errno() === EINTR) continue;
      break;
    }
    return k;
  }
}

/** Readiness through koffi's own uv_poll wrapper. */
export function kPoll(fd: number, cb: () => void): { close(): void } {
  const h = koffi.node.poll(fd, { readable: true }, () => cb());
  return { close: () => h.close() };
}
