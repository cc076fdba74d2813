// The rate limit on the ICMP "too big" errors the core builds
// (assembly/too_big.ts, VERDICT_ICMP): the host keeps it because the time is
// the host's, and the core stays pure (numbers in, verdicts out).

/**
 * Token bucket for ICMP errors (RFC 1812 §4.3.2.8, RFC 4443 §2.4(f)): at
 * most `rate` per second on average, bursts of `burst`.
 */
export class RateLimit {
  private tokens: number;
  private last = Date.now();
  constructor(private readonly rate = 100, private readonly burst = 50) {
    this.tokens = burst;
  }
  take(now = Date.now()): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.rate) / 1000);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
