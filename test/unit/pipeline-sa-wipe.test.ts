// SA removal (assembly/sa.ts) leaves nothing derived from the SA's key in
// the module's static data: the AES / GCM / CBC, ChaCha20-Poly1305 and HMAC
// scratch and the ESP nonce/AAD buffers are wiped (gcmWipeScratch,
// cbcWipeScratch, chachaPolyWipeScratch, hmacSha256WipeScratch, espAeadWipe). Checked
// differentially against the real core: two runs that differ only in their
// keys must end with the same static data.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Core, KIND, type SaParams } from "../../host/core/core.ts";

/** IPv4 packet 10.1.0.5 → 10.2.0.7 (protocol 253, RFC 3692 experimental) with `n` payload bytes. */
function inner(n: number): Uint8Array {
  const p = new Uint8Array(20 + n);
  p.set([0x45, 0, (20 + n) >> 8, (20 + n) & 0xff, 0, 0, 0, 0, 64, 253, 0, 0, 10, 1, 0, 5, 10, 2, 0, 7]);
  p.set(randomBytes(n), 20);
  return p;
}

describe("SA removal wipes the cipher scratch", () => {
  // Everything below the ring is static data (module globals, scratch) plus the
  // global counters; the ring, descriptors and SA records come after it. Two
  // runs that differ only in their keys must end with the same static data,
  // except for bytes that are public anyway (a CBC IV or ciphertext block as
  // sent on the wire).
  type WipeSuite = "aes-gcm-16" | "aes-cbc" | "chacha20-poly1305" | "aes-cbc-hmac-sha256";
  interface Run { data: Buffer; wire: Buffer[] }

  async function run(suite: WipeSuite, removeAll: boolean, ivSeed: Uint8Array): Promise<Run> {
    const core = await Core.create({ slots: 4, maxSas: 4, maxPolicies: 4 });
    const cbc = suite === "aes-cbc" || suite === "aes-cbc-hmac-sha256";
    const salt = randomBytes(4);
    const base: SaParams = { direction: "out", suite, mode: "tunnel", spi: 0x100, local: "192.0.2.1", remote: "192.0.2.2", ivSeed, allowNoIntegrity: true };
    const k = { key: randomBytes(cbc ? 16 : 32), ...(cbc ? {} : { salt }), ...(suite === "aes-cbc-hmac-sha256" ? { hmacKey: randomBytes(32) } : {}) };
    const out = core.addSa({ ...base, ...k });
    const inb = core.addSa({ ...base, ...k, direction: "in", local: "192.0.2.2", remote: "192.0.2.1" });
    // the core opens its own packets: the inbound check (RFC 4301 §5.2) sees 10.2/24 as local
    core.addPolicy({ action: "protect", local: "10.2.0.0/24", remote: "10.1.0.0/24", saId: out, peerId: 0 });
    const wire: Buffer[] = [];
    for (const n of [64, 700, 1300]) {
      core.writePacket(0, inner(n), KIND.IP, out);
      core.processOutbound(1);
      assert.equal(core.verdictName(0), "TO_NETWORK", core.reasonName(0));
      wire.push(Buffer.from(core.packet(0)));
      core.writePacket(0, wire.at(-1)!, KIND.IP);
      core.processInbound(1);
      assert.equal(core.verdictName(0), "TO_TUN", core.reasonName(0));
    }
    if (removeAll) {
      core.removeSa(out);
      core.removeSa(inb);
    }
    return { data: Buffer.from(core.memory.subarray(0, core.slotBase(0))), wire };
  }

  /** Runs of bytes where a and b differ that are not on a's wire. */
  function secretDiffs(a: Run, b: Run): string[] {
    const out: string[] = [];
    for (let i = 0; i < a.data.length; ) {
      if (a.data[i] === b.data[i]) { i++; continue; }
      let j = i;
      while (j < a.data.length && a.data[j] !== b.data[j]) j++;
      const bytes = a.data.subarray(i, j);
      const known = a.wire.some((w) => w.includes(bytes));
      if (!known) out.push(`${i}..${j - 1}`);
      i = j;
    }
    return out;
  }

  for (const suite of ["aes-gcm-16", "aes-cbc", "chacha20-poly1305", "aes-cbc-hmac-sha256"] as const) {
    it(`${suite}: two cores differing only in keys end with the same cipher scratch`, async () => {
      const ivSeed = randomBytes(8);
      // the test can fail: while the SAs live, the scratch holds key-derived bytes
      assert.notDeepEqual(secretDiffs(await run(suite, false, ivSeed), await run(suite, false, ivSeed)), []);
      assert.deepEqual(secretDiffs(await run(suite, true, ivSeed), await run(suite, true, ivSeed)), []);
    });
  }
});
