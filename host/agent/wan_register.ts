// A CE's WAN ports' public side, learned and registered (issue 8 item 5;
// net2cloud §3, §5.2): STUN through the running data plane's own NAT-T socket
// on each Internet-facing port (host/net/stun_wan.ts — the mapping its ESP and
// IKE traffic get), sent to the controller's STUN responder (the API's host,
// the port the config answer names), then PUT /v1/ce/wan/{port} for each port
// whose mapping differs from what this CE last registered. The controller
// hands the mapping to the CE's peers (render.ts). A port with no answer is
// logged once per distinct reason and retried on the next round. Every
// REFRESH_ROUNDS rounds the registrations are sent again even if unchanged
// (the controller answers `changed: false` and notifies nobody), so an
// operator's edit or a restored database is corrected within minutes.
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import type { WanPort } from "../config/model.ts";
import type { StunDataPlane } from "../net/stun_client.ts";
import { learnWanPorts, type WanMapping } from "../net/stun_wan.ts";
import type { CeClient } from "./ce_client.ts";

/** Rounds between re-sends of unchanged registrations (10 minutes at the agent's 60 s). */
export const REFRESH_ROUNDS = 10;

export class WanRegistrar {
  /** wan name → "address port" last registered. */
  private readonly registered = new Map<string, string>();
  private readonly reported = new Map<string, string>();
  private running?: Promise<void>;
  private rounds = 0;

  constructor(
    private readonly dp: StunDataPlane,
    private readonly log: (line: string) => void,
    private readonly timeoutMs = 5_000,
  ) {}

  /** The controller's host as an address (its URL may name it). */
  static async serverHost(url: string): Promise<string> {
    const h = new URL(url).hostname.replace(/^\[|\]$/g, "");
    return isIP(h) ? h : (await lookup(h)).address;
  }

  /**
   * One round over `wans` (the running data plane's ports, in its order):
   * learn, register what changed. Rounds do not overlap; a call while one
   * runs waits for it. Resolves to the mappings learned.
   */
  async round(client: CeClient, wans: readonly WanPort[], server: { host: string; port: number }): Promise<WanMapping[]> {
    while (this.running) await this.running;
    let out: WanMapping[] = [];
    this.running = (async () => {
      if (++this.rounds % REFRESH_ROUNDS === 0) this.registered.clear();
      out = await learnWanPorts(this.dp, wans, server, { timeoutMs: this.timeoutMs });
      for (const m of out) {
        if (m.error !== undefined || m.publicAddress === undefined || m.publicPort === undefined) {
          if (this.reported.get(m.wan) !== m.error) this.log(`STUN for WAN port ${m.wan} via ${server.host}:${server.port}: ${m.error ?? "no mapping"} (retried next round)`);
          this.reported.set(m.wan, m.error ?? "");
          continue;
        }
        this.reported.delete(m.wan);
        const key = `${m.publicAddress} ${m.publicPort}`;
        if (this.registered.get(m.wan) === key) continue;
        try {
          const r = await client.call<{ changed?: unknown }>("PUT", `/v1/ce/wan/${m.wan}`, { publicAddress: m.publicAddress, publicPort: m.publicPort });
          this.registered.set(m.wan, key);
          this.log(`WAN port ${m.wan}: registered public ${m.publicAddress}:${m.publicPort}${m.natted ? " (behind a NAT)" : " (no NAT)"}${r?.changed === false ? ", as the controller already had it" : ""}`);
        } catch (e) {
          this.log(`WAN port ${m.wan}: registering ${m.publicAddress}:${m.publicPort} failed (${(e as Error).message}); retried next round`);
        }
      }
    })().finally(() => (this.running = undefined));
    await this.running;
    return out;
  }
}
