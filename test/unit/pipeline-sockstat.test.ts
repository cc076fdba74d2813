// sockstat_linux.ts against the real kernel: a UDP socket with a tiny receive
// buffer, flooded over loopback without reading, reports through /proc the
// drops the kernel made, and every datagram sent is either received or
// counted as dropped. A socket that is not ours, or closed, reports null.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { UdpSocket } from "../../host/net/udp_linux.ts";
import { kernelDrops, socketInode } from "../../host/pipeline/sockstat_linux.ts";

const SENT = 300;
const SIZE = 1000;

test("kernelDrops counts datagrams lost to a full receive buffer", async () => {
  const sock = UdpSocket.bind({ family: 4, address: "127.0.0.1", port: 0, rcvbuf: 4096 });
  const tx = createSocket("udp4");
  try {
    assert.ok(socketInode(sock.fd) > 0);
    assert.equal(kernelDrops(sock.fd), 0, "a fresh socket has dropped nothing");
    const payload = Buffer.alloc(SIZE, 0x5a);
    for (let i = 0; i < SENT; i++) {
      await new Promise<void>((ok, fail) => tx.send(payload, sock.port, "127.0.0.1", (e) => (e ? fail(e) : ok())));
    }
    const drops = kernelDrops(sock.fd)!;
    assert.ok(drops > 0, `a ${SENT} × ${SIZE} B flood overflows a 4 KiB buffer (drops ${drops})`);
    // read what the kernel kept: with the drops, every datagram is accounted for
    const n = 64, mem = new Uint8Array(n * 2048);
    const offs = Uint32Array.from({ length: n }, (_, i) => i * 2048), lens = new Uint32Array(n);
    let received = 0, got: number;
    while ((got = sock.recvBatch(mem, offs, lens, null, null, n, 2048)) > 0) received += got;
    assert.equal(received + drops, SENT, `received ${received} + dropped ${drops}`);
  } finally {
    tx.close();
    sock.close();
  }
  assert.equal(kernelDrops(sock.fd), null, "closed");
  assert.equal(kernelDrops(0), null, "stdin is not one of the socket tables' sockets");
});
