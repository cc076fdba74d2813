// A ring of packet slots over a real WebAssembly.Memory, laid out like the
// pipeline's, for driving the native I/O (host/io, host/tun, host/net)
// directly: the io-*.test.ts end-to-end tests and bench/io. Kept out of
// test/ so that benchmarks do not depend on the test tree.

/**
 * A ring over a real WebAssembly.Memory, like the pipeline's: `slots` slots
 * of `stride` bytes, each starting `headroom` bytes in, plus the per-slot
 * side arrays of the socket API.
 */
export class Ring {
  readonly memory = new WebAssembly.Memory({ initial: 16 }); // 1 MiB
  readonly mem = new Uint8Array(this.memory.buffer);
  readonly offs: Uint32Array;
  readonly lens: Uint32Array;
  readonly addrs: Uint8Array;
  readonly ports: Uint16Array;
  readonly fams: Uint8Array;
  readonly locals: Uint8Array;
  constructor(readonly slots = 64, readonly stride = 2048, readonly headroom = 64) {
    this.offs = new Uint32Array(slots);
    this.lens = new Uint32Array(slots);
    this.addrs = new Uint8Array(slots * 16);
    this.ports = new Uint16Array(slots);
    this.fams = new Uint8Array(slots);
    this.locals = new Uint8Array(slots * 16);
    for (let i = 0; i < slots; i++) this.offs[i] = i * stride + headroom;
  }
  /** The side arrays from slot i on (views, not copies), for a batch that fills slots i.. */
  from(i: number) {
    return {
      offs: this.offs.subarray(i),
      lens: this.lens.subarray(i),
      addrs: this.addrs.subarray(i * 16),
      ports: this.ports.subarray(i),
      fams: this.fams.subarray(i),
      locals: this.locals.subarray(i * 16),
    };
  }
  /** Slot i's packet bytes (a copy). */
  packet(i: number): Uint8Array {
    return this.mem.slice(this.offs[i], this.offs[i] + this.lens[i]);
  }
  put(i: number, bytes: Uint8Array): void {
    this.mem.set(bytes, this.offs[i]);
    this.lens[i] = bytes.length;
  }
  addr(i: number, a: Uint8Array | number[], family: 4 | 6, port = 0): void {
    this.addrs.fill(0, i * 16, i * 16 + 16);
    this.addrs.set(a, i * 16);
    this.fams[i] = family;
    this.ports[i] = port;
  }
}
