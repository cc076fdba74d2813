// A counter of events by label values, kept in a Map and read on scrape.
// A hub's start installs 100,000 SAs, one `sa-installed` event each, and
// prom-client's Counter.inc (labels validated, a hash string built and looked
// up in an object of 100,000 keys) held the main thread 1-2 s before
// "forwarding on" (docs/bench.md "Start-up"). The exposition is a Counter's:
// a series appears with its first event.
import type { Metric, Registry } from "prom-client";

type Labels = Record<string, string>;

export class Tally {
  private readonly counts = new Map<string, { labels: Labels; value: number }>();

  constructor(registry: Registry, name: string, help: string, private readonly labelNames: readonly string[]) {
    const get = async () => ({ name, help, type: "counter" as const, aggregator: "sum" as const, values: [...this.counts.values()].map(({ labels, value }) => ({ labels, value })) });
    // the shape Registry takes from any metric (as the snapshot metrics of ce.ts)
    registry.registerMetric({ name, help, type: "counter", labelNames, aggregator: "sum", get, reset: () => this.counts.clear() } as unknown as Metric);
  }

  /** One more event with these label values, in labelNames' order. */
  inc(...values: string[]): void {
    const key = values.join("\0"); // no label value holds NUL: peer names and fixed words
    const c = this.counts.get(key);
    if (c) c.value++;
    else this.counts.set(key, { labels: Object.fromEntries(this.labelNames.map((n, i) => [n, values[i]])), value: 1 });
  }
}
