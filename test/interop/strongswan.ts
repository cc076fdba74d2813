// strongSwan's charon as a live, independent IKEv2/ESP peer inside a lab namespace.
//
// The kernel here has no XFRM, so charon runs with `kernel-libipsec`: ESP is done in
// userspace over a TUN device (`ipsec0`), and only UDP-encapsulated ESP (RFC 3948) is
// supported, without ESN. `kernel-netlink` must still be loaded: it is the only
// provider of `kernel-net` (addresses, routes into table 220 via `ipsec0`), and
// charon refuses to start without it ("unmet dependency: CUSTOM:kernel-net"). With
// both loaded, ESP goes through libipsec and nothing touches XFRM.
//
// Each daemon gets its own directory (config, log, vici socket) and its own `/run`
// (a tmpfs in a private mount namespace), because charon insists on
// `/var/run/charon.pid` and refuses to start when another daemon holds it.
//
// With the `chd` log group at level 4, charon dumps the derived CHILD_SA keys
// (keymat_v2.c derive_child_keys) — `parseChildSas` turns that log into SAs.
import { existsSync, readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { run, waitFor, type Netns, type LabProcess } from "../helpers/netns.ts";
import type { EspAuthAlg, EspEncAlg, EspSa } from "../helpers/tshark.ts";

export const CHARON = "/usr/lib/ipsec/charon";

/** The ESP suites the interop tests cover, by strongSwan proposal keyword. */
export const SUITES = ["aes128gcm16", "aes256gcm16", "chacha20poly1305", "aes128-sha256"] as const;
export type Suite = (typeof SUITES)[number];

// Only what a PSK or certificate IKEv2 SA and the four ESP suites need; `kdf` is the
// prf+ plugin (strongSwan 5.9.8 split it out, IKE key derivation fails without it).
const PLUGINS = [
  "random", "nonce", "openssl", "aes", "sha1", "sha2", "hmac", "kdf", "gcm", "chapoly",
  "curve25519", "kernel-libipsec", "kernel-netlink", "socket-default", "vici",
  // certificates (ike-charon-cert.test.ts): PEM files, X.509, PKCS#1/#8 keys, chain constraints
  "pem", "x509", "pkcs1", "pkcs8", "pubkey", "constraints",
];

export interface CharonOptions {
  /** Short name, also the connection's directory name. */
  name: string;
  /** Outer (IKE and ESP) addresses. */
  local: string;
  remote: string;
  /** Traffic selectors, e.g. ["192.168.1.0/24"]. */
  localTs: string[];
  remoteTs: string[];
  psk: string;
  /** ESP suites to offer; one child `net-<suite>` per suite is configured. */
  suites: readonly Suite[];
}

/** Config text for charon (strongswan.conf syntax); exported so tests can inspect it. */
export function strongswanConf(dir: string): string {
  return `charon {
  load_modular = no
  load = ${PLUGINS.join(" ")}
  # nothing may time out or rekey while a test runs
  retransmit_tries = 3
  plugins {
    vici {
      socket = unix://${dir}/charon.vici
    }
  }
  filelog {
    main {
      path = ${dir}/charon.log
      append = no
      flush_line = yes
      default = 1
      ike = 2
      knl = 2
      chd = 4
      esp = 2
    }
  }
}
swanctl {
  load = ${PLUGINS.filter((p) => !p.startsWith("kernel") && p !== "socket-default" && p !== "vici").join(" ")}
}
`;
}

/** Child name for a suite. */
export function childName(suite: Suite): string {
  return `net-${suite}`;
}

/** swanctl.conf: one IKE connection per suite, forced UDP encapsulation, tunnel mode. */
export function swanctlConf(o: CharonOptions): string {
  const conns = o.suites
    .map(
      (s) => `  c-${s} {
    version = 2
    local_addrs = ${o.local}
    remote_addrs = ${o.remote}
    # force NAT-T (RFC 3948): kernel-libipsec carries only UDP-encapsulated ESP
    encap = yes
    proposals = aes128-sha256-x25519
    rekey_time = 0
    local {
      auth = psk
      id = ${o.local}
    }
    remote {
      auth = psk
      id = ${o.remote}
    }
    children {
      ${childName(s)} {
        local_ts = ${o.localTs.join(",")}
        remote_ts = ${o.remoteTs.join(",")}
        esp_proposals = ${s}
        mode = tunnel
        rekey_time = 0
        life_time = 0
        start_action = none
      }
    }
  }`,
    )
    .join("\n");
  return `connections {
${conns}
}
secrets {
  ike-psk {
    id-a = ${o.local}
    id-b = ${o.remote}
    secret = "${o.psk}"
  }
}
`;
}

/** One running charon. */
export class Charon {
  readonly dir: string;
  readonly logPath: string;
  readonly uri: string;
  private proc?: LabProcess;

  constructor(readonly ns: Netns, readonly opts: CharonOptions) {
    this.dir = join(ns.lab.dir, `charon-${opts.name}`);
    this.logPath = join(this.dir, "charon.log");
    this.uri = `unix://${this.dir}/charon.vici`;
  }

  private get env(): NodeJS.ProcessEnv {
    return { ...process.env, STRONGSWAN_CONF: join(this.dir, "strongswan.conf") };
  }

  /** Writes the configs, starts the daemon, waits for vici and loads the connections. */
  async start(): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    writeFileSync(join(this.dir, "strongswan.conf"), strongswanConf(this.dir));
    writeFileSync(join(this.dir, "swanctl.conf"), swanctlConf(this.opts), { mode: 0o600 });
    // Private mount namespace (propagation private by default in util-linux unshare),
    // tmpfs over /run: the pid file stays per daemon and vanishes with it.
    this.proc = this.ns.spawn(["unshare", "-m", "sh", "-c", `mount -t tmpfs tmpfs /run && exec ${CHARON}`], {
      env: this.env,
    });
    const sock = join(this.dir, "charon.vici");
    await waitFor(() => existsSync(sock) || !this.proc!.running, `charon ${this.opts.name} vici socket`);
    if (!this.proc.running) throw new Error(`charon ${this.opts.name} died:\n${this.proc.stderr}\n${this.log()}`);
    await this.swanctl("--load-all", "--file", join(this.dir, "swanctl.conf"));
  }

  /** swanctl against this daemon's socket (a path, so no need to enter the namespace). */
  swanctl(...args: string[]): Promise<string> {
    return run(["swanctl", ...args, "--uri", this.uri], { env: this.env, timeoutMs: 30_000 });
  }

  /** Initiates the suite's child (and its IKE SA); resolves once it is installed. */
  async initiate(suite: Suite): Promise<void> {
    await this.swanctl("--initiate", "--child", childName(suite), "--timeout", "15");
  }

  async terminateIke(suite: Suite): Promise<void> {
    await this.swanctl("--terminate", "--ike", `c-${suite}`, "--timeout", "10");
  }

  /** `swanctl --list-sas` text, for diagnostics and cross-checks. */
  listSas(): Promise<string> {
    return this.swanctl("--list-sas");
  }

  log(): string {
    return existsSync(this.logPath) ? readFileSync(this.logPath, "utf8") : "";
  }

  get running(): boolean {
    return !!this.proc?.running;
  }

  /**
   * Stops the daemon. `abrupt` kills it with SIGKILL so it sends no IKE DELETE:
   * the peer keeps its SAs, which is what lets wesp take this daemon's place.
   */
  async stop(abrupt = false): Promise<void> {
    await this.proc?.stop(abrupt ? "SIGKILL" : "SIGTERM", 5000);
  }
}

// ---------------------------------------------------------------------------
// Log parser
// ---------------------------------------------------------------------------

/** One direction of a CHILD_SA as installed by this daemon. */
export interface EspDirection {
  spi: number;
  /** Outer addresses as logged ("SPI 0x…, src A dst B"). */
  src: string;
  dst: string;
  /** Encryption key as derived by IKEv2 (RFC 7296 §2.17): for AEADs the 4-byte salt is its last 4 bytes (RFC 4106 §8.1, RFC 7634 §4). */
  encKey: Uint8Array;
  /** Integrity key; empty for AEADs. */
  integKey: Uint8Array;
}

export interface ChildSa {
  name: string;
  /** charon's unique id, the N in `name{N}`. */
  id: number;
  /** Whether this daemon initiated the exchange that created the CHILD_SA. */
  initiator: boolean;
  /** e.g. "ESP:AES_GCM_16_128/NO_EXT_SEQ". */
  proposal: string;
  /** e.g. "AES_GCM_16", "AES_CBC", "CHACHA20_POLY1305". */
  encAlg: string;
  /** e.g. "HMAC_SHA2_256_128"; "" for AEADs. */
  integAlg: string;
  /** Key length in bits of the encryption algorithm, from the proposal (e.g. 128). */
  encKeyBits: number;
  esn: boolean;
  inbound: EspDirection;
  outbound: EspDirection;
  localTs: string;
  remoteTs: string;
}

interface Pending {
  proposal: string;
  encAlg: string;
  integAlg: string;
  name: string;
  id: number;
  keys: Record<string, Uint8Array>;
  dump?: { key: string; need: number; bytes: number[] };
  sa: { inbound?: { spi: number; src: string; dst: string }; outbound?: { spi: number; src: string; dst: string } };
  adding?: "inbound" | "outbound";
}

const LINE = /^(\d+)\[(\w+)\] (.*)$/;

/**
 * Extracts every established CHILD_SA with its SPIs and keys from a charon log
 * written with `chd = 4` (no time_format, no ike_name, as `strongswanConf` sets).
 *
 * charon handles one exchange on one worker thread, but threads interleave in the
 * log, so the parser keeps one state per thread id (the `NN[` prefix).
 *
 * Key directions: IKEv2 derives "initiator" keys for traffic initiator → responder
 * and "responder" keys for the reverse (RFC 7296 §2.17). The initiator of the CHILD_SA
 * is the daemon that logged "establishing CHILD_SA name{N}".
 */
export function parseChildSas(log: string): ChildSa[] {
  const threads = new Map<string, Pending>();
  const initiated = new Set<number>();
  const out: ChildSa[] = [];
  const fresh = (): Pending => ({ proposal: "", encAlg: "", integAlg: "", name: "", id: 0, keys: {}, sa: {} });
  const st = (t: string) => {
    let p = threads.get(t);
    if (!p) threads.set(t, (p = fresh()));
    return p;
  };
  for (const raw of log.split("\n")) {
    const m = LINE.exec(raw);
    if (!m) continue;
    const [, thread, group, text] = m;
    const p = st(thread);
    if (p.dump && group === "CHD") {
      const d = /^\s*\d+: ((?:[0-9A-F]{2} ?)+)/.exec(text);
      if (d) {
        for (const b of d[1].trim().split(" ")) if (p.dump.bytes.length < p.dump.need) p.dump.bytes.push(parseInt(b, 16));
        if (p.dump.bytes.length === p.dump.need) {
          p.keys[p.dump.key] = Uint8Array.from(p.dump.bytes);
          p.dump = undefined;
        }
        continue;
      }
      p.dump = undefined;
    }
    let k: RegExpExecArray | null;
    if (group === "CFG" && (k = /^selected proposal: (ESP:\S+)/.exec(text))) {
      threads.set(thread, { ...fresh(), proposal: k[1] });
    } else if (group === "IKE" && (k = /^establishing CHILD_SA ([^{]+)\{(\d+)\}/.exec(text))) {
      initiated.add(Number(k[2]));
    } else if (group === "CHD" && (k = /^CHILD_SA ([^{]+)\{(\d+)\} state change: CREATED => INSTALLING/.exec(text))) {
      p.name = k[1];
      p.id = Number(k[2]);
    } else if (group === "CHD" && (k = /^\s*using (\S+) for (encryption|integrity)/.exec(text))) {
      if (k[2] === "encryption") p.encAlg = k[1];
      else p.integAlg = k[1];
    } else if (group === "CHD" && (k = /^(encryption|integrity) (initiator|responder) key => (\d+) bytes/.exec(text))) {
      const key = `${k[1]}-${k[2]}`;
      const need = Number(k[3]);
      if (need === 0) p.keys[key] = new Uint8Array(0);
      else p.dump = { key, need, bytes: [] };
    } else if (group === "CHD" && (k = /^adding (inbound|outbound) ESP SA/.exec(text))) {
      p.adding = k[1] as "inbound" | "outbound";
    } else if (group === "CHD" && p.adding && (k = /^\s*SPI 0x([0-9a-f]+), src (\S+) dst (\S+)/.exec(text))) {
      p.sa[p.adding] = { spi: parseInt(k[1], 16), src: k[2], dst: k[3] };
      p.adding = undefined;
    } else if (
      group === "IKE" &&
      (k = /^CHILD_SA ([^{]+)\{(\d+)\} established with SPIs ([0-9a-f]{8})_i ([0-9a-f]{8})_o and TS (.+) === (.+)$/.exec(text))
    ) {
      const id = Number(k[2]);
      if (p.id !== id || !p.sa.inbound || !p.sa.outbound) {
        throw new Error(`charon log: CHILD_SA ${k[1]}{${id}} established without its keys/SAs on thread ${thread} (is chd = 4?)`);
      }
      const initiator = initiated.has(id);
      const key = (kind: string, dir: string) => p.keys[`${kind}-${dir}`] ?? new Uint8Array(0);
      // inbound traffic was sent by the other side: responder keys if we initiated
      const inDir = initiator ? "responder" : "initiator";
      const outDir = initiator ? "initiator" : "responder";
      const encOut = key("encryption", outDir);
      const aead = p.integAlg === "";
      if (encOut.length === 0 || key("encryption", inDir).length === 0) {
        throw new Error(`charon log: no key dump for ${k[1]}{${id}} (is chd = 4?)`);
      }
      out.push({
        name: k[1],
        id,
        initiator,
        proposal: p.proposal,
        encAlg: p.encAlg,
        integAlg: p.integAlg,
        encKeyBits: (encOut.length - (aead ? 4 : 0)) * 8,
        esn: /\/EXT_SEQ/.test(p.proposal),
        inbound: { ...p.sa.inbound, encKey: key("encryption", inDir), integKey: key("integrity", inDir) },
        outbound: { ...p.sa.outbound, encKey: encOut, integKey: key("integrity", outDir) },
        localTs: k[5],
        remoteTs: k[6],
      });
      if (parseInt(k[3], 16) !== p.sa.inbound.spi || parseInt(k[4], 16) !== p.sa.outbound.spi) {
        throw new Error(`charon log: SPIs of ${k[1]}{${id}} disagree with the installed SAs`);
      }
      threads.set(thread, fresh());
    }
  }
  return out;
}

const ENC: Record<string, EspEncAlg> = {
  AES_GCM_16: "aes-gcm-16",
  CHACHA20_POLY1305: "chacha20-poly1305",
  AES_CBC: "aes-cbc",
};
const INTEG: Record<string, EspAuthAlg> = {
  "": "none",
  HMAC_SHA2_256_128: "hmac-sha256-128",
  HMAC_SHA1_96: "hmac-sha1-96",
};

/** Both directions of a CHILD_SA as ESP SAs for the dissectors: [outbound, inbound]. */
export function toEspSas(c: ChildSa): EspSa[] {
  const enc = ENC[c.encAlg];
  const auth = INTEG[c.integAlg];
  if (!enc || !auth) throw new Error(`no mapping for ${c.encAlg}/${c.integAlg || "AEAD"}`);
  return [c.outbound, c.inbound].map((d) => ({
    spi: d.spi,
    src: d.src,
    dst: d.dst,
    enc,
    encKey: d.encKey,
    auth,
    authKey: auth === "none" ? undefined : d.integKey,
  }));
}

/**
 * Sequence numbers of the inbound ESP packets with `spi` that libipsec parsed, in
 * log order (`esp >= 2`): what actually reached strongSwan, dropped or not.
 */
export function espParsed(log: string, spi: number): number[] {
  const want = spi.toString(16).padStart(8, "0");
  const seqs: number[] = [];
  for (const m of log.matchAll(/^\d+\[ESP\] parsed ESP header with SPI ([0-9a-f]{8}) \[seq (\d+)\]$/gm)) {
    if (m[1] === want) seqs.push(Number(m[2]));
  }
  return seqs;
}

/** Why charon's libipsec dropped an inbound ESP packet (libipsec/esp_packet.c). */
export type EspDropReason = "replay" | "icv" | "length" | "padding";

export interface EspDrop {
  reason: EspDropReason;
  spi: number;
  seq: number;
}

/**
 * Inbound ESP packets that libipsec rejected, from a log with `esp >= 1`. The ICV
 * message names no SPI; it belongs to the header parsed just before on the same
 * worker thread ("parsed ESP header with SPI … [seq …]", `esp >= 2`).
 */
export function espDrops(log: string): EspDrop[] {
  const last = new Map<string, { spi: number; seq: number }>();
  const awaitingReplayDetail = new Set<string>();
  const drops: EspDrop[] = [];
  for (const raw of log.split("\n")) {
    const m = LINE.exec(raw);
    if (!m || m[2] !== "ESP") continue;
    const [, thread, , text] = m;
    let k: RegExpExecArray | null;
    if ((k = /^parsed ESP header with SPI ([0-9a-f]{8}) \[seq (\d+)\]/.exec(text))) {
      last.set(thread, { spi: parseInt(k[1], 16), seq: Number(k[2]) });
    } else if (/^ESP sequence number verification failed/.test(text)) {
      awaitingReplayDetail.add(thread);
    } else if (awaitingReplayDetail.has(thread) && (k = /SPI ([0-9a-f]{8}) \[seq (\d+)\]/.exec(text))) {
      awaitingReplayDetail.delete(thread);
      drops.push({ reason: "replay", spi: parseInt(k[1], 16), seq: Number(k[2]) });
    } else {
      const reason: EspDropReason | undefined = /^ESP decryption or ICV verification failed/.test(text)
        ? "icv"
        : /invalid length/.test(text)
          ? "length"
          : /invalid padding/.test(text)
            ? "padding"
            : undefined;
      const at = last.get(thread);
      if (reason && at) drops.push({ reason, ...at });
    }
  }
  return drops;
}
