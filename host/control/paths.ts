// Where control sockets live by default: the rule of docs/config.md
// (`control.socket`), mirrored from host/config/normalize.ts so that
// `wesp status` without arguments can find a running instance.
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";

export function defaultControlDir(env: NodeJS.ProcessEnv = process.env, uid = process.getuid?.() ?? 0): string {
  if (uid === 0) return "/run/wesp";
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, "wesp");
  return `/tmp/wesp-${uid}`;
}

/** The `*.sock` files in the default directory. */
export function defaultSockets(dir = defaultControlDir()): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((n) => n.endsWith(".sock")).sort().map((n) => join(dir, n));
}
