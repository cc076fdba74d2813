// The local control socket: a Unix stream socket at the config's
// `control.socket` path, mode 0600 in a directory of mode 0700 when we make
// it, so only the owner of the running instance reads its status (the
// counters say who talks to whom). A directory that already exists must be
// safe (controlDir): another user can make /tmp/wesp-UID first.
//
// Protocol: one request per connection. The client writes one JSON line,
// `{"cmd":"status"}` or `{"cmd":"reload"}`; the server answers one JSON line and
// closes: `{"ok":true,"status":{…}}` / `{"ok":true,"result":{…}}` or
// `{"ok":false,"error":"…"}` (the result's shape: protocol.ts). The status is
// counters and identities only (host/control/status.ts): no key material
// ever reaches this module.
import { createServer, createConnection, type Server, type Socket } from "node:net";
import { closeSync, constants, fchmodSync, fstatSync, lstatSync, mkdirSync, openSync, unlinkSync } from "node:fs";
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
    controlDir(dirname(path));
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
    // No chmod by path (it would follow a symlink): the umask above made it 0600; check that it did.
    const st = lstatSync(path);
    if (!st.isSocket() || (st.mode & 0o077) !== 0) {
      await new Promise<void>((r) => server.close(() => r()));
      throw unsafe(`${path} is not a socket of mode 0600 after bind (mode 0${(st.mode & 0o7777).toString(8)})`);
    }
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

/** `code` of the errors `controlDir` throws. */
export const UNSAFE_DIR = "WESP_UNSAFE_DIR";

function unsafe(message: string): Error {
  return Object.assign(new Error(message), { code: UNSAFE_DIR });
}

/**
 * Makes or checks the control socket's directory. The rule:
 * - missing: made with mode 0700 (missing parents too), and used;
 * - existing: it must be a directory itself — a symbolic link is refused,
 *   never followed — owned by `uid` (our effective uid) or by root, and not
 *   writable by group or others (mode & 022 = 0; read/search bits are
 *   allowed, the socket itself is 0600). Anyone else who can write in it could
 *   replace our socket with their own, or with a link for us to act on.
 * The owner and mode are read with fstat on a descriptor opened with
 * O_DIRECTORY | O_NOFOLLOW, so what is checked is what was opened, never a
 * link's target. Nothing is chmod'ed but a directory made here, through that
 * descriptor (fchmod, in case the umask took owner bits away). Throws an
 * Error with code UNSAFE_DIR naming the directory and what is wrong.
 */
export function controlDir(dir: string, uid = process.geteuid?.() ?? 0): void {
  let made: string | undefined;
  try {
    made = mkdirSync(dir, { recursive: true, mode: 0o700 }); // the first directory it made, if any
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e; // a non-directory in the way: lstat says which
  }
  const l = lstatSync(dir);
  if (l.isSymbolicLink()) throw unsafe(`${dir} is a symbolic link: the control socket's directory must be a real directory`);
  if (!l.isDirectory()) throw unsafe(`${dir} is not a directory`);
  let fd: number;
  try {
    fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ELOOP" || code === "ENOTDIR") throw unsafe(`${dir} was replaced while being checked (${code})`);
    throw e;
  }
  try {
    const st = fstatSync(fd);
    const mode = `mode 0${(st.mode & 0o7777).toString(8)}`;
    if (st.uid !== uid && st.uid !== 0) {
      throw unsafe(`${dir} is owned by uid ${st.uid}, not by us (uid ${uid}) or root: remove it, or set node.control.socket elsewhere`);
    }
    if (made !== undefined) {
      // recursive mkdir made `dir` itself (and perhaps parents): ours, mode 0700 less the umask
      if ((st.mode & 0o7777) !== 0o700) fchmodSync(fd, 0o700);
    } else if ((st.mode & 0o022) !== 0) {
      throw unsafe(`${dir} is writable by group or others (${mode}): chmod go-w it, or set node.control.socket elsewhere`);
    }
  } finally {
    closeSync(fd);
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
    if (cmd !== "status" && cmd !== "reload") return reply({ ok: false, error: `unknown command ${JSON.stringify(cmd)}` });
    // A reload reads, checks and applies a whole config: give it longer than a status answer.
    if (cmd === "reload") c.setTimeout(120_000, () => c.destroy());
    handler(cmd).then(
      (result) => reply(cmd === "status" ? { ok: true, status: result } : { ok: true, result }),
      (e) => reply({ ok: false, error: (e as Error).message }),
    );
  });
  c.on("error", () => c.destroy());
}
