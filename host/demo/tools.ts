// The Debian tools the demo uses, and what it does when one is missing.
//
// `ip` (iproute2) is needed: without it there are no namespaces. The others
// make the demo richer, and it runs without them, saying what it skipped:
//   nft      the NAT in front of site C        without: C is routed, not translated
//   tcpdump  the capture on the WAN bridge      without: nothing is shown or checked on the wire
//   tshark   decrypting that capture            without: @noble/ciphers opens every frame
//
// As root on a machine with apt-get, missing tools are installed first
// (`apt-get update`, then `apt-get install -y --no-install-recommends …`),
// after saying which and why; `wesp demo --no-install` never installs. With
// CI set, a tool still missing afterwards is an error: CI must show the whole demo.
import { spawn } from "node:child_process";
import { accessSync, constants, statSync } from "node:fs";
import { delimiter, join } from "node:path";

export interface DemoTool {
  cmd: string;
  pkg: string;
  /** What the demo uses it for. */
  why: string;
  /** What the demo does without it; undefined: it cannot run without it. */
  without?: string;
}

export const DEMO_TOOLS: readonly DemoTool[] = [
  { cmd: "ip", pkg: "iproute2", why: "network namespaces, veths, addresses and routes" },
  { cmd: "nft", pkg: "nftables", why: "the NAT in front of site C",
    without: "no NAT: site C's ESP is routed, not translated; its peers still learn C's real address from authenticated packets" },
  { cmd: "tcpdump", pkg: "tcpdump", why: "capturing what crosses the WAN bridge",
    without: "no capture: nothing is shown or checked on the wire (the wire checks are skipped)" },
  { cmd: "tshark", pkg: "tshark", why: "decrypting and authenticating the capture, independently of wesp",
    without: "no tshark: @noble/ciphers opens and authenticates every captured frame (AES-GCM too)" },
];

/** Which optional tools the demo may use. */
export interface DemoTools {
  nft: boolean;
  tcpdump: boolean;
  tshark: boolean;
}

export const ALL_TOOLS: DemoTools = { nft: true, tcpdump: true, tshark: true };

/** Whether `cmd` is an executable file in one of `path`'s directories. */
export function findOnPath(cmd: string, path = process.env.PATH ?? ""): string | null {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, cmd);
    try {
      accessSync(p, constants.X_OK);
      if (statSync(p).isFile()) return p;
    } catch {
      /* not here */
    }
  }
  return null;
}

export interface ToolsOptions {
  /** Install what is missing (default true); false: `--no-install`. */
  install?: boolean;
  /** A missing tool is an error (default: CI is set). */
  strict?: boolean;
  /** Where progress goes (default stdout). */
  out?: (line: string) => void;
  /** Environment for the lookups and for apt-get (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Whether we are root (default: uid 0). */
  root?: boolean;
}

export interface ToolsResult {
  /** The optional tools present (after any install). */
  tools: DemoTools;
  /** Debian packages installed now. */
  installed: string[];
  /** One line per tool the demo runs without: "tshark: no tshark: …". */
  skipped: string[];
  /** Set when the demo cannot run: names what is missing. */
  error?: string;
}

export function isCi(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env.CI;
  return v !== undefined && v !== "" && v !== "0" && v.toLowerCase() !== "false";
}

/** The command that installs `ts`. */
export function aptLine(ts: readonly DemoTool[]): string {
  return `apt-get install -y --no-install-recommends ${ts.map((t) => t.pkg).join(" ")}`;
}

/** Finds the demo's tools, installs the missing ones if it may, and says what the demo will skip. */
export async function prepareTools(opts: ToolsOptions = {}): Promise<ToolsResult> {
  const env = opts.env ?? process.env;
  const out = opts.out ?? ((l: string) => void process.stdout.write(l + "\n"));
  const strict = opts.strict ?? isCi(env);
  const missing = () => DEMO_TOOLS.filter((t) => !findOnPath(t.cmd, env.PATH));
  let lacking = missing();
  const installed: string[] = [];

  if (lacking.length) {
    const apt = findOnPath("apt-get", env.PATH);
    const cannot = opts.install === false ? "--no-install"
      : !(opts.root ?? process.getuid?.() === 0) ? "not root"
        : !apt ? "no apt-get here (not Debian?)" : null;
    if (cannot) {
      out(`wesp demo: ${lacking.map((t) => t.cmd).join(", ")} not found, not installing ${lacking.length > 1 ? "them" : "it"} (${cannot})`);
    } else {
      out(`wesp demo: installing Debian packages for tools that are not here (as root; 'wesp demo --no-install' never installs):`);
      for (const t of lacking) out(`  ${t.pkg.padEnd(9)} ${t.cmd}: ${t.why}`);
      const ok = (await aptGet(apt!, ["update", "-q"], env, out)) && (await aptGet(apt!, ["install", "-y", "-q", "--no-install-recommends", ...lacking.map((t) => t.pkg)], env, out));
      const now = missing();
      installed.push(...lacking.filter((t) => !now.includes(t)).map((t) => t.pkg));
      if (installed.length) out(`wesp demo: installed ${installed.join(", ")}`);
      if (!ok) out(`wesp demo: apt-get failed (offline? no such package?): ${now.map((t) => t.pkg).join(", ")} not installed`);
      else if (now.length) out(`wesp demo: apt-get succeeded, but ${now.map((t) => t.cmd).join(", ")} ${now.length > 1 ? "are" : "is"} still not on PATH (${env.PATH ?? ""})`);
      lacking = now;
    }
  }

  const tools: DemoTools = { nft: true, tcpdump: true, tshark: true };
  for (const t of lacking) if (t.cmd in tools) tools[t.cmd as keyof DemoTools] = false;
  const required = lacking.filter((t) => !t.without);
  const skipped = lacking.filter((t) => t.without).map((t) => `${t.cmd}: ${t.without}`);
  if (required.length) {
    return { tools, installed, skipped, error: `needs ${required.map((t) => `${t.cmd} (${t.why})`).join(", ")}; install: ${aptLine(required)}` };
  }
  if (lacking.length && strict) {
    return { tools, installed, skipped, error: `CI is set and ${lacking.map((t) => t.cmd).join(", ")} ${lacking.length > 1 ? "are" : "is"} missing: CI runs the whole demo (${aptLine(lacking)})` };
  }
  if (lacking.length) {
    out(`wesp demo: running without ${lacking.map((t) => t.cmd).join(", ")}:`);
    for (const s of skipped) out(`  ${s}`);
    out(`  (for the whole demo: ${aptLine(lacking)}, then run it again)`);
  }
  return { tools, installed, skipped };
}

/** apt-get ARGS, non-interactive, its output indented into `out`; true when it exits 0. */
function aptGet(apt: string, args: string[], env: NodeJS.ProcessEnv, out: (l: string) => void): Promise<boolean> {
  out(`  $ apt-get ${args.join(" ")}`);
  return new Promise((resolve) => {
    const child = spawn(apt, args, { env: { ...env, DEBIAN_FRONTEND: "noninteractive" }, stdio: ["ignore", "pipe", "pipe"] });
    let partial = "";
    const take = (d: Buffer) => {
      const lines = (partial + d).split("\n");
      partial = lines.pop() ?? "";
      for (const l of lines) if (l.trim()) out(`    ${l}`);
    };
    child.stdout.on("data", take);
    child.stderr.on("data", take);
    child.on("error", (e) => {
      out(`    ${e.message}`);
      resolve(false);
    });
    child.on("close", (code) => {
      if (partial.trim()) out(`    ${partial}`);
      if (code !== 0) out(`  apt-get ${args[0]} exited ${code}`);
      resolve(code === 0);
    });
  });
}
