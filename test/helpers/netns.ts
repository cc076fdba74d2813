// Network namespaces for end-to-end and interop tests: the lab of host/lab/
// (namespaces, veths, processes, teardown on failure, signals and exit), named
// for tests, with the probes only tests use.
//
// A test's `Lab` names its namespaces `wesp-t-<pid>-<n>-<label>` (`ownerTag`),
// so leftovers can be traced to the test process that made them and
// `sweepStale` removes those of dead ones. Mounts are made only inside private
// mount namespaces (`unshare -m`) that die with their process.
import { Lab as HostLab } from "../../host/lab/lab.ts";
import { Netns as HostNetns } from "../../host/lab/namespace.ts";
import { ownerTag, sweepStale as sweepStaleOf } from "../../host/lab/leftovers.ts";
import { waitFor } from "../../host/util/proc.ts";

/** Namespace name prefix; WESP_NS_PREFIX gives each of several concurrent runners its own. */
export const NS_PREFIX = process.env.WESP_NS_PREFIX ?? "wesp-t-";

export { exec, run, waitFor, type ExecOptions, type ExecResult } from "../../host/util/proc.ts";
export { LabProcess } from "../../host/lab/process.ts";
export { canUseNetns } from "../../host/lab/namespace.ts";

/** A lab namespace with the tests' probes: one hand-made UDP datagram, ICMP echo. */
export class Netns extends HostNetns {
  /** Sends one UDP datagram from src:sport (which may be in use) to dst:dport. */
  async sendUdp(src: string, sport: number, dst: string, dport: number, payload: Uint8Array): Promise<void> {
    await this.run(["/usr/bin/python3", "-c", SEND_UDP_PY, src, String(sport), dst, String(dport)], {
      input: Buffer.from(payload).toString("hex"),
    });
  }
  /**
   * ICMP echo with a stdlib-only Python raw socket (the image has no `ping`).
   * Counts replies that carry our identifier, sequence and payload.
   */
  // Each echo may wait 3 s: the first packet on a fresh link waits for IPv6
  // neighbour discovery, whose retransmit timer alone is 1 s (RFC 4861 §10);
  // a 1 s wait lost such a reply on a loaded CI machine. Every echo must still come back.
  async ping(dst: string, count = 3, timeoutSec = 3): Promise<{ sent: number; received: number }> {
    const out = await this.run(["/usr/bin/python3", "-c", PING_PY, dst, String(count), String(timeoutSec)], {
      timeoutMs: (count * timeoutSec + 10) * 1000,
    });
    const received = Number(out.trim());
    return { sent: count, received };
  }
}

// Echo requests over a raw ICMP/ICMPv6 socket. For ICMPv6 the kernel fills in the
// checksum (RFC 3542 §3.1); for ICMP we compute it (RFC 792). Prints the reply count.
const PING_PY = String.raw`
import os, select, socket, struct, sys, time
dst, n, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
v6 = ":" in dst
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
fam, proto, req, rep = (socket.AF_INET6, socket.IPPROTO_ICMPV6, 128, 129) if v6 else (socket.AF_INET, socket.IPPROTO_ICMP, 8, 0)
s = socket.socket(fam, socket.SOCK_RAW, proto)
ident, ok = os.getpid() & 0xffff, 0
for seq in range(n):
    payload = b"wesp-ping-" + struct.pack("!H", seq) * 10
    hdr = struct.pack("!BBHHH", req, 0, 0, ident, seq)
    c = 0 if v6 else csum(hdr + payload)
    s.sendto(struct.pack("!BBHHH", req, 0, c, ident, seq) + payload, (dst, 0))
    end = time.time() + wait
    while True:
        left = end - time.time()
        if left <= 0 or not select.select([s], [], [], left)[0]: break
        d = s.recv(65535)
        off = 0 if v6 else (d[0] & 15) * 4
        t, _, _, i, q = struct.unpack("!BBHHH", d[off:off + 8])
        if t == rep and i == ident and q == seq and d[off + 8:] == payload:
            ok += 1; break
print(ok)
`;

// One UDP datagram built by hand over a raw socket, so the harness can send from a
// port another process (e.g. charon on 4500) holds. Checksum per RFC 768 / RFC 8200
// §8.1 (pseudo-header); the kernel adds the IP header.
const SEND_UDP_PY = String.raw`
import socket, struct, sys
src, sport, dst, dport = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
data = bytes.fromhex(sys.stdin.read().strip())
v6 = ":" in dst
fam = socket.AF_INET6 if v6 else socket.AF_INET
ulen = 8 + len(data)
pseudo = socket.inet_pton(fam, src) + socket.inet_pton(fam, dst) + (struct.pack("!IxxxB", ulen, 17) if v6 else struct.pack("!xBH", 17, ulen))
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
c = csum(pseudo + struct.pack("!HHHH", sport, dport, ulen, 0) + data) or 0xffff
s = socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_UDP)
s.bind((src, 0))
s.sendto(struct.pack("!HHHH", sport, dport, ulen, c) + data, (dst, 0))
`;

// TCP echo for transfers with their bytes checked: the server sends back whatever it
// receives; the client sends N random bytes, half-closes, and compares what returns.
const ECHO_SERVER_JS = String.raw`
const net = require("node:net");
const [addr, port] = process.argv.slice(1);
const srv = net.createServer((c) => { c.pipe(c); c.on("close", () => srv.close()); });
srv.listen(Number(port), addr, () => console.log("listening"));
`;
const ECHO_CLIENT_JS = String.raw`
const net = require("node:net"), crypto = require("node:crypto");
const [addr, port, n] = process.argv.slice(1);
const data = crypto.randomBytes(Number(n));
const got = [];
const c = net.connect(Number(port), addr, () => c.end(data));
c.on("data", (d) => got.push(d));
c.on("end", () => {
  const back = Buffer.concat(got);
  console.log(JSON.stringify({ sent: data.length, echoed: back.length, equal: back.equals(data) }));
});
c.on("error", (e) => { console.error(e.message); process.exit(1); });
`;

/**
 * A TCP transfer checked byte for byte: `bytes` random bytes from `client` to
 * `serverAddr` in `server`, echoed back. Both directions carry all the bytes.
 */
export async function tcpEcho(server: Netns, serverAddr: string, client: Netns, bytes = 1 << 20, port = 5001): Promise<{ sent: number; echoed: number; equal: boolean }> {
  const srv = server.spawn([process.execPath, "-e", ECHO_SERVER_JS, serverAddr, String(port)]);
  try {
    await waitFor(() => /listening/.test(srv.stdout) || !srv.running, `echo server in ${server.name}`);
    if (!srv.running) throw new Error(`echo server failed: ${srv.stderr}`);
    const out = await client.run([process.execPath, "-e", ECHO_CLIENT_JS, serverAddr, String(port), String(bytes)], { timeoutMs: 60_000 });
    return JSON.parse(out);
  } finally {
    await srv.stop();
  }
}

/** Everything one test builds, named `<prefix><pid>-<n>-<label>` (default NS_PREFIX). */
export class Lab extends HostLab {
  constructor(prefix = NS_PREFIX) {
    super(ownerTag(prefix));
  }
  protected override makeNetns(name: string): Netns {
    return new Netns(name, this);
  }
  override ns(label: string): Promise<Netns> {
    return super.ns(label) as Promise<Netns>;
  }
}

/** Removes what test processes that no longer run left under `prefix` (e.g. killed with SIGKILL); see host/lab/leftovers.ts. */
export function sweepStale(prefix = NS_PREFIX): string[] {
  return sweepStaleOf(prefix);
}
