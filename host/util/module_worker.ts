// A worker thread running one of the package's modules, in the flavour of the
// module that starts it (util/package_root.ts): compiled JavaScript is started
// as it is; a TypeScript entry gets tsx registered first, because Node 20 does
// not apply `--import tsx` to a .ts worker entry (docs/io.md).
import { Worker, type WorkerOptions } from "node:worker_threads";

/** Starts `entry` (from siblingUrl: a .js file when the caller is compiled, else its .ts source). */
export function moduleWorker(entry: URL, options: WorkerOptions): Worker {
  if (!entry.pathname.endsWith(".ts")) return new Worker(entry, options);
  const tsx = import.meta.resolve("tsx/esm/api");
  const src = `import(${JSON.stringify(tsx)}).then((t) => { t.register(); return import(${JSON.stringify(entry.href)}); })`;
  return new Worker(src, { ...options, eval: true });
}
