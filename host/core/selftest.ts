// Known-answer self-test: runs a vector file (format of
// host/core/vectors/esp-vectors.json, whose "fields" object defines each key)
// through the core's real ESP path — the same outbound and inbound code that
// carries traffic, not the primitives alone.
//
// Per vector: an outbound SA seals `plaintext_payload` (payload mode, next
// header given) or `input_packet` (tunnel / transport with `expected_packet`,
// outer header fields id/ttl/tos/DF/addresses taken from it) and must give
// exactly `expected_esp` (and `expected_packet`); an inbound SA must open
// `expected_esp` / `expected_packet` back to `plaintext_payload` (transport:
// back to `input_packet`). The vectors' IVs are arbitrary, so each seal uses
// the core's known-answer IV override (katSetIv), which exists for this test
// only: bound to the vector's outbound SA and to the next processOutbound call.
import { readFileSync } from "node:fs";
import { Core, VERDICT, KIND, type Mode, type SaParams, type Suite } from "./core.ts";
import { packagePath } from "../util/package_root.ts";

export const DEFAULT_VECTORS = packagePath("host/core/vectors/esp-vectors.json");

interface Vector {
  id: string;
  suite: string;
  integrity?: string | null;
  mode: string;
  spi: string;
  seq: number;
  esn?: boolean;
  esn_hi?: number | null;
  key: string;
  salt?: string;
  auth_key?: string | null;
  iv: string;
  plaintext_payload: string;
  next_header: number;
  expected_esp: string;
  input_packet?: string;
  expected_packet?: string;
}

const hex = (s: string | undefined | null): Uint8Array => Uint8Array.from(Buffer.from(s ?? "", "hex"));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/** The core's suite for a vector, or a reason it has none. */
function suiteOf(v: Vector): Suite | string {
  if (v.suite === "aes-gcm-16" && !v.integrity) return "aes-gcm-16";
  if (v.suite === "chacha20-poly1305" && !v.integrity) return "chacha20-poly1305";
  if (v.suite === "aes-cbc" && !v.integrity) return "aes-cbc";
  if (v.suite === "aes-cbc" && v.integrity === "hmac-sha256-128") return "aes-cbc-hmac-sha256";
  return `unsupported suite ${v.suite}${v.integrity ? " + " + v.integrity : ""}`;
}

/** Outer IPv4/IPv6 header fields of an expected packet, for the SA template. */
function outerOf(p: Uint8Array): Partial<SaParams> {
  if (p[0] >> 4 === 4) {
    return {
      local: p.subarray(12, 16),
      remote: p.subarray(16, 20),
      tos: p[1],
      ipId: (p[4] << 8) | p[5],
      df: (p[6] & 0x40) !== 0,
      ttl: p[8],
    };
  }
  return { local: p.subarray(8, 24), remote: p.subarray(24, 40), tos: ((p[0] & 15) << 4) | (p[1] >> 4), ttl: p[7] };
}

let nextPeer = 0;

/** Runs one vector; returns undefined on success or what went wrong. */
function runVector(core: Core, v: Vector): string | undefined {
  const suite = suiteOf(v);
  if (!(suite in { "aes-gcm-16": 1, "chacha20-poly1305": 1, "aes-cbc": 1, "aes-cbc-hmac-sha256": 1 })) return suite;
  const full = v.expected_packet !== undefined && v.input_packet !== undefined && (v.mode === "tunnel" || v.mode === "transport");
  const mode: Mode = full ? (v.mode as Mode) : "payload";
  const seq = v.esn ? (BigInt(v.esn_hi ?? 0) << 32n) | BigInt(v.seq) : BigInt(v.seq);
  const peerId = nextPeer++ % core.maxSas;
  const base: SaParams = {
    direction: "out",
    suite: suite as Suite,
    mode,
    spi: Number(v.spi),
    key: hex(v.key),
    salt: hex(v.salt),
    hmacKey: v.auth_key ? hex(v.auth_key) : undefined,
    allowNoIntegrity: suite === "aes-cbc",
    esn: !!v.esn,
    initialSeq: seq,
    peerId,
    ...(full && mode === "tunnel" ? outerOf(hex(v.expected_packet)) : {}),
  };
  const ids: number[] = [];
  try {
    // Seal.
    const out = core.addSa(base);
    ids.push(out);
    const input = full ? hex(v.input_packet) : hex(v.plaintext_payload);
    core.katSetIv(out, hex(v.iv));
    core.writePacket(0, input, KIND.IP, out, v.next_header);
    core.processOutbound(1);
    if (core.verdict(0) !== VERDICT.TO_NETWORK) return `seal: verdict ${core.verdictName(0)} (${core.reasonName(0)})`;
    const sealed = core.packet(0).slice();
    const esp = sealed.subarray(full ? core.hdrLen(0) : 0);
    if (toHex(esp) !== v.expected_esp) return `seal: ESP differs\n  got      ${toHex(esp)}\n  expected ${v.expected_esp}`;
    if (full && toHex(sealed) !== v.expected_packet) return `seal: packet differs\n  got      ${toHex(sealed)}\n  expected ${v.expected_packet}`;

    // Open: the inner policy check needs a PROTECT entry of this SA's peer.
    const inb = core.addSa({ ...base, direction: "in", replayWindow: 64 });
    ids.push(inb);
    if (full) {
      const fam = hex(v.input_packet)[0] >> 4 === 6 ? "::/0" : "0.0.0.0/0";
      core.addPolicy({ action: "protect", local: fam, remote: fam, saId: out, peerId });
      core.writePacket(0, hex(v.expected_packet), KIND.IP);
    } else {
      core.writePacket(0, hex(v.expected_esp), KIND.PAYLOAD);
      core.setRemote(0, "192.0.2.1", 0, "192.0.2.2");
    }
    core.processInbound(1);
    if (core.verdict(0) !== VERDICT.TO_TUN) return `open: verdict ${core.verdictName(0)} (${core.reasonName(0)})`;
    const opened = toHex(core.packet(0));
    const want = full && mode === "transport" ? v.input_packet! : v.plaintext_payload;
    if (opened !== want) return `open: plaintext differs\n  got      ${opened}\n  expected ${want}`;
    if (!full && core.proto(0) !== v.next_header) return `open: next header ${core.proto(0)}, expected ${v.next_header}`;
    return undefined;
  } catch (e) {
    return (e as Error).message;
  } finally {
    for (const id of ids) core.removeSa(id);
    core.clearPolicies();
  }
}

/** A core just big enough for the vectors (selftest's default). */
export function selftestCore(): Promise<Core> {
  return Core.create({ slots: 1, maxSas: 4, maxPolicies: 4, largeWindowBlocks: 0 });
}

/**
 * Runs every vector of `file` (default: the shipped vectors) through a fresh
 * core; prints one line per vector and a closing "N passed, M failed" line.
 */
export async function selftest(file: string = DEFAULT_VECTORS, log: (line: string) => void = console.log, core?: Core): Promise<{ passed: number; failed: number }> {
  const doc = JSON.parse(readFileSync(file, "utf8")) as { vectors?: Vector[] };
  const vectors = Array.isArray(doc.vectors) ? doc.vectors : [];
  const c = core ?? (await selftestCore());
  let passed = 0, failed = 0;
  for (const v of vectors) {
    const err = runVector(c, v);
    const what = `${v.id} (${v.suite}${v.integrity ? "+" + v.integrity : ""}, ${v.mode}${v.esn ? ", esn" : ""})`;
    if (err === undefined) {
      passed++;
      log(`ok    ${what}`);
    } else {
      failed++;
      log(`FAIL  ${what}: ${err}`);
    }
  }
  if (vectors.length === 0) {
    failed++;
    log(`FAIL  ${file}: no vectors`);
  }
  log(`${passed} passed, ${failed} failed`);
  return { passed, failed };
}
