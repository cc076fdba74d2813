// Nebula as a contender (Debian's package, 1.6): two hosts of one overlay
// 10.200.0.0/24 with certificates from a throwaway CA (`nebula-cert`), no
// lighthouse (each knows the other's underlay address from
// `static_host_map`), an allow-all firewall, and the sites' prefixes carried
// as `unsafe_routes` (each host's certificate lists its site as a subnet).
// Cipher "aes" is AES-256-GCM, Nebula's default (the other is "chachapoly");
// Noise handshakes happen on the first packet, which the warm-up sends.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { run } from "../../host/util/proc.ts";
import { ADDR, INNER_MTU } from "./lab.ts";
import type { Netns } from "../../host/lab/namespace.ts";
import { until, type Contender, type Running, type StartContext } from "./contender.ts";
import { dpkgVersion } from "./tools.ts";

const PORT = 4242;
const OVERLAY = { a: "10.200.0.1", b: "10.200.0.2" };
let starts = 0;

export function nebulaContender(): Contender {
  return {
    id: "nebula-aes256gcm",
    family: "nebula",
    label: "Nebula AES-256-GCM",
    cipher: "AES-256-GCM (Nebula cipher \"aes\")",
    needs: [{ cmd: "nebula", pkg: "nebula" }, { cmd: "nebula-cert", pkg: "nebula" }],
    noSas: "every Nebula host needs a certificate signed for it; not measured here",
    async version() {
      return `Nebula ${await dpkgVersion("nebula")}`;
    },
    async start(ctx: StartContext): Promise<Running> {
      const dir = join(ctx.lab.dir, `nebula-${starts++}`);
      mkdirSync(dir, { recursive: true });
      const f = (n: string) => join(dir, n);
      await run(["nebula-cert", "ca", "-name", "wbench", "-duration", "24h", "-out-crt", f("ca.crt"), "-out-key", f("ca.key")]);
      for (const [n, ip, net] of [["a", OVERLAY.a, ADDR.netA], ["b", OVERLAY.b, ADDR.netB]]) {
        await run(["nebula-cert", "sign", "-ca-crt", f("ca.crt"), "-ca-key", f("ca.key"), "-name", n, "-ip", `${ip}/24`,
          "-subnets", net, "-out-crt", f(`${n}.crt`), "-out-key", f(`${n}.key`)]);
      }
      const config = (me: "a" | "b") => {
        const peer = me === "a" ? "b" : "a";
        const any = [{ port: "any", proto: "any", host: "any" }];
        return {
          pki: { ca: f("ca.crt"), cert: f(`${me}.crt`), key: f(`${me}.key`) },
          static_host_map: { [OVERLAY[peer]]: [`${me === "a" ? ADDR.eBwan : ADDR.eAwan}:${PORT}`] },
          lighthouse: { am_lighthouse: false, hosts: [] },
          listen: { host: me === "a" ? ADDR.eAwan : ADDR.eBwan, port: PORT },
          punchy: { punch: false },
          cipher: "aes",
          tun: { dev: "neb0", mtu: INNER_MTU, drop_local_broadcast: false, drop_multicast: false,
            unsafe_routes: [{ route: me === "a" ? ADDR.netB : ADDR.netA, via: OVERLAY[peer] }] },
          logging: { level: "info" },
          firewall: { outbound: any, inbound: any },
        };
      };
      const side = (ns: Netns, core: number, me: "a" | "b") => {
        writeFileSync(f(`${me}.yml`), JSON.stringify(config(me), null, 1));
        return ns.spawn(["nebula", "-config", f(`${me}.yml`)], { core });
      };
      const pa = side(ctx.lab.eA, ctx.cores[0], "a");
      const pb = side(ctx.lab.eB, ctx.cores[1], "b");
      const stop = async () => {
        await Promise.all([pa.stop("SIGTERM", 5000), pb.stop("SIGTERM", 5000)]);
      };
      try {
        for (const p of [pa, pb]) {
          await until(() => !p.running || /Nebula interface is active/.test(p.output), "nebula's interface", 30_000);
          if (!p.running) throw new Error(`nebula exited: ${p.output.trim().split("\n").slice(-3).join(" | ")}`);
        }
      } catch (e) {
        await stop();
        throw e;
      }
      return { pids: [pa.pid, pb.pid], notes: [], stop };
    },
  };
}
