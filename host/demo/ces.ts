// The three CEs' `wesp up` processes and their `wesp status`.
//
// Each runs `wesp up CONFIG` inside its CE namespace (compiled or from the
// sources, as the demo itself runs: util/package_root.ts), its output going to
// `<lab dir>/wesp-<site>.log`, its working directory the package root; it
// makes the TUN, routes the other sites' prefixes into it and listens on UDP
// 4500 (docs/cli.md), and with IKE peers on UDP 500 too, writing every
// CHILD_SA's keys to its key log (WESP_ESP_KEYLOG, configs.ts). The demo stops
// them with SIGTERM, which `wesp up` answers by deleting its IKE SAs and
// closing TUN and sockets.
import { readFileSync } from "node:fs";
import { exec, waitFor } from "../util/proc.ts";
import type { Lab } from "../lab/lab.ts";
import type { LabProcess } from "../lab/process.ts";
import { NS, type Site, type SiteId } from "./plan.ts";
import type { DemoConfigs } from "./configs.ts";
import type { Status } from "../control/status.ts";
import { formatStatus } from "../control/format.ts";
import { KEYLOG_ENV } from "../ike/keylog.ts";
import { ROOT, wespArgv } from "../util/package_root.ts";

/** Starts `wesp up` for `site`; resolves once it forwards (its log says so), rejects if it exits first. */
export async function startCe(lab: Lab, site: Site, configs: DemoConfigs): Promise<LabProcess> {
  const env = configs.mode === "ike" ? { [KEYLOG_ENV]: configs.keyLogs[site.id] } : undefined;
  const p = lab.at(NS.ce(site)).spawn(wespArgv("up", configs.files[site.id]), { log: `wesp-${site.name}`, cwd: ROOT, env });
  const log = () => readFileSync(p.log!, "utf8");
  await waitFor(() => /forwarding on/.test(log()) || !p.running, `wesp up in ${NS.ce(site)}`, 30_000);
  if (!p.running) throw new Error(`wesp up in ${NS.ce(site)} exited with ${p.exitCode}:\n${log().trimEnd()}`);
  return p;
}

/**
 * `wesp status --json CONFIG`, and the same as `wesp status` prints it
 * (host/control/format.ts); json is null when the CE did not answer.
 */
export async function ceStatus(configs: DemoConfigs, id: SiteId): Promise<{ text: string; json: Status | null; error?: string }> {
  const r = await exec(wespArgv("status", "--json", configs.files[id]));
  try {
    if (r.code === 0) {
      const json = JSON.parse(r.stdout) as Status;
      return { text: formatStatus(json), json };
    }
  } catch {
    /* reported below */
  }
  return { text: "", json: null, error: `wesp status → exit ${r.code}: ${r.stderr.trim()}` };
}
