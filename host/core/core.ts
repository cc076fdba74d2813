// The typed API around the WASM ESP core: the only module that knows its ABI.
//
// One Core = one WebAssembly instance = one packet ring. The host writes
// packets into ring slots, calls processOutbound(n) / processInbound(n) once
// per batch, then reads each slot's verdict, offset/length and addresses back.
// Views over linear memory are built once in create(): the core sizes all of
// its memory in init() and never grows it afterwards, so they stay valid.
// Only numbers cross the boundary (STYLE.md §3); see docs/core.md.
import { readFileSync } from "node:fs";
import { randomFillSync } from "node:crypto";
import * as A from "./abi.ts";
import { packagePath } from "../util/package_root.ts";
import { adviseHugePages, populateInBackground } from "./memory_linux.ts";
import { coreFileFromEnv, describeCoreBuild } from "./core_build.ts";
import { coreAddr, corePrefix, formatCoreAddr, ipv4Into, ipv4PrefixInto, type CoreAddr, type CorePrefix } from "../config/addr.ts";

export type Suite = "aes-gcm-16" | "chacha20-poly1305" | "aes-cbc-hmac-sha256" | "aes-cbc" | "none";
export type Mode = "tunnel" | "transport" | "transport-ipip" | "transport-gre" | "ipip" | "gre" | "payload";
export type Verdict = (typeof A.VERDICT_NAMES)[number];
export type { ReasonName } from "./abi.ts";
export { REASON_NAMES, VERDICT_NAMES } from "./abi.ts";

export const SUITES: Record<Suite, number> = {
  none: A.SUITE_NONE,
  "aes-gcm-16": A.SUITE_AES_GCM_16,
  "chacha20-poly1305": A.SUITE_CHACHA20_POLY1305,
  "aes-cbc-hmac-sha256": A.SUITE_AES_CBC_HMAC_SHA256,
  "aes-cbc": A.SUITE_AES_CBC,
};
export const MODES: Record<Mode, number> = {
  tunnel: A.MODE_TUNNEL,
  transport: A.MODE_TRANSPORT,
  "transport-ipip": A.MODE_TRANSPORT_IPIP,
  "transport-gre": A.MODE_TRANSPORT_GRE,
  ipip: A.MODE_IPIP,
  gre: A.MODE_GRE,
  payload: A.MODE_PAYLOAD,
};
export const VERDICT = {
  DROP: A.VERDICT_DROP,
  TO_NETWORK: A.VERDICT_TO_NETWORK,
  TO_TUN: A.VERDICT_TO_TUN,
  TO_HOST: A.VERDICT_TO_HOST,
  BYPASS: A.VERDICT_BYPASS,
  ICMP: A.VERDICT_ICMP,
  FRAGMENT: A.VERDICT_FRAGMENT,
} as const;
export const KIND = { IP: A.KIND_IP, UDP: A.KIND_UDP, PAYLOAD: A.KIND_PAYLOAD } as const;
export const HEADROOM = A.HEADROOM;
export const MAX_PACKET = A.MAX_PACKET;
export const SLOT_SIZE = A.SLOT_SIZE;
/** Bytes of the AEADs' nonce salt (RFC 4106 §4, RFC 7634 §2). */
const SALT_BYTES = 4;
const EMPTY = new Uint8Array(0);

export interface CoreOptions {
  /** Ring slots (default 256, at most 4096). */
  slots?: number;
  /** SA records (default 1024; 100,000 fit: see docs/core.md for bytes per SA). Peer ids must be < maxSas. */
  maxSas?: number;
  /** SPD entries (default 1024). */
  maxPolicies?: number;
  /** Replay bitmaps for windows > 960 (16 KiB each, default 16). */
  largeWindowBlocks?: number;
  /**
   * Ask the kernel to back the SA records with huge pages (Linux, with the
   * wesp_io addon built; memory_linux.ts). Default true.
   */
  hugePages?: boolean;
  /**
   * SA records the first apply will fill (ids 0.. are handed out in order):
   * the kernel backs them from create on, in the background (Linux, with the
   * addon; memory_linux.ts), so the install does not wait for it. Default 0.
   */
  populateSas?: number;
  /** Path of the .wasm (default $WESP_WASM, else build/wesp.relaxed.wasm or build/wesp.wasm: core_build.ts); or pass bytes / a compiled module. */
  wasmPath?: string;
  wasm?: Uint8Array | WebAssembly.Module;
}

export interface SaParams {
  direction: "in" | "out";
  suite: Suite;
  mode: Mode;
  /** SPI (host order). Not used by plain ipip/gre. Inbound SPIs are unique. */
  spi?: number;
  /** Encryption key: 16/24/32 bytes (AES), 32 (ChaCha20), without the salt. */
  key?: Uint8Array;
  /** 4-byte nonce salt (AES-GCM, ChaCha20-Poly1305). */
  salt?: Uint8Array;
  /**
   * `key` is the keying material as negotiated or configured, its last 4
   * bytes the salt (RFC 4106 §8.1, RFC 7634 §2): the core splits it, so a
   * caller makes no views per SA (`salt` is then ignored).
   */
  saltInKey?: boolean;
  /** 32-byte HMAC-SHA-256 key (aes-cbc-hmac-sha256, RFC 4868). */
  hmacKey?: Uint8Array;
  /** Required for suite "aes-cbc" (no integrity; RFC 3602 vectors only). */
  allowNoIntegrity?: boolean;
  /** Extended sequence numbers (RFC 4303 §2.2.1). */
  esn?: boolean;
  /** Anti-replay window, inbound: 0 = off, 32..65536 (default 64). */
  replayWindow?: number;
  /** Outbound: first sequence number sent (default 1). Inbound: first expected (the window starts just below it). */
  initialSeq?: bigint | number;
  /** Inbound: every number below initialSeq counts as already received (resuming after a restart). */
  priorSeen?: boolean;
  /**
   * Reservation limit (default 0 = none): outbound the last sequence number
   * the SA may send, inbound the last it may accept; past it packets drop as
   * SEQ_UNRESERVED until setSeqLimit raises it (host/sa/seq_store.ts).
   */
  seqLimit?: bigint | number;
  /** Peer this SA belongs to (< maxSas). Used by the inbound policy check and NAT-T address learning. */
  peerId?: number;
  /** Outer local / remote addresses (same family). */
  local?: string | Uint8Array;
  remote?: string | Uint8Array;
  /** RFC 3948 UDP encapsulation; ports default to 4500. */
  udp?: boolean | { sport?: number; dport?: number };
  /** UDP-encapsulated, but no NAT between (nat_t: false): never learn the peer's address from inbound packets. */
  fixedRemote?: boolean;
  /** GRE key (RFC 2890 §2.1), absent = no key. */
  greKey?: number;
  /** GRE sequence numbers (RFC 2890 §2.2). */
  greSeq?: boolean;
  /** Outer IPv4 TTL / IPv6 hop limit (default 64), TOS / traffic class (default 0), DF (default false), first IPv4 id (default 0). */
  ttl?: number;
  tos?: number;
  df?: boolean;
  ipId?: number;
  /** Path MTU of the outer packet, 0 = none. Bigger packets drop with TOO_BIG. */
  mtu?: number;
  /** TFC padding target (RFC 4303 §2.7): pad the inner packet up to this many bytes, 0 = off. */
  tfcPad?: number;
  /** 8-byte seed of the CBC IV (IV = AES_K(seed || seq)); random by default. */
  ivSeed?: Uint8Array;
}

export interface PolicyParams {
  /** Lower numbers match first; equal priorities in insertion order. Default 1000. */
  priority?: number;
  action: "protect" | "bypass" | "discard";
  /** Local-side selector ("10.1.0.0/16", "::/0", bare address = host). */
  local: string;
  /** Remote-side selector. Same family as local. */
  remote: string;
  /** IP protocol, 0 / absent = any. */
  proto?: number;
  /** Inclusive port ranges (TCP/UDP/SCTP), absent = any. */
  localPorts?: [number, number];
  remotePorts?: [number, number];
  /** PROTECT: the outbound SA to use. */
  saId?: number;
  /** PROTECT: the peer whose inbound SAs may carry this traffic (RFC 4301 §5.2 check). */
  peerId?: number;
}

export interface Counters {
  packets: bigint;
  bytes: bigint;
  drops: Record<A.ReasonName, bigint>;
}

export interface SaState {
  live: boolean;
  spi: number;
  peerId: number;
  /** Outbound: next sequence number to send. */
  seq: bigint;
  /** Inbound: highest authenticated sequence number. */
  replayTop: bigint;
  /** Reservation limit (0 = none): see SaParams.seqLimit. */
  seqLimit: bigint;
  needsRekey: boolean;
  /**
   * The remote outer address and UDP port the SA uses now: what NAT-T learned
   * from authenticated inbound packets of the peer (RFC 3948 §3.5) when the
   * SA is UDP-encapsulated, else the configured ones (`remoteLearned` says which).
   */
  remote: string;
  remotePort: number;
  remoteLearned: boolean;
}

export class CoreError extends Error {
  constructor(message: string, readonly code: number) {
    super(`${message}: ${A.ERR_NAMES[code] ?? code}`);
  }
}

interface Exports {
  memory: WebAssembly.Memory;
  init(slots: number, maxSas: number, maxPolicies: number, largeWindowBlocks: number): number;
  ringBase(): number;
  descBase(): number;
  saParamPtr(): number;
  saAdd(): number;
  saRemove(id: number): number;
  saRecord(id: number): number;
  saRecordsBase(): number;
  saRemote(id: number): number;
  saSetSeqLimit(id: number, limit: bigint): number;
  saSetRemote(id: number, family: number, port: number): number;
  policyParamPtr(): number;
  policyAdd(): number;
  policyRemove(id: number): number;
  policyClear(): void;
  policyCount(): number;
  spdQuery(family: number, proto: number, src: number, dst: number, sport: number, dport: number): number;
  processOutbound(n: number): number;
  fragmentOutbound(n: number): number;
  innerMtu(suite: number, mode: number, family: number, flags: number, mtu: number, innerHdr: number): number;
  processInbound(n: number): number;
  globalCountersPtr(): number;
  katIvPtr(): number;
  katArmIv(saId: number, len: number): number;
  peerReset(peerId: number): number;
  scratchPtr(): number;
  [k: string]: any;
}

const moduleCache = new Map<string, WebAssembly.Module>();

/** The module to instantiate, and how logs name it (core_build.ts picks the default file). */
function compile(opts: CoreOptions): { module: WebAssembly.Module; build: string } {
  if (opts.wasm instanceof WebAssembly.Module) return { module: opts.wasm, build: "module given by the caller" };
  if (opts.wasm) return { module: new WebAssembly.Module(opts.wasm as Uint8Array<ArrayBuffer>), build: "bytes given by the caller" };
  const p = opts.wasmPath ?? coreFileFromEnv();
  const file = p.startsWith("/") ? p : packagePath(p);
  let m = moduleCache.get(file);
  if (!m) {
    m = new WebAssembly.Module(readFileSync(file));
    moduleCache.set(file, m);
  }
  return { module: m, build: describeCoreBuild(p) };
}

function wasmImports(): WebAssembly.Imports {
  return {
    env: {
      abort(_m: number, _f: number, line: number, col: number) {
        throw new Error(`wasm abort at ${line}:${col}`);
      },
      seed: () => Date.now(),
    },
  };
}

/** One uninitialised instance for the core's pure arithmetic (innerMtu), made on first use. */
let arithmetic: Exports | undefined;

/**
 * The largest inner packet an outbound SA with these parameters, over an
 * outer `family`, carries within `mtu` outer bytes, for inner packets of
 * `innerFamily` — asked of the core (assembly/too_big.ts), whose own size
 * check and ICMP answers use the same arithmetic: the usable MTU is defined
 * there only. Needs no Core (the module's pure export; no init, no SA).
 */
export function innerMtu(p: Pick<SaParams, "suite" | "mode" | "udp" | "greKey" | "greSeq">, family: 4 | 6, mtu: number, innerFamily: 4 | 6): number {
  const suite = SUITES[p.suite], mode = MODES[p.mode];
  if (suite === undefined || mode === undefined) throw new CoreError(`innerMtu: unknown suite ${p.suite} or mode ${p.mode}`, -3);
  arithmetic ??= new WebAssembly.Instance(compile({}).module, wasmImports()).exports as unknown as Exports;
  const flags = (p.udp ? A.FLAG_UDP : 0) | (p.greKey !== undefined ? A.FLAG_GRE_KEY : 0) | (p.greSeq ? A.FLAG_GRE_SEQ : 0);
  return arithmetic.innerMtu(suite, mode, family, flags, mtu, innerFamily === 4 ? 20 : 40);
}

/** `parse(text)`, kept in `seen` (at most 256 at a time) for the next call with the same text. */
function recall<T>(seen: Map<string, T>, text: string, parse: (t: string) => T): T {
  let v = seen.get(text);
  if (v === undefined) {
    if (seen.size >= 256) seen.clear();
    seen.set(text, (v = parse(text)));
  }
  return v;
}

export class Core {
  readonly slots: number;
  readonly maxSas: number;
  readonly maxPolicies: number;
  /** Raw exports: for tests of single primitives only. */
  readonly ex: Exports;
  /** Which .wasm this core runs, for logs: "build/wesp.relaxed.wasm (relaxed SIMD)" (core_build.ts). */
  readonly build: string;
  private readonly u8: Uint8Array;
  private readonly dv: DataView;
  /** Bytes around the SA records the kernel was asked to back with huge pages (0: none; memory_linux.ts). */
  readonly hugePageBytes: number;
  /** Bytes of SA records backed in the background since create (populateSas), once done. */
  readonly populated: Promise<number>;
  private readonly ring: number;
  private readonly desc: number;
  private readonly slotViews: Uint8Array[];
  /** IV seeds for new SAs, taken 8 bytes at a time from one CSPRNG draw (a draw per SA cost 2–15 µs: 100,000 SAs, issue 9). */
  private readonly seeds = new Uint8Array(4096);
  private seedAt = 4096;
  /** Addresses and prefixes addSa / addPolicy parsed lately (a hub's SAs share their local address, a peer's pair its remote), read only. */
  private readonly addrs = new Map<string, CoreAddr>();
  private readonly prefixes = new Map<string, CorePrefix>();

  private constructor(ex: Exports, build: string, slots: number, maxSas: number, maxPolicies: number, hugePageBytes: number, populated: Promise<number>) {
    this.ex = ex;
    this.build = build;
    this.hugePageBytes = hugePageBytes;
    this.populated = populated;
    this.slots = slots;
    this.maxSas = maxSas;
    this.maxPolicies = maxPolicies;
    this.u8 = new Uint8Array(ex.memory.buffer);
    this.dv = new DataView(ex.memory.buffer);
    this.ring = ex.ringBase();
    this.desc = ex.descBase();
    this.slotViews = [];
    // The ring's slots, then the fragment slots behind them (fragmentOutbound; read-only to the host).
    for (let i = 0; i < slots + A.FRAG_SLOTS; i++) this.slotViews.push(this.u8.subarray(this.ring + i * A.SLOT_SIZE, this.ring + (i + 1) * A.SLOT_SIZE));
  }

  /** Instantiates the core and sizes all of its memory once. */
  static async create(opts: CoreOptions = {}): Promise<Core> {
    const slots = opts.slots ?? A.DEFAULT_SLOTS;
    const maxSas = opts.maxSas ?? 1024;
    const maxPolicies = opts.maxPolicies ?? 1024;
    const large = opts.largeWindowBlocks ?? 16;
    const { module, build } = compile(opts);
    const inst = await WebAssembly.instantiate(module, wasmImports());
    const ex = inst.exports as unknown as Exports;
    const rc = ex.init(slots, maxSas, maxPolicies, large);
    if (rc < 0) throw new CoreError("core init failed", rc);
    // before any SA touches its record: the first touch is what the advice changes
    const mem = new Uint8Array(ex.memory.buffer), base = ex.saRecordsBase();
    const huge = opts.hugePages === false ? 0 : await adviseHugePages(mem, base, maxSas * A.SA_SIZE);
    const populated = populateInBackground(mem, base, Math.min(maxSas, Math.max(0, opts.populateSas ?? 0)) * A.SA_SIZE);
    return new Core(ex, build, slots, maxSas, maxPolicies, huge, populated);
  }

  // ── SAs ──────────────────────────────────────────────────────────────────

  /** Installs an SA; returns its id (≥ 0). Safe between batches. Throws CoreError. */
  addSa(p: SaParams): number {
    const b = this.ex.saParamPtr();
    const u8 = this.u8, dv = this.dv;
    u8.fill(0, b, b + A.SAP_SIZE);
    const suite = SUITES[p.suite];
    const mode = MODES[p.mode];
    if (suite === undefined) throw new CoreError(`unknown suite ${p.suite}`, -3);
    if (mode === undefined) throw new CoreError(`unknown mode ${p.mode}`, -3);
    let flags = 0;
    if (p.esn) flags |= A.FLAG_ESN;
    if (p.udp) flags |= A.FLAG_UDP;
    if (p.greKey !== undefined) flags |= A.FLAG_GRE_KEY;
    if (p.greSeq) flags |= A.FLAG_GRE_SEQ;
    if (p.df) flags |= A.FLAG_DF;
    if (p.allowNoIntegrity) flags |= A.FLAG_ALLOW_NO_INTEGRITY;
    if (p.priorSeen) flags |= A.FLAG_PRIOR_SEEN;
    if (p.fixedRemote) flags |= A.FLAG_FIXED_REMOTE;
    u8[b + A.SAP_DIR] = p.direction === "out" ? A.DIR_OUT : A.DIR_IN;
    u8[b + A.SAP_SUITE] = suite;
    u8[b + A.SAP_MODE] = mode;
    u8[b + A.SAP_FLAGS] = flags;
    dv.setUint32(b + A.SAP_SPI, (p.spi ?? 0) >>> 0, true);
    dv.setUint32(b + A.SAP_WINDOW, p.direction === "in" ? p.replayWindow ?? 64 : 0, true);
    dv.setUint32(b + A.SAP_PEER, p.peerId ?? 0, true);
    dv.setBigUint64(b + A.SAP_SEQ, BigInt(p.initialSeq ?? 1), true);
    dv.setBigUint64(b + A.SAP_SEQLIMIT, BigInt(p.seqLimit ?? 0), true);
    const key = p.key ?? EMPTY;
    const keyLen = p.saltInKey ? key.length - SALT_BYTES : key.length;
    if (keyLen > 32) throw new CoreError("key longer than 32 bytes", -3);
    if (keyLen < 0) throw new CoreError(`keying material shorter than its ${SALT_BYTES}-byte salt`, -3);
    u8[b + A.SAP_KEYLEN] = keyLen;
    if (p.saltInKey) {
      // byte by byte: a subarray per SA cost more than the copy (issue 9: 100,000 SAs)
      for (let i = 0; i < keyLen; i++) u8[b + A.SAP_KEY + i] = key[i];
      for (let i = 0; i < SALT_BYTES; i++) u8[b + A.SAP_SALT + i] = key[keyLen + i];
    } else {
      u8.set(key, b + A.SAP_KEY);
      if (p.salt) u8.set(p.salt.length === SALT_BYTES ? p.salt : p.salt.subarray(0, SALT_BYTES), b + A.SAP_SALT);
    }
    if (p.ivSeed) u8.set(p.ivSeed.subarray(0, 8), b + A.SAP_IVSEED);
    else this.ivSeedInto(b + A.SAP_IVSEED);
    if (p.hmacKey) {
      if (p.hmacKey.length !== 32) throw new CoreError("HMAC-SHA-256-128 needs a 32-byte key (RFC 4868 §2.1.1)", -3);
      u8.set(p.hmacKey, b + A.SAP_HMACKEY);
    }
    let family = 4;
    if (p.local !== undefined || p.remote !== undefined) {
      // one left out is the unspecified address of the other's family: the zeros already there
      const r = p.remote === undefined ? 0 : this.addrInto(p.remote, b + A.SAP_REMOTE);
      const l = p.local === undefined ? r : this.addrInto(p.local, b + A.SAP_LOCAL);
      if (r !== 0 && l !== r) throw new CoreError("local and remote must be the same family", -3);
      family = l;
    }
    u8[b + A.SAP_FAMILY] = family;
    u8[b + A.SAP_TTL] = p.ttl ?? 64;
    u8[b + A.SAP_TOS] = p.tos ?? 0;
    dv.setUint16(b + A.SAP_IPID, p.ipId ?? 0, true);
    dv.setUint16(b + A.SAP_MTU, p.mtu ?? 0, true);
    const udp = typeof p.udp === "object" ? p.udp : {};
    dv.setUint16(b + A.SAP_SPORT, udp.sport ?? 4500, true);
    dv.setUint16(b + A.SAP_DPORT, udp.dport ?? 4500, true);
    dv.setUint16(b + A.SAP_TFC, p.tfcPad ?? 0, true);
    dv.setUint32(b + A.SAP_GREKEY, (p.greKey ?? 0) >>> 0, true);
    const id = this.ex.saAdd();
    u8.fill(0, b, b + A.SAP_SIZE); // keys do not linger in the parameter block
    if (id < 0) throw new CoreError(`addSa(${p.direction} ${p.suite} ${p.mode} spi ${p.spi ?? 0})`, id);
    return id;
  }

  /** The next 8 bytes of the seed draw into linear memory at `at` (copied by hand: a subarray per SA was garbage). */
  private ivSeedInto(at: number): void {
    if (this.seedAt >= this.seeds.length) (randomFillSync(this.seeds), (this.seedAt = 0));
    const s = this.seeds, u8 = this.u8, from = this.seedAt;
    for (let k = 0; k < 8; k++) u8[at + k] = s[from + k];
    this.seedAt = from + 8;
  }

  /**
   * Address `a` into the 16 bytes at `at` (zeroed by the caller), its family
   * returned; throws as coreAddr does. An IPv4 text is parsed in place
   * (ipv4Into: no object, no cache lookup — a hub's 50,000 peers each have
   * their own address), anything else through coreAddr, from `addrs` when
   * parsed lately.
   */
  private addrInto(a: string | Uint8Array, at: number): 4 | 6 {
    if (typeof a === "string" && ipv4Into(a, this.u8, at)) return 4;
    const c = typeof a === "string" ? recall(this.addrs, a, coreAddr) : coreAddr(a);
    this.u8.set(c.bytes, at);
    return c.family;
  }

  /** Prefix `text` into the 16 bytes at `at` (zeroed by the caller): (family << 8) | length; throws as corePrefix does. As addrInto. */
  private prefixInto(text: string, at: number): number {
    const len = ipv4PrefixInto(text, this.u8, at);
    if (len >= 0) return (4 << 8) | len;
    const c = recall(this.prefixes, text, corePrefix);
    this.u8.set(c.bytes, at);
    return (c.family << 8) | c.len;
  }

  /** Removes an SA: its keys are wiped, its SPI forgotten. Safe between batches. */
  removeSa(id: number): void {
    const rc = this.ex.saRemove(id);
    if (rc < 0) throw new CoreError(`removeSa(${id})`, rc);
  }

  /** Raises (or sets) SA `id`'s reservation limit; 0 = none. Call only once the reservation is durable. */
  setSeqLimit(id: number, limit: bigint): void {
    const rc = this.ex.saSetSeqLimit(id, limit);
    if (rc < 0) throw new CoreError(`setSeqLimit(${id})`, rc);
  }

  /**
   * The SA's progress without allocating a state object: outbound the next
   * sequence number to send, inbound the highest authenticated one; -1n for
   * an id that is not a live SA. Polled by the reservation loop.
   */
  seqOf(id: number, outbound: boolean): bigint {
    const r = this.ex.saRecord(id);
    if (!r) return -1n;
    return this.dv.getBigUint64(r + (outbound ? A.SA_SEQ : A.SA_REPLAY), true);
  }

  /**
   * Whether outbound SA `id` used up its sequence numbers (RFC 4303 §3.3.3:
   * it seals nothing more; saState's needsRekey) — false for an id that is
   * not a live SA. One flag read: polled every second for every SA.
   */
  needsRekey(id: number): boolean {
    const r = this.ex.saRecord(id);
    return r !== 0 && (this.dv.getUint16(r + A.SA_FLAGS, true) & A.FLAG_NEEDS_REKEY) !== 0;
  }

  /**
   * Moves SA `id` to a new configured remote address (same family as its
   * local one) and, for a UDP-encapsulated SA, destination port; keys,
   * sequence number, replay window and counters stay. Safe between batches.
   * The peer's NAT-T learned address is left alone (forgetPeer resets it).
   */
  moveSa(id: number, remote: string, port = 0): void {
    const a = coreAddr(remote);
    const sp = this.ex.scratchPtr();
    this.u8.fill(0, sp, sp + 16);
    this.u8.set(a.bytes, sp);
    const rc = this.ex.saSetRemote(id, a.family, port);
    if (rc < 0) throw new CoreError(`moveSa(${id}, ${remote}, ${port})`, rc);
  }

  /** Forgets the address NAT-T learned for a peer (before reusing its id for another peer). */
  forgetPeer(peerId: number): void {
    const rc = this.ex.peerReset(peerId);
    if (rc < 0) throw new CoreError(`forgetPeer(${peerId})`, rc);
  }

  saState(id: number): SaState {
    const r = this.ex.saRecord(id);
    if (!r) throw new CoreError(`saState(${id})`, -9);
    const flags = this.dv.getUint16(r + A.SA_FLAGS, true);
    const rem = this.ex.saRemote(id); // port | family << 16 | learned << 24, address in scratch
    if (rem < 0) throw new CoreError(`saState(${id})`, rem);
    const sp = this.ex.scratchPtr();
    return {
      live: this.u8[r + A.SA_STATE] === 1,
      spi: this.dv.getUint32(r + A.SA_SPI, true),
      peerId: this.dv.getUint32(r + A.SA_PEER, true),
      seq: this.dv.getBigUint64(r + A.SA_SEQ, true),
      replayTop: this.dv.getBigUint64(r + A.SA_REPLAY, true),
      seqLimit: this.dv.getBigUint64(r + A.SA_SEQLIMIT, true),
      needsRekey: (flags & A.FLAG_NEEDS_REKEY) !== 0,
      remote: formatCoreAddr((rem >> 16) & 0xff, this.u8.subarray(sp, sp + 16)),
      remotePort: rem & 0xffff,
      remoteLearned: (rem >> 24) !== 0,
    };
  }

  // ── SPD ──────────────────────────────────────────────────────────────────

  /** Adds an SPD entry; returns its id. Match order: priority, then insertion. */
  addPolicy(p: PolicyParams): number {
    const b = this.ex.policyParamPtr();
    const u8 = this.u8, dv = this.dv;
    u8.fill(0, b, b + A.POLP_SIZE);
    const l = this.prefixInto(p.local, b + A.POLP_SRC), r = this.prefixInto(p.remote, b + A.POLP_DST);
    if (l >> 8 !== r >> 8) throw new CoreError("policy local and remote must be the same family", -3);
    dv.setUint32(b + A.POLP_PRIO, p.priority ?? 1000, true);
    u8[b + A.POLP_ACTION] = p.action === "protect" ? A.ACTION_PROTECT : p.action === "bypass" ? A.ACTION_BYPASS : A.ACTION_DISCARD;
    u8[b + A.POLP_FAMILY] = l >> 8;
    u8[b + A.POLP_PROTO] = p.proto ?? 0;
    u8[b + A.POLP_SRCPFX] = l & 0xff;
    u8[b + A.POLP_DSTPFX] = r & 0xff;
    const lp = p.localPorts ?? [0, 65535], rp = p.remotePorts ?? [0, 65535];
    dv.setUint16(b + A.POLP_SPORTLO, lp[0], true);
    dv.setUint16(b + A.POLP_SPORTHI, lp[1], true);
    dv.setUint16(b + A.POLP_DPORTLO, rp[0], true);
    dv.setUint16(b + A.POLP_DPORTHI, rp[1], true);
    dv.setInt32(b + A.POLP_SA, p.saId ?? -1, true);
    dv.setUint32(b + A.POLP_PEER, p.peerId ?? 0, true);
    const id = this.ex.policyAdd();
    if (id < 0) throw new CoreError(`addPolicy(${p.local} -> ${p.remote})`, id);
    return id;
  }

  removePolicy(id: number): void {
    const rc = this.ex.policyRemove(id);
    if (rc < 0) throw new CoreError(`removePolicy(${id})`, rc);
  }

  clearPolicies(): void {
    this.ex.policyClear();
  }

  policyCount(): number {
    return this.ex.policyCount();
  }

  /** Replay bitmaps still free for windows above 960 (largeWindowBlocks at create, less those in use). */
  largeBlocksFree(): number {
    return this.ex.saLargeBlocksFree();
  }

  /** The SPD entry (id) an outbound packet with this 5-tuple matches, or -1. */
  lookupPolicy(local: string, remote: string, proto = 0, localPort = 0, remotePort = 0): number {
    const l = coreAddr(local), r = coreAddr(remote);
    const p = this.ex.scratchPtr(); // 32 bytes for the two addresses
    this.u8.set(l.bytes, p);
    this.u8.set(r.bytes, p + 16);
    return this.ex.spdQuery(l.family, proto, p, p + 16, localPort, remotePort);
  }

  // ── Slots ────────────────────────────────────────────────────────────────

  /** The whole slot i (SLOT_SIZE bytes) as a view; write packets at HEADROOM. Built once. */
  slot(i: number): Uint8Array {
    return this.slotViews[i];
  }

  /**
   * Describes slot i's input: packet at [off, off+len) of the slot.
   * kind: inbound input kind (KIND.*). saId: outbound SA to use directly, -1 = SPD lookup.
   * proto: outbound payload mode next header / inbound kind 2 IP protocol (0 = ESP).
   */
  setPacket(i: number, off: number, len: number, kind = 0, saId = -1, proto = 0): void {
    const d = this.desc + i * A.DESC_SIZE;
    const dv = this.dv;
    dv.setUint32(d + A.D_OFF, off, true);
    dv.setUint32(d + A.D_LEN, len, true);
    this.u8[d + A.D_KIND] = kind;
    this.u8[d + A.D_VERDICT] = A.VERDICT_DROP;
    dv.setUint16(d + A.D_REASON, 0, true);
    dv.setInt32(d + A.D_SA, saId, true);
    this.u8[d + A.D_PROTO] = proto;
  }

  /** Copies a packet into slot i at HEADROOM and describes it (see setPacket). */
  writePacket(i: number, bytes: Uint8Array, kind = 0, saId = -1, proto = 0): void {
    this.slotViews[i].set(bytes, A.HEADROOM);
    this.setPacket(i, A.HEADROOM, bytes.length, kind, saId, proto);
  }

  /** Inbound kinds 1/2: where the packet came from (remote) and arrived (local). */
  setRemote(i: number, remote: string | Uint8Array, port = 0, local?: string | Uint8Array): void {
    const d = this.desc + i * A.DESC_SIZE;
    const r = coreAddr(remote);
    this.u8[d + A.D_FAMILY] = r.family;
    this.dv.setUint16(d + A.D_PORT, port, true);
    this.u8.set(r.bytes, d + A.D_ADDR);
    this.u8.set(local === undefined ? new Uint8Array(16) : coreAddr(local).bytes, d + A.D_LOCAL);
  }

  /**
   * The whole WASM linear memory as one view, for batch I/O straight into
   * ring slots (the wesp_io addon's `mem`): slot i's byte j is at
   * `memory[slotBase(i) + j]`. Built once; memory never grows after init.
   */
  get memory(): Uint8Array {
    return this.u8;
  }

  /** Byte offset of slot i (SLOT_SIZE bytes) in `memory`. */
  slotBase(i: number): number {
    return this.ring + i * A.SLOT_SIZE;
  }

  /**
   * setRemote without parsing or allocating, for the receive path: copies 16
   * bytes of `addr` from `addrOff` and of `local` from `localOff` (IPv4: 4
   * bytes then zeros), e.g. straight out of the I/O layer's per-slot arrays
   * (`addrOff = i * 16`) with no subarray views. `local` null = unknown (zeros).
   */
  setRemoteBytes(i: number, family: 4 | 6, addr: Uint8Array, port: number, local: Uint8Array | null, addrOff = 0, localOff = 0): void {
    const d = this.desc + i * A.DESC_SIZE;
    const u8 = this.u8;
    u8[d + A.D_FAMILY] = family;
    this.dv.setUint16(d + A.D_PORT, port, true);
    const a = d + A.D_ADDR, l = d + A.D_LOCAL;
    for (let k = 0; k < 16; k++) u8[a + k] = addr[addrOff + k];
    if (local) for (let k = 0; k < 16; k++) u8[l + k] = local[localOff + k];
    else u8.fill(0, l, l + 16);
  }

  /** Processes slots 0..n-1 outbound (inner packets → ESP). Returns how many were not dropped. */
  processOutbound(n: number): number {
    return this.ex.processOutbound(n);
  }

  /**
   * After processOutbound(n): cuts the slots whose verdict is FRAGMENT (IPv4,
   * DF clear, over the SA's path MTU) into fragments (RFC 791) and processes
   * them outbound, in the fragment slots behind the ring: returns k, and slots
   * `slots` .. `slots + k - 1` carry verdicts (at most min(32, slots) per
   * call). Call again until 0; each call continues where the last stopped.
   */
  fragmentOutbound(n: number): number {
    return this.ex.fragmentOutbound(n);
  }

  /** Processes slots 0..n-1 inbound (ESP / NAT-T / plain tunnels → inner). Returns how many were not dropped. */
  processInbound(n: number): number {
    return this.ex.processInbound(n);
  }

  verdict(i: number): number {
    return this.u8[this.desc + i * A.DESC_SIZE + A.D_VERDICT];
  }
  verdictName(i: number): Verdict {
    return A.VERDICT_NAMES[this.verdict(i)] ?? "DROP";
  }
  reason(i: number): number {
    return this.dv.getUint16(this.desc + i * A.DESC_SIZE + A.D_REASON, true);
  }
  reasonName(i: number): A.ReasonName {
    return A.REASON_NAMES[this.reason(i)];
  }
  offset(i: number): number {
    return this.dv.getUint32(this.desc + i * A.DESC_SIZE + A.D_OFF, true);
  }
  length(i: number): number {
    return this.dv.getUint32(this.desc + i * A.DESC_SIZE + A.D_LEN, true);
  }
  /** The packet of slot i as a view (no copy; valid until the slot is reused). */
  packet(i: number): Uint8Array {
    const off = this.offset(i);
    return this.slotViews[i].subarray(off, off + this.length(i));
  }
  /** TO_NETWORK: outer IP (+ UDP) header bytes at the front; a UDP socket sends packet(i).subarray(hdrLen). */
  hdrLen(i: number): number {
    return this.dv.getUint16(this.desc + i * A.DESC_SIZE + A.D_HDRLEN, true);
  }
  saId(i: number): number {
    return this.dv.getInt32(this.desc + i * A.DESC_SIZE + A.D_SA, true);
  }
  peerId(i: number): number {
    return this.dv.getUint32(this.desc + i * A.DESC_SIZE + A.D_PEER, true);
  }
  /** TOO_BIG: the SA's path MTU (0: over the slot or MAX_PACKET, no answer). */
  mtu(i: number): number {
    return this.dv.getUint16(this.desc + i * A.DESC_SIZE + A.D_MTU, true);
  }
  /** TOO_BIG with mtu(i) > 0: the largest inner packet the SA carries (the MTU an ICMP answer names). */
  innerMtu(i: number): number {
    return this.dv.getUint16(this.desc + i * A.DESC_SIZE + A.D_INNER_MTU, true);
  }
  /**
   * Outbound TO_NETWORK: the outer IP protocol (50 ESP, 17 UDP, 4/41, 47 GRE);
   * BYPASS: the packet's own protocol. Inbound: payload-mode next header, or
   * what a TO_HOST slot holds (HOST_IKE / HOST_STUN).
   */
  proto(i: number): number {
    return this.u8[this.desc + i * A.DESC_SIZE + A.D_PROTO];
  }
  /** TO_NETWORK and BYPASS: destination family (4 | 6), port (0 = raw IP) and address bytes (view of 16). */
  destFamily(i: number): number {
    return this.u8[this.desc + i * A.DESC_SIZE + A.D_FAMILY];
  }
  destPort(i: number): number {
    return this.dv.getUint16(this.desc + i * A.DESC_SIZE + A.D_PORT, true);
  }
  sourcePort(i: number): number {
    return this.dv.getUint16(this.desc + i * A.DESC_SIZE + A.D_LPORT, true);
  }
  destAddrBytes(i: number): Uint8Array {
    const d = this.desc + i * A.DESC_SIZE + A.D_ADDR;
    return this.u8.subarray(d, d + 16);
  }
  /** TO_NETWORK / BYPASS: copies the 16 destination address bytes into out[off, off+16) — no view allocated (send path). */
  destAddrInto(i: number, out: Uint8Array, off: number): void {
    const d = this.desc + i * A.DESC_SIZE + A.D_ADDR;
    const u8 = this.u8;
    for (let k = 0; k < 16; k++) out[off + k] = u8[d + k];
  }
  destAddress(i: number): string {
    return formatCoreAddr(this.destFamily(i), this.destAddrBytes(i));
  }
  sourceAddress(i: number): string {
    const d = this.desc + i * A.DESC_SIZE + A.D_LOCAL;
    return formatCoreAddr(this.destFamily(i), this.u8.subarray(d, d + 16));
  }

  // ── Counters ─────────────────────────────────────────────────────────────

  private readBlock(p: number): Counters {
    const drops = {} as Record<A.ReasonName, bigint>;
    for (let r = 1; r < A.REASON_COUNT; r++) drops[A.REASON_NAMES[r]] = this.dv.getBigUint64(p + (1 + r) * 8, true);
    drops.NONE = 0n;
    return { packets: this.dv.getBigUint64(p, true), bytes: this.dv.getBigUint64(p + 8, true), drops };
  }

  /** Per-SA counters: packets/bytes that passed, drops by reason. */
  readCounters(saId: number): Counters {
    const r = this.ex.saRecord(saId);
    if (!r) throw new CoreError(`readCounters(${saId})`, -9);
    return this.readBlock(r + A.SA_COUNTERS);
  }

  /**
   * One per-SA drop counter as a number, without building the whole block
   * (polled every few milliseconds by seq_store.ts); -1 for an id that is not
   * a live SA. Exact up to 2^53 drops.
   */
  dropCount(saId: number, reason: A.ReasonName): number {
    const r = this.ex.saRecord(saId);
    if (!r) return -1;
    const at = r + A.SA_COUNTERS + (1 + A.REASON_NAMES.indexOf(reason)) * 8;
    return this.dv.getUint32(at + 4, true) * 2 ** 32 + this.dv.getUint32(at, true);
  }

  /** Global counters per direction; packets + Σ drops = packets processed. */
  globalCounters(): { inbound: Counters; outbound: Counters } {
    const g = this.ex.globalCountersPtr();
    return { inbound: this.readBlock(g), outbound: this.readBlock(g + A.CTR_BLOCK_SIZE) };
  }

  /**
   * Known-answer tests only: in the next processOutbound call, the next seal on
   * outbound SA `saId` uses this IV (8 B GCM/ChaCha, 16 B CBC); that call
   * disarms it whether the packet was sealed or dropped.
   */
  katSetIv(saId: number, iv: Uint8Array): void {
    if (iv.length > A.KAT_IV_MAX) throw new CoreError("KAT IV too long", -3);
    this.u8.set(iv, this.ex.katIvPtr());
    const rc = this.ex.katArmIv(saId, iv.length);
    if (rc < 0) throw new CoreError(`katSetIv(${saId}): no KAT IV for it`, rc);
  }

  /** Bytes of WASM linear memory (flat after create()). */
  memoryBytes(): number {
    return this.ex.memory.buffer.byteLength;
  }
}

/** Total of a counter block's drops. */
export function totalDrops(c: Counters): bigint {
  let s = 0n;
  for (const v of Object.values(c.drops)) s += v;
  return s;
}
