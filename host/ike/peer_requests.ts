// The responder's half of RFC 7296 §2.1/§2.2 for one IKE SA: the Message ID we
// expect next from the peer, and the response we gave to the request before it,
// sent again — never recomputed — when that request comes again.
//
// A retransmission is the same datagram again (for a fragmented request, its fragment 1:
// RFC 7383 §2.6.1, the other fragments are ignored). Anything else with the answered
// Message ID is not authenticated, and answering it would reflect the cached response
// to any address: it is refused.
import { Reassembly } from "./fragment.ts";
import type { Path } from "./types.ts";

export type Seen =
  | { kind: "new" }
  | { kind: "resend"; datagrams: Uint8Array[] }
  | { kind: "refuse"; reason: string; detail: string };

export class PeerRequests {
  /** The next request ID we expect from the peer. */
  private nextId = 0;
  private last?: { id: number; datagrams: Uint8Array[]; path: Path };
  /** The authenticated request (fragment 1 of a fragmented one) the next response will answer, and the one `last` answers. */
  private raw?: Uint8Array;
  private lastRaw?: Uint8Array;
  /** RFC 7383 §2.6: fragments of the peer's request, until complete. */
  readonly fragments = new Reassembly();

  /** A responder that answered IKE_SA_INIT (request 0) with `response`. */
  answeredInit(request: Uint8Array, response: Uint8Array, path: Path): void {
    this.nextId = 1;
    this.last = { id: 0, datagrams: [response], path };
    this.lastRaw = request.slice();
  }

  /** Request `id` (its fragment `fragment`, if fragmented): new, a retransmission to answer again, or refused. */
  seen(id: number, raw: Uint8Array, fragment: number | undefined): Seen {
    if (this.last && id === this.last.id) {
      if (fragment !== undefined && fragment !== 1) return { kind: "refuse", reason: "retransmit-fragment", detail: `fragment ${fragment} of request ${id}, answered already` };
      if (!this.lastRaw || !Buffer.from(raw).equals(this.lastRaw)) {
        return { kind: "refuse", reason: "retransmit-mismatch", detail: `request ${id} differs from the one answered` };
      }
      return { kind: "resend", datagrams: this.last.datagrams };
    }
    if (id !== this.nextId) return { kind: "refuse", reason: "message-id", detail: `request ${id}, expected ${this.nextId}` };
    return { kind: "new" };
  }

  /** The request being processed authenticated (or its fragment 1 did): its bytes identify a retransmission. */
  authenticated(raw: Uint8Array): void {
    this.raw = raw.slice();
  }

  /** Request `id` answered with `datagrams`. */
  answered(id: number, datagrams: Uint8Array[], path: Path): void {
    this.last = { id, datagrams, path };
    this.lastRaw = this.raw;
    this.nextId = id + 1;
  }
}
