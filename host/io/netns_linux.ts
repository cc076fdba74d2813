// Creating sockets and TUN devices inside another network namespace.
//
// A socket or TUN device belongs to the namespace it was created in, for
// good, whatever thread later reads it. setns(2) with CLONE_NEWNET moves only
// the calling thread. So a host can step into a namespace, open what it needs
// and step back, all inside one synchronous call: the outer UDP socket can
// live in the "underlay" namespace while the TUN lives in the "overlay" one
// (WireGuard's birthplace-namespace trick), and tests can own sockets in
// several namespaces from one process. Needs CAP_SYS_ADMIN.
import { io } from "./native_linux.ts";

/** `/run/netns/<name>` for a name made by `ip netns add`, or the path itself. */
export function netnsPath(ns: string): string {
  return ns.startsWith("/") ? ns : `/run/netns/${ns}`;
}

/**
 * Runs `fn` with the calling thread inside network namespace `ns` (a name
 * from `ip netns add`, or a path such as /proc/PID/ns/net) and returns its
 * result; the thread is back in its own namespace afterwards, even when `fn`
 * throws. `fn` must be synchronous: an async function would resume on the
 * event loop in the wrong namespace, so a returned promise is refused.
 */
export function withNetns<T>(ns: string | undefined, fn: () => T): T {
  if (ns === undefined) return fn();
  const prev = io.netnsEnter(netnsPath(ns));
  let result: T;
  try {
    result = fn();
  } finally {
    io.netnsRestore(prev);
  }
  if (result instanceof Promise) {
    throw new TypeError("withNetns: fn must be synchronous (it returned a Promise)");
  }
  return result;
}
