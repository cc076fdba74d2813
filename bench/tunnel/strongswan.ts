// strongSwan as a contender: charon with `kernel-libipsec` (ESP in userspace
// over its TUN `ipsec0`; this kernel has no XFRM), IKEv2 with a PSK, one
// CHILD_SA in tunnel mode with forced UDP encapsulation (libipsec carries only
// ESP in UDP, RFC 3948). The keys are negotiated, not static: charon has no
// static-key mode; the measurement starts after the CHILD_SA is installed.
//
// As in test/interop/strongswan.ts, each charon gets its own /run (a tmpfs in a
// private mount namespace, `unshare -m`), since it insists on
// /var/run/charon.pid. Logging is kept at level 1 with the ESP group off, so
// no packet is logged. charon's process (all its threads) is the endpoint.
//
// libipsec's TUN has a fixed MTU of 1,400 bytes and reads packets into a
// buffer of that size (tun_device.c), which is why the lab's inner MTU is 1,400.
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { run } from "../../host/util/proc.ts";
import { ADDR } from "./lab.ts";
import type { Netns } from "../../host/lab/namespace.ts";
import { until, type Contender, type Running, type StartContext } from "./contender.ts";
import { dpkgVersion } from "./tools.ts";

export const CHARON = "/usr/lib/ipsec/charon";
export const LIBIPSEC = "/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so";
const PLUGINS = [
  "random", "nonce", "openssl", "aes", "sha1", "sha2", "hmac", "kdf", "gcm", "chapoly",
  "curve25519", "kernel-libipsec", "kernel-netlink", "socket-default", "vici",
];
const PSK = "wesp-bench-psk-0123456789abcdef";

let starts = 0;

/**
 * strongswan.conf for a daemon whose files live in `dir`; `settings` are more
 * `charon { … }` lines, `log` the file log's levels (bench/ike/charon.ts tunes both).
 */
export function strongswanConf(dir: string, o: { settings?: string[]; log?: string[] } = {}): string {
  const lines = (xs: string[], indent: string) => xs.map((x) => `${indent}${x}\n`).join("");
  return `charon {
  load_modular = no
  load = ${PLUGINS.join(" ")}
${lines(o.settings ?? [], "  ")}  plugins {
    vici {
      socket = unix://${dir}/charon.vici
    }
  }
  filelog {
    main {
      path = ${dir}/charon.log
      append = no
${lines(o.log ?? ["default = 1", "esp = 0"], "      ")}    }
  }
}
swanctl {
  load = ${PLUGINS.filter((p) => !p.startsWith("kernel") && p !== "socket-default" && p !== "vici").join(" ")}
}
`;
}

function swanctlConf(local: string, remote: string, localTs: string, remoteTs: string, esp: string): string {
  return `connections {
  bench {
    version = 2
    local_addrs = ${local}
    remote_addrs = ${remote}
    encap = yes
    proposals = aes128-sha256-x25519
    rekey_time = 0
    local {
      auth = psk
      id = ${local}
    }
    remote {
      auth = psk
      id = ${remote}
    }
    children {
      net {
        local_ts = ${localTs}
        remote_ts = ${remoteTs}
        esp_proposals = ${esp}
        mode = tunnel
        rekey_time = 0
        life_time = 0
        start_action = none
      }
    }
  }
}
secrets {
  ike-psk {
    id-a = ${local}
    id-b = ${remote}
    secret = "${PSK}"
  }
}
`;
}

export function strongswanContender(suite: "aes-128-gcm" | "chacha20-poly1305"): Contender {
  const aes = suite === "aes-128-gcm";
  const esp = aes ? "aes128gcm16" : "chacha20poly1305";
  return {
    id: `strongswan-${aes ? "aes128gcm" : "chacha20"}`,
    family: "strongswan",
    label: `strongSwan libipsec ${aes ? "AES-GCM-128" : "ChaCha20-Poly1305"}`,
    cipher: aes ? "AES-128-GCM (ESP, RFC 4106)" : "ChaCha20-Poly1305 (ESP, RFC 7634)",
    suite,
    needs: [
      { cmd: CHARON, pkg: "strongswan-charon" },
      { cmd: LIBIPSEC, pkg: "libcharon-extra-plugins" },
      { cmd: "swanctl", pkg: "strongswan-swanctl" },
    ],
    noSas: "each CHILD_SA is negotiated by IKE (no static keys): installing thousands is an IKE benchmark, not this one",
    async version() {
      return `strongSwan ${await dpkgVersion("strongswan-charon")} (kernel-libipsec)`;
    },
    async start(ctx: StartContext): Promise<Running> {
      const n = starts++;
      const side = (ns: Netns, name: string, core: number, local: string, remote: string, lts: string, rts: string) => {
        const dir = join(ctx.lab.dir, `charon-${n}-${name}`);
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, "strongswan.conf"), strongswanConf(dir));
        writeFileSync(join(dir, "swanctl.conf"), swanctlConf(local, remote, lts, rts, esp), { mode: 0o600 });
        const env = { ...process.env, STRONGSWAN_CONF: join(dir, "strongswan.conf") };
        const proc = ns.spawn(["unshare", "-m", "sh", "-c", `mount -t tmpfs tmpfs /run && exec ${CHARON}`], { core, env });
        const swanctl = (...args: string[]) => run(["swanctl", ...args, "--uri", `unix://${dir}/charon.vici`], { env, timeoutMs: 30_000 });
        return { dir, proc, swanctl };
      };
      const A = side(ctx.lab.eA, "A", ctx.cores[0], ADDR.eAwan, ADDR.eBwan, ADDR.netA, ADDR.netB);
      const B = side(ctx.lab.eB, "B", ctx.cores[1], ADDR.eBwan, ADDR.eAwan, ADDR.netB, ADDR.netA);
      const stop = async () => {
        await Promise.all([A.proc.stop("SIGTERM", 5000), B.proc.stop("SIGTERM", 5000)]);
      };
      try {
        for (const s of [A, B]) {
          await until(() => existsSync(join(s.dir, "charon.vici")) || !s.proc.running, "charon's vici socket");
          if (!s.proc.running) throw new Error(`charon died: ${s.proc.output.trim()}`);
          await s.swanctl("--load-all", "--file", join(s.dir, "swanctl.conf"));
        }
        await A.swanctl("--initiate", "--child", "net", "--timeout", "15");
        const sas = await A.swanctl("--list-sas");
        const proposal = /(AES_GCM_16-128|CHACHA20_POLY1305)[^\n]*/.exec(sas)?.[0] ?? "?";
        return { pids: [A.proc.pid, B.proc.pid], notes: [`CHILD_SA: ${proposal.trim()}`], stop };
      } catch (e) {
        await stop();
        throw e;
      }
    },
  };
}
