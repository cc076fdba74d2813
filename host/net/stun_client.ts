// The CE side of STUN (RFC 8489 §6.2–§6.3): one Binding transaction from a
// WAN port's address and port to a STUN server (the controller's, see
// host/controller/stun_server.ts), giving the public address and port the
// NATs on the way mapped that port to (net2cloud §5.2).
//
// Which socket: a NAT maps a (source address, source port) — and for
// address- or port-dependent NATs also a destination — so the request must
// leave from the very port the WAN port's ESP-in-UDP and IKE use (4500), or
// what it learns is some other mapping. Two ways, both behind StunTransport:
//   - with the data plane running, its NAT-T socket: the core hands STUN
//     datagrams (magic cookie, RFC 7983-style demux, assembly/udp_encap.ts)
//     to the host as TO_HOST, and the forwarder sends ours without the
//     non-ESP marker (pipeline.ts sendHost / onHost, kind "stun");
//   - without it (before `wesp up`, at enrolment), a plain UDP socket bound to
//     the same address and port: udpTransport below.
// A separate SO_REUSEPORT socket beside a running data plane does not work:
// the kernel spreads a reuseport group's datagrams by flow hash, so the
// response may land on the data plane's socket instead.
//
// Retransmission (§6.2.1): the request is sent at 0, RTO, 3·RTO, 7·RTO, …
// (the interval doubling from RTO = 500 ms), Rc = 7 times in all; after the
// last the client waits Rm·RTO (Rm = 16) more: 39.5 s with the defaults.
// A response must carry our transaction ID and come from the server's
// address and port; an error response ends the transaction (§6.3.4), as does
// a success response with unknown comprehension-required attributes (§6.3.3).
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { isIPv4, isIPv6 } from "node:net";
import { canonicalAddress, formatAddress, formatCoreAddr, parseAddress } from "../config/addr.ts";
import { METHOD_BINDING, decodeStun, encodeStun, isStun, type StunAddress } from "./stun.ts";

export interface StunServerAddress {
  host: string;
  port: number;
}

export interface StunMapping {
  /** The WAN port's address and port as the server saw them (XOR-MAPPED-ADDRESS). */
  publicAddress: string;
  publicPort: number;
  /** True when they differ from the local ones: a NAT is on the way. */
  natted: boolean;
}

/** Where the Binding request leaves from and its response arrives. */
export interface StunTransport {
  send(bytes: Uint8Array, host: string, port: number): void;
  /** Calls `cb` with every STUN datagram that arrives; returns the way to stop. */
  onStun(cb: (bytes: Uint8Array, host: string, port: number) => void): () => void;
  close?(): void;
}

export interface DiscoverOptions {
  /** Initial retransmission timeout (default 500 ms, §6.2.1). */
  rtoMs?: number;
  /** Requests sent in all (default 7). */
  rc?: number;
  /** Last wait, in RTOs (default 16). */
  rm?: number;
  /** Gives up after this long whatever the schedule says. */
  timeoutMs?: number;
  /** The socket to use; default: a UDP socket bound to wanAddress:wanPort for this transaction. */
  transport?: StunTransport;
  /** SOFTWARE to send (default none). */
  software?: string;
}

export class StunError extends Error {
  constructor(message: string, readonly code?: number) {
    super(message);
  }
}

/** A plain UDP socket bound to `address`:`port` (the port must be free: no data plane on it). */
export async function udpTransport(address: string, port: number): Promise<StunTransport> {
  const sock = createSocket(isIPv6(address) ? "udp6" : "udp4");
  await new Promise<void>((resolve, reject) => {
    sock.once("error", reject);
    sock.bind(port, address, () => {
      sock.off("error", reject);
      resolve();
    });
  });
  sock.on("error", () => {}); // ICMP port unreachable and the like: the retransmission timer decides
  return {
    send: (b, h, p) => sock.send(b, p, h),
    onStun(cb) {
      const f = (m: Buffer, r: { address: string; port: number }) => {
        if (isStun(m)) cb(new Uint8Array(m.buffer, m.byteOffset, m.length), r.address, r.port);
      };
      sock.on("message", f);
      return () => sock.off("message", f);
    },
    close: () => sock.close(),
  };
}

/** What forwarderTransport needs of a running data plane (host/pipeline/forwarder.ts Forwarder). */
export interface StunDataPlane {
  onStun(cb: (p: { wanIndex: number; family: 4 | 6; address: Uint8Array; port: number; bytes: Uint8Array }) => void): () => void;
  sendHost(p: { wanIndex: number; family: 4 | 6; address: Uint8Array; port: number; bytes: Uint8Array; stun?: boolean }): void;
}

/** STUN through WAN port `wanIndex`'s NAT-T socket of a running data plane: the mapping ESP and IKE get. */
export function forwarderTransport(dp: StunDataPlane, wanIndex: number): StunTransport {
  return {
    send(bytes, host, port) {
      const a = parseAddress(host);
      if (!a.ok) return;
      dp.sendHost({ wanIndex, family: a.value.family, address: a.value.bytes, port, bytes, stun: true });
    },
    onStun: (cb) => dp.onStun((p) => {
      if (p.wanIndex === wanIndex) cb(p.bytes, formatCoreAddr(p.family, p.address), p.port);
    }),
  };
}

/** The public address and port of wanAddress:wanPort as `server` sees them. */
export async function discover(
  wanAddress: string, wanPort: number, server: StunServerAddress, opts: DiscoverOptions = {},
): Promise<StunMapping> {
  if (!isIPv4(server.host) && !isIPv6(server.host)) throw new StunError(`STUN server "${server.host}" is not an IP address`);
  const own = !opts.transport;
  const t = opts.transport ?? (await udpTransport(wanAddress, wanPort));
  try {
    const { mapped: m } = await binding(t, server, opts);
    return { publicAddress: m.host, publicPort: m.port, natted: m.host !== canonicalAddress(wanAddress) || m.port !== wanPort };
  } finally {
    if (own) t.close?.();
  }
}

/** What one Binding success response said (RFC 5780's attributes when the server has them). */
export interface BindingResult {
  mapped: StunServerAddress;
  other?: StunServerAddress;
  origin?: StunServerAddress;
}

export interface BindingOptions extends DiscoverOptions {
  /** RFC 5780 §7.2 CHANGE-REQUEST. */
  change?: { ip: boolean; port: boolean };
  /** Where the response must come from (default `server`; with `change`, the server's other corner). */
  expectFrom?: StunServerAddress;
}

const endpoint = (a: StunAddress): StunServerAddress => ({ host: formatAddress(a.address), port: a.port });

/** One Binding transaction over `t`; resolves with what the response said, rejects on error or timeout. */
export function binding(t: StunTransport, server: StunServerAddress, opts: BindingOptions = {}): Promise<BindingResult> {
  type T = BindingResult;
  const rto = opts.rtoMs ?? 500, rc = opts.rc ?? 7, rm = opts.rm ?? 16;
  const tid = randomBytes(12);
  const request = encodeStun(
    {
      cls: "request", method: METHOD_BINDING, transactionId: tid,
      ...(opts.software ? { software: opts.software } : {}), ...(opts.change ? { changeRequest: opts.change } : {}),
    },
    { fingerprint: true },
  );
  const from = opts.expectFrom ?? server;
  const serverHost = canonicalAddress(from.host);
  return new Promise<T>((resolve, reject) => {
    let sent = 0, interval = rto, timer: NodeJS.Timeout | undefined, settled = false;
    const overall = opts.timeoutMs !== undefined ? setTimeout(() => finish(new StunError(`no STUN response from ${server.host}:${server.port} in ${opts.timeoutMs} ms`)), opts.timeoutMs) : undefined;
    const stop = t.onStun((bytes, host, port) => {
      if (canonicalAddress(host) !== serverHost || port !== from.port) return;
      const r = decodeStun(bytes);
      if (!r.ok || r.value.message.method !== METHOD_BINDING) return;
      const m = r.value.message;
      if (!Buffer.from(m.transactionId).equals(tid) || (m.cls !== "success" && m.cls !== "error")) return;
      if (m.cls === "error") {
        const e = m.errorCode;
        return finish(new StunError(`STUN error ${e ? `${e.code} ${e.reason}` : "(no ERROR-CODE)"} from ${server.host}:${server.port}`, e?.code));
      }
      if (r.value.unknownRequired.length) {
        return finish(new StunError(`STUN success response with unknown comprehension-required attributes ${r.value.unknownRequired.map((a) => `0x${a.toString(16)}`).join(", ")}`));
      }
      const a = m.xorMappedAddress ?? m.mappedAddress;
      if (!a) return finish(new StunError("STUN success response without a mapped address"));
      finish(undefined, {
        mapped: endpoint(a),
        ...(m.otherAddress ? { other: endpoint(m.otherAddress) } : {}),
        ...(m.responseOrigin ? { origin: endpoint(m.responseOrigin) } : {}),
      });
    });
    const tick = () => {
      if (sent === rc) return finish(new StunError(`no STUN response from ${server.host}:${server.port} after ${rc} requests`));
      t.send(request, server.host, server.port);
      sent++;
      timer = setTimeout(tick, sent === rc ? rm * rto : interval);
      interval *= 2;
    };
    function finish(e?: Error, v?: T): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(overall);
      stop();
      if (e) reject(e);
      else resolve(v as T);
    }
    tick();
  });
}
