// What the kernel knows about one of our sockets that the socket itself does
// not tell: how many datagrams it dropped because the receive buffer was full.
// That is the per-socket "drops" column of /proc/net/{udp,udp6,raw,raw6} (the
// same events UdpRcvbufErrors sums over a namespace in /proc/net/snmp), found
// by the socket's inode (readlink /proc/self/fd/N = "socket:[INODE]"). Read on
// the control path only (status), never per packet; SO_RXQ_OVFL would give the
// same count per recvmsg but needs the addon to read control messages.
//
// /proc/net/udp line (whitespace-separated columns; raw has the same layout):
//   sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ref pointer drops
//   0  1             2           3  4                 5          6        7   8       9     10  11      12
import { readFileSync, readlinkSync } from "node:fs";

const TABLES = ["/proc/net/udp", "/proc/net/udp6", "/proc/net/raw", "/proc/net/raw6"];
const COL_INODE = 9;
const COL_DROPS = 12;

/** The socket inode behind `fd` in this process, or 0 if `fd` is not a socket. */
export function socketInode(fd: number): number {
  try {
    const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/**
 * Datagrams the kernel dropped for the UDP or raw socket `fd` (receive buffer
 * full), or null when it cannot be found (closed, not a socket, no /proc, or
 * created in another network namespace than this thread's /proc/net shows).
 */
export function kernelDrops(fd: number): number | null {
  const inode = socketInode(fd);
  if (inode === 0) return null;
  const want = String(inode);
  for (const t of TABLES) {
    let text: string;
    try {
      text = readFileSync(t, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const c = line.trim().split(/\s+/);
      if (c[COL_INODE] === want) return Number(c[COL_DROPS] ?? NaN);
    }
  }
  return null;
}
