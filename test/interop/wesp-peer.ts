// wesp in a charon's place: a wesp config made from the CHILD_SA a charon
// negotiated (SPIs and keys from its log, see strongswan.ts), and the `wesp` CLI
// run against it inside a lab namespace.
//
// Directions: a ChildSa is parsed from the log of the daemon wesp replaces, so its
// `inbound` is what wesp receives (spi_in/key_in) and `outbound` what it sends.
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { exec, type ExecResult, type Netns, type LabProcess } from "../helpers/netns.ts";
import type { ChildSa, Suite } from "./strongswan.ts";

export const WESP_BIN = fileURLToPath(new URL("../../bin/wesp.js", import.meta.url));

/** strongSwan ESP proposal keyword → wesp suite name (docs/config.md, "Suites"). */
export const WESP_SUITE: Record<Suite, string> = {
  aes128gcm16: "aes-128-gcm",
  aes256gcm16: "aes-256-gcm",
  chacha20poly1305: "chacha20-poly1305",
  "aes128-sha256": "aes-128-cbc-hmac-sha256",
};

export interface WespPlace {
  /** Node name in the config. */
  name: string;
  /** Our outer address (the replaced charon's) and UDP port. */
  wanAddress: string;
  wanPort?: number;
  /** The charon that stays. */
  peerAddress: string;
  peerPort?: number;
  localPrefixes: string[];
  peerPrefixes: string[];
  tunName: string;
  /** Addresses for the TUN (set by wesp when it has CAP_NET_ADMIN). */
  tunAddresses?: string[];
  controlSocket: string;
  /** strongSwan's libipsec checks a 32-packet window by default; ours may differ. */
  replayWindow?: number;
}

/**
 * The config for wesp standing in for the daemon whose log gave `child`, in the
 * JSON form of the format (JSON is read as YAML). Holds keys: written 0600.
 */
export function wespConfig(child: ChildSa, suite: Suite, p: WespPlace): object {
  const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
  const aead = child.integAlg === "";
  return {
    version: 1,
    node: {
      name: p.name,
      wan: [{ name: "wan", address: p.wanAddress, port: p.wanPort ?? 4500, encap: "udp" }],
      tun: { name: p.tunName, mtu: 1400, addresses: p.tunAddresses ?? [] },
      local_prefixes: p.localPrefixes,
      control: { socket: p.controlSocket },
      workers: 1,
    },
    peers: [
      {
        name: "charon",
        address: p.peerAddress,
        port: p.peerPort ?? 4500,
        // strongSwan was told `encap = yes`: it sends and expects ESP in UDP 4500
        nat_t: true,
        prefixes: p.peerPrefixes,
        mode: "tunnel",
        sas: [
          {
            spi_in: child.inbound.spi,
            spi_out: child.outbound.spi,
            suite: WESP_SUITE[suite],
            key_in: hex(child.inbound.encKey),
            key_out: hex(child.outbound.encKey),
            ...(aead ? {} : { auth_key_in: hex(child.inbound.integKey), auth_key_out: hex(child.outbound.integKey) }),
            replay_window: p.replayWindow ?? 1024,
            esn: child.esn,
          },
        ],
      },
    ],
  };
}

export function writeWespConfig(path: string, config: object): string {
  writeFileSync(path, JSON.stringify(config, null, 2) + "\n", { mode: 0o600 });
  return path;
}

/** Runs `wesp ARGS` to completion (outside any namespace: check, keys). */
export function wesp(...args: string[]): Promise<ExecResult> {
  return exec([process.execPath, WESP_BIN, ...args], { timeoutMs: 60_000 });
}

/** `wesp up CONFIG` inside `ns`, in the foreground; the lab stops it at teardown. */
export function wespUp(ns: Netns, config: string, env?: NodeJS.ProcessEnv): LabProcess {
  return ns.spawn([process.execPath, WESP_BIN, "up", config], env ? { env: { ...process.env, ...env } } : {});
}
