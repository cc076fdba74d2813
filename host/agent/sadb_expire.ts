// The CE's half of controller-driven rekeying (RFC 9061 §4.1.2, IKE-less):
// when the data plane says an SA of a controller-made peer reached its soft
// lifetime (or ran out of sequence numbers), or removed it at its hard one,
// the controller hears it as an ietf-i2nsf-ikeless `sadb-expire` notification
// (§5.3) — POST /v1/ce/sadb-expire { "ipsec-sa-name", "soft-lifetime-expire" }
// — and makes the next generation. The SA is named as the controller names
// it: sender/receiver/0xSPI (api/ce_rekey.ts saName). IKE peers rekey
// themselves and are left out. A report the controller could not take is kept
// and sent again after the next pull; one it refuses (4xx) is dropped; one it
// calls early (the generation is too young to be replaced: store/rekey.ts
// minGenerationAgeMs) is sent again after the `retryAfter` it names.
import type { Config } from "../config/model.ts";
import type { SaLifecycle } from "../sa/lifecycle.ts";
import { ControllerError, type CeClient } from "./ce_client.ts";

/** Reports kept for a controller that is out of reach (each a distinct SA; the oldest dropped first). */
const MAX_PENDING = 1024;
/** Bounds on an "early" answer's retryAfter (s): a hostile or broken answer neither spins nor parks a report for long. */
const RETRY_AFTER = { min: 1, max: 3600 } as const;

interface Report {
  "ipsec-sa-name": string;
  "soft-lifetime-expire": boolean;
}

export class ExpiryReporter {
  private readonly pending = new Map<string, Report>();
  private sending = false;
  private retryTimer?: NodeJS.Timeout;

  constructor(
    lifecycle: SaLifecycle,
    private readonly running: () => Config | undefined,
    private readonly client: () => CeClient,
    private readonly log: (l: string) => void,
  ) {
    lifecycle.on("needs-rekey", (e) => this.expired(e.peer, e.dir, e.spi, true));
    lifecycle.on("sa-removed", (e) => e.why === "lifetime" && this.expired(e.peer, e.dir, e.spi, false));
  }

  private expired(peer: string, dir: "in" | "out", spi: number, soft: boolean): void {
    const c = this.running();
    if (!c || !c.peers.some((p) => p.name === peer && !p.ike)) return;
    const me = c.node.name;
    const [src, dst] = dir === "out" ? [me, peer] : [peer, me];
    const name = `${src}/${dst}/0x${(spi >>> 0).toString(16).padStart(8, "0")}`;
    // A hard expiry after a soft one of the same SA replaces it in the queue.
    this.pending.delete(name);
    if (this.pending.size >= MAX_PENDING) this.pending.delete(this.pending.keys().next().value!);
    this.pending.set(name, { "ipsec-sa-name": name, "soft-lifetime-expire": soft });
    void this.flush(this.client()).catch((e: Error) => this.log(`sadb-expire ${name}: not delivered yet (${e.message}); sent again after the next pull`));
  }

  /** Sends every pending report; rejects on the first that failed for a reason other than a refusal. */
  async flush(client: CeClient): Promise<void> {
    if (this.sending) return;
    this.sending = true;
    // reports the controller called early, and when (s) to send them again
    const later = new Map<string, number>();
    try {
      // Reports added while this runs are sent by this same loop.
      for (let next = this.nextPending(later); next; next = this.nextPending(later)) {
        const [name, r] = next;
        try {
          const a = await client.call<{ outcome?: string; retryAfter?: unknown }>("POST", "/v1/ce/sadb-expire", r);
          if (a?.outcome === "early") {
            const s = typeof a.retryAfter === "number" && Number.isFinite(a.retryAfter) ? Math.min(RETRY_AFTER.max, Math.max(RETRY_AFTER.min, Math.ceil(a.retryAfter))) : RETRY_AFTER.max;
            later.set(name, s);
            this.log(`sadb-expire ${name}: the controller says the SA is too young to replace yet; sent again in ${s} s`);
            continue;
          }
          this.log(`sadb-expire ${name} (${r["soft-lifetime-expire"] ? "soft" : "hard"}): controller says ${String(a?.outcome ?? "?").slice(0, 20)}`);
        } catch (e) {
          if (!(e instanceof ControllerError) || e.status < 400 || e.status >= 500) throw e;
          this.log(`sadb-expire ${name}: refused by the controller (${e.message})`);
        }
        if (this.pending.get(name) === r) this.pending.delete(name);
      }
    } finally {
      this.sending = false;
      if (later.size) this.retryIn(Math.min(...later.values()));
    }
  }

  /** Stops the timer of reports sent again later (the agent is stopping). */
  stop(): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  private nextPending(skip: Map<string, number>): [string, Report] | undefined {
    for (const e of this.pending) if (!skip.has(e[0])) return e;
    return undefined;
  }

  private retryIn(seconds: number): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.flush(this.client()).catch((e: Error) => this.log(`sadb-expire: not delivered yet (${e.message}); sent again after the next pull`));
    }, seconds * 1000);
    this.retryTimer.unref();
  }
}
