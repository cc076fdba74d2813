// The built core's raw exports, for what exercises single primitives: the
// primitive tests (test/unit: vectors, cross-checks) and the micro
// benchmarks (bench/core/*_micro.ts). The data plane itself is only driven
// through Core (core.ts); this file is here, not in test/, because it knows
// the WASM exports (host/core is the one module that does) and benchmarks
// must not depend on the test tree.
import { readFileSync } from "node:fs";
import { packagePath } from "../util/package_root.ts";
import { coreFileFromEnv } from "./core_build.ts";

export type Exports = Record<string, any> & { memory: WebAssembly.Memory };

/** The .wasm loadCore loads: $WESP_WASM, else the debug build or the build Core would pick. */
export function coreFile(flavour: "release" | "debug" = "release"): string {
  return flavour === "release" ? coreFileFromEnv() : (process.env.WESP_WASM ?? "build/wesp.debug.wasm");
}

export function loadCore(flavour: "release" | "debug" = "release"): Exports {
  const file = coreFile(flavour);
  const mod = new WebAssembly.Module(readFileSync(file.startsWith("/") ? file : packagePath(file)));
  const inst = new WebAssembly.Instance(mod, {
    env: {
      abort(_msg: number, _file: number, line: number, col: number) {
        throw new Error(`wasm abort at ${line}:${col}`);
      },
      seed: () => Date.now(),
    },
  });
  return inst.exports as Exports;
}

/** A scratch area in wasm memory with byte helpers; allocate once per test file. */
export class Scratch {
  readonly base: number;
  private next: number;
  constructor(readonly ex: Exports, readonly size = 1 << 20) {
    this.base = ex.arenaAlloc(size, 64);
    if (!this.base) throw new Error("wasm arena exhausted");
    this.next = this.base;
  }
  reset(): void { this.next = this.base; }
  /** Copies bytes in (64-byte aligned) and returns their address. */
  put(b: Uint8Array, extra = 0): number {
    const p = this.alloc(b.length + extra);
    this.u8().set(b, p);
    return p;
  }
  alloc(n: number): number {
    const p = this.next;
    this.next = (p + n + 63) & ~63;
    if (this.next > this.base + this.size) throw new Error("scratch full");
    return p;
  }
  get(p: number, n: number): Uint8Array {
    return this.u8().slice(p, p + n);
  }
  u8(): Uint8Array { return new Uint8Array(this.ex.memory.buffer); }
}

export const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ""), "hex"));
export const toHex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
