// Traffic between the sites, through wesp: pings (IPv4 and IPv6) and TCP
// transfers with their bytes checked, between every pair of sites and in both
// directions. Each site's LAN host runs an agent (agent.ts) that does the work;
// this file asks the agents and collects what they answer.
import { createInterface } from "node:readline";
import { NS, SITES, siteById, type Site, type SiteId } from "./plan.ts";
import { waitFor } from "../util/proc.ts";
import type { Lab } from "../lab/lab.ts";
import type { LabProcess } from "../lab/process.ts";
import { nodeArgv } from "../util/package_root.ts";

const TCP_PORT = 5001;

/** One agent, spoken to over its stdin/stdout (see agent.ts). */
export class Agent {
  private seq = 0;
  private readonly pending = new Map<number, (o: Record<string, unknown>) => void>();
  ready = false;

  constructor(readonly site: Site, readonly proc: LabProcess) {
    createInterface({ input: proc.child.stdout! }).on("line", (line) => {
      let o: Record<string, unknown>;
      try {
        o = JSON.parse(line);
      } catch {
        return;
      }
      if (o.id === 0) this.ready = true;
      this.pending.get(o.id as number)?.(o);
      this.pending.delete(o.id as number);
    });
    proc.exited.then(() => {
      for (const [, resolve] of this.pending) resolve({ error: `agent in ${site.name} exited` });
      this.pending.clear();
    });
  }

  ask(req: Record<string, unknown>, timeoutMs = 60_000): Promise<Record<string, unknown>> {
    const id = ++this.seq;
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.pending.delete(id);
        resolve({ error: `no answer from the agent in ${this.site.name} within ${timeoutMs / 1000} s` });
      }, timeoutMs);
      this.pending.set(id, (o) => {
        clearTimeout(t);
        resolve(o);
      });
      this.proc.child.stdin!.write(JSON.stringify({ id, ...req }) + "\n");
    });
  }
}

/** Starts an agent in every site's LAN host and its TCP listeners (IPv4 and IPv6). */
export async function startAgents(lab: Lab): Promise<Map<SiteId, Agent>> {
  const agents = new Map<SiteId, Agent>();
  for (const s of SITES) {
    const p = lab.at(NS.host(s)).spawn(nodeArgv("host/demo/agent.ts"), { log: `agent-${s.name}`, stdin: true, ownStdout: true });
    agents.set(s.id, new Agent(s, p));
  }
  for (const a of agents.values()) {
    await waitFor(() => a.ready || !a.proc.running, `the traffic agent in ${a.site.name}`, 15_000);
    if (!a.proc.running) throw new Error(`the traffic agent in ${a.site.name} did not start (log: ${a.proc.log})`);
    for (const addr of [a.site.host.v4, a.site.host.v6]) {
      const r = await a.ask({ op: "listen", addr, port: TCP_PORT });
      if (!r.listening) throw new Error(`agent in ${a.site.name}: listen on ${addr}: ${r.error}`);
    }
  }
  return agents;
}

export interface PingResult {
  from: SiteId;
  to: SiteId;
  family: 4 | 6;
  dst: string;
  sent: number;
  received: number;
  error?: string;
}

export interface TcpResult {
  from: SiteId;
  to: SiteId;
  family: 4 | 6;
  dst: string;
  bytes: number;
  /** Bytes the far end counted and the SHA-256 it computed over them. */
  farBytes: number;
  sha256: string;
  farSha256: string;
  ok: boolean;
  error?: string;
}

/** Every ordered pair of sites: [from, to]. */
export function directions(): [Site, Site][] {
  return SITES.flatMap((a) => SITES.filter((b) => b.id !== a.id).map((b) => [a, b] as [Site, Site]));
}

export async function ping(agents: Map<SiteId, Agent>, from: SiteId, to: SiteId, family: 4 | 6, count = 3): Promise<PingResult> {
  const dst = family === 4 ? siteById(to).host.v4 : siteById(to).host.v6;
  const r = await agents.get(from)!.ask({ op: "ping", dst, count, waitMs: 2000 });
  return { from, to, family, dst, sent: Number(r.sent ?? count), received: Number(r.received ?? 0), ...(r.error ? { error: String(r.error) } : {}) };
}

export async function tcp(agents: Map<SiteId, Agent>, from: SiteId, to: SiteId, family: 4 | 6, bytes: number): Promise<TcpResult> {
  const dst = family === 4 ? siteById(to).host.v4 : siteById(to).host.v6;
  const r = await agents.get(from)!.ask({ op: "send", dst, port: TCP_PORT, bytes });
  const far = (r.far ?? {}) as { bytes?: number; sha256?: string };
  const sha256 = String(r.sha256 ?? "");
  const farSha256 = String(far.sha256 ?? "");
  const farBytes = Number(far.bytes ?? 0);
  return {
    from, to, family, dst, bytes, farBytes, sha256, farSha256,
    ok: !r.error && farBytes === bytes && sha256 !== "" && sha256 === farSha256,
    ...(r.error ? { error: String(r.error) } : {}),
  };
}
