// From a schema-valid document (snake_case, defaults missing) to the model
// (camelCase, defaults filled, addresses parsed, keys decoded), checking each
// field on its own: address syntax, prefixes, key lengths per suite, key files.
// Checks that relate fields to each other live in semantic.ts.

import { isAbsolute, resolve } from "node:path";
import { parseAddress, parseInterfaceAddress, parsePrefix } from "./addr.ts";
import { decodeHexKey, isAllZero, KeyBytes, readFileAndMode, readKeyFile, secretFileMode } from "./keys.ts";
import type { Address, Config, Encap, IkeIdentity, IkePeerConfig, Lifetime, MetricsConfig, Mode, NodeConfig, PeerConfig, Prefix, SaConfig, Suite, WanPort } from "./model.ts";
import type { PathSegments, RawIssue } from "./schema_errors.ts";
import { describeKeySize, SUITES } from "./suites.ts";
import { DEFAULT_METRICS_LISTEN, parseListen } from "./listen.ts";
import { loadIkeCerts, usesCerts, type RawIkeCertAuth } from "./ike_certs.ts";

// The file's shape, as schema.json guarantees it.
export interface RawSa {
  spi_in: number | string; spi_out: number | string; suite: Suite;
  key_in?: string; key_out?: string; key_in_file?: string; key_out_file?: string;
  auth_key_in?: string; auth_key_out?: string; auth_key_in_file?: string; auth_key_out_file?: string;
  replay_window?: number; esn?: boolean; allow_no_integrity?: boolean;
  lifetime?: { seconds?: number; bytes?: number; packets?: number; soft_seconds?: number; soft_bytes?: number; soft_packets?: number };
}
export interface RawPeer {
  name: string; address: string; port?: number; wan?: string; nat_t?: boolean | "auto"; keepalive?: number;
  prefixes: string[]; mode?: Mode; gre?: { key?: number; sequence?: boolean }; mtu?: number; sas?: RawSa[]; ike?: RawIke;
  transit?: boolean; backup_for?: string;
}
export interface RawIke {
  auth: { psk?: string; psk_file?: string } & RawIkeCertAuth;
  fragment_size?: number;
  local_id?: IkeIdentity; remote_id?: IkeIdentity;
  proposals?: { ike?: string[]; esp?: string[] };
  lifetime?: { ike_seconds?: number; child_seconds?: number; child_bytes?: number; child_packets?: number; rekey_margin?: number; rekey_jitter?: number };
  dpd?: number;
  retry?: { min?: number; max?: number; alarm_after?: number };
  initiate?: boolean;
}
export interface RawConfig {
  version?: 1;
  node: {
    name: string;
    wan: { name: string; address: string; port?: number; encap?: Encap; trusted?: boolean }[];
    tun?: { name?: string; mtu?: number; addresses?: string[]; persistent?: boolean; reader?: "auto" | "readv" };
    local_prefixes?: string[];
    control?: { socket?: string };
    workers?: number;
    state_dir?: string;
    ike_port?: number;
    metrics?: { listen?: string };
  };
  peers: RawPeer[];
}

export interface NormalizeContext {
  /** Directory that relative paths (key files, control socket) are resolved against. */
  baseDir: string;
  env: NodeJS.ProcessEnv;
  uid: number;
  errors: RawIssue[];
  warnings: RawIssue[];
}

/** Which field (`key_in`, `key_out_file`, ...) each decoded key came from, so later checks can name it. */
export const keyField = new WeakMap<Uint8Array, string>();

export const DEFAULT_PORT = 4500;
/** IKE's own port (RFC 7296 §2). */
export const DEFAULT_IKE_PORT = 500;
export const DEFAULT_TUN_MTU = 1400;
export const DEFAULT_REPLAY_WINDOW = 1024;

/** Build the model; on any error the returned value must not be used (see ctx.errors). */
export function normalize(raw: RawConfig, source: string, ctx: NormalizeContext): Config {
  const node = normalizeNode(raw.node, ctx);
  const peers = raw.peers.map((p, i) => normalizePeer(p, ["peers", i], node, ctx));
  return { source, node, peers };
}

function normalizeNode(n: RawConfig["node"], ctx: NormalizeContext): NodeConfig {
  const wan: WanPort[] = n.wan.map((w, i) => ({
    name: w.name,
    address: address(w.address, ["node", "wan", i, "address"], ctx),
    port: w.port ?? DEFAULT_PORT,
    encap: w.encap ?? "udp",
    trusted: w.trusted ?? false,
  }));
  const tunAddresses = (n.tun?.addresses ?? []).flatMap((text, i) => {
    const r = parseInterfaceAddress(text);
    if (!r.ok) { ctx.errors.push({ at: ["node", "tun", "addresses", i], message: r.message }); return []; }
    return [r.value];
  });
  return {
    name: n.name,
    wan,
    tun: { name: n.tun?.name ?? "wesp0", mtu: n.tun?.mtu ?? DEFAULT_TUN_MTU, addresses: tunAddresses, persistent: n.tun?.persistent ?? false, reader: n.tun?.reader ?? "readv" },
    localPrefixes: prefixes(n.local_prefixes ?? [], ["node", "local_prefixes"], ctx),
    control: { socket: controlSocket(n.name, n.control?.socket, ctx) },
    // Not "one per core": static SAs are derived per worker, so both ends must agree on the count (docs/config.md).
    workers: n.workers ?? 1,
    stateDir: stateDir(n.name, n.state_dir, ctx),
    ikePort: n.ike_port ?? DEFAULT_IKE_PORT,
    ...(n.metrics ? { metrics: metrics(n.metrics.listen, ctx) } : {}),
  };
}

/** `node.metrics` (docs/metrics.md): a listen address, loopback by default. */
function metrics(given: string | undefined, ctx: NormalizeContext): MetricsConfig {
  const listen = parseListen(given ?? DEFAULT_METRICS_LISTEN, ctx.baseDir);
  if (typeof listen === "string") {
    ctx.errors.push({ at: ["node", "metrics", "listen"], message: listen });
    return { listen: { host: "127.0.0.1", port: 0 } };
  }
  return { listen };
}

/**
 * Default state directory (durable sequence-number reservations, docs/config.md
 * "Restarts"): /var/lib/wesp/NAME for root; else $XDG_STATE_HOME/wesp/NAME;
 * else ~/.local/state/wesp/NAME (the XDG base-directory default).
 */
function stateDir(name: string, given: string | undefined, ctx: NormalizeContext): string {
  if (given !== undefined) return isAbsolute(given) ? given : resolve(ctx.baseDir, given);
  if (ctx.uid === 0) return `/var/lib/wesp/${name}`;
  const base = ctx.env.XDG_STATE_HOME || `${ctx.env.HOME || "/tmp"}/.local/state`;
  return `${base}/wesp/${name}`;
}

/**
 * Default control socket: /run/wesp/NAME.sock for root; else under
 * $XDG_RUNTIME_DIR (per-user, mode 0700 by systemd); else /tmp/wesp-UID/.
 */
function controlSocket(name: string, given: string | undefined, ctx: NormalizeContext): string {
  let path: string;
  if (given !== undefined) path = isAbsolute(given) ? given : resolve(ctx.baseDir, given);
  else if (ctx.uid === 0) path = `/run/wesp/${name}.sock`;
  else if (ctx.env.XDG_RUNTIME_DIR) path = `${ctx.env.XDG_RUNTIME_DIR}/wesp/${name}.sock`;
  else path = `/tmp/wesp-${ctx.uid}/${name}.sock`;
  // sockaddr_un.sun_path is 108 bytes including the terminating NUL (unix(7)).
  if (Buffer.byteLength(path) > 107) {
    ctx.errors.push({ at: ["node", "control", "socket"], message: `socket path is ${Buffer.byteLength(path)} bytes; Unix sockets allow at most 107` });
  }
  return path;
}

function normalizePeer(p: RawPeer, at: PathSegments, node: NodeConfig, ctx: NormalizeContext): PeerConfig {
  const mode = p.mode ?? "tunnel";
  let wanIndex = p.wan === undefined ? (node.wan.length === 1 ? 0 : -1) : node.wan.findIndex((w) => w.name === p.wan);
  if (p.wan === undefined && wanIndex < 0) {
    ctx.errors.push({ at: [...at, "wan"], message: `is required when the node has several WAN ports (${node.wan.map((w) => w.name).join(", ")})` });
  } else if (wanIndex < 0) {
    ctx.errors.push({ at: [...at, "wan"], message: `names no WAN port of this node (have: ${node.wan.map((w) => w.name).join(", ")})` });
  }
  const port = node.wan[wanIndex];
  // nat_t auto: UDP encapsulation (and address learning) whenever the port speaks UDP.
  const natSetting = p.nat_t ?? "auto";
  const natT = natSetting === "auto" ? port?.encap === "udp" && !isPlain(mode) : natSetting;
  const peerAddress = address(p.address, [...at, "address"], ctx);
  return {
    name: p.name,
    address: peerAddress,
    port: p.port ?? DEFAULT_PORT,
    wan: port?.name ?? p.wan ?? "",
    wanIndex,
    encap: natT ? "udp" : port?.encap ?? "udp",
    natT,
    keepalive: p.keepalive ?? 0,
    prefixes: prefixes(p.prefixes, [...at, "prefixes"], ctx),
    transit: p.transit ?? false,
    ...(p.backup_for !== undefined ? { backupFor: p.backup_for } : {}),
    mode,
    gre: { key: p.gre?.key, sequence: p.gre?.sequence ?? false },
    mtu: p.mtu,
    sas: (p.sas ?? []).map((sa, i) => normalizeSa(sa, [...at, "sas", i], i, ctx)),
    ...(p.ike ? { ike: normalizeIke(p.ike, [...at, "ike"], port?.address, peerAddress, ctx) } : {}),
  };
}

/** An address identity (ID_IPV4_ADDR / ID_IPV6_ADDR) of `a`. */
const addressId = (a: Address): IkeIdentity => ({ type: a.family === 4 ? "ipv4" : "ipv6", value: a.text });

/** A peer's `ike` block; identities default to the outer addresses, proposals are parsed in semantic.ts. */
function normalizeIke(k: RawIke, at: PathSegments, local: Address | undefined, remote: Address, ctx: NormalizeContext): IkePeerConfig {
  const lt = k.lifetime ?? {};
  const withCerts = usesCerts(k.auth);
  if (withCerts && (k.auth.psk !== undefined || k.auth.psk_file !== undefined)) {
    ctx.errors.push({ at: [...at, "auth", k.auth.psk !== undefined ? "psk" : "psk_file"], message: "give either a PSK or certificates (cert, key, ca), not both" });
  }
  const certs = withCerts ? loadIkeCerts(k.auth, [...at, "auth"], ctx) : undefined;
  // with certificates our identity defaults to the certificate's subject (as strongSwan's does)
  const ownId: IkeIdentity | undefined = k.local_id ?? (certs ? { type: "dn", value: certs.chain[0].subject.split("\n").join(", ") } : undefined);
  return {
    psk: withCerts ? new KeyBytes(0) : psk(k.auth, [...at, "auth"], ctx),
    ...(certs ? { certs } : {}),
    ...(k.fragment_size !== undefined ? { fragmentSize: k.fragment_size } : {}),
    localId: ikeId(ownId, [...at, "local_id"], local, ctx),
    remoteId: ikeId(k.remote_id, [...at, "remote_id"], remote, ctx),
    proposals: { ike: k.proposals?.ike ?? ["aes128gcm16-prfsha256-ecp256"], esp: k.proposals?.esp ?? ["aes128gcm16"] },
    lifetime: {
      ikeSeconds: lt.ike_seconds ?? 14400, childSeconds: lt.child_seconds ?? 3600,
      ...(lt.child_bytes !== undefined ? { childBytes: lt.child_bytes } : {}),
      ...(lt.child_packets !== undefined ? { childPackets: lt.child_packets } : {}),
      rekeyMargin: lt.rekey_margin ?? 540, rekeyJitter: lt.rekey_jitter ?? 180,
    },
    dpd: k.dpd ?? 30,
    retry: { min: k.retry?.min ?? 5, max: k.retry?.max ?? 600, alarmAfter: k.retry?.alarm_after ?? 8 },
    initiate: k.initiate ?? true,
  };
}

function ikeId(given: IkeIdentity | undefined, at: PathSegments, dflt: Address | undefined, ctx: NormalizeContext): IkeIdentity {
  if (!given) return dflt ? addressId(dflt) : { type: "ipv4", value: "0.0.0.0" };
  if (given.type === "ipv4" || given.type === "ipv6") {
    const r = parseAddress(given.value);
    const want = given.type === "ipv4" ? 4 : 6;
    if (!r.ok || r.value.family !== want) {
      ctx.errors.push({ at: [...at, "value"], message: `is not an IPv${want} address (type: ${given.type})` });
      return given;
    }
    return { type: given.type, value: r.value.text };
  }
  return { ...given };
}

/**
 * The pre-shared key: `psk` inline, or `psk_file` (the mode rule of key files,
 * keys.ts secretFileMode). Text is taken as its UTF-8 bytes, `0x…` as hex; a
 * file's trailing newline is not part of it. Messages never show the key.
 */
function psk(auth: RawIke["auth"], at: PathSegments, ctx: NormalizeContext): KeyBytes {
  if (auth.psk !== undefined && auth.psk_file !== undefined) {
    ctx.errors.push({ at: [...at, "psk_file"], message: "give either psk or psk_file, not both" });
    return new KeyBytes(0);
  }
  if (auth.psk === undefined && auth.psk_file === undefined) {
    ctx.errors.push({ at: [...at, "psk"], message: "is required (or psk_file)" });
    return new KeyBytes(0);
  }
  const field = auth.psk !== undefined ? "psk" : "psk_file";
  let text = auth.psk;
  if (text === undefined) {
    const path = resolve(ctx.baseDir, auth.psk_file!);
    try {
      const f = readFileAndMode(path, 65536);
      const rule = secretFileMode(`PSK file ${path}`, f.mode);
      if (rule.error) { ctx.errors.push({ at: [...at, field], message: rule.error }); return new KeyBytes(0); }
      if (rule.warning) ctx.warnings.push({ at: [...at, field], message: rule.warning });
      text = f.text.replace(/\r?\n$/, "");
    } catch (e) {
      ctx.errors.push({ at: [...at, field], message: `cannot read PSK file ${path} (${(e as NodeJS.ErrnoException).code ?? "error"})` });
      return new KeyBytes(0);
    }
  }
  if (/^0x/i.test(text)) {
    const r = decodeHexKey(text);
    if (!r.ok) { ctx.errors.push({ at: [...at, field], message: r.message }); return new KeyBytes(0); }
    return r.key;
  }
  const bytes = new TextEncoder().encode(text);
  const key = new KeyBytes(bytes.length);
  key.set(bytes);
  bytes.fill(0);
  if (key.length === 0) ctx.errors.push({ at: [...at, field], message: "is empty" });
  return key;
}

export function isPlain(mode: Mode): boolean {
  return mode === "ipip" || mode === "gre";
}

function normalizeSa(s: RawSa, at: PathSegments, index: number, ctx: NormalizeContext): SaConfig {
  const info = SUITES[s.suite];
  const replayWindow = s.replay_window ?? DEFAULT_REPLAY_WINDOW;
  if (replayWindow > 0 && replayWindow < 32) {
    ctx.errors.push({ at: [...at, "replay_window"], message: `must be 0 (off) or 32..65536, got ${replayWindow}` });
  }
  if (info.icvBytes === 0 && !s.allow_no_integrity) {
    ctx.errors.push({
      at: [...at, "suite"],
      message: `${s.suite} has no integrity protection (RFC 4303 §3.2: confidentiality without integrity is open to attacks); set allow_no_integrity: true to accept it`,
    });
  }
  if (info.icvBytes === 0 && replayWindow > 0) {
    ctx.warnings.push({ at: [...at, "replay_window"], message: "is ignored: without integrity protection the sequence number is not authenticated, so no anti-replay window is kept (RFC 4303 §3.4.3); set replay_window: 0" });
  }
  if (s.allow_no_integrity && info.icvBytes > 0) {
    ctx.warnings.push({ at: [...at, "allow_no_integrity"], message: `has no effect: ${s.suite} has integrity protection` });
  }
  const keyIn = key(s, "key", "in", at, info.keyBytes, info.label, ctx);
  const keyOut = key(s, "key", "out", at, info.keyBytes, info.label, ctx);
  let authKeyIn: KeyBytes | undefined;
  let authKeyOut: KeyBytes | undefined;
  if (info.authKeyBytes > 0) {
    authKeyIn = key(s, "auth_key", "in", at, info.authKeyBytes, "HMAC-SHA-256-128 (RFC 4868 §2.1.1)", ctx);
    authKeyOut = key(s, "auth_key", "out", at, info.authKeyBytes, "HMAC-SHA-256-128 (RFC 4868 §2.1.1)", ctx);
  } else {
    for (const f of ["auth_key_in", "auth_key_out", "auth_key_in_file", "auth_key_out_file"] as const) {
      if (s[f] !== undefined) ctx.errors.push({ at: [...at, f], message: `is not used by ${s.suite} (${info.aead ? "an AEAD suite: its key_in/key_out cover integrity" : "no integrity"}); remove it` });
    }
  }
  return {
    index,
    spiIn: spi(s.spi_in),
    spiOut: spi(s.spi_out),
    suite: s.suite,
    keyIn, keyOut, authKeyIn, authKeyOut,
    replayWindow,
    esn: s.esn ?? false,
    lifetime: lifetimeOf(s.lifetime ?? {}),
  };
}

/** The file's `lifetime` (snake_case soft limits) as the model's. */
function lifetimeOf(l: NonNullable<RawSa["lifetime"]>): Lifetime {
  const { soft_seconds: softSeconds, soft_bytes: softBytes, soft_packets: softPackets, ...hard } = l;
  return { ...hard, ...(softSeconds !== undefined ? { softSeconds } : {}), ...(softBytes !== undefined ? { softBytes } : {}), ...(softPackets !== undefined ? { softPackets } : {}) };
}

/** The model's lifetime as the file spells it (lifetimeOf's inverse): only the limits it sets. */
export function lifetimeToDoc(l: Lifetime): NonNullable<RawSa["lifetime"]> {
  const { softSeconds, softBytes, softPackets, ...hard } = l;
  const out: NonNullable<RawSa["lifetime"]> = { ...(softSeconds !== undefined ? { soft_seconds: softSeconds } : {}), ...(softBytes !== undefined ? { soft_bytes: softBytes } : {}), ...(softPackets !== undefined ? { soft_packets: softPackets } : {}) };
  for (const k of ["seconds", "bytes", "packets"] as const) if (hard[k] !== undefined) out[k] = hard[k];
  return out;
}

/** Schema guarantees a number in range or a 0x-string of ≤ 8 hex digits. */
function spi(v: number | string): number {
  return typeof v === "number" ? v : parseInt(v.slice(2), 16);
}

/**
 * Read `<kind>_<dir>` inline or `<kind>_<dir>_file`; exactly one must be given,
 * and the length must match the suite. Returns an empty KeyBytes on error.
 */
function key(s: RawSa, kind: "key" | "auth_key", dir: "in" | "out", at: PathSegments, want: number, label: string, ctx: NormalizeContext): KeyBytes {
  const inlineField = `${kind}_${dir}` as const;
  const fileField = `${kind}_${dir}_file` as const;
  const inline = s[inlineField];
  const file = s[fileField];
  if (inline !== undefined && file !== undefined) {
    ctx.errors.push({ at: [...at, fileField], message: `give either ${inlineField} or ${fileField}, not both` });
    return new KeyBytes(0);
  }
  if (inline === undefined && file === undefined) {
    ctx.errors.push({ at: [...at, inlineField], message: `is required (or ${fileField})` });
    return new KeyBytes(0);
  }
  const field = inline !== undefined ? inlineField : fileField;
  const r = inline !== undefined
    ? decodeHexKey(inline)
    : readKeyFile(resolve(ctx.baseDir, file!), (m) => ctx.warnings.push({ at: [...at, fileField], message: m }));
  if (!r.ok) {
    ctx.errors.push({ at: [...at, field], message: r.message });
    return new KeyBytes(0);
  }
  if (r.key.length !== want) {
    const size = kind === "key" ? describeKeySize(SUITES[s.suite]) : `${want} bytes`;
    ctx.errors.push({ at: [...at, field], message: `${label} needs ${size}, got ${r.key.length}` });
    return new KeyBytes(0);
  }
  keyField.set(r.key, field);
  if (isAllZero(r.key)) ctx.warnings.push({ at: [...at, field], message: "is all zeros: a placeholder, not a key" });
  return r.key;
}

function address(text: string, at: PathSegments, ctx: NormalizeContext): Address {
  const r = parseAddress(text);
  if (r.ok) return r.value;
  ctx.errors.push({ at, message: r.message });
  return { text, family: 4, bytes: new Uint8Array(4) };
}

function prefixes(list: string[], at: PathSegments, ctx: NormalizeContext): Prefix[] {
  return list.flatMap((text, i) => {
    const r = parsePrefix(text);
    if (r.ok) return [r.value];
    ctx.errors.push({ at: [...at, i], message: r.message });
    return [];
  });
}
