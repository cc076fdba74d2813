// The Debian packages the tunnel benchmark uses, and what it does when one is
// missing — as `wesp demo` does (host/demo/tools.ts): as root on a machine
// with apt-get it says which packages and why, then installs them
// (`apt-get update`, `apt-get install -y --no-install-recommends …`);
// `--no-install` never installs. A contender whose package is still missing
// is skipped, saying why; iperf3 and taskset are needed by every contender.
import { existsSync } from "node:fs";
import { findOnPath } from "../../host/demo/tools.ts";
import { exec } from "../../host/util/proc.ts";
import type { Contender } from "./contender.ts";

export interface Need {
  cmd: string;
  pkg: string;
}

/** What every contender needs. */
export const BASE_NEEDS: readonly Need[] = [
  { cmd: "ip", pkg: "iproute2" },
  { cmd: "iperf3", pkg: "iperf3" },
  { cmd: "taskset", pkg: "util-linux" },
];

/** Whether `cmd` (a command on PATH or an absolute file) is there. */
export function present(cmd: string): boolean {
  return cmd.startsWith("/") ? existsSync(cmd) : findOnPath(cmd) !== null;
}

/** The installed version of a Debian package, or "?" . */
export async function dpkgVersion(pkg: string): Promise<string> {
  const r = await exec(["dpkg-query", "-W", "-f", "${Version}", pkg]).catch(() => null);
  return r && r.code === 0 ? r.stdout.trim() : "?";
}

/** Why each package is wanted, for the line printed before installing. */
function why(pkg: string, users: Contender[]): string {
  if (BASE_NEEDS.some((n) => n.pkg === pkg)) return "traffic generation, pinning and namespaces (every contender)";
  return `contender ${users.map((c) => c.id).join(", ")}`;
}

/**
 * Installs the packages the selected contenders lack when allowed, and
 * returns the reason each contender still cannot run (by id), plus an error
 * when a base tool is missing.
 */
export async function prepare(contenders: Contender[], install: boolean, out: (l: string) => void): Promise<{ skip: Map<string, string>; error?: string }> {
  const lacking = () => {
    const pkgs = new Map<string, Contender[]>();
    for (const n of BASE_NEEDS) if (!present(n.cmd)) pkgs.set(n.pkg, []);
    for (const c of contenders) for (const n of c.needs) if (!present(n.cmd)) pkgs.set(n.pkg, [...(pkgs.get(n.pkg) ?? []), c]);
    return pkgs;
  };
  let missing = lacking();
  if (missing.size) {
    const apt = findOnPath("apt-get");
    const cannot = !install ? "--no-install" : process.getuid?.() !== 0 ? "not root" : !apt ? "no apt-get here (not Debian?)" : null;
    if (cannot) {
      out(`bench tunnel: ${[...missing.keys()].join(", ")} not installed; not installing (${cannot})`);
    } else {
      out("bench tunnel: installing Debian packages that are not here (as root; --no-install never installs):");
      for (const [pkg, users] of missing) out(`  ${pkg.padEnd(24)} for ${why(pkg, users)}`);
      const ok = (await aptGet(apt!, ["update", "-q"], out)) && (await aptGet(apt!, ["install", "-y", "-q", "--no-install-recommends", ...missing.keys()], out));
      if (!ok) out("bench tunnel: apt-get failed (offline? no such package in this release?)");
      missing = lacking();
    }
  }
  const skip = new Map<string, string>();
  for (const c of contenders) {
    const gone = c.needs.filter((n) => !present(n.cmd));
    if (gone.length) skip.set(c.id, `not installed: ${gone.map((n) => `${n.cmd} (Debian package ${n.pkg})`).join(", ")}`);
  }
  const base = BASE_NEEDS.filter((n) => !present(n.cmd));
  const error = base.length ? `needs ${base.map((n) => n.cmd).join(", ")}: apt-get install -y ${base.map((n) => n.pkg).join(" ")}` : undefined;
  return { skip, error };
}

/** apt-get ARGS, non-interactive; its last lines are shown; true when it exits 0. */
async function aptGet(apt: string, args: string[], out: (l: string) => void): Promise<boolean> {
  out(`  $ apt-get ${args.join(" ")}`);
  const r = await exec([apt, ...args], { env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" }, timeoutMs: 900_000 });
  for (const l of (r.stdout + r.stderr).split("\n").filter((x) => x.trim()).slice(-6)) out(`    ${l}`);
  return r.code === 0;
}
