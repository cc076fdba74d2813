// Checks that relate fields to each other, which a JSON Schema cannot express:
// unique names and SPIs, prefixes that do not overlap, address families that
// match their WAN port, modes allowed on a port, keys not reused.
// Runs on a model that normalize.ts built without errors.

import { availableParallelism } from "node:os";
import { familyName, isMulticastOrBroadcast, isUnspecified, maskBytes, prefixesOverlap } from "./addr.ts";
import { createHash } from "node:crypto";
import { keysEqual } from "./keys.ts";
import type { Address, Config, PeerConfig, Prefix, WanPort } from "./model.ts";
import { isPlain, keyField } from "./normalize.ts";
import type { PathSegments, RawIssue } from "./schema_errors.ts";
import { SUITES } from "./suites.ts";
import { innerRoom } from "./inner_mtu.ts";
import { formatPath } from "./schema_errors.ts";
import { parseProposal } from "../ike/proposals.ts";
import { configIdentity } from "../ike/config.ts";
import { backupPair, checkFailover } from "./selectors.ts";
import { idInCert } from "../ike/certs.ts";
import { checkWorkers } from "./workers.ts";

export interface SemanticResult {
  errors: RawIssue[];
  warnings: RawIssue[];
}

export function checkSemantics(c: Config): SemanticResult {
  const r: SemanticResult = { errors: [], warnings: [] };
  checkNode(c, r);
  c.peers.forEach((p, i) => checkPeer(c, p, ["peers", i], r));
  checkUniquePeers(c, r);
  checkSpis(c, r);
  checkSoftLifetimes(c, r);
  checkPrefixes(c, r);
  checkFailover(c, r.errors);
  checkKeyReuse(c, r);
  checkWorkers(c, r.errors);
  return r;
}

function checkNode(c: Config, r: SemanticResult): void {
  const n = c.node;
  firstDuplicate(n.wan.map((w) => w.name), (i, j) =>
    r.errors.push({ at: ["node", "wan", j, "name"], message: `duplicate WAN port name "${n.wan[j].name}" (also node.wan[${i}].name)` }));
  firstDuplicate(n.wan.map((w) => `${w.address.text}|${w.port}`), (i, j) =>
    r.errors.push({ at: ["node", "wan", j, "address"], message: `same address and port as node.wan[${i}]` }));
  n.wan.forEach((w, i) => {
    if (isMulticastOrBroadcast(w.address)) r.errors.push({ at: ["node", "wan", i, "address"], message: `${w.address.text} is not a unicast address` });
  });
  const v6 = n.localPrefixes.some((p) => p.family === 6) || c.peers.some((p) => p.prefixes.some((q) => q.family === 6));
  // RFC 8200 §5: every IPv6 link carries at least 1280-byte packets.
  if (v6 && n.tun.mtu < 1280) {
    r.errors.push({ at: ["node", "tun", "mtu"], message: `is ${n.tun.mtu}, but IPv6 prefixes are configured and IPv6 needs at least 1280 (RFC 8200 §5)` });
  }
  if (n.workers > availableParallelism()) {
    r.warnings.push({ at: ["node", "workers"], message: `${n.workers} workers on ${availableParallelism()} cores: more workers than cores only adds contention` });
  }
  // IKE binds ike_port on every address an IKE peer's WAN port has; the data plane binds each WAN port's NAT-T port
  const ikeAddresses = new Set(c.peers.filter((p) => p.ike && n.wan[p.wanIndex]).map((p) => n.wan[p.wanIndex].address.text));
  n.wan.forEach((w, i) => {
    if (w.port === n.ikePort && ikeAddresses.has(w.address.text)) {
      r.errors.push({ at: ["node", "wan", i, "port"], message: `is node.ike_port (${n.ikePort}) on an address IKE uses: IKE and NAT-T need two ports (RFC 7296 §2.23)` });
    }
  });
  if (n.tun.persistent && n.tun.addresses.length > 0) {
    r.warnings.push({ at: ["node", "tun", "addresses"], message: "are set on a persistent TUN: assigning them needs CAP_NET_ADMIN, which a persistent TUN is meant to avoid" });
  }
}

type PrefixAt = { qi: number; k: number; pre: Prefix };
interface PrefixIndex { byNet: Map<string, PrefixAt[]>; lengths: Set<string> }
const prefixIndexes = new WeakMap<Config, PrefixIndex>();

/** The network of `bytes` at `length` bits, as a map key with the family. */
function netKey(family: number, bytes: Uint8Array, length: number): string {
  return `${family}/${length}/${Buffer.from(maskBytes(bytes, length)).toString("hex")}`;
}

/**
 * Every peer prefix that contains `addr`, in file order. An index by
 * (family, length, network) built once per config: one lookup per distinct
 * prefix length instead of a scan of every prefix for every peer.
 */
function tunnelledPrefixesHolding(c: Config, addr: Address): PrefixAt[] {
  let index = prefixIndexes.get(c);
  if (!index) {
    const built: PrefixIndex = { byNet: new Map(), lengths: new Set() };
    c.peers.forEach((q, qi) => q.prefixes.forEach((pre, k) => {
      const key = netKey(pre.family, pre.bytes, pre.length);
      built.lengths.add(`${pre.family}/${pre.length}`);
      const list = built.byNet.get(key);
      if (list) list.push({ qi, k, pre });
      else built.byNet.set(key, [{ qi, k, pre }]);
    }));
    prefixIndexes.set(c, built);
    index = built;
  }
  const found: PrefixAt[] = [];
  for (const fl of index.lengths) {
    const [family, len] = fl.split("/").map(Number);
    if (family !== addr.family) continue;
    const list = index.byNet.get(netKey(family, addr.bytes, len));
    if (list) found.push(...list);
  }
  return found.sort((x, y) => x.qi - y.qi || x.k - y.k);
}

function checkPeer(c: Config, p: PeerConfig, at: PathSegments, r: SemanticResult): void {
  const port = c.node.wan[p.wanIndex];
  if (p.address.family !== port.address.family) {
    r.errors.push({ at: [...at, "address"], message: `is ${familyName(p.address.family)} but WAN port "${port.name}" (node.wan[${p.wanIndex}].address) is ${familyName(port.address.family)}` });
  }
  if (isUnspecified(p.address) || isMulticastOrBroadcast(p.address)) {
    r.errors.push({ at: [...at, "address"], message: `${p.address.text} is not a unicast address` });
  }
  c.node.wan.forEach((w, i) => {
    if (w.address.text === p.address.text) r.errors.push({ at: [...at, "address"], message: `is this node's own address (node.wan[${i}].address)` });
  });
  // A peer's outer address inside a tunnelled prefix would send the tunnel into itself.
  for (const { qi, k, pre } of tunnelledPrefixesHolding(c, p.address)) {
    r.errors.push({ at: [...at, "address"], message: `${p.address.text} lies inside peers[${qi}].prefixes[${k}] (${pre.text}): outer packets would be routed into the tunnel` });
  }
  // RFC 791 §3.2 / RFC 8200 §5 minimum link MTUs for the outer family.
  const minMtu = p.address.family === 6 ? 1280 : 576;
  if (p.mtu !== undefined && p.mtu < minMtu) {
    r.errors.push({ at: [...at, "mtu"], message: `is ${p.mtu}, below the ${familyName(p.address.family)} minimum of ${minMtu}` });
  } else if (p.mtu !== undefined && p.prefixes.some((q) => q.family === 6)) {
    checkInnerRoom(p, port, p.mtu, at, r);
  }
  checkMode(p, port.name, port.trusted, port.encap, at, r);
  checkNatTIntegrity(p, at, r);
  if (p.ike) checkIke(p, at, r);
}

/**
 * A peer's `ike` block: an ESP mode (tunnel, or transport-ipip / transport-gre,
 * which host/ike negotiates as transport mode between the WAN addresses with
 * USE_TRANSPORT_MODE, RFC 7296 §1.3.1; plain modes are refused by checkMode), proposals that parse, rekeys that start before the lifetime ends, a retry
 * range that is one, identities host/ike can send, and with certificates our
 * identity inside our certificate.
 */
function checkIke(p: PeerConfig, at: PathSegments, r: SemanticResult): void {
  const k = p.ike!;
  const ikeAt = [...at, "ike"];
  for (const proto of ["ike", "esp"] as const) {
    k.proposals[proto].forEach((text, i) => {
      const pr = parseProposal(text, proto);
      if (!pr.ok) r.errors.push({ at: [...ikeAt, "proposals", proto, i], message: pr.message });
    });
  }
  checkIkeAuth(k, ikeAt, r);
  const lt = k.lifetime;
  const early = lt.rekeyMargin + lt.rekeyJitter;
  for (const [life, field] of [[lt.childSeconds, "child_seconds"], [lt.ikeSeconds, "ike_seconds"]] as const) {
    if (early >= life) {
      r.errors.push({ at: [...ikeAt, "lifetime", "rekey_margin"], message: `rekey_margin + rekey_jitter (${early} s) must be less than ${field} (${life} s): the rekey would start before the SA exists` });
      break;
    }
  }
  if (k.retry.min > k.retry.max) r.errors.push({ at: [...ikeAt, "retry", "min"], message: `(${k.retry.min} s) is more than retry.max (${k.retry.max} s)` });
  // §2.15: a PSK is as strong as its entropy; a short one falls to an offline dictionary attack on one IKE_AUTH.
  if (k.psk.length > 0 && k.psk.length < 20) r.warnings.push({ at: [...ikeAt, "auth"], message: `the PSK is ${k.psk.length} bytes: anyone who sees one IKE_AUTH exchange can guess a short one offline (RFC 7296 §2.15); use 20 or more random bytes` });
}

/** DNs that parse, a fragment size RFC 7383 can use, and (certificates) our identity in our certificate. */
function checkIkeAuth(k: NonNullable<PeerConfig["ike"]>, ikeAt: PathSegments, r: SemanticResult): void {
  for (const [id, field] of [[k.localId, "local_id"], [k.remoteId, "remote_id"]] as const) {
    if (id.type !== "dn") continue;
    try {
      configIdentity(id);
    } catch (e) {
      r.errors.push({ at: [...ikeAt, field, "value"], message: `is not a DN (${(e as Error).message}); write it as "C=CH, O=wesp, CN=ce1"` });
    }
  }
  // RFC 7383 §2.5.1: fragments must still carry a useful payload; IPv4's minimum datagram is 576
  if (k.fragmentSize !== undefined && k.fragmentSize > 0 && k.fragmentSize < 576) {
    r.errors.push({ at: [...ikeAt, "fragment_size"], message: `${k.fragmentSize} is below 576 (the IPv4 minimum): 0 turns fragmentation off` });
  }
  if (!k.certs) return;
  let own;
  try {
    own = configIdentity(k.localId);
  } catch {
    return; // reported above or by normalize
  }
  const bad = idInCert(own, k.certs.chain[0]);
  if (bad) r.errors.push({ at: [...ikeAt, "local_id"], message: `${bad}: the peer would refuse it (RFC 4945 §3.1); use the certificate's subject (dn) or one of its subjectAltNames` });
}

/**
 * NAT-T moves the peer's address to wherever its authenticated packets come
 * from. An SA without integrity authenticates nothing (RFC 4303 §3.4.3 also
 * forbids anti-replay on it), so the core never learns from one; a peer that
 * may sit behind a NAT would then lose its traffic, and trusting its
 * datagrams instead would let anyone who knows the SPI redirect it.
 */
function checkNatTIntegrity(p: PeerConfig, at: PathSegments, r: SemanticResult): void {
  if (!p.natT) return;
  const k = p.sas.findIndex((sa) => SUITES[sa.suite].icvBytes === 0);
  if (k < 0) return;
  r.errors.push({
    at: [...at, "nat_t"],
    message: `cannot be true (set, or "auto" on a UDP port) while ${formatPath([...at, "sas", k, "suite"])} is ${p.sas[k].suite}, which has no integrity protection: NAT traversal follows the peer's address only on authenticated packets; set nat_t: false`,
  });
}

/**
 * RFC 8200 §5: every IPv6 link carries 1280-byte packets, and the tunnel is
 * such a link for the peer's IPv6 prefixes; RFC 8201 hosts ignore a smaller
 * "Packet Too Big". So the peer's path MTU less the encapsulation (outer IP,
 * UDP, ESP header, IV, ICV, padding to the block, GRE) must leave 1280 bytes.
 * With two SAs (a rekey) the larger overhead counts. The room is the core's
 * own figure (inner_mtu.ts).
 */
function checkInnerRoom(p: PeerConfig, port: WanPort, mtu: number, at: PathSegments, r: SemanticResult): void {
  const suites = isPlain(p.mode) ? [undefined] : p.sas.map((sa) => sa.suite);
  const room = (m: number) => Math.min(...suites.map((s) => innerRoom(p, port, s, m, 6)));
  const inner = room(mtu);
  if (inner >= 1280) return;
  let need = mtu;
  while (room(need) < 1280) need++;
  r.errors.push({
    at: [...at, "mtu"],
    message: `is ${mtu}, which leaves ${inner} bytes for inner packets after the ${p.mode} encapsulation, but ${formatPath([...at, "prefixes"])} has IPv6 prefixes and IPv6 needs 1280 (RFC 8200 §5): use at least ${need}`,
  });
}

function checkMode(p: PeerConfig, portName: string, trusted: boolean, encap: string, at: PathSegments, r: SemanticResult): void {
  if (isPlain(p.mode)) {
    if (!trusted) {
      r.errors.push({ at: [...at, "mode"], message: `"${p.mode}" sends traffic unencrypted and is only allowed on a trusted WAN port; "${portName}" is not (set trusted: true on it, or use an ESP mode)` });
    }
    if (p.sas.length > 0) r.errors.push({ at: [...at, "sas"], message: `must be absent for mode "${p.mode}" (no ESP)` });
    if (p.ike) r.errors.push({ at: [...at, "ike"], message: `must be absent for mode "${p.mode}" (no ESP, nothing to negotiate)` });
    if (p.natT) r.errors.push({ at: [...at, "nat_t"], message: `cannot be true for mode "${p.mode}": NAT traversal applies to ESP only` });
  } else {
    if (p.sas.length === 0 && !p.ike) r.errors.push({ at: [...at, "sas"], message: `needs at least 1 SA for mode "${p.mode}" (or an ike block to negotiate them)` });
    if (p.sas.length > 0 && p.ike) r.errors.push({ at: [...at, "ike"], message: "give either sas (static keys) or ike (negotiated), not both" });
    if (p.natT && encap === "raw") {
      r.errors.push({ at: [...at, "nat_t"], message: `NAT traversal needs UDP encapsulation (RFC 3948) but WAN port "${portName}" has encap: raw` });
    }
  }
  const gre = p.mode === "gre" || p.mode === "transport-gre";
  if (!gre && (p.gre.key !== undefined || p.gre.sequence)) {
    r.errors.push({ at: [...at, "gre"], message: `only applies to mode "gre" or "transport-gre", not "${p.mode}"` });
  }
  if (p.keepalive > 0 && !p.natT) {
    r.errors.push({ at: [...at, "keepalive"], message: "NAT-keepalives (RFC 3948 §2.3) need nat_t (UDP encapsulation)" });
  }
}

function checkUniquePeers(c: Config, r: SemanticResult): void {
  firstDuplicate(c.peers.map((p) => p.name), (i, j) =>
    r.errors.push({ at: ["peers", j, "name"], message: `duplicate peer name "${c.peers[j].name}" (also peers[${i}].name)` }));
  c.peers.forEach((p, j) => {
    if (p.name === c.node.name) r.errors.push({ at: ["peers", j, "name"], message: `is the node's own name (node.name)` });
  });
  // Plain ipip/gre packets carry no SPI: the outer source address (and GRE key) is all that tells peers apart.
  const plainKey = (p: PeerConfig) => `${p.wanIndex}|${p.address.text}|${p.mode === "gre" ? `gre:${p.gre.key ?? "-"}` : "ipip"}`;
  const plain = c.peers.map((p, i) => ({ p, i })).filter(({ p }) => isPlain(p.mode));
  firstDuplicate(plain.map(({ p }) => plainKey(p)), (a, b) =>
    r.errors.push({ at: ["peers", plain[b].i, "address"], message: `same address, WAN port and ${plain[b].p.mode === "gre" ? "GRE key" : "mode"} as peers[${plain[a].i}]: inbound packets could not be told apart` }));
  // IKE finds a peer's config by the address its IKE_SA_INIT comes from (host/ike/runtime.ts configFor):
  // two ike peers at one address (say a transport-gre and a transport-ipip link to one CE) cannot both be negotiated.
  const ike = c.peers.map((p, i) => ({ p, i })).filter(({ p }) => p.ike);
  firstDuplicate(ike.map(({ p }) => p.address.text), (a, b) =>
    r.errors.push({ at: ["peers", ike[b].i, "address"], message: `same address as peers[${ike[a].i}], and both have ike: IKE tells peers apart by address, so only one of them could be negotiated (use one peer per remote CE)` }));
}

function checkSpis(c: Config, r: SemanticResult): void {
  // Inbound lookup is by SPI alone (RFC 4303 §2.1 lets the receiver choose it), so it must be unique on the node.
  const seen = new Map<number, string>();
  c.peers.forEach((p, i) => p.sas.forEach((sa, k) => {
    const here = formatPath(["peers", i, "sas", k, "spi_in"]);
    const prev = seen.get(sa.spiIn);
    if (prev) r.errors.push({ at: ["peers", i, "sas", k, "spi_in"], message: `duplicate SPI 0x${hex8(sa.spiIn)} (also ${prev})` });
    else seen.set(sa.spiIn, here);
  }));
  c.peers.forEach((p, i) => firstDuplicate(p.sas.map((sa) => sa.spiOut), (a, b) =>
    r.errors.push({ at: ["peers", i, "sas", b, "spi_out"], message: `duplicate SPI 0x${hex8(p.sas[b].spiOut)} (also peers[${i}].sas[${a}].spi_out)` })));
}

/** A soft lifetime asks for the rekey before the hard one ends the SA (RFC 4301 §4.4.2.1): it must be below it. */
function checkSoftLifetimes(c: Config, r: SemanticResult): void {
  c.peers.forEach((p, i) => p.sas.forEach((sa, k) => {
    const lt = sa.lifetime;
    for (const [soft, hard, field] of [[lt.softSeconds, lt.seconds, "seconds"], [lt.softBytes, lt.bytes, "bytes"], [lt.softPackets, lt.packets, "packets"]] as const) {
      if (soft !== undefined && hard !== undefined && soft >= hard) {
        r.errors.push({ at: ["peers", i, "sas", k, "lifetime", `soft_${field}`], message: `must be less than lifetime.${field} (${hard}): the rekey is asked for before the SA ends` });
      }
    }
  }));
}

function checkPrefixes(c: Config, r: SemanticResult): void {
  const all: { at: PathSegments; p: Prefix; owner: number }[] = [];
  c.node.localPrefixes.forEach((p, k) => all.push({ at: ["node", "local_prefixes", k], p, owner: -1 }));
  c.peers.forEach((peer, i) => peer.prefixes.forEach((p, k) => all.push({ at: ["peers", i, "prefixes", k], p, owner: i })));
  // Two CIDR prefixes overlap exactly when one contains the other. Sorted by
  // family, address, then length, every prefix that contains x comes before it
  // and is still on the stack of open prefixes when x is reached: O(n log n)
  // for the tens of thousands of prefixes a controller's CE may hold. Each
  // prefix is reported once, naming the first (in file order) it overlaps.
  const order = all.map((_, i) => i).sort((i, j) => comparePrefix(all[i].p, all[j].p) || i - j);
  const firstOverlap = new Map<number, number>();
  const open: number[] = [];
  for (const x of order) {
    while (open.length > 0 && !prefixesOverlap(all[open[open.length - 1]].p, all[x].p)) open.pop();
    for (const y of open) {
      if (backupPair(c.peers[all[x].owner], c.peers[all[y].owner])) continue; // the SPD's order decides (selectors.ts)
      const [a, b] = y < x ? [y, x] : [x, y];
      const prev = firstOverlap.get(b);
      if (prev === undefined || a < prev) firstOverlap.set(b, a);
    }
    open.push(x);
  }
  for (const b of [...firstOverlap.keys()].sort((i, j) => i - j)) {
    const a = firstOverlap.get(b)!;
    const what = all[a].owner === all[b].owner ? "overlaps" : all[a].owner === -1 ? "overlaps this node's own" : "overlaps another peer's";
    r.errors.push({ at: all[b].at, message: `${all[b].p.text} ${what} ${all[a].p.text} (${formatPath(all[a].at)}): the destination would be ambiguous` });
  }
}

/** Family, then network address, then shorter (containing) prefixes first. */
function comparePrefix(a: Prefix, b: Prefix): number {
  if (a.family !== b.family) return a.family - b.family;
  for (let i = 0; i < a.bytes.length; i++) if (a.bytes[i] !== b.bytes[i]) return a.bytes[i] - b.bytes[i];
  return a.length - b.length;
}

function checkKeyReuse(c: Config, r: SemanticResult): void {
  // One key in two places means two senders share a (key, sequence number) nonce space:
  // RFC 4106 §3.1 / RFC 7634 §2 require a nonce never repeat under one key.
  const keys: { at: PathSegments; key: Uint8Array }[] = [];
  c.peers.forEach((p, i) => p.sas.forEach((sa, k) => {
    for (const [key, dflt] of [[sa.keyIn, "key_in"], [sa.keyOut, "key_out"], [sa.authKeyIn, "auth_key_in"], [sa.authKeyOut, "auth_key_out"]] as const) {
      if (key) keys.push({ at: ["peers", i, "sas", k, keyField.get(key) ?? dflt], key });
    }
  }));
  // By a digest of each key, so tens of thousands of keys cost one pass (and no key turns into a string).
  const byDigest = new Map<string, number[]>();
  for (let b = 0; b < keys.length; b++) {
    if (keys[b].key.length === 0) continue;
    const d = createHash("sha256").update(keys[b].key).digest("base64");
    const same = byDigest.get(d);
    const a = same?.find((i) => keysEqual(keys[i].key, keys[b].key));
    if (a !== undefined) {
      r.errors.push({ at: keys[b].at, message: `is the same key as ${formatPath(keys[a].at)}: every SA and direction needs its own key` });
      continue;
    }
    if (same) same.push(b);
    else byDigest.set(d, [b]);
  }
}

function firstDuplicate<T>(values: T[], report: (first: number, dup: number) => void): void {
  const seen = new Map<T, number>();
  values.forEach((v, i) => {
    const prev = seen.get(v);
    if (prev !== undefined) report(prev, i);
    else seen.set(v, i);
  });
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, "0");
}
