#!/usr/bin/env node
// The `wesp` executable. Compiled by `npm run build:js` to dist/bin/wesp.js,
// the package's bin, which runs the compiled host (dist/host/) with plain node;
// bin/wesp.js runs this same file from the TypeScript sources through tsx.
// Exit codes: docs/cli.md.
import { enableRelaxedSimd } from "../host/core/core_build.ts";

// Before anything can compile WASM: on Node 20 relaxed SIMD, which the faster
// core build needs, is behind a V8 flag that only counts if set before the
// first compile (host/core/core_build.ts; WESP_RELAXED_SIMD=0 leaves it off).
// Hence the CLI is imported only after it.
enableRelaxedSimd();

// A reader that went away (`wesp selftest | head -1`, a log pipe whose reader
// died) makes the next write fail with EPIPE. Unhandled, that error ends the
// process, which for `wesp up` would stop forwarding over a log line; the
// output is simply dropped instead. Other write errors still surface.
for (const s of [process.stdout, process.stderr]) {
  s.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code !== "EPIPE" && e.code !== "ERR_STREAM_DESTROYED") throw e;
  });
}
const { run } = await import("../host/cli/main.ts");

const code = await run(process.argv.slice(2));
// Let buffered output to pipes drain before exiting; a command may leave handles open.
await new Promise((resolve) => process.stdout.write("", resolve));
await new Promise((resolve) => process.stderr.write("", resolve));
process.exit(code);
