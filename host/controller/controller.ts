// The controller's logic over the VPN database: operator changes (VPNs,
// sites, topology) followed by the SAs they call for, and each CE's config.
// The HTTPS API (api/) calls nothing else; the Store (store/) keeps state.
//
// After every change the SAs are reconciled with the topology: in a VPN keyed
// by the controller, a pair that should talk and has no SAs gets two, made
// here (keys.ts) — one per direction, each with its own key and an SPI its
// receiver does not use — and SAs of pairs that no longer talk are deleted.
// An IKE-keyed VPN keeps no SA in the database: its CEs negotiate them. Both are transactions of
// their own, safe to run from several replicas at once (the database keeps one
// pair of SAs per pair of sites and generation).
import { createHash } from "node:crypto";
import { KeySealer, newSaKey } from "./keys.ts";
import { choosePorts, renderConfig, type CeConfig } from "./render.ts";
import { initiates } from "./render_ike.ts";
import type { NewSite, NewVpn, SaRecord, Site, Topology, Vpn } from "./store/model.ts";
import { StoreError } from "./store/model.ts";
import type { Store } from "./store/store.ts";
import type { RekeySeal } from "./store/rekey.ts";
import { pairsOf, peersOf } from "./topology.ts";

export interface ReconcileReport {
  made: number;
  deleted: number;
}

/** VPNs whose site lists configFor keeps (the least recently read goes first when full). */
const SITE_CACHE_VPNS = 64;

export class Controller {
  /**
   * configFor's site lists, one per VPN, tagged with the VPN version read
   * before them. After a change every CE of the VPN pulls at once, and each
   * pull read every site (0.6–0.9 s at 10,000 sites: docs/controller.md
   * "Scale"); now one read serves every pull at that version. Safe because
   * the list is read after the version: it is at least as new as its tag, and
   * any later change raises the version, so the next pull reads again.
   */
  private readonly siteCache = new Map<string, { version: number; sites: Promise<Site[]> }>();

  constructor(readonly store: Store, private readonly sealer: KeySealer) {}

  async createVpn(v: NewVpn): Promise<Vpn> {
    return this.store.createVpn(v);
  }

  async setTopology(vpn: string, t: Topology): Promise<Vpn> {
    await this.store.setTopology(vpn, t);
    await this.reconcile(vpn);
    return (await this.store.getVpn(vpn))!;
  }

  async addSite(vpn: string, s: NewSite): Promise<Site> {
    const site = await this.store.addSite(vpn, s);
    await this.reconcile(vpn);
    return site;
  }

  /** Many sites at once (all or none), then their SAs: provisioning a large VPN without a reconcile per site. */
  async addSites(vpn: string, s: NewSite[]): Promise<number> {
    const n = await this.store.addSites(vpn, s);
    await this.reconcile(vpn);
    return n;
  }

  async removeSite(vpn: string, name: string): Promise<boolean> {
    const gone = await this.store.removeSite(vpn, name);
    if (gone) await this.reconcile(vpn);
    return gone;
  }

  /**
   * Revokes the site's CE certificates (the CRL and the CE API refuse them
   * from now on); the site stays and may enrol again with a new token.
   */
  async revokeSite(vpn: string, name: string): Promise<number> {
    return this.store.revokeCertificates(vpn, name);
  }

  /** Makes the SAs of pairs that lack them, deletes those of pairs that no longer talk. */
  async reconcile(vpn: string): Promise<ReconcileReport> {
    const v = await this.store.getVpn(vpn);
    if (!v) throw new StoreError("not-found", `VPN "${vpn}" not found`);
    const sites = await this.store.listSites(vpn);
    const wanted = v.keying === "controller" ? pairsOf(v, sites) : [];
    // Any generation counts: a rekeyed pair's generation 0 is gone (store/rekey.ts).
    const have = new Set((await this.store.listSas(vpn)).map((s) => `${s.src}\n${s.dst}`));
    let made = 0;
    for (const [a, b] of wanted) {
      if (have.has(`${a}\n${b}`) && have.has(`${b}\n${a}`)) continue;
      if (await this.makePair(v, a, b, 0)) made++;
    }
    const deleted = await this.store.pruneSas(vpn, wanted);
    return { made, deleted };
  }

  /** The two SAs of {a, b}. */
  private makePair(v: Vpn, a: string, b: string, generation: number): Promise<boolean> {
    const seal = this.keyMaker(v);
    return this.store.ensureSaPair(v.name, a, b, generation, (d) => seal({ ...d, generation }));
  }

  /**
   * Seals fresh random keys for SAs of `v`, never two equal ones from one
   * maker (checked, not just likely): a pair's two directions get distinct keys.
   */
  keyMaker(v: Vpn): RekeySeal {
    const seen = new Set<string>();
    return ({ src, dst, spi, generation }) => {
      for (;;) {
        const key = newSaKey(v.suite);
        const id = createHash("sha256").update(key).digest("hex");
        if (seen.has(id)) continue;
        seen.add(id);
        const sealedKey = this.sealer.seal({ vpn: v.name, src, dst, generation, spi }, key);
        key.fill(0);
        return { suite: v.suite, sealedKey };
      }
    };
  }

  /** The config of CE `site` (render.ts): with only the keys of SAs it sends or receives on, or none (keying `ike`). */
  async configFor(vpn: string, site: string): Promise<CeConfig> {
    const v = await this.store.getVpn(vpn);
    if (!v) throw new StoreError("not-found", `VPN "${vpn}" not found`);
    const sites = await this.sitesAt(vpn, v.version);
    if (!sites.some((s) => s.name === site)) throw new StoreError("not-found", `site "${site}" not found`);
    const sas = await this.store.listSasOf(vpn, site);
    const open = (sa: SaRecord) => this.sealer.open({ vpn, src: sa.src, dst: sa.dst, generation: sa.generation, spi: sa.spi }, sa.sealedKey);
    const revoked = v.keying === "ike" ? await this.store.revokedSerialsOf(vpn) : [];
    return renderConfig(v, sites, sas, site, open, revoked);
  }

  /**
   * The sites whose CEs initiate IKE towards `site` (render_ike.ts `initiates`:
   * those behind a NAT, else the newer ones): when `site`'s CE comes online
   * they are told to try at once (api/ce_api.ts "peer-online"). Their earlier
   * attempts went to a CE not yet running and wait out a retransmission or a
   * retry backoff (up to `retry.max`) — which only they can end, for a NAT'd
   * side cannot be reached first. None unless the VPN is IKE-keyed.
   */
  async initiatorsTowards(vpn: string, site: string): Promise<string[]> {
    const v = await this.store.getVpn(vpn);
    if (!v || v.keying !== "ike") return [];
    const sites = await this.sitesAt(vpn, v.version);
    const me = sites.find((s) => s.name === site);
    if (!me) return [];
    const byName = new Map(sites.map((s) => [s.name, s]));
    return peersOf(v, sites, site).filter((name) => {
      const other = byName.get(name)!;
      const ports = choosePorts(other, me);
      return ports !== undefined && initiates(other, ports[0], me, ports[1]);
    });
  }

  /** The VPN's sites as of `version` or later (see siteCache); a failed read is not kept. */
  private sitesAt(vpn: string, version: number): Promise<Site[]> {
    const hit = this.siteCache.get(vpn);
    if (hit && hit.version === version) {
      this.siteCache.delete(vpn); // most recently read last
      this.siteCache.set(vpn, hit);
      return hit.sites;
    }
    const sites = this.store.listSites(vpn);
    this.siteCache.delete(vpn);
    this.siteCache.set(vpn, { version, sites });
    if (this.siteCache.size > SITE_CACHE_VPNS) this.siteCache.delete(this.siteCache.keys().next().value!);
    sites.catch(() => {
      if (this.siteCache.get(vpn)?.sites === sites) this.siteCache.delete(vpn);
    });
    return sites;
  }
}
