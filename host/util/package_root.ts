// Where the package's files are, whichever way its code runs:
//
//   as TypeScript sources   host/util/package_root.ts        under tsx (the tests, bin/wesp.js)
//   compiled (tsc)          dist/host/util/package_root.js   the package's `wesp` (dist/bin/wesp.js)
//
// Files that are not modules — build/wesp.wasm, the native addon, JSON schemas
// and vectors, bench results, package.json — are not compiled and stay where
// they are in the package, so they are found from its root, never from the
// module that reads them. Modules started on their own (a worker thread's
// entry, a child `node` process) are the running code's own flavour: the
// compiled code starts compiled JavaScript and never loads tsx (docs/cli.md,
// "Compiled JavaScript").
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** True when this is compiled JavaScript under dist/, false when it runs as TypeScript source. */
export const COMPILED = import.meta.url.endsWith(".js");

/** The package root, with a trailing slash (this file is host/util/, or dist/host/util/ compiled). */
export const ROOT_URL = new URL(COMPILED ? "../../../" : "../../", import.meta.url);
export const ROOT = fileURLToPath(ROOT_URL);

/** A file of the package by its path from the root: packagePath("build/wesp.wasm"). */
export function packagePath(...parts: string[]): string {
  return join(ROOT, ...parts);
}

/**
 * A module of the package, named by its source ("host/demo/agent.ts"): that
 * source, or its compiled twin under dist/ ("dist/host/demo/agent.js").
 */
export function modulePath(source: string): string {
  return COMPILED ? packagePath("dist", source.replace(/\.ts$/, ".js")) : packagePath(source);
}

/**
 * `./name.ts` next to the module at `from` (its import.meta.url), in that
 * module's flavour: `./name.js` when `from` is compiled. For specifiers tsc
 * cannot rewrite (rewriteRelativeImportExtensions rewrites string literals only).
 */
export function siblingUrl(spec: string, from: string): URL {
  const url = new URL(spec, from);
  if (from.endsWith(".js")) url.pathname = url.pathname.replace(/\.ts$/, ".js");
  return url;
}

/**
 * The argv of a child `node` process running a module of the package (named
 * by its source, as modulePath): plain node on the compiled module, or node
 * with tsx on the source. `nodeFlags` go before the module (--expose-gc …).
 */
export function nodeArgv(source: string, nodeFlags: string[] = []): string[] {
  return [process.execPath, ...nodeFlags, ...loaderFlags(), modulePath(source)];
}

/** The node flags a child process needs to run the package's modules: none compiled, tsx for sources. */
export function loaderFlags(): string[] {
  return COMPILED ? [] : ["--import", import.meta.resolve("tsx")];
}

/** The argv of `wesp ARGS` as a child process, in the running code's flavour (bin/wesp.ts). */
export function wespArgv(...args: string[]): string[] {
  return [...nodeArgv("bin/wesp.ts"), ...args];
}
