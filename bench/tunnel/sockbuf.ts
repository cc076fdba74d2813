// The UDP workloads ask iperf3 for 4 MiB socket buffers (workload.ts). Linux
// caps SO_RCVBUF/SO_SNDBUF at net.core.rmem_max/wmem_max, which are global
// (a namespace reads but cannot set them) and 208 KiB on a stock Debian, where
// iperf3 would get a smaller buffer than asked and fail or the sink would
// drop. The bench raises a lower ceiling for its run and puts it back after.
import { readFileSync, writeFileSync } from "node:fs";

const KEYS = ["rmem_max", "wmem_max"] as const;

/** Raises net.core.{rmem,wmem}_max to at least `bytes`; returns the undo. */
export function raiseSocketBufferCeiling(bytes: number, say: (s: string) => void): () => void {
  const undo: Array<() => void> = [];
  for (const k of KEYS) {
    const path = `/proc/sys/net/core/${k}`;
    const old = Number(readFileSync(path, "utf8").trim());
    if (!(old < bytes)) continue;
    writeFileSync(path, String(bytes));
    say(`net.core.${k} ${old} → ${bytes} for the UDP workloads' socket buffers (restored at the end)`);
    undo.push(() => writeFileSync(path, String(old)));
  }
  return () => {
    for (const u of undo) {
      try {
        u();
      } catch {
        // The value stays raised; nothing else depends on it.
      }
    }
  };
}
