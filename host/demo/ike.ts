// The demo's IKEv2 side: waiting until every CE has every IKE peer up, and
// reading the SAs IKE negotiated from the CEs' key logs.
//
// Up means what `wesp status` says (its `ike` section, host/ike/runtime.ts):
// the peer's state is `up`, it has a CHILD_SA, and the data plane already sends
// on that CHILD_SA's outbound SPI — only then does traffic go through.
//
// The key logs (WESP_ESP_KEYLOG, host/ike/keylog.ts) hold one JSON line per
// CHILD_SA per CE, with both directions' SPIs and keys as that CE derived them
// (RFC 7296 §2.17). Each CHILD_SA is logged by both of its ends, mirrored; the
// demo keeps one `DemoSa` per direction and notes any disagreement, which would
// mean the two ends hold different keys.
import { existsSync, readFileSync } from "node:fs";
import { requestStatus } from "../control/client.ts";
import type { Status } from "../control/status.ts";
import type { KeyLogLine } from "../ike/keylog.ts";
import { waitFor } from "../util/proc.ts";
import { PAIRS, SITES, type DemoSuite, type SiteId } from "./plan.ts";
import type { DemoConfigs, DemoSa } from "./configs.ts";

/** How long the three CEs get to bring every IKE SA up. */
const IKE_UP_MS = 45_000;

/** Whether `st` has every IKE peer up, with the data plane sending on its CHILD_SA. */
export function ikeReady(st: Status | null | undefined): boolean {
  if (!st?.ike?.length) return false;
  return st.ike.every((p) => {
    const c = p.childSas[0];
    const dp = st.peers.find((x) => x.name === p.name);
    return p.state === "up" && c !== undefined && dp?.outbound?.spi === c.spiOut;
  });
}

/**
 * Polls every CE's control socket until all IKE peers are up; `seen` gets each
 * answer (so a run that times out still reports how far IKE got). Throws after
 * IKE_UP_MS, naming each peer not up and its last error.
 */
export async function waitForIke(configs: DemoConfigs, seen: (id: SiteId, st: Status) => void): Promise<void> {
  const latest = new Map<SiteId, Status>();
  const poll = async () => {
    await Promise.all(SITES.map(async (s) => {
      const st = await requestStatus(configs.sockets[s.id], 2000).catch(() => null);
      if (st) {
        latest.set(s.id, st);
        seen(s.id, st);
      }
    }));
    return SITES.every((s) => ikeReady(latest.get(s.id)));
  };
  try {
    await waitFor(poll, "every IKE SA up", IKE_UP_MS, 250);
  } catch {
    const notUp = SITES.flatMap((s) => {
      const st = latest.get(s.id);
      if (!st) return [`${s.name}: no status`];
      return (st.ike ?? []).filter((p) => p.state !== "up").map((p) => `${s.name} → ${p.name}: ${p.state}${p.lastError ? ` (${p.lastError})` : ""}`);
    });
    throw new Error(`IKE did not bring every SA up within ${IKE_UP_MS / 1000} s: ${notUp.join("; ") || "the data plane does not send on every CHILD_SA yet"}`);
  }
}

/** The SAs of the CEs' key logs, one per direction, and what did not add up. */
export interface NegotiatedSas {
  sas: DemoSa[];
  /** Key log lines read (one per CHILD_SA per CE). */
  lines: number;
  problems: string[];
}

const SUITES: readonly DemoSuite[] = ["aes-128-gcm", "aes-256-gcm", "chacha20-poly1305"];
const hex8 = (n: number) => "0x" + (n >>> 0).toString(16).padStart(8, "0");

/** Reads every CE's key log (JSON lines, host/ike/keylog.ts) into SA directions. */
export function negotiatedSas(configs: DemoConfigs): NegotiatedSas {
  const bySpi = new Map<number, DemoSa>();
  const problems: string[] = [];
  let lines = 0;
  for (const s of SITES) {
    const file = configs.keyLogs[s.id];
    if (!existsSync(file)) {
      problems.push(`${s.name}: no key log`);
      continue;
    }
    for (const [n, text] of readFileSync(file, "utf8").split("\n").entries()) {
      if (!text.trim()) continue;
      lines++;
      const where = `${s.name}'s key log line ${n + 1}`;
      let k: KeyLogLine;
      try {
        k = JSON.parse(text) as KeyLogLine;
      } catch {
        problems.push(`${where}: not JSON`);
        continue;
      }
      const peer = SITES.find((x) => x.name === k.peer);
      if (!peer || !SUITES.includes(k.suite as DemoSuite)) {
        problems.push(`${where}: peer ${k.peer}, suite ${k.suite}: not one of the demo's`);
        continue;
      }
      const suite = k.suite as DemoSuite;
      const dirs: DemoSa[] = [
        { spi: k.spiOut >>> 0, from: s.id, to: peer.id, suite, keymat: Buffer.from(k.keyOut, "hex") },
        { spi: k.spiIn >>> 0, from: peer.id, to: s.id, suite, keymat: Buffer.from(k.keyIn, "hex") },
      ];
      for (const sa of dirs) {
        const known = bySpi.get(sa.spi);
        if (!known) bySpi.set(sa.spi, sa);
        else if (known.from !== sa.from || known.to !== sa.to || known.suite !== sa.suite || !Buffer.from(known.keymat).equals(sa.keymat)) {
          problems.push(`SPI ${hex8(sa.spi)}: the two ends logged different SAs (${known.from} → ${known.to} ${known.suite} or ${sa.from} → ${sa.to} ${sa.suite}, keys ${Buffer.from(known.keymat).equals(sa.keymat) ? "equal" : "differ"})`);
        }
      }
    }
  }
  // In the order of the static SAs: per pair, a → b then b → a.
  const order = (sa: DemoSa) => PAIRS.findIndex((p) => (p.a.id === sa.from && p.b.id === sa.to) || (p.b.id === sa.from && p.a.id === sa.to)) * 2 + (SITES.findIndex((x) => x.id === sa.from) > SITES.findIndex((x) => x.id === sa.to) ? 1 : 0);
  return { sas: [...bySpi.values()].sort((x, y) => order(x) - order(y)), lines, problems };
}
