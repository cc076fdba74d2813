// The config of a hub of many spokes (render.ts), the CE whose config is the
// largest the controller makes: rendering looks peers and SAs up through
// indexes (it scanned the site and SA lists once per peer — quadratic, seconds
// per pull at 10,000 spokes: docs/controller.md "Scale"). Checked here at
// 3,000 spokes with records built by hand: every spoke is a peer of the hub
// with exactly its own pair's SPIs and keys, in each direction, and a spoke
// sees the hub alone.
import { test } from "node:test";
import assert from "node:assert/strict";
import { renderConfig } from "../../host/controller/render.ts";
import type { SaRecord, Site, Vpn } from "../../host/controller/store/model.ts";

const N = 3000;

function site(i: number, name: string): Site {
  return {
    vpn: "v", name, siteId: i, systemId: `v/${name}`, prefixes: [`10.${i >> 8}.${i & 255}.0/24`], createdAt: 0,
    wan: [{ name: "inet", portId: 1, privateAddress: `192.0.${i >> 8}.${i & 255}`, privatePort: 4500, natType: "none", trusted: false }],
  };
}

/** SPI of src → dst: distinct per direction and pair; the "sealed key" is its SPI's 4 bytes, so a mix-up shows. */
const spiOf = (src: number, dst: number) => (src === 0 ? 0x10000 + dst : 0x20000 + src);

test(`a hub's config at ${N} spokes pairs every spoke's SPIs and keys; a spoke sees the hub alone`, () => {
  const vpn: Vpn = { name: "v", topology: { kind: "hub-and-spoke", hub: "hub" }, suite: "aes-256-gcm", mode: "tunnel", keying: "controller", saLifetime: { softSeconds: 3600, seconds: 7200 }, version: 1, createdAt: 0 };
  const names = ["hub", ...Array.from({ length: N }, (_, j) => `s${j + 1}`)];
  const sites = names.map((n, i) => site(i, n));
  const sas: SaRecord[] = [];
  for (let i = 1; i <= N; i++) {
    for (const [s, d] of [[0, i], [i, 0]]) {
      const spi = spiOf(s, d);
      sas.push({ src: names[s], dst: names[d], generation: 0, spi, suite: "aes-256-gcm", sealedKey: new Uint8Array(new Uint32Array([spi]).buffer), createdAt: 0, state: "active" });
    }
  }
  // Shuffled, so that nothing depends on the store's ordering.
  sas.reverse();
  const open = (sa: SaRecord) => sa.sealedKey;
  const keyHex = (spi: number) => Buffer.from(new Uint32Array([spi]).buffer).toString("hex");

  const hub = renderConfig(vpn, sites, sas, "hub", open);
  assert.equal(hub.peers.length, N);
  for (const p of hub.peers) {
    const i = Number(p.name.slice(1));
    assert.equal(p.address, `192.0.${i >> 8}.${i & 255}`);
    assert.deepEqual(p.prefixes, [`10.${i >> 8}.${i & 255}.0/24`]);
    assert.deepEqual(p.sas, [{ spi_in: spiOf(i, 0), spi_out: spiOf(0, i), suite: "aes-256-gcm", key_in: keyHex(spiOf(i, 0)), key_out: keyHex(spiOf(0, i)), lifetime: { seconds: 7200, soft_seconds: 3600 } }]);
  }
  const spoke = renderConfig(vpn, sites, sas, "s1234", open);
  assert.deepEqual(spoke.peers.map((p) => [p.name, p.sas![0].spi_in, p.sas![0].spi_out]), [["hub", spiOf(0, 1234), spiOf(1234, 0)]]);
});
