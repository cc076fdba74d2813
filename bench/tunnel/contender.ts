// What every contender of the tunnel benchmark provides: a way to bring up its
// two endpoints in eA and eB (each pinned to its core, routing 10.1.0.0/24 ⇄
// 10.2.0.0/24 through its tunnel), the pids whose process trees are its CPU
// cost, and a way to take it all down again so the next contender finds the
// lab as it was.
import type { BenchLab } from "./lab.ts";

export interface StartContext {
  lab: BenchLab;
  /** Core of endpoint A (with the iperf3 client) and of endpoint B (with the server). */
  cores: [number, number];
  /** Extra static peers (with one SA pair or one key each) on each endpoint; 0 = none. */
  sas: number;
  /** wesp's node.workers. */
  workers: number;
  /** Progress lines. */
  log: (line: string) => void;
}

export interface Running {
  /** Root pids of endpoint A's and B's process trees; empty when the kernel forwards (bare veth). */
  pids: number[];
  /** What the run should say about this start (e.g. the negotiated cipher). */
  notes: string[];
  /** Control sockets of endpoints A and B whose status the samples record (wesp only; bench/tunnel/endpoint_counters.ts). */
  controlSockets?: string[];
  stop(): Promise<void>;
}

export interface Contender {
  /** e.g. "wesp-aes128gcm"; `--only` takes it or its family. */
  id: string;
  /** e.g. "wesp", "strongswan", "wireguard-go", "openvpn", "nebula", "veth". */
  family: string;
  /** For tables: "wesp AES-128-GCM". */
  label: string;
  /** The data-channel AEAD, in words. */
  cipher: string;
  /** The suite as `--suites` names it, when the contender has a choice. */
  suite?: "aes-128-gcm" | "chacha20-poly1305";
  /** Debian packages it needs, by the command (or file) that shows each is there. */
  needs: { cmd: string; pkg: string }[];
  /** Why `--sas N` does not apply, or undefined when it does. */
  noSas?: string;
  /** A version string for the report. */
  version(): Promise<string>;
  start(ctx: StartContext): Promise<Running>;
}

/** Polls until `check` is truthy or `ms` passes; the error names `what`. */
export async function until<T>(check: () => T | Promise<T>, what: string, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
