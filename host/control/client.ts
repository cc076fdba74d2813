// Client side of the control socket (server.ts): one request, one JSON answer.
import { createConnection } from "node:net";
import type { ControlCommand, ReloadResult } from "./protocol.ts";
import type { Status } from "./status.ts";

/** No instance answers on the socket (missing file, nobody listening). */
export class NotRunningError extends Error {
  constructor(readonly path: string, readonly code: string) {
    super(`no running wesp on ${path} (${code})`);
    this.name = "NotRunningError";
  }
}

/** Asks the instance at `path` for its status. Rejects with NotRunningError or Error. */
export function requestStatus(path: string, timeoutMs = 5000): Promise<Status> {
  return request(path, "status", timeoutMs) as Promise<Status>;
}

/** Asks the instance at `path` to reload its config file (what `wesp reload` and SIGHUP do). */
export function requestReload(path: string, timeoutMs = 120_000): Promise<ReloadResult> {
  return request(path, "reload", timeoutMs) as Promise<ReloadResult>;
}

function request(path: string, cmd: ControlCommand, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const c = createConnection(path);
    let buf = "";
    const timer = setTimeout(() => {
      c.destroy();
      reject(new Error(`no answer on ${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    c.setEncoding("utf8");
    c.once("connect", () => c.write(JSON.stringify({ cmd }) + "\n"));
    c.on("data", (d: string) => (buf += d));
    c.once("end", () => {
      clearTimeout(timer);
      try {
        const a = JSON.parse(buf);
        if (a.ok) resolve(cmd === "status" ? a.status : a.result);
        else reject(new Error(a.error ?? "the instance refused the request"));
      } catch {
        reject(new Error(`unreadable answer on ${path}`));
      }
    });
    c.once("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const code = e.code ?? "error";
      if (code === "ENOENT" || code === "ECONNREFUSED" || code === "ENOTSOCK") reject(new NotRunningError(path, code));
      else reject(e);
    });
  });
}
