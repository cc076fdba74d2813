// Capturing ESP in a lab namespace and having independent dissectors check it.
//
// tshark (Wireshark 4.0, Debian) decrypts ESP with an `esp_sa` UAT table — the same
// table `wesp keys --wireshark` writes — and, with `esp.enable_authentication_check`,
// marks each frame's ICV good or bad (fields `esp.icv_good` / `esp.icv_bad`).
// Wireshark 4.0 has no ChaCha20-Poly1305 for ESP (RFC 7634; it arrived in a later
// release), so frames of such SAs are checked by scapy's ESP (python3-scapy 2.5 with
// `cryptography`), again an implementation independent of wesp. Every result says
// which dissector checked it.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { exec, run, waitFor, type Netns, type LabProcess } from "./netns.ts";

// ---------------------------------------------------------------------------
// Capture
// ---------------------------------------------------------------------------

export interface Capture {
  readonly pcap: string;
  /** Stops the capture (SIGINT lets tcpdump flush) and returns the pcap path. */
  stop(): Promise<string>;
  /** After `stop`: packets tcpdump wrote, and those the kernel dropped before it could (a busy machine). */
  stats?: { captured: number; dropped: number };
}

/**
 * Makes a veth carry what a wire would: frames of at most its MTU. wesp sends
 * ESP-in-UDP as UDP_SEGMENT trains (docs/io.md, offloads), and a veth passes a
 * GSO packet on whole, so tcpdump on it would see one 64 KiB "datagram" holding
 * dozens of ESP packets. gso_max_segs 1 on this end and on its peer (found
 * through the peer's namespace id) makes the kernel cut trains before either
 * end hands them on, as a NIC would; the capture then shows one ESP packet per
 * frame in both directions. Not a veth, or no peer found: left as it is.
 */
async function wireSized(ns: Netns, iface: string): Promise<void> {
  await ns.ip("link", "set", "dev", iface, "gso_max_segs", "1");
  const [me] = JSON.parse(await ns.ip("-j", "-d", "link", "show", "dev", iface)) as { link_index?: number; link_netnsid?: number }[];
  if (me?.link_index === undefined || me.link_netnsid === undefined) return;
  const ids = await ns.ip("netns", "list-id");
  const peerNs = new RegExp(`nsid ${me.link_netnsid} \\(iproute2 netns name: (\\S+)\\)`).exec(ids)?.[1];
  if (!peerNs) return;
  const links = JSON.parse(await run(["ip", "-n", peerNs, "-j", "link", "show"])) as { ifindex: number; ifname: string }[];
  const peer = links.find((l) => l.ifindex === me.link_index);
  if (peer) await run(["ip", "-n", peerNs, "link", "set", "dev", peer.ifname, "gso_max_segs", "1"]);
}

/**
 * Starts tcpdump on `iface` inside `ns`, writing `pcap`; resolves once it listens.
 * `--immediate-mode` and `-U` so no packet is lost in a buffer when the test stops
 * it right after the traffic; `-Z root` so it can write into the lab's 0700 dir.
 */
export async function startCapture(ns: Netns, iface: string, pcap: string, filter: string[] = []): Promise<Capture> {
  await wireSized(ns, iface);
  // -B: a 16 MiB kernel buffer, so bursts (a TCP transfer) are not dropped on a loaded machine
  const p: LabProcess = ns.spawn(["tcpdump", "-Z", "root", "-i", iface, "-n", "-B", "16384", "--immediate-mode", "-U", "-w", pcap, ...filter]);
  await waitFor(() => /listening on/.test(p.stderr) || !p.running, `tcpdump on ${ns.name}/${iface}`);
  if (!p.running) throw new Error(`tcpdump failed: ${p.stderr}`);
  const capture: Capture = {
    pcap,
    async stop() {
      await p.stop("SIGINT", 3000);
      const n = (what: string) => Number(new RegExp(`(\\d+) packets? ${what}`).exec(p.stderr)?.[1] ?? NaN);
      capture.stats = { captured: n("captured"), dropped: n("dropped by kernel") };
      return pcap;
    },
  };
  return capture;
}

// ---------------------------------------------------------------------------
// SAs and the esp_sa table
// ---------------------------------------------------------------------------

/** ESP transforms by their IKEv2 names (RFC 8221 §5, §6). */
export type EspEncAlg = "aes-gcm-16" | "chacha20-poly1305" | "aes-cbc" | "null";
export type EspAuthAlg = "none" | "hmac-sha256-128" | "hmac-sha1-96";

export interface EspSa {
  spi: number;
  /** Outer addresses; omitted = any ("*" in the table). */
  src?: string;
  dst?: string;
  enc: EspEncAlg;
  /** For AEADs: key followed by the 4-byte salt, as IKEv2 derives it (RFC 4106 §8.1, RFC 7634 §4). */
  encKey: Uint8Array;
  auth: EspAuthAlg;
  authKey?: Uint8Array;
}

// Wireshark 4.0's UAT value strings (packet-ipsec.c); they must match exactly.
const WS_ENC: Partial<Record<EspEncAlg, string>> = {
  "aes-gcm-16": "AES-GCM with 16 octet ICV [RFC4106]",
  "aes-cbc": "AES-CBC [RFC3602]",
  null: "NULL",
};
const WS_AUTH: Record<EspAuthAlg, string> = {
  none: "NULL",
  "hmac-sha256-128": "HMAC-SHA-256-128 [RFC4868]",
  "hmac-sha1-96": "HMAC-SHA-1-96 [RFC2404]",
};

/** Whether this tshark can check frames of `sa` itself. */
export function tsharkSupports(sa: EspSa): boolean {
  return WS_ENC[sa.enc] !== undefined;
}

const hexOf = (b: Uint8Array) => Buffer.from(b).toString("hex");

/**
 * One record of Wireshark's `esp_sa` table:
 * protocol, src, dst, SPI, encryption algorithm, key, authentication algorithm, key.
 */
export function espSaRecord(sa: EspSa): string {
  const enc = WS_ENC[sa.enc];
  if (!enc) throw new Error(`Wireshark 4.0 cannot decrypt ESP ${sa.enc}`);
  const v6 = (sa.src ?? sa.dst ?? "").includes(":");
  const f = [
    v6 ? "IPv6" : "IPv4",
    sa.src ?? "*",
    sa.dst ?? "*",
    "0x" + sa.spi.toString(16).padStart(8, "0"),
    enc,
    sa.encKey.length ? "0x" + hexOf(sa.encKey) : "",
    WS_AUTH[sa.auth],
    sa.authKey?.length ? "0x" + hexOf(sa.authKey) : "",
  ];
  return f.map((x) => `"${x}"`).join(",");
}

// ---------------------------------------------------------------------------
// Checking
// ---------------------------------------------------------------------------

export interface EspFrame {
  /** 1-based frame number in the pcap. */
  frame: number;
  outerSrc: string;
  outerDst: string;
  /** UDP-encapsulated (RFC 3948) rather than raw IP protocol 50. */
  udp: boolean;
  sport?: number;
  dport?: number;
  /** The ESP packet as sent (the UDP payload), for replaying or tampering; UDP only. */
  esp?: Uint8Array;
  spi: number;
  seq: number;
  /** "unchecked": no SA given for this SPI (or the dissector could not apply it). */
  icv: "good" | "bad" | "unchecked";
  checkedBy: "tshark" | "scapy" | "none";
  /** Inner header after decryption (tunnel mode), when the ICV was good. */
  innerSrc?: string;
  innerDst?: string;
  /** ESP next header (RFC 4303 §2.6) after decryption. */
  nextHeader?: number;
}

const FIELDS = [
  "frame.number", "frame.protocols", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "udp.srcport", "udp.dstport",
  "udp.payload", "esp.spi", "esp.sequence", "esp.icv_good", "esp.icv_bad", "esp.protocol",
];

/**
 * Every ESP frame in `pcap` with its ICV verdict. Frames of SAs tshark supports are
 * checked by tshark; the rest of the SAs (ChaCha20-Poly1305) by scapy. With
 * `via: "scapy"` scapy checks every SA — used to show both dissectors agree.
 */
export async function checkEsp(pcap: string, sas: EspSa[], via: "auto" | "scapy" = "auto"): Promise<EspFrame[]> {
  const forTshark = via === "auto" ? sas.filter(tsharkSupports) : [];
  const forScapy = sas.filter((s) => !forTshark.includes(s));
  return check(pcap, forTshark.map(espSaRecord), forScapy);
}

/**
 * Like `checkEsp`, with tshark given an `esp_sa` table as written by
 * `wesp keys --wireshark` (comment lines skipped). `scapySas` are checked by scapy:
 * the SAs the table cannot hold (it lists ChaCha20-Poly1305 only as a comment).
 */
export async function checkEspTable(pcap: string, table: string, scapySas: EspSa[] = []): Promise<EspFrame[]> {
  const records = table.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  return check(pcap, records, scapySas);
}

async function check(pcap: string, records: string[], forScapy: EspSa[]): Promise<EspFrame[]> {
  const args = ["tshark", "-r", pcap, "-n", "-Y", "esp",
    "-o", "esp.enable_encryption_decode:TRUE", "-o", "esp.enable_authentication_check:TRUE",
    ...records.flatMap((r) => ["-o", `uat:esp_sa:${r}`]),
    "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=|",
    ...FIELDS.flatMap((f) => ["-e", f])];
  const r = await exec(args, { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`tshark failed (${r.code}): ${r.stderr}`);
  const frames = r.stdout.split("\n").filter(Boolean).map(parseTsharkLine);
  if (forScapy.length) {
    const byFrame = new Map<number, EspFrame>();
    for (const f of await scapyCheck(pcap, forScapy)) byFrame.set(f.frame, f);
    for (let i = 0; i < frames.length; i++) {
      const s = byFrame.get(frames[i].frame);
      if (s) frames[i] = { ...frames[i], ...s, outerSrc: frames[i].outerSrc, outerDst: frames[i].outerDst };
    }
  }
  return frames;
}

function parseTsharkLine(line: string): EspFrame {
  const c = line.split("\t");
  const get = (name: string) => (c[FIELDS.indexOf(name)] ?? "").split("|").filter((x) => x !== "");
  const protos = get("frame.protocols")[0]?.split(":") ?? [];
  const espAt = protos.indexOf("esp");
  const outerFam = protos.find((p, i) => i < espAt && (p === "ip" || p === "ipv6")) ?? "ip";
  const innerFam = protos.slice(espAt + 1).find((p) => p === "ip" || p === "ipv6");
  const addr = (fam: string, which: "src" | "dst", inner: boolean) => {
    const all = get(`${fam}.${which}`);
    // the outer header is the first of its family; the inner one follows it
    return inner ? all[fam === outerFam ? 1 : 0] : all[0];
  };
  const good = get("esp.icv_good")[0];
  const bad = get("esp.icv_bad")[0];
  const icv = good === "1" ? "good" : bad === "1" ? "bad" : "unchecked";
  const f: EspFrame = {
    frame: Number(get("frame.number")[0]),
    outerSrc: addr(outerFam, "src", false) ?? "",
    outerDst: addr(outerFam, "dst", false) ?? "",
    udp: protos.includes("udp"),
    ...(protos.includes("udp")
      ? {
          sport: Number(get("udp.srcport")[0]),
          dport: Number(get("udp.dstport")[0]),
          esp: Uint8Array.from(Buffer.from((get("udp.payload")[0] ?? "").replace(/:/g, ""), "hex")),
        }
      : {}),
    spi: parseInt(get("esp.spi")[0] ?? "0", 16),
    seq: Number(get("esp.sequence")[0] ?? 0),
    icv,
    checkedBy: icv === "unchecked" ? "none" : "tshark",
  };
  if (icv === "good") {
    const nh = get("esp.protocol")[0];
    if (nh !== undefined) f.nextHeader = Number(nh);
    if (innerFam) {
      f.innerSrc = addr(innerFam, "src", true);
      f.innerDst = addr(innerFam, "dst", true);
    }
  }
  return f;
}

// Reads the pcap itself (classic pcap; Ethernet, raw IP or Linux cooked link types)
// and hands each ESP packet (UDP 4500 with a non-zero first word, or IP protocol 50)
// whose SPI is in the table to scapy's ESP transforms: the integrity algorithm's
// verify, then the cipher's decrypt (which checks an AEAD's tag). Only scapy's ESP
// layer is imported and nothing else is dissected: full scapy costs ~30 ms a frame.
const SCAPY_PY = String.raw`
import json, struct, sys
from scapy.layers.ipsec import ESP, SecurityAssociation, IPSecIntegrityError
table = json.load(sys.stdin)
ENC = {"aes-gcm-16": "AES-GCM", "chacha20-poly1305": "CHACHA20-POLY1305", "aes-cbc": "AES-CBC", "null": "NULL"}
AUTH = {"none": "NULL", "hmac-sha256-128": "SHA2-256-128", "hmac-sha1-96": "HMAC-SHA1-96"}
sas = {}
for s in table:
    kw = dict(crypt_algo=ENC[s["enc"]], crypt_key=bytes.fromhex(s["encKey"]), auth_algo=AUTH[s["auth"]])
    if s.get("authKey"): kw["auth_key"] = bytes.fromhex(s["authKey"])
    sas[s["spi"]] = SecurityAssociation(ESP, spi=s["spi"], **kw)
def addrs(ip):
    if ip[0] >> 4 == 4: return ip[9], (ip[0] & 15) * 4, ip[12:16], ip[16:20], 4
    return ip[6], 40, ip[8:24], ip[24:40], 6
def text(a):
    import ipaddress
    return str(ipaddress.ip_address(a))
raw = open(sys.argv[1], "rb").read()
magic = raw[:4]
end = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
link = struct.unpack(end + "I", raw[20:24])[0]
off, n = 24, 0
while off + 16 <= len(raw):
    incl = struct.unpack(end + "I", raw[off + 8:off + 12])[0]
    frame = raw[off + 16:off + 16 + incl]
    off += 16 + incl
    n += 1
    if link == 1:
        et, l2 = struct.unpack("!H", frame[12:14])[0], 14
        while et == 0x8100: et, l2 = struct.unpack("!H", frame[l2 + 2:l2 + 4])[0], l2 + 4
    elif link == 113: et, l2 = struct.unpack("!H", frame[14:16])[0], 16
    elif link in (101, 12): et, l2 = (0x86dd if frame[0] >> 4 == 6 else 0x800), 0
    else: raise SystemExit("unsupported link type %d" % link)
    if et not in (0x800, 0x86dd): continue
    ip = frame[l2:]
    proto, hl, src, dst, ver = addrs(ip)
    if proto == 17:
        sport, dport = struct.unpack("!HH", ip[hl:hl + 4])
        data = ip[hl + 8:]
        if 4500 not in (sport, dport) or len(data) < 8 or data[:4] == b"\0\0\0\0": continue
    elif proto == 50:
        data = ip[hl:]
    else:
        continue
    spi, seq = struct.unpack("!II", data[:8])
    if spi not in sas: continue
    sa = sas[spi]
    out = {"frame": n, "spi": spi, "seq": seq, "icv": "bad", "checkedBy": "scapy"}
    esp = ESP(data)
    try:
        sa.auth_algo.verify(esp, sa.auth_key)
        plain = sa.crypt_algo.decrypt(sa, esp, sa.crypt_key, sa.crypt_algo.icv_size or sa.auth_algo.icv_size)
        out["icv"] = "good"
        out["nextHeader"] = plain.nh
        inner = bytes(plain.data)
        if plain.nh in (4, 41) and inner:
            _, _, isrc, idst, _ = addrs(inner)
            out["innerSrc"], out["innerDst"] = text(isrc), text(idst)
    except IPSecIntegrityError:
        pass
    print(json.dumps(out))
`;

async function scapyCheck(pcap: string, sas: EspSa[]): Promise<EspFrame[]> {
  const table = sas.map((s) => ({
    spi: s.spi,
    enc: s.enc,
    encKey: hexOf(s.encKey),
    auth: s.auth,
    authKey: s.authKey ? hexOf(s.authKey) : "",
  }));
  const r = await exec(["/usr/bin/python3", "-c", SCAPY_PY, pcap], { input: JSON.stringify(table), timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`scapy ESP check failed (${r.code}): ${r.stderr}`);
  return r.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

/** Writes an `esp_sa` file (one record per line), e.g. for a tshark profile dir. */
export function writeEspSaTable(dir: string, sas: EspSa[]): string {
  const path = join(dir, "esp_sa");
  writeFileSync(path, sas.map(espSaRecord).join("\n") + "\n", { mode: 0o600 });
  return path;
}
