// The controller's STUN responder (RFC 8489 §6.3): a CE sends a Binding
// request from the UDP port its ESP-in-UDP and IKE traffic leave by, and
// learns from the XOR-MAPPED-ADDRESS what the NATs on its way made of that
// port (net2cloud §3, §5.2: each WAN port's public address and port).
//
// What it answers (the codec is host/net/stun.ts):
//   Binding request, all attributes understood → success: XOR-MAPPED-ADDRESS
//     (the datagram's source address and port), SOFTWARE, FINGERPRINT
//   a request with unknown comprehension-required attributes → 420 with
//     UNKNOWN-ATTRIBUTES (§6.3.1.1); a request of another method → 400
//   indications, responses, non-STUN and malformed datagrams → nothing
// No credentials: a Binding request reveals only what its sender already
// sent (§9: the Binding method may be used without authentication), and a
// MESSAGE-INTEGRITY on a request is ignored.
//
// With an alternate address (RFC 5780 §6), four sockets: primary and
// alternate address × port and port + 1. Success responses then carry
// RESPONSE-ORIGIN and OTHER-ADDRESS, and CHANGE-REQUEST is honoured — what a
// CE needs to classify its NAT's mapping and filtering (stun_client.ts).
//
// Each source (IPv4 address, IPv6 /64) gets a token bucket (`rate` a second, `burst` deep);
// datagrams beyond it are dropped unanswered and counted, so the responder
// cannot be turned into an amplifier of any size (a response is at most
// 60 bytes longer than its request: a 420 for one unknown attribute, 24 → 84
// bytes). Buckets of at most `maxSources`
// addresses are kept; beyond that the longest-idle is forgotten.
import { createSocket, type Socket } from "node:dgram";
import { isIPv4 } from "node:net";
import { parseAddress, unmapV4 } from "../config/addr.ts";
import { ATTR, METHOD_BINDING, decodeStun, encodeStun, type StunAddress, type StunMessage } from "../net/stun.ts";

export const DEFAULT_STUN_PORT = 3478; // RFC 8489 §18.6 ("stun" over UDP)
export const SOFTWARE = "wesp controller";

export type StunCounters = {
  /** Binding requests answered with a success response. */
  answered: number;
  /** Requests answered with an error (400, 420). */
  errors: number;
  /** Datagrams dropped by the per-source rate limit. */
  rateLimited: number;
  /** Datagrams that are not STUN or are refused by the decoder. */
  malformed: number;
  /** Well-formed STUN that is not a request (indications, responses): ignored. */
  ignored: number;
};

/**
 * RFC 5780 behaviour discovery: the server's four transport addresses, by
 * [address index][port index] (primary 0, alternate 1), and the one a request
 * came in on. Without an alternate address there is none, and a request
 * carrying CHANGE-REQUEST gets 420 (RFC 5780 §6.1).
 */
export interface Rfc5780 {
  addrs: StunAddress[][];
  at: [number, number];
}

export interface StunAnswer {
  bytes: Uint8Array;
  /** Send it from this [address][port] index (CHANGE-REQUEST), or from where the request came. */
  from?: [number, number];
}

/** The response to one datagram from `from`, or null when none is due. Counts in `c`. */
export function answerStun(datagram: Uint8Array, from: StunAddress, c: StunCounters, behaviour?: Rfc5780): StunAnswer | null {
  const r = decodeStun(datagram);
  if (!r.ok) {
    c.malformed++;
    return null;
  }
  const req = r.value;
  if (req.message.cls !== "request") {
    c.ignored++;
    return null;
  }
  const base = { method: req.message.method, transactionId: req.message.transactionId, software: SOFTWARE };
  const unknown = behaviour || !req.message.changeRequest ? req.unknownRequired : [...req.unknownRequired, ATTR.CHANGE_REQUEST];
  let res: StunMessage;
  if (req.message.method !== METHOD_BINDING) {
    res = { ...base, cls: "error", errorCode: { code: 400, reason: "Bad Request" } };
  } else if (unknown.length > 0) {
    res = { ...base, cls: "error", errorCode: { code: 420, reason: "Unknown Attribute" }, unknownAttributes: unknown };
  } else {
    c.answered++;
    const ok: StunMessage = { ...base, cls: "success", xorMappedAddress: from };
    if (!behaviour) return { bytes: encodeStun(ok, { fingerprint: true }) };
    // §6.1: answer from the changed address and/or port; OTHER-ADDRESS is always the opposite corner.
    const [i, j] = behaviour.at, ch = req.message.changeRequest;
    const out: [number, number] = [ch?.ip ? i ^ 1 : i, ch?.port ? j ^ 1 : j];
    ok.responseOrigin = behaviour.addrs[out[0]][out[1]];
    ok.otherAddress = behaviour.addrs[i ^ 1][j ^ 1];
    return { bytes: encodeStun(ok, { fingerprint: true }), from: out };
  }
  c.errors++;
  return { bytes: encodeStun(res, { fingerprint: true }) };
}

/** Token buckets by source address (Map order = least recently seen first). */
export class SourceLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  constructor(private readonly rate: number, private readonly burst: number, private readonly maxSources: number) {}

  /** Takes one token for `source` at time `now` (ms); false when it has none. */
  take(source: string, now: number): boolean {
    let b = this.buckets.get(source);
    if (b) {
      this.buckets.delete(source);
      b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.rate);
      b.at = now;
    } else {
      b = { tokens: this.burst, at: now };
      if (this.buckets.size >= this.maxSources) this.buckets.delete(this.buckets.keys().next().value as string);
    }
    this.buckets.set(source, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  get size(): number {
    return this.buckets.size;
  }
}

/**
 * The rate limit's unit: an IPv4 address, or an IPv6 /64 — one host commonly
 * holds a whole /64 (RFC 4291 §2.5.1 interface identifiers, RFC 8981
 * temporary addresses), so per-address buckets would let it rotate past them.
 */
export function limitKey(family: 4 | 6, bytes: Uint8Array): string {
  return family === 4 ? bytes.subarray(0, 4).join(".") : `${Buffer.from(bytes.subarray(0, 8)).toString("hex")}/64`;
}

export interface StunServerOptions {
  host: string;
  port: number;
  /**
   * A second address of this host: then the responder also listens on
   * port + 1 of both addresses and on `port` of this one, for RFC 5780
   * behaviour discovery (OTHER-ADDRESS, RESPONSE-ORIGIN, CHANGE-REQUEST).
   */
  alternate?: string;
  /** Requests a second per source address (default 20). */
  rate?: number;
  /** Bucket depth per source (default 40). */
  burst?: number;
  /** Source addresses tracked at once (default 65536). */
  maxSources?: number;
  log?: (line: string) => void;
}

function bindUdp(host: string, port: number): Promise<Socket> {
  const sock = createSocket({ type: isIPv4(host) ? "udp4" : "udp6", ipv6Only: !isIPv4(host) && host !== "::" });
  return new Promise((resolve, reject) => {
    sock.once("error", reject);
    sock.bind(port, host, () => {
      sock.off("error", reject);
      resolve(sock);
    });
  });
}

export class StunServer {
  readonly counters: StunCounters = { answered: 0, errors: 0, rateLimited: 0, malformed: 0, ignored: 0 };
  private readonly limiter: SourceLimiter;
  /** socks[address][port]: one socket, or four with an alternate address. */
  private constructor(private readonly socks: Socket[][], o: StunServerOptions) {
    this.limiter = new SourceLimiter(o.rate ?? 20, o.burst ?? 40, o.maxSources ?? 65536);
  }

  static async start(o: StunServerOptions): Promise<StunServer> {
    const opened: Socket[] = [];
    try {
      const open = async (h: string, p: number) => {
        const k = await bindUdp(h, p);
        opened.push(k);
        return k;
      };
      const first = await open(o.host, o.port);
      const port = first.address().port;
      let socks = [[first]];
      if (o.alternate !== undefined) {
        if (isIPv4(o.host) !== isIPv4(o.alternate)) throw new Error(`--stun-alternate ${o.alternate}: not of the family of ${o.host}`);
        socks = [[first, await open(o.host, port + 1)], [await open(o.alternate, port), await open(o.alternate, port + 1)]];
      }
      const s = new StunServer(socks, o);
      const behaviour = socks.length > 1 ? s.addresses() : undefined;
      socks.forEach((row, i) => row.forEach((k, j) => {
        k.on("message", (msg, rinfo) => s.onMessage(msg, rinfo.address, rinfo.port, behaviour && { addrs: behaviour, at: [i, j] }, k));
        k.on("error", (e) => o.log?.(`stun: ${e.message}`));
      }));
      return s;
    } catch (e) {
      for (const k of opened) k.close();
      throw e;
    }
  }

  /** The primary address and port. */
  get address(): { host: string; port: number } {
    const a = this.socks[0][0].address();
    return { host: a.address, port: a.port };
  }

  /** Every listening transport address, [address][port]. */
  addresses(): StunAddress[][] {
    return this.socks.map((row) => row.map((k) => {
      const a = k.address(), p = parseAddress(a.address);
      if (!p.ok) throw new Error(`stun: bound to ${a.address}?`);
      return { family: p.value.family, address: p.value.bytes, port: a.port };
    }));
  }

  private onMessage(msg: Buffer, host: string, port: number, behaviour: Rfc5780 | undefined, sock: Socket): void {
    // A dual-stack socket reports an IPv4 sender as ::ffff:a.b.c.d; the CE wants its IPv4 address back.
    const a = parseAddress(unmapV4(host));
    if (!a.ok) return;
    if (!this.limiter.take(limitKey(a.value.family, a.value.bytes), performance.now())) {
      this.counters.rateLimited++;
      return;
    }
    const out = answerStun(msg, { family: a.value.family, address: a.value.bytes, port }, this.counters, behaviour);
    if (!out) return;
    const via = out.from ? this.socks[out.from[0]][out.from[1]] : sock;
    via.send(out.bytes, port, host);
  }

  async close(): Promise<void> {
    await Promise.all(this.socks.flat().map((k) => new Promise<void>((done) => k.close(() => done()))));
  }
}
