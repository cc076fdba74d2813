// A hub-and-spoke VPN with a backup hub as render.ts writes it (issue 8 item
// 7): a spoke's tunnels to the hubs carry the other spokes' prefixes, the
// backup hub's as `backup_for` the hub (IKE keying only: controller-made keys
// have no liveness signal, so there the hub alone carries), hubs forward
// between their spokes (`transit`), and the topology's `dpd` reaches every
// IKE block. Each rendered config passes the CE's own checks (wesp check).
import { test } from "node:test";
import assert from "node:assert/strict";
import { renderConfig, type CeConfig } from "../../host/controller/render.ts";
import { checkTopology } from "../../host/controller/store/rules.ts";
import type { Keying, SaRecord, Site, Vpn } from "../../host/controller/store/model.ts";
import { parseConfig } from "../../host/config/load.ts";

const NAMES = ["hub", "hub2", "s1", "s2", "s3"];
const sites: Site[] = NAMES.map((name, i) => ({
  vpn: "v", name, siteId: i + 1, systemId: `v/${name}`, prefixes: [`10.${i + 1}.0.0/16`], createdAt: 0,
  wan: [{ name: "inet", portId: 1, privateAddress: `192.0.2.${i + 1}`, privatePort: 4500, natType: "none", trusted: false }],
}));
const prefixOf = (n: string) => `10.${NAMES.indexOf(n) + 1}.0.0/16`;

function vpnOf(keying: Keying): Vpn {
  return { name: "v", topology: checkTopology({ kind: "hub-and-spoke", hub: "hub", backupHub: "hub2", dpd: 2 }), suite: "aes-256-gcm", mode: "tunnel", keying, saLifetime: {}, version: 1, createdAt: 0 };
}

/** Every pair's SAs, for keying `controller`. */
function allSas(): SaRecord[] {
  const out: SaRecord[] = [];
  let spi = 0x1000;
  for (const a of NAMES) for (const b of NAMES) if (a !== b) out.push({ src: a, dst: b, generation: 0, spi: spi++, suite: "aes-256-gcm", sealedKey: new Uint8Array(36).fill(spi & 255), createdAt: 0, state: "active" });
  return out;
}

const render = (keying: Keying, site: string): CeConfig => renderConfig(vpnOf(keying), sites, keying === "controller" ? allSas() : [], site, (sa) => sa.sealedKey);
const peer = (c: CeConfig, name: string) => c.peers.find((p) => p.name === name)!;

/** The CE's own load and checks (what the agent runs on a pulled config); certificate files are not there, so the ike blocks get a PSK. */
function ceCheck(c: CeConfig): void {
  const doc = { ...c, peers: c.peers.map((p) => (p.ike ? { ...p, ike: { ...p.ike, auth: { psk: "controller-render-failover-psk" } } } : p)) };
  parseConfig(JSON.stringify(doc), { baseDir: "/tmp", source: `<${c.node.name}>`, uid: 1000, env: {} });
}

test("IKE keying: spokes reach each other through both hubs, the backup as backup_for the hub; hubs are transit; dpd from the topology", () => {
  const s1 = render("ike", "s1");
  assert.deepEqual(s1.peers.map((p) => [p.name, p.prefixes, p.backup_for ?? null, p.ike?.dpd]), [
    ["hub", [prefixOf("hub"), prefixOf("s2"), prefixOf("s3")], null, 2],
    ["hub2", [prefixOf("hub2"), prefixOf("s2"), prefixOf("s3")], "hub", 2],
  ]);
  for (const h of ["hub", "hub2"]) {
    const c = render("ike", h);
    assert.deepEqual(c.peers.map((p) => [p.name, p.transit ?? false]), [[h === "hub" ? "hub2" : "hub", false], ["s1", true], ["s2", true], ["s3", true]]);
    assert.deepEqual(peer(c, "s2").prefixes, [prefixOf("s2")], "a hub's spoke carries the spoke's prefixes alone");
  }
  for (const n of NAMES) ceCheck(render("ike", n));
});

test("controller keying: the hub alone carries spoke-to-spoke, nothing fails over; a topology dpd is refused out of range", () => {
  const s2 = render("controller", "s2");
  assert.deepEqual(s2.peers.map((p) => [p.name, p.prefixes, p.backup_for ?? null]), [
    ["hub", [prefixOf("hub"), prefixOf("s1"), prefixOf("s3")], null],
    ["hub2", [prefixOf("hub2")], null],
  ]);
  assert.deepEqual(render("controller", "hub2").peers.map((p) => p.transit ?? false), [false, false, false, false], "the backup hub forwards nothing");
  assert.deepEqual(render("controller", "hub").peers.map((p) => p.transit ?? false), [false, true, true, true]);
  for (const n of NAMES) ceCheck(render("controller", n));
  assert.throws(() => checkTopology({ kind: "hub-and-spoke", hub: "hub", dpd: 0 }), /topology\.dpd: an integer 1\.\.3600/);
});
