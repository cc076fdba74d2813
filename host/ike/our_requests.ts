// The requester's half of RFC 7296 §2.1–§2.3 for one IKE SA: our Message IDs,
// the one request of ours outstanding (a window of one, §2.3) with its
// retransmission schedule, and the requests waiting behind it.
//
// Only the side that sent a request retransmits it, with the timeout doubling
// each time (§2.1); after the last try the IKE SA is given up.
import type { PendingChild } from "./exchange_child.ts";
import type { PendingIkeRekey } from "./exchange_ike_rekey.ts";
import type { Path, Step } from "./types.ts";

export const DEFAULT_RETRANSMIT = { baseMs: 1000, tries: 5 };

export interface Pending {
  id: number;
  exchange: number;
  /** The request as sent: one datagram, or its fragments (RFC 7383), retransmitted together (§2.6.1). */
  datagrams: Uint8Array[];
  path: Path;
  tries: number;
  nextAt: number;
  /** CREATE_CHILD_SA: what the response completes. */
  child?: PendingChild;
  /** INFORMATIONAL deleting CHILD_SAs: our inbound SPIs. */
  deleting?: number[];
  /** CREATE_CHILD_SA rekeying this IKE SA. */
  ikeRekey?: PendingIkeRekey;
}

export type Retransmit = { kind: "resend"; step: Step } | { kind: "give-up"; pending: Pending };

export class OurRequests {
  /** The Message ID of our next request. */
  nextId = 0;
  private outstanding?: Pending;
  /** Requests waiting for the outstanding one to be answered, each started when its turn comes. */
  private readonly queue: (() => Step)[] = [];

  get pending(): Pending | undefined { return this.outstanding; }

  /** Sends `datagrams` as request `nextId`, outstanding from `now`. */
  send(exchange: number, datagrams: Uint8Array[], path: Path, now: number, r = DEFAULT_RETRANSMIT): Step {
    const p: Pending = { id: this.nextId, exchange, datagrams, path: { ...path }, tries: 1, nextAt: now + r.baseMs };
    this.outstanding = p;
    return { send: datagrams.map((bytes) => ({ bytes, path: p.path })), events: [] };
  }

  /** The outstanding request is due (`pending.nextAt`): sent again, or given up after the last try. */
  retransmit(now: number, r = DEFAULT_RETRANSMIT): Retransmit {
    const p = this.outstanding!;
    if (p.tries >= r.tries) {
      this.outstanding = undefined;
      return { kind: "give-up", pending: p };
    }
    p.tries++;
    p.nextAt = now + r.baseMs * 2 ** (p.tries - 1);
    return { kind: "resend", step: { send: p.datagrams.map((bytes) => ({ bytes, path: p.path })), events: [] } };
  }

  /** The outstanding request was answered: the next one gets the next Message ID. */
  answered(): void {
    this.outstanding = undefined;
    this.nextId++;
  }

  /** The outstanding request is forgotten (the IKE SA is going, or IKE_SA_INIT is sent again). */
  forget(): void {
    this.outstanding = undefined;
  }

  /** `start` runs once the requests before it are answered; `first` puts it ahead of them. */
  later(start: () => Step, first = false): void {
    if (first) this.queue.unshift(start);
    else this.queue.push(start);
  }

  /** After a response: starts queued requests into `step` until one is outstanding, while `open()`. */
  drain(step: Step, open: () => boolean): Step {
    while (!this.outstanding && this.queue.length && open()) {
      const s = this.queue.shift()!();
      step.send.push(...s.send);
      step.events.push(...s.events);
    }
    return step;
  }
}
