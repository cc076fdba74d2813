// The VPN the controller benchmark serves: one hub-and-spoke VPN of N spokes
// (full mesh would be N²/2 SA pairs), provisioned straight through the Store
// and the Controller before any controller process starts, and one client
// certificate per CE, issued by the controller's own CA (ca.ts signCsr, the
// function POST /v1/enrol calls) and recorded in the store as enrolment
// records it — so TLS and the CE API check these CEs exactly as real ones.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { ControllerCa } from "../../host/controller/ca.ts";
import { Controller } from "../../host/controller/controller.ts";
import { KeySealer, loadOrCreateMasterKey } from "../../host/controller/keys.ts";
import { openStore } from "../../host/controller/store/store.ts";
import type { NewSite } from "../../host/controller/store/model.ts";
import { keyPairPem, makeCsr, newKeyPair, siteIdentity } from "../../host/util/pki.ts";

export const VPN = "scale";
export const HUB = "hub";
/** Certificates issued at once. */
const CERT_BATCH = 32;

/** Spoke `i` (1-based): its own /24 of 10.0.0.0/8 and one WAN port in 198.18.0.0/15 (RFC 2544 benchmarking). */
export function spoke(i: number): NewSite {
  return {
    name: `s${String(i).padStart(5, "0")}`,
    prefixes: [`10.${(i >> 8) & 255}.${i & 255}.0/24`],
    wan: [{ name: "inet", privateAddress: `198.${18 + ((i >> 16) & 1)}.${(i >> 8) & 255}.${i & 255}` }],
  };
}

export interface Timed {
  seconds: number;
  /** CPU seconds of this process meanwhile (the machine is shared: wall time includes waiting for a core). */
  cpuSeconds: number;
  count: number;
}

const cpuS = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

export interface Provisioned {
  /** Store.addSites of every spoke, a thousand at a time: seconds each thousand took. */
  sitesByThousand: number[];
  sites: Timed;
  /** One Controller.reconcile: the SA pairs of every spoke. */
  sas: Timed;
  /** Key pair + CSR made on the "CE", signCsr by the CA, certificate recorded. */
  certs: Timed;
  /** One Controller.addSite at full size (site + its SAs, as the operator API does). */
  oneMoreSiteMs: number;
  ces: { site: string; cert: string; key: string }[];
}

/** Provisions `spokes` spokes + a hub in the store at `dbUrl`, with `stateDir`'s master key and CA; `certs` CEs get certificates. */
export async function provision(stateDir: string, dbUrl: string, spokes: number, certs: number, log: (s: string) => void): Promise<Provisioned> {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const sealer = new KeySealer(loadOrCreateMasterKey(join(stateDir, "master.key")));
  const ca = await ControllerCa.open(join(stateDir, "ca"));
  const store = await openStore(dbUrl);
  const ctl = new Controller(store, sealer);
  try {
    await ctl.createVpn({ name: VPN, topology: { kind: "hub-and-spoke", hub: HUB }, keying: "controller" });
    await store.addSite(VPN, { name: HUB, prefixes: ["172.16.0.0/16"], wan: [{ name: "inet", privateAddress: "198.19.255.254" }] });
    // In batches of 1,000 (Store.addSites: one transaction each), timed each: the cost grows with the VPN.
    const sitesByThousand: number[] = [];
    const t0 = performance.now();
    const c0 = cpuS();
    for (let from = 1; from <= spokes; from += 1000) {
      const tk = performance.now();
      await store.addSites(VPN, Array.from({ length: Math.min(1000, spokes - from + 1) }, (_, k) => spoke(from + k)));
      sitesByThousand.push((performance.now() - tk) / 1000);
      log(`sites: ${Math.min(spokes, from + 999)}/${spokes}, last batch ${sitesByThousand.at(-1)!.toFixed(1)} s`);
    }
    const sites = { seconds: (performance.now() - t0) / 1000, cpuSeconds: cpuS() - c0, count: spokes + 1 };
    const t1 = performance.now();
    const c1 = cpuS();
    const r = await ctl.reconcile(VPN);
    const sas = { seconds: (performance.now() - t1) / 1000, cpuSeconds: cpuS() - c1, count: r.made * 2 };
    log(`SAs: ${r.made} pairs in ${sas.seconds.toFixed(1)} s`);
    const t2 = performance.now();
    await ctl.addSite(VPN, spoke(spokes + 1));
    const oneMoreSiteMs = performance.now() - t2;
    const ces: Provisioned["ces"] = [];
    const t3 = performance.now();
    const c3 = cpuS();
    // Batches run concurrently: WebCrypto signs on libuv's thread pool, as it would for CEs enrolling at once.
    for (let from = 1; from <= certs; from += CERT_BATCH) {
      const batch = Array.from({ length: Math.min(CERT_BATCH, certs - from + 1) }, (_, k) => from + k);
      const issued = await Promise.all(batch.map(async (i) => {
        const site = spoke(i).name;
        const identity = siteIdentity(VPN, site);
        const keys = await newKeyPair();
        const c = await ca.signCsr(await makeCsr(identity, keys), identity);
        return { site, c, key: await keyPairPem(keys) };
      }));
      for (const { site, c, key } of issued) {
        await store.recordCertificate(VPN, site, c.serial, c.notAfter);
        ces.push({ site, cert: c.pem, key });
      }
      if ((from + CERT_BATCH - 1) % 2000 < CERT_BATCH) log(`certificates: ${ces.length}/${certs}`);
    }
    const certsT = { seconds: (performance.now() - t3) / 1000, cpuSeconds: cpuS() - c3, count: certs };
    return { sitesByThousand, sites, sas, certs: certsT, oneMoreSiteMs, ces };
  } finally {
    await store.close();
  }
}
