// IKE over UDP with node:dgram: port 500 for IKE proper and 4500 for NAT
// traversal, where every IKE message is preceded by the four-zero-byte non-ESP
// marker (RFC 3948 §2.2; RFC 7296 §2.23) and a lone 0xFF byte is a NAT-keepalive
// (RFC 3948 §2.3). Anything else on 4500 is ESP, which belongs to the data plane
// (in `wesp up` the core hands IKE up as TO_HOST; this transport is for running
// IKE on its own sockets until the two are joined).
//
// The transport owns the only timer: it asks the endpoint when it next has work
// (`nextTimeout`) and calls `tick` then. Nothing thrown by a handler escapes the
// socket callback; it is counted as `internal` and logged.
import { createSocket, type Socket } from "node:dgram";
import { isIPv6 } from "node:net";
import type { IkeEndpoint } from "./endpoint.ts";
import type { IkeEvent, Outgoing, Path, Step } from "./types.ts";

/** RFC 3948 §2.2: "Non-ESP Marker: 4 bytes of zero" where an ESP SPI would be. */
export const NON_ESP_MARKER = new Uint8Array(4);

export interface TransportOptions {
  /** Local address to bind both sockets to. */
  address: string;
  ports: { ike: number; natt: number };
}

export type Inbound = { kind: "ike"; bytes: Uint8Array } | { kind: "keepalive" } | { kind: "esp" } | { kind: "short" };

/** Classifies a datagram that arrived on the NAT-T port (RFC 3948 §2.2, §2.3). */
export function classifyNatt(d: Uint8Array): Inbound {
  if (d.length === 1 && d[0] === 0xff) return { kind: "keepalive" };
  if (d.length < 4) return { kind: "short" };
  if (d[0] === 0 && d[1] === 0 && d[2] === 0 && d[3] === 0) return { kind: "ike", bytes: d.subarray(4) };
  return { kind: "esp" };
}

/** The datagram to put on the wire for `out`: with the marker on the NAT-T port (but not for a keepalive). */
export function frameOutgoing(out: Outgoing, natt: number): Uint8Array {
  if (out.path.localPort !== natt || out.keepalive) return out.bytes;
  const b = new Uint8Array(4 + out.bytes.length);
  b.set(out.bytes, 4);
  return b;
}

export class IkeTransport {
  private sockets = new Map<number, Socket>();
  private timer?: NodeJS.Timeout;
  /** Datagrams this transport did not hand to IKE, by reason. */
  readonly counters = new Map<string, number>();

  constructor(
    readonly endpoint: IkeEndpoint,
    readonly opts: TransportOptions,
    private readonly onEvent: (e: IkeEvent) => void,
    private readonly now: () => number = Date.now,
  ) {}

  private count(reason: string): void {
    this.counters.set(reason, (this.counters.get(reason) ?? 0) + 1);
  }

  /** Binds both ports. */
  async start(): Promise<void> {
    const type = isIPv6(this.opts.address) ? "udp6" : "udp4";
    for (const port of [this.opts.ports.ike, this.opts.ports.natt]) {
      const s = createSocket({ type, reuseAddr: false });
      s.on("message", (msg, rinfo) => this.onDatagram(port, new Uint8Array(msg.buffer, msg.byteOffset, msg.length), rinfo.address, rinfo.port));
      s.on("error", (e) => this.onEvent({ type: "refused", ike: "", reason: "socket", detail: e.message }));
      await new Promise<void>((resolve, reject) => {
        s.once("error", reject);
        s.bind(port, this.opts.address, () => {
          s.off("error", reject);
          resolve();
        });
      });
      this.sockets.set(port, s);
    }
  }

  /** Feeds a step's output to the sockets and the event sink, and re-arms the timer. */
  apply(step: Step): void {
    for (const out of step.send) {
      const s = this.sockets.get(out.path.localPort);
      if (!s) {
        this.count("no-socket");
        continue;
      }
      s.send(frameOutgoing(out, this.opts.ports.natt), out.path.remotePort, out.path.remoteAddress);
    }
    for (const e of step.events) this.onEvent(e);
    this.arm();
  }

  private onDatagram(port: number, d: Uint8Array, remoteAddress: string, remotePort: number): void {
    let bytes = d;
    if (port === this.opts.ports.natt) {
      const c = classifyNatt(d);
      if (c.kind !== "ike") {
        this.count(c.kind);
        return;
      }
      bytes = c.bytes;
    }
    const path: Path = { localAddress: this.opts.address, localPort: port, remoteAddress, remotePort };
    try {
      this.apply(this.endpoint.receive(new Uint8Array(bytes), path));
    } catch (e) {
      // a bug, not hostile input (the decoder returns typed refusals): keep serving, but say so
      this.count("internal");
      this.onEvent({ type: "refused", ike: "", reason: "internal", detail: (e as Error).stack ?? String(e) });
    }
  }

  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const at = this.endpoint.nextTimeout;
    if (at === undefined || this.sockets.size === 0) return;
    this.timer = setTimeout(() => this.apply(this.endpoint.tick(this.now())), Math.max(0, at - this.now()));
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    for (const s of this.sockets.values()) s.close();
    this.sockets.clear();
  }
}
