// A child process of the controller benchmark: a swarm of lightweight CEs,
// each one mTLS connection holding the push channel (GET /v1/ce/events) with
// its own client certificate — no agent, no data plane, no config pulls.
// Driven over IPC by bench/controller/index.ts:
//   ← {ces: [{cert, key}], url, ca, concurrency}   open them all
//   → {type: "ready", open, failed, seconds}       every channel said hello
//   ← {type: "arm"} → {type: "armed"}             forget what was heard
//   → {type: "heard", at: number[], missing}       wall-clock ms (timeOrigin + now) of
//                                                  each channel's first "change" after arm
import { connect, type TLSSocket } from "node:tls";

interface Start {
  ces: { cert: string; key: string }[];
  url: string;
  ca: string;
  concurrency: number;
  timeoutMs: number;
}

interface Channel {
  sock: TLSSocket;
  tail: string;
  hello: boolean;
  heardAt: number;
}

const channels: Channel[] = [];
let armed = false;
let waiting: ((c: Channel) => void) | undefined;

function now(): number {
  return performance.timeOrigin + performance.now();
}

/** One push channel; resolves once the server's "hello" arrived, rejects on a refusal or error. */
function open(s: Start, ce: { cert: string; key: string }): Promise<Channel> {
  const u = new URL(s.url);
  return new Promise((resolve, reject) => {
    const sock = connect({ host: u.hostname, port: Number(u.port), ca: s.ca, cert: ce.cert, key: ce.key });
    const c: Channel = { sock, tail: "", hello: false, heardAt: 0 };
    sock.setEncoding("utf8");
    sock.on("secureConnect", () => sock.write(`GET /v1/ce/events HTTP/1.1\r\nhost: ${u.host}\r\naccept: text/event-stream\r\n\r\n`));
    sock.on("data", (d: string) => {
      c.tail = (c.tail + d).slice(-512);
      if (!c.hello && c.tail.includes("event: hello")) {
        c.hello = true;
        c.tail = "";
        resolve(c);
      } else if (!c.hello && /^HTTP\/1\.1 [45]/.test(c.tail)) {
        reject(new Error(c.tail.split("\r\n")[0]));
      }
      if (armed && c.heardAt === 0 && c.tail.includes("event: change")) {
        c.heardAt = now();
        waiting?.(c);
      }
    });
    sock.on("error", (e) => (c.hello ? undefined : reject(e)));
    sock.setTimeout(s.timeoutMs, () => (c.hello ? undefined : sock.destroy(new Error("no hello in time"))));
  });
}

async function start(s: Start): Promise<void> {
  const t0 = performance.now();
  let next = 0;
  let failed = 0;
  let firstError = "";
  const worker = async () => {
    while (next < s.ces.length) {
      const ce = s.ces[next++];
      try {
        const c = await open(s, ce);
        c.sock.setTimeout(0);
        channels.push(c);
      } catch (e) {
        failed++;
        firstError ||= (e as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: s.concurrency }, worker));
  process.send!({ type: "ready", open: channels.length, failed, firstError, seconds: (performance.now() - t0) / 1000 });
}

function arm(timeoutMs: number): void {
  for (const c of channels) (c.heardAt = 0), (c.tail = "");
  armed = true;
  let left = channels.length;
  const report = () => {
    waiting = undefined;
    clearTimeout(timer);
    const at = channels.filter((c) => c.heardAt > 0).map((c) => c.heardAt);
    process.send!({ type: "heard", at, missing: channels.length - at.length });
  };
  const timer = setTimeout(report, timeoutMs);
  waiting = () => {
    if (--left === 0) report();
  };
  if (left === 0) report();
}

process.on("message", (m: { type?: string } & Partial<Start>) => {
  if (m.type === "start") void start(m as Start);
  else if (m.type === "arm") {
    arm((m as { timeoutMs: number }).timeoutMs);
    process.send!({ type: "armed" });
  }
  else if (m.type === "stop") {
    for (const c of channels) c.sock.destroy();
    process.exit(0);
  }
});
