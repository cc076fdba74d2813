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
// Each source address gets a token bucket (`rate` a second, `burst` deep);
// datagrams beyond it are dropped unanswered and counted, so the responder
// cannot be turned into an amplifier of any size (a response is at most
// 60 bytes longer than its request: a 420 for one unknown attribute, 24 → 84
// bytes). Buckets of at most `maxSources`
// addresses are kept; beyond that the longest-idle is forgotten.
import { createSocket, type Socket } from "node:dgram";
import { isIPv4 } from "node:net";
import { parseAddress } from "../config/addr.ts";
import { METHOD_BINDING, decodeStun, encodeStun, type StunAddress, type StunMessage } from "../net/stun.ts";

export const DEFAULT_STUN_PORT = 3478; // RFC 8489 §18.6 ("stun" over UDP)
export const SOFTWARE = "wesp controller";

export interface StunCounters {
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
}

/** The response to one datagram from `from`, or null when none is due. Counts in `c`. */
export function answerStun(datagram: Uint8Array, from: StunAddress, c: StunCounters): Uint8Array | null {
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
  let res: StunMessage;
  if (req.message.method !== METHOD_BINDING) {
    res = { ...base, cls: "error", errorCode: { code: 400, reason: "Bad Request" } };
  } else if (req.unknownRequired.length > 0) {
    res = { ...base, cls: "error", errorCode: { code: 420, reason: "Unknown Attribute" }, unknownAttributes: req.unknownRequired };
  } else {
    c.answered++;
    return encodeStun({ ...base, cls: "success", xorMappedAddress: from }, { fingerprint: true });
  }
  c.errors++;
  return encodeStun(res, { fingerprint: true });
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

export interface StunServerOptions {
  host: string;
  port: number;
  /** Requests a second per source address (default 20). */
  rate?: number;
  /** Bucket depth per source (default 40). */
  burst?: number;
  /** Source addresses tracked at once (default 65536). */
  maxSources?: number;
  log?: (line: string) => void;
}

export class StunServer {
  readonly counters: StunCounters = { answered: 0, errors: 0, rateLimited: 0, malformed: 0, ignored: 0 };
  private constructor(private readonly sock: Socket, private readonly limiter: SourceLimiter) {}

  static start(o: StunServerOptions): Promise<StunServer> {
    const sock = createSocket({ type: isIPv4(o.host) ? "udp4" : "udp6", ipv6Only: !isIPv4(o.host) && o.host !== "::" });
    const s = new StunServer(sock, new SourceLimiter(o.rate ?? 20, o.burst ?? 40, o.maxSources ?? 65536));
    sock.on("message", (msg, rinfo) => s.onMessage(msg, rinfo.address, rinfo.port));
    return new Promise((resolve, reject) => {
      sock.once("error", reject);
      sock.bind(o.port, o.host, () => {
        sock.off("error", reject);
        sock.on("error", (e) => o.log?.(`stun: ${e.message}`));
        resolve(s);
      });
    });
  }

  get address(): { host: string; port: number } {
    const a = this.sock.address();
    return { host: a.address, port: a.port };
  }

  private onMessage(msg: Buffer, host: string, port: number): void {
    if (!this.limiter.take(host, performance.now())) {
      this.counters.rateLimited++;
      return;
    }
    // A dual-stack socket reports an IPv4 sender as ::ffff:a.b.c.d; the CE wants its IPv4 address back.
    const text = host.startsWith("::ffff:") && isIPv4(host.slice(7)) ? host.slice(7) : host;
    const a = parseAddress(text);
    if (!a.ok) return;
    const out = answerStun(msg, { family: a.value.family, address: a.value.bytes, port }, this.counters);
    if (out) this.sock.send(out, port, host);
  }

  close(): Promise<void> {
    return new Promise((done) => this.sock.close(() => done()));
  }
}
