// What node.workers > 1 asks of a config (docs/config.md node.workers,
// docs/forwarder.md "Workers"). Worker i of N holds its own SA pair of every
// static peer, derived with SPI = configured SPI + i (host/sa/worker_sas.ts),
// and inbound packets are steered to worker SPI mod N by the kernel
// (host/net/steer_linux.ts). So:
//   - every static spi_in and spi_out is a multiple of N (then SPI + i mod N
//     is i, and the N derived SPIs of distinct SAs never collide), and SPI +
//     N − 1 still fits 32 bits;
//   - IKE peers need nothing: IKE makes one CHILD_SA per worker (RFC 9611,
//     host/ike/manager.ts), each on the worker its inbound SPI steers to;
//   - GRE sequence numbers (RFC 2890 §2.2) are refused: one counter per
//     worker would send each number N times.
import type { Config } from "./model.ts";
import type { RawIssue } from "./schema_errors.ts";

const hex = (n: number) => "0x" + (n >>> 0).toString(16).padStart(8, "0");

export function checkWorkers(c: Config, errors: RawIssue[]): void {
  const n = c.node.workers;
  if (n <= 1) return;
  c.peers.forEach((p, i) => {
    if ((p.mode === "gre" || p.mode === "transport-gre") && p.gre.sequence) {
      errors.push({ at: ["peers", i, "gre", "sequence"], message: `node.workers is ${n}: GRE sequence numbers need a single sender (node.workers: 1)` });
    }
    p.sas.forEach((sa, k) => {
      for (const [field, spi] of [["spi_in", sa.spiIn], ["spi_out", sa.spiOut]] as const) {
        if (spi % n !== 0) errors.push({ at: ["peers", i, "sas", k, field], message: `is ${hex(spi)}, not a multiple of node.workers (${n}): worker i uses SPI + i and receives SPI mod ${n} == i` });
        else if (spi + n - 1 > 0xffffffff) errors.push({ at: ["peers", i, "sas", k, field], message: `is ${hex(spi)}: the per-worker SPIs up to SPI + ${n - 1} do not fit 32 bits` });
      }
    });
  });
}
