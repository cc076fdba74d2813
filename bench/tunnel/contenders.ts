// Every contender of the tunnel benchmark, in the order they run within a
// round, and the bare veth: the kernel routing between the two sites over
// `wan` with no tunnel at all — the ceiling. The veth has no endpoint process,
// so it has no figure per CPU-second.
import { ADDR } from "./lab.ts";
import type { Contender, Running, StartContext } from "./contender.ts";
import { nebulaContender } from "./nebula.ts";
import { openvpnContender } from "./openvpn.ts";
import { strongswanContender } from "./strongswan.ts";
import { wespContender } from "./wesp.ts";
import { wireguardContender } from "./wireguard.ts";

function vethContender(): Contender {
  return {
    id: "veth",
    family: "veth",
    label: "bare veth (no tunnel)",
    cipher: "none",
    needs: [],
    noSas: "no tunnel",
    async version() {
      return "Linux forwarding";
    },
    async start(ctx: StartContext): Promise<Running> {
      await ctx.lab.eA.ip("route", "replace", ADDR.netB, "via", ADDR.eBwan, "dev", "wan");
      await ctx.lab.eB.ip("route", "replace", ADDR.netA, "via", ADDR.eAwan, "dev", "wan");
      return {
        pids: [],
        notes: [],
        stop: async () => {
          await ctx.lab.eA.ip("route", "del", ADDR.netB).catch(() => "");
          await ctx.lab.eB.ip("route", "del", ADDR.netA).catch(() => "");
        },
      };
    },
  };
}

export function allContenders(): Contender[] {
  return [
    wespContender("aes-128-gcm"),
    wespContender("chacha20-poly1305"),
    wespContender("aes-128-gcm", false),
    wespContender("chacha20-poly1305", false),
    strongswanContender("aes-128-gcm"),
    strongswanContender("chacha20-poly1305"),
    wireguardContender(),
    openvpnContender(),
    nebulaContender(),
    vethContender(),
  ];
}

/** Families and ids `--only` accepts. */
export function selectable(): string[] {
  const all = allContenders();
  return [...new Set([...all.map((c) => c.family), ...all.map((c) => c.id)])];
}
