// Where a metrics listener binds, from text: "HOST:PORT", "[IPv6]:PORT", or a
// Unix socket path (anything with a "/"). Shared by the CE's
// `node.metrics.listen` (normalize.ts) and `wesp controller --metrics`.
import { isAbsolute, resolve } from "node:path";
import { isIP } from "node:net";
import type { MetricsListen } from "./model.ts";

/** The CE's default when `node.metrics` is present without `listen`: loopback only. */
export const DEFAULT_METRICS_LISTEN = "127.0.0.1:9469";

/** The listen address, or a message saying what is wrong (never quoting the text). */
export function parseListen(text: string, baseDir: string): MetricsListen | string {
  if (text.includes("/")) {
    const path = isAbsolute(text) ? text : resolve(baseDir, text);
    // sockaddr_un.sun_path is 108 bytes including the terminating NUL (unix(7)).
    if (Buffer.byteLength(path) > 107) return `socket path is ${Buffer.byteLength(path)} bytes; Unix sockets allow at most 107`;
    return { path };
  }
  const m = /^(?:\[([^\]]+)\]|([^:\s\[\]]+)):(\d{1,5})$/.exec(text);
  if (!m || Number(m[3]) > 65535 || (m[1] !== undefined && isIP(m[1]) !== 6)) return "expected HOST:PORT, [IPv6]:PORT or a Unix socket path";
  return { host: m[1] ?? m[2], port: Number(m[3]) };
}
