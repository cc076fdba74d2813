// The local control socket: a Unix stream socket at the config's
// `control.socket` path, mode 0600 in a directory of mode 0700 when we make
// it, so only the owner of the running instance reads its status (the
// counters say who talks to whom).
//
// Protocol: one request per connection. The client writes one JSON line,
// `{"cmd":"status"}`; the server answers one JSON line and closes:
// `{"ok":true,"status":{…}}` or `{"ok":false,"error":"…"}`. The status is
// counters and identities only (host/pipeline/status.ts): no key material
// ever reaches this module.
import { createServer, createConnection, type Server, type Socket } from "node:net";
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";

export type Handler = (cmd: string) => Promise<unknown>;

/** Longest request line we read; anything longer is refused. */
const MAX_REQUEST = 4096;

export class ControlServer {
  private constructor(readonly path: string, private readonly server: Server) {}

  /**
   * Listens on `path`. A stale socket file (nobody answering) is replaced;
   * a live one means another instance runs there: refused with EADDRINUSE.
   */
  static async listen(path: string, handler: Handler): Promise<ControlServer> {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    if (existsAsSocket(path)) {
      if (await answers(path)) throw Object.assign(new Error(`another instance is running on ${path}`), { code: "EADDRINUSE" });
      unlinkSync(path);
    }
    const server = createServer((c) => serve(c, handler));
    // The socket file is created by bind(2) with the process umask: make it 0600 from birth.
    const old = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(path, () => {
          server.off("error", reject);
          resolve();
        });
      });
    } finally {
      process.umask(old);
    }
    chmodSync(path, 0o600);
    server.unref(); // the data plane, not the control socket, keeps the process alive
    return new ControlServer(path, server);
  }

  /** Stops listening and removes the socket file. */
  async close(): Promise<void> {
    await new Promise<void>((r) => this.server.close(() => r()));
    try {
      unlinkSync(this.path);
    } catch {
      /* already gone */
    }
  }
}

function existsAsSocket(path: string): boolean {
  try {
    const st = lstatSync(path);
    if (!st.isSocket()) throw Object.assign(new Error(`${path} exists and is not a socket`), { code: "EEXIST" });
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw e;
  }
}

function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection(path);
    c.once("connect", () => {
      c.destroy();
      resolve(true);
    });
    c.once("error", () => resolve(false));
  });
}

function serve(c: Socket, handler: Handler): void {
  let buf = "";
  c.setEncoding("utf8");
  c.setTimeout(5000, () => c.destroy());
  const reply = (o: unknown) => c.end(JSON.stringify(o) + "\n");
  c.on("data", (d: string) => {
    buf += d;
    if (buf.length > MAX_REQUEST) return reply({ ok: false, error: "request too long" });
    const nl = buf.indexOf("\n");
    if (nl < 0) return;
    c.removeAllListeners("data");
    let cmd: unknown;
    try {
      cmd = JSON.parse(buf.slice(0, nl)).cmd;
    } catch {
      return reply({ ok: false, error: "request is not JSON" });
    }
    if (cmd !== "status") return reply({ ok: false, error: `unknown command ${JSON.stringify(cmd)}` });
    handler(cmd).then(
      (status) => reply({ ok: true, status }),
      (e) => reply({ ok: false, error: (e as Error).message }),
    );
  });
  c.on("error", () => c.destroy());
}
