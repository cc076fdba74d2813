// `wesp bench [ARGS]`: the core benchmark (bench/core/index.ts) with the same
// arguments, in a child process of its own (it runs at import and owns its
// process: argv, exit code). `wesp bench tunnel` and `wesp bench ike` are the
// end-to-end benchmarks (bench/tunnel/, bench/ike/); `wesp bench controller`
// the controller's scale (bench/controller/).
import { spawnSync } from "node:child_process";
import { EXIT_FAILURE } from "./exit_codes.ts";
import { nodeArgv } from "../util/package_root.ts";

export async function main(args: string[]): Promise<number> {
  if (args[0] === "tunnel") return (await import("./bench_tunnel.ts")).main(args.slice(1));
  if (args[0] === "ike") return (await import("../../bench/ike/index.ts")).main(args.slice(1));
  if (args[0] === "controller") return (await import("../../bench/controller/index.ts")).main(args.slice(1));
  const a = args.map((x) => (x === "-h" ? "--help" : x));
  const [node, ...argv] = nodeArgv("bench/core/index.ts");
  const r = spawnSync(node, [...argv, ...a], { stdio: "inherit" });
  return r.status ?? EXIT_FAILURE;
}
