// IKE over UDP with node:dgram: port 500 for IKE proper and 4500 for NAT
// traversal, where every IKE message is preceded by the four-zero-byte non-ESP
// marker (RFC 3948 §2.2; RFC 7296 §2.23) and a lone 0xFF byte is a NAT-keepalive
// (RFC 3948 §2.3). Anything else on 4500 is ESP, which belongs to the data plane.
//
// Two ways to carry the NAT-T port: a socket of this transport's own (the
// interop harness, tests), or — in `wesp up` — the data plane's socket, which
// shares the port with ESP: the core hands IKE up as TO_HOST with the marker
// already removed (`receiveNatt`), and `natt.send` answers through the worker,
// which puts the marker back (runtime.ts wires it). Port 500 is always a socket
// of ours, one per local address.
//
// The transport owns the only timer: it asks the endpoint (and the `clock`,
// the IKE manager) when it next has work (`nextTimeout`) and calls `tick`
// then. Nothing thrown by a handler escapes the socket callback; it is
// counted as `internal` and logged.
import { createSocket, type Socket } from "node:dgram";
import { isIPv6 } from "node:net";
import type { IkeEndpoint } from "./endpoint.ts";
import type { IkeEvent, Outgoing, Path, Step } from "./types.ts";

/** RFC 3948 §2.2: "Non-ESP Marker: 4 bytes of zero" where an ESP SPI would be. */
export const NON_ESP_MARKER = new Uint8Array(4);

export interface TransportOptions {
  /** Local address(es) to bind the sockets to. */
  address: string | readonly string[];
  ports: { ike: number; natt: number };
  /**
   * The NAT-T port is the data plane's: no socket of ours; IKE datagrams for it come in
   * through `receiveNatt` (marker removed) and go out through `send` (which adds the
   * marker; false = could not be sent). NAT-keepalives are the data plane's own then.
   */
  natt?: { send(bytes: Uint8Array, path: Path): boolean };
  /** A second timer client beside the endpoint (the IKE manager: retries, rekeys). */
  clock?: { readonly nextTimeout: number | undefined; tick(now: number): void };
  /**
   * A step that reports a CHILD_SA delivers its events first, then its datagrams wait for
   * this promise (the inbound SA installed in the worker), so the peer's first ESP packet,
   * which may follow our answer at once, finds its SA.
   */
  hold?: () => Promise<void>;
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
  private sockets = new Map<string, Socket>();
  private timer?: NodeJS.Timeout;
  private closed = false;
  /** Datagrams queued behind a hold (see `apply`), and the promise the next one waits for. */
  private waiting = 0;
  private gate: Promise<unknown> = Promise.resolve();
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

  private key(address: string, port: number): string {
    return `${address}|${port}`;
  }

  /**
   * Binds the IKE port (and the NAT-T port unless the data plane carries it) on every
   * address of the options, and of `more`, not bound yet.
   */
  async start(more: readonly string[] = []): Promise<void> {
    this.closed = false;
    const addresses = [...(typeof this.opts.address === "string" ? [this.opts.address] : this.opts.address), ...more];
    const ports = this.opts.natt ? [this.opts.ports.ike] : [this.opts.ports.ike, this.opts.ports.natt];
    for (const address of addresses) for (const port of ports) if (!this.sockets.has(this.key(address, port))) await this.bind(address, port);
  }

  private async bind(address: string, port: number): Promise<void> {
    const s = createSocket({ type: isIPv6(address) ? "udp6" : "udp4", reuseAddr: false });
    s.on("message", (msg, rinfo) => this.onDatagram(address, port, new Uint8Array(msg.buffer, msg.byteOffset, msg.length), rinfo.address, rinfo.port));
    s.on("error", (e) => this.onEvent({ type: "refused", ike: "", reason: "socket", detail: e.message }));
    await new Promise<void>((resolve, reject) => {
      s.once("error", reject);
      s.bind(port, address, () => {
        s.off("error", reject);
        resolve();
      });
    });
    this.sockets.set(this.key(address, port), s);
  }

  /**
   * Feeds a step's output to the sockets and the event sink, and re-arms the timer.
   * A step that reports a CHILD_SA (with `hold`) sends only once the hold resolves, and
   * every datagram after it waits its turn behind it: a retransmitted request answered
   * from the cache (§2.1) must not overtake the held answer either.
   */
  apply(step: Step): void {
    const holds = this.opts.hold !== undefined && step.send.length > 0 && step.events.some((e) => e.type === "childSaEstablished");
    if (holds || this.waiting > 0) {
      // the CHILD_SA's inbound half is installed before the peer hears of it
      for (const e of step.events) this.onEvent(e);
      this.arm();
      const before = this.gate;
      const ready = holds ? Promise.all([before, this.opts.hold!().catch(() => {})]) : before;
      this.waiting++;
      this.gate = ready.then(() => {
        this.waiting--;
        try {
          this.sendAll(step);
        } catch {
          this.count("internal"); // a socket refusing synchronously: the chain goes on
        }
      });
      return;
    }
    this.sendAll(step);
    for (const e of step.events) this.onEvent(e);
    this.arm();
  }

  private sendAll(step: Step): void {
    if (this.closed) return;
    for (const out of step.send) {
      const p = out.path;
      if (this.opts.natt && p.localPort !== this.opts.ports.ike) {
        // the data plane keeps NAT mappings open itself (its own keepalives)
        if (out.keepalive) this.count("keepalive-by-data-plane");
        else if (!this.opts.natt.send(out.bytes, p)) this.count("no-socket");
        continue;
      }
      const s = this.sockets.get(this.key(p.localAddress, p.localPort));
      if (!s) {
        this.count("no-socket");
        continue;
      }
      s.send(frameOutgoing(out, this.opts.ports.natt), p.remotePort, p.remoteAddress);
    }
  }

  /** An IKE message the data plane took off the NAT-T port (the non-ESP marker already removed). */
  receiveNatt(bytes: Uint8Array, path: Path): void {
    this.receive(bytes, path);
  }

  private onDatagram(address: string, port: number, d: Uint8Array, remoteAddress: string, remotePort: number): void {
    let bytes = d;
    if (port === this.opts.ports.natt && port !== this.opts.ports.ike) {
      const c = classifyNatt(d);
      if (c.kind !== "ike") {
        this.count(c.kind);
        return;
      }
      bytes = c.bytes;
    }
    this.receive(new Uint8Array(bytes), { localAddress: address, localPort: port, remoteAddress, remotePort });
  }

  private receive(bytes: Uint8Array, path: Path): void {
    if (this.closed) return;
    try {
      this.apply(this.endpoint.receive(bytes, path));
    } catch (e) {
      // a bug, not hostile input (the decoder returns typed refusals): keep serving, but say so
      this.count("internal");
      this.onEvent({ type: "refused", ike: "", reason: "internal", detail: (e as Error).stack ?? String(e) });
    }
  }

  /** The endpoint's retransmissions and timeouts, then the clock's (retries, rekeys). */
  private tick(): void {
    const now = this.now();
    try {
      this.apply(this.endpoint.tick(now));
      this.opts.clock?.tick(now);
    } catch (e) {
      this.count("internal");
      this.onEvent({ type: "refused", ike: "", reason: "internal", detail: (e as Error).stack ?? String(e) });
    }
    this.arm();
  }

  /** One timer for the earliest of the endpoint's and the clock's next work. */
  arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.closed) return;
    const ts = [this.endpoint.nextTimeout, this.opts.clock?.nextTimeout].filter((t): t is number => t !== undefined);
    if (ts.length === 0) return;
    // setTimeout's longest delay is 2^31−1 ms; farther work is simply looked at again then
    this.timer = setTimeout(() => this.tick(), Math.min(0x7fffffff, Math.max(0, Math.min(...ts) - this.now())));
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    for (const s of this.sockets.values()) s.close();
    this.sockets.clear();
  }
}
