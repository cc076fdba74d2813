// Drives test/interop/scapy_esp.py: one python process per test file,
// one JSON line per request, answers in request order.
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createInterface } from "node:readline";
import { appendFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { toHex } from "../../host/core/raw_exports.ts";
import type { RefSuite } from "./ref_esp.ts";
export { addrText } from "./ref_esp.ts";

const BRIDGE = fileURLToPath(new URL("../interop/scapy_esp.py", import.meta.url));
export const PYTHON = "/usr/bin/python3";

export interface ScapySa {
  suite: RefSuite;
  spi: number;
  key: Uint8Array;
  salt?: Uint8Array;
  authKey?: Uint8Array;
  /** high 32 bits of the sequence number when ESN is on; undefined without ESN */
  esnHi?: number;
}

export interface ScapyOuter { src: string; dst: string; ttl?: number; tos?: number; id?: number; df?: boolean; fl?: number }
export interface ScapyUdp { sport: number; dport: number }

export type ScapyAnswer = { ok: true; [k: string]: unknown } | { ok: false; error: string; message: string };

export class ScapyEsp {
  private readonly proc: ChildProcessWithoutNullStreams;
  private readonly waiting: ((a: ScapyAnswer) => void)[] = [];
  private stderr = "";

  constructor() {
    this.proc = spawn(PYTHON, ["-u", BRIDGE], { stdio: ["pipe", "pipe", "pipe"] });
    this.proc.stderr.on("data", (d) => { this.stderr += d; });
    createInterface({ input: this.proc.stdout }).on("line", (line) => {
      const w = this.waiting.shift();
      if (w) w(JSON.parse(line) as ScapyAnswer);
    });
    this.proc.on("exit", (code) => {
      for (const w of this.waiting.splice(0)) w({ ok: false, error: "exit", message: `bridge exited ${code}: ${this.stderr}` });
    });
  }

  request(r: Record<string, unknown>): Promise<ScapyAnswer> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      if (process.env.WESP_SCAPY_LOG) appendFileSync(process.env.WESP_SCAPY_LOG, JSON.stringify(r) + "\n");
      this.proc.stdin.write(JSON.stringify(r) + "\n");
    });
  }

  private base(sa: ScapySa, seqLo: number, mode: string) {
    return {
      suite: sa.suite, spi: sa.spi >>> 0, seq: seqLo >>> 0, esn_hi: sa.esnHi ?? null,
      key: toHex(sa.key), salt: sa.salt ? toHex(sa.salt) : null, auth_key: sa.authKey ? toHex(sa.authKey) : null, mode,
    };
  }

  /** Seals an opaque payload: returns SPI || seq || IV || ciphertext || ICV. */
  async sealPayload(sa: ScapySa, seqLo: number, iv: Uint8Array, payload: Uint8Array, nh: number): Promise<Uint8Array> {
    const a = await this.request({ op: "seal", ...this.base(sa, seqLo, "payload"), iv: toHex(iv), payload: toHex(payload), nh });
    return bytes(a, "esp");
  }

  /** Opens an ESP packet (SPI..ICV); integrity failure → { ok: false, error: "integrity" }. */
  openPayload(sa: ScapySa, esp: Uint8Array): Promise<ScapyAnswer> {
    return this.request({ op: "open", ...this.base(sa, 0, "payload"), esp: toHex(esp) });
  }

  /** Tunnel mode: outer [/ UDP] / ESP(inner). */
  async sealTunnel(sa: ScapySa, seqLo: number, iv: Uint8Array, outer: ScapyOuter, inner: Uint8Array, udp?: ScapyUdp): Promise<Uint8Array> {
    const a = await this.request({ op: "seal", ...this.base(sa, seqLo, "tunnel"), iv: toHex(iv), outer, udp: udp ?? null, packet: toHex(inner) });
    return bytes(a, "packet");
  }

  /** Transport mode: ESP goes after the IP header of `packet`, which stays. */
  async sealTransport(sa: ScapySa, seqLo: number, iv: Uint8Array, packet: Uint8Array, udp?: ScapyUdp): Promise<Uint8Array> {
    const a = await this.request({ op: "seal", ...this.base(sa, seqLo, "transport"), iv: toHex(iv), udp: udp ?? null, packet: toHex(packet) });
    return bytes(a, "packet");
  }

  /** Opens a whole packet: tunnel → the inner packet; transport → the packet with ESP taken out. */
  open(sa: ScapySa, mode: "tunnel" | "transport", packet: Uint8Array): Promise<ScapyAnswer> {
    return this.request({ op: "open", ...this.base(sa, 0, mode), packet: toHex(packet) });
  }

  close(): void {
    this.proc.stdin.end();
  }
}

export function bytes(a: ScapyAnswer, field: string): Uint8Array {
  if (!a.ok) throw new Error(`scapy: ${a.error}: ${a.message}`);
  return Uint8Array.from(Buffer.from(a[field] as string, "hex"));
}
