#!/usr/bin/env node
// The `wesp` executable: registers tsx so the TypeScript host runs without a
// build step, then hands over to host/cli/main.ts. Exit codes: docs/cli.md.
import { register } from "tsx/esm/api";

register();
const { run } = await import("../host/cli/main.ts");
const code = await run(process.argv.slice(2));
// Let buffered output to pipes drain before exiting; a command may leave handles open.
await new Promise((resolve) => process.stdout.write("", resolve));
await new Promise((resolve) => process.stderr.write("", resolve));
process.exit(code);
