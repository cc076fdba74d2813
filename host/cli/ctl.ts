// `wesp ctl`: operator commands against a running `wesp controller`, through
// the typed client (host/controller/api/client.ts).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ApiError, ControllerClient } from "../controller/api/client.ts";
import { NAT_TYPES, type NatType, type NewWanPort, type SaLifetime, type Topology } from "../controller/store/model.ts";
import { EXIT_FAILURE, EXIT_OK } from "./exit_codes.ts";
import { UsageError, parseCommandArgs } from "./usage.ts";

export const summary = "operator commands for a wesp controller (create-vpn, add-site, remove-site, list)";

export const help = `Usage: wesp ctl [--url URL] [--token-file FILE] [--ca FILE] [--state DIR] [--json] COMMAND ...

Commands:
  create-vpn NAME [--hub SITE [--backup-hub SITE] [--dpd SECONDS]] [--suite SUITE]
             [--mode MODE] [--keying ike|controller]
             [--sa-lifetime soft=S,hard=S[,soft-bytes=N,bytes=N,soft-packets=N,packets=N]]
      a VPN: full mesh, or hub-and-spoke with --hub (and an optional backup hub,
      to which spokes fail over within three --dpd liveness intervals, IKE only);
      its CEs negotiate IKEv2 with their enrolled certificates (ike, the
      default) or get keys the controller makes (controller, RFC 9061 IKE-less);
      their SAs are rekeyed at the soft lifetime — by the CEs' IKE, or by the
      controller — and end at the hard one (default soft=3600,hard=7200)
  add-site VPN NAME --prefix CIDR... --wan SPEC... [--system-id ID]
      SPEC is NAME=ADDRESS[:PORT][,public=ADDRESS[:PORT]][,nat=TYPE][,trusted]
      (an IPv6 address with a port goes in brackets: [2001:db8::1]:4500)
  remove-site VPN NAME
  list [VPN]          the VPNs, or the sites of VPN
  token VPN SITE [--ttl SECONDS] [--out FILE]      (also: site token VPN SITE)
      a one-time enrolment token for SITE (printed once); with --out, a
      token file (mode 0600) for 'wesp up --controller URL --token FILE':
      the token, the controller's URL and its CA fingerprint, as JSON
  revoke VPN SITE     revoke SITE's certificates (it must enrol again)
  config VPN SITE     SITE's CE config as JSON — with controller keying it holds
                      SA keys: keep it secret

Connection (options, else environment, else the controller's state dir):
      --url URL          WESP_CONTROLLER_URL (default https://127.0.0.1:8443)
      --token-file FILE  WESP_CONTROLLER_TOKEN_FILE (default DIR/operator.token)
      --ca FILE          WESP_CONTROLLER_CA: the certificate to trust
                         (default DIR/ca/ca.pem, the controller's CA)
      --state DIR        the state dir of a local 'wesp controller'
      --json             print JSON instead of text
  -h, --help             show this help

Exit status: 0 done, 1 refused by the controller or unreachable, 2 bad usage.
`;

const OPTIONS = {
  url: { type: "string" }, "token-file": { type: "string" }, ca: { type: "string" }, state: { type: "string" },
  json: { type: "boolean" }, hub: { type: "string" }, "backup-hub": { type: "string" }, suite: { type: "string" },
  mode: { type: "string" }, keying: { type: "string" }, prefix: { type: "string", multiple: true }, wan: { type: "string", multiple: true },
  "system-id": { type: "string" }, ttl: { type: "string" }, out: { type: "string" }, "sa-lifetime": { type: "string" },
  dpd: { type: "string" },
} as const;

const LIFETIME_KEYS: Record<string, keyof SaLifetime> = {
  soft: "softSeconds", hard: "seconds", "soft-bytes": "softBytes", bytes: "bytes", "soft-packets": "softPackets", packets: "packets",
};

/** `soft=3600,hard=7200,bytes=1000000000` as SA lifetimes (the controller checks the values). */
export function parseLifetimeSpec(spec: string): SaLifetime {
  const l: SaLifetime = {};
  for (const part of spec.split(",")) {
    const [k, v] = part.split("=");
    const key = LIFETIME_KEYS[k];
    if (!key || v === undefined || !/^\d{1,16}$/.test(v)) throw new UsageError(`--sa-lifetime "${spec}": expected soft=S,hard=S[,soft-bytes=N,bytes=N,soft-packets=N,packets=N]`);
    l[key] = Number(v);
  }
  return l;
}

function hostPort(text: string, what: string): { address: string; port?: number } {
  const m = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(text) ?? (text.split(":").length === 2 ? /^([^:]+):(\d{1,5})$/.exec(text) : null);
  if (m) return { address: m[1], ...(m[2] ? { port: Number(m[2]) } : {}) };
  if (!text) throw new UsageError(`${what}: missing address`);
  return { address: text };
}

/** `inet=192.168.1.2:4500,public=198.51.100.2:40001,nat=symmetric,trusted` as a WAN port. */
export function parseWanSpec(spec: string): NewWanPort {
  const [head, ...opts] = spec.split(",");
  const eq = head.indexOf("=");
  if (eq < 1) throw new UsageError(`--wan "${spec}": expected NAME=ADDRESS[:PORT][,public=ADDRESS[:PORT]][,nat=TYPE][,trusted]`);
  const priv = hostPort(head.slice(eq + 1), "--wan");
  const w: NewWanPort = { name: head.slice(0, eq), privateAddress: priv.address, ...(priv.port ? { privatePort: priv.port } : {}) };
  for (const o of opts) {
    if (o === "trusted") w.trusted = true;
    else if (o.startsWith("public=")) {
      const p = hostPort(o.slice(7), "public");
      w.publicAddress = p.address;
      if (p.port) w.publicPort = p.port;
    } else if (o.startsWith("nat=")) {
      if (!NAT_TYPES.includes(o.slice(4) as NatType)) throw new UsageError(`--wan: nat= one of ${NAT_TYPES.join(", ")}`);
      w.natType = o.slice(4) as NatType;
    } else throw new UsageError(`--wan: unknown option "${o}"`);
  }
  return w;
}

function client(values: Record<string, unknown>): ControllerClient {
  const state = values.state as string | undefined;
  const pick = (opt: string, env: string, dflt?: string) => (values[opt] as string | undefined) ?? process.env[env] ?? dflt;
  const url = pick("url", "WESP_CONTROLLER_URL", "https://127.0.0.1:8443")!;
  const tokenFile = pick("token-file", "WESP_CONTROLLER_TOKEN_FILE", state && join(state, "operator.token"));
  const caFile = pick("ca", "WESP_CONTROLLER_CA", state && join(state, "ca", "ca.pem"));
  if (!tokenFile) throw new UsageError("no operator token: --token-file, WESP_CONTROLLER_TOKEN_FILE or --state");
  if (!caFile) throw new UsageError("no certificate to trust: --ca, WESP_CONTROLLER_CA or --state");
  const read = (f: string, what: string) => {
    try {
      return readFileSync(f, "utf8");
    } catch (e) {
      throw new Error(`cannot read the ${what} ${f}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  };
  return new ControllerClient({ url, token: read(tokenFile, "operator token").trim(), ca: read(caFile, "certificate") });
}

function need(pos: string[], n: number, usage: string): string[] {
  if (pos.length !== n) throw new UsageError(`usage: wesp ctl ${usage}`);
  return pos;
}

export async function main(args: string[]): Promise<number> {
  const { values, positionals, help: wantHelp } = parseCommandArgs("ctl", args, OPTIONS);
  if (wantHelp || positionals.length === 0) {
    (wantHelp ? process.stdout : process.stderr).write(help);
    return wantHelp ? EXIT_OK : 2;
  }
  // "site token …" reads as "token …"
  const [cmd, ...rest] = positionals[0] === "site" && positionals[1] === "token" ? positionals.slice(1) : positionals;
  const json = values.json === true;
  const out = (v: unknown, text: string) => process.stdout.write(json ? JSON.stringify(v, null, 2) + "\n" : text + "\n");
  const c = () => client(values);
  try {
    switch (cmd) {
      case "create-vpn": {
        const [name] = need(rest, 1, "create-vpn NAME [--hub SITE [--backup-hub SITE]]");
        if (values["backup-hub"] && !values.hub) throw new UsageError("--backup-hub needs --hub");
        if (values.dpd !== undefined && !values.hub) throw new UsageError("--dpd needs --hub");
        const dpd = values.dpd !== undefined ? Number(values.dpd) : undefined;
        if (dpd !== undefined && !(Number.isInteger(dpd) && dpd >= 1 && dpd <= 3600)) throw new UsageError("--dpd: an integer 1..3600 (seconds)");
        const topology: Topology = values.hub
          ? {
            kind: "hub-and-spoke", hub: values.hub as string, ...(values["backup-hub"] ? { backupHub: values["backup-hub"] as string } : {}),
            ...(dpd !== undefined ? { dpd } : {}),
          }
          : { kind: "full-mesh" };
        const v = await c().createVpn({
          name, topology, ...(values.suite ? { suite: values.suite as never } : {}), ...(values.mode ? { mode: values.mode as never } : {}),
          ...(values.keying ? { keying: values.keying as never } : {}),
          ...(values["sa-lifetime"] ? { saLifetime: parseLifetimeSpec(values["sa-lifetime"] as string) } : {}),
        });
        out(v, `created VPN ${v.name} (${v.topology.kind}, ${v.suite}, ${v.mode}, keying ${v.keying})`);
        return EXIT_OK;
      }
      case "add-site": {
        const [vpn, name] = need(rest, 2, "add-site VPN NAME --prefix CIDR... --wan SPEC...");
        const prefixes = (values.prefix as string[] | undefined) ?? [];
        const wans = (values.wan as string[] | undefined) ?? [];
        if (!prefixes.length || !wans.length) throw new UsageError("add-site needs at least one --prefix and one --wan");
        const s = await c().addSite(vpn, {
          name, prefixes, wan: wans.map(parseWanSpec), ...(values["system-id"] ? { systemId: values["system-id"] as string } : {}),
        });
        out(s, `added site ${s.name} to ${vpn} (site id ${s.siteId}, system id ${s.systemId})`);
        return EXIT_OK;
      }
      case "remove-site": {
        const [vpn, name] = need(rest, 2, "remove-site VPN NAME");
        await c().removeSite(vpn, name);
        out({ removed: name }, `removed site ${name} from ${vpn}`);
        return EXIT_OK;
      }
      case "list": {
        if (rest.length > 1) throw new UsageError("usage: wesp ctl list [VPN]");
        if (rest.length === 0) {
          const vpns = await c().listVpns();
          out(vpns, vpns.map((v) => `${v.name}\t${v.topology.kind === "full-mesh" ? "full-mesh" : `hub-and-spoke hub=${v.topology.hub}${v.topology.backupHub ? ` backup=${v.topology.backupHub}` : ""}`}\t${v.suite}\t${v.mode}\t${v.keying}\tversion ${v.version}`).join("\n") || "(no VPNs)");
          return EXIT_OK;
        }
        const sites = await c().listSites(rest[0]);
        out(sites, sites.map((s) => `${s.name}\tsite ${s.siteId}\t${s.prefixes.join(",")}\t${s.wan.map((w) => `${w.name}=${w.privateAddress}:${w.privatePort}${w.publicAddress ? `→${w.publicAddress}:${w.publicPort ?? w.privatePort}` : ""}${w.natType !== "none" ? ` nat=${w.natType}` : ""}${w.trusted ? " trusted" : ""}`).join(" ")}`).join("\n") || "(no sites)");
        return EXIT_OK;
      }
      case "token": {
        const [vpn, site] = need(rest, 2, "token VPN SITE [--ttl SECONDS]");
        const ttl = values.ttl === undefined ? undefined : Number(values.ttl);
        if (ttl !== undefined && !Number.isInteger(ttl)) throw new UsageError("--ttl: whole seconds");
        const cl = c();
        const t = await cl.createEnrolmentToken(vpn, site, ttl);
        if (values.out) {
          const file = { token: t.token, url: cl.url, caFingerprint: t.caFingerprint, vpn, site, expiresAt: t.expiresAt };
          writeFileSync(values.out as string, JSON.stringify(file, null, 2) + "\n", { mode: 0o600, flag: "wx" });
          out({ file: values.out, expiresAt: t.expiresAt }, `token file ${values.out} written (expires ${new Date(t.expiresAt).toISOString()})`);
        } else out(t, t.token);
        return EXIT_OK;
      }
      case "revoke": {
        const [vpn, site] = need(rest, 2, "revoke VPN SITE");
        const n = await c().revokeSite(vpn, site);
        out({ revoked: n }, `revoked ${n} certificate${n === 1 ? "" : "s"} of ${site} in ${vpn}`);
        return EXIT_OK;
      }
      case "config": {
        const [vpn, site] = need(rest, 2, "config VPN SITE");
        const cfg = await c().siteConfig(vpn, site);
        process.stdout.write(JSON.stringify(cfg, null, 2) + "\n");
        return EXIT_OK;
      }
      default:
        throw new UsageError(`unknown ctl command "${cmd}"`);
    }
  } catch (e) {
    if (e instanceof UsageError) throw e;
    const what = e instanceof ApiError ? `${e.message} (HTTP ${e.status})` : (e as Error).message;
    process.stderr.write(`wesp ctl ${cmd}: ${what}\n`);
    return EXIT_FAILURE;
  }
}
