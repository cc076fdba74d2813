#!/usr/bin/env node
// `wesp` from the TypeScript sources, for development and the tests: registers
// tsx and runs bin/wesp.ts, so a change under host/ needs no build step. The
// package's own `wesp` is the compiled dist/bin/wesp.js (`npm run build:js`),
// which never loads tsx (docs/cli.md, "Compiled JavaScript").
import { register } from "tsx/esm/api";

register();
await import("./wesp.ts");
