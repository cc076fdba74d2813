// The usable-MTU arithmetic is the core's alone (assembly/too_big.ts): the
// pure innerMtu the config check asks (host/config/inner_mtu.ts) must be, in
// every mode, suite, outer family and encapsulation, the largest inner packet
// an SA installed with those parameters sends within its path MTU — one byte
// more is TOO_BIG and answered with that same figure — and what it sends fits.
// Transport mode counts the inner IP header it keeps out of ESP.
import { test } from "node:test";
import assert from "node:assert/strict";
import { innerMtu, type Mode, type SaParams, type Suite } from "../../host/core/core.ts";
import { innerUdp, makeCore } from "./core-helpers.ts";

const KEYS: Record<Exclude<Suite, "none">, Partial<SaParams>> = {
  "aes-gcm-16": { key: new Uint8Array(16).fill(1), salt: new Uint8Array(4) },
  "chacha20-poly1305": { key: new Uint8Array(32).fill(2), salt: new Uint8Array(4) },
  "aes-cbc-hmac-sha256": { key: new Uint8Array(32).fill(3), hmacKey: new Uint8Array(32).fill(4) },
  "aes-cbc": { key: new Uint8Array(16).fill(5), allowNoIntegrity: true },
};

test("innerMtu is the largest inner packet an installed SA sends, in every mode", async () => {
  const c = await makeCore({ slots: 2, maxSas: 256 });
  let cases = 0;
  for (const mode of ["tunnel", "transport", "transport-ipip", "transport-gre", "ipip", "gre"] as Mode[]) {
    const plain = mode === "ipip" || mode === "gre";
    for (const suite of (plain ? ["none"] : Object.keys(KEYS)) as Suite[]) {
      for (const family of [4, 6] as const) {
        for (const udp of plain ? [false] : [false, true]) {
          for (const mtu of [576, 1280, 1333, 1400, 1499]) {
            const gre = mode === "gre" || mode === "transport-gre" ? { greKey: 7, greSeq: mtu % 2 === 1 } : {};
            const [local, remote] = family === 4 ? ["192.0.2.1", "192.0.2.2"] : ["2001:db8::1", "2001:db8::2"];
            const params = { suite, mode, udp, ...gre };
            const sa = c.addSa({ direction: "out", spi: 0x1000 + cases, local, remote, mtu, ...params, ...(suite === "none" ? {} : KEYS[suite as Exclude<Suite, "none">]) });
            // Transport carries the host's own packets: the inner family is the outer one; the others take both.
            for (const inner6 of mode === "transport" ? [family === 6] : [false, true]) {
              const want = innerMtu(params, family, mtu, inner6 ? 6 : 4);
              const hdr = inner6 ? 48 : 28;
              const pkt = (len: number) => (inner6 ? innerUdp("fd01::5", "fd02::9", len - hdr) : innerUdp("10.1.0.5", "10.2.0.9", len - hdr));
              const why = `${mode} ${suite} outer v${family}${udp ? " udp" : ""} inner v${inner6 ? 6 : 4} mtu ${mtu}`;
              c.writePacket(0, pkt(want), 0, sa);
              c.writePacket(1, pkt(want + 1), 0, sa);
              c.processOutbound(2);
              assert.equal(c.verdictName(0), "TO_NETWORK", `${why}: ${want} bytes: ${c.reasonName(0)}`);
              assert.ok(c.length(0) <= mtu, `${why}: sent ${c.length(0)}`);
              assert.equal(c.reasonName(1), "TOO_BIG", `${why}: ${want + 1} bytes`);
              assert.deepEqual([c.mtu(1), c.innerMtu(1)], [mtu, want], why);
              cases++;
            }
            c.removeSa(sa);
          }
        }
      }
    }
  }
  // mtus × (3 ESP modes × suites × families × udp × inner families + transport + 2 plain modes × families × inner families)
  assert.equal(cases, 5 * (3 * 4 * 2 * 2 * 2 + 4 * 2 * 2 + 2 * 2 * 2), "every combination ran");
});
