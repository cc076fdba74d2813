// The rate limit on the ICMP "too big" errors the core builds
// (assembly/too_big.ts, VERDICT_ICMP): the host keeps it because the time is
// the host's, and the core stays pure (numbers in, verdicts out).

/**
 * Token bucket for ICMP errors (RFC 1812 §4.3.2.8, RFC 4443 §2.4(f)): at
 * most `rate` per second on average, bursts of `burst`.
 */
export class RateLimit {
  /**
   * [tokens, time of the last refill in ms], in a typed array: stores there
   * never box a number, so taking a token allocates nothing (the packet
   * path's rule; test/unit/pipeline-noalloc.test.ts, case "icmp").
   */
  private readonly s = new Float64Array(2);
  constructor(private readonly rate = 100, private readonly burst = 50) {
    this.s[0] = burst;
    this.s[1] = Date.now();
  }
  /**
   * Refills for the time `now` (ms). The pipeline reads the clock once per
   * batch, not per packet: Date.now() allocates (it returns a boxed number).
   */
  advance(now: number): void {
    const s = this.s;
    s[0] = Math.min(this.burst, s[0] + ((now - s[1]) * this.rate) / 1000);
    s[1] = now;
  }
  /** Takes a token if there is one (after refilling for `now`, when given). */
  take(now?: number): boolean {
    if (now !== undefined) this.advance(now);
    const s = this.s;
    if (s[0] < 1) return false;
    s[0] -= 1;
    return true;
  }
}
