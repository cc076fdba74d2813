// What a test needs from the machine, in one place: every `skip:` of the test
// tree goes through `requireTools`, so no layer is ever skipped silently.
//
//   describe("…", { skip: requireTools(["netns", "tshark"], { why: "ESP on the wire" }) }, …)
//
// When everything is there it returns false (run). When something is missing:
//  - with `CI` set (to anything but "", "0" or "false"; `isCi`, shared with
//    `wesp demo`), it throws: a missing tool or privilege on CI is a broken CI
//    image, so the test file fails, naming what is missing and what installs it;
//  - otherwise it prints one `SKIP` line to stderr naming what is missing and the
//    exact command that installs it, appends the same line to $WESP_TEST_SKIP_LOG
//    (test/run.mjs prints them all again at the end), and returns that text as the
//    skip reason (node's reporter shows it beside the skipped test).
import { execFileSync, spawnSync } from "node:child_process";
import { appendFileSync, existsSync } from "node:fs";
import { findOnPath, isCi } from "../../host/demo/tools.ts";
import { CHARON } from "../interop/strongswan.ts";
import { PYTHON } from "./scapy.ts";

export { isCi };

/** A requirement that is not a command: how to tell it is there, and how to get it. */
export interface Need {
  name: string;
  present: () => boolean;
  /** The command (or action) that provides it, e.g. `apt-get install -y tshark`. */
  install: string;
  /** A Debian package that provides it, merged into one apt-get line with the others. */
  pkg?: string;
}

const LIBIPSEC = "/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so";

/** Commands by the Debian 12 package that installs them. */
const PACKAGE: Record<string, string> = {
  ip: "iproute2",
  nft: "nftables",
  tcpdump: "tcpdump",
  tshark: "tshark",
  swanctl: "strongswan-swanctl",
  python3: "python3",
  iperf3: "iperf3",
  ping: "iputils-ping",
  iptables: "iptables",
  sysctl: "procps",
};

/** Whether `cmd` is an executable file in one of PATH's directories. */
export function onPath(cmd: string, path = process.env.PATH ?? ""): boolean {
  return findOnPath(cmd, path) !== null;
}

const isRoot = () => process.getuid?.() === 0;

/** The named requirements besides plain commands. */
const NAMED: Record<string, Need> = {
  root: { name: "root", present: isRoot, install: "run as root (sudo npm test)" },
  "ip netns": {
    name: "ip netns",
    present: () => {
      try {
        execFileSync("ip", ["netns", "list"], { stdio: "ignore" });
        return true;
      } catch {
        return false;
      }
    },
    install: "apt-get install -y iproute2",
    pkg: "iproute2",
  },
  python3: { name: "python3", present: () => existsSync(PYTHON), install: "apt-get install -y python3", pkg: "python3" },
  scapy: {
    name: "python3-scapy",
    present: () => spawnSync(PYTHON, ["-c", "import scapy.layers.ipsec"], { stdio: "ignore" }).status === 0,
    install: "apt-get install -y python3-scapy",
    pkg: "python3-scapy",
  },
  charon: { name: "strongSwan charon", present: () => existsSync(CHARON), install: "apt-get install -y strongswan-charon", pkg: "strongswan-charon" },
  "kernel-libipsec": {
    name: "strongSwan kernel-libipsec",
    present: () => existsSync(LIBIPSEC),
    install: "apt-get install -y libcharon-extra-plugins libstrongswan-extra-plugins",
    pkg: "libcharon-extra-plugins libstrongswan-extra-plugins",
  },
};

/** "netns" is root and a working `ip netns` (network namespaces for the lab). */
function needsOf(n: string | Need): Need[] {
  if (typeof n !== "string") return [n];
  if (n === "netns") return [NAMED.root, NAMED["ip netns"]];
  if (NAMED[n]) return [NAMED[n]];
  const pkg = PACKAGE[n] ?? n;
  return [{ name: n, present: () => onPath(n), install: `apt-get install -y ${pkg}`, pkg }];
}

/** What is missing and how to get it, in one line (packages merged into one apt-get). */
export function describeMissing(missing: Need[]): string {
  const pkgs = [...new Set(missing.flatMap((m) => (m.pkg ? m.pkg.split(" ") : [])))];
  const how = [...new Set(missing.filter((m) => !m.pkg).map((m) => m.install))];
  if (pkgs.length) how.push(`apt-get install -y ${pkgs.join(" ")}`);
  return `missing ${missing.map((m) => m.name).join(", ")}; to run it: ${how.join("; ")}`;
}

/**
 * Checks `needs` (command names, "root", "netns" = root + `ip netns`, "python3", "scapy", "charon",
 * "kernel-libipsec", or a custom `Need`) for the test(s) described by `why`.
 * Returns false when all are present; see the file comment for the rest.
 */
export function requireTools(needs: (string | Need)[], opts: { why: string }): string | false {
  const all = [...new Set(needs.flatMap(needsOf))];
  const missing = all.filter((n) => !n.present());
  if (missing.length === 0) return false;
  const what = describeMissing(missing);
  if (isCi()) {
    throw new Error(`${opts.why}: ${what}. CI is set, so this fails instead of skipping (.ci/run installs every test tool).`);
  }
  const line = `SKIP ${opts.why}: ${what}`;
  process.stderr.write(line + "\n");
  const log = process.env.WESP_TEST_SKIP_LOG;
  if (log) {
    try {
      appendFileSync(log, line + "\n");
    } catch {
      /* the summary is a convenience; the line above was printed */
    }
  }
  return what;
}
