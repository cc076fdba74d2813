#!/usr/bin/env python3
# The soak's traffic agent, run in a LAN host namespace behind a CE (stdlib only).
#
# Stream: sends datagrams numbered 0, 1, 2, … to the peer host at --rate per second
# for --seconds, and receives the peer's stream on the same socket. A datagram is
# "WSK1" | number (u32) | length (u16) | pattern bytes that depend on the number, so
# a corrupted or truncated one is noticed. Sizes vary with the number (64..1200 B).
#
# Pings: ICMP and ICMPv6 echo requests (RFC 792, RFC 4443 §4.1) to each --ping
# address in turn, --ping-rate per second in all, over raw sockets; replies are matched
# by identifier, sequence number and payload.
#
# With --go FILE it binds its sockets, prints "agent: ready" and waits for FILE to exist,
# so that both agents listen before either sends.
#
# After --seconds it stops sending and keeps receiving for --drain seconds (longer
# than any delay the relay adds), then writes a JSON report to --out:
#   stream: sent, received (distinct numbers), duplicates, corrupt, reordered
#           (arrived after a higher number), highest, rcvbufDrops (the socket's
#           /proc/net/udp drops), sendErrors, missing (of what the peer sent:
#           computed by the caller from the peer's report, listed here up to 1000)
#   pings: per address: sent, received, duplicates
import json, os, select, socket, struct, sys, time, argparse

ap = argparse.ArgumentParser()
ap.add_argument("--bind", required=True)
ap.add_argument("--peer", required=True)
ap.add_argument("--port", type=int, default=7000)
ap.add_argument("--rate", type=float, default=400)
ap.add_argument("--seconds", type=float, required=True)
ap.add_argument("--drain", type=float, default=5)
ap.add_argument("--ping", action="append", default=[])
ap.add_argument("--ping-rate", type=float, default=4)
ap.add_argument("--out", required=True)
ap.add_argument("--go", help="bind, say 'agent: ready', and start only once this file exists")
a = ap.parse_args()

MAGIC = b"WSK1"
HDR = struct.Struct("!4sIH")
PATTERN = bytes(range(256)) * 8


def size_of(n):
    return 64 + (n * 2654435761) % (1200 - 64 + 1)


def payload(n):
    size = size_of(n)
    o = n & 255
    return HDR.pack(MAGIC, n, size) + PATTERN[o:o + size - HDR.size]


s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
s.bind((a.bind, a.port))
s.setblocking(False)

cap = int(a.rate * a.seconds * 1.5) + 1024
seen = bytearray(cap)
st = dict(sent=0, received=0, duplicates=0, corrupt=0, reordered=0, highest=-1, outOfRange=0, sendErrors=0)

# pings
pings = []
ident = os.getpid() & 0xFFFF


def csum(b):
    if len(b) % 2:
        b += b"\0"
    x = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    x = (x >> 16) + (x & 0xFFFF)
    x += x >> 16
    return ~x & 0xFFFF


for dst in a.ping:
    v6 = ":" in dst
    ps = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_RAW,
                       socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
    ps.setblocking(False)
    pings.append(dict(dst=dst, v6=v6, sock=ps, sent=0, replied=set(), duplicates=0))


def ping_payload(seq):
    return b"wesp-soak-" + struct.pack("!H", seq) * 8


def send_ping(p):
    seq = p["sent"] & 0xFFFF
    req = 128 if p["v6"] else 8
    body = ping_payload(seq)
    c = 0 if p["v6"] else csum(struct.pack("!BBHHH", req, 0, 0, ident, seq) + body)
    try:
        p["sock"].sendto(struct.pack("!BBHHH", req, 0, c, ident, seq) + body, (p["dst"], 0))
    except OSError:
        pass
    p["sent"] += 1


def read_ping(p):
    while True:
        try:
            d = p["sock"].recv(65535)
        except BlockingIOError:
            return
        off = 0 if p["v6"] else (d[0] & 15) * 4
        if len(d) < off + 8:
            continue
        t, _, _, i, q = struct.unpack("!BBHHH", d[off:off + 8])
        if t == (129 if p["v6"] else 0) and i == ident and d[off + 8:] == ping_payload(q):
            if q in p["replied"]:
                p["duplicates"] += 1
            else:
                p["replied"].add(q)


def read_stream():
    while True:
        try:
            d = s.recv(65535)
        except BlockingIOError:
            return
        if len(d) < HDR.size:
            st["corrupt"] += 1
            continue
        m, n, size = HDR.unpack_from(d)
        if m != MAGIC or size != len(d) or size != size_of(n) or d[HDR.size:] != PATTERN[n & 255:(n & 255) + size - HDR.size]:
            st["corrupt"] += 1
            continue
        if n >= cap:
            st["outOfRange"] += 1
            continue
        if seen[n]:
            st["duplicates"] += 1
            continue
        seen[n] = 1
        st["received"] += 1
        if n < st["highest"]:
            st["reordered"] += 1
        else:
            st["highest"] = n


def rcvbuf_drops():
    port = "%04X" % a.port
    local = "".join("%02X" % int(x) for x in reversed(a.bind.split("."))) + ":" + port
    try:
        with open("/proc/net/udp") as f:
            for line in f.readlines()[1:]:
                f_ = line.split()
                if f_[1] == local:
                    return int(f_[-1])
    except OSError:
        pass
    return None


dst = (a.peer, a.port)
# Both agents bind before either sends: a datagram arriving before the peer's socket is
# bound would be lost in the peer's kernel (Udp NoPorts), not by the relay.
print("agent: ready", flush=True)
while a.go and not os.path.exists(a.go):
    time.sleep(0.01)
t0 = time.monotonic()
end_send = t0 + a.seconds
end_all = end_send + a.drain
next_ping = t0
ping_i = 0
print("agent: running", flush=True)
socks = [s] + [p["sock"] for p in pings]
while True:
    now = time.monotonic()
    if now >= end_all:
        break
    if now < end_send:
        due = min(int((now - t0) * a.rate), int(a.seconds * a.rate))
        burst = 0
        while st["sent"] < due and burst < 64:
            try:
                s.sendto(payload(st["sent"]), dst)
            except BlockingIOError:
                break
            except OSError:
                st["sendErrors"] += 1
            st["sent"] += 1
            burst += 1
        if pings and now >= next_ping:
            send_ping(pings[ping_i % len(pings)])
            ping_i += 1
            next_ping += 1 / a.ping_rate
    r, _, _ = select.select(socks, [], [], 0.005)
    if s in r:
        read_stream()
    for p in pings:
        if p["sock"] in r:
            read_ping(p)

missing = [n for n in range(min(cap, st["highest"] + 1)) if not seen[n]][:1000]
report = dict(
    stream=dict(st, rcvbufDrops=rcvbuf_drops(), missingBelowHighest=missing),
    pings=[dict(dst=p["dst"], sent=p["sent"], received=len(p["replied"]), duplicates=p["duplicates"]) for p in pings],
)
with open(a.out, "w") as f:
    json.dump(report, f)
print("agent: done", flush=True)
