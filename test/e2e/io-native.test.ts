// The wesp_io addon (native/*.c) at its edges: what it reports when the
// kernel gives no peer address, and which file descriptors it will switch
// namespaces to and close. No lab needed; the netns round trip needs root.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { closeSync, fstatSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { createConnection, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { once } from "node:events";
import { io } from "../../host/io/native_linux.ts";
import { requireTools } from "../helpers/require.ts";
import { Ring } from "./io-util.ts";

const stillOpen = (fd: number): boolean => {
  try {
    fstatSync(fd);
    return true;
  } catch {
    return false;
  }
};

describe("wesp_io: recvBatch without a peer address", () => {
  it("a socket that reports no address (AF_UNIX stream: msg_namelen 0) gives zeros and port 0, never the previous datagram's", async () => {
    // First a real datagram, so that the addon's sockaddr buffer held an address once.
    const udp = io.sockOpen(false, 4, 0, "127.0.0.1", 0, 0, 0, 0, 1000);
    const dir = mkdtempSync(join(tmpdir(), "wesp-io-"));
    const tx = createSocket("udp4");
    const server = createServer({ pauseOnConnect: true }); // nothing reads the accepted socket but us
    let client: Socket | undefined;
    try {
      const [, port] = io.sockName(udp);
      tx.bind(0, "127.0.0.1");
      await once(tx, "listening");
      await new Promise((done) => tx.send(Uint8Array.of(1, 2, 3), port, "127.0.0.1", done));
      const r = new Ring(4);
      assert.equal(io.waitReadable(Int32Array.of(udp), 2000), 1);
      assert.equal(io.recvBatch(udp, r.mem, r.offs, r.lens, r.addrs, r.ports, null, 1, 1500, new Uint32Array(4)), 1);
      assert.deepEqual([...r.addrs.subarray(0, 4)], [127, 0, 0, 1]);
      assert.equal(r.ports[0], tx.address().port);

      // Then a connected AF_UNIX stream socket: recvmmsg fills no sockaddr.
      const path = join(dir, "s");
      server.listen(path);
      await once(server, "listening");
      const accepted = once(server, "connection");
      client = createConnection(path);
      const [conn] = (await accepted) as [Socket];
      await new Promise((done) => client!.write("hello", done));
      const fd = (conn as unknown as { _handle: { fd: number } })._handle.fd;
      assert.ok(fd > 0);
      assert.equal(io.waitReadable(Int32Array.of(fd), 2000), 1);
      r.addrs.fill(0xee);
      r.ports.fill(0xeeee);
      assert.equal(io.recvBatch(fd, r.mem, r.offs, r.lens, r.addrs, r.ports, r.locals, 1, 1500, new Uint32Array(4)), 1);
      assert.equal(Buffer.from(r.packet(0)).toString(), "hello");
      assert.deepEqual([...r.addrs.subarray(0, 16)], new Array(16).fill(0), "address of a packet that had none");
      assert.equal(r.ports[0], 0, "port of a packet that had none");
      assert.deepEqual([...r.locals.subarray(0, 16)], new Array(16).fill(0), "no pktinfo: local address zero");
      conn.destroy();
    } finally {
      client?.destroy();
      server.close();
      tx.close();
      io.close(udp);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("wesp_io: netnsRestore takes only what netnsEnter handed out", () => {
  it("an fd the addon did not hand out is refused and left open (a file, an owned eventfd)", () => {
    const file = openSync("/dev/null", "r");
    const efd = io.eventfdOpen();
    try {
      assert.throws(() => io.netnsRestore(file), /EBADF|netnsEnter/);
      assert.ok(stillOpen(file), "netnsRestore closed an fd it did not own");
      assert.throws(() => io.netnsRestore(efd), /EBADF|netnsEnter/);
      assert.ok(stillOpen(efd), "netnsRestore closed the addon's eventfd");
      io.close(efd); // still owned by the addon, so close() takes it
    } finally {
      if (stillOpen(file)) closeSync(file);
    }
  });

  it("a namespace fd is restored once, LIFO, and close() does not take it", { skip: requireTools(["root"], { why: "setns needs CAP_SYS_ADMIN" }) }, () => {
    const outer = io.netnsEnter("/proc/self/ns/net"); // the same namespace: harmless
    const inner = io.netnsEnter("/proc/self/ns/net");
    try {
      assert.throws(() => io.close(inner), /not opened here/);
      assert.throws(() => io.netnsRestore(outer), /EBADF|netnsEnter/, "out of order");
      assert.ok(stillOpen(outer));
    } finally {
      io.netnsRestore(inner);
      io.netnsRestore(outer);
    }
    assert.throws(() => io.netnsRestore(outer), /EBADF|netnsEnter/, "twice");
  });
});
