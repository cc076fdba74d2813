// From the validated config model (host/config/model.ts) to the core's SAD and
// SPD (host/core/core.ts): which SAs to install, with which keys, outer
// addresses and encapsulation, and which policies point at them.
//
// Per peer (peer id = its index in `peers` + 1; 0 stays unused so that a
// zeroed descriptor never names a real peer):
//
//   ESP modes (tunnel, transport-ipip, transport-gre):
//     outbound SA  sas[0]   spi_out / key_out — the only one we send on
//     inbound SAs  sas[0..] spi_in  / key_in  — both accepted while rekeying
//                           (make before break, docs/config.md "Rekeying")
//   plain ipip / gre (trusted ports, no ESP): one outbound and one inbound
//     SA of suite "none"; the core finds the inbound one by outer addresses
//     (and GRE key).
//
//   SPD: for every peer prefix R and every local selector L of R's family,
//     protect  L -> R  saId = the outbound SA, peerId = the peer
//   Local selectors are node.local_prefixes of that family, or the whole
//   family (0.0.0.0/0, ::/0) when none is listed. The same entries serve the
//   inbound check of RFC 4301 §5.2: a decapsulated packet must match, with
//   source and destination swapped, a protect entry of the peer whose SA
//   carried it. Prefixes never overlap (config/semantic.ts), so the order of
//   entries does not matter; nothing matches traffic to anything else, which
//   the core drops as NO_POLICY.
import type { Core, Mode as CoreMode, SaParams, Suite as CoreSuite } from "../core/core.ts";
import type { Config, PeerConfig, SaConfig, Suite, WanPort } from "../config/model.ts";
import { splitKey, SUITES as SUITE_INFO } from "../config/suites.ts";

/** How an outbound SA's packets leave: which WAN port, over which kind of socket. */
export type Carrier = "udp" | "raw-esp" | "raw-plain";

/** Bytes an outbound SA adds around an inner packet, for the usable-MTU answer (icmp.ts). */
export interface Overhead {
  /** Bytes outside the padded block: outer IP (+ UDP) + ESP header + IV + ICV (plain: IP + GRE). */
  fixed: number;
  /** Bytes inside the padded block besides the inner packet: pad length + next header (2) + GRE header in transport-gre. */
  inner: number;
  /** ESP padding alignment (4 for AEADs, 16 for CBC); 1 for plain tunnels. */
  align: number;
}

export interface OutSa {
  saId: number;
  spi: number;
  wanIndex: number;
  family: 4 | 6;
  carrier: Carrier;
  /** Path MTU the SA enforces (0 = none). */
  mtu: number;
  overhead: Overhead;
  /** Config lifetime (hard), checked by the worker. */
  lifetime: SaConfig["lifetime"];
}

export interface InSa {
  saId: number;
  spi: number;
  /** Position in the peer's `sas`. */
  index: number;
  lifetime: SaConfig["lifetime"];
}

export interface PeerRuntime {
  peerId: number;
  name: string;
  mode: PeerConfig["mode"];
  address: string;
  port: number;
  wanIndex: number;
  encap: "udp" | "raw" | "plain";
  suite?: Suite;
  out: OutSa | null;
  in: InSa[];
  policies: number[];
}

export interface Provisioned {
  peers: PeerRuntime[];
  /** Outbound SA id → its description (sparse). */
  outBySa: Map<number, OutSa>;
}

/** Core sizes that fit this config with room to spare (records are cheap: docs/core.md). */
export function coreSizing(config: Config): { maxSas: number; maxPolicies: number; largeWindowBlocks: number } {
  let sas = 0, large = 0, policies = 0;
  for (const p of config.peers) {
    sas += 1 + Math.max(1, p.sas.length);
    large += p.sas.filter((s) => s.replayWindow > 960).length;
    policies += p.prefixes.length * Math.max(1, config.node.localPrefixes.length);
  }
  return {
    // Peer ids run 1..peers and must stay below maxSas.
    maxSas: Math.max(16, sas + config.peers.length + 2),
    maxPolicies: Math.max(16, policies + 4),
    largeWindowBlocks: Math.max(1, large),
  };
}

/** Core suite and key material for one direction of a config SA. */
function cipher(sa: SaConfig, dir: "in" | "out"): Pick<SaParams, "suite" | "key" | "salt" | "hmacKey" | "allowNoIntegrity"> {
  const keymat = dir === "in" ? sa.keyIn : sa.keyOut;
  const { key, salt } = splitKey(sa.suite, keymat);
  switch (sa.suite) {
    case "aes-128-gcm":
    case "aes-192-gcm":
    case "aes-256-gcm":
      return { suite: "aes-gcm-16", key, salt };
    case "chacha20-poly1305":
      return { suite: "chacha20-poly1305", key, salt };
    case "aes-128-cbc-hmac-sha256":
    case "aes-256-cbc-hmac-sha256":
      return { suite: "aes-cbc-hmac-sha256", key, hmacKey: dir === "in" ? sa.authKeyIn : sa.authKeyOut };
    case "aes-128-cbc":
      return { suite: "aes-cbc", key, allowNoIntegrity: true };
  }
}

function greBytes(p: PeerConfig): number {
  return 4 + (p.gre.key !== undefined ? 4 : 0) + (p.gre.sequence ? 4 : 0);
}

/** What an outbound SA of this peer adds around an inner packet (see Overhead). */
export function overheadOf(p: PeerConfig, wan: WanPort, suite?: Suite): Overhead {
  const ip = wan.address.family === 4 ? 20 : 40;
  if (p.mode === "ipip") return { fixed: ip, inner: 0, align: 1 };
  if (p.mode === "gre") return { fixed: ip + greBytes(p), inner: 0, align: 1 };
  const info = SUITE_INFO[suite!];
  const udp = p.encap === "udp" ? 8 : 0;
  return {
    fixed: ip + udp + 8 + info.ivBytes + info.icvBytes, // RFC 4303 §2: SPI + sequence number = 8
    inner: 2 + (p.mode === "transport-gre" ? greBytes(p) : 0),
    align: info.aead ? 4 : 16, // RFC 4303 §2.4: 4-byte alignment; CBC pads to its 16-byte block
  };
}

/** Installs every SA and policy of `config` into an empty core. Throws CoreError on a refusal. */
export function provision(core: Core, config: Config): Provisioned {
  const out: Provisioned = { peers: [], outBySa: new Map() };
  config.peers.forEach((p, k) => {
    const peerId = k + 1;
    const wan = config.node.wan[p.wanIndex];
    const plain = p.mode === "ipip" || p.mode === "gre";
    const common = {
      peerId,
      local: wan.address.text,
      remote: p.address.text,
      mtu: p.mtu ?? 0,
      ...(p.mode === "gre" || p.mode === "transport-gre" ? { greKey: p.gre.key, greSeq: p.gre.sequence } : {}),
    };
    const udp = !plain && p.encap === "udp" ? { udp: { sport: wan.port, dport: p.port } } : {};
    const rt: PeerRuntime = {
      peerId, name: p.name, mode: p.mode, address: p.address.text, port: p.port, wanIndex: p.wanIndex,
      encap: plain ? "plain" : p.encap, suite: p.sas[0]?.suite, out: null, in: [], policies: [],
    };
    const carrier: Carrier = plain ? "raw-plain" : p.encap === "udp" ? "udp" : "raw-esp";
    const overhead = overheadOf(p, wan, p.sas[0]?.suite);
    if (plain) {
      const mode = p.mode as CoreMode;
      const o = core.addSa({ direction: "out", suite: "none", mode, ...common });
      const i = core.addSa({ direction: "in", suite: "none", mode, ...common });
      rt.out = { saId: o, spi: 0, wanIndex: p.wanIndex, family: wan.address.family, carrier, mtu: p.mtu ?? 0, overhead, lifetime: {} };
      rt.in.push({ saId: i, spi: 0, index: 0, lifetime: {} });
    } else {
      const mode = p.mode as CoreMode;
      const first = p.sas[0];
      const o = core.addSa({
        direction: "out", mode, spi: first.spiOut, esn: first.esn, ...cipher(first, "out"), ...common, ...udp,
      });
      rt.out = { saId: o, spi: first.spiOut, wanIndex: p.wanIndex, family: wan.address.family, carrier, mtu: p.mtu ?? 0, overhead, lifetime: first.lifetime };
      for (const sa of p.sas) {
        const i = core.addSa({
          direction: "in", mode, spi: sa.spiIn, esn: sa.esn, replayWindow: sa.replayWindow,
          ...cipher(sa, "in"), ...common, ...udp,
        });
        rt.in.push({ saId: i, spi: sa.spiIn, index: sa.index, lifetime: sa.lifetime });
      }
    }
    out.outBySa.set(rt.out.saId, rt.out);
    for (const r of p.prefixes) {
      const locals = config.node.localPrefixes.filter((l) => l.family === r.family).map((l) => l.text);
      if (locals.length === 0) locals.push(r.family === 4 ? "0.0.0.0/0" : "::/0");
      for (const l of locals) {
        rt.policies.push(core.addPolicy({ action: "protect", local: l, remote: r.text, saId: rt.out.saId, peerId }));
      }
    }
    out.peers.push(rt);
  });
  return out;
}
