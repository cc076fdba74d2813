// wesp as a benchmark peer: whole ESP tunnel-mode packets through the core,
// one processOutbound/processInbound call per batch, exactly as the pipeline
// drives it. Per packet this includes what the data path really does: copy the
// inner packet into its ring slot, SPD lookup (seal) or SPI lookup + inbound
// policy check (open), padding, ESP header, AEAD, outer IPv4 header.
//
// "open" runs with the replay window off: the same batch of sealed packets is
// opened over and over, which a replay window would (rightly) refuse.
import { randomBytes } from "node:crypto";
import { Core, VERDICT, KIND, type Suite as CoreSuite } from "../../host/core/core.ts";
import type { Peer, Suite, Op, Runner } from "./peers.ts";

const BATCH = 256;

function coreSuite(s: Suite): { suite: CoreSuite; keyLen: number } {
  switch (s) {
    case "chacha20-poly1305": return { suite: "chacha20-poly1305", keyLen: 32 };
    case "aes-128-gcm": return { suite: "aes-gcm-16", keyLen: 16 };
    case "aes-256-gcm": return { suite: "aes-gcm-16", keyLen: 32 };
    case "aes-128-cbc-hmac-sha256": return { suite: "aes-cbc-hmac-sha256", keyLen: 16 };
  }
}

/** An inner IPv4/UDP packet of exactly `size` bytes (size >= 28) from 10.1.0.1 to 10.2.0.1. */
export function innerPacket(size: number): Uint8Array {
  const p = new Uint8Array(size);
  p.set(randomBytes(size));
  p[0] = 0x45; p[1] = 0; p[2] = size >> 8; p[3] = size & 0xff;
  p[6] = 0; p[7] = 0; p[8] = 64; p[9] = 17;
  p.set([10, 1, 0, 1], 12); p.set([10, 2, 0, 1], 16);
  let s = 0;
  p[10] = p[11] = 0;
  for (let i = 0; i < 20; i += 2) s += (p[i] << 8) | p[i + 1];
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  const c = ~s & 0xffff;
  p[10] = c >> 8; p[11] = c & 0xff;
  p[24] = (size - 20) >> 8; p[25] = (size - 20) & 0xff;
  p[26] = p[27] = 0;
  return p;
}

export async function wespPeer(): Promise<Peer & { batch: number }> {
  shared ??= await Core.create({ slots: BATCH, maxSas: 16, maxPolicies: 16 });
  return {
    name: "wesp",
    batch: BATCH,
    make(suite: Suite, size: number, op: Op): Runner | undefined {
      return makeRunner(suite, size, op);
    },
  } as Peer & { batch: number };
}

function makeRunner(suite: Suite, size: number, op: Op): Runner {
  const core = shared!;
  core.clearPolicies();
  for (const id of installed.splice(0)) core.removeSa(id);
  const { suite: cs, keyLen } = coreSuite(suite);
  const key = randomBytes(keyLen), salt = randomBytes(4), hmacKey = randomBytes(32);
  const common = { suite: cs, mode: "tunnel" as const, spi: 0x1001, key, salt, hmacKey, peerId: 0, local: "192.0.2.1", remote: "192.0.2.2" };
  const out = core.addSa({ ...common, direction: "out" });
  const inb = core.addSa({ ...common, direction: "in", replayWindow: 0 });
  installed.push(out, inb);
  core.addPolicy({ action: "protect", local: "10.1.0.0/16", remote: "10.2.0.0/16", saId: out, peerId: 0 });
  core.addPolicy({ action: "protect", local: "10.2.0.0/16", remote: "10.1.0.0/16", saId: out, peerId: 0 });
  const inner = innerPacket(Math.max(size, 28));
  const n = BATCH;

  const seal = () => {
    for (let i = 0; i < n; i++) core.writePacket(i, inner);
    core.processOutbound(n);
  };
  seal();
  for (let i = 0; i < n; i++) {
    if (core.verdict(i) !== VERDICT.TO_NETWORK) throw new Error(`bench seal setup: slot ${i} ${core.verdictName(i)} ${core.reasonName(i)}`);
  }
  if (op === "seal") return () => seal();

  const sealed = Array.from({ length: n }, (_, i) => core.packet(i).slice());
  const open = () => {
    for (let i = 0; i < n; i++) core.writePacket(i, sealed[i], KIND.IP);
    core.processInbound(n);
  };
  open();
  for (let i = 0; i < n; i++) {
    if (core.verdict(i) !== VERDICT.TO_TUN) throw new Error(`bench open setup: slot ${i} ${core.verdictName(i)} ${core.reasonName(i)}`);
  }
  return () => open();
}

// One core, reused for every (suite, size, op): SAs and policies are replaced per runner.
let shared: Core | undefined;
const installed: number[] = [];
