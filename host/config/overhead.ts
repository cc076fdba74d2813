// The usable-MTU arithmetic, defined once: what an outbound SA adds around an
// inner packet, and so the largest inner packet it carries within an outer
// path MTU. `wesp check` uses it to refuse an IPv6 tunnel narrower than 1280
// bytes (semantic.ts), and test/unit/pipeline-provision.test.ts holds it to
// what the core really sends (the core's own answers to packets that are too
// big take the MTU from assembly/too_big.ts).
import type { PeerConfig, Suite, WanPort } from "./model.ts";
import { SUITES } from "./suites.ts";

/** Bytes an outbound SA adds around an inner packet. */
export interface Overhead {
  /** Bytes outside the padded block: outer IP (+ UDP) + ESP header + IV + ICV (plain: IP + GRE). */
  fixed: number;
  /** Bytes inside the padded block besides the inner packet: pad length + next header (2) + GRE header in transport-gre. */
  inner: number;
  /** ESP padding alignment (4 for AEADs, 16 for CBC); 1 for plain tunnels. */
  align: number;
}

/** RFC 2784 §2.1 base header, + RFC 2890 §2 key and sequence number when present. */
function greBytes(p: PeerConfig): number {
  return 4 + (p.gre.key !== undefined ? 4 : 0) + (p.gre.sequence ? 4 : 0);
}

/** What an outbound SA of peer `p` (with `suite`, for ESP modes) adds around an inner packet. */
export function overheadOf(p: PeerConfig, wan: WanPort, suite?: Suite): Overhead {
  const ip = wan.address.family === 4 ? 20 : 40;
  if (p.mode === "ipip") return { fixed: ip, inner: 0, align: 1 };
  if (p.mode === "gre") return { fixed: ip + greBytes(p), inner: 0, align: 1 };
  const info = SUITES[suite!];
  const udp = p.encap === "udp" ? 8 : 0; // RFC 3948 §2.1
  return {
    fixed: ip + udp + 8 + info.ivBytes + info.icvBytes, // RFC 4303 §2: SPI + sequence number = 8
    inner: 2 + (p.mode === "transport-gre" ? greBytes(p) : 0),
    align: info.aead ? 4 : 16, // RFC 4303 §2.4: 4-byte alignment; CBC pads to its 16-byte block
  };
}

/** The largest inner packet an SA with overhead `o` carries within `mtu` outer bytes: ⌊(mtu − fixed) / align⌋ · align − inner. */
export function usableMtu(o: Overhead, mtu: number): number {
  return Math.floor((mtu - o.fixed) / o.align) * o.align - o.inner;
}
