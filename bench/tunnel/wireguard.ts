// wireguard-go as a contender (Debian's package): `wireguard-go -f IFNAME` in
// eA and eB, configured over its UAPI socket (the text protocol of
// https://www.wireguard.com/xplatform/, what `wg set` speaks), so no
// wireguard-tools are needed. Keys are fresh x25519 pairs from node:crypto.
// WireGuard has one cipher suite: ChaCha20-Poly1305 with Noise_IK handshakes.
//
// The UAPI socket lives in /var/run/wireguard/IFNAME.sock, outside the network
// namespace, so the interface names carry this process's pid.
//
// `--sas N` adds N extra peers (public key, one /32 allowed IP in
// 10.128.0.0/9, no endpoint) to each side; wireguard-go then looks up the
// traffic's peer among N + 1 in its allowed-IPs trie.
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { existsSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import { ADDR, INNER_MTU } from "./lab.ts";
import type { Netns } from "../../host/lab/namespace.ts";
import type { LabProcess } from "../../host/lab/process.ts";
import { until, type Contender, type Running, type StartContext } from "./contender.ts";
import { dpkgVersion } from "./tools.ts";

const PORT = 51820;

function keyPair(): { priv: string; pub: string } {
  const { privateKey, publicKey } = generateKeyPairSync("x25519");
  const d = privateKey.export({ format: "jwk" }).d!;
  const x = publicKey.export({ format: "jwk" }).x!;
  return { priv: Buffer.from(d, "base64url").toString("hex"), pub: Buffer.from(x, "base64url").toString("hex") };
}

/** One UAPI `set` transaction; rejects unless wireguard-go answers errno=0. */
function uapiSet(sock: string, body: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = createConnection(sock);
    let reply = "";
    c.on("data", (d) => {
      reply += d;
      if (reply.endsWith("\n\n")) {
        c.end();
        if (/^errno=0$/m.test(reply)) resolve();
        else reject(new Error(`wireguard-go UAPI: ${reply.trim()}`));
      }
    });
    c.on("error", reject);
    c.write(`set=1\n${body}\n`);
  });
}

export function wireguardContender(): Contender {
  return {
    id: "wireguard-go",
    family: "wireguard-go",
    label: "wireguard-go",
    cipher: "ChaCha20-Poly1305 (WireGuard)",
    needs: [{ cmd: "wireguard-go", pkg: "wireguard-go" }],
    async version() {
      return `wireguard-go ${await dpkgVersion("wireguard-go")}`;
    },
    async start(ctx: StartContext): Promise<Running> {
      const a = keyPair(), b = keyPair();
      const extras = Array.from({ length: ctx.sas }, (_, i) =>
        `public_key=${randomBytes(32).toString("hex")}\nallowed_ip=10.${128 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32\n`).join("");
      const side = async (ns: Netns, me: string, core: number, mine: typeof a, theirs: typeof a, endpoint: string, allowed: string, route: string) => {
        const ifname = `wg${process.pid}${me}`;
        const sock = `/var/run/wireguard/${ifname}.sock`;
        rmSync(sock, { force: true });
        const proc = ns.spawn(["wireguard-go", "-f", ifname], { core });
        await until(() => existsSync(sock) || !proc.running, `wireguard-go's UAPI socket ${sock}`);
        if (!proc.running) throw new Error(`wireguard-go exited: ${proc.output.trim()}`);
        await uapiSet(sock, `private_key=${mine.priv}\nlisten_port=${PORT}\nreplace_peers=true\n` +
          `public_key=${theirs.pub}\nendpoint=${endpoint}:${PORT}\nallowed_ip=${allowed}\n${extras}`);
        await ns.ip("link", "set", "dev", ifname, "mtu", String(INNER_MTU), "up");
        await ns.ip("route", "replace", route, "dev", ifname);
        return proc;
      };
      const procs: LabProcess[] = [];
      const stop = async () => {
        await Promise.all(procs.map((p) => p.stop("SIGTERM", 5000)));
      };
      try {
        procs.push(await side(ctx.lab.eA, "a", ctx.cores[0], a, b, ADDR.eBwan, ADDR.netB, ADDR.netB));
        procs.push(await side(ctx.lab.eB, "b", ctx.cores[1], b, a, ADDR.eAwan, ADDR.netA, ADDR.netA));
      } catch (e) {
        await stop();
        throw e;
      }
      return { pids: procs.map((p) => p.pid), notes: [], stop };
    },
  };
}
