// The CE's HTTPS client of its controller (host/controller/api/ce_api.ts):
// JSON requests and the server-sent-events push channel, over TLS that
// trusts only the controller's CA (pinned at enrolment) and, once enrolled,
// presents the CE's certificate (mutual TLS). Answers are bounded in size;
// anything else the controller sends is refused as a ControllerError.
import { request, type RequestOptions } from "node:https";
import type { IncomingMessage } from "node:http";

/** Largest JSON answer read (a CE config with hundreds of peers fits easily). */
export const MAX_ANSWER = 8 * 1024 * 1024;
/** Largest SSE event kept before its end (our events are tens of bytes). */
const MAX_EVENT = 64 * 1024;

/** The controller refused (status ≥ 400, with its error code) or answered something unreadable (status 0). */
export class ControllerError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
    this.name = "ControllerError";
  }
}

/** A request that got no answer in time: a network error like ECONNREFUSED, retried as one. */
function timeout(origin: string, ms: number): Error {
  return Object.assign(new Error(`no answer from ${origin} within ${ms} ms`), { code: "ETIMEDOUT" });
}

export interface Credentials {
  /** PEM of the CA to trust; absent only to fetch the CA itself (checked against its pinned fingerprint). */
  ca?: string;
  /** Client certificate and key (PEM), once enrolled. */
  cert?: string;
  key?: string;
}

export interface SseEvent {
  event: string;
  data: string;
}

export class CeClient {
  constructor(readonly url: string, private readonly creds: Credentials, private readonly timeoutMs = 10_000) {}

  private options(method: string, body?: string): RequestOptions {
    return {
      method,
      ...(this.creds.ca ? { ca: this.creds.ca } : { rejectUnauthorized: false }),
      ...(this.creds.cert && this.creds.key ? { cert: this.creds.cert, key: this.creds.key } : {}),
      // No session reuse across credentials: a renewed certificate starts a fresh handshake.
      agent: false,
      headers: {
        accept: "application/json",
        ...(body !== undefined ? { "content-type": "application/json", "content-length": Buffer.byteLength(body) } : {}),
      },
    };
  }

  /** One JSON request; rejects with ControllerError on a refusal, or the socket's error. */
  call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const url = new URL(path, this.url);
    return new Promise<T>((resolve, reject) => {
      const req = request(url, this.options(method, text), (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          if ((size += c.length) > MAX_ANSWER) req.destroy(new ControllerError(0, "too-large", `the controller's answer is over ${MAX_ANSWER} bytes`));
          else chunks.push(c);
        });
        res.on("error", reject);
        res.on("end", () => {
          let parsed: unknown;
          try {
            parsed = JSON.parse(Buffer.concat(chunks).toString("utf8") || "null");
          } catch {
            return reject(new ControllerError(0, "bad-response", `the controller answered ${res.statusCode} with a body that is not JSON`));
          }
          const status = res.statusCode ?? 0;
          if (status >= 400) {
            const e = (parsed as { error?: { code?: unknown; message?: unknown } } | null)?.error;
            const code = typeof e?.code === "string" ? e.code.slice(0, 64) : "error";
            const message = typeof e?.message === "string" ? e.message.slice(0, 300) : `HTTP ${status}`;
            return reject(new ControllerError(status, code, `${message} (HTTP ${status})`));
          }
          resolve(parsed as T);
        });
      });
      req.setTimeout(this.timeoutMs, () => req.destroy(timeout(url.origin, this.timeoutMs)));
      req.on("error", reject);
      req.end(text);
    });
  }

  /**
   * Opens the push channel (GET `path`, text/event-stream) and calls `onEvent`
   * for each event. Resolves once connected (to a handle that closes it);
   * `onEnd` hears when the stream ends, with the reason. A stream silent for
   * `idleMs` is taken as dead (the server sends a keepalive every 15 s).
   */
  events(path: string, onEvent: (e: SseEvent) => void, onEnd: (why: Error) => void, idleMs: number): Promise<{ close(): void }> {
    const url = new URL(path, this.url);
    return new Promise((resolve, reject) => {
      const opts = this.options("GET");
      opts.headers = { accept: "text/event-stream" };
      const req = request(url, opts, (res: IncomingMessage) => {
        if ((res.statusCode ?? 0) >= 400 || !String(res.headers["content-type"] ?? "").startsWith("text/event-stream")) {
          // A refusal carries a JSON error: read it through the same path as call().
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.length < 64 && chunks.push(c));
          res.on("end", () => {
            let e: { code?: unknown; message?: unknown } | undefined;
            try {
              e = (JSON.parse(Buffer.concat(chunks).toString("utf8")) as { error?: typeof e }).error;
            } catch { /* not JSON */ }
            const code = typeof e?.code === "string" ? e.code.slice(0, 64) : "error";
            reject(new ControllerError(res.statusCode ?? 0, code, `${typeof e?.message === "string" ? e.message.slice(0, 300) : "push channel refused"} (HTTP ${res.statusCode})`));
          });
          return;
        }
        let buf = "";
        let ended = false;
        const end = (why: Error) => {
          if (ended) return;
          ended = true;
          req.destroy();
          onEnd(why);
        };
        req.setTimeout(idleMs, () => end(new Error(`push channel silent for ${idleMs} ms`)));
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          buf += chunk;
          // Events end with a blank line (HTML Living Standard, "server-sent events", §9.2.6).
          for (let i = buf.indexOf("\n\n"); i >= 0; i = buf.indexOf("\n\n")) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const ev: SseEvent = { event: "message", data: "" };
            for (const line of block.split("\n")) {
              if (line.startsWith("event: ")) ev.event = line.slice(7);
              else if (line.startsWith("data: ")) ev.data += line.slice(6);
            }
            if (!block.startsWith(":")) onEvent(ev);
          }
          if (buf.length > MAX_EVENT) end(new Error("push channel: an event over 64 KiB"));
        });
        res.on("end", () => end(new Error("push channel closed by the controller")));
        res.on("error", (e) => end(e));
        resolve({ close: () => { ended = true; req.destroy(); } });
      });
      req.setTimeout(this.timeoutMs, () => req.destroy(timeout(url.origin, this.timeoutMs)));
      req.on("error", reject);
      req.end();
    });
  }
}
