// The CE's metrics listener: plain HTTP on a TCP address (127.0.0.1:9469 by
// default when configured) or a Unix socket (mode 0600), serving GET /metrics
// and nothing else. Off unless `node.metrics` is configured (docs/metrics.md).
//
// Whatever arrives is hostile: a request line or header the HTTP parser
// refuses is answered 400 and the connection closed (node's `clientError`),
// other paths 404, other methods 405; headers must arrive within 5 s, a whole
// request within 10 s; at most 32 connections at once. A scrape that cannot
// get the status (the worker is gone) is a 503, not a crash.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { lstatSync, unlinkSync } from "node:fs";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { formatEndpoint } from "../config/addr.ts";
import type { MetricsListen } from "../config/model.ts";

export interface MetricsEndpoint {
  /** The exposition text (prom-client's registry.metrics()). */
  scrape(): Promise<string>;
  contentType: string;
  /** Told each answer's status code (for a requests counter). */
  onAnswer?: (code: number) => void;
}

export class MetricsServer {
  private constructor(private readonly server: Server, readonly where: string, private readonly path?: string) {}

  /** Listens on `listen`; rejects with the listen error (EADDRINUSE, EACCES …). */
  static async listen(listen: MetricsListen, ep: MetricsEndpoint): Promise<MetricsServer> {
    const server = createServer({ maxHeaderSize: 8192 }, (req, res) => void answer(req, res, ep));
    server.headersTimeout = 5_000;
    server.requestTimeout = 10_000;
    server.keepAliveTimeout = 5_000;
    server.maxConnections = 32;
    server.on("clientError", (_e: Error, socket: Duplex) => {
      ep.onAnswer?.(400);
      if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      else socket.destroy();
    });
    const bind = () => new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      const done = () => {
        server.off("error", reject);
        resolve();
      };
      if ("path" in listen) server.listen(listen.path, done);
      else server.listen(listen.port, listen.host, done);
    });
    if ("path" in listen) {
      // A socket file left by an earlier run is replaced (it is ours: same path in our config); anything else is refused by bind.
      try {
        if (lstatSync(listen.path).isSocket()) unlinkSync(listen.path);
      } catch {
        /* none */
      }
      // bind(2) creates the file with the umask: 0600 from birth, as the control socket.
      const old = process.umask(0o177);
      try {
        await bind();
      } finally {
        process.umask(old);
      }
    } else {
      await bind();
    }
    server.unref(); // the data plane keeps the process alive, not this listener
    let where: string;
    if ("path" in listen) where = listen.path;
    else {
      const a = server.address() as AddressInfo;
      where = formatEndpoint(a.address, a.port);
    }
    return new MetricsServer(server, where, "path" in listen ? listen.path : undefined);
  }

  /** The TCP port listened on (0 for a Unix socket). */
  get port(): number {
    const a = this.server.address();
    return a && typeof a === "object" ? a.port : 0;
  }

  /** Stops listening, ends open connections, removes a Unix socket file. */
  async close(): Promise<void> {
    await new Promise<void>((r) => {
      this.server.close(() => r());
      this.server.closeAllConnections();
    });
    if (this.path) {
      try {
        unlinkSync(this.path);
      } catch {
        /* already gone */
      }
    }
  }
}

function reply(res: ServerResponse, ep: MetricsEndpoint, code: number, type: string, body: string, extra: Record<string, string> = {}): void {
  ep.onAnswer?.(code);
  if (res.headersSent) return;
  res.writeHead(code, { "content-type": type, "content-length": Buffer.byteLength(body), "cache-control": "no-store", ...extra });
  res.end(res.req.method === "HEAD" ? undefined : body);
}

async function answer(req: IncomingMessage, res: ServerResponse, ep: MetricsEndpoint): Promise<void> {
  req.resume(); // a body, if any, is read and ignored
  const path = (req.url ?? "").split("?")[0];
  if (path !== "/metrics") return reply(res, ep, 404, "text/plain", "not found: GET /metrics\n");
  if (req.method !== "GET" && req.method !== "HEAD") return reply(res, ep, 405, "text/plain", "method not allowed\n", { allow: "GET, HEAD" });
  let text: string;
  try {
    text = await ep.scrape();
  } catch {
    return reply(res, ep, 503, "text/plain", "status unavailable\n");
  }
  reply(res, ep, 200, ep.contentType, text);
}
