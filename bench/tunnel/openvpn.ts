// OpenVPN 2.6 as a contender (Debian's package): point-to-point mode over UDP,
// TLS with self-signed P-256 certificates pinned by `--peer-fingerprint` (the
// 2.6 way to run without a CA), data channel AES-128-GCM negotiated between
// the two, userspace only (`--disable-dco`: no data-channel offload module).
// Static-key mode (`--secret`) is not used: it knows no AEAD and 2.6
// deprecates it.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { run } from "../../host/util/proc.ts";
import { ADDR, INNER_MTU } from "./lab.ts";
import type { Netns } from "../../host/lab/namespace.ts";
import { until, type Contender, type Running, type StartContext } from "./contender.ts";
import { dpkgVersion } from "./tools.ts";

const PORT = 1194;
let starts = 0;

async function cert(dir: string, name: string): Promise<{ crt: string; key: string; fp: string }> {
  const crt = join(dir, `${name}.crt`), key = join(dir, `${name}.key`);
  await run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", key, "-out", crt, "-days", "2", "-subj", `/CN=wbench-${name}`]);
  const out = await run(["openssl", "x509", "-in", crt, "-noout", "-fingerprint", "-sha256"]);
  return { crt, key, fp: out.trim().split("=")[1] };
}

export function openvpnContender(): Contender {
  const cipher = "AES-128-GCM";
  return {
    id: "openvpn-aes128gcm",
    family: "openvpn",
    label: "OpenVPN AES-128-GCM",
    cipher: "AES-128-GCM (OpenVPN data channel)",
    suite: "aes-128-gcm",
    needs: [{ cmd: "openvpn", pkg: "openvpn" }, { cmd: "openssl", pkg: "openssl" }],
    noSas: "point-to-point mode has one peer; a server with N clients needs N TLS sessions",
    async version() {
      return `OpenVPN ${await dpkgVersion("openvpn")}`;
    },
    async start(ctx: StartContext): Promise<Running> {
      const dir = join(ctx.lab.dir, `openvpn-${starts++}`);
      mkdirSync(dir, { recursive: true });
      const ca = await cert(dir, "a"), cb = await cert(dir, "b");
      const side = (ns: Netns, core: number, me: typeof ca, peer: typeof ca, local: string, remote: string, ifl: string, ifr: string, net: string, server: boolean) =>
        ns.spawn(["openvpn", "--dev", "ovpn0", "--dev-type", "tun", "--proto", "udp",
          "--local", local, "--lport", String(PORT), "--remote", remote, "--rport", String(PORT),
          "--ifconfig", ifl, ifr, "--route", net.split("/")[0], "255.255.255.0",
          server ? "--tls-server" : "--tls-client", "--dh", "none",
          "--cert", me.crt, "--key", me.key, "--peer-fingerprint", peer.fp,
          "--data-ciphers", cipher, "--data-ciphers-fallback", cipher,
          "--tun-mtu", String(INNER_MTU), "--disable-dco", "--verb", "3", "--cd", dir], { core });
      const pa = side(ctx.lab.eA, ctx.cores[0], ca, cb, ADDR.eAwan, ADDR.eBwan, "10.8.0.1", "10.8.0.2", ADDR.netB, true);
      const pb = side(ctx.lab.eB, ctx.cores[1], cb, ca, ADDR.eBwan, ADDR.eAwan, "10.8.0.2", "10.8.0.1", ADDR.netA, false);
      const stop = async () => {
        await Promise.all([pa.stop("SIGTERM", 5000), pb.stop("SIGTERM", 5000)]);
      };
      try {
        for (const p of [pa, pb]) {
          await until(() => !p.running || /Initialization Sequence Completed/.test(p.output), "OpenVPN to complete its initialisation", 30_000);
          if (!p.running) throw new Error(`openvpn exited: ${p.output.trim().split("\n").slice(-3).join(" | ")}`);
        }
      } catch (e) {
        await stop();
        throw e;
      }
      const data = /Data Channel: cipher '([^']+)'/.exec(pa.output)?.[1] ?? /Outgoing Data Channel: Cipher '([^']+)'/.exec(pa.output)?.[1];
      return { pids: [pa.pid, pb.pid], notes: data ? [`data channel: ${data}`] : [], stop };
    },
  };
}
