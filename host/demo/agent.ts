// The traffic agent: one runs inside each site's LAN host namespace and does
// what the demo asks of that host, one JSON request per stdin line, one JSON
// answer per stdout line (same `id`):
//
//   {"id":1,"op":"ping","dst":"10.2.0.2","count":3,"waitMs":2000}
//     → {"id":1,"sent":3,"received":3}
//   {"id":2,"op":"listen","addr":"10.1.0.2","port":5001}
//     → {"id":2,"listening":true}      serves until the agent ends
//   {"id":3,"op":"send","dst":"10.1.0.2","port":5001,"bytes":1048576}
//     → {"id":3,"sent":1048576,"sha256":"…","far":{"bytes":1048576,"sha256":"…"}}
//
// ping: ICMP / ICMPv6 echo (RFC 792, RFC 4443 §4.1) over a raw socket (the
// `raw-socket` package), counting replies that carry our identifier, sequence
// number and payload. send/listen: a TCP transfer of random bytes; the far end
// hashes what it received (SHA-256) and answers with the count and hash, so
// the sender can tell every byte arrived unchanged.
import { createHash, randomBytes } from "node:crypto";
import { createServer, connect, type Socket as TcpSocket } from "node:net";
import { createRequire } from "node:module";
import { createInterface } from "node:readline";

// raw-socket is CommonJS without type declarations: the part of it used here.
interface RawSocket {
  on(ev: "message", cb: (buf: Buffer, from: string) => void): void;
  on(ev: "error", cb: (e: Error) => void): void;
  send(buf: Buffer, off: number, len: number, addr: string, before: null, after: (err: Error | null) => void): void;
  close(): void;
}
interface RawSocketModule {
  AddressFamily: { IPv4: number; IPv6: number };
  Protocol: { ICMP: number; ICMPv6: number };
  createSocket(o: { addressFamily: number; protocol: number }): RawSocket;
  createChecksum(b: Buffer): number;
  writeChecksum(b: Buffer, off: number, sum: number): void;
}
const raw = createRequire(import.meta.url)("raw-socket") as RawSocketModule;

type Request =
  | { id: number; op: "ping"; dst: string; count: number; waitMs: number }
  | { id: number; op: "listen"; addr: string; port: number }
  | { id: number; op: "send"; dst: string; port: number; bytes: number };

const reply = (o: object) => process.stdout.write(JSON.stringify(o) + "\n");

function ping(dst: string, count: number, waitMs: number): Promise<{ sent: number; received: number }> {
  const v6 = dst.includes(":");
  const sock = raw.createSocket({
    addressFamily: v6 ? raw.AddressFamily.IPv6 : raw.AddressFamily.IPv4,
    protocol: v6 ? raw.Protocol.ICMPv6 : raw.Protocol.ICMP,
  });
  const [request, answer] = v6 ? [128, 129] : [8, 0];
  const ident = process.pid & 0xffff;
  const payload = (seq: number) => Buffer.from(`wesp-demo ping ${seq} `.repeat(4));
  let received = 0;
  let waiting: { seq: number; done: () => void } | null = null;
  sock.on("message", (buf: Buffer) => {
    // IPv4 raw sockets deliver the IP header too; IPv6 ones do not (RFC 3542 §3).
    const off = v6 ? 0 : (buf[0] & 15) * 4;
    if (!waiting || buf.length < off + 8) return;
    const icmp = buf.subarray(off);
    const seq = icmp.readUInt16BE(6);
    if (icmp[0] === answer && icmp.readUInt16BE(4) === ident && seq === waiting.seq && icmp.subarray(8).equals(payload(seq))) {
      received++;
      waiting.done();
    }
  });
  sock.on("error", () => {});
  const one = (seq: number) =>
    new Promise<void>((resolve) => {
      const body = payload(seq);
      const pkt = Buffer.alloc(8 + body.length);
      pkt[0] = request;
      pkt.writeUInt16BE(ident, 4);
      pkt.writeUInt16BE(seq, 6);
      body.copy(pkt, 8);
      // The kernel sums ICMPv6 itself (it needs the pseudo-header, RFC 4443 §2.3).
      if (!v6) raw.writeChecksum(pkt, 2, raw.createChecksum(pkt));
      const t = setTimeout(() => finish(), waitMs);
      const finish = () => {
        clearTimeout(t);
        waiting = null;
        resolve();
      };
      waiting = { seq, done: finish };
      sock.send(pkt, 0, pkt.length, dst, null, (err: Error | null) => err && finish());
    });
  return (async () => {
    for (let seq = 1; seq <= count; seq++) await one(seq);
    sock.close();
    return { sent: count, received };
  })();
}

const servers: ReturnType<typeof createServer>[] = [];

function listen(addr: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const srv = createServer((c: TcpSocket) => {
      const h = createHash("sha256");
      let bytes = 0;
      c.on("data", (d: Buffer) => {
        h.update(d);
        bytes += d.length;
      });
      c.on("end", () => c.end(JSON.stringify({ bytes, sha256: h.digest("hex") })));
      c.on("error", () => c.destroy());
    });
    srv.once("error", reject);
    srv.listen(port, addr, () => resolve());
    servers.push(srv);
  });
}

function send(dst: string, port: number, n: number): Promise<object> {
  const data = randomBytes(n);
  const sha256 = createHash("sha256").update(data).digest("hex");
  return new Promise((resolve) => {
    const back: Buffer[] = [];
    const c = connect({ host: dst, port }, () => c.end(data));
    c.setTimeout(30_000, () => c.destroy(new Error("no progress for 30 s")));
    c.on("data", (d: Buffer) => back.push(d));
    c.on("end", () => {
      try {
        resolve({ sent: n, sha256, far: JSON.parse(Buffer.concat(back).toString()) });
      } catch {
        resolve({ sent: n, sha256, error: "far end sent no result" });
      }
    });
    c.on("error", (e) => resolve({ sent: n, sha256, error: e.message }));
  });
}

async function handle(r: Request): Promise<object> {
  switch (r.op) {
    case "ping":
      return ping(r.dst, r.count, r.waitMs);
    case "listen":
      await listen(r.addr, r.port);
      return { listening: true };
    case "send":
      return send(r.dst, r.port, r.bytes);
  }
}

const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  let r: Request;
  try {
    r = JSON.parse(line);
  } catch {
    return reply({ id: -1, error: "bad request" });
  }
  handle(r).then(
    (o) => reply({ id: r.id, ...o }),
    (e) => reply({ id: r.id, error: (e as Error).message }),
  );
});
// The demo closing our stdin (or dying) ends the agent.
rl.on("close", () => {
  for (const s of servers) s.close();
  process.exit(0);
});
reply({ id: 0, ready: true });
